"""The services' log lines (apt_model.runtime.logs): one JSON object per line with the request id of
the call being served, or a plain line for a person at a terminal."""

from __future__ import annotations

import io
import json
import logging
import re
import sys

import pytest

from apt_model.runtime import logs
from apt_model.runtime.logs import JsonFormatter, request_id


def record(msg="hello %s", args=("wörld",), exc_info=None, **extra) -> logging.LogRecord:
    rec = logging.LogRecord("apt.test", logging.WARNING, __file__, 1, msg, args, exc_info)
    rec.created, rec.msecs = 1_700_000_000.25, 250.9
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_a_line_is_one_json_object_with_time_level_service_logger_and_message():
    line = JsonFormatter("gateway").format(record())
    assert "\n" not in line and "wörld" in line   # not escaped
    assert json.loads(line) == {"ts": "2023-11-14T22:13:20.250Z", "level": "WARNING", "service": "gateway",
                                "logger": "apt.test", "msg": "hello wörld"}


def test_the_request_id_and_the_access_fields_are_added_when_present():
    token = request_id.set("rid-7")
    try:
        line = json.loads(JsonFormatter("svc").format(
            record(method="/a.B/C", code="OK", duration_ms=1.5, peer="ipv4:1.2.3.4", other="not kept")))
    finally:
        request_id.reset(token)
    assert {k: line[k] for k in ("request_id", "method", "code", "duration_ms", "peer")} == {
        "request_id": "rid-7", "method": "/a.B/C", "code": "OK", "duration_ms": 1.5, "peer": "ipv4:1.2.3.4"}
    assert "other" not in line
    assert "request_id" not in json.loads(JsonFormatter("svc").format(record()))


def test_an_exception_goes_in_as_its_traceback():
    try:
        raise ValueError("bad thing")
    except ValueError:
        line = json.loads(JsonFormatter("svc").format(record(exc_info=sys.exc_info())))
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert line["traceback"].endswith("ValueError: bad thing")


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield root
    root.handlers[:], level = saved[0], saved[1]
    root.setLevel(level)


def test_configure_replaces_the_root_handlers_with_one_json_stream_to_stderr(root_logger, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    root_logger.addHandler(logging.NullHandler())
    logs.configure("plugin-x", level="DEBUG")
    assert len(root_logger.handlers) == 1 and root_logger.level == logging.DEBUG
    logging.getLogger("apt.t").debug("one %d", 1)
    assert json.loads(err.getvalue()) | {"ts": ""} == {"ts": "", "level": "DEBUG", "service": "plugin-x",
                                                       "logger": "apt.t", "msg": "one 1"}


def test_configure_can_write_plain_lines(root_logger, monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    logs.configure("plugin-x", as_json=False)
    assert root_logger.level == logging.INFO
    logging.getLogger("apt.t").debug("hidden")
    logging.getLogger("apt.t").warning("two %d", 2)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} plugin-x WARNING apt.t: two 2\n", err.getvalue())
