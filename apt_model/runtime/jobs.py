"""Long-running operations (AIP-151 style) run by a service's job manager.

A job is started by a plugin's start call, which returns its id at once. The work runs
in a worker thread of the service and outlives the client's connection; clients poll
``GetJob`` or follow ``WatchJob``. Work functions receive a :class:`JobContext`: they
report progress through it and call ``ctx.check_cancelled()`` between steps, which raises
:class:`~apt_model.errors.Cancelled` once the job was cancelled. A work function returns a
dict that must fit the result message its operation declares (``apt_model.runtime.results``).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import threading
import time
import traceback
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

from google.protobuf.message import Message

from apt_model import errors
from apt_model.runtime import results
from apt_model.runtime.joblog import JobLog, job_log_path
from apt_model.runtime.settings import Settings

log = logging.getLogger(__name__)


class JobState(enum.Enum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass(frozen=True)
class JobSnapshot:
    """An immutable view of a job at one moment; what GetJob and WatchJob send."""

    id: str
    operation: str  # e.g. "apt.plugins.model_pruning.v1.Pruning/StartPrune"
    state: JobState
    progress: float = 0.0  # 0..1
    stage: str = ""
    message: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    result: dict[str, Any] | None = None  # when SUCCEEDED: the JSON view of ``response``
    response: Message | None = None  # when SUCCEEDED: the operation's declared result message
    error_code: str = ""  # gRPC status code name when FAILED/CANCELLED
    error_message: str = ""
    created: float = 0.0  # unix seconds
    updated: float = 0.0
    eta_seconds: float = -1.0  # time left, -1 when unknown
    labels: dict[str, str] = field(default_factory=dict)
    reads: tuple[str, ...] = ()   # store entries, "models/<name>" or "datasets/<name>"
    writes: tuple[str, ...] = ()

    def uses(self, entry: str) -> bool:
        """Whether this job, still active, reads or writes the store entry ``entry``."""
        return not self.state.done and (entry in self.reads or entry in self.writes)


def entries(kind: str, *names: str) -> tuple[str, ...]:
    """The store references ("models/<name>") of the non-empty ``names``: a job's reads or writes."""
    return tuple(dict.fromkeys(f"{kind}/{n}" for n in names if n))


WorkFn = Callable[["JobContext"], dict[str, Any]]


class JobContext:
    """Handed to a job's work function: progress reporting and cancellation."""

    def __init__(self, manager: "JobManager", job_id: str):
        self._manager = manager
        self.job_id = job_id
        # where a training loop writes each step's row as it ends (apt_model.runtime.joblog);
        # None when the manager has no store (tests' and tools' contexts)
        self.running_log = JobLog(job_log_path(manager.home, job_id)) if manager.home is not None else None
        self._cancel = threading.Event()
        self.warnings: list[str] = []

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check_cancelled(self) -> None:
        """Raise Cancelled when the job was cancelled; call it between units of work."""
        if self._cancel.is_set():
            raise errors.Cancelled(f"Job {self.job_id} was cancelled.")

    def report(
        self,
        progress: float | None = None,
        stage: str | None = None,
        message: str | None = None,
        eta_seconds: float | None = None,
        **metrics: float,
    ) -> None:
        """Publish progress (0..1), a stage name, a message and numeric metrics."""
        self._manager._update(
            self.job_id,
            progress=progress,
            stage=stage,
            message=message,
            eta_seconds=eta_seconds,
            metrics={k: float(v) for k, v in metrics.items()},
        )

    def warn(self, text: str) -> None:
        """Record a warning; it is returned in the job result under ``warnings``."""
        self.warnings.append(text)
        log.warning("job %s: %s", self.job_id, text)


class JobManager:
    """Runs jobs on a bounded pool of worker threads, with a bounded queue, and keeps their state."""

    def __init__(self, service: str, max_workers: int = 2, keep_finished: int = 500,
                 max_queued: int = Settings.max_queued_jobs, home: Path | None = None):
        self.service = service  # job ids are "<service>:<hex>" so the gateway can route them
        self.home = home  # APT_HOME: its job-logs/ folder holds the jobs' running training logs
        self.max_queued = max_queued  # jobs waiting for a worker (running ones not counted)
        self._max_workers = max_workers
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="job")
        self._lock = threading.Condition()
        self._jobs: dict[str, JobSnapshot] = {}
        self._contexts: dict[str, JobContext] = {}
        self._keep_finished = keep_finished

    def start(self, operation: str, work: WorkFn, labels: dict[str, str] | None = None, *,
              reads: tuple[str, ...] = (), writes: tuple[str, ...] = ()) -> JobSnapshot:
        """Queue ``work``. ``reads``/``writes`` name the store entries it uses (``entries()``):
        the gateway refuses to remove or replace them while the job is active, and this
        service refuses, atomically with the start, a job that would write what an active job
        reads or writes, or read what one writes (FAILED_PRECONDITION naming that job).
        ``operation`` ("/<package>.<Service>/<Method>") must declare its result message
        (LookupError saying what to add otherwise): ``work``'s dict becomes one."""
        result_type = results.result_class(operation)
        for ref in (*reads, *writes):
            kind, _, name = ref.partition("/")
            if kind not in ("models", "datasets") or not name:
                raise ValueError(f"{ref!r} is not a store reference ('models/<name>' or 'datasets/<name>')")
        job_id = f"{self.service}:{uuid.uuid4().hex[:16]}"
        now = time.time()
        snap = JobSnapshot(
            id=job_id, operation=operation, state=JobState.QUEUED,
            created=now, updated=now, labels=dict(labels or {}), reads=tuple(reads), writes=tuple(writes),
        )
        ctx = JobContext(self, job_id)
        with self._lock:
            self._refuse_conflict(reads, writes)
            states = Counter(s.state for s in self._jobs.values())
            idle_workers = max(0, self._max_workers - states[JobState.RUNNING])
            waiting = max(0, states[JobState.QUEUED] - idle_workers)  # not yet picked up by an idle worker
            if waiting >= self.max_queued:
                raise errors.ResourceExhausted(
                    f"{waiting} jobs are already waiting in {self.service}; try again when some finish, or "
                    f"raise APT_MAX_QUEUED_JOBS (now {self.max_queued}).")
            self._jobs[job_id] = snap
            self._contexts[job_id] = ctx
            self._forget_old()
        self._pool.submit(self._run, ctx, work, result_type)
        return snap

    def _run(self, ctx: JobContext, work: WorkFn, result_type: type[Message]) -> None:
        if ctx.cancelled:
            self._finish(ctx.job_id, JobState.CANCELLED, code="CANCELLED", message="Cancelled before it started.")
            return
        self._update(ctx.job_id, state=JobState.RUNNING)
        try:
            result = work(ctx) or {}
        except errors.Cancelled as exc:
            self._finish(ctx.job_id, JobState.CANCELLED, code="CANCELLED", message=exc.message)
        except errors.AptError as exc:
            log.info("job %s failed: %s", ctx.job_id, exc.message)
            self._finish(ctx.job_id, JobState.FAILED, code=exc.code.name, message=exc.message)
        except Exception as exc:  # noqa: BLE001 - the one place a job's unknown error is caught
            if (full := errors.disk_full(exc)) is not None:
                log.warning("job %s failed: %s (%s)", ctx.job_id, full.message, exc)
                self._finish(ctx.job_id, JobState.FAILED, code=full.code.name, message=full.message)
                return
            log.error("job %s crashed:\n%s", ctx.job_id, traceback.format_exc())
            self._finish(
                ctx.job_id, JobState.FAILED, code="INTERNAL",
                message=f"Internal error ({type(exc).__name__}); see the service log for job {ctx.job_id}.",
            )
        else:
            if ctx.warnings:
                result = {**result, "warnings": list(ctx.warnings)}
            try:
                response = results.to_message(result_type, result)
            except results.ResultMismatch as exc:  # a bug in the service: said, never dropped
                name = result_type.DESCRIPTOR.full_name
                log.error("job %s returned a result that does not fit %s: %s", ctx.job_id, name, exc)
                self._finish(ctx.job_id, JobState.FAILED, code="INTERNAL", message=(
                    f"The service's result does not fit its declared type {name}: {exc}. This is a bug in "
                    f"the service ({self.service}); its log has job {ctx.job_id}."))
                return
            self._finish(ctx.job_id, JobState.SUCCEEDED, result=results.json_view(response), response=response)

    def _finish(self, job_id: str, state: JobState, *, result=None, response=None, code: str = "",
                message: str = "") -> None:
        self._update(
            job_id, state=state, result=result, response=response, error_code=code, error_message=message,
            progress=1.0 if state is JobState.SUCCEEDED else None, eta_seconds=0.0,
        )

    def _update(self, job_id: str, *, metrics: dict[str, float] | None = None, **changes) -> None:
        changes = {k: v for k, v in changes.items() if v is not None}
        if "progress" in changes:
            changes["progress"] = min(1.0, max(0.0, float(changes["progress"])))
        with self._lock:
            snap = self._jobs.get(job_id)
            if snap is None or snap.state.done:
                return
            if metrics:
                changes["metrics"] = {**snap.metrics, **metrics}
            self._jobs[job_id] = replace(snap, updated=time.time(), **changes)
            self._lock.notify_all()

    def get(self, job_id: str) -> JobSnapshot:
        with self._lock:
            snap = self._jobs.get(job_id)
        if snap is None:
            raise errors.NotFound(f"No job {job_id!r} here. Run 'apt-model job list' to see the jobs.")
        return snap

    def list(self) -> list[JobSnapshot]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda s: s.created, reverse=True)

    def cancel(self, job_id: str) -> JobSnapshot:
        self.get(job_id)
        with self._lock:
            ctx = self._contexts.get(job_id)
        if ctx is not None:
            ctx._cancel.set()
        snap = self.get(job_id)
        if snap.state is JobState.QUEUED:
            self._finish(job_id, JobState.CANCELLED, code="CANCELLED", message="Cancelled before it started.")
        return self.get(job_id)

    def watch(self, job_id: str, is_active: Callable[[], bool] = lambda: True,
              poll: float = 0.5) -> Iterator[JobSnapshot]:
        """Yield the job each time it changes, ending after the final state."""
        last = None
        while True:
            with self._lock:
                snap = self._jobs.get(job_id)
                if snap is not None and snap is last:
                    self._lock.wait(timeout=poll)
                    snap = self._jobs.get(job_id)
            if snap is None:
                raise errors.NotFound(f"No job {job_id!r} here.")
            if snap is not last:
                last = snap
                yield snap
                if snap.state.done:
                    return
            if not is_active():
                return

    def _refuse_conflict(self, reads, writes) -> None:
        """The one "output is free" check of every service (the caller holds the lock)."""
        for job in self._jobs.values():
            if job.state.done:
                continue
            clash = [(ref, "writing") for ref in writes if ref in job.writes]
            clash += [(ref, "reading") for ref in writes if ref in job.reads]
            clash += [(ref, "writing") for ref in reads if ref in job.writes]
            if clash:
                ref, doing = clash[0]
                raise errors.FailedPrecondition(
                    f"Job {job.id} is {doing} {ref}; wait for it to finish or cancel it "
                    f"('apt-model job cancel {job.id}'), then retry.", reason="ENTRY_IN_USE")

    def busy_with(self, label: str, value: str) -> list[JobSnapshot]:
        """Jobs not yet finished whose label ``label`` equals ``value`` (e.g. model=foo)."""
        with self._lock:
            return [s for s in self._jobs.values() if not s.state.done and s.labels.get(label) == value]

    def _forget_old(self) -> None:
        finished = [s for s in self._jobs.values() if s.state.done]
        if len(finished) > self._keep_finished:
            for s in sorted(finished, key=lambda s: s.updated)[: len(finished) - self._keep_finished]:
                self._jobs.pop(s.id, None)
                self._contexts.pop(s.id, None)

    def shutdown(self, cancel_running: bool = True) -> None:
        """Stop the workers; ``cancel_running``: cancel every job not finished, the queued ones
        included (their workers never come, so they end here, as ``cancel`` ends them)."""
        if cancel_running:
            with self._lock:
                active = [job_id for job_id, snap in self._jobs.items() if not snap.state.done]
            for job_id in active:
                with contextlib.suppress(errors.NotFound):  # it ended, and was forgotten, meanwhile
                    self.cancel(job_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
