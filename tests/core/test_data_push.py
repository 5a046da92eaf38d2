"""Datasets through the store: push/list/info/pull/rm, text files named on the CLI's machine sent
as datasets, and uploads bounded by the store's disk and APT_STORE_QUOTA before any work."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import grpc
import pytest

from apt_model import errors
from apt_model.cli.common import CliError, Ctx
from apt_model.cli.data import file_or_dataset, files_or_dataset, push_dataset
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model
from gateway.core import transfer
from gateway.testing import run_cli, start_gateway, stop_gateway


def _ctx(gw, as_json: bool = True) -> Ctx:
    return Ctx(argparse.Namespace(gateway=gw.address, token=gw.settings.token, json=as_json,
                                  home=str(gw.settings.home), timeout=60))


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _upload(core, files: list[tuple[str, bytes]], name: str, *, declared: dict[str, int] | None = None,
            kind: str = "datasets", overwrite: bool = False):
    """An upload over gRPC whose header may declare other sizes than what is sent."""
    request = pb.UploadDatasetRequest if kind == "datasets" else pb.UploadModelRequest
    declared = declared or {}
    messages = [request(header=pb.UploadHeader(name=name, overwrite=overwrite, files=[
        pb.FileInfo(path=p, size=declared.get(p, len(d)), sha256=_sha(d)) for p, d in files]))]
    messages += [request(chunk=pb.FileChunk(path=p, data=d)) for p, d in files if d]
    call = core.UploadDataset if kind == "datasets" else core.UploadModel
    return call(iter(messages), timeout=60)


def _code(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def _left_behind(home: Path) -> list[str]:
    return [p.name for kind in ("models", "datasets") if (home / kind).is_dir()
            for p in (home / kind).iterdir() if p.name.startswith(".")]


# -- the data commands -----------------------------------------------------------------------------

def test_push_list_info_pull_rm(gateway, tmp_path):
    gw = gateway
    (tmp_path / "src").mkdir()
    train = tmp_path / "src" / "train.jsonl"
    train.write_text("".join(json.dumps({"text": t}) + "\n" for t in SAMPLE_TEXT), encoding="utf-8")
    notes = tmp_path / "notes.md"
    notes.write_text("# notes\n", encoding="utf-8")
    (tmp_path / "src" / "empty.txt").write_bytes(b"")
    out = run_cli(gw, "data", "push", str(tmp_path / "src"), str(notes), "--name", "ds1")
    assert out.returncode == 0, out.stderr
    entry = Store(gw.settings.home).dataset("ds1")
    assert sorted(entry.meta["files"]) == ["empty.txt", "notes.md", "train.jsonl"]
    assert Store(gw.settings.home).verify("datasets", "ds1") == []
    out = run_cli(gw, "data", "list", "--json")
    assert "ds1" in [d["name"] for d in json.loads(out.stdout)]
    info = json.loads(run_cli(gw, "data", "info", "ds1", "--json").stdout)
    assert info["operation"] == "upload" and {f["path"]: f["sha256"] for f in info["files"]}["notes.md"] == \
        _sha(notes.read_bytes())
    out = run_cli(gw, "data", "push", str(notes), "--name", "ds1")
    assert out.returncode == 4 and "ALREADY_EXISTS" in out.stderr and "--overwrite" in out.stderr
    out = run_cli(gw, "data", "pull", "ds1", "-o", str(tmp_path / "pulled"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pulled" / "train.jsonl").read_bytes() == train.read_bytes()
    assert (tmp_path / "pulled" / "empty.txt").read_bytes() == b""
    out = run_cli(gw, "data", "rm", "ds1")
    assert out.returncode == 0 and not Store(gw.settings.home).exists("datasets", "ds1")
    assert run_cli(gw, "data", "info", "ds1").returncode == 4


def test_push_refuses_files_a_dataset_may_not_hold(gateway, tmp_path):
    exe = tmp_path / "tool.sh"
    exe.write_text("#!/bin/sh\n")
    out = run_cli(gateway, "data", "push", str(exe), "--name", "bad")
    assert out.returncode == 3 and ".jsonl" in out.stderr
    out = run_cli(gateway, "data", "push", str(tmp_path / "missing.txt"), "--name", "bad")
    assert out.returncode == 4 and "does not exist" in out.stderr


def test_upload_dataset_checks_every_file(gateway):
    core = gateway_pb2_grpc.CoreStub(gateway.channel())
    store = Store(gateway.settings.home)
    good = ("a.txt", b"hello\n")
    for bad in ("../x.txt", "/etc/x.txt", "a/../../x.txt", "apt.json", "run.sh", "model.safetensors", "noext"):
        code, details = _code(lambda: _upload(core, [good, (bad, b"x")], "bad1"))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (bad, details)
    code, details = _code(lambda: _upload(core, [good], "bad2", declared={"a.txt": 3}))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "More bytes" in details  # more than declared
    code, _ = _code(lambda: _upload(core, [good], "bad3", declared={"a.txt": 10}))
    assert code == grpc.StatusCode.DATA_LOSS  # fewer than declared
    corrupt = [pb.UploadDatasetRequest(header=pb.UploadHeader(name="bad4", files=[
        pb.FileInfo(path="a.txt", size=6, sha256=_sha(b"hellO\n"))])),
        pb.UploadDatasetRequest(chunk=pb.FileChunk(path="a.txt", data=b"hello\n"))]
    code, details = _code(lambda: core.UploadDataset(iter(corrupt), timeout=60))
    assert code == grpc.StatusCode.DATA_LOSS and "sha256" in details
    assert not any(store.exists("datasets", f"bad{i}") for i in range(1, 5))
    assert _left_behind(store.root) == []


# -- files named on the CLI's machine become datasets ---------------------------------------------

def test_local_files_are_pushed_once_as_a_dataset(gateway, tmp_path, capsys):
    ctx = _ctx(gateway, as_json=False)
    text = tmp_path / "eval.txt"
    text.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    path, dataset = file_or_dataset(ctx, str(text), "", "--eval-file", "--eval-dataset")
    assert (path, dataset) == ("", "corpus-" + _sha(text.read_bytes())[:12])
    assert f"as dataset {dataset}" in capsys.readouterr().err
    entry = Store(gateway.settings.home).dataset(dataset)
    assert list(entry.meta["files"]) == ["eval.txt"]
    created = entry.meta["created"], entry.path.stat().st_ino
    assert file_or_dataset(ctx, str(text), "", "--eval-file", "--eval-dataset") == ("", dataset)
    assert "pushing" not in capsys.readouterr().err  # found by its content: not sent again
    again = Store(gateway.settings.home).dataset(dataset)
    assert (again.meta["created"], again.path.stat().st_ino) == created  # reused, not pushed again
    # a path that is not on this machine is the service's to resolve
    assert file_or_dataset(ctx, "/srv/data/eval.txt", "", "--eval-file", "--eval-dataset") == \
        ("/srv/data/eval.txt", "")
    with pytest.raises(CliError, match="not both"):
        file_or_dataset(ctx, str(text), "other", "--eval-file", "--eval-dataset")


def test_several_corpus_files_keep_their_order(gateway, tmp_path):
    ctx = _ctx(gateway)
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "b" / "z.txt", tmp_path / "a.jsonl"
    first.write_text("first text\n", encoding="utf-8")
    second.write_text('{"text": "second"}\n', encoding="utf-8")
    remote = "/srv/corpus/c.txt"
    paths, dataset = files_or_dataset(ctx, [str(first), remote, str(second)], "", "--corpus")
    assert paths == [remote] and dataset.startswith("corpus-")
    assert list(Store(gateway.settings.home).dataset(dataset).meta["files"]) == ["000-z.txt", "001-a.jsonl"]
    with pytest.raises(CliError, match="not both"):
        files_or_dataset(ctx, [str(first)], "ds", "--corpus")


def test_a_taken_corpus_name_with_other_files_is_not_used(gateway, tmp_path):
    ctx = _ctx(gateway)
    mine = tmp_path / "mine.txt"
    mine.write_text("my own corpus\n", encoding="utf-8")
    other = tmp_path / "other.txt"
    other.write_text("something else\n", encoding="utf-8")
    name = "corpus-" + _sha(mine.read_bytes())[:12]
    push_dataset(ctx, name, [(transfer.FileSpec("other.txt", other.stat().st_size, _sha(other.read_bytes())), other)])
    with pytest.raises(CliError, match="holds other files"):
        file_or_dataset(ctx, str(mine), "", "--eval-file", "--eval-dataset")


def test_cli_test_command_sends_a_local_eval_file_as_a_dataset(gateway, tmp_path):
    make_tiny_model(Store(gateway.settings.home), "data-tiny", vocab_size=320)
    text = tmp_path / "held-out.txt"
    text.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    out = run_cli(gateway, "test", "data-tiny", "--eval-file", str(text), "--max-new-tokens", "2", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["perplexity"] > 1
    assert Store(gateway.settings.home).exists("datasets", "corpus-" + _sha(text.read_bytes())[:12])


def test_cli_debug_checks_a_local_data_file_as_a_dataset(gateway, tmp_path):
    """debug --data FILE pushes the file; the gateway checks the dataset, never a host path."""
    if not Store(gateway.settings.home).exists("models", "data-tiny"):
        make_tiny_model(Store(gateway.settings.home), "data-tiny", vocab_size=320)
    good = tmp_path / "good.txt"
    good.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    out = run_cli(gateway, "debug", "data-tiny", "--data", str(good), "--json")
    assert out.returncode == 0, out.stderr
    found = {f["check"]: f for f in json.loads(out.stdout)["findings"]}
    assert found["data.readable"]["severity"] == "ok" and "dataset corpus-" in found["data.readable"]["message"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{broken\n', encoding="utf-8")
    out = run_cli(gateway, "debug", "data-tiny", "--data", str(bad), "--json")
    found = {f["check"]: f for f in json.loads(out.stdout)["findings"]}
    assert found["data.readable"]["severity"] == "error" and "line 2" in found["data.readable"]["message"]
    out = run_cli(gateway, "debug", "data-tiny", "--data-dataset", "no-such-data")
    assert out.returncode == 4 and "no-such-data" in out.stderr


# -- uploads are bounded before any work ---------------------------------------------------------

@pytest.fixture(scope="module")
def quota_gateway(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("quota") / "home", store_quota=10_000)
    yield gw
    stop_gateway(gw)


def test_quota_refuses_an_upload_up_front(quota_gateway):
    gw = quota_gateway
    core = gateway_pb2_grpc.CoreStub(gw.channel())
    store = Store(gw.settings.home)
    _upload(core, [("a.txt", b"a" * 6_000)], "q1")
    code, details = _code(lambda: _upload(core, [("b.txt", b"b" * 5_000)], "q2"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "5,000 bytes" in details and "6,000 bytes" in details and "10,000 bytes" in details
    assert "APT_STORE_QUOTA" in details and "apt-model data rm" in details
    assert not store.exists("datasets", "q2") and _left_behind(store.root) == []
    # a model upload counts against the same quota
    code, details = _code(lambda: _upload(core, [("config.json", b"{}"), ("model.safetensors", b"w" * 5_000)],
                                          "qm", kind="models"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "model upload" in details
    # replacing an entry frees its bytes under the quota; what fits is stored
    _upload(core, [("a.txt", b"c" * 9_000)], "q1", overwrite=True)
    assert store.dataset("q1").size_bytes == 9_000
    _upload(core, [("d.txt", b"d" * 1_000)], "q3")
    assert store.used_bytes() == 10_000


def test_full_disk_refuses_an_upload_up_front(quota_gateway, monkeypatch):
    gw = quota_gateway
    core = gateway_pb2_grpc.CoreStub(gw.channel())
    monkeypatch.setattr(transfer, "disk_free", lambda folder: transfer.DISK_MARGIN_BYTES + 10)
    code, details = _code(lambda: _upload(core, [("e.txt", b"e" * 11)], "full"))
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "disk" in details and "11 bytes" in details
    assert not Store(gw.settings.home).exists("datasets", "full")


def test_uploads_in_progress_count_against_the_room(tmp_path):
    store = Store(tmp_path / "home")
    with transfer.reserve_room(store, "datasets", 600, quota=1_000):
        with pytest.raises(errors.ResourceExhausted, match="uploads in progress hold"):
            with transfer.reserve_room(store, "datasets", 500, quota=1_000):
                pass
        with transfer.reserve_room(store, "datasets", 400, quota=1_000):
            pass
    with transfer.reserve_room(store, "datasets", 1_000, quota=1_000):  # all released
        pass


def test_room_is_checked_before_a_byte_is_read(tmp_path):
    store = Store(tmp_path / "home")

    def chunks():
        raise AssertionError("a chunk of an upload without room was read")
        yield  # a generator: the assertion fires on the first read

    spec = transfer.FileSpec("a.txt", 2_000, "0" * 64)
    with pytest.raises(errors.ResourceExhausted, match="APT_STORE_QUOTA"):
        transfer.receive_upload(store, "big", [spec], chunks(), kind="datasets", quota=1_000)
    assert not store.exists("datasets", "big") and _left_behind(store.root) == []
