"""The optimiser parameter groups of core train, shared with what reruns its steps
(advanced-debugging's probe restores a core train checkpoint's AdamW into the same groups)."""

from __future__ import annotations

import torch


def decay_groups(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(weights with weight decay, parameters without): matrices and embeddings (two or more
    dimensions) decay; norms' scales and biases do not. Frozen parameters are in neither."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    return decay, no_decay
