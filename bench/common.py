"""Shared by the benchmarks: machine description, medians, result files."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import signal
import statistics
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    mem = 0
    try:
        with open("/proc/meminfo") as fh:
            mem = int(fh.readline().split()[1]) * 1024
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((l.split(":", 1)[1].strip() for l in fh if l.startswith("model name")), cpu)
    except OSError:
        pass
    return {"date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": cpu,
            "cores": os.cpu_count(), "ram_gib": round(mem / 2**30, 1), "python": platform.python_version()}


def median(xs):
    return statistics.median(xs)


def percentile(xs, q: float) -> float:
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(q * (len(xs) - 1)))))
    return xs[k]


def save(topic: str, data: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{topic}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=2))
    return path


def verdict(value: float, target: float, higher_is_better: bool) -> str:
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def stop_local_plugins(home: Path) -> None:
    """SIGTERM the plugin processes a gateway's local deployer started under ``home`` (the
    gateway process was terminated; its plugins run in their own process groups)."""
    for state in (home / "gateway" / "local").glob("*.json"):
        for rec in json.loads(state.read_text()).get("replicas", []):
            try:
                os.killpg(rec["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
