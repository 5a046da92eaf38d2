"""The built-in ``apt`` preset: a small Llama-architecture decoder.

Built with transformers' own ``LlamaConfig``/``LlamaForCausalLM`` (RMSNorm, RoPE, SwiGLU,
grouped-query attention), so a saved model loads with ``AutoModelForCausalLM`` without this
project, and pruning, HF export and GGUF export need no conversion.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from apt_model import errors


@dataclass(frozen=True)
class PresetSize:
    hidden_size: int  # model width d
    num_hidden_layers: int
    num_attention_heads: int  # query heads; head_dim = hidden_size / heads
    num_key_value_heads: int  # KV heads (GQA): each serves heads / kv_heads query heads
    intermediate_size: int  # SwiGLU inner width
    max_position_embeddings: int  # context length in tokens


SIZES: dict[str, PresetSize] = {
    # ~0.1M non-embedding params: unit tests
    "tiny": PresetSize(64, 2, 4, 2, 176, 256),
    # ~1.6M non-embedding params: demo, benchmarks on a 2-core CPU
    "small": PresetSize(128, 4, 8, 4, 352, 512),
    # ~21M non-embedding params
    "base": PresetSize(384, 8, 12, 4, 1024, 1024),
    # ~110M non-embedding params
    "medium": PresetSize(768, 12, 12, 4, 2048, 2048),
}


def preset_config(size: str, vocab_size: int, *, bos_token_id: int = 1, eos_token_id: int = 2,
                  pad_token_id: int | None = 0, tie_word_embeddings: bool = False):
    """A ``LlamaConfig`` for an ``apt`` preset size and a tokenizer's vocabulary."""
    from transformers import LlamaConfig

    if size not in SIZES:
        raise errors.InvalidArgument(
            f"Unknown apt preset size {size!r}; choose one of: {', '.join(SIZES)}."
        )
    if vocab_size < 8:
        raise errors.InvalidArgument(f"vocab_size must be at least 8, got {vocab_size}.")
    return LlamaConfig(
        vocab_size=vocab_size,
        **asdict(SIZES[size]),
        hidden_act="silu",
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        attention_bias=False,
        mlp_bias=False,
        tie_word_embeddings=tie_word_embeddings,
        bos_token_id=bos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        torch_dtype="float32",
    )


def create_model(config, seed: int = 0):
    """A freshly initialised causal LM for ``config`` (deterministic for a seed)."""
    import torch
    from transformers import AutoModelForCausalLM

    from apt_model.modeling.io import building

    with building():  # no load in another thread has tying switched off (io._BUILDING)
        torch.manual_seed(seed)
        return AutoModelForCausalLM.from_config(config)
