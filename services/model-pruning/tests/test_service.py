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
    recovery step, numbered on; a prune that trains nothing has no log. The same rows are in the
    job's running log, which advanced-debugging scans by job id."""
    from apt_model.modeling import trainlog
    from apt_model.runtime import joblog

    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, _app):
        stub = pruning_pb2_grpc.PruningStub(channel)
        lot_id = stub.StartPrune(request(
            home, output_name="lot", strategy="lottery", lottery_rounds=2, lottery_steps=4, rewind_step=2,
            recovery_steps=5, recovery_path=corpus(home))).id
        done = wait_job(channel, lot_id, timeout=240)
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
    assert joblog.read_job_log(joblog.job_log_path(home, lot_id)) == rows


@pytest.mark.parametrize("fields, code, text", [
    ({"ratio": 1.0}, grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
    ({"ratio": 0.0}, grpc.StatusCode.INVALID_ARGUMENT, "ratio is required"),  # zero = not given
    ({"ratio": -0.2}, grpc.StatusCode.INVALID_ARGUMENT, "between 0 and 1"),
    ({"strategy": "random"}, grpc.StatusCode.INVALID_ARGUMENT, "Unknown strategy"),
    ({"strategy": "structured", "ratio": 0.1}, grpc.StatusCode.INVALID_ARGUMENT, "rounds to 0"),
    ({"name": "nope"}, grpc.StatusCode.NOT_FOUND, "No model named"),
    ({"semi_structured_2_4": True, "ratio": 0.4}, grpc.StatusCode.INVALID_ARGUMENT, "ratio 0.5"),
    ({"batch_size": 6, "workers": 4}, grpc.StatusCode.INVALID_ARGUMENT, "batch_size (6) must be a multiple of workers"),
    ({"nodes": 2}, grpc.StatusCode.INVALID_ARGUMENT, "nodes (2) splits lottery and recovery training"),
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


def _spec(**fields) -> PruneSpec:
    fields = {"name": "tiny", "strategy": "magnitude", "ratio": 0.5, **fields}
    return PruneSpec.from_request(pb.PruneRequest(**fields))


@pytest.mark.parametrize("fields, message", [
    ({"name": "../x"}, "Invalid model name '../x'"),
    ({"output_name": "../o"}, "Invalid model name '../o'"),
    ({"strategy": " "}, "Give a strategy: magnitude, taylor, lottery or structured."),
    ({"strategy": "random"}, "Unknown strategy 'random'; choose one of: magnitude, taylor, lottery, structured."),
    ({"ratio": 1.5}, "ratio must be a fraction strictly between 0 and 1 (the share removed), got 1.5; "
                     "e.g. 0.5 removes half."),
    ({"ratio": float("nan")}, "ratio must be a fraction strictly between 0 and 1"),
    ({"ratio": 1.0}, "ratio must be a fraction strictly between 0 and 1 (the share removed), got 1.0"),
    ({"ratio": 0.0}, "ratio must be a fraction strictly between 0 and 1 (the share removed), got 0.0"),
    ({"output_name": "tiny"}, "output_name must differ from the pruned model's name; the input is never modified."),
    ({"scope": "wide"}, "Unknown scope 'wide'; use global or layer."),
    ({"importance": "taylor"},
     "importance applies to the structured strategy; strategy 'magnitude' already names its score."),
    ({"strategy": "lottery", "importance": "taylor"},
     "The lottery strategy ranks by magnitude; leave importance empty."),
    ({"strategy": "structured", "importance": "fancy"},
     "Unknown importance 'fancy'; choose one of: magnitude, taylor."),
    ({"strategy": "structured", "semi_structured_2_4": True},
     "The 2:4 pattern is unstructured sparsity; it does not combine with structured."),
    ({"semi_structured_2_4": True, "ratio": 0.4},
     "The 2:4 pattern removes exactly half the weights; use ratio 0.5, not 0.4."),
    ({"hidden_ratio": 0.25}, "hidden_ratio applies to the structured strategy only."),
    ({"strategy": "structured", "prune_heads": True, "hidden_ratio": 0.25},
     "hidden_ratio is set but the width is not pruned: set prune_hidden too (or leave all of prune_heads, "
     "prune_mlp and prune_hidden unset to prune all three)."),
    ({"strategy": "structured", "hidden_ratio": 1.5},
     "hidden_ratio must be a fraction strictly between 0 and 1, got 1.5; leave it 0 to use ratio."),
    ({"strategy": "structured", "hidden_ratio": float("nan")}, "hidden_ratio must be a fraction strictly between"),
    ({"strategy": "structured", "hidden_ratio": 1.0}, "hidden_ratio must be a fraction strictly between 0 and 1, got 1.0"),
    ({"lottery_round_ratio": 1.5}, "lottery_round_ratio must be in (0, 1), got 1.5."),
    ({"lottery_round_ratio": 1.0}, "lottery_round_ratio must be in (0, 1), got 1.0."),
    ({"lottery_round_ratio": 0.2, "lottery_rounds": 2},
     "Give lottery_rounds or lottery_round_ratio, not both: one sets the other."),
    ({"lottery_round_ratio": 0.6},
     "lottery_round_ratio 0.6 exceeds the final ratio 0.5; the first round would overshoot."),
    ({"learning_rate": 2.0}, "learning_rate must be in (0, 1), got 2.0."),
    ({"learning_rate": 1.0}, "learning_rate must be in (0, 1), got 1.0."),
    ({"learning_rate": 1.5}, "learning_rate must be in (0, 1), got 1.5."),
])
def test_each_refusal_of_the_spec_names_the_field_and_the_fix(fields, message):
    """PruneSpec.from_request alone (the service runs it on every start): the whole message, as a
    caller reads it."""
    with pytest.raises(errors.InvalidArgument) as err:
        _spec(**fields)
    assert err.value.message.startswith(message), err.value.message


def test_a_spec_fills_the_documented_defaults_and_keeps_what_was_given():
    spec = _spec(strategy="  Magnitude ", scope=" LAYER ")
    assert (spec.output_name, spec.strategy, spec.scope, spec.importance) == \
        ("tiny-magnitude50", "magnitude", "layer", "magnitude")
    assert (spec.lottery_rounds, spec.lottery_round_ratio, spec.lottery_steps, spec.rewind_step) == (3, 0.0, 50, 5)
    assert (spec.learning_rate, spec.batch_size, spec.seq_len, spec.seed, spec.overwrite) == (3e-4, 8, 128, 0, False)
    assert (spec.prune_heads, spec.prune_mlp, spec.prune_hidden, spec.hidden_ratio) == (True, True, True, 0.0)
    assert (spec.scope, _spec().scope) == ("layer", "global")
    assert _spec(ratio=0.9).output_name == "tiny-magnitude90"
    assert _spec(strategy="lottery", recovery_path="/data/c.txt", lottery_round_ratio=0.5).lottery_round_ratio == 0.5
    given = _spec(output_name="out", ratio=0.25, semi_structured_2_4=False, lottery_rounds=2, lottery_steps=9,
                  rewind_step=3, recovery_steps=4, recovery_dataset="corpus", eval_dataset="evalset",
                  eval_path="/data/e.txt", learning_rate=0.01, batch_size=2, seq_len=16, seed=7, overwrite=True)
    assert (given.output_name, given.ratio, given.lottery_rounds, given.lottery_steps, given.rewind_step) == \
        ("out", 0.25, 2, 9, 3)
    assert (given.recovery_steps, given.recovery_dataset, given.eval_dataset, given.eval_path) == \
        (4, "corpus", "evalset", "/data/e.txt")
    assert (given.learning_rate, given.batch_size, given.seq_len, given.seed, given.overwrite) == \
        (0.01, 2, 16, 7, True)
    two_four = _spec(semi_structured_2_4=True)
    assert two_four.semi_structured_2_4 and two_four.importance == "magnitude"
    structured = _spec(strategy="structured", importance="taylor", calibration_path="/data/c.txt",
                       prune_hidden=True, hidden_ratio=0.25)
    assert (structured.importance, structured.prune_heads, structured.prune_hidden, structured.hidden_ratio) == \
        ("taylor", False, True, 0.25)
    assert _spec(strategy="structured").importance == "magnitude"
    by_ratio = _spec(strategy="lottery", recovery_path="/data/c.txt", lottery_round_ratio=0.2)
    assert (by_ratio.lottery_round_ratio, by_ratio.lottery_rounds) == (0.2, 3)
    assert _spec(strategy="lottery", importance="magnitude", recovery_path="/data/c.txt").importance == "magnitude"
    lineage = given.lineage()
    assert not {"name", "output_name", "overwrite"} & set(lineage) and lineage["ratio"] == 0.25
