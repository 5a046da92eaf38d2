"""Scale: augmented copies join their original's family; the input sharded across worker
processes writes the same bytes as one process; cancel stops the workers; the shard and merge
commands of the Kubernetes Indexed Job, run as processes here, write the same dataset too."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

from apt_data import pipeline
from apt_data.shard import plan

PLUGIN_DIR = Path(__file__).resolve().parents[1]
REPO = PLUGIN_DIR.parents[1]
SHARD_BYTES = 8 << 10
OUTPUTS = ("data.jsonl", "rejected.jsonl", "duplicates.jsonl", "stats.json")


@pytest.fixture
def small_shards(monkeypatch):
    """Pieces of 8 KiB, so the sample files make many shards (the service reads the module's value)."""
    monkeypatch.setattr(pipeline, "SHARD_BYTES", SHARD_BYTES)


@pytest.fixture
def served(tmp_path, data_root, small_shards):
    home = tmp_path / "home"
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data_root),)) as (channel, _):
        yield data_processors_pb2_grpc.DataProcessorsStub(channel), channel, Store(home)


def run(served, **fields) -> job_pb2.Job:
    stub, channel, _ = served
    return wait_job(channel, stub.StartProcess(pb.ProcessRequest(**fields)).id, timeout=300)


def result_of(job: job_pb2.Job) -> pb.ProcessResult:
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = pb.ProcessResult()
    job.response.Unpack(result)
    return result


def outputs(store: Store, name: str) -> dict[str, bytes]:
    """The dataset's files (stats.json without its timing, the one thing that may differ)."""
    folder = store.dataset(name).path
    files = {f: (folder / f).read_bytes() for f in OUTPUTS}
    stats = json.loads(files["stats.json"])
    stats.pop("seconds")
    files["stats.json"] = json.dumps(stats, sort_keys=True).encode()
    if store.exists("datasets", f"{name}-eval"):
        files["eval"] = (store.dataset(f"{name}-eval").path / "data.jsonl").read_bytes()
    return files


def rows(store: Store, name: str, file: str = "data.jsonl") -> list[dict]:
    return [json.loads(line) for line in (store.dataset(name).path / file).read_text(encoding="utf-8").splitlines()]


# -- augmented_from ----------------------------------------------------------------------------
def augmented(served, sample_files, methods: list[str]) -> list[dict]:
    """A store dataset of 40 originals, augmented (the real StartAugment job) into 'aug'; its rows."""
    stub, channel, store = served
    texts = list(dict.fromkeys(r["text"] for r in map(json.loads, sample_files["jsonl"].read_text("utf-8").splitlines())
                               if " " in r["text"]))  # English: every copy differs from its original
    with store.create("datasets", "base", operation="test") as folder:
        (folder / "data.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n"
                                                   for t in texts[:40]), encoding="utf-8")
    job = wait_job(channel, stub.StartAugment(pb.AugmentRequest(dataset="base", name="aug", methods=methods,
                                                                copies=2, seed=1)).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    return rows(store, "aug")


def test_augmented_copies_stay_with_their_original_across_the_split(served, sample_files):
    _, _, store = served
    # full-width copies share no shingle with their original: only augmented_from can join them
    aug = augmented(served, sample_files, ["width"])
    result = result_of(run(served, dataset="aug", name="split", eval_fraction=0.5, seed=2, no_quality_filters=True))
    n_copies = sum("augmented_from" in r for r in aug)
    assert n_copies >= 40 and result.augmented_copies == n_copies and result.cross_split_pairs == 0
    held = {r["where"] for r in rows(store, "split-eval")}
    line_of_id = {r["id"]: f"line {n}" for n, r in enumerate(aug, 1) if "id" in r}
    for n, row in enumerate(aug, 1):
        if "augmented_from" in row:
            assert (f"line {n}" in held) == (line_of_id[row["augmented_from"]] in held), row
    assert 0 < len(held) < len(aug)  # both sides hold families, so a copy could have crossed


def test_with_dedup_a_copy_is_not_an_independent_document(served, sample_files):
    _, _, store = served
    aug = augmented(served, sample_files, ["width", "punctuation"])
    n_copies = sum("augmented_from" in r for r in aug)
    result = result_of(run(served, dataset="aug", name="dd", dedup=True, no_quality_filters=True))
    assert result.augmented_copies == n_copies >= 40
    assert {d.reason: d.count for d in result.dropped}["augmented_copy"] == n_copies
    assert result.documents_kept <= len(aug) - n_copies
    copies = [r for r in rows(store, "dd", "rejected.jsonl") if r["reason"] == "augmented_copy"]
    assert len(copies) == n_copies and all(r["duplicate_of"].startswith("line ") for r in copies)


# -- workers -----------------------------------------------------------------------------------
def test_two_workers_write_the_same_bytes_as_one(served, sample_files):
    _, _, store = served
    inputs = [str(sample_files[k]) for k in ("jsonl", "csv", "html", "gb18030")]
    assert len(plan([Path(p) for p in inputs], SHARD_BYTES)) >= 8  # the jsonl alone is cut into several pieces
    common = dict(paths=inputs, dedup=True, eval_fraction=0.3, seed=4)
    one = result_of(run(served, name="w", workers=1, **common))
    first = outputs(store, "w")
    two = result_of(run(served, name="w", workers=2, overwrite=True, **common))
    assert one.documents_read == two.documents_read > 300 and one.near_duplicates > 0 and "eval" in first
    assert outputs(store, "w") == first


@pytest.mark.parametrize("kind", ["jsonl", "csv"])
def test_pieces_of_a_file_write_what_the_whole_file_writes(served, sample_files, monkeypatch, kind):
    _, _, store = served
    path = sample_files[kind]
    assert len(plan([path], SHARD_BYTES)) >= 5
    common = dict(paths=[str(path)], dedup=True, eval_fraction=0.3, seed=4, workers=2)
    result_of(run(served, name="p", **common))
    pieces = outputs(store, "p")
    monkeypatch.setattr(pipeline, "SHARD_BYTES", 1 << 30)  # one piece: line numbers counted from the top
    result_of(run(served, name="p", overwrite=True, **common))
    assert outputs(store, "p") == pieces


def test_a_bad_line_in_a_later_piece_is_named_by_its_line_in_the_file(served, data_root, sample_files):
    path = data_root / "late-error.jsonl"
    lines = sample_files["jsonl"].read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join(lines + ["{not json"]) + "\n", encoding="utf-8")
    assert len(plan([path], SHARD_BYTES)) >= 5
    job = run(served, paths=[str(path)], name="bad", workers=2)
    assert job.state == job_pb2.JOB_STATE_FAILED and job.error.code == "INVALID_ARGUMENT"
    assert f"late-error.jsonl line {len(lines) + 1} is not valid JSON" in job.error.message
    assert not served[2].exists("datasets", "bad")


def test_csv_pieces_cut_only_between_records(tmp_path):
    """Quoted newlines and doubled quotes never end a piece: the pieces' rows are the file's rows."""
    import pandas as pd

    from apt_data.ingest import ReadOptions, read_records

    texts = [f'Row {i} says ""hi"", then\nbreaks a line' if i % 3 else f"Row {i}, plain" for i in range(2000)]
    path = tmp_path / "quoted.csv"
    pd.DataFrame({"id": range(len(texts)), "text": texts}).to_csv(path, index=False)
    pieces = plan([path], 4096)
    assert len(pieces) > 10
    whole = list(read_records(path, ReadOptions())[1])
    cut = [r for p in pieces for r in read_records(path, ReadOptions(
        start=p.start, end=p.end, first_line=p.first_line, first_row=p.first_row, header_end=p.header_end))[1]]
    assert cut == whole and len(whole) == len(texts)


def test_a_ragged_row_in_a_later_piece_is_named_as_in_the_whole_file(served, data_root, monkeypatch):
    path = data_root / "late-ragged.csv"
    rows = [f'"Row {i}, with a comma\nand a quoted newline"' if i % 5 == 0 else f"Row {i} is plain text" for i in range(900)]
    path.write_text("text\n" + "\n".join(rows) + '\nthe last row,has,extra fields\n', encoding="utf-8")
    assert len(plan([path], SHARD_BYTES)) >= 3
    job = run(served, paths=[str(path)], name="ragged", workers=2)
    assert job.state == job_pb2.JOB_STATE_FAILED and job.error.code == "INVALID_ARGUMENT"
    assert "(data row 901) has 3 fields" in job.error.message
    monkeypatch.setattr(pipeline, "SHARD_BYTES", 1 << 30)
    assert run(served, paths=[str(path)], name="ragged").error.message == job.error.message


def test_cancel_stops_the_workers(served, data_root, sample_files):
    stub, channel, store = served
    big = data_root / "big.jsonl"
    lines = sample_files["jsonl"].read_text(encoding="utf-8").splitlines()
    big.write_text("".join(json.dumps({"text": f"{json.loads(l)['text']} copy {k}"}) + "\n"
                           for k in range(40) for l in lines), encoding="utf-8")
    job = stub.StartProcess(pb.ProcessRequest(paths=[str(big)], name="cut", dedup=True, workers=2))
    deadline = time.monotonic() + 120
    while not multiprocessing.active_children():  # the pool's processes are this test's children
        assert time.monotonic() < deadline, "no worker process started"
        time.sleep(0.05)
    plugin_pb2_grpc.JobsStub(channel).CancelJob(job_pb2.CancelJobRequest(id=job.id))
    final = wait_job(channel, job.id)
    assert final.state == job_pb2.JOB_STATE_CANCELLED
    assert multiprocessing.active_children() == []
    assert not store.exists("datasets", "cut")


def test_workers_beyond_the_rule_are_refused(served, sample_files):
    stub, _, _ = served
    with pytest.raises(grpc.RpcError) as err:
        stub.StartProcess(pb.ProcessRequest(paths=[str(sample_files["jsonl"])], name="x", workers=65))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "workers" in err.value.details()


# -- the Indexed Job's commands as processes ------------------------------------------------------
def command(module: str, home: Path, data_root: Path, request: Path, *args: str, index: int | None = None):
    env = {**os.environ, "APT_HOME": str(home), "APT_DATA_ROOTS": str(data_root),
           "PYTHONPATH": os.pathsep.join([str(PLUGIN_DIR), str(REPO)])}
    env.pop("JOB_COMPLETION_INDEX", None)
    if index is not None:
        env["JOB_COMPLETION_INDEX"] = str(index)
    return subprocess.Popen([sys.executable, "-m", module, "--request", str(request),
                             "--shard-mb", str(SHARD_BYTES / (1 << 20)), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def test_indexed_shards_then_merge_equal_one_worker(served, tmp_path, data_root, sample_files):
    _, _, store = served
    fields = {"paths": [str(sample_files["jsonl"]), str(sample_files["csv"])], "name": "big", "dedup": True,
              "eval_fraction": 0.3, "seed": 4}
    reference = result_of(run(served, workers=1, **fields))
    request = tmp_path / "request.json"
    request.write_text(json.dumps(fields), encoding="utf-8")
    home = tmp_path / "cluster-home"
    early = finished(command("apt_data.merge", home, data_root, request))
    assert early[0] == 2 and "FAILED_PRECONDITION" in early[2] and "apt_data.shard" in early[2]
    pods = [command("apt_data.shard", home, data_root, request, "--of", "3", index=i) for i in range(3)]
    for pod in pods:
        code, out, err = finished(pod)
        assert code == 0, err
        assert "shard " in out
    code, out, err = finished(command("apt_data.merge", home, data_root, request))
    assert code == 0, err
    assert json.loads(out.splitlines()[-1])["documents_read"] == reference.documents_read
    assert outputs(Store(home), "big") == outputs(store, "big")
    assert not (home / "exports" / "big-shards").exists()


def test_a_missing_shard_is_named_and_no_dataset_is_written(tmp_path, data_root, sample_files):
    request = tmp_path / "request.json"
    request.write_text(json.dumps({"paths": [str(sample_files["jsonl"])], "name": "part"}), encoding="utf-8")
    home = tmp_path / "home"
    code, _, err = finished(command("apt_data.shard", home, data_root, request, "--of", "2", index=0))
    assert code == 0, err
    code, _, err = finished(command("apt_data.merge", home, data_root, request))
    assert code == 2 and "FAILED_PRECONDITION" in err and "have not finished" in err
    assert not Store(home).exists("datasets", "part")


def test_the_shard_command_reads_only_inside_the_data_roots(tmp_path, data_root):
    secret = tmp_path / "outside" / "secret.jsonl"
    secret.parent.mkdir()
    secret.write_text('{"text": "not yours"}\n', encoding="utf-8")
    home = tmp_path / "home"
    for fields, status in (({"paths": [str(secret)], "name": "steal"}, "PERMISSION_DENIED"),
                           ({"paths": [str(data_root / ".." / "outside" / "secret.jsonl")], "name": "steal"},
                            "PERMISSION_DENIED"),
                           ({"paths": [str(data_root)], "name": "../escape"}, "INVALID_ARGUMENT")):
        request = tmp_path / "request.json"
        request.write_text(json.dumps(fields), encoding="utf-8")
        code, _, err = finished(command("apt_data.shard", home, data_root, request, "--of", "1", index=0))
        assert code == 2 and status in err, err
    assert not (home / "exports").exists() or not any((home / "exports").iterdir())
    code, _, err = finished(command("apt_data.shard", home, data_root, request, "--of", "2", index=2))
    assert code == 2 and "JOB_COMPLETION_INDEX" in err
