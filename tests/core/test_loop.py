"""The shared training loop, checkpoint and held-out split (apt_model.modeling.loop,
.checkpoint, .heldout): the rules every training service now gets from one place."""

from __future__ import annotations

import math
import os

import pytest
import torch

from apt_model import errors
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.heldout import held_out
from apt_model.modeling.loop import Loop
from apt_model.runtime import joblog
from apt_model.runtime.jobs import JobContext, JobManager, JobState
from apt_model.testing import ECHO_JOB, JobRecorder

torch.set_num_threads(1)


class Blocks(torch.nn.Module):
    """Two linear blocks in a ModuleList (what trainlog reads per-block norms from)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4), torch.nn.Linear(4, 1)])

    def forward(self, x):
        return self.layers[1](torch.tanh(self.layers[0](x)))


DATA = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
TARGET = DATA.sum(dim=1, keepdim=True)


def _loop(model, ctx=None, **kw) -> Loop:
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    return Loop(ctx or JobRecorder(), model, opt, lambda step: 0.1, kw.pop("max_steps", 6), 8, **kw)


def _forward(model, rows_per_micro: int = 8):
    def forward(step: int, micro: int):
        x = DATA[micro * rows_per_micro:(micro + 1) * rows_per_micro]
        y = TARGET[micro * rows_per_micro:(micro + 1) * rows_per_micro]
        return {"loss": torch.nn.functional.mse_loss(model(x), y)}
    return forward


def test_accumulated_micro_batches_make_the_same_update_as_one_batch():
    whole, halves = Blocks(), Blocks()
    _loop(whole, max_steps=3, grad_clip=0).run(0, _forward(whole))  # no clipping: it would hide a scale error
    _loop(halves, max_steps=3, grad_clip=0, grad_accum=2).run(0, _forward(halves, rows_per_micro=4))
    for a, b in zip(whole.parameters(), halves.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_every_step_is_logged_with_its_lr_norms_and_evaluations():
    model = Blocks()
    loop = _loop(model, max_steps=12, eval_every=5, evaluate=lambda: {"val_loss": 1.5}, log_extra={"phase": "p"})
    assert loop.run(0, _forward(model)) == 12
    assert [r["step"] for r in loop.log] == list(range(1, 13))
    assert all(math.isfinite(r["grad_norm"]) and r["lr"] == 0.1 and r["phase"] == "p" for r in loop.log)
    assert [r["step"] for r in loop.log if "val_loss" in r] == [5, 10, 12]  # and always at the end
    assert [r["step"] for r in loop.log if "block_grad_norms" in r] == [1, 10]
    assert loop.log[-1]["loss"] < loop.log[0]["loss"]


def test_a_non_finite_loss_stops_the_run_naming_the_step_and_what_to_do():
    model = Blocks()

    def forward(step, micro):
        return {"loss": torch.tensor(float("nan")) if step == 2 else _forward(model)(step, micro)["loss"]}

    with pytest.raises(errors.FailedPrecondition, match=r"train: the loss became nan at step 3; lower the"):
        _loop(model).run(0, forward)


def test_cancel_checkpoints_the_work_done_and_resumes_where_it_stopped():
    model, saved = Blocks(), []
    loop = _loop(model, ctx=JobRecorder(cancel_after=4), checkpoint=saved.append, checkpoint_every=3)
    with pytest.raises(errors.Cancelled):
        loop.run(0, _forward(model))
    assert saved == [3, 4]  # every 3 steps, then the cancel after step 4
    saved.clear()
    with pytest.raises(errors.Cancelled):  # cancelled before any step: nothing new to keep
        _loop(model, ctx=JobRecorder(cancel_after=0), checkpoint=saved.append).run(4, _forward(model))
    assert saved == []
    assert _loop(model, checkpoint=saved.append).run(4, _forward(model)) == 6


def test_the_time_limit_stops_early():
    model = Blocks()
    loop = _loop(model, max_steps=50, max_seconds=0.0)
    assert loop.run(0, _forward(model)) == 1 and loop.stopped_early


def test_checkpoint_start_rules(tmp_path):
    from apt_model.store import Store

    ck = RunCheckpoint(Store(tmp_path), "train", "m")
    with pytest.raises(errors.FailedPrecondition, match="no checkpoint of 'm' to resume"):
        ck.check_start(resume=True, overwrite=False)
    ck.check_start(resume=False, overwrite=False)  # nothing there: a plain start is fine
    ck.save(7, {"w": torch.ones(2)}, {"lr": 0.1, "seq": (1, 2)}, [{"step": i} for i in range(1, 9)])
    with pytest.raises(errors.FailedPrecondition, match="checkpoint at step 7; pass --resume"):
        ck.check_start(resume=False, overwrite=False)
    ck.check_start(resume=True, overwrite=False)
    ck.check_start(resume=False, overwrite=True)
    step, states, log = ck.load({"lr": 0.1, "seq": [1, 2]})  # a tuple comes back as a list: the same
    assert step == 7 and torch.equal(states["w"], torch.ones(2)) and len(log) == 7
    with pytest.raises(errors.FailedPrecondition, match=r"different settings \(lr: 0.1 then, 0.2 now\)"):
        ck.load({"lr": 0.2, "seq": [1, 2]})
    with pytest.raises(errors.FailedPrecondition, match="extra"):
        ck.load({"lr": 0.1, "seq": [1, 2], "extra": 1})


def test_a_checkpoint_of_an_earlier_version_is_named_not_ignored(tmp_path):
    from apt_model.store import Store

    earlier = tmp_path / "checkpoints" / "old"  # where core train kept checkpoints before 2026-12-04
    earlier.mkdir(parents=True)
    torch.save({"step": 3}, earlier / "state.pt")
    with pytest.raises(errors.FailedPrecondition, match=r"APT_HOME/checkpoints/old/ holds one written by an earlier"):
        RunCheckpoint(Store(tmp_path), "train", "old").check_start(resume=True, overwrite=False)


def test_a_checkpoint_restores_the_rng_and_a_torn_one_is_data_loss(tmp_path):
    from apt_model.store import Store

    ck = RunCheckpoint(Store(tmp_path), "distill", "m")
    torch.manual_seed(3)
    ck.save(1, {}, {}, [])
    expected = torch.rand(3)
    torch.manual_seed(99)
    ck.load({})
    assert torch.equal(torch.rand(3), expected)
    (ck.folder / "state.pt").write_bytes(b"torn")
    with pytest.raises(errors.DataLoss, match="cannot be read"):
        ck.load({})


@pytest.mark.parametrize("kind,name", [("train", "../escape"), ("../x", "m"), ("train", "a/b")])
def test_checkpoint_names_cannot_leave_the_checkpoint_folder(tmp_path, kind, name):
    from apt_model.store import Store

    with pytest.raises(errors.InvalidArgument):
        RunCheckpoint(Store(tmp_path), kind, name)


def test_held_out_split():
    assert held_out(1000, 0.05, min_held=129, min_train=129) == 129  # at least a sequence
    assert held_out(1000, 0.0, min_held=129, min_train=129) == 0
    assert held_out(1000, 0.1, min_held=1, min_train=1, max_held=64) == 64
    assert held_out(2, 0.1, min_held=1, min_train=1) == 1
    with pytest.raises(errors.InvalidArgument, match="1 blocks: too few for a training part of 1 and a held-out"):
        held_out(1, 0.1, min_held=1, min_train=1, unit="blocks")


def test_a_job_of_any_service_keeps_its_running_log_and_old_logs_are_dropped(tmp_path, monkeypatch):
    """Every training loop run as a job of a service (plugins included, with no code of their own
    for it) appends each step to APT_HOME/job-logs/<service>/<hex>.jsonl, which
    advanced-debugging reads by job id; each service keeps its joblog.KEPT newest logs."""
    monkeypatch.setattr(joblog, "KEPT", 3)
    home = tmp_path / "home"
    old = home / joblog.FOLDER / "model-pruning"
    old.mkdir(parents=True)
    for i in range(4):  # four earlier jobs' logs, oldest first
        (old / f"{i:016x}.jsonl").write_text("{}\n")
        os.utime(old / f"{i:016x}.jsonl", (1_000_000 + i, 1_000_000 + i))
    manager = JobManager("model-pruning", home=home)
    model = Blocks()
    job = manager.start(ECHO_JOB, lambda ctx: {"text": "trained", "steps": _loop(model, ctx).run(0, _forward(model))})
    done = list(manager.watch(job.id))[-1]
    assert done.state is JobState.SUCCEEDED, done.error_message
    rows = joblog.read_job_log(joblog.job_log_path(home, job.id))
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6] and all(math.isfinite(r["loss"]) for r in rows)
    assert sorted(p.name for p in old.iterdir()) == sorted(
        ["0000000000000002.jsonl", "0000000000000003.jsonl", f"{job.id.split(':')[1]}.jsonl"])
    manager.shutdown()
    assert JobContext(JobManager("tools"), "tools:1").running_log is None  # no store, no log
