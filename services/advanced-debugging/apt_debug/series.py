"""Metric series read from what training runs leave behind: a store model's training_log.jsonl,
a CSV or JSON-lines file, or a TensorBoard folder.

Every reader ends in one shape, ``Series``: for each metric, its values by step. A step logged
twice (a resumed run writes the steps after its checkpoint again) keeps its last occurrence,
and ``repeated_steps`` says how many there were, so the report can say so.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from apt_model import errors
from apt_model.jsonl import json_objects
from apt_model.modeling import trainlog

STEP_KEYS = ("step", "global_step", "iteration", "iter")
MAX_METRICS_BYTES = 512 << 20  # a metrics file larger than this is not a training log


@dataclass
class Series:
    """Values by metric and step; steps ascending in every metric."""

    source: str
    values: dict[str, dict[int, float]] = field(default_factory=dict)
    repeated_steps: int = 0
    vectors: dict[str, dict[int, list[float]]] = field(default_factory=dict)  # e.g. block_grad_norms
    histogram_tags: set[str] = field(default_factory=set)  # a TensorBoard folder's histogram tags

    def steps(self) -> list[int]:
        return sorted({s for by_step in self.values.values() for s in by_step})

    def get(self, metric: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric in step order; empty lists when absent."""
        by_step = self.values.get(metric, {})
        steps = sorted(by_step)
        return steps, [by_step[s] for s in steps]

    def metrics(self) -> list[str]:
        return sorted(self.values)


def to_float(value: Any) -> float | None:
    """A metric value as a float: numbers, and strings such as "NaN", "inf", "1e-3"; None for
    anything else (a label, a list)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def from_rows(rows: Iterable[dict[str, Any]], source: str) -> Series:
    """A series from dict rows that each carry a step (training_log.jsonl, CSV, JSON lines);
    rows without a step get their position (1-based)."""
    series = Series(source)
    seen: set[int] = set()
    for position, row in enumerate(rows, start=1):
        step = _step_of(row, position)
        if step in seen:
            series.repeated_steps += 1
        seen.add(step)
        for key, raw in row.items():
            if isinstance(raw, list) and raw and all(to_float(v) is not None for v in raw):
                series.vectors.setdefault(key, {})[step] = [to_float(v) for v in raw]
                continue
            value = to_float(raw)
            if key in STEP_KEYS or value is None:
                continue
            series.values.setdefault(key, {})[step] = value  # the last occurrence wins
    return _checked(series)


def _step_of(row: dict[str, Any], position: int) -> int:
    for key in STEP_KEYS:
        if key in row:
            value = to_float(row[key])
            if value is None or not math.isfinite(value):
                raise errors.InvalidArgument(f"Row {position} has step {row[key]!r}, which is not a number.")
            return int(value)
    return position


def _checked(series: Series) -> Series:
    finite_any = any(by_step for by_step in series.values.values())
    if not finite_any:
        raise errors.InvalidArgument(
            f"{series.source} holds no numeric metric series (no rows, or no numeric columns); "
            "give a training log with at least a loss per step.")
    return series


def read_model_log(model_folder: Path, name: str) -> Series:
    """The training_log.jsonl of store model ``name``."""
    rows = trainlog.read(model_folder)
    if not rows:
        raise errors.InvalidArgument(
            f"Model {name!r} has no {trainlog.LOG_FILE} (or an empty one): it was not trained by "
            "a platform training service. Give its metrics as a file with --metrics-path instead.")
    return from_rows(rows, f"model {name}")


def read_path(path: Path) -> Series:
    """A metrics file (.csv, .jsonl/.json), a TensorBoard folder (event files inside) or a W&B
    offline run (a folder holding one run-*.wandb log, or that file)."""
    if path.suffix == ".wandb" and path.is_file():
        return read_wandb(path)
    if path.is_dir():
        if any(path.rglob("events.out.tfevents.*")):
            return read_tensorboard(path)
        runs = sorted(path.rglob("run-*.wandb"))
        if len(runs) > 1:
            raise errors.InvalidArgument(f"{path.name!r} holds {len(runs)} W&B runs; give the folder of one.")
        if runs:
            return read_wandb(runs[0])
        files = sorted(p for p in path.rglob("*") if p.suffix in (".csv", ".jsonl", ".json") and p.name != "apt.json")
        if len(files) != 1:
            raise errors.InvalidArgument(
                f"{path.name!r} holds {len(files)} metrics files (.csv/.jsonl) and no TensorBoard event "
                "file; give exactly one.")
        path = files[0]
    if not path.is_file():
        raise errors.NotFound(f"No metrics file at {path}.")
    if path.stat().st_size > MAX_METRICS_BYTES:
        raise errors.ResourceExhausted(f"{path.name} is larger than {MAX_METRICS_BYTES >> 20} MiB.")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".csv":
        return from_rows(csv.DictReader(text.splitlines()), path.name)
    return from_rows(_json_lines(text, path.name), path.name)


def _json_lines(text: str, name: str) -> list[dict[str, Any]]:
    return [row for _, row in json_objects(text.splitlines(), name)]


def read_tensorboard(folder: Path) -> Series:
    """Every scalar tag of a TensorBoard folder (all its runs), CRC-checked (apt_debug.tfevents)."""
    from apt_debug import tfevents

    series = Series(folder.name)
    for events in sorted({p.parent for p in folder.rglob("events.out.tfevents.*")}):
        run = tfevents.read_run(events)
        series.histogram_tags |= run.histogram_tags
        series.repeated_steps += run.repeated
        for tag, by_step in run.values.items():
            merged = series.values.setdefault(tag, {})
            series.repeated_steps += len(merged.keys() & by_step.keys())
            merged.update(by_step)
    return _checked(series)


def read_wandb(log: Path) -> Series:
    """The history of a W&B offline run log (every logged number by step)."""
    from apt_debug.wandb_offline import history

    return from_rows([{"step": step, **values} for step, values in history(log).items()], log.parent.name)
