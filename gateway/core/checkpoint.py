"""Training checkpoints under ``APT_HOME/checkpoints/<name>/``, written atomically.

A checkpoint holds everything needed to continue the exact same loss curve: weights,
AdamW state, the step reached, the loss history, the run's settings and its tokenizer.
Batches and the learning rate are functions of the step alone (see ``train.py``), so
nothing else has to be saved.
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from apt_model import errors
from apt_model.store import Store, validate_name

STATE_FILE = "state.pt"
TOKENIZER_DIR = "tokenizer"


def checkpoint_dir(store: Store, name: str) -> Path:
    validate_name(name)
    return store.root / "checkpoints" / name


@dataclass
class Checkpoint:
    step: int
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any]
    config: dict[str, Any]  # the model's HF config
    spec: dict[str, Any]  # the TrainSpec fields that shape the loss curve
    history: list[list[float]]  # [step, train loss, lr, step seconds, total gradient norm]
    val_history: list[list[float]]  # [step, validation loss]
    tokens_seen: int
    elapsed_seconds: float
    block_norms: list = field(default_factory=list)  # [step, [gradient norm of each block]]


def exists(store: Store, name: str) -> bool:
    return (checkpoint_dir(store, name) / STATE_FILE).is_file()


def save_tokenizer(store: Store, name: str, tokenizer) -> None:
    """Keep the run's tokenizer beside its checkpoints (written once, at the start)."""
    folder = checkpoint_dir(store, name)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tok-{uuid.uuid4().hex[:8]}"
    tokenizer.save_pretrained(str(tmp))
    target = folder / TOKENIZER_DIR
    if target.exists():
        shutil.rmtree(target)
    os.rename(tmp, target)


def load_tokenizer(store: Store, name: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint_dir(store, name) / TOKENIZER_DIR))


def save(store: Store, name: str, ckpt: Checkpoint) -> Path:
    folder = checkpoint_dir(store, name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / STATE_FILE
    tmp = folder / f".{STATE_FILE}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as fh:
        torch.save(ckpt.__dict__, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)  # a crash mid-save leaves the previous checkpoint intact
    return target


def load(store: Store, name: str) -> Checkpoint:
    path = checkpoint_dir(store, name) / STATE_FILE
    if not path.is_file():
        raise errors.FailedPrecondition(
            f"There is no checkpoint of {name!r} to resume (looked in {path.parent}); start without --resume.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, OSError, EOFError) as exc:
        raise errors.DataLoss(
            f"The checkpoint {path} is unreadable ({exc}); remove {path.parent} and train from the start.") from exc
    return Checkpoint(**data)


def remove(store: Store, name: str) -> None:
    shutil.rmtree(checkpoint_dir(store, name), ignore_errors=True)
