"""Min/max-preserving downsampling of long curves, so a one-step loss spike survives on a
100k-step log where stride sampling (every k-th point) almost always drops it.

The x range is cut into equal buckets of points; each bucket keeps the index of its smallest
and its largest value (in x order), plus the first and last point of the curve: the envelope
of the curve at the drawn resolution (the M4/"MinMax" preselection LTTB builds on). Non-finite
values are always kept: they are the steps a reader most wants to see.
"""

from __future__ import annotations

import numpy as np


def minmax_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Sorted indices of at most ``max_points`` (+ non-finite points) of ``y`` that keep each
    bucket's extremes."""
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    finite = np.isfinite(y)
    buckets = max(1, (max_points - 2) // 2)
    edges = np.linspace(1, n - 1, buckets + 1).astype(np.int64)
    keep = [np.array([0, n - 1]), np.flatnonzero(~finite)]
    filled_low = np.where(finite, y, np.inf)
    filled_high = np.where(finite, y, -np.inf)
    for lo, hi in zip(edges[:-1], edges[1:]):
        if hi <= lo:
            continue
        keep.append(np.array([lo + np.argmin(filled_low[lo:hi]), lo + np.argmax(filled_high[lo:hi])]))
    return np.unique(np.concatenate(keep))


def stride_indices(n: int, max_points: int) -> np.ndarray:
    """Every k-th index: the baseline the benchmark compares against."""
    step = max(1, -(-n // max_points))
    return np.arange(0, n, step)
