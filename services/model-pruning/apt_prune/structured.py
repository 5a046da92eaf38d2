"""Structured pruning: whole attention-head groups and MLP channels leave the weight
matrices, the config is rewritten, and the result is a smaller dense model that
``AutoModelForCausalLM.from_pretrained`` loads in any process.

Heads respect grouped-query attention: with two or more KV heads the unit is a KV group
(one KV head and the query heads that read it), so every remaining query head keeps its KV
head and ``num_attention_heads / num_key_value_heads`` is unchanged; with one KV head
(multi-query) the unit is a query head. Head dimensions are never pruned, so RoPE is
untouched. The same number of units leaves every layer (HF configs hold one head count and
one ``intermediate_size``); which units leave is decided per layer by importance.

MLP channels are pruned through torch-pruning's dependency graph of each block's MLP,
which couples ``gate_proj``/``up_proj`` rows with ``down_proj`` columns. Attention heads use
torch-pruning's Linear pruning functions directly on index sets computed here: tracing a
whole transformers-5 attention block (RoPE, mask) never finishes in torch-pruning 1.6.1's
dependency search (the loop reported in VainF/Torch-Pruning#527), so the head grouping,
which is fully known from the config, is not traced.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_pruning as tp

from apt_model import errors
from apt_model.runtime.jobs import JobContext

from apt_prune.importance import Importance, score_weight
from apt_prune.measure import prunable_linears
from apt_prune.train import mean_gradients


def _round_half_up(x: float) -> int:
    return int(x + 0.5)


@dataclass(frozen=True)
class StructuredPlan:
    num_heads: int             # query heads before
    num_kv_heads: int          # KV heads before
    head_dim: int
    head_unit: str             # "kv_group", "query_head" or "" (heads not pruned)
    head_units: int            # units per layer before
    head_units_removed: int    # units removed from every layer
    intermediate: int          # MLP channels before
    mlp_removed: int           # MLP channels removed from every layer
    notes: tuple[str, ...]     # the rounding, in words, for the report

    @property
    def num_heads_after(self) -> int:
        if self.head_unit == "kv_group":
            return self.num_heads - self.head_units_removed * (self.num_heads // self.num_kv_heads)
        return self.num_heads - self.head_units_removed

    @property
    def num_kv_heads_after(self) -> int:
        if self.head_unit == "kv_group":
            return self.num_kv_heads - self.head_units_removed
        return self.num_kv_heads

    def report(self) -> dict:
        return {
            "heads": {"unit": self.head_unit or "none", "query_heads": [self.num_heads, self.num_heads_after],
                      "kv_heads": [self.num_kv_heads, self.num_kv_heads_after],
                      "removed_fraction": self.head_units_removed / self.head_units if self.head_units else 0.0},
            "mlp": {"intermediate_size": [self.intermediate, self.intermediate - self.mlp_removed],
                    "removed_fraction": self.mlp_removed / self.intermediate},
            "rounding": list(self.notes),
        }


def plan_structured(config: dict, ratio: float, prune_heads: bool, prune_mlp: bool) -> StructuredPlan:
    """How many head units and channels leave each layer; refuses ratios that round to nothing or everything."""
    try:
        n_q = int(config["num_attention_heads"])
        n_kv = int(config.get("num_key_value_heads") or n_q)
        hidden = int(config["hidden_size"])
        inter = int(config["intermediate_size"])
    except KeyError as exc:
        raise errors.FailedPrecondition(
            f"The model's config has no {exc.args[0]!r}: structured pruning supports Llama-style decoders "
            "(q/k/v/o projections and a gated MLP).") from exc
    head_dim = int(config.get("head_dim") or hidden // n_q)
    notes: list[str] = []
    unit, units, removed = "", 0, 0
    if prune_heads:
        if n_kv >= 2:
            unit, units, per = "kv_group", n_kv, n_q // n_kv
            what = f"KV-head groups (1 KV + {per} query heads each)"
        else:
            unit, units, what = "query_head", n_q, "query heads (one shared KV head)"
        exact = ratio * units
        removed = _round_half_up(exact)
        if removed == 0:
            raise errors.InvalidArgument(
                f"ratio {ratio} of {units} {what} is {exact:.2f}, which rounds to 0: no head would leave. "
                f"Use ratio >= {0.5 / units:.3f}, or prune MLP channels only (prune_heads false, prune_mlp true).")
        if removed >= units:
            raise errors.InvalidArgument(
                f"ratio {ratio} of {units} {what} is {exact:.2f}, which rounds to all of them: every layer "
                f"would lose its attention. Use ratio <= {(units - 0.5) / units - 1e-3:.3f}.")
        if abs(exact - removed) > 1e-9:
            notes.append(f"heads: {ratio:.0%} of {units} {what} is {exact:.2f}; rounded to {removed} "
                         f"({removed / units:.0%}) so whole groups leave and GQA stays valid")
    mlp_removed = 0
    if prune_mlp:
        exact = ratio * inter
        mlp_removed = _round_half_up(exact)
        if mlp_removed == 0 or mlp_removed >= inter:
            raise errors.InvalidArgument(f"ratio {ratio} of {inter} MLP channels rounds to {mlp_removed}; choose another ratio.")
        if abs(exact - mlp_removed) > 1e-9:
            notes.append(f"mlp: {ratio:.0%} of {inter} channels is {exact:.2f}; rounded to {mlp_removed}")
    return StructuredPlan(n_q, n_kv, head_dim, unit, units, removed, inter, mlp_removed, tuple(notes))


def apply_structured(model, plan: StructuredPlan, imp: Importance, calibration: torch.Tensor, batch_size: int,
                     ctx: JobContext, progress: tuple[float, float]) -> None:
    """Remove the planned heads and channels from every decoder layer and rewrite the config."""
    layers = model.model.layers
    linears = prunable_linears(model)
    grads = {}
    if imp.needs_gradients:
        grads = mean_gradients(model, calibration, batch_size,
                               {f"{n}.weight": m.weight for n, m in linears.items()}, ctx)
    # Every score is taken before anything is cut, so gradients and weights match in shape.
    scores = {n: score_weight(imp, f"{n}.weight", m.weight, grads.get(f"{n}.weight")) for n, m in linears.items()}
    prefix = {m: n for n, m in linears.items()}
    lo, hi = progress
    for i, layer in enumerate(layers):
        ctx.check_cancelled()
        if plan.head_unit:
            _prune_heads(layer.self_attn, plan, {k: scores[prefix[getattr(layer.self_attn, k)]]
                                                 for k in ("q_proj", "k_proj", "v_proj", "o_proj")})
        if plan.mlp_removed:
            _prune_mlp(layer.mlp, plan.mlp_removed, scores, prefix, model.config.hidden_size)
        ctx.report(progress=lo + (hi - lo) * (i + 1) / len(layers), stage="prune",
                   message=f"pruned layer {i + 1}/{len(layers)}")
    cfg = model.config
    cfg.head_dim = plan.head_dim  # explicit: hidden_size / heads no longer gives it
    cfg.num_attention_heads = plan.num_heads_after
    cfg.num_key_value_heads = plan.num_kv_heads_after
    cfg.intermediate_size = plan.intermediate - plan.mlp_removed
    for layer in layers:
        layer.self_attn.num_key_value_groups = cfg.num_attention_heads // cfg.num_key_value_heads


def _head_channels(head: int, head_dim: int) -> list[int]:
    return list(range(head * head_dim, (head + 1) * head_dim))


def _prune_heads(attn, plan: StructuredPlan, s: dict[str, torch.Tensor]) -> None:
    d, n_q, n_kv = plan.head_dim, plan.num_heads, plan.num_kv_heads
    if attn.q_proj.out_features != n_q * d or attn.k_proj.out_features != n_kv * d:
        raise errors.FailedPrecondition(
            f"Attention projections {tuple(attn.q_proj.weight.shape)} / {tuple(attn.k_proj.weight.shape)} do not "
            f"match {n_q} query and {n_kv} KV heads of {d}: the config does not describe the weights.")
    # Score of each query head: its q rows and the o columns that read its output.
    q_head = s["q_proj"].view(n_q, d, -1).sum(dim=(1, 2)) + s["o_proj"].view(-1, n_q, d).sum(dim=(0, 2))
    kv_head = s["k_proj"].view(n_kv, d, -1).sum(dim=(1, 2)) + s["v_proj"].view(n_kv, d, -1).sum(dim=(1, 2))
    if plan.head_unit == "kv_group":
        per = n_q // n_kv
        unit_scores = q_head.view(n_kv, per).sum(1) + kv_head
        gone = sorted(torch.argsort(unit_scores, stable=True)[: plan.head_units_removed].tolist())
        q_gone = [g * per + j for g in gone for j in range(per)]
        kv_idx = [c for g in gone for c in _head_channels(g, d)]
        tp.prune_linear_out_channels(attn.k_proj, kv_idx)
        tp.prune_linear_out_channels(attn.v_proj, kv_idx)
    else:
        q_gone = sorted(torch.argsort(q_head, stable=True)[: plan.head_units_removed].tolist())
    q_idx = [c for h in q_gone for c in _head_channels(h, d)]
    tp.prune_linear_out_channels(attn.q_proj, q_idx)
    tp.prune_linear_in_channels(attn.o_proj, q_idx)


def _prune_mlp(mlp, n_remove: int, scores: dict[str, torch.Tensor], prefix: dict, hidden: int) -> None:
    with torch.enable_grad():  # the dependency graph is traced through autograd
        graph = tp.DependencyGraph().build_dependency(mlp, example_inputs=torch.zeros(1, 2, hidden))
    root = mlp.gate_proj
    group = graph.get_pruning_group(root, tp.prune_linear_out_channels, idxs=list(range(root.out_features)))
    channel = torch.zeros(root.out_features)
    coupled = set()
    for dep, _ in group:
        m = dep.target.module
        if not isinstance(m, torch.nn.Linear):
            continue
        coupled.add(m)
        s = scores[prefix[m]]
        channel += s.sum(1) if graph.is_out_channel_pruning_fn(dep.handler) else s.sum(0)
    if coupled != {mlp.gate_proj, mlp.up_proj, mlp.down_proj}:
        raise errors.FailedPrecondition(
            "The MLP's dependency graph does not couple gate_proj, up_proj and down_proj as a gated MLP does; "
            "this architecture is not supported by structured pruning.")
    gone = sorted(torch.argsort(channel, stable=True)[:n_remove].tolist())
    graph.get_pruning_group(root, tp.prune_linear_out_channels, idxs=gone).prune()
