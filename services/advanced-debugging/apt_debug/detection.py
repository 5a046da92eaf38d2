"""The anomaly-detection job and the tracker export: which series a request names (a store
model's training log, a metrics file or dataset), and the report written into the store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apt_model import errors
from apt_model.runtime import joblog
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug import anomaly, plots, tracker, wandb_offline
from apt_debug.probe import dump_json, finite_only, write_report
from apt_debug.series import Series, from_rows, read_model_log, read_path

OPERATION = "anomaly-detection"


@dataclass(frozen=True)
class SeriesSource:
    """Exactly one of: a store model, a resolved metrics path, a store dataset, a training job."""

    model: str = ""
    path: str = ""
    dataset: str = ""
    job: str = ""

    @classmethod
    def checked(cls, model: str, path: str, dataset: str, job: str = "") -> "SeriesSource":
        given = [x for x in (model, path, dataset, job) if x]
        if len(given) != 1:
            raise errors.InvalidArgument(
                "Name exactly one series to read: a store model (--name), a metrics file or TensorBoard "
                "folder (--metrics-path), a store dataset (--metrics-dataset) or a training job (--job-id); "
                f"got {len(given)}.")
        if job:
            joblog.job_log_path(Path("."), job)  # InvalidArgument unless it is a job id
        return cls(model, path, dataset, job)

    def stem(self) -> str:
        """The default output name's first part."""
        if self.job:
            return "job-" + self.job.partition(":")[2]
        return self.model or self.dataset or Path(self.path).stem.replace(".", "-") or "metrics"

    def parent(self) -> str:
        return self.model or self.dataset

    def check_exists(self, store: Store) -> None:
        if self.model:
            store.model(self.model)
        elif self.dataset:
            store.dataset(self.dataset)
        elif self.job:
            self._job_log(store)

    def _job_log(self, store: Store) -> Path:
        """The job's running log in the store (written by the platform's training loop as each step ends)."""
        path = joblog.job_log_path(store.root, self.job)
        if not path.is_file():
            raise errors.NotFound(
                f"No training log for job {self.job!r}: training jobs keep one from their first step on, and "
                f"each service its {joblog.KEPT} newest; check the id with 'apt-model job list'.")
        return path

    def read(self, store: Store) -> Series:
        if self.model:
            return read_model_log(store.model(self.model).path, self.model)
        if self.dataset:
            series = read_path(store.dataset(self.dataset).path)
            series.source = f"dataset {self.dataset}"
            return series
        if self.job:
            rows = joblog.read_job_log(self._job_log(store))
            if not rows:
                raise errors.InvalidArgument(f"Job {self.job!r} has not finished a training step yet; try again "
                                             "after its first step.")
            return from_rows(rows, f"job {self.job}")
        return read_path(Path(self.path))


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
