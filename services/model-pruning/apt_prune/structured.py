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

Optionally the residual stream narrows too (``apt_prune.width``): ``hidden_size`` channels
leave the embedding, every norm, every projection and the LM head, which is what shrinks the
embedding and LM head (a quarter of a small model) and speeds up the head's matmul.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch_pruning as tp

from apt_model import errors
from apt_model.runtime.jobs import JobContext

from apt_prune.importance import Importance, score_weight
from apt_prune.measure import prunable_linears
from apt_prune.train import mean_gradients
from apt_prune.width import prune_hidden


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
    hidden: int                # residual-stream width (hidden_size) before
    hidden_removed: int        # residual channels removed (0: width not pruned)
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
            "hidden": {"hidden_size": [self.hidden, self.hidden - self.hidden_removed],
                       "removed_fraction": self.hidden_removed / self.hidden},
            "rounding": list(self.notes),
        }


def plan_structured(config: dict, ratio: float, prune_heads: bool, prune_mlp: bool, prune_hidden: bool = False,
                    hidden_ratio: float = 0.0) -> StructuredPlan:
    """How many head units, MLP channels and residual channels leave; refuses ratios that round to
    nothing or everything.

    Heads and MLP channels each lose ``ratio``. The width loses ``hidden_ratio`` when it is given;
    at 0 it loses as many channels as bring the whole model's parameters down by ``ratio``
    (none when heads and MLP already do), so ``ratio`` keeps its meaning of "share removed".
    """
    n_q, n_kv, hidden, inter = _decoder_sizes(config)
    head_dim = int(config.get("head_dim") or hidden // n_q)
    notes: list[str] = []
    unit, units, removed = _plan_heads(ratio, n_q, n_kv, notes) if prune_heads else ("", 0, 0)
    mlp_removed = _plan_mlp(ratio, inter, notes) if prune_mlp else 0
    plan = StructuredPlan(n_q, n_kv, head_dim, unit, units, removed, inter, mlp_removed, hidden, 0, tuple(notes))
    if not prune_hidden:
        return plan
    return _plan_hidden(config, plan, ratio, hidden_ratio, notes)


def _decoder_sizes(config: dict) -> tuple[int, int, int, int]:
    """(query heads, KV heads, hidden_size, intermediate_size) of a Llama-style config."""
    try:
        n_q = int(config["num_attention_heads"])
        n_kv = int(config.get("num_key_value_heads") or n_q)
        return n_q, n_kv, int(config["hidden_size"]), int(config["intermediate_size"])
    except KeyError as exc:
        raise errors.FailedPrecondition(
            f"The model's config has no {exc.args[0]!r}: structured pruning supports Llama-style decoders "
            "(q/k/v/o projections and a gated MLP).") from exc


def _plan_heads(ratio: float, n_q: int, n_kv: int, notes: list[str]) -> tuple[str, int, int]:
    """(unit, units per layer, units removed from every layer); the rounding goes into ``notes``."""
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
    return unit, units, removed


def _plan_mlp(ratio: float, inter: int, notes: list[str]) -> int:
    """MLP channels removed from every layer; the rounding goes into ``notes``."""
    exact = ratio * inter
    mlp_removed = _round_half_up(exact)
    if mlp_removed == 0 or mlp_removed >= inter:
        raise errors.InvalidArgument(f"ratio {ratio} of {inter} MLP channels rounds to {mlp_removed}; choose another ratio.")
    if abs(exact - mlp_removed) > 1e-9:
        notes.append(f"mlp: {ratio:.0%} of {inter} channels is {exact:.2f}; rounded to {mlp_removed}")
    return mlp_removed


def _plan_hidden(config: dict, plan: StructuredPlan, ratio: float, hidden_ratio: float,
                 notes: list[str]) -> StructuredPlan:
    """``plan`` with the residual channels that leave (``hidden_ratio``, or what brings the whole
    model to ``ratio`` when it is 0)."""
    hidden = plan.hidden
    if hidden_ratio:
        exact = hidden_ratio * hidden
        what = f"{hidden_ratio:.0%} of {hidden} channels is {exact:.2f}"
    else:
        # The width loses what brings the whole model (embeddings and LM head included) to `ratio`.
        per_channel, fixed = _parameters_per_channel(config, plan)
        target = (1.0 - ratio) * _parameters(config, plan.num_heads, plan.num_kv_heads, plan.intermediate, hidden)
        exact = hidden - (target - fixed) / per_channel
        what = f"making the whole model {ratio:.0%} smaller takes {exact:.2f} of {hidden} channels"
        if exact < 0.5:
            notes.append(f"hidden: kept at {hidden}; heads and MLP alone already remove {ratio:.0%} of the parameters")
            return replace(plan, notes=tuple(notes))
    # transformers' LlamaConfig refuses a hidden_size that is not a multiple of the query heads
    # (even with an explicit head_dim), so the width that stays is rounded to such a multiple.
    step = plan.num_heads_after
    hidden_removed = hidden - step * _round_half_up((hidden - exact) / step)
    if hidden_removed <= 0 or hidden_removed >= hidden:
        raise errors.InvalidArgument(
            f"hidden: {what}, which rounds to {max(hidden_removed, 0)} removed (the width that stays must be a "
            f"multiple of the {step} query heads); choose another ratio (or hidden_ratio), or keep the width "
            "(prune_hidden false).")
    if abs(exact - hidden_removed) > 1e-9:
        notes.append(f"hidden: {what}; rounded to {hidden_removed} so hidden_size ({hidden - hidden_removed}) "
                     f"stays a multiple of the {step} query heads")
    return replace(plan, hidden_removed=hidden_removed, notes=tuple(notes))


def _parameters(config: dict, n_q: int, n_kv: int, inter: int, hidden: int) -> int:
    """Parameters of a Llama-style decoder with these sizes (what the width target is computed on)."""
    per_channel, fixed = _linear_in_width(config, n_q, n_kv, inter)
    return per_channel * hidden + fixed


def _parameters_per_channel(config: dict, plan: "StructuredPlan") -> tuple[int, int]:
    return _linear_in_width(config, plan.num_heads_after, plan.num_kv_heads_after, plan.intermediate - plan.mlp_removed)


def _linear_in_width(config: dict, n_q: int, n_kv: int, inter: int) -> tuple[int, int]:
    """(parameters per residual channel, parameters that do not depend on the width)."""
    d = int(config.get("head_dim") or int(config["hidden_size"]) // int(config["num_attention_heads"]))
    layers, vocab = int(config["num_hidden_layers"]), int(config["vocab_size"])
    attn_bias, mlp_bias = bool(config.get("attention_bias")), bool(config.get("mlp_bias"))
    # Per block and channel: q/k/v input columns, o rows (+ its bias), gate/up/down, two norms (+ down's bias).
    block = (n_q + 2 * n_kv) * d + n_q * d + 3 * inter + 2 + attn_bias + mlp_bias
    per_channel = vocab * (1 if config.get("tie_word_embeddings") else 2) + 1 + layers * block
    fixed = layers * ((n_q + 2 * n_kv) * d * attn_bias + 2 * inter * mlp_bias)  # q/k/v and gate/up biases
    return per_channel, fixed


def apply_structured(model, plan: StructuredPlan, imp: Importance, calibration: torch.Tensor, batch_size: int,
                     ctx: JobContext, progress: tuple[float, float]) -> dict:
    """Remove the planned heads, MLP channels and residual channels, and rewrite the config.
    Returns the plan's report plus what the width pruning measured.

    Heads and MLP channels go first; the width is scored afterwards, on the weights that are
    left (with fresh gradients for Taylor), so a residual channel is not kept for the sake of
    rows that have already been removed.
    """
    lo, hi = progress
    mid = (lo + hi) / 2 if plan.hidden_removed else hi
    if plan.head_unit or plan.mlp_removed:
        _prune_blocks(model, plan, imp, calibration, batch_size, ctx, (lo, mid))
    # Before the width is scored: its calibration passes run the model with the new head counts.
    cfg = model.config
    cfg.head_dim = plan.head_dim  # explicit: hidden_size / heads no longer gives it
    cfg.num_attention_heads = plan.num_heads_after
    cfg.num_key_value_heads = plan.num_kv_heads_after
    cfg.intermediate_size = plan.intermediate - plan.mlp_removed
    for layer in model.model.layers:
        layer.self_attn.num_key_value_groups = cfg.num_attention_heads // cfg.num_key_value_heads
    report = plan.report()
    if plan.hidden_removed:
        ctx.report(progress=mid, stage="prune",
                   message=f"removing {plan.hidden_removed} of {plan.hidden} residual channels")
        report["hidden"].update(prune_hidden(model, plan.hidden_removed, imp, calibration, batch_size, ctx))
    ctx.report(progress=hi, stage="prune", message="pruned")
    return report


def _prune_blocks(model, plan: StructuredPlan, imp: Importance, calibration: torch.Tensor, batch_size: int,
                  ctx: JobContext, progress: tuple[float, float]) -> None:
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
                   message=f"pruned heads and MLP channels of layer {i + 1}/{len(layers)}")


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
