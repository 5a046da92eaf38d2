"""Which series a request names: exactly one of a store model's training log, a metrics path the
service resolved inside its data roots, a store dataset, or a running job's log. A job id is
checked before any path is built from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from apt_model import errors
from apt_model.runtime import joblog
from apt_model.store import Store

from apt_debug.series import Series, from_rows, read_model_log, read_path


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
