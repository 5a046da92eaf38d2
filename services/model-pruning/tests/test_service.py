"""The real Pruning service on a loopback port: jobs, validation, busy models, registered strategies."""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from pathlib import Path

import grpc
import pytest

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store
from apt_model.trust import PathPolicy
from apt_prune.service import START_PRUNE
from apt_prune.spec import PruneSpec

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def corpus(home) -> str:
    """corpus.txt copied beside the store, into the test's data root (the store itself is no root)."""
    return str(shutil.copy(home / "corpus.txt", home.parent / "corpus.txt"))


def request(home, **kw):
    fields = dict(name="tiny", strategy="magnitude", ratio=0.5, seq_len=32, batch_size=4,
                  eval_path=corpus(home))
    fields.update(kw)
    return pb.PruneRequest(**fields)


def test_prune_job_end_to_end(home):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, _app):
        stub = pruning_pb2_grpc.PruningStub(channel)
        job = stub.StartPrune(request(home, output_name="mag50"))
        assert job.id.startswith("model-pruning:") and job.labels["model"] == "tiny"
        done = wait_job(channel, job.id, timeout=240)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
        result = job_result(done)
        assert result["ratio_achieved"] == pytest.approx(0.5, abs=1e-3)
        assert result["before"]["perplexity"] > 1 and result["after"]["latency_ms"] > 0
        typed = typed_result(done)  # Job.response: the declared PruneResult, integers as integers
        assert isinstance(typed, pb.PruneResult) and (typed.model, typed.output, typed.strategy) == ("tiny", "mag50",
                                                                                                     "magnitude")
        before, after = typed.before.parameters, typed.after.parameters
        assert before.total == after.total > 0 and after.nonzero < before.nonzero  # zeros, nothing removed
        assert typed.after.size_bytes == result["after"]["size_bytes"] and typed.reload.finite
        assert typed.HasField("perplexity_ratio") and not typed.HasField("perplexity_note") and typed.note
    entry = Store(home).model("mag50")
    assert json.loads((entry.path / "prune_report.json").read_text())["output"] == "mag50"


def test_lottery_and_recovery_steps_are_one_training_log(home):
    """training_log.jsonl in the pruned model: every lottery step of every round, then every
    recovery step, numbered on; a prune that trains nothing has no log."""
    from apt_model.modeling import trainlog

    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, _app):
        stub = pruning_pb2_grpc.PruningStub(channel)
        done = wait_job(channel, stub.StartPrune(request(
            home, output_name="lot", strategy="lottery", lottery_rounds=2, lottery_steps=4, rewind_step=2,
            recovery_steps=5, recovery_path=corpus(home))).id, timeout=240)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
        lottery = typed_result(done).lottery
        assert (lottery.rounds, [r.train_steps for r in lottery.schedule]) == (2, [4, 4])
        plain = wait_job(channel, stub.StartPrune(request(home, output_name="plain")).id, timeout=240)
        assert plain.state == job_pb2.JOB_STATE_SUCCEEDED, plain.error.message
    store = Store(home)
    rows = trainlog.read(store.model("lot").path)
    assert [r["step"] for r in rows] == list(range(1, 14))
    assert [r["phase"] for r in rows] == ["lottery round 1/2"] * 4 + ["lottery round 2/2"] * 4 + ["recover"] * 5
    assert all(r["grad_norm"] > 0 and r["loss"] > 0 for r in rows)
    assert [r["step"] for r in rows if "block_grad_norms" in r] == [1, 10]
    assert trainlog.read(store.model("plain").path) == []


@pytest.mark.parametrize("fields, code, text", [
    ({"ratio": 1.0}, grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
    ({"ratio": 0.0}, grpc.StatusCode.INVALID_ARGUMENT, "ratio is required"),  # zero = not given
    ({"ratio": -0.2}, grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
    ({"strategy": "random"}, grpc.StatusCode.INVALID_ARGUMENT, "Unknown strategy"),
    ({"strategy": "structured", "ratio": 0.1}, grpc.StatusCode.INVALID_ARGUMENT, "rounds to 0"),
    ({"name": "nope"}, grpc.StatusCode.NOT_FOUND, "No model named"),
    ({"semi_structured_2_4": True, "ratio": 0.4}, grpc.StatusCode.INVALID_ARGUMENT, "ratio 0.5"),
])
def test_bad_input_is_refused_on_the_start_call(home, fields, code, text):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, app):
        with pytest.raises(grpc.RpcError) as err:
            pruning_pb2_grpc.PruningStub(channel).StartPrune(request(home, **fields))
        assert err.value.code() == code and text in err.value.details()
        assert app.jobs.list() == []


def test_model_in_use_by_another_job_is_refused(home):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, app):
        release = threading.Event()
        blocker = app.jobs.start(START_PRUNE, lambda ctx: release.wait(60) and {}, writes=entries("models", "tiny"))
        try:
            with pytest.raises(grpc.RpcError) as err:
                pruning_pb2_grpc.PruningStub(channel).StartPrune(request(home))
            assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert blocker.id in err.value.details()
        finally:
            release.set()


def test_list_strategies_includes_registered_importance(home, custom_importance):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, _app):
        resp = pruning_pb2_grpc.PruningStub(channel).ListStrategies(pb.ListStrategiesRequest())
    assert list(resp.strategies) == ["magnitude", "taylor", "lottery", "structured", "reverse"]
    assert "reverse" in resp.importances and "taylor" in resp.importances


def test_host_paths_are_resolved_field_by_field_and_a_bad_one_is_named(tmp_path):
    """with_host_paths, which the service applies before a job starts: each text file field becomes
    its real path inside the data roots, and a path that is refused names its own field."""
    fields = ("calibration_path", "recovery_path", "eval_path")
    root = tmp_path / "data"
    root.mkdir()
    (tmp_path / "via").symlink_to(root, target_is_directory=True)
    for field in fields:
        (root / f"{field}.txt").write_text("text")
    spec = PruneSpec(name="tiny", output_name="out", strategy="magnitude", ratio=0.5,
                     **{f: str(tmp_path / "via" / f"{f}.txt") for f in fields})
    paths = PathPolicy.create(tmp_path / "home", roots=[str(root)])
    resolved = spec.with_host_paths(paths)
    assert [getattr(resolved, f) for f in fields] == [str(root / f"{f}.txt") for f in fields]
    for field in fields:
        with pytest.raises(errors.InvalidArgument, match=f"^The {field} 'rel.txt' is not absolute"):
            dataclasses.replace(spec, **{field: "rel.txt"}).with_host_paths(paths)
    assert dataclasses.replace(spec, eval_path="").with_host_paths(paths).eval_path == ""
