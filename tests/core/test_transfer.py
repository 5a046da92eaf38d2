"""Upload/download logic: checksums verified, nothing stored from a bad or cut-off upload."""

from __future__ import annotations

import hashlib

import pytest

from apt_model import errors
from apt_model.store import Store, sha256_file
from gateway.core import transfer


@pytest.fixture
def source(store, tiny):
    return store.model(tiny).path


def test_round_trip_between_stores(source, tmp_path):
    files = transfer.local_folder_files(source)
    assert "apt.json" not in {f.path for f in files}
    other = Store(tmp_path / "other")
    transfer.receive_upload(other, "copy", files, transfer.iter_local_chunks(source, files))
    entry = other.model("copy")
    assert entry.meta["lineage"]["operation"] == "upload" and other.verify("models", "copy") == []
    plan = transfer.download_plan(other, "copy")
    got = {}
    for path, data in transfer.iter_download(other, "copy", plan):
        got[path] = got.get(path, b"") + data
    for f in plan:
        assert hashlib.sha256(got[f.path]).hexdigest() == f.sha256 == sha256_file(source / f.path)


def test_truncated_upload_stores_nothing(source, tmp_path):
    other = Store(tmp_path / "other")
    files = transfer.local_folder_files(source)
    chunks = list(transfer.iter_local_chunks(source, files))
    with pytest.raises(errors.DataLoss, match="ended after"):
        transfer.receive_upload(other, "cut", files, iter(chunks[:-1]))
    assert not other.exists("models", "cut")
    assert [p.name for p in (other.root / "models").iterdir()] == []  # no temporary left either


def test_corrupt_chunk_fails_the_checksum(source, tmp_path):
    other = Store(tmp_path / "other")
    files = transfer.local_folder_files(source)
    chunks = [(p, bytes([d[0] ^ 1]) + d[1:]) if p == "model.safetensors" else (p, d)
              for p, d in transfer.iter_local_chunks(source, files)]
    with pytest.raises(errors.DataLoss, match="sha256"):
        transfer.receive_upload(other, "bad", files, iter(chunks))
    assert not other.exists("models", "bad")


def test_header_validation(source, tmp_path):
    other = Store(tmp_path / "other")
    files = transfer.local_folder_files(source)
    for bad in ("../x", "/etc/passwd", "a/../../b", "a\\b", "", "apt.json"):
        with pytest.raises(errors.InvalidArgument):
            transfer.receive_upload(other, "h", [*files, transfer.FileSpec(bad, 0, "0" * 64)], iter([]))
    with pytest.raises(errors.InvalidArgument, match="config.json"):
        transfer.receive_upload(other, "h", [f for f in files if f.path != "config.json"], iter([]))
    with pytest.raises(errors.InvalidArgument, match="not in the header|does not list"):
        transfer.receive_upload(other, "h", files, iter([("other.bin", b"x")]))
    with pytest.raises(errors.InvalidArgument, match="More bytes"):
        transfer.receive_upload(other, "h", files, iter([(files[0].path, b"x" * (files[0].size + 1))]))
    with pytest.raises(errors.DataLoss, match="ended after 0"):  # a file skipped: out of header order
        transfer.receive_upload(other, "h", files, iter([(files[1].path, b"x")]))
    assert not other.exists("models", "h")


def test_download_detects_files_changed_on_disk(store, tiny):
    path = store.model(tiny).path / "config.json"
    path.write_text(path.read_text() + " ", encoding="utf-8")
    with pytest.raises(errors.DataLoss, match="config.json"):
        list(transfer.iter_download(store, tiny, transfer.download_plan(store, tiny)))
