"""The learning-rate schedule every training service uses: linear warm-up, then cosine decay."""

from __future__ import annotations

import math


def warmup_cosine(step: int, warmup: int, total: int, floor: float = 0.1) -> float:
    """The multiplier of the peak learning rate at optimiser step ``step`` (0-based): linear
    from 1/warmup up to 1 over the first ``warmup`` steps, then a cosine down to ``floor`` at
    step ``total`` (and ``floor`` after it)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
