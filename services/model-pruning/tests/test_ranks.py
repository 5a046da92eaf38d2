"""Data-parallel lottery and recovery training (#18): ranks under torchrun, gloo on CPU
(apt_model.modeling.distributed), through run_prune (no gRPC here)."""

from __future__ import annotations

import time

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.modeling import trainlog
from apt_model.store import Store
from apt_model.testing import CancelAtStep, JobRecorder, assert_same_curve, rank_pids

from apt_prune.prune import run_prune
from apt_prune.spec import PruneSpec


def _spec(home, **kw) -> PruneSpec:
    fields = dict(name="tiny", strategy="magnitude", ratio=0.5, seq_len=32, batch_size=4, seed=3,
                  recovery_steps=20, recovery_path=str(home / "corpus.txt"))
    fields.update(kw)
    return PruneSpec.from_request(pb.PruneRequest(**fields))


@pytest.mark.parametrize("kw", [
    dict(),
    dict(strategy="lottery", lottery_rounds=2, lottery_steps=4, rewind_step=2, recovery_steps=12),
], ids=["recovery", "lottery-and-recovery"])
def test_two_ranks_train_the_same_curve_as_one(home, kw):
    """--workers 2: each rank trains half of every global batch, and the 20 steps are those of one
    process at the same global batch and seed; rank 0 stores the model, nothing is left running."""
    store = Store(home)
    one = run_prune(store, _spec(home, output_name="one", **kw), JobRecorder())
    recorder = JobRecorder()
    two = run_prune(store, _spec(home, output_name="two", workers=2, **kw), recorder)
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)
    assert [r["phase"] for r in rows2] == [r["phase"] for r in rows1]
    assert two["recovery_loss_last"] == pytest.approx(one["recovery_loss_last"], rel=1e-4)
    assert two["after"]["perplexity"] == pytest.approx(one["after"]["perplexity"], rel=1e-4)
    assert two["ratio_achieved"] == one["ratio_achieved"]
    assert recorder.series("step")[-1] == kw.get("recovery_steps", 20)  # rank 0's reports reached the job
    assert not rank_pids(home / ".runs" / "prune-two")


@pytest.mark.parametrize("kw", [dict(), dict(strategy="structured")], ids=["unstructured", "structured"])
def test_two_fsdp_ranks_recover_the_same_curve_as_one(home, kw):
    """--sharding fsdp: recovery trains a sharded copy (FSDP2 fully_shard of each block, gloo on CPU)
    at one process's 20 steps; rank 0's model gets the trained weights back whole (an unstructured
    run's masks with them) and measures and stores what one process does."""
    store = Store(home)
    one = run_prune(store, _spec(home, output_name="one", **kw), JobRecorder())
    two = run_prune(store, _spec(home, output_name="two", workers=2, sharding="fsdp", **kw), JobRecorder())
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)
    assert two["after"]["perplexity"] == pytest.approx(one["after"]["perplexity"], rel=1e-4)
    assert two["ratio_achieved"] == one["ratio_achieved"]


def test_an_unknown_sharding_is_refused_naming_the_field(home):
    with pytest.raises(errors.InvalidArgument, match="unknown sharding 'zero3'; choose one of ddp, fsdp") as info:
        _spec(home, output_name="x", workers=2, sharding="zero3")
    assert info.value.violations[0][0] == "sharding"


def test_cancel_ends_both_ranks_within_5_s_and_stores_nothing(home):
    ctx = CancelAtStep(3)
    with pytest.raises(errors.Cancelled):
        run_prune(Store(home), _spec(home, output_name="cut", workers=2, recovery_steps=100000), ctx)
    assert time.monotonic() - ctx.cancelled_at < 5  # both ranks agreed on the cancel and exited
    assert not rank_pids(home / ".runs" / "prune-cut") and not Store(home).exists("models", "cut")


def test_a_batch_that_does_not_split_over_the_workers_is_refused_naming_the_field(home):
    with pytest.raises(errors.InvalidArgument, match=r"batch_size \(6\) must be a multiple of workers \(4\)") as info:
        _spec(home, batch_size=6, workers=4)
    assert info.value.violations[0][0] == "batch_size"
    assert _spec(home, batch_size=8, workers=4).workers == 4


def test_workers_for_a_run_that_trains_nothing_are_refused(home):
    with pytest.raises(errors.InvalidArgument, match=r"workers \(2\) splits lottery and recovery training") as info:
        _spec(home, workers=2, recovery_steps=0, recovery_path="")
    assert info.value.violations[0][0] == "workers"


def test_more_than_one_node_is_refused_as_not_built(home):
    with pytest.raises(errors.FailedPrecondition, match=r"nodes > 1\) of prune are not built.*--workers N") as info:
        _spec(home, nodes=2, workers=2)
    assert info.value.reason == "MULTI_NODE_NOT_BUILT"
    assert _spec(home, nodes=1).workers == 1
