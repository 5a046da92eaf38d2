"""Attack: hold the gateway's resources with calls that never progress, holding only the user
token (issue 15, item 4 — beyond the unread downloads of test_router_hostile.py).

* Uploads that stop sending: they hold no thread while they wait (a sync handler held one of
  the gateway's pool threads per stalled upload, and 128 of them stalled every other call);
  each is dropped after APT_UPLOAD_IDLE_SECONDS with nothing stored; at most APT_MAX_UPLOADS
  run at once and one more is refused at once.
* Watchers of a quiet gateway job: they hold no thread either (a watch waited for a change on
  one of the event loop's few default-executor threads, which downloads read files on).

Real gateway (native router) and the CLI's upload code path on loopback.
"""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.testing import ECHO_JOB
from gateway.testing import start_gateway, stop_gateway

IDLE = 2.0        # APT_UPLOAD_IDLE_SECONDS of the gateway under test
MAX_UPLOADS = 2   # APT_MAX_UPLOADS
HEADERLESS = 150  # uploads that never send even their header: more than the gateway's 128 pool threads


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("stalls") / "home", upload_idle_seconds=IDLE, max_uploads=MAX_UPLOADS)
    yield gw
    stop_gateway(gw)


def _own_channel(gw) -> grpc.Channel:
    return grpc.insecure_channel(gw.address, options=[("grpc.use_local_subchannel_pool", 1)])


def _md(gw) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {gw.settings.token}")]


def _stalled(release: threading.Event, *messages):
    """A request stream that sends ``messages`` and then nothing until ``release``."""
    yield from messages
    release.wait()


def _header(name: str, data: bytes) -> pb.UploadDatasetRequest:
    return pb.UploadDatasetRequest(header=pb.UploadHeader(name=name, files=[
        pb.FileInfo(path="a.txt", size=len(data), sha256=hashlib.sha256(data).hexdigest())]))


def _status_ms(core, gw) -> float:
    t0 = time.perf_counter()
    core.GetStatus(pb.GetStatusRequest(), metadata=_md(gw), timeout=5)
    return (time.perf_counter() - t0) * 1000


def _datasets(gw) -> set[str]:
    folder = gw.settings.home / "datasets"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _store_untouched(gw, before: set[str] = frozenset()) -> None:
    """No new dataset and no temporary folder left (a dropped upload's writer cleans up)."""
    deadline = time.monotonic() + 10
    while (left := sorted(_datasets(gw) - before)):
        assert time.monotonic() < deadline, f"left in the store: {left}"
        time.sleep(0.1)


def test_stalled_uploads_are_bounded_dropped_and_leave_nothing(gw):
    release = threading.Event()
    channel = _own_channel(gw)
    core = gateway_pb2_grpc.CoreStub(channel)
    data = b"hello\n" * 100
    try:
        stalled = [core.UploadDataset.future(_stalled(release, _header(f"s{i}", data)), metadata=_md(gw), timeout=30)
                   for i in range(MAX_UPLOADS)]
        time.sleep(0.5)  # both headers are in: both uploads hold their slot
        with pytest.raises(grpc.RpcError) as err:
            core.UploadDataset(_stalled(release, _header("one-more", data)), metadata=_md(gw), timeout=10)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "APT_MAX_UPLOADS" in err.value.details()
        assert _status_ms(core, gw) < 1000  # the gateway answers everyone else meanwhile
        # the stalled ones are dropped after IDLE seconds, with nothing stored
        for call in stalled:
            with pytest.raises(grpc.RpcError) as err:
                call.result(timeout=IDLE + 10)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert "APT_UPLOAD_IDLE_SECONDS" in err.value.details()
        _store_untouched(gw)
        # the slots are free again: a real upload goes through
        chunk = pb.UploadDatasetRequest(chunk=pb.FileChunk(path="a.txt", data=data))
        info = core.UploadDataset(iter([_header("fine", data), chunk]), metadata=_md(gw), timeout=30)
        assert info.name == "fine" and info.size_bytes == len(data)
    finally:
        release.set()
        channel.close()


def test_headerless_uploads_beyond_the_pool_do_not_stall_other_callers(gw):
    """HEADERLESS uploads that never send a message, over three connections: the gateway keeps
    answering (a sync handler per upload would hold every one of its 128 pool threads)."""
    release = threading.Event()
    before = _datasets(gw)
    channels = [_own_channel(gw) for _ in range(3)]
    calls = []
    try:
        for i in range(HEADERLESS):
            stub = gateway_pb2_grpc.CoreStub(channels[i % 3])
            calls.append(stub.UploadDataset.future(_stalled(release), metadata=_md(gw), timeout=30))
        time.sleep(1.0)
        core = gateway_pb2_grpc.CoreStub(_own_channel(gw))
        latencies = sorted(_status_ms(core, gw) for _ in range(10))
        assert latencies[-1] < 1000, latencies
        for call in calls:  # dropped after IDLE seconds
            with pytest.raises(grpc.RpcError) as err:
                call.result(timeout=IDLE + 15)
            assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        _store_untouched(gw, before)
    finally:
        release.set()
        for ch in channels:
            ch.close()


def test_watchers_of_a_quiet_job_hold_no_thread(gw):
    """Twenty watchers of a gateway job that reports nothing; a download still streams, and
    every watcher sees the job end."""
    go = threading.Event()
    job = gw.app.jobs.start(ECHO_JOB, lambda ctx: go.wait(60) and {"text": "ok"})
    with gw.app.store.create("models", "small", operation="test") as folder:
        (folder / "weights.bin").write_bytes(b"x" * (3 << 20))
    channel = _own_channel(gw)
    jobs = plugin_pb2_grpc.JobsStub(channel)
    core = gateway_pb2_grpc.CoreStub(channel)
    watches = [jobs.WatchJob(job_pb2.WatchJobRequest(id=job.id), metadata=_md(gw), timeout=60) for _ in range(20)]
    try:
        for w in watches:
            next(w)  # the first snapshot: every watch is open and waiting
        t0 = time.monotonic()
        got = sum(len(m.chunk.data) for m in core.DownloadModel(pb.DownloadModelRequest(name="small"),
                                                                 metadata=_md(gw), timeout=10))
        assert got == 3 << 20 and time.monotonic() - t0 < 5
        go.set()
        for w in watches:
            assert list(w)[-1].state == job_pb2.JOB_STATE_SUCCEEDED
    finally:
        go.set()
        for w in watches:
            w.cancel()
        channel.close()
