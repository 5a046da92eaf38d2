"""Hidden-width pruning: channels of the residual stream leave every tensor that reads or
writes it, and ``hidden_size`` shrinks.

A residual channel ``c`` is column ``c`` of the token embedding and of the LM head, entry ``c``
of every RMSNorm weight (both per block and the final one), input column ``c`` of q/k/v and
gate/up, and output row ``c`` of o_proj and down_proj. Removing the channel from all of them at
once leaves a smaller model of the same architecture: only ``hidden_size`` changes in the
config (``head_dim`` is written explicitly by the caller, since ``hidden_size /
num_attention_heads`` no longer gives it). The vocabulary is never touched: the tokenizer must
keep working unchanged.

A channel's importance is the sum of the scores of every weight that leaves with it, the same
rule heads and MLP channels follow; with Taylor scores that sum is the first-order estimate of
the loss change when the whole channel is zeroed.

RMSNorm divides by the root mean square over the channels it sees. With fewer channels that
mean changes even where the removed channels held nothing, so every norm weight is multiplied
by the ratio of the new to the old RMS of its input, averaged over the calibration tokens
(``sqrt(kept energy / all energy * d / d')``). Without calibration text the removed channels
are assumed to hold no energy (``sqrt(d / d')``), which the report says. Either way a channel
that is zero everywhere leaves without changing the model's output.
"""

from __future__ import annotations

import torch
import torch_pruning as tp

from apt_model import errors
from apt_model.runtime.jobs import JobContext

from apt_prune.importance import Importance, score_weight
from apt_prune.train import mean_gradients

# Per block: module path -> the axis of its weight that indexes residual channels.
_READS = ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj")
_WRITES = ("self_attn.o_proj", "mlp.down_proj")
_NORMS = ("input_layernorm", "post_attention_layernorm")


def residual_tensors(model) -> dict[str, tuple[torch.nn.Module, int]]:
    """Every module whose weight holds residual channels, by dotted name, with the channel axis.

    Refuses a model holding any other parameter: a tensor this function does not know about
    (a bias on the norm, a learned position table, an extra projection) would keep the old
    width and break the forward pass, so such an architecture is not width-pruned at all.
    """
    base = model.model
    out: dict[str, tuple[torch.nn.Module, int]] = {"model.embed_tokens": (base.embed_tokens, 1),
                                                   "model.norm": (base.norm, 0)}
    for i, layer in enumerate(base.layers):
        p = f"model.layers.{i}."
        out.update({p + n: (layer.get_submodule(n), 1) for n in _READS})
        out.update({p + n: (layer.get_submodule(n), 0) for n in _WRITES})
        out.update({p + n: (layer.get_submodule(n), 0) for n in _NORMS})
    head = model.get_output_embeddings()
    tied = head.weight is base.embed_tokens.weight
    if not tied:
        out["lm_head"] = (head, 1)
    known = {f"{n}.weight" for n in out} | {f"model.layers.{i}.{n}.bias" for i in range(len(base.layers))
                                              for n in _READS + _WRITES}
    unknown = sorted(n for n, _ in model.named_parameters() if n not in known)
    if unknown:
        raise errors.FailedPrecondition(
            f"Hidden-width pruning supports Llama-style decoders only; this model also has {unknown[:4]}, "
            "which would keep the old width. Prune heads and MLP only (prune_hidden false).")
    return out


def hidden_scores(model, imp: Importance, calibration: torch.Tensor, batch_size: int,
                  ctx: JobContext) -> torch.Tensor:
    """(hidden_size,) importance of each residual channel, summed over every tensor it spans."""
    tensors = residual_tensors(model)
    grads = {}
    if imp.needs_gradients:
        grads = mean_gradients(model, calibration, batch_size,
                               {f"{n}.weight": m.weight for n, (m, _) in tensors.items()}, ctx)
    hidden = model.get_input_embeddings().embedding_dim
    total = torch.zeros(hidden)
    for name, (m, axis) in tensors.items():
        s = score_weight(imp, f"{name}.weight", m.weight, grads.get(f"{name}.weight"))
        if s.shape[axis] != hidden:
            raise errors.FailedPrecondition(
                f"{name}.weight has shape {tuple(s.shape)}; expected {hidden} residual channels on axis {axis}.")
        total += s if s.dim() == 1 else s.sum(dim=1 - axis)
    return total


def prune_hidden(model, n_remove: int, imp: Importance, calibration: torch.Tensor, batch_size: int,
                 ctx: JobContext) -> dict:
    """Remove the ``n_remove`` least important residual channels everywhere; returns what the report shows."""
    scores = hidden_scores(model, imp, calibration, batch_size, ctx)
    gone = sorted(torch.argsort(scores, stable=True)[:n_remove].tolist())
    head = model.get_output_embeddings()
    tied = head.weight is model.get_input_embeddings().weight
    tensors = residual_tensors(model)
    norms = {n: m for n, (m, _) in tensors.items() if not isinstance(m, (torch.nn.Embedding, torch.nn.Linear))}
    gains = norm_gains(model, norms, gone, calibration, batch_size, ctx)
    for name, (m, axis) in tensors.items():
        ctx.check_cancelled()
        if isinstance(m, torch.nn.Embedding):
            tp.prune_embedding_out_channels(m, gone)
        elif isinstance(m, torch.nn.Linear):
            (tp.prune_linear_in_channels if axis == 1 else tp.prune_linear_out_channels)(m, gone)
        else:  # an RMSNorm: a bare (hidden,) weight
            m.weight = tp.prune_parameter_out_channels(m.weight, gone)
            with torch.no_grad():
                m.weight.mul_(gains[name])
    hidden = model.get_input_embeddings().embedding_dim
    if tied:  # pruning replaced the embedding's Parameter; the head must share the new one
        head.weight = model.get_input_embeddings().weight
        head.in_features = hidden
    model.config.hidden_size = hidden
    for layer in model.model.layers:  # attributes some modules keep next to the config
        if hasattr(layer.mlp, "hidden_size"):
            layer.mlp.hidden_size = hidden
    return {"channels_removed": gone, "norm_gains": {n: round(g, 4) for n, g in gains.items()},
            "norm_gain_source": (f"{len(calibration)} calibration blocks" if len(calibration) else
                                 "no calibration text: removed channels assumed to hold no energy")}


@torch.no_grad()
def norm_gains(model, norms: dict[str, torch.nn.Module], gone: list[int], calibration: torch.Tensor,
               batch_size: int, ctx: JobContext) -> dict[str, float]:
    """For each norm: mean over calibration tokens of RMS(kept channels) / RMS(all channels)."""
    d = model.get_input_embeddings().embedding_dim
    keep = torch.ones(d, dtype=torch.bool)
    keep[gone] = False
    scale = d / int(keep.sum())
    if len(calibration) == 0:
        return {n: scale ** 0.5 for n in norms}
    sums = {n: 0.0 for n in norms}
    counts = {n: 0 for n in norms}

    def hook(name):
        def record(_module, args):
            e = args[0].float().pow(2)  # (B, T, d) energy per channel
            total = e.sum(-1)
            live = total > 0  # an all-zero input (the padding embedding) normalises to zero at any gain
            f = e[..., keep].sum(-1)[live] / total[live]
            sums[name] += float((f * scale).sqrt().sum())
            counts[name] += int(live.sum())
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in norms.items()]
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(calibration), batch_size):
            ctx.check_cancelled()
            ids = calibration[i:i + batch_size]
            model(input_ids=ids, use_cache=False)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return {n: sums[n] / counts[n] if counts[n] else scale ** 0.5 for n in norms}
