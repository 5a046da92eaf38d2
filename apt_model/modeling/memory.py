"""What training and inference hold in memory, from a config's shapes alone (nothing is built).

Used by ``size`` (gateway) and by every service before it starts a training job
(``limits.check_trainable``): weights, gradients, AdamW's two moments and the activations
autograd keeps for one micro-batch, fp32. bench/bench_train.py checks the estimate against
the peak resident memory of a real run.
"""

from __future__ import annotations

from typing import Any

from apt_model import errors
from apt_model.modeling.loss import DEFAULT_CHUNK, FUSABLE_MODEL_TYPES


def _shape(config: dict[str, Any]) -> dict[str, int]:
    """Decoder dimensions under the names different architectures use."""
    if not config.get("hidden_size") and isinstance(config.get("text_config"), dict):
        config = config["text_config"]  # a multimodal model: its decoder is the text model's
    d = config.get("hidden_size") or config.get("n_embd") or config.get("d_model")
    layers = config.get("num_hidden_layers") or config.get("n_layer")
    heads = config.get("num_attention_heads") or config.get("n_head")
    if not (d and layers and heads):
        raise errors.FailedPrecondition("The config has no hidden size / layer / head count to size the model by.")
    kv = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or d // heads
    inner = config.get("intermediate_size") or config.get("n_inner") or 4 * d
    gated = config.get("model_type") not in ("gpt2", "gpt_neo", "gptj", "opt", "bloom")
    return {"d": d, "layers": layers, "heads": heads, "kv": kv * head_dim, "inner": inner,
            "vocab": config["vocab_size"], "gated": int(gated)}


def activation_bytes(config: dict[str, Any], batch: int, seq: int, fused_loss: bool) -> dict[str, int]:
    """Bytes that a training step holds beyond the weights and optimizer state, fp32 on CPU.

    Per decoder layer and token (d hidden, k = kv width, i = MLP width), autograd keeps:
    two RMSNorm inputs and outputs (4d), q/k/v (d + 2k), q/k after RoPE (d + k), k/v
    repeated for grouped-query attention (2d), the attention output before and after the
    head merge (2d), the MLP's gate, up, activation and product (4i; 3i without a gate),
    and the residual sum (d): 12d + 3k + 4i. While backward runs through a layer, the
    gradients of that layer's activations live beside them: one more layer's worth.
    The loss head: with the fused loss (apt_model.modeling.loss) three chunk x V buffers
    and the (N, d) hidden gradient; without it four (N, V) tensors (logits, log-softmax,
    and their gradients), which coexist at the start of backward.
    """
    s = _shape(config)
    tokens = batch * seq
    per_layer = 4 * tokens * (12 * s["d"] + 3 * s["kv"] + (4 if s["gated"] else 3) * s["inner"])
    if fused_loss:
        loss = 4 * (3 * min(DEFAULT_CHUNK, tokens) * s["vocab"] + tokens * s["d"])
    else:
        loss = 4 * 4 * tokens * s["vocab"]
    return {"layers": per_layer * s["layers"], "backward_workspace": per_layer, "loss_head": loss,
            "embeddings": 4 * 3 * tokens * s["d"]}  # embedding output, final norm in/out


def kv_cache_bytes(config: dict[str, Any], seq: int, bytes_per_value: int) -> int:
    s = _shape(config)
    return 2 * s["layers"] * s["kv"] * seq * bytes_per_value


def fused_loss_applies(config) -> bool:
    """``loss.can_fuse`` from the config alone: every architecture it names has a bias-free Linear head."""
    return (config.model_type in FUSABLE_MODEL_TYPES and not getattr(config, "final_logit_softcapping", None)
            and getattr(config, "logit_scale", None) is None)


def training_estimate(config: dict[str, Any], total: int, batch: int, seq: int, fused_loss: bool) -> dict[str, int]:
    """Bytes ``train`` holds for a model of ``total`` parameters: fp32 weights, gradients, AdamW
    moments, and the activations of one (batch, seq) micro-batch."""
    acts = activation_bytes(config, batch, seq, fused_loss)
    return {"weights": 4 * total, "gradients": 4 * total, "adamw_moments": 8 * total,
            **{f"activations_{k}": v for k, v in acts.items()}}
