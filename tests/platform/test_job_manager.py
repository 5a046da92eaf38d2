"""Every service's job manager (``apt_model.runtime.jobs``) and its proto view, rule by rule: what
a job ends with for each way its work can end, what a caller reads in each refusal, how progress
and metrics are kept, how long finished jobs are kept, what a watcher receives, and the Jobs
servicer's filters. Written from a ``make mutate`` run of runtime-jobs (docs/mutation.md); the
other job tests reach these rules through a gateway, where most of them pass either way.
"""

from __future__ import annotations

import errno
import logging
import threading
import time

import pytest

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.runtime.jobs import JobManager, JobSnapshot, JobState, entries
from apt_model.runtime.jobs_grpc import JobsServicer, job_result, job_to_proto, still_active
from apt_model.testing import ECHO_JOB, wait_for_state

# each test here takes under 2 s: a change that makes one hang (make mutate) fails it in 30 s
pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def manager():
    made: list[JobManager] = []

    def make(**kw) -> JobManager:
        made.append(JobManager("unit", **kw))
        return made[-1]

    yield make
    for m in made:
        m.shutdown(cancel_running=True)


def _final(jobs: JobManager, job_id: str) -> JobSnapshot:
    return list(jobs.watch(job_id, poll=0.01))[-1]


def _raise(exc: BaseException):
    def work(ctx):
        raise exc
    return work


def test_each_way_a_job_ends_is_its_state_code_and_sentence(manager, caplog):
    jobs = manager(max_workers=1)
    cases = {
        "done": (lambda ctx: {"text": "a"}, JobState.SUCCEEDED, "", ""),
        "cancelled": (_raise(errors.Cancelled("stopped at step 3")), JobState.CANCELLED, "CANCELLED",
                      "stopped at step 3"),
        "refused": (_raise(errors.NotFound("no such model")), JobState.FAILED, "NOT_FOUND", "no such model"),
        "full": (_raise(OSError(errno.ENOSPC, "No space left")), JobState.FAILED, "RESOURCE_EXHAUSTED",
                 "No space left on device on the service's disk; free space (or give the service a larger volume) "
                 "and run it again."),
    }
    for key, (work, state, code, message) in cases.items():
        final = _final(jobs, jobs.start(ECHO_JOB, work).id)
        assert (final.state, final.error_code, final.error_message) == (state, code, message), key
        assert final.eta_seconds == 0.0, key
        assert final.progress == (1.0 if state is JobState.SUCCEEDED else 0.0), key
    crash = jobs.start(ECHO_JOB, _raise(KeyError("x")))
    final = _final(jobs, crash.id)
    assert (final.state, final.error_code) == (JobState.FAILED, "INTERNAL")
    assert final.error_message == f"Internal error (KeyError); see the service log for job {crash.id}."
    assert any(crash.id in r.getMessage() and "KeyError" in r.getMessage() for r in caplog.records)


def test_each_failure_is_logged_once_at_its_level_naming_the_job(manager, caplog):
    """The service's log is where an operator looks a job up by id: a refusal at INFO, a full disk
    at WARNING with the OS error, a crash or a result that does not fit at ERROR with the why;
    a cancel and a success log nothing."""
    caplog.set_level(logging.INFO, logger="apt_model.runtime.jobs")
    jobs = manager(max_workers=1)
    ids = [_final(jobs, jobs.start(ECHO_JOB, work).id).id for work in (
        lambda ctx: {"text": "a"}, _raise(errors.Cancelled("stop")), _raise(errors.NotFound("no such model")),
        _raise(OSError(errno.ENOSPC, "No space left")), _raise(KeyError("x")), lambda ctx: {"nonsense": 1})]
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "apt_model.runtime.jobs"]
    assert logged[:2] == [
        ("INFO", f"job {ids[2]} failed: no such model"),
        ("WARNING", f"job {ids[3]} failed: No space left on device on the service's disk; free space (or give "
                    "the service a larger volume) and run it again. ([Errno 28] No space left)")]
    (level, crash), (mismatch_level, mismatch) = logged[2:]
    assert level == "ERROR" and crash.startswith(f"job {ids[4]} crashed:\nTraceback (most recent call last):")
    assert crash.rstrip().endswith("KeyError: 'x'")
    assert mismatch_level == "ERROR" and mismatch.startswith(
        f"job {ids[5]} returned a result that does not fit apt.plugins.echo.v1.EchoResult: ")
    assert "nonsense" in mismatch.partition("EchoResult: ")[2]  # what does not fit


def test_a_result_that_does_not_fit_its_type_is_a_named_bug_and_warnings_travel(manager, caplog):
    jobs = manager()
    bad = jobs.start(ECHO_JOB, lambda ctx: {"text": "a", "nonsense": 1})
    final = _final(jobs, bad.id)
    assert (final.state, final.error_code) == (JobState.FAILED, "INTERNAL")
    assert final.error_message.startswith("The service's result does not fit its declared type "
                                          "apt.plugins.echo.v1.EchoResult: ")
    assert final.error_message.endswith(f". This is a bug in the service (unit); its log has job {bad.id}.")

    def warns(ctx):
        ctx.warn("first")
        ctx.warn("second")
        return {"text": "w"}

    job = jobs.start(ECHO_JOB, warns)
    final = _final(jobs, job.id)
    assert final.result["warnings"] == ["first", "second"]
    assert final.response.warnings == ["first", "second"]
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][-2:] == [
        f"job {job.id}: first", f"job {job.id}: second"]
    assert _final(jobs, jobs.start(ECHO_JOB, lambda ctx: None).id).result == {
        "text": "", "steps": 0, "length": 0, "warnings": []}  # no dict: an empty result


def test_progress_is_clamped_metrics_merge_and_fields_left_out_are_kept(manager):
    jobs = manager()
    gate, seen = threading.Event(), []

    def work(ctx):
        ctx.report(progress=0.4, stage="one", message="m1", eta_seconds=9, loss=2)
        seen.append(jobs.get(ctx.job_id))
        ctx.report(progress=7, acc=0.5)
        seen.append(jobs.get(ctx.job_id))
        ctx.report(progress=-3, stage="two", loss=1)
        seen.append(jobs.get(ctx.job_id))
        gate.wait(30)
        return {}

    job = jobs.start(ECHO_JOB, work)
    while len(seen) < 3:
        time.sleep(0.01)
    assert [(s.progress, s.stage, s.message, s.eta_seconds, s.metrics) for s in seen] == [
        (0.4, "one", "m1", 9, {"loss": 2.0}),
        (1.0, "one", "m1", 9, {"loss": 2.0, "acc": 0.5}),
        (0.0, "two", "m1", 9, {"loss": 1.0, "acc": 0.5}),
    ]
    assert seen[0].updated <= seen[2].updated and seen[0].created == job.created
    gate.set()
    final = _final(jobs, job.id)
    before = final.updated
    jobs._update(job.id, progress=0.1, stage="late")  # a finished job is never changed again
    assert jobs.get(job.id) == final and jobs.get(job.id).updated == before


def test_refusals_name_the_job_and_the_entry(manager):
    jobs = manager(max_workers=3)
    release = threading.Event()
    # a finished job that wrote the same entry comes first in the manager: it is passed over, not the end
    done = jobs.start(ECHO_JOB, lambda ctx: {}, writes=entries("models", "out"))
    wait_for_state(jobs, done.id, JobState.SUCCEEDED)
    hold = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {},
                      reads=entries("models", "src"), writes=entries("models", "out"))
    try:
        for kw, doing, ref in ((dict(writes=("models/out",)), "writing", "models/out"),
                               (dict(writes=("models/src",)), "reading", "models/src"),
                               (dict(reads=("models/out",)), "writing", "models/out"),
                               (dict(reads=("datasets/d",), writes=("models/src", "models/out")), "writing",
                                "models/out")):
            with pytest.raises(errors.FailedPrecondition) as caught:
                jobs.start(ECHO_JOB, lambda ctx: {}, **kw)
            assert str(caught.value) == (f"Job {hold.id} is {doing} {ref}; wait for it to finish or cancel it "
                                         f"('apt-model job cancel {hold.id}'), then retry.")
            assert caught.value.reason == "ENTRY_IN_USE"  # what a client tells apart from other refusals
        for bad in ("models", "models/", "weights/x", "x"):
            with pytest.raises(ValueError) as caught:
                jobs.start(ECHO_JOB, lambda ctx: {}, reads=(bad,))
            assert str(caught.value) == f"{bad!r} is not a store reference ('models/<name>' or 'datasets/<name>')"
        with pytest.raises(errors.NotFound) as missing:
            jobs.get("unit:nope")
        assert str(missing.value) == "No job 'unit:nope' here. Run 'apt-model job list' to see the jobs."
        with pytest.raises(errors.NotFound) as missing:
            list(jobs.watch("unit:nope"))
        assert str(missing.value) == "No job 'unit:nope' here."
        with pytest.raises(errors.NotFound):
            jobs.cancel("unit:nope")
    finally:
        release.set()


def test_the_queue_counts_only_jobs_no_idle_worker_will_take(manager):
    jobs = manager(max_workers=2, max_queued=1)
    release = threading.Event()
    try:
        first = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {})
        wait_for_state(jobs, first.id, JobState.RUNNING)
        second = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {})  # an idle worker takes it
        wait_for_state(jobs, second.id, JobState.RUNNING)
        jobs.start(ECHO_JOB, lambda ctx: {})  # the one place in the queue
        with pytest.raises(errors.ResourceExhausted) as caught:
            jobs.start(ECHO_JOB, lambda ctx: {})
        assert str(caught.value) == ("1 jobs are already waiting in unit; try again when some finish, or raise "
                                     "APT_MAX_QUEUED_JOBS (now 1).")
    finally:
        release.set()


def test_cancel_before_and_during_the_work_and_shutdown_cancels_what_runs(manager):
    jobs = manager(max_workers=1)
    release, started = threading.Event(), threading.Event()

    def runs(ctx):
        started.set()
        while not release.is_set():
            ctx.check_cancelled()
            time.sleep(0.01)
        return {}

    running = jobs.start(ECHO_JOB, runs)
    queued = jobs.start(ECHO_JOB, lambda ctx: {"text": "never"})
    assert queued.state is JobState.QUEUED and queued.updated == queued.created > 0  # stamped when queued
    assert started.wait(10)
    snap = jobs.cancel(queued.id)
    assert (snap.state, snap.error_code, snap.error_message) == (
        JobState.CANCELLED, "CANCELLED", "Cancelled before it started.")
    jobs.cancel(running.id)
    final = _final(jobs, running.id)
    assert (final.state, final.error_message) == (JobState.CANCELLED, f"Job {running.id} was cancelled.")
    assert _final(jobs, queued.id).state is JobState.CANCELLED  # the worker did not run it after all

    other = manager(max_workers=1)
    started.clear()
    job = other.start(ECHO_JOB, runs)
    waiting = other.start(ECHO_JOB, lambda ctx: {"text": "never"})
    assert started.wait(10)
    other.shutdown()  # cancelling what runs is the default
    assert other.get(job.id).state is JobState.CANCELLED
    snap = other.get(waiting.id)  # no worker will come for it: it ends too, and its watchers with it
    assert (snap.state, snap.error_message) == (JobState.CANCELLED, "Cancelled before it started.")
    release.set()


def test_finished_jobs_beyond_the_limit_are_forgotten_oldest_first_and_active_ones_never(manager):
    jobs = manager(max_workers=2, keep_finished=2)
    release = threading.Event()
    active = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {})
    done = []
    for i in range(4):
        done.append(jobs.start(ECHO_JOB, lambda ctx, i=i: {"text": str(i)}).id)
        _final(jobs, done[-1])
    jobs.start(ECHO_JOB, lambda ctx: {})  # forgetting happens at a start
    ids = {s.id for s in jobs.list()}
    assert active.id in ids
    assert [d in ids for d in done] == [False, False, True, True]
    assert done[0] not in jobs._contexts
    release.set()
    assert [s.created for s in jobs.list()] == sorted((s.created for s in jobs.list()), reverse=True)


def test_a_watch_sends_each_change_once_and_stops_when_the_caller_left(manager):
    jobs = manager()
    go = threading.Event()

    def work(ctx):
        for i in range(3):
            assert go.wait(30)
            go.clear()
            ctx.report(progress=i / 3, step=i)
        assert go.wait(30)
        return {}

    job = jobs.start(ECHO_JOB, work)
    wait_for_state(jobs, job.id, JobState.RUNNING)
    watch = jobs.watch(job.id, poll=0.01)
    sent = [next(watch)]
    for i in range(3):
        go.set()  # one change at a time: the work waits for the next go
        sent.append(next(watch))
        assert sent[-1].metrics == {"step": float(i)}
    go.set()
    sent += list(watch)
    assert [s.state for s in sent] == [JobState.RUNNING] * 4 + [JobState.SUCCEEDED]
    assert len({id(s) for s in sent}) == len(sent)  # never the same snapshot twice

    go.clear()
    quiet = jobs.start(ECHO_JOB, lambda ctx: go.wait(30) and {})
    wait_for_state(jobs, quiet.id, JobState.RUNNING)
    left = iter([True, False])
    got = list(jobs.watch(quiet.id, is_active=lambda: next(left), poll=0.01))
    assert len(got) == 1 and jobs.get(quiet.id).state is not JobState.SUCCEEDED  # ended with the caller
    go.set()


def test_a_watcher_of_a_quiet_job_gets_it_at_once_then_looks_twice_a_second(manager):
    jobs = manager()
    release = threading.Event()
    quiet = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {})
    wait_for_state(jobs, quiet.id, JobState.RUNNING)
    checks: list[float] = []
    started = time.monotonic()

    def active() -> bool:
        checks.append(time.monotonic() - started)
        return checks[-1] < 1.2

    watch = jobs.watch(quiet.id, is_active=active)  # the default poll: 0.5 s
    next(watch)
    first = time.monotonic() - started
    rest = list(watch)
    release.set()
    assert first < 0.25, f"the first snapshot took {first:.2f} s"
    assert rest == [] and 3 <= len(checks) <= 4, checks  # one look per 0.5 s poll, not a busy loop


def test_defaults_two_workers_500_finished_jobs_kept_a_running_log_under_home(tmp_path):
    from apt_model.runtime.joblog import job_log_path

    jobs = JobManager("unit", home=tmp_path)
    release, seen = threading.Event(), {}
    try:
        def hold(ctx):
            seen[ctx.job_id] = (ctx.running_log, threading.current_thread().name)
            return release.wait(30) and {}

        held = [jobs.start(ECHO_JOB, hold) for _ in range(3)]
        deadline = time.monotonic() + 10
        while len(seen) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.2)
        assert [jobs.get(j.id).state for j in held] == [JobState.RUNNING, JobState.RUNNING, JobState.QUEUED]
        log, thread = seen[held[0].id]
        assert log.path == job_log_path(tmp_path, held[0].id) and thread.startswith("job")
        release.set()
        for j in held:
            _final(jobs, j.id)
        for _ in range(10):  # in batches: at most 64 may wait
            for _ in range(50):
                jobs.start(ECHO_JOB, lambda ctx: {})
            while sum(not s.state.done for s in jobs.list()):
                time.sleep(0.01)
        jobs.start(ECHO_JOB, lambda ctx: {})  # 503 finished: the 3 oldest go
        assert {j.id for j in held}.isdisjoint(s.id for s in jobs.list())
        assert len(jobs.list()) == 501
    finally:
        release.set()
        jobs.shutdown()
    plain = JobManager("unit")
    try:
        job = plain.start(ECHO_JOB, lambda ctx: {"text": str(ctx.running_log)})
        assert _final(plain, job.id).result["text"] == "None"  # no store: no running log
    finally:
        plain.shutdown()


def test_references_and_their_use_by_active_jobs(manager):
    assert entries("models", "a", "", "b", "a") == ("models/a", "models/b")
    jobs = manager()
    release = threading.Event()
    job = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {}, labels={"model": "a"},
                     reads=entries("models", "a"), writes=entries("datasets", "b"))
    snap = jobs.get(job.id)
    assert snap.uses("models/a") and snap.uses("datasets/b") and not snap.uses("models/b")
    assert [s.id for s in jobs.busy_with("model", "a")] == [job.id]
    assert jobs.busy_with("model", "b") == [] and jobs.busy_with("output", "a") == []
    release.set()
    final = _final(jobs, job.id)
    assert not final.uses("models/a") and jobs.busy_with("model", "a") == []


def test_the_proto_view_and_the_jobs_servicer(manager):
    jobs = manager(max_workers=2)
    release = threading.Event()
    done = _final(jobs, jobs.start(ECHO_JOB, lambda ctx: {"text": "t", "length": 1}, labels={"k": "v"}).id)
    failed = _final(jobs, jobs.start(ECHO_JOB, _raise(errors.InvalidArgument("bad"))).id)
    active = jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {}, reads=("models/a",), writes=("models/b",))
    try:
        proto = job_to_proto(done)
        assert (proto.id, proto.operation, proto.state, proto.progress) == (
            done.id, ECHO_JOB, job_pb2.JOB_STATE_SUCCEEDED, 1.0)
        assert dict(proto.labels) == {"k": "v"} and job_result(proto) == {
            "text": "t", "steps": 0.0, "length": 1.0, "warnings": []}
        assert proto.create_time.ToNanoseconds() == int(done.created * 1e9)
        assert proto.update_time.ToNanoseconds() == int(done.updated * 1e9)
        assert proto.HasField("response") and not proto.HasField("error")
        bad = job_to_proto(failed)
        assert (bad.error.code, bad.error.message, bad.HasField("result")) == ("INVALID_ARGUMENT", "bad", False)
        assert job_result(bad) == {}
        running = job_to_proto(jobs.get(active.id))
        assert (list(running.reads), list(running.writes)) == (["models/a"], ["models/b"])
        busy = job_to_proto(JobSnapshot(id="unit:b", operation=ECHO_JOB, state=JobState.RUNNING, progress=0.25,
                                        stage="train", message="step 3", metrics={"loss": 1.5}, eta_seconds=12.0))
        assert (busy.state, busy.progress, busy.stage, busy.message, dict(busy.metrics), busy.eta_seconds) == (
            job_pb2.JOB_STATE_RUNNING, 0.25, "train", "step 3", {"loss": 1.5}, 12.0)
        empty = job_to_proto(JobSnapshot(id="unit:e", operation=ECHO_JOB, state=JobState.SUCCEEDED, result={}))
        assert empty.HasField("result")  # an empty result is still a result

        servicer = JobsServicer(jobs)
        listed = servicer.ListJobs(job_pb2.ListJobsRequest(), None).jobs
        assert [j.id for j in listed] == [active.id, failed.id, done.id]
        assert [j.id for j in servicer.ListJobs(job_pb2.ListJobsRequest(active_only=True), None).jobs] == [active.id]
        assert len(servicer.ListJobs(job_pb2.ListJobsRequest(service="unit"), None).jobs) == 3
        assert list(servicer.ListJobs(job_pb2.ListJobsRequest(service="other"), None).jobs) == []
        assert servicer.GetJob(job_pb2.GetJobRequest(id=done.id), None) == job_to_proto(done)
        left: list = []

        def watch_as_a_caller_who_left() -> None:
            try:
                left.extend(servicer.WatchJob(job_pb2.WatchJobRequest(id=active.id), _Context(False)))
            except Exception as exc:  # noqa: BLE001 - the assertion below names it
                left.append(exc)

        watcher = threading.Thread(target=watch_as_a_caller_who_left)
        watcher.start()
        watcher.join(5)
        assert not watcher.is_alive() and len(left) == 1 and isinstance(left[0], job_pb2.Job), left
        cancelled = servicer.CancelJob(job_pb2.CancelJobRequest(id=active.id), None)
        assert cancelled.id == active.id
    finally:
        release.set()
    watched = list(JobsServicer(jobs).WatchJob(job_pb2.WatchJobRequest(id=done.id), _Context(True)))
    assert [j.state for j in watched] == [job_pb2.JOB_STATE_SUCCEEDED]


class _Context:
    def __init__(self, active: bool):
        self._active = active
        self.callbacks = []

    def is_active(self) -> bool:
        return self._active


class _AioContext:
    def __init__(self):
        self.callbacks = []

    def add_callback(self, fn) -> None:
        self.callbacks.append(fn)


def test_still_active_uses_is_active_or_the_end_of_call_callback():
    assert still_active(_Context(False))() is False and still_active(_Context(True))() is True
    ctx = _AioContext()
    check = still_active(ctx)
    assert check() is True
    for fn in ctx.callbacks:
        fn()
    assert check() is False
