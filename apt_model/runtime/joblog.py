"""A training job's running log: ``APT_HOME/job-logs/<service>/<hex>.jsonl``.

Each row of ``training_log.jsonl`` (``apt_model.modeling.trainlog``) is appended here as its
step ends, so a reader (advanced-debugging's anomaly detection, given a job id) sees every
finished step of a job that still runs, and after it ended or failed. The path is derived from
the job id alone. The folder of each service keeps its ``KEPT`` newest logs: starting a log
removes the older ones. Torch-free: the job runtime of every image makes these.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

from apt_model import errors

FOLDER = "job-logs"
KEPT = 200  # per service: the newest logs by modification time
_JOB_ID = re.compile(r"([a-z0-9][a-z0-9._-]{0,63}):([a-z0-9]{1,64})")


def job_log_path(root: Path, job_id: str) -> Path:
    """Where the training job ``job_id`` ("<service>:<hex>", as ``apt-model job list`` prints it)
    keeps its running log in the store at ``root``: derived from the id alone, so a service that
    reads it (advanced-debugging) needs no access to the job itself. InvalidArgument for
    anything that is not a job id (nothing else can name a path here)."""
    match = _JOB_ID.fullmatch(job_id) if isinstance(job_id, str) else None
    if match is None:
        raise errors.InvalidArgument(
            f"{job_id!r} is not a job id (expected '<service>:<hex>', as printed by 'apt-model job list').")
    return Path(root) / FOLDER / match.group(1) / f"{match.group(2)}.jsonl"


class JobLog:
    """A job's running log: the rows so far written at the start (a resumed run's earlier
    steps), then each row appended and flushed as its step ends, so a reader sees every
    finished step of a running job."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def start(self, rows: Iterable[dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "wb") as fh:
            fh.writelines(_line(r) for r in rows)
        _keep_newest(self.path.parent, KEPT)

    def append(self, row: dict[str, Any]) -> None:
        with open(self.path, "ab") as fh:
            fh.write(_line(row))


def _line(row: dict[str, Any]) -> bytes:
    """One row as a JSON line. json.dumps escapes every non-ASCII character and writes a NaN or
    infinite loss as NaN/Infinity (Python's json reads them back), so the line is ASCII and no
    text encoding is involved in writing or reading it."""
    return json.dumps(row).encode() + b"\n"


def _keep_newest(folder: Path, kept: int) -> None:
    """Remove all but the ``kept`` most recently written logs of ``folder`` (a running job's log
    is written at every step, so it is among the newest)."""
    def age(path: Path) -> float:
        try:
            return path.stat().st_mtime
        except FileNotFoundError:  # removed meanwhile by another job's start
            return math.inf

    logs = sorted(folder.glob("*.jsonl"), key=age, reverse=True)
    for old in logs[kept:]:
        old.unlink(missing_ok=True)


def read_job_log(path: Path) -> list[dict[str, Any]]:
    """The complete rows of a job's log (a last line still being written is left out)."""
    lines = Path(path).read_bytes().split(b"\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]  # the part after the last newline is unfinished
