"""A short training loop for recovery fine-tunes and lottery rounds.

AdamW with linear warm-up and cosine decay, gradient clipping at 1.0. Pruned weights stay
pruned: unstructured masks live in ``torch.nn.utils.prune`` forward hooks while training,
and structured pruning removed the weights outright.
"""

from __future__ import annotations

import time
from typing import Callable, Iterator

import torch

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext

WARMUP_FRACTION = 0.1
MIN_LR_FRACTION = 0.1


def train_steps(model, batches: Iterator[torch.Tensor], steps: int, lr: float, ctx: JobContext, *,
                stage: str, progress: tuple[float, float],
                on_step: Callable[[int], None] | None = None, log: list[dict] | None = None) -> list[float]:
    """Train ``model`` for ``steps`` optimiser steps; returns the loss of each step.

    ``progress`` is the (start, end) share of the job this phase covers; ``on_step(n)`` is
    called after step n (1-based), e.g. to take the lottery's rewind checkpoint. ``log``
    collects training_log.jsonl's rows (``apt_model.modeling.trainlog``), numbered on from
    the rows already in it, so the lottery's rounds and the recovery make one log.
    """
    if steps <= 0:
        return []
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)
    warmup = max(1, int(steps * WARMUP_FRACTION))

    def lr_at(step: int) -> float:  # step is 0-based
        return lr * warmup_cosine(step, warmup, steps, MIN_LR_FRACTION)

    model.train()
    losses: list[float] = []
    start = time.monotonic()
    lo, hi = progress
    for step in range(steps):
        ctx.check_cancelled()
        for group in opt.param_groups:
            group["lr"] = lr_at(step)
        ids = next(batches)
        loss = model(input_ids=ids, labels=ids, use_cache=False).loss
        if not torch.isfinite(loss):
            raise errors.FailedPrecondition(
                f"{stage}: the loss became {float(loss)} at step {step + 1}; lower learning_rate and retry.")
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        blocks = trainlog.block_grad_norms(model) if log is not None and trainlog.wants_block_norms(
            len(log) + 1) else None
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, 1.0))
        opt.step()
        losses.append(loss.item())
        if log is not None:
            log.append(trainlog.row(len(log) + 1, losses[-1], lr_at(step), grad_norm, time.perf_counter() - t0,
                                    ids.numel(), blocks, phase=stage))
        if on_step is not None:
            on_step(step + 1)
        elapsed = time.monotonic() - start
        ctx.report(progress=lo + (hi - lo) * (step + 1) / steps, stage=stage,
                   message=f"{stage} step {step + 1}/{steps} loss {losses[-1]:.3f}",
                   eta_seconds=elapsed / (step + 1) * (steps - step - 1), loss=losses[-1], step=step + 1)
    model.eval()
    return losses


def mean_gradients(model, blocks: torch.Tensor, batch_size: int, params: dict[str, torch.nn.Parameter],
                   ctx: JobContext) -> dict[str, torch.Tensor]:
    """The gradient of the LM loss for each named parameter, averaged over calibration blocks."""
    if len(blocks) == 0:
        raise errors.InvalidArgument("Gradient-based importance needs calibration text; none was given.")
    model.eval()  # no dropout in the estimate
    model.zero_grad(set_to_none=True)
    n_batches = 0
    for i in range(0, len(blocks), batch_size):
        ctx.check_cancelled()
        ids = blocks[i:i + batch_size]
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        n_batches += 1
    grads = {name: p.grad.detach() / n_batches for name, p in params.items() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads
