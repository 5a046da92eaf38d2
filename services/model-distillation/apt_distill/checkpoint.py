"""Resumable checkpoints of a distillation run, kept outside the model namespace.

``APT_HOME/checkpoints/distill/<output>/state.pt`` holds the student, the learned
projections, optimiser, scheduler, step and RNG states, and a fingerprint of the spec so
a resume with different settings is refused rather than silently mixing two runs. The
file is written beside itself and renamed, so a crash leaves the previous checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch

from apt_model import errors
from apt_model.store import Store

from apt_distill.spec import DistillSpec

# Settings that may change between the interrupted run and its resume.
_FREE_FIELDS = ("device", "eval_every", "checkpoint_every")


def checkpoint_dir(store: Store, output_name: str) -> Path:
    store.path("models", output_name)  # validates the name before a path is built from it
    return store.root / "checkpoints" / "distill" / output_name


def fingerprint(spec: DistillSpec) -> str:
    data = {k: v for k, v in spec.lineage().items() if k not in _FREE_FIELDS}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def existing_step(store: Store, output_name: str) -> int | None:
    """The step of the checkpoint for ``output_name``, or None when there is none."""
    meta = checkpoint_dir(store, output_name) / "meta.json"
    if not meta.is_file():
        return None
    return int(json.loads(meta.read_text())["step"])


def save(store: Store, spec: DistillSpec, step: int, student, objective, optimizer, scheduler,
         log: list[dict] | None = None) -> None:
    folder = checkpoint_dir(store, spec.output_name)
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "fingerprint": fingerprint(spec),
        "student": student.state_dict(),
        "objective": objective.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = folder / "state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, folder / "state.pt")
    meta_tmp = folder / "meta.json.tmp"
    meta_tmp.write_text(json.dumps({"step": step, "fingerprint": state["fingerprint"],
                                    "parameters": spec.lineage(), "log": log or []}, indent=2, default=str))
    os.replace(meta_tmp, folder / "meta.json")


def load(store: Store, spec: DistillSpec, student, objective, optimizer, scheduler) -> int:
    """Restore every state from the checkpoint; returns the step to continue from."""
    path = checkpoint_dir(store, spec.output_name) / "state.pt"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError) as exc:
        raise errors.DataLoss(
            f"The checkpoint {path} cannot be read ({exc}); start over with --overwrite.") from exc
    if state["fingerprint"] != fingerprint(spec):
        raise errors.FailedPrecondition(
            f"The checkpoint of {spec.output_name!r} was made with different settings; resume with the "
            f"same teacher, student, strategies, data and hyper-parameters (see {path.parent / 'meta.json'}), "
            "or start over with --overwrite.")
    student.load_state_dict(state["student"])
    objective.load_state_dict(state["objective"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return int(state["step"])


def load_log(store: Store, output_name: str) -> list[dict]:
    """The training_log.jsonl rows of the interrupted run (kept beside its checkpoint)."""
    meta = checkpoint_dir(store, output_name) / "meta.json"
    return json.loads(meta.read_text()).get("log", []) if meta.is_file() else []


def remove(store: Store, output_name: str) -> None:
    shutil.rmtree(checkpoint_dir(store, output_name), ignore_errors=True)
