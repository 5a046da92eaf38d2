"""apt_model.modeling.flops: the FLOPs an MFU figure divides by, checked against torch's own
counter (torch.utils.flop_counter) on a real training step of a preset model."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from apt_model.modeling.flops import matmul_weights, peak_flops, train_flops_per_token
from apt_model.modeling.preset import create_model, preset_config


def test_the_matmul_part_is_what_torch_counts_for_a_training_step():
    config = preset_config("tiny", 300)
    config.num_key_value_heads = 2  # grouped-query attention: k and v are narrower than q
    model = create_model(config, seed=0)
    batch, seq = 2, 32
    ids = torch.randint(0, 300, (batch, seq))
    with FlopCounterMode(display=False) as counter:
        model(input_ids=ids, labels=ids).loss.backward()
    # torch's CPU attention kernel is not in the counter's table, so it counts the matmuls only;
    # the attention term is checked on explicit matmuls below
    counted = counter.get_total_flops() / (batch * seq)
    assert counted == 6 * matmul_weights(config)
    assert train_flops_per_token(config, seq) == counted + 12 * config.num_hidden_layers * seq * config.hidden_size


def test_the_attention_term_matches_torch_on_explicit_matmuls():
    """12 L T d: QK^T and the weighted sum, 2 T d each per token forward, times 3 with backward."""
    seq, d = 16, 8
    q, k, v = (torch.randn(1, seq, d, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        (torch.softmax(q @ k.transpose(1, 2), -1) @ v).sum().backward()
    assert counter.get_total_flops() / seq == 12 * seq * d


def test_peaks_are_known_by_device_name():
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989.4e12
    assert peak_flops("NVIDIA H200") == 989.4e12
    assert peak_flops("Tesla T4") is None
