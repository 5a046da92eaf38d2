"""StartTrain with --workers (#18): ranks under torchrun, gloo on CPU (apt_model.modeling.distributed).
Every rank draws the step's global batch and trains its share, so 2 ranks train the curve of 1."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.store import Store
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2 as pb
from apt_model.testing import CancelAtStep, JobRecorder, assert_same_curve

from apt_multimodal.create import CreateSpec, all_modalities, create_dataset
from apt_multimodal.media import MediaSpec
from apt_multimodal import model as mm
from apt_multimodal.train import KIND, TrainSpec, run_train

SMALL = dict(max_steps=20, batch_size=4, learning_rate=3e-3, encoder_width=32, encoder_layers=1, patch_size=8,
             device="cpu", checkpoint_every=0, seed=3)


def spec(name: str, **kw) -> TrainSpec:
    return TrainSpec(**{"model": "lm", "dataset": "digits", "output_name": name, **SMALL, **kw})


def rank_processes(folder: Path) -> list[int]:
    """Pids of processes still running in the run folder ``folder`` (torchrun and its ranks)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(folder).encode() in (proc / "cmdline").read_bytes():
                pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("stage", ["align", "full"])
def test_two_ranks_train_the_same_curve_as_one(store, stage):
    """Captions differ in length, so each rank holds a different number of labelled tokens: the
    loss is the global batch's token mean only if the ranks normalise by the global count."""
    one = run_train(store, spec("one", stage=stage), JobRecorder())
    ctx = JobRecorder()
    two = run_train(store, spec("two", stage=stage, workers=2), ctx)
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert [r["step"] for r in rows2] == list(range(1, 21))
    for a, b in zip(rows1, rows2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=1e-4)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    # each rank trained its share, not the whole batch (rounding may drop a token a step)
    assert two["tokens_seen"] == pytest.approx(one["tokens_seen"], rel=0.02)
    assert ctx.series("step")[-1] == 20  # rank 0's reports reached the job
    assert not rank_processes(store.root / ".runs" / f"{KIND}-two")


class CancelTimed(JobRecorder):
    """Cancels at the first relayed report of a step (rank 0 reports step 1 always) and keeps when."""

    def __init__(self):
        super().__init__(cancel_at_step=1)
        self.cancelled_at: float | None = None

    def report(self, progress=None, stage=None, message=None, eta_seconds=None, **metrics):
        super().report(progress, stage, message, eta_seconds, **metrics)
        if self.cancelled and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()


def test_cancel_stops_both_ranks_within_5_s_and_stores_nothing(store):
    ctx = CancelTimed()
    with pytest.raises(errors.Cancelled):
        run_train(store, spec("cut", workers=2, max_steps=100000), ctx)
    assert ctx.cancelled_at is not None and time.monotonic() - ctx.cancelled_at < 5
    assert not rank_processes(store.root / ".runs" / f"{KIND}-cut")
    assert not store.exists("models", "cut")
    assert RunCheckpoint(store, KIND, "cut").step() >= 1  # rank 0 kept the work done


def test_a_two_rank_checkpoint_resumes_on_one_rank():
    """workers, nodes and sharding are not among the settings a resume must repeat."""
    assert spec("a", workers=2, nodes=2, sharding="fsdp").settings() == spec("a").settings()


@pytest.mark.parametrize("stage", ["align", "full"])
def test_two_fsdp_ranks_train_the_same_curve_as_one(store, stage):
    """--sharding fsdp (FSDP2 fully_shard of the LM's and the vision tower's blocks, gloo on CPU):
    the 20 steps are one process's at the same global batch and seed (align: the LM's shards are
    frozen, only the encoder and projector train); the stored model is whole."""
    one = run_train(store, spec("one", stage=stage), JobRecorder())
    two = run_train(store, spec("two", stage=stage, workers=2, sharding="fsdp"), JobRecorder())
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-4)
    assert two["trainable_params"] == one["trainable_params"]
    stored, _ = mm.load(store.model("two").path)
    assert sum(p.numel() for p in stored.parameters()) == sum(
        p.numel() for p in mm.load(store.model("one").path)[0].parameters())


def test_a_checkpoint_resumes_across_shardings_and_world_sizes(store):
    """One process's checkpoint resumes on 2 FSDP ranks (its moments sharded on load), whose own
    checkpoint (gathered whole) resumes on one: each step is the uninterrupted run's. Compared over
    the first 30 steps: further on, the ranks' rounding (1e-7) grows as training does (chaotic)."""
    kw = dict(max_steps=100, stage="full", learning_rate=1e-3)
    with pytest.raises(errors.Cancelled):
        run_train(store, spec("cut", **kw), CancelAtStep(5))
    with pytest.raises(errors.Cancelled):
        run_train(store, spec("cut", workers=2, sharding="fsdp", resume=True, **kw), CancelAtStep(12))
    assert 12 <= RunCheckpoint(store, KIND, "cut").step() < 100
    resumed = run_train(store, spec("cut", resume=True, **kw), JobRecorder())
    run_train(store, spec("whole", **kw), JobRecorder())
    assert resumed["steps"] == 100
    rows, whole = (trainlog.read(store.model(n).path) for n in ("cut", "whole"))
    assert [r["step"] for r in rows] == list(range(1, 101))
    for a, b in zip(whole[:30], rows[:30]):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-3), f"step {b['step']}"


@pytest.mark.parametrize("sharding", ["ddp", "fsdp"])
def test_ranks_train_one_curve_when_a_rank_lacks_a_modality(home, data, sharding):
    """Digit images and 3 spoken digits: most steps, one rank's rows have no audio. DDP finds the
    idle tower's parameters unused; under FSDP that rank still runs the audio tower (on a stand-in
    clip, times 0), or the ranks' gradient reduce-scatters would not pair up. Either way the curve
    is one process's."""
    import json

    rows = [json.loads(line) for line in (data / "digits" / "manifest.jsonl").read_text().splitlines()]
    mixed = [{**r, "images": f"digits/{r['images']}"} for r in rows]
    mixed += [json.loads(line) for line in (data / "spoken" / "manifest.jsonl").read_text().splitlines()]
    mixed = [{**r, "audios": [f"spoken/{a}" for a in r["audios"]]} if "audios" in r else r for r in mixed]
    (data / "mixed.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in mixed))
    store = Store(home)
    create_dataset(store, CreateSpec("mixed", data / "mixed.jsonl", all_modalities([]), MediaSpec(image_size=16)),
                   JobRecorder())
    kw = dict(dataset="mixed", stage="full")
    run_train(store, spec("one", **kw), JobRecorder())
    run_train(store, spec("two", workers=2, sharding=sharding, **kw), JobRecorder())
    rows1, rows2 = (trainlog.read(store.model(n).path) for n in ("one", "two"))
    assert_same_curve(rows2, rows1, 20)


def test_an_unknown_sharding_is_refused_naming_the_field():
    req = pb.TrainRequest(model="lm", dataset="digits", output_name="x", workers=2, batch_size=4, sharding="zero3")
    with pytest.raises(errors.InvalidArgument, match="unknown sharding 'zero3'; choose one of ddp, fsdp") as info:
        TrainSpec.from_request(req)
    assert info.value.violations[0][0] == "sharding"
