"""The attention map's PNG grid: long maps pooled so a strong weight stays visible (the PNGs
themselves are checked through the service in test_service.py)."""

from __future__ import annotations

import numpy as np


def test_the_png_grid_pools_a_long_map_keeping_its_largest_weights():
    from apt_viz.attention import max_pooled

    a = np.zeros((200, 200))
    a[150, 3] = 0.9
    pooled = max_pooled(a, 96)
    assert pooled.shape == (67, 67)  # blocks of 3, the last one padded
    assert pooled[50, 1] == 0.9 and pooled.sum() == 0.9
    assert max_pooled(a[:96, :96], 96).shape == (96, 96)
