"""A metric series written as TensorBoard event files (torch.utils.tensorboard), then read back
with TensorBoard's own EventAccumulator: the export is complete only when every scalar comes
back bit-equal (event files store float32, so values are compared as float32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from apt_model import errors

from apt_debug.series import Series, read_tensorboard


def require_tensorboard() -> None:
    try:
        import tensorboard  # noqa: F401
        from torch.utils import tensorboard as _  # noqa: F401
    except ImportError as exc:
        raise errors.FailedPrecondition(
            f"The tensorboard package is not installed in this service ({exc}); install the plugin's "
            "requirements.txt.") from exc


MAX_HISTOGRAM_STEPS = 100  # histograms per vector tag, evenly spaced over the run


def write_tensorboard(series: Series, folder: Path, hparams: dict[str, Any] | None = None) -> dict[str, int]:
    """Every metric as a scalar tag, one event per step; every vector metric (per-block
    gradient norms) as a histogram at up to MAX_HISTOGRAM_STEPS steps; the run's settings as
    hparams. Returns what was written."""
    from torch.utils.tensorboard import SummaryWriter

    counts = {"scalars": 0, "histograms": 0, "hparams": 0}
    writer = SummaryWriter(log_dir=str(folder), max_queue=1000, flush_secs=3600)
    try:
        for metric in series.metrics():
            for step, value in zip(*series.get(metric)):
                writer.add_scalar(metric, value, global_step=step)
                counts["scalars"] += 1
        for tag, by_step in sorted(series.vectors.items()):
            steps = sorted(by_step)
            for step in steps[:: max(1, -(-len(steps) // MAX_HISTOGRAM_STEPS))]:
                writer.add_histogram(tag, np.asarray(by_step[step], dtype=np.float64), global_step=step)
                counts["histograms"] += 1
        kept = {k: v for k, v in (hparams or {}).items() if isinstance(v, (int, float, str, bool))}
        if kept:
            loss = series.get("loss")[1]
            final = {"hparam/final_loss": loss[-1]} if loss else {}
            writer.add_hparams(kept, final, run_name="hparams")
            counts["hparams"] = len(kept)
    finally:
        writer.close()
    return counts


def check_round_trip(series: Series, folder: Path) -> list[str]:
    """What differs between the series and the event files read back ([] when complete)."""
    back = read_tensorboard(folder)
    problems = [f"{tag}: no histogram came back" for tag in series.vectors if tag not in back.histogram_tags]
    for metric in series.metrics():
        steps, values = series.get(metric)
        got_steps, got = back.get(metric)
        if got_steps != steps:
            problems.append(f"{metric}: {len(got_steps)} of {len(steps)} steps came back")
            continue
        want = np.asarray(values, dtype=np.float32)
        have = np.asarray(got, dtype=np.float32)
        if not np.array_equal(want.view(np.int32), have.view(np.int32)) and not _equal_nan_aware(want, have):
            problems.append(f"{metric}: values differ after the round trip")
    return problems


def _equal_nan_aware(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal as float32, NaN matching NaN (a NaN's payload bits may change on the way)."""
    return bool(np.all((a == b) | (np.isnan(a) & np.isnan(b))))


def export(series: Series, folder: Path, hparams: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write and verify; DataLoss when the files do not hold everything."""
    require_tensorboard()
    written = write_tensorboard(series, folder, hparams)
    problems = check_round_trip(series, folder)
    if problems:
        raise errors.DataLoss("The TensorBoard export is incomplete: " + "; ".join(problems[:5]))
    return {"steps": len(series.steps()), "scalars": written["scalars"], "histograms": written["histograms"],
            "hparams": written["hparams"], "tags": series.metrics(),
            "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
            "next_step": "apt-model data pull NAME, then: tensorboard --logdir NAME/tensorboard",
            "warnings": [] if not series.repeated_steps else [
                f"{series.repeated_steps} step values were logged more than once (a resumed run); "
                "the last occurrence of each step was exported."]}

