"""Attack: write outside the store, or over the store's own records, through the paths of an
upload (UploadModel and UploadDataset via a live gateway, with the user token).

The header's file paths, the chunks' paths and the entry's name are the attacker's: '..',
absolute paths, '.' segments, empty and NUL-bearing paths, apt.json, paths too long for the
file system, a chunk for a file the header did not list. Each upload must be refused with
INVALID_ARGUMENT naming the fault, with nothing written anywhere (the host folder, APT_HOME
and the folder above it hash the same), nothing stored, and no secret in any answer or log.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc

from .conftest import assert_no_leak, rpc_error, user_channel

KINDS = ("models", "datasets")
REQUEST = {"models": pb.UploadModelRequest, "datasets": pb.UploadDatasetRequest}
# the files a valid upload of each kind holds: the bad path is the only fault
VALID = {"models": {"config.json": b'{"model_type": "llama"}', "model.safetensors": b"\0" * 64},
         "datasets": {"corpus.txt": b"plain words\n" * 10}}

BAD_PATHS = {
    "parent": "../x",
    "parent-deep": "../../../x",
    "climb": "a/../../x",
    "dot-segment": "a/./b",
    "double-slash": "a//b",
    "trailing-slash": "a/",
    "empty": "",
    "nul": "a\x00b",
    "backslash": "..\\x",
    "store-record": "apt.json",
}
BAD_NAMES = ["../evil", "a/b", ".hidden", "", "..", "a\x00b", "Upper", "x" * 65, "/abs", "evil/../../x"]
# Files that pass as plain relative paths but that no folder can hold: a name over NAME_MAX (255
# bytes), a path over PATH_MAX (4096), the entry's folder itself, a file inside another file.
# (A dataset refuses '.' already for its missing data suffix.)
UNHOLDABLE = {
    "long-name": {"a" * 300 + ".txt": b"x"},
    "long-path": {"a/" * 2100 + "x.txt": b"x"},
    "the-folder": {".": b""},
    "file-in-file": {"a.txt": b"x", "a.txt/b.txt": b"y"},
    "file-over-folder": {"a.txt/b.txt": b"y", "a.txt": b"x"},
}


def _file(path: str, data: bytes) -> pb.FileInfo:
    return pb.FileInfo(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _upload(ch, kind: str, name: str, files: dict[str, bytes], chunks: list[tuple[str, bytes]] | None = None):
    """One upload: a header listing ``files``, then ``chunks`` (by default each file's bytes)."""
    req = REQUEST[kind]
    messages = [req(header=pb.UploadHeader(name=name, files=[_file(p, d) for p, d in files.items()]))]
    messages += [req(chunk=pb.FileChunk(path=p, data=d)) for p, d in (chunks if chunks is not None else files.items())]
    core = gateway_pb2_grpc.CoreStub(ch)
    call = core.UploadModel if kind == "models" else core.UploadDataset
    return call(iter(messages), timeout=30)


@pytest.fixture(scope="module")
def world(attack_gateway, host):
    """The gateway, and a function that hashes every file the attacker could reach by a path
    that climbs out of the store (APT_HOME's parent holds APT_HOME) plus /etc/passwd."""
    gw = attack_gateway
    watched = Path(gw.settings.home).parent

    def snapshot() -> dict[str, str]:
        out = host.snapshot(watched)
        out["/etc/passwd"] = hashlib.sha256(Path("/etc/passwd").read_bytes()).hexdigest()
        return out

    return gw, snapshot, host


def _nothing_staged(gw) -> None:
    """No entry and no temporary folder left in the store (a refused writer removes its own)."""
    deadline = time.monotonic() + 10
    while True:
        left = [f"{kind}/{p.name}" for kind in KINDS if (gw.settings.home / kind).exists()
                for p in (gw.settings.home / kind).iterdir()]
        if not left:
            return
        assert time.monotonic() < deadline, f"left in the store: {left}"
        time.sleep(0.1)


def _refused(gw, snapshot, before, call, why: str) -> str:
    err = rpc_error(call)
    _nothing_staged(gw)
    assert snapshot() == before, f"{why}: a file changed"
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{why}: {err.code()} {err.details()}"
    return err.details()


@pytest.mark.parametrize("kind", KINDS)
def test_header_file_paths_out_of_the_entry_are_refused(world, kind):
    """Absolute paths aim at the host folder's files, not at /etc: a broken guard would
    truncate what it opens."""
    gw, snapshot, host = world
    ch = user_channel(gw)
    before = snapshot()
    absolute = {"absolute": str(host.root / "notes" / "passwords.txt"), "absolute-new": str(host.root / "new.txt")}
    seen = []
    for what, bad in {**BAD_PATHS, **absolute}.items():
        files = {**VALID[kind], bad: b"attacker bytes\n"}
        details = _refused(gw, snapshot, before, lambda: _upload(ch, kind, "victim", files), f"{kind} {what}")
        assert "not a plain relative path" in details or "apt.json" in details, f"{what}: {details}"
        seen.append(details)
    assert_no_leak(gw, *seen)


@pytest.mark.parametrize("kind", KINDS)
def test_chunk_paths_the_header_did_not_list_are_refused(world, kind):
    """The header is valid; the chunks name a traversal, an absolute path, or a file the
    header did not list (also after the listed file's bytes)."""
    gw, snapshot, _ = world
    ch = user_channel(gw)
    before = snapshot()
    listed = list(VALID[kind].items())
    seen = []
    for bad in ("../x.txt", "../../escape.txt", "/tmp/x.txt", "other.txt", "apt.json", ""):
        for chunks in ([(bad, b"attacker bytes\n")], [*listed, (bad, b"attacker bytes\n")]):
            details = _refused(gw, snapshot, before, lambda: _upload(ch, kind, "victim", VALID[kind], chunks),
                               f"{kind} chunk {bad!r}")
            assert "does not list" in details, details
            seen.append(details)
    assert_no_leak(gw, *seen)


@pytest.mark.parametrize("kind", KINDS)
def test_entry_names_out_of_the_store_are_refused(world, kind):
    gw, snapshot, _ = world
    ch = user_channel(gw)
    before = snapshot()
    seen = []
    for name in BAD_NAMES:
        details = _refused(gw, snapshot, before, lambda: _upload(ch, kind, name, VALID[kind]), f"{kind} name {name!r}")
        assert "Invalid" in details and "name" in details, details
        seen.append(details)
    assert_no_leak(gw, *seen)


@pytest.mark.parametrize("kind,what", [(k, w) for k in KINDS for w in UNHOLDABLE
                                       if (k, w) != ("datasets", "the-folder")])
def test_paths_no_folder_can_hold_are_invalid_argument(world, kind, what):
    """The caller's fault: INVALID_ARGUMENT before anything is written, not INTERNAL from the
    writer's OSError."""
    gw, snapshot, _ = world
    ch = user_channel(gw)
    before = snapshot()
    files = {**VALID[kind], **UNHOLDABLE[what]}
    details = _refused(gw, snapshot, before, lambda: _upload(ch, kind, "victim", files), f"{kind} {what}")
    assert_no_leak(gw, details)


def test_a_valid_upload_still_goes_through(world):
    """The refusals above are not a store that refuses everything."""
    gw, _, _ = world
    ch = user_channel(gw)
    info = _upload(ch, "datasets", "fine", {"corpus.txt": b"plain words\n", "sub/more.jsonl": b'{"text": "x"}\n'})
    assert info.name == "fine"
    stored = gw.settings.home / "datasets" / "fine"
    assert (stored / "sub" / "more.jsonl").read_bytes() == b'{"text": "x"}\n'
    gw.app.store.remove("datasets", "fine")
