"""Gradient flow: a few optimiser steps (AdamW) on a private copy of a store model, measuring
per block and parameter group the gradient norm, grad/weight ratio, the AdamW update/weight
ratio and the share of zero gradients, and flagging frozen, never-updated and tied parameters.

The update ratio is measured, not estimated: the weights before and after ``optimizer.step``.
A healthy run updates each weight by roughly 1e-3 of its norm per step (Karpathy's rule of
thumb); a block far below the median of the others has vanishing gradients, far above it
exploding ones, a block whose gradients are all zero is dead.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

import torch

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug import plots
from apt_debug.probe import ProbeSpec, block_list, dump_json, finite_only, group_of, load_probe, write_report

OPERATION = "gradient-flow"
VANISHING = 1e-3    # block gradient norm below this share of the other blocks' median
EXPLODING = 1e2     # ... above this many times it, or a grad/weight ratio above 1
WEIGHT_OUTLIER = 10.0  # block weight norm this many times the other blocks' median
DEAD_SHARE = 0.999  # share of zero gradient entries from which a block is dead


class _Sums:
    """Running sums of one block or group over the probe steps."""

    def __init__(self):
        self.grad_sq = self.weight_sq = self.update_sq = 0.0
        self.zeros = self.entries = 0
        self.steps = 0

    def as_dict(self, steps: int) -> dict[str, float]:
        grad, weight, update = (math.sqrt(x / max(steps, 1)) for x in (self.grad_sq, self.weight_sq, self.update_sq))
        return {"grad_norm": grad, "weight_norm": weight,
                "grad_weight_ratio": grad / weight if weight > 0 else math.nan,
                "update_weight_ratio": update / weight if weight > 0 else math.nan,
                "zero_grad_share": self.zeros / self.entries if self.entries else 1.0}


def tied_parameters(model: torch.nn.Module) -> list[str]:
    """"a = b" for each parameter name that shares its tensor with an earlier one."""
    seen: dict[int, str] = {}
    out = []
    for name, p in model.named_parameters(remove_duplicate=False):
        key = id(p)
        if key in seen:
            out.append(f"{name} = {seen[key]}")
        else:
            seen[key] = name
    return out


def run_gradient_flow(store: Store, spec: ProbeSpec, ctx: JobContext) -> dict[str, Any]:
    """The job: probe, then the report into store dataset ``spec.output_name``."""
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, data = load_probe(store, spec)
    report = gradient_flow(model, data.batch, spec.batches, spec.learning_rate, spec.device, ctx)
    report.update(model=spec.model, output=spec.output_name)

    def files(folder):
        dump_json(folder / "gradient_flow.json", report)
        plots.gradient_flow_png(report, folder / "gradient_flow.png")

    write_report(store, spec.output_name, operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                 parameters={"batches": spec.batches, "seq_len": spec.seq_len, "batch_size": spec.batch_size,
                             "seed": spec.seed, "learning_rate": spec.learning_rate}, files=files)
    result = {k: v for k, v in report.items() if k != "losses"}
    result.update(first_loss=report["losses"][0], last_loss=report["losses"][-1])
    return finite_only(result)


def gradient_flow(model: torch.nn.Module, batch_of, steps: int, lr: float, device: str,
                  ctx: JobContext) -> dict[str, Any]:
    """``steps`` AdamW steps of next-token loss on ``batch_of(step)``; the flow report."""
    if steps < 1:
        raise errors.InvalidArgument("Gradient flow needs at least one probe step (--batches 1 or more).")
    model.train()
    prefix, _ = block_list(model)
    named = [(n, p) for n, p in model.named_parameters()]
    trainable = [p for _, p in named if p.requires_grad]
    if not trainable:
        raise errors.FailedPrecondition("Every parameter of the model is frozen: there is no gradient to measure.")
    optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    blocks: dict[str, _Sums] = defaultdict(_Sums)
    groups: dict[tuple[str, str], _Sums] = defaultdict(_Sums)
    ever_grad: dict[str, bool] = {n: False for n, p in named if p.requires_grad}
    losses = []
    for step in range(steps):
        ctx.check_cancelled()
        ids = batch_of(step).to(device)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        before = {n: p.detach().clone() for n, p in named if p.requires_grad}
        optimizer.step()
        losses.append(float(loss.detach()))
        for name, p in named:
            block, group = group_of(name, prefix)
            for sums in (blocks[block], groups[(block, group)]):
                _accumulate(sums, p, before.get(name))
            if p.grad is not None and bool(torch.any(p.grad != 0)):
                ever_grad[name] = True
        ctx.report(progress=(step + 1) / steps, stage="probe", message=f"probe step {step + 1}/{steps}",
                   step=step + 1, loss=losses[-1])
    return _flow_report(named, prefix, blocks, groups, ever_grad, steps, losses, tied_parameters(model))


def _accumulate(sums: _Sums, p: torch.nn.Parameter, before: torch.Tensor | None) -> None:
    weight = p.detach().float()
    sums.weight_sq += float(weight.pow(2).sum())
    sums.entries += p.numel()
    if p.grad is None:
        sums.zeros += p.numel()
        return
    grad = p.grad.detach().float()
    sums.grad_sq += float(grad.pow(2).sum())
    sums.zeros += int((grad == 0).sum())
    if before is not None:
        sums.update_sq += float((weight - before.float()).pow(2).sum())


def _flow_report(named, prefix, blocks, groups, ever_grad, steps, losses, tied) -> dict[str, Any]:
    frozen = [n for n, p in named if not p.requires_grad]
    frozen_blocks = _fully_frozen(named, prefix)
    rows = []
    for block, sums in blocks.items():
        row = {"name": block, **sums.as_dict(steps), "verdict": "", "groups": []}
        for (b, group), gsums in groups.items():
            if b == block and group != block:
                g = gsums.as_dict(steps)
                row["groups"].append({"name": group, "grad_norm": g["grad_norm"],
                                      "grad_weight_ratio": g["grad_weight_ratio"],
                                      "update_weight_ratio": g["update_weight_ratio"],
                                      "zero_grad_share": g["zero_grad_share"]})
        rows.append(row)
    _judge(rows, frozen_blocks)
    order = {"healthy": 0, "frozen": 1, "vanishing": 2, "dead": 3, "exploding": 4}
    verdicts = [r["verdict"] for r in rows if r["name"].startswith("block ")] or [r["verdict"] for r in rows]
    return {"steps": steps, "blocks": rows, "frozen": frozen,
            "never_updated": [n for n, seen in ever_grad.items() if not seen],
            "tied": tied, "verdict": max(verdicts, key=order.__getitem__), "losses": losses, "warnings": []}


def _fully_frozen(named, prefix: str) -> set[str]:
    """The blocks none of whose parameters train."""
    trainable: dict[str, bool] = defaultdict(bool)
    for name, p in named:
        trainable[group_of(name, prefix)[0]] |= p.requires_grad
    return {block for block, any_trains in trainable.items() if not any_trains}


def _judge(rows: list[dict], frozen_blocks: set[str]) -> None:
    """A verdict per row. Transformer blocks have one shape, so each is held against the median
    of the *other* blocks: a weight norm WEIGHT_OUTLIER times theirs (a bad initialisation scale)
    or a gradient norm EXPLODING times theirs is exploding, VANISHING of theirs is vanishing."""
    blocks = [r for r in rows if r["name"].startswith("block ") and r["name"] not in frozen_blocks]
    for r in rows:
        others = [b for b in blocks if b is not r]
        grad_ref = _median([b["grad_norm"] for b in others])
        weight_ref = _median([b["weight_norm"] for b in others])
        is_block = r in blocks
        if r["name"] in frozen_blocks:
            r["verdict"] = "frozen"
        elif not math.isfinite(r["grad_norm"]) or r["grad_weight_ratio"] > 1.0 or (is_block and (
                r["grad_norm"] > EXPLODING * grad_ref or r["weight_norm"] > WEIGHT_OUTLIER * weight_ref)):
            r["verdict"] = "exploding"
        elif r["zero_grad_share"] >= DEAD_SHARE or r["grad_norm"] == 0:
            r["verdict"] = "dead"
        elif is_block and r["grad_norm"] < VANISHING * grad_ref:
            r["verdict"] = "vanishing"
        else:
            r["verdict"] = "healthy"


def _median(values: list[float]) -> float:
    """The median of the finite positive values (NaN when there are none: no comparison)."""
    kept = [v for v in values if math.isfinite(v) and v > 0]
    return statistics.median(kept) if kept else math.nan
