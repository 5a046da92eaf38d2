"""HParams-style run filters of the dashboard (tensorflow/tensorboard#4121): each training setting
that differs between the runs, as a value range (numbers) or a set of values to keep (anything
else), and each final metric as a range. The page builds the controls from ``run_filters``
(dashboard.js); the curves and the parallel coordinates show only the runs that pass them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

MAX_CHOICES = 12  # a setting with more distinct non-numeric values is not offered as a filter


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _label(v: Any) -> str:
    """How a non-numeric setting value reads in a checkbox ('(unset)' where a run lacks it)."""
    if v is None or v == "":
        return "(unset)"
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)


def setting_filters(params: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One filter per setting whose value differs between the runs (``params`` in run order)."""
    out = []
    for key in sorted(set().union(*params)):
        values = [p.get(key) for p in params]
        if len({json.dumps(v, sort_keys=True) for v in values}) < 2:
            continue  # the same in every run: nothing to filter by
        if all(_number(v) for v in values):
            out.append({"key": key, "group": "setting", "kind": "range", "values": [float(v) for v in values]})
            continue
        labels = [_label(v) for v in values]
        options = sorted(set(labels))
        if len(options) <= MAX_CHOICES:
            out.append({"key": key, "group": "setting", "kind": "choice", "values": labels, "options": options})
    return out


def final_metrics(loss: np.ndarray, val: list[tuple[int, float]]) -> dict[str, float]:
    """The final metrics a run is filtered by: its last and lowest finite loss, its last val_loss."""
    finite = loss[np.isfinite(loss)]
    out = {}
    if finite.size:
        out = {"last loss": float(finite[-1]), "lowest loss": float(finite.min())}
    if val and math.isfinite(val[-1][1]):
        out["last val_loss"] = float(val[-1][1])
    return out


def metric_filters(metrics: list[dict[str, float]]) -> list[dict[str, Any]]:
    """One range filter per final metric every run has."""
    keys = [k for k in ("last loss", "lowest loss", "last val_loss") if all(k in m for m in metrics)]
    return [{"key": k, "group": "final metric", "kind": "range", "values": [m[k] for m in metrics]} for k in keys]


def run_filters(names: list[str], params: list[dict[str, Any]], metrics: list[dict[str, float]]) -> dict[str, Any]:
    """What dashboard.js needs: the runs (in the order of the parallel coordinates) and their filters."""
    return {"names": names, "filters": setting_filters(params) + metric_filters(metrics)}
