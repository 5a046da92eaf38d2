"""Data-parallel lottery and recovery training (#18): ranks under torchrun, gloo on CPU
(apt_model.modeling.distributed), through run_prune (no gRPC here)."""

from __future__ import annotations

import time

import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.modeling import trainlog
from apt_model.modeling.io import load_model
from apt_model.store import Store
from apt_model.testing import CancelAtStep, JobRecorder, assert_same_curve, rank_pids

from apt_prune.measure import prunable_linears
from apt_prune.prune import run_prune, training_device
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
    assert {r.get("sharding") for r in rows2} == {"fsdp"} and {r.get("sharding") for r in rows1} == {None}
    assert two["after"]["perplexity"] == pytest.approx(one["after"]["perplexity"], rel=1e-4)
    assert two["ratio_achieved"] == one["ratio_achieved"]


def test_two_fsdp_ranks_run_the_lottery_rounds_as_one_process(home):
    """--sharding fsdp for lottery rounds: each round trains a sharded copy, every rank gets the whole
    weights back and ranks them globally by magnitude, the rewind point is gathered whole at its step:
    the 20 steps of two rounds, the masks and the rewound weights are one process's."""
    kw = dict(strategy="lottery", lottery_rounds=2, lottery_steps=10, rewind_step=3, recovery_steps=0, ratio=0.6)
    store = Store(home)
    one = run_prune(store, _spec(home, output_name="one", **kw), JobRecorder())
    two = run_prune(store, _spec(home, output_name="two", workers=2, sharding="fsdp", **kw), JobRecorder())
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)
    assert {r.get("sharding") for r in rows2} == {"fsdp"}  # every round's steps trained sharded
    assert two["lottery"] == one["lottery"] and two["ratio_achieved"] == one["ratio_achieved"]
    w1, w2 = (_prunable_weights(store, n) for n in ("one", "two"))
    for name, weight in w1.items():
        assert torch.equal(w2[name] == 0, weight == 0), f"{name}: the masks differ"
        torch.testing.assert_close(w2[name], weight, rtol=1e-4, atol=1e-6)


def _prunable_weights(store: Store, name: str) -> dict[str, torch.Tensor]:
    return {n: m.weight.detach() for n, m in prunable_linears(load_model(store.model(name).path)).items()}


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


def test_nodes_split_the_batch_with_the_workers_and_must_train_something(home):
    """nodes > 1 is a PyTorchJob (test_multi_node.py): the spec takes it, each of the workers x
    nodes ranks trains an equal share of the batch, and a run that trains nothing is refused."""
    with pytest.raises(errors.InvalidArgument, match=r"batch_size \(6\) must be a multiple of workers x nodes \(4\)"):
        _spec(home, batch_size=6, workers=2, nodes=2)
    spec = _spec(home, batch_size=8, workers=2, nodes=2)
    assert (spec.workers, spec.nodes) == (2, 2)
    with pytest.raises(errors.InvalidArgument, match=r"nodes \(2\) splits lottery and recovery training") as info:
        _spec(home, nodes=2, recovery_steps=0, recovery_path="")
    assert info.value.violations[0][0] == "nodes"


def test_device_cuda_trains_on_the_gpu_and_auto_on_the_cpu(home):
    """pruning trained on the CPU before it had a device: auto keeps that; cuda needs a GPU."""
    assert training_device("auto") == training_device("cpu") == "cpu"
    with pytest.raises(errors.InvalidArgument, match="Unknown device 'tpu'; use auto, cpu or cuda") as info:
        _spec(home, device="tpu")
    assert info.value.violations[0][0] == "device"
    if torch.cuda.is_available():
        assert training_device("cuda") == "cuda"
        return
    with pytest.raises(errors.FailedPrecondition, match="no CUDA GPU is visible"):
        run_prune(Store(home), _spec(home, output_name="gpu", device="cuda"), JobRecorder())
    assert not Store(home).exists("models", "gpu")
