"""Attack: two callers holding the user token upload a dataset of one new name at the same
time, through a live gateway, hoping the later one silently replaces the earlier one's bytes.

The two uploads overlap for real: each sends its header, and neither sends its bytes until
both have a temporary folder in the store (both passed ``Store.create``'s first check of the
name). Exactly one must succeed, the other gets ALREADY_EXISTS, the stored bytes are the
winner's, and no temporary folder is left behind.
"""

from __future__ import annotations

import hashlib
import threading
import time

import grpc
import pytest

from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc

from .conftest import assert_no_leak

ROUNDS = 3
WRITERS = ("a", "b")


def _own_channel(gw) -> grpc.Channel:
    """A channel with its own TCP connection: two callers, not two streams of one."""
    return grpc.insecure_channel(gw.address, options=[("grpc.use_local_subchannel_pool", 1)])


def _md(gw) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {gw.settings.token}")]


def _requests(name: str, data: bytes, both_staged: threading.Event):
    yield pb.UploadDatasetRequest(header=pb.UploadHeader(name=name, files=[
        pb.FileInfo(path="a.txt", size=len(data), sha256=hashlib.sha256(data).hexdigest())]))
    both_staged.wait(30)
    yield pb.UploadDatasetRequest(chunk=pb.FileChunk(path="a.txt", data=data))


def _staged(gw, name: str) -> list[str]:
    return [p.name for p in (gw.settings.home / "datasets").glob(f".tmp-{name}-*")]


def _leftovers(gw) -> list[str]:
    return [p.name for p in (gw.settings.home / "datasets").iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_two_uploads_of_one_new_name_one_wins(attack_gateway, round_):
    gw = attack_gateway
    name = f"race-{round_}"
    data = {w: f"written by {w} in round {round_}\n".encode() * 4096 for w in WRITERS}
    both_staged = threading.Event()
    outcome: dict[str, object] = {}
    channels = {w: _own_channel(gw) for w in WRITERS}

    def upload(writer: str) -> None:
        core = gateway_pb2_grpc.CoreStub(channels[writer])
        try:
            outcome[writer] = core.UploadDataset(_requests(name, data[writer], both_staged), metadata=_md(gw),
                                                 timeout=60)
        except grpc.RpcError as exc:
            outcome[writer] = exc

    threads = [threading.Thread(target=upload, args=(w,)) for w in WRITERS]
    try:
        for t in threads:
            t.start()
        deadline = time.monotonic() + 30
        while len(_staged(gw, name)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        staged = _staged(gw, name)
        both_staged.set()
        for t in threads:
            t.join(60)
    finally:
        both_staged.set()
        for ch in channels.values():
            ch.close()
    assert len(staged) == 2, f"the uploads did not overlap: staged {staged}, outcome {outcome}"

    winners = [w for w, r in outcome.items() if isinstance(r, pb.DatasetInfo)]
    assert len(winners) == 1, outcome
    winner, loser = winners[0], ({*WRITERS} - set(winners)).pop()
    err = outcome[loser]
    assert isinstance(err, grpc.RpcError) and err.code() == grpc.StatusCode.ALREADY_EXISTS, err
    assert "another writer" in err.details(), err.details()
    assert outcome[winner].name == name and outcome[winner].size_bytes == len(data[winner])

    stored = gw.settings.home / "datasets" / name / "a.txt"
    assert stored.read_bytes() == data[winner]
    with _own_channel(gw) as ch:
        downloaded = b"".join(m.chunk.data for m in gateway_pb2_grpc.CoreStub(ch).DownloadDataset(
            pb.DownloadDatasetRequest(name=name), metadata=_md(gw), timeout=30) if m.WhichOneof("part") == "chunk")
    assert downloaded == data[winner]
    assert gw.app.store.verify("datasets", name) == []
    assert _leftovers(gw) == []
    assert_no_leak(gw, err.details(), str(outcome[winner]))
