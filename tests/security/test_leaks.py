"""What a caller learns from the gateway beyond what it asked for (issue 15, item 8): plugin
endpoints (admin token only), tokens echoed in auth errors, tracebacks in error answers.

A real gateway (apt-router in front) with the echo plugin as a child process; the CLI as a
separate process where the user sees the answer.
"""

from __future__ import annotations

import re
import secrets
import shutil

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from gateway.testing import run_cli
from .conftest import assert_no_leak, rpc_error

INTERNAL_ANSWER = re.compile(r"^Internal error \(RuntimeError\)\. Request id (\w+); the service log has the details\.$")


@pytest.fixture(scope="module")
def gw(attack_gateway):
    attack_gateway.app.registry.install("echo")
    return attack_gateway


def _registry(gw, token: str):
    return gateway_pb2_grpc.PluginRegistryStub(connect(gw.address, token))


def _text(err: grpc.RpcError) -> str:
    """Everything an error answer carries back: details and trailing metadata."""
    return " ".join([err.details() or "", *(f"{k}={v}" for k, v in (err.trailing_metadata() or ()))])


# -- plugin endpoints: internal-network detail, for the admin only ----------------------------
def test_list_and_get_plugin_show_endpoints_to_the_admin_token_only(gw):
    endpoints = gw.app.registry.installed("echo").endpoints
    user, admin = _registry(gw, gw.settings.token), _registry(gw, gw.settings.admin_token)

    listed = user.ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=10).plugins
    echo = next(p for p in listed if p.name == "echo")
    assert echo.status == gateway_pb2.PLUGIN_STATUS_INSTALLED and echo.replicas == 1  # the rest is still there
    assert all(not p.endpoints for p in listed)
    assert not user.GetPlugin(gateway_pb2.GetPluginRequest(name="echo"), timeout=10).endpoints
    port = endpoints[0].rsplit(":", 1)[1]
    assert port not in str(listed)

    listed = admin.ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=10).plugins
    assert list(next(p for p in listed if p.name == "echo").endpoints) == endpoints
    assert list(admin.GetPlugin(gateway_pb2.GetPluginRequest(name="echo"), timeout=10).endpoints) == endpoints


def test_the_role_does_not_stick_to_a_server_thread(gw):
    """Alternating admin and user calls: each answer follows its own caller's token."""
    user, admin = _registry(gw, gw.settings.token), _registry(gw, gw.settings.admin_token)
    for _ in range(20):
        assert admin.GetPlugin(gateway_pb2.GetPluginRequest(name="echo"), timeout=10).endpoints
        assert not user.GetPlugin(gateway_pb2.GetPluginRequest(name="echo"), timeout=10).endpoints


# -- auth errors never repeat a token ---------------------------------------------------------
def test_auth_errors_never_echo_the_token(gw):
    s = gw.settings
    endpoint = gw.app.registry.installed("echo").endpoints[0]
    wrong = "wrong-" + secrets.token_hex(16)
    echo = lambda address, token: echo_pb2_grpc.EchoStub(connect(address, token)).Echo(  # noqa: E731
        echo_pb2.EchoRequest(text="x"), timeout=10)
    count = lambda address, token: list(echo_pb2_grpc.EchoStub(connect(address, token)).Count(  # noqa: E731
        echo_pb2.CountRequest(n=3), timeout=10))
    install = lambda token: _registry(gw, token).InstallPlugin(  # noqa: E731
        gateway_pb2.InstallPluginRequest(name="echo"), timeout=10)
    cases = [  # (what is sent, the call, the code)
        (wrong, lambda: echo(gw.address, wrong), grpc.StatusCode.UNAUTHENTICATED),
        (wrong, lambda: count(gw.address, wrong), grpc.StatusCode.UNAUTHENTICATED),
        (s.internal_token, lambda: echo(gw.address, s.internal_token), grpc.StatusCode.UNAUTHENTICATED),
        (s.token, lambda: install(s.token), grpc.StatusCode.PERMISSION_DENIED),
        (wrong, lambda: install(wrong), grpc.StatusCode.UNAUTHENTICATED),
        (s.token, lambda: echo(endpoint, s.token), grpc.StatusCode.UNAUTHENTICATED),
        (s.admin_token, lambda: count(endpoint, s.admin_token), grpc.StatusCode.UNAUTHENTICATED),
        (wrong, lambda: echo(endpoint, wrong), grpc.StatusCode.UNAUTHENTICATED),
    ]
    texts = []
    for sent, call, code in cases:
        err = rpc_error(call)
        assert err.code() == code, (err.code(), err.details())
        assert sent not in _text(err), _text(err)
        assert err.details(), "an auth error says what to do"
        texts.append(_text(err))
    assert_no_leak(gw, *texts)
    log_lines = "\n".join(gw.log_capture.lines)
    assert wrong not in log_lines and s.token not in log_lines


# -- unexpected errors: INTERNAL with a request id, the traceback only in the service log ------
def test_a_plugin_crash_reaches_callers_without_its_traceback(gw):
    endpoint = gw.app.registry.installed("echo").endpoints[0]
    for label, channel in [("gateway", gw.channel()), ("plugin", connect(endpoint, gw.settings.internal_token))]:
        marker = f"private-detail-{secrets.token_hex(8)}"
        err = rpc_error(lambda: echo_pb2_grpc.EchoStub(channel).Fail(  # noqa: B023
            echo_pb2.FailRequest(error="", message=marker), timeout=10))
        assert err.code() == grpc.StatusCode.INTERNAL, label
        found = INTERNAL_ANSWER.match(err.details())
        assert found, (label, err.details())
        assert marker not in _text(err) and "Traceback" not in _text(err), label
        plugin_log = (gw.settings.home / "logs" / "echo-0.log").read_text()
        assert any(found.group(1) in line and "Traceback" in line and marker in line
                   for line in plugin_log.splitlines()), f"{label}: the traceback belongs in the plugin log"


def test_a_gateway_crash_reaches_callers_without_its_traceback(gw):
    # a store record that parses as JSON but is not an object: the core code fails unexpectedly
    folder = gw.app.store.path("models", "odd")
    folder.mkdir(parents=True)
    (folder / "apt.json").write_text("[]")
    try:
        err = rpc_error(lambda: gateway_pb2_grpc.CoreStub(gw.channel()).ListModels(
            gateway_pb2.ListModelsRequest(), timeout=10))
    finally:
        shutil.rmtree(folder)
    assert err.code() == grpc.StatusCode.INTERNAL, err.details()
    found = re.fullmatch(r"Internal error \(\w+\)\. Request id (\w+); the service log has the details\.", err.details())
    assert found, err.details()
    assert "Traceback" not in _text(err)
    assert any("Traceback" in line for line in gw.log_capture.lines), "the traceback belongs in the gateway log"


# -- the CLI: one line, no token, no traceback -------------------------------------------------
def test_cli_auth_failures_are_one_line_without_the_token(gw):
    wrong = "wrong-" + secrets.token_hex(16)
    out = run_cli(gw, "plugin", "list", env_extra={"APT_TOKEN": wrong})
    assert out.returncode == 6, out.stderr
    refused = run_cli(gw, "plugin", "install", "echo", "--json", env_extra={"APT_ADMIN_TOKEN": gw.settings.token})
    assert refused.returncode == 6, refused.stderr
    for result, sent in ((out, wrong), (refused, gw.settings.token)):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert sent not in result.stderr + result.stdout
        assert "Traceback" not in result.stderr
