"""Probe from a kept checkpoint: a core train run cancelled part-way keeps its checkpoint; the
probe reruns the steps after it and reproduces the loss curve an uninterrupted run logged, with
per-block statistics; a NaN planted in one block of the checkpoint is named as the first block
producing it, at the first rerun step; nothing else is a kept checkpoint."""

from __future__ import annotations

import json
import random
from pathlib import Path

import grpc
import pytest
import torch

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2 as pb
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store
from apt_model.testing import JobRecorder

PLUGIN_DIR = Path(__file__).resolve().parents[1]
STEPS = 30
TEXTS = ["Gradient flow shows which blocks learn and which do not.",
         "A loss spike is a batch, a learning rate or a bug; the log tells which.",
         "def step(x):\n    return x * 2\n"]


def _spec(store: Store, name: str):
    from gateway.core.train import TrainSpec

    return TrainSpec(name=name, dataset="pcorp", size="tiny", vocab_size=384, seq_len=32, batch_size=4,
                     max_steps=STEPS, eval_every=STEPS, checkpoint_every=0, device="cpu", seed=3).validate(store)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """'cut': core train cancelled part-way (its checkpoint kept); 'whole': the same run uninterrupted."""
    from gateway.core.train import run_train

    home = tmp_path_factory.mktemp("probe") / "home"
    store = Store(home)
    rng = random.Random(0)
    docs = [TEXTS[i % len(TEXTS)] + f" Note {i}." for i in range(40)]
    docs[7] = "".join(rng.choice("qxzjkvw0123456789#%&@") for _ in range(80))  # a garbage document
    with store.create("datasets", "pcorp", operation="test-corpus") as folder:
        (folder / "c.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    with pytest.raises(errors.Cancelled):
        run_train(store, _spec(store, "cut"), JobRecorder(cancel_after=12))
    run_train(store, _spec(store, "whole"), JobRecorder())
    return home


@pytest.fixture
def service(runs, tmp_path):
    import shutil

    home = tmp_path / "home"
    shutil.copytree(runs, home)
    data = tmp_path / "data"
    data.mkdir()
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data),)) as (channel, app):
        yield debugging_pb2_grpc.DebuggingStub(channel), plugin_pb2_grpc.JobsStub(channel), channel, home


def probe(stub, channel, **kw):
    done = wait_job(channel, stub.StartProbe(pb.ProbeRequest(device="cpu", **kw)).id, timeout=180)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    return typed_result(done)


def test_the_rerun_reproduces_the_uninterrupted_runs_curve_with_per_block_statistics(service):
    stub, _, channel, home = service
    start = RunCheckpoint(Store(home), "train", "cut").step()
    assert start is not None and 0 < start < STEPS
    result = probe(stub, channel, run="cut", steps=8)
    whole = {r["step"]: r for r in trainlog.read(Store(home).model("whole").path)}
    assert result.checkpoint_step == start and result.stopped == "" and result.first_nonfinite_block == -1
    assert [s.step for s in result.steps] == list(range(start + 1, min(start + 9, STEPS + 1)))
    for step in result.steps:
        assert step.loss == pytest.approx(whole[step.step]["loss"], rel=1e-4)
        assert step.grad_norm == pytest.approx(whole[step.step]["grad_norm"], rel=1e-3)
        assert len(step.blocks) == 2 and all(b.grad_norm > 0 and 0 < b.update_ratio < 1 for b in step.blocks)
        norms = whole[step.step].get("block_grad_norms")  # the loop logs them every 10 steps
        if norms:
            assert [b.grad_norm for b in step.blocks] == pytest.approx(norms, rel=1e-3)
    report = json.loads((Store(home).dataset(f"cut-probe-{start}").path / "probe.json").read_text())
    assert len(report["steps"]) == len(result.steps)
    assert RunCheckpoint(Store(home), "train", "cut").step() == start  # the checkpoint is untouched


def test_a_nan_planted_in_block_0_is_named_not_the_block_it_flows_into(service):
    stub, _, channel, home = service
    ckpt = RunCheckpoint(Store(home), "train", "cut")
    state = ckpt.read()
    key = next(k for k in state["states"]["model"] if ".layers.0.mlp.up_proj.weight" in k)
    state["states"]["model"][key][3, 5] = float("nan")
    torch.save(state, ckpt.folder / "state.pt")
    result = probe(stub, channel, run="cut", steps=5, output_name="nan-probe")
    assert "loss became nan" in result.stopped
    assert result.first_nonfinite_step == ckpt.step() + 1 and result.first_nonfinite_block == 0
    assert len(result.steps) == 1 and not result.steps[0].HasField("loss")
    assert [b.nonfinite for b in result.steps[0].blocks] == [True, True]  # it flows on; block 0 made it


@pytest.mark.parametrize("run,code", [("whole", grpc.StatusCode.NOT_FOUND), ("nobody", grpc.StatusCode.NOT_FOUND),
                                      ("../cut", grpc.StatusCode.INVALID_ARGUMENT)])
def test_only_a_kept_checkpoint_is_probed(service, run, code):
    stub, _, _, _ = service
    with pytest.raises(grpc.RpcError) as info:
        stub.StartProbe(pb.ProbeRequest(run=run))
    assert info.value.code() == code


def test_a_checkpoint_beyond_the_model_size_limit_is_refused_before_a_model_is_built(runs):
    from apt_debug import rerun

    ckpt, _, settings = rerun.kept_checkpoint(Store(runs), "cut")
    with pytest.raises(errors.ResourceExhausted):
        rerun.restore(ckpt.read()["states"], settings, "cpu", max_params=1000)
