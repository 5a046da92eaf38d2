"""Min/max downsampling keeps the spikes of a long log; stride sampling drops them."""

from __future__ import annotations

import numpy as np

from apt_model.modeling import trainlog
from apt_model.store import Store
from apt_viz.dashboard import drawn_indices, read_curves
from apt_viz.downsample import minmax_indices, stride_indices


def noisy_log(steps: int, spikes: list[int]) -> np.ndarray:
    rng = np.random.default_rng(0)
    loss = 2.0 + 6.0 * np.exp(-np.arange(steps) / (steps / 5)) + rng.normal(0, 0.05, steps)
    loss[spikes] *= 4.0
    return loss


def test_every_spike_of_a_100k_step_log_survives_2000_points():
    spikes = sorted(np.random.default_rng(1).choice(np.arange(100, 99_999), 30, replace=False).tolist())
    loss = noisy_log(100_000, spikes)
    kept = minmax_indices(loss, 2000)
    assert len(kept) <= 2000
    assert set(spikes) <= set(kept.tolist())
    assert sum(s in set(stride_indices(len(loss), 2000).tolist()) for s in spikes) < 5  # stride: ~1 in 50


def test_two_spikes_in_one_bucket_are_both_drawn(tmp_path):
    loss = noisy_log(20_000, [5000, 5003])
    assert not {5000, 5003} <= set(minmax_indices(loss, 2000).tolist())  # one bucket keeps one maximum
    store = Store(tmp_path)
    with store.create("models", "m", operation="train") as folder:
        trainlog.write(folder, [trainlog.row(i + 1, float(v), 1e-3, 1.0, 0.1, 100) for i, v in enumerate(loss)])
    assert {5000, 5003} <= set(drawn_indices(read_curves(store.model("m")), 2000).tolist())


def test_non_finite_losses_are_kept_and_short_logs_untouched():
    loss = noisy_log(10_000, [])
    loss[[10, 7000]] = [np.inf, np.nan]
    assert {10, 7000} <= set(minmax_indices(loss, 500).tolist())
    assert minmax_indices(loss[:300], 500).tolist() == list(range(300))
