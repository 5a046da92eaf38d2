"""training_log.jsonl: every optimiser step of a training run, stored in the model entry.

One JSON object per line, one line per step, in step order, nothing sampled:
``step``, ``loss``, ``lr``, ``grad_norm`` (total, before clipping), ``step_seconds``,
``tokens_per_s``; ``block_grad_norms`` (one per transformer block, every
``BLOCK_NORMS_EVERY`` steps and at the first step) and validation metrics (``val_loss``, ...)
on the steps that have them. Training services write it with ``write`` into the entry they
store; ``summary`` is what ``apt-model info --log`` prints.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any, Iterable

import torch

from apt_model.modeling.distributed import full_tensor

LOG_FILE = "training_log.jsonl"
BLOCK_NORMS_EVERY = 10
VALIDATION_KEYS = ("val_loss", "eval_ppl")  # core train and pruning; distillation
SPIKE_FACTOR = 3.0  # a loss above this many times the median of the 20 steps before is a spike


def wants_block_norms(step: int) -> bool:
    """Whether step ``step`` (1-based) records per-block gradient norms."""
    return step == 1 or step % BLOCK_NORMS_EVERY == 0


def transformer_blocks(model) -> list[torch.nn.Module]:
    """The transformer blocks: the longest ModuleList of the model (decoder layers, h, ...); what
    the per-block norms cover and what an FSDP run shards one by one."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def block_grad_norms(model) -> list[float]:
    """The L2 norm of the gradients of each transformer block's parameters (0.0 without grads)."""
    out = []
    for block in transformer_blocks(model):
        grads = [p.grad.detach().float() for p in block.parameters() if p.grad is not None]
        # an FSDP run's gradients are DTensors: each norm whole (a collective), not this rank's share
        norms = [full_tensor(g.norm()) for g in grads]
        out.append(float(torch.linalg.vector_norm(torch.stack(norms))) if grads else 0.0)
    return out


def row(step: int, loss: float, lr: float, grad_norm: float | None, seconds: float, tokens: int,
        block_norms: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    """One line of the log, the same fields for every training loop; ``tokens`` is what the
    step trained on, ``extra`` its validation values, loss terms or phase."""
    out = {"step": step, "loss": loss, "lr": lr, "grad_norm": grad_norm, "step_seconds": seconds,
           "tokens_per_s": tokens / seconds if seconds > 0 else 0.0, **extra}
    if block_norms is not None:
        out["block_grad_norms"] = block_norms
    return out


def write(folder: Path, rows: Iterable[dict[str, Any]]) -> Path:
    """Write the rows (already in step order) as ``folder/training_log.jsonl``."""
    path = Path(folder) / LOG_FILE
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, allow_nan=True) + "\n")
    return path


def read(folder: Path) -> list[dict[str, Any]]:
    path = Path(folder) / LOG_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Steps, first/last/lowest loss, the largest gradient norm, throughput, validation points
    and the loss spikes (step and loss) of a log."""
    if not rows:
        return {}
    losses = [r["loss"] for r in rows]
    lowest = min(((r["loss"], r["step"]) for r in rows if math.isfinite(r["loss"])), default=(math.nan, 0))
    speeds = [r["tokens_per_s"] for r in rows if "tokens_per_s" in r]
    norms = [(r["step"], r["grad_norm"]) for r in rows if r.get("grad_norm") is not None]
    spikes = []
    for i in range(5, len(losses)):
        before = statistics.median(losses[max(0, i - 20):i])
        if math.isfinite(losses[i]) and losses[i] > SPIKE_FACTOR * before:
            spikes.append({"step": rows[i]["step"], "loss": losses[i], "median_before": before})
    out: dict[str, Any] = {
        "steps": len(rows), "first_loss": losses[0], "last_loss": losses[-1],
        "min_loss": lowest[0], "min_loss_step": lowest[1],
        "tokens_per_s": statistics.median(speeds) if speeds else 0.0,
        "validation_points": sum(1 for r in rows if any(k in r for k in VALIDATION_KEYS)),
        "spikes": spikes,
    }
    if norms:
        step, norm = max(norms, key=lambda x: x[1])
        out.update(max_grad_norm=norm, max_grad_norm_step=step, last_grad_norm=norms[-1][1])
    return out
