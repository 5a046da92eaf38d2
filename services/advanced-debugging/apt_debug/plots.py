"""The report pictures (matplotlib, Agg: no display on a service)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - after the backend is chosen

VERDICT_COLOURS = {"healthy": "tab:green", "vanishing": "tab:blue", "exploding": "tab:red",
                   "dead": "black", "frozen": "tab:gray"}


def gradient_flow_png(report: dict[str, Any], path: Path) -> None:
    """The classic plot_grad_flow, per block: gradient norm and update/weight ratio (log scale),
    bars coloured by verdict."""
    rows = report["blocks"]
    names = [r["name"] for r in rows]
    fig, axes = plt.subplots(2, 1, figsize=(max(6, 0.5 * len(rows) + 2), 6), sharex=True)
    for ax, key, label in ((axes[0], "grad_norm", "gradient norm"),
                           (axes[1], "update_weight_ratio", "AdamW update / weight")):
        values = [_positive(r[key]) for r in rows]
        ax.bar(range(len(rows)), values, color=[VERDICT_COLOURS.get(r["verdict"], "tab:purple") for r in rows])
        ax.set_yscale("log")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[1].set_xticks(range(len(rows)), names, rotation=45, ha="right")
    axes[0].set_title(f"gradient flow of {report.get('model', '')} over {report['steps']} step(s): "
                      f"{report['verdict']}", fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in VERDICT_COLOURS.values()]
    fig.legend(handles, list(VERDICT_COLOURS), fontsize=7, loc="lower center", ncol=len(VERDICT_COLOURS))
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def anomalies_png(series_steps: list[int], losses: list[float], findings: list[dict[str, Any]], path: Path,
                  title: str) -> None:
    """The loss curve with each finding marked at its step."""
    fig, ax = plt.subplots(figsize=(9, 4))
    ax.plot(series_steps, [v if math.isfinite(v) else math.nan for v in losses], lw=1, color="tab:blue")
    colours = {"critical": "tab:red", "warning": "tab:orange", "info": "tab:gray"}
    for f in findings:
        ax.axvline(f["step"], color=colours.get(f["severity"], "tab:purple"), alpha=0.6, lw=1)
        ax.annotate(f["kind"], (f["step"], 1.0), xycoords=("data", "axes fraction"), rotation=90,
                    fontsize=6, va="top")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _positive(value: float) -> float:
    return value if math.isfinite(value) and value > 0 else 1e-12
