"""The model families this exporter converts: hyper-parameters, tensor names, Q/K layout.

Llama (the ``apt`` preset included) and Qwen2 share llama.cpp's tensor naming; they
differ in two ways that matter. Qwen2 has q/k/v biases, and llama.cpp runs it with
NeoX-style RoPE (rotating the two halves of a head), which is exactly how HF computes it,
so its weights go in unchanged. llama.cpp runs ``llama`` with GPT-J-style RoPE (rotating
adjacent pairs), so the rows of q and k must be re-ordered per head: HF's two halves
become interleaved pairs. Without that the file loads and produces wrong logits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from apt_model import errors

# HF architecture class -> llama.cpp architecture name.
SUPPORTED = {"LlamaForCausalLM": "llama", "Qwen2ForCausalLM": "qwen2"}
_MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM"}


@dataclass(frozen=True)
class HParams:
    arch: str  # llama.cpp architecture: "llama" or "qwen2"
    hf_arch: str
    context_length: int  # max_position_embeddings, tokens
    embedding_length: int  # hidden_size
    block_count: int
    feed_forward_length: int  # intermediate_size
    head_count: int
    head_count_kv: int
    head_dim: int
    rope_freq_base: float
    rms_norm_eps: float
    vocab_size: int
    tied_embeddings: bool
    rope_linear_factor: float | None  # "linear" RoPE scaling, the one scaling supported


def supported_text() -> str:
    return ", ".join(f"{hf} ({arch})" for hf, arch in SUPPORTED.items())


def _rope(config: dict) -> tuple[float, float | None]:
    # transformers 5 keeps RoPE settings in rope_parameters; older configs at the top level.
    params = config.get("rope_parameters") or {}
    theta = float(params.get("rope_theta", config.get("rope_theta", 10000.0)))
    scaling = config.get("rope_scaling") or (params if params.get("rope_type", "default") != "default" else None)
    if not scaling:
        return theta, None
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind == "linear":
        return theta, float(scaling["factor"])
    raise errors.InvalidArgument(
        f"RoPE scaling {kind!r} cannot be exported yet; only unscaled and 'linear' RoPE are supported."
    )


def read_hparams(config: dict) -> HParams:
    """Validate a config.json and extract what the GGUF metadata needs."""
    archs = config.get("architectures") or []
    hf_arch = archs[0] if archs else _MODEL_TYPES.get(config.get("model_type", ""), config.get("model_type", "?"))
    if hf_arch not in SUPPORTED:
        raise errors.InvalidArgument(
            f"Architecture {hf_arch!r} cannot be exported to GGUF by this plugin; supported: "
            f"{supported_text()}."
        )
    arch = SUPPORTED[hf_arch]
    if arch == "qwen2" and config.get("use_sliding_window"):
        raise errors.InvalidArgument(
            "This Qwen2 model uses sliding-window attention, which llama.cpp's qwen2 graph does not "
            "implement; set use_sliding_window=false in config.json if the window exceeds the context."
        )
    theta, linear = _rope(config)
    try:
        heads = int(config["num_attention_heads"])
        hidden = int(config["hidden_size"])
        hp = HParams(
            arch=arch, hf_arch=hf_arch,
            context_length=int(config["max_position_embeddings"]),
            embedding_length=hidden,
            block_count=int(config["num_hidden_layers"]),
            feed_forward_length=int(config["intermediate_size"]),
            head_count=heads,
            head_count_kv=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rope_freq_base=theta,
            rms_norm_eps=float(config["rms_norm_eps"]),
            vocab_size=int(config["vocab_size"]),
            tied_embeddings=bool(config.get("tie_word_embeddings", False)),
            rope_linear_factor=linear,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise errors.FailedPrecondition(f"config.json lacks or garbles a required field ({exc}).") from exc
    if hp.head_dim % 2:
        raise errors.InvalidArgument(f"head_dim {hp.head_dim} is odd; RoPE needs an even head size.")
    return hp


_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")
_GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
_BLOCK = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight", "self_attn.o_proj.bias": "attn_output.bias",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.gate_proj.bias": "ffn_gate.bias",
    "mlp.up_proj.weight": "ffn_up.weight", "mlp.up_proj.bias": "ffn_up.bias",
    "mlp.down_proj.weight": "ffn_down.weight", "mlp.down_proj.bias": "ffn_down.bias",
}


def gguf_name(hf_name: str, hp: HParams) -> str | None:
    """The llama.cpp tensor name for a checkpoint tensor; None for tensors GGUF does not keep."""
    if hf_name.endswith("rotary_emb.inv_freq"):
        return None  # recomputed by llama.cpp from rope.freq_base
    if hf_name == "lm_head.weight" and hp.tied_embeddings:
        return None  # llama.cpp reuses token_embd when output.weight is absent
    if hf_name in _GLOBAL:
        return _GLOBAL[hf_name]
    m = _LAYER.match(hf_name)
    if m and m.group(2) in _BLOCK:
        return f"blk.{m.group(1)}.{_BLOCK[m.group(2)]}"
    raise errors.InvalidArgument(
        f"Tensor {hf_name!r} has no place in a {hp.arch} GGUF; the checkpoint is not a plain "
        f"{hp.hf_arch} (modified or adapter weights?). Merge or remove it before exporting."
    )


def _interleave_rope_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    # Rows of one head: [x_0..x_{d/2-1}, y_0..y_{d/2-1}] -> [x_0, y_0, x_1, y_1, ...].
    rows = w.shape[0]
    return w.reshape(n_head, 2, rows // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def transform(name: str, w: np.ndarray, hp: HParams) -> np.ndarray:
    """Apply the layout change llama.cpp expects for a tensor (identity for most)."""
    if hp.arch == "llama":
        if name.endswith(("attn_q.weight", "attn_q.bias")):
            return _interleave_rope_rows(w, hp.head_count)
        if name.endswith(("attn_k.weight", "attn_k.bias")):
            return _interleave_rope_rows(w, hp.head_count_kv)
    return w


def add_metadata(writer, hp: HParams) -> None:
    """Architecture hyper-parameters, under llama.cpp's ``<arch>.*`` keys."""
    import gguf

    writer.add_context_length(hp.context_length)
    writer.add_embedding_length(hp.embedding_length)
    writer.add_block_count(hp.block_count)
    writer.add_feed_forward_length(hp.feed_forward_length)
    writer.add_head_count(hp.head_count)
    writer.add_head_count_kv(hp.head_count_kv)
    writer.add_key_length(hp.head_dim)
    writer.add_value_length(hp.head_dim)
    writer.add_rope_dimension_count(hp.head_dim)
    writer.add_rope_freq_base(hp.rope_freq_base)
    writer.add_layer_norm_rms_eps(hp.rms_norm_eps)
    writer.add_vocab_size(hp.vocab_size)
    if hp.rope_linear_factor is not None:
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(hp.rope_linear_factor)
