"""Typed job resources: a job declares the store entries it reads and writes, and the gateway
refuses to remove or replace any of them while the job is active, whichever service runs it."""

from __future__ import annotations

import threading

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.jobs import JobManager, JobState, entries
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import Store
from apt_model.testing import ECHO_JOB, make_tiny_model
from gateway.testing import start_gateway, stop_gateway


def test_references_are_checked_and_travel_in_the_job():
    manager = JobManager("unit", max_workers=1)
    try:
        for bad in ("model/x", "models/", "x", "/etc/passwd"):
            with pytest.raises(ValueError, match="not a store reference"):
                manager.start(ECHO_JOB, lambda ctx: {}, reads=(bad,))
        assert entries("models", "a", "", "b", "a") == ("models/a", "models/b")
        release = threading.Event()
        snap = manager.start(ECHO_JOB, lambda ctx: release.wait(30) and {}, reads=entries("models", "a"),
                             writes=entries("datasets", "d"))
        job = job_to_proto(snap)
        assert (list(job.reads), list(job.writes)) == (["models/a"], ["datasets/d"])
        assert snap.uses("models/a") and snap.uses("datasets/d") and not snap.uses("models/d")
        release.set()
        done = list(manager.watch(snap.id, poll=0.01))[-1]
        assert done.state is JobState.SUCCEEDED and not done.uses("models/a")  # an ended job holds nothing
    finally:
        manager.shutdown(cancel_running=False)


@pytest.fixture
def gw(tmp_path):
    gw = start_gateway(tmp_path / "home")
    yield gw
    stop_gateway(gw)


def _refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION, info.value.details()
    return info.value


def test_entries_a_job_reads_or_writes_cannot_be_removed_or_replaced(gw):
    store = Store(gw.settings.home)
    make_tiny_model(store, "teacher", vocab_size=300)
    make_tiny_model(store, "output", vocab_size=300)
    with store.create("datasets", "corpus", operation="test") as folder:
        (folder / "c.txt").write_text("some text\n")
    core = gateway_pb2_grpc.CoreStub(gw.channel())
    release = threading.Event()
    job = gw.app.jobs.start(ECHO_JOB, lambda ctx: release.wait(30) and {},
                            reads=entries("models", "teacher") + entries("datasets", "corpus"),
                            writes=entries("models", "output"))
    try:
        for call in (lambda: core.DeleteModel(pb.DeleteModelRequest(name="teacher")),
                     lambda: core.DeleteModel(pb.DeleteModelRequest(name="output")),
                     lambda: core.DeleteDataset(pb.DeleteDatasetRequest(name="corpus")),
                     lambda: core.StartTrain(pb.TrainRequest(name="output", size="tiny", dataset="corpus",
                                                             overwrite=True))):
            err = _refused(call)
            assert job.id in err.details() and "apt-model job cancel" in err.details()
        # a caller sees what the job holds
        got = plugin_pb2_grpc.JobsStub(gw.channel()).GetJob(job_pb2.GetJobRequest(id=job.id))
        assert set(got.reads) == {"models/teacher", "datasets/corpus"} and list(got.writes) == ["models/output"]
    finally:
        release.set()
    list(gw.app.jobs.watch(job.id, poll=0.01))
    core.DeleteModel(pb.DeleteModelRequest(name="teacher"))
    core.DeleteDataset(pb.DeleteDatasetRequest(name="corpus"))
    assert not store.exists("models", "teacher") and not store.exists("datasets", "corpus")


def test_a_service_starts_no_job_that_clashes_with_an_active_one():
    """JobManager.start is every service's "output is free" check: atomically with the start it
    refuses writing what an active job reads or writes, and reading what one writes."""
    from apt_model import errors

    manager = JobManager("unit", max_workers=4)
    release = threading.Event()

    def hold(**kw):
        return manager.start(ECHO_JOB, lambda ctx: release.wait(30) and {}, **kw)

    try:
        writer = hold(reads=entries("models", "src"), writes=entries("models", "out"))
        for clash in (dict(writes=entries("models", "out")), dict(writes=entries("models", "src")),
                      dict(reads=entries("models", "out"))):
            with pytest.raises(errors.FailedPrecondition, match=writer.id) as info:
                hold(**clash)
            assert info.value.reason == "ENTRY_IN_USE"
        hold(reads=entries("models", "src"))  # two readers of one entry: fine
        release.set()
        for job in manager.list():
            list(manager.watch(job.id, poll=0.01))
        release.clear()
        hold(writes=entries("models", "out"))  # the writer has ended
    finally:
        release.set()
        manager.shutdown(cancel_running=False)
