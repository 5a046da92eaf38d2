"""The anomaly-detection job and the tracker exports: a series (``apt_debug.source``) read, checked
for anomalies or converted, and the report written into the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug import anomaly, plots, tracker, wandb_offline
from apt_debug.probe import dump_json, finite_only, write_report
from apt_debug.source import SeriesSource

OPERATION = "anomaly-detection"


def run_anomaly_detection(store: Store, source: SeriesSource, output: str, settings: anomaly.Settings,
                          overwrite: bool, ctx: JobContext) -> dict[str, Any]:
    ctx.report(progress=0.0, stage="read", message=f"reading {source.stem()}")
    series = source.read(store)
    ctx.check_cancelled()
    ctx.report(progress=0.3, stage="detect", message=f"{len(series.steps())} steps")
    findings = anomaly.detect(series, settings)
    report = anomaly.report(series, findings)
    report["output"] = output
    loss = anomaly.pick(series, anomaly.LOSS_NAMES)

    def files(folder: Path) -> None:
        dump_json(folder / "anomalies.json", report)
        if loss:
            plots.anomalies_png(*series.get(loss), report["findings"], folder / "anomalies.png",
                                f"{series.source}: {len(findings)} finding(s)")

    write_report(store, output, operation=OPERATION, parent=source.parent(), overwrite=overwrite,
                 parameters={"spike_z": settings.spike_z, "window": settings.window, "source": series.source},
                 files=files)
    counts = ", ".join(f"{kind} {n}" for kind, n in sorted(report["counts"].items()))
    ctx.report(progress=1.0, stage="done", message=f"{len(findings)} finding(s)" + (f": {counts}" if counts else ""))
    return finite_only(report)


def export_tensorboard(store: Store, source: SeriesSource, output: str, overwrite: bool) -> dict[str, Any]:
    """The series as TensorBoard event files in store dataset ``output``, verified."""
    tracker.require_tensorboard()
    series = source.read(store)
    result: dict[str, Any] = {}

    hparams = store.model(source.model).meta.get("lineage", {}).get("parameters", {}) if source.model else {}

    def files(folder: Path) -> None:
        result.update(tracker.export(series, folder / "tensorboard", hparams))

    write_report(store, output, operation="export-tensorboard", parent=source.parent(), overwrite=overwrite,
                 parameters={"source": series.source}, files=files)
    result["location"] = output
    result["next_step"] = result["next_step"].replace("NAME", output)
    return result


def export_wandb(store: Store, source: SeriesSource, output: str, overwrite: bool) -> dict[str, Any]:
    """The series as a W&B offline run in store dataset ``output``, verified."""
    wandb_offline.require_wandb()
    series = source.read(store)
    result: dict[str, Any] = {}

    def files(folder: Path) -> None:
        result.update(wandb_offline.export(series, folder, source.stem()))

    write_report(store, output, operation="export-wandb-offline", parent=source.parent(), overwrite=overwrite,
                 parameters={"source": series.source}, files=files)
    result["location"] = output
    result["next_step"] = result["next_step"].replace("NAME", output)
    return result
