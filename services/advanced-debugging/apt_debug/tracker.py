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


def write_tensorboard(series: Series, folder: Path) -> int:
    """Every metric as a scalar tag, one event per step; returns the scalars written."""
    from torch.utils.tensorboard import SummaryWriter

    written = 0
    writer = SummaryWriter(log_dir=str(folder), max_queue=1000, flush_secs=3600)
    try:
        for metric in series.metrics():
            for step, value in zip(*series.get(metric)):
                writer.add_scalar(metric, value, global_step=step)
                written += 1
    finally:
        writer.close()
    return written


def check_round_trip(series: Series, folder: Path) -> list[str]:
    """What differs between the series and the event files read back ([] when complete)."""
    back = read_tensorboard(folder)
    problems = []
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


def export(series: Series, folder: Path) -> dict[str, Any]:
    """Write and verify; DataLoss when the files do not hold everything."""
    require_tensorboard()
    written = write_tensorboard(series, folder)
    problems = check_round_trip(series, folder)
    if problems:
        raise errors.DataLoss("The TensorBoard export is incomplete: " + "; ".join(problems[:5]))
    return {"steps": len(series.steps()), "scalars": written, "tags": series.metrics(),
            "files": sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()),
            "next_step": "apt-model data pull NAME, then: tensorboard --logdir NAME/tensorboard",
            "warnings": [] if not series.repeated_steps else [
                f"{series.repeated_steps} step values were logged more than once (a resumed run); "
                "the last occurrence of each step was exported."]}

