"""A training job's running log (apt_model.runtime.joblog), rule by rule: the path a job id names
(the only input that reaches a path here), the rows written at the start and appended step by
step, how many logs a service keeps, and what a reader sees of a log still being written."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from apt_model import errors
from apt_model.runtime import joblog
from apt_model.runtime.joblog import JobLog, job_log_path, read_job_log


@pytest.mark.parametrize("job_id, service, hex_", [
    ("model-pruning:ab12", "model-pruning", "ab12"),
    ("a:0", "a", "0"),
    ("a.b_c-d:ff", "a.b_c-d", "ff"),
    ("9" * 64 + ":" + "f" * 64, "9" * 64, "f" * 64),
])
def test_a_job_id_names_one_file_under_its_service(tmp_path, job_id, service, hex_):
    assert job_log_path(tmp_path, job_id) == tmp_path / "job-logs" / service / f"{hex_}.jsonl"
    assert job_log_path(str(tmp_path), job_id) == tmp_path / "job-logs" / service / f"{hex_}.jsonl"


@pytest.mark.parametrize("job_id", [
    "", None, "pruning", "pruning:", ":ab", "..:ab", ".hidden:ab", "-x:ab", "a/b:ab", "a:b/../c", "a:ab.jsonl",
    "Pruning:ab", "a:AB", "a:ab:cd", "a" * 65 + ":ab", "a:" + "0" * 65, "a:ab\n", " a:ab", "a:a b",
])
def test_anything_but_a_job_id_is_refused_before_it_names_a_path(tmp_path, job_id):
    with pytest.raises(errors.InvalidArgument) as info:
        job_log_path(tmp_path, job_id)
    assert info.value.message == (f"{job_id!r} is not a job id (expected '<service>:<hex>', as printed by "
                                  "'apt-model job list').")


def test_start_writes_the_earlier_rows_and_append_adds_one_line_per_step(tmp_path):
    log = JobLog(tmp_path / "job-logs" / "svc" / "ab.jsonl")
    log.start([{"step": 1, "loss": 2.5}, {"step": 2, "loss": float("nan")}])
    assert log.path.read_bytes() == b'{"step": 1, "loss": 2.5}\n{"step": 2, "loss": NaN}\n'
    log.append({"step": 3, "loss": float("inf")})
    assert log.path.read_bytes().endswith(b'{"step": 3, "loss": Infinity}\n')   # on disk as the call returns
    rows = read_job_log(log.path)
    assert [r["step"] for r in rows] == [1, 2, 3] and math.isnan(rows[1]["loss"]) and rows[2]["loss"] == math.inf


def test_a_new_start_replaces_what_the_file_held(tmp_path):
    log = JobLog(tmp_path / "svc" / "ab.jsonl")
    log.start([{"step": i} for i in range(5)])
    log.start([{"step": 0}])        # a resumed run rewrites the rows it keeps
    log.start([])
    assert log.path.read_bytes() == b""
    assert read_job_log(log.path) == []


def test_a_service_keeps_its_newest_logs_by_modification_time(tmp_path, monkeypatch):
    monkeypatch.setattr(joblog, "KEPT", 2)
    folder = tmp_path / "svc"
    folder.mkdir()
    for age, name in ((300, "old"), (200, "older-name-newer"), (100, "recent")):
        (folder / f"{name}.jsonl").write_text("{}\n")
        stamp = 1_700_000_000 - age
        os.utime(folder / f"{name}.jsonl", (stamp, stamp))
    (folder / "notes.txt").write_text("not a log")
    JobLog(folder / "new.jsonl").start([{"step": 1}])
    assert sorted(p.name for p in folder.iterdir()) == ["new.jsonl", "notes.txt", "recent.jsonl"]


def test_a_log_removed_by_another_start_meanwhile_counts_as_newest(tmp_path):
    folder = tmp_path / "svc"
    folder.mkdir()
    for age, name in ((300, "a"), (200, "b")):
        (folder / f"{name}.jsonl").write_text("{}\n")
        os.utime(folder / f"{name}.jsonl", (1_700_000_000 - age,) * 2)
    (folder / "gone.jsonl").symlink_to(folder / "missing")   # stat() raises FileNotFoundError
    joblog._keep_newest(folder, 2)
    assert sorted(p.name for p in folder.iterdir()) == ["b.jsonl", "gone.jsonl"]


def test_a_reader_sees_complete_lines_only(tmp_path):
    path = tmp_path / "ab.jsonl"
    path.write_text('{"step": 1}\n\n{"step": 2}\n{"step": 3, "lo')   # the writer is mid-line
    assert read_job_log(path) == [{"step": 1}, {"step": 2}]
    path.write_text('{"step": 1}')
    assert read_job_log(str(path)) == []
    path.write_text("")
    assert read_job_log(path) == []


def test_rows_keep_their_keys_and_values_exactly(tmp_path):
    log = JobLog(Path(tmp_path) / "ab.jsonl")
    row = {"step": 7, "lr": 1e-4, "grad_norm": {"total": 0.5, "blocks": [0.1, 0.2]}, "note": "é"}
    log.start([])
    log.append(row)
    assert read_job_log(log.path) == [row]
    assert json.loads(log.path.read_text(encoding="utf-8")) == row


def test_a_log_another_start_removes_between_the_listing_and_the_removal_is_no_error(tmp_path, monkeypatch):
    folder = tmp_path / "svc"
    folder.mkdir()
    for age, name in ((300, "a"), (200, "b"), (100, "c")):
        (folder / f"{name}.jsonl").write_text("{}\n")
        os.utime(folder / f"{name}.jsonl", (1_700_000_000 - age,) * 2)
    real_stat = Path.stat

    def stat_then_vanish(self, *args, **kwargs):
        result = real_stat(self, *args, **kwargs)
        if self.name == "a.jsonl":
            os.unlink(self)   # another job's start removes it right after this one looked at it
        return result

    monkeypatch.setattr(Path, "stat", stat_then_vanish)
    joblog._keep_newest(folder, 1)
    monkeypatch.undo()
    assert sorted(p.name for p in folder.iterdir()) == ["c.jsonl"]
