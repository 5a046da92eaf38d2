"""Unstructured pruning with ``torch.nn.utils.prune``: by score (magnitude, Taylor, custom),
global or per layer, optionally in the 2:4 semi-structured pattern; and the lottery ticket.

Masks are applied as ``torch.nn.utils.prune`` re-parametrisations (``weight_orig`` and
``weight_mask``) so a recovery fine-tune keeps pruned weights at zero; ``make_permanent``
folds them into plain weights before saving. Zeros in dense tensors do not make dense
matrix multiplies faster: the report says so.
"""

from __future__ import annotations

import torch
from torch.nn.utils import prune

from apt_model.modeling.distributed import Ranks
from apt_model.runtime.jobs import JobContext

from apt_prune.importance import Importance, score_weight
from apt_prune.measure import prunable_linears
from apt_prune.train import mean_gradients, train_steps

SPEED_NOTE = ("Unstructured sparsity alone does not speed up dense kernels: the zeros are still multiplied, "
              "and the file on disk is as large as before. Use the structured strategy for speed and size, "
              "or a sparse runtime for the 2:4 pattern.")


def weight_scores(model, imp: Importance, calibration: torch.Tensor, batch_size: int,
                  ctx: JobContext) -> dict[str, torch.Tensor]:
    """Per-weight scores of every prunable Linear (gradients computed only when the score needs them)."""
    layers = prunable_linears(model)
    grads = {}
    if imp.needs_gradients:
        named = {f"{n}.weight": m.weight for n, m in layers.items()}
        grads = mean_gradients(model, calibration, batch_size, named, ctx)
    return {n: score_weight(imp, f"{n}.weight", m.weight, grads.get(f"{n}.weight")) for n, m in layers.items()}


def apply_masks(model, scores: dict[str, torch.Tensor], ratio: float, scope: str, two_four: bool) -> None:
    """Prune the lowest-scoring weights of every prunable Linear (masks stay as prune hooks)."""
    layers = prunable_linears(model)
    # L1Unstructured ranks by |score|; shifting by the minimum keeps the order of any real-valued
    # score (a registered one may be negative) while making |score| rank the same way.
    low = min(float(s.min()) for s in scores.values())
    scores = {n: s - (low if scope == "global" else float(s.min())) for n, s in scores.items()}
    if two_four:
        for name, m in layers.items():
            prune.custom_from_mask(m, "weight", mask=two_four_mask(scores[name]))
    elif scope == "global":
        prune.global_unstructured([(m, "weight") for m in layers.values()], pruning_method=prune.L1Unstructured,
                                  importance_scores={(m, "weight"): scores[n] for n, m in layers.items()},
                                  amount=ratio)
    else:
        for name, m in layers.items():
            prune.l1_unstructured(m, "weight", amount=ratio, importance_scores=scores[name])


def two_four_mask(scores: torch.Tensor) -> torch.Tensor:
    """Keep the 2 highest-scoring of every 4 consecutive weights along the input dimension."""
    out_f, in_f = scores.shape
    if in_f % 4:
        raise ValueError(f"2:4 needs the input width to be a multiple of 4, got {in_f}")
    groups = scores.reshape(out_f, in_f // 4, 4)
    keep = groups.topk(2, dim=-1).indices
    mask = torch.zeros_like(groups).scatter_(-1, keep, 1.0)
    return mask.reshape(out_f, in_f)


def make_permanent(model) -> None:
    """Fold every prune re-parametrisation into a plain weight with zeros."""
    for m in prunable_linears(model).values():
        if prune.is_pruned(m):
            prune.remove(m, "weight")


def lottery(model, train_batches, spec, ctx: JobContext, progress: tuple[float, float],
            log: list[dict] | None = None, ranks: Ranks = Ranks(), device: str = "cpu") -> dict:
    """Iterative magnitude pruning with weight rewinding (Frankle et al., "Linear Mode
    Connectivity and the Lottery Ticket Hypothesis", 2020).

    Train ``rewind_step`` steps and keep those weights; then each round trains
    ``lottery_steps`` steps in all (counting the first ``rewind_step`` in round one), prunes
    ``round_ratio`` of the surviving prunable weights by magnitude, and rewinds every
    parameter to the kept weights, masks in place. The last round prunes exactly to ``ratio``.
    Returns the rewind state (for checks) and the schedule for the report. Every rank of a
    data-parallel run (``ranks``) prunes and rewinds alike: their weights stay the same. Under
    ``spec.sharding`` "fsdp" each round trains a sharded copy and every rank gets the whole weights
    back for the global ranking (``train_steps``); the rewind point is gathered whole the same way.
    """
    layers = prunable_linears(model)
    lo, hi = progress
    rounds = spec.rounds
    span = (hi - lo) / rounds
    rewind: dict[str, torch.Tensor] = {}

    def keep_rewind(step: int, state) -> None:
        if step == spec.rewind_step:  # every rank, at the same step: under FSDP ``state()`` is a collective
            rewind.update(state())

    if spec.rewind_step == 0:
        keep_rewind(0, lambda: {k: v.detach().clone() for k, v in model.state_dict().items()})
    total = sum(m.weight.numel() for m in layers.values())
    schedule = []
    for r in range(rounds):
        steps = spec.lottery_steps
        train_steps(model, train_batches, steps, spec.learning_rate, ctx, stage=f"lottery round {r + 1}/{rounds}",
                    progress=(lo + r * span, lo + (r + 0.9) * span), on_step=keep_rewind if r == 0 else None,
                    log=log, ranks=ranks, sharding=spec.sharding, device=device)
        target = spec.ratio if r == rounds - 1 else 1.0 - (1.0 - spec.round_ratio) ** (r + 1)
        target = min(target, spec.ratio)
        _prune_survivors_to(layers, round(target * total))
        _rewind(model, rewind)
        schedule.append({"round": r + 1, "sparsity": round(target, 6), "train_steps": steps})
        ctx.report(progress=lo + (r + 1) * span, stage="lottery",
                   message=f"round {r + 1}/{rounds}: pruned to {target:.1%}, rewound to step {spec.rewind_step}")
    return {"rewind_state": rewind, "schedule": schedule}


def _prune_survivors_to(layers: dict[str, torch.nn.Linear], n_zero: int) -> None:
    """Global magnitude pruning of the current (masked) weights until ``n_zero`` are pruned."""
    # once pruned, weight_orig * mask as it is now (the hook's ``weight`` is the last forward's)
    weights = {n: (m.weight_orig * m.weight_mask if prune.is_pruned(m) else m.weight).detach()
               for n, m in layers.items()}
    masks = {n: (m.weight_mask if prune.is_pruned(m) else torch.ones_like(weights[n])) for n, m in layers.items()}
    # Pruned weights score -1 so they stay pruned; survivors rank by |w| (>= 0).
    flat = torch.cat([torch.where(masks[n] > 0, weights[n].abs(), torch.full_like(weights[n], -1.0)).flatten()
                      for n in layers])
    order = torch.argsort(flat, stable=True)
    new_flat = torch.ones_like(flat)
    new_flat[order[:n_zero]] = 0.0
    offset = 0
    for n, m in layers.items():
        k = weights[n].numel()
        mask = new_flat[offset:offset + k].view_as(weights[n])
        offset += k
        if prune.is_pruned(m):
            m.weight_mask.copy_(mask)
        else:
            prune.custom_from_mask(m, "weight", mask=mask)


@torch.no_grad()
def _rewind(model, state: dict[str, torch.Tensor]) -> None:
    """Load the rewind weights into every parameter; pruned Linears get them in ``weight_orig``."""
    current = dict(model.named_parameters())
    for key, value in state.items():
        if key in current:
            current[key].copy_(value)
        elif key.endswith(".weight") and key[: -len(".weight")] + ".weight_orig" in current:
            current[key[: -len(".weight")] + ".weight_orig"].copy_(value)
