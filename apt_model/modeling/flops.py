"""Training FLOPs of a decoder-only LM, for model FLOPs utilisation (MFU) figures.

The PaLM convention (Chowdhery et al. 2022, appendix B): a token costs ``6 N`` FLOPs for the
matrix multiplications of N weights (2 forward, 4 backward) plus ``12 L T d`` for attention
scores and their weighted sum over a ``T``-token context (L layers of width d; causal masking is
not discounted). Embedding lookups, norms and activations are not counted. MFU is the achieved
share of the device's dense peak: ``tokens/s x FLOPs/token / peak``.
"""

from __future__ import annotations

# Dense bf16 tensor-core peaks (no sparsity) from the vendors' data sheets, by device name.
PEAK_BF16_FLOPS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


def matmul_weights(config) -> int:
    """N: the weights a token multiplies, for a Llama-style ``config``: per layer the q, k, v and o
    projections (k and v at the key/value heads' width) and the gated MLP's three matrices, plus
    the output head."""
    d, layers, inter = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    kv_width = config.num_key_value_heads * (d // config.num_attention_heads)
    return layers * (2 * d * d + 2 * d * kv_width + 3 * d * inter) + d * config.vocab_size


def train_flops_per_token(config, seq_len: int) -> int:
    """FLOPs of one trained token (forward and backward) at context ``seq_len``."""
    return 6 * matmul_weights(config) + 12 * config.num_hidden_layers * seq_len * config.hidden_size


def peak_flops(device_name: str) -> float | None:
    """The dense bf16 peak of a device named like torch.cuda.get_device_name's answer, or None."""
    return next((peak for key, peak in PEAK_BF16_FLOPS.items() if key in device_name.upper()), None)
