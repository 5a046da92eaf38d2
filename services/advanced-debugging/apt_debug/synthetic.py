"""Synthetic training-metric series with planted events, for the benchmark, the tests and the
demo: a decaying noisy loss, a warm-up/cosine learning rate, a log-normal gradient norm and a
steady throughput, with loss spikes, NaN, a learning rate x50 for three steps and throughput
drops planted at known steps (``Planted.events``). Generated from a seed, nothing downloaded.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from apt_model.modeling.schedule import warmup_cosine


@dataclass
class Planted:
    rows: list[dict]                                   # training_log.jsonl-shaped rows
    events: list[tuple[str, int]] = field(default_factory=list)  # (kind, step), as anomaly.Finding kinds


def planted_series(seed: int, steps: int = 300, warmup: int = 20) -> Planted:
    """One run; about one series in five is clean, the others carry 1-4 events."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.005, 0.04)                   # relative noise of the loss
    start, floor, tau = rng.uniform(6, 9), rng.uniform(1.5, 3), rng.uniform(40, 120)
    t = np.arange(1, steps + 1)
    clean = floor + (start - floor) * np.exp(-t / tau)
    loss = clean * (1 + noise * rng.standard_normal(steps))
    lr = np.array([3e-3 * warmup_cosine(s - 1, warmup, steps) for s in t])
    grad = np.exp(rng.normal(0.0, 0.15, steps))
    speed = 5000 * (1 + 0.03 * rng.standard_normal(steps))
    events: list[tuple[str, int]] = []
    if rng.random() > 0.2:
        free = list(range(warmup + 30, steps - 10, 12))  # event slots 12 steps apart, after the fast drop
        rng.shuffle(free)
        for slot in free[: rng.integers(1, 5)]:
            kind = rng.choice(["loss_spike", "loss_spike", "nonfinite", "lr_off_schedule", "throughput_drop"])
            i = slot - 1
            if kind == "loss_spike":
                big = rng.random() < 0.5
                loss[i] = clean[i] * (rng.uniform(3, 6) if big else 1 + noise * rng.uniform(15, 40))
                grad[i] *= rng.uniform(3, 10)
            elif kind == "nonfinite":
                loss[i] = math.nan
                grad[i] = math.inf
            elif kind == "lr_off_schedule":
                lr[i:i + 3] *= 50
            else:
                speed[i:i + 5] *= rng.uniform(0.1, 0.4)
            events.append((str(kind), slot))
    rows = [{"step": int(s), "loss": float(loss[s - 1]), "lr": float(lr[s - 1]), "grad_norm": float(grad[s - 1]),
             "tokens_per_s": float(speed[s - 1])} for s in t]
    return Planted(rows, sorted(events, key=lambda e: e[1]))


def main(argv: list[str]) -> None:
    """``python -m apt_debug.synthetic DIR [SEED]``: DIR/metrics.jsonl and DIR/events.json."""
    folder = Path(argv[0])
    seed = int(argv[1]) if len(argv) > 1 else 7
    folder.mkdir(parents=True, exist_ok=True)
    planted = planted_series(seed)
    while len(planted.events) < 3:  # the demo shows a few findings
        seed += 1
        planted = planted_series(seed)
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in planted.rows), encoding="utf-8")
    (folder / "events.json").write_text(json.dumps(planted.events), encoding="utf-8")
    print(f"{folder / 'metrics.jsonl'}: {len(planted.rows)} steps, planted {planted.events}")


if __name__ == "__main__":
    main(sys.argv[1:])
