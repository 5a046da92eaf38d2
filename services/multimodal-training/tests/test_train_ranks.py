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
from apt_model.testing import JobRecorder

from apt_multimodal.create import CreateSpec, all_modalities, create_dataset
from apt_multimodal.media import MediaSpec
from apt_multimodal.train import KIND, TrainSpec, run_train

SMALL = dict(max_steps=20, batch_size=4, learning_rate=3e-3, encoder_width=32, encoder_layers=1, patch_size=8,
             device="cpu", checkpoint_every=0, seed=3)


@pytest.fixture
def store(home, data) -> Store:
    """The test's store with dataset 'digits' (24 images, English and Chinese captions)."""
    store = Store(home)
    create_dataset(store, CreateSpec("digits", data / "digits" / "manifest.jsonl", all_modalities([]),
                                     MediaSpec(image_size=16)), JobRecorder())
    return store


def spec(name: str, **kw) -> TrainSpec:
    return TrainSpec(model="lm", dataset="digits", output_name=name, **{**SMALL, **kw})


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
    """workers is not one of the settings a resume must repeat."""
    assert spec("a", workers=2).settings() == spec("a").settings()
