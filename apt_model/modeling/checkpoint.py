"""Resumable training-state checkpoints: one format and one set of resume/overwrite rules for
every training service (core ``train``, distillation, and the coming plugins).

``APT_HOME/checkpoints/<kind>/<name>/`` holds ``state.pt`` (the states the service saves —
weights, optimiser, ... — plus the step, the settings that shape the loss curve, the
training log so far and the RNG states), ``meta.json`` (step and settings, for people and
for the start check) and, when the run trains its own, ``tokenizer/``. Each file is written
beside itself, flushed and renamed, so a crash leaves the previous checkpoint whole.

The rules, the same for every service:
- ``resume`` with no checkpoint: refused;
- a checkpoint but neither ``resume`` nor ``overwrite``: refused (the work is not thrown away
  silently); ``overwrite`` discards it;
- ``resume`` with settings that differ from the checkpointed run's: refused, naming them.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from apt_model import errors
from apt_model.store import Store, validate_name

STATE_FILE = "state.pt"
META_FILE = "meta.json"
TOKENIZER_DIR = "tokenizer"


def _plain(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as JSON would give them back (tuples as lists, unknown types as str)."""
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


class RunCheckpoint:
    """The checkpoint of the run that writes model ``name`` for a service of ``kind``."""

    def __init__(self, store: Store, kind: str, name: str):
        validate_name(kind)
        validate_name(name)  # before a path is built from it
        self.name = name
        self.folder = store.root / "checkpoints" / kind / name

    def step(self) -> int | None:
        """The step of the checkpoint, or None when there is none."""
        if not (self.folder / STATE_FILE).is_file() or not (self.folder / META_FILE).is_file():
            return None
        return int(self.meta()["step"])

    def meta(self) -> dict[str, Any]:
        """``meta.json``: the checkpoint's step and the settings of its run (what ``load`` compares)."""
        return json.loads((self.folder / META_FILE).read_text())

    def check_start(self, *, resume: bool, overwrite: bool) -> None:
        """Refuse a start that would resume nothing or silently discard a checkpoint."""
        step = self.step()
        if resume and step is None:
            earlier = self.folder.parent.parent / self.name  # checkpoints/<name>/: before they were per kind
            if earlier.is_dir() and any(earlier.glob("*.pt")):
                raise errors.FailedPrecondition(
                    f"There is no checkpoint of {self.name!r} to resume: APT_HOME/checkpoints/{self.name}/ holds one "
                    "written by an earlier version (before checkpoints were kept per operation), which this "
                    "version cannot continue. Start again without --resume (delete that folder to free its space).")
            raise errors.FailedPrecondition(
                f"There is no checkpoint of {self.name!r} to resume; start without --resume.")
        if step is not None and not resume and not overwrite:
            raise errors.FailedPrecondition(
                f"An unfinished run of {self.name!r} has a checkpoint at step {step}; pass --resume to continue "
                f"it, or --overwrite to discard it and start over.")

    def save(self, step: int, states: dict[str, Any], settings: dict[str, Any], log: list[dict]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        state = {"states": states, "step": step, "settings": _plain(settings), "log": log,
                 "rng_cpu": torch.get_rng_state(),
                 "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
        self._write(STATE_FILE, lambda fh: torch.save(state, fh))
        meta = json.dumps({"step": step, "settings": state["settings"]}, indent=2).encode()
        self._write(META_FILE, lambda fh: fh.write(meta))

    def load(self, settings: dict[str, Any]) -> tuple[int, dict[str, Any], list[dict]]:
        """(step, the saved states, the log so far) — refused when ``settings`` differ from the
        checkpointed run's; the RNG states are restored."""
        if not (self.folder / STATE_FILE).is_file():
            raise errors.FailedPrecondition(
                f"There is no checkpoint of {self.name!r} to resume; start without --resume.")
        state = self.read()
        now, then = _plain(settings), state["settings"]
        changed = sorted(k for k in now.keys() | then.keys() if now.get(k) != then.get(k))
        if changed:
            raise errors.FailedPrecondition(
                f"Cannot resume {self.name!r}: it was checkpointed with different settings ("
                + "; ".join(f"{k}: {then.get(k)!r} then, {now.get(k)!r} now" for k in changed)
                + "). Use the same settings, or start over with --overwrite.")
        torch.set_rng_state(state["rng_cpu"])
        if state["rng_cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        step = int(state["step"])
        return step, state["states"], list(state["log"])[:step]

    def resume_or_start(self, resume: bool, overwrite: bool, settings: dict[str, Any], modules: dict[str, Any],
                        *, main: bool, report, label: str = "") -> tuple[int, list[dict], dict | None]:
        """(first step, training log so far, optimizer state): when ``resume``, the checkpoint's, with
        each of ``modules`` (its key in the saved states -> module) loaded and the step reported; the
        optimizer state is the caller's to load once its parameters are final (FSDP's shards). Else
        a fresh start, a stale checkpoint removed by the main rank on ``overwrite``."""
        if resume:
            step, states, log = self.load(settings)
            for key, module in modules.items():
                module.load_state_dict(states[key])
            report(message=f"{label}resumed from step {step}")
            return step, log, states["optimizer"]
        if overwrite and main:
            self.remove()
        return 0, [], None

    def read(self) -> dict[str, Any]:
        """The saved state as it is (states, step, settings, log, RNG states), nothing restored:
        for a reader beside the run (advanced-debugging's probe) as well as for ``load``."""
        path = self.folder / STATE_FILE
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file fails anywhere in the unpickler
            raise errors.DataLoss(
                f"The checkpoint {path} cannot be read ({exc}); start over with --overwrite.") from exc

    def save_tokenizer(self, tokenizer) -> None:
        """Keep the run's own tokenizer beside its checkpoints (written once, at the start)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".tok-{uuid.uuid4().hex[:8]}"
        tokenizer.save_pretrained(str(tmp))
        target = self.folder / TOKENIZER_DIR
        if target.exists():
            shutil.rmtree(target)
        os.rename(tmp, target)

    def load_tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(self.folder / TOKENIZER_DIR))

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    def _write(self, name: str, write) -> Path:
        target = self.folder / name
        tmp = self.folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)  # a crash mid-save leaves the previous file intact
        return target
