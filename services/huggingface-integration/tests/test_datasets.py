"""Datasets from each local format and from a hub dataset repo, with stats and previews."""

from __future__ import annotations

import csv
import json

import pytest

from apt_model import errors
from apt_model.trust import PathPolicy

from apt_hf.datasets_io import DatasetSpec, run_load_dataset
from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, run_import
from apt_hf.settings import HubSettings
from apt_hf_testing.helpers import store_is_clean

ROWS = [{"text": f"Sample number {i}: the quick brown fox 你好 {i * 7}", "label": i % 3} for i in range(40)]


def write(folder, fmt: str):
    if fmt == "json":
        path = folder / "data.json"
        path.write_text(json.dumps(ROWS), encoding="utf-8")
    elif fmt == "jsonl":
        path = folder / "data.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    elif fmt == "csv":
        path = folder / "data.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=["text", "label"])
            w.writeheader()
            w.writerows(ROWS)
    elif fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = folder / "data.parquet"
        pq.write_table(pa.Table.from_pylist(ROWS), path)
    else:
        path = folder / "data.txt"
        path.write_text("".join(r["text"] + "\n" for r in ROWS), encoding="utf-8")
    return path


@pytest.fixture
def with_tokenizer(store, run_job, llama_dir):
    assert run_job("StartImportModel",
                   lambda ctx: run_import(store, None, ImportSpec(source=str(llama_dir), name="tok"), ctx)).ok
    return "tok"


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "parquet", "text"])
def test_each_local_format(tmp_path, store, run_job, with_tokenizer, fmt):
    path = write(tmp_path, fmt)
    spec = DatasetSpec(source=str(path), name=f"ds-{fmt}", tokenizer_from=with_tokenizer, preview_rows=3)
    run = run_job("StartLoadDataset", lambda ctx: run_load_dataset(store, None, spec, ctx))
    assert run.ok, run.final.error_message
    res = run.final.result
    assert res["format"] == fmt and res["rows"] == 40
    assert res["features"]["text"] in ("Value('string')", "Value('large_string')")  # csv reads large_string
    if fmt != "text":
        assert res["features"]["label"] == "Value('int64')"
    assert len(res["preview"]) == 3 and res["preview"][1]["text"] == ROWS[1]["text"]
    stats = res["token_stats"]
    assert stats["rows_counted"] == 40 and stats["min"] <= stats["p50"] <= stats["max"]
    assert stats["total_tokens"] > 40 * 5
    typed = run.final.response  # the declared LoadDatasetResult, integers as integers
    assert (typed.rows, typed.columns, typed.total_tokens) == (40, len(res["features"]), stats["total_tokens"])
    assert typed.token_stats.rows_counted == 40 and typed.preview[1]["text"] == ROWS[1]["text"]
    entry = store.dataset(f"ds-{fmt}")
    assert (entry.path / "data.parquet").is_file() and entry.meta["metrics"]["rows"] == 40
    assert store.verify("datasets", f"ds-{fmt}") == []


def test_bad_data_is_refused_and_nothing_stored(tmp_path, store, run_job):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": broken\n')
    run = run_job("StartLoadDataset",
                  lambda ctx: run_load_dataset(store, None, DatasetSpec(source=str(bad), name="bad"), ctx))
    assert run.final.error_code == "INVALID_ARGUMENT"
    odd = tmp_path / "data.xyz"
    odd.write_text("x")
    run = run_job("StartLoadDataset",
                  lambda ctx: run_load_dataset(store, None, DatasetSpec(source=str(odd), name="odd"), ctx))
    assert run.final.error_code == "INVALID_ARGUMENT" and "pass format" in run.final.error_message
    req = type("R", (), dict(source=str(odd), name="x", format="xlsx", split="", tokenizer_from="",
                             text_field="", preview_rows=0, overwrite=False, revision="", hub=""))()
    with pytest.raises(errors.InvalidArgument, match="Unknown format"):
        DatasetSpec.from_request(req, PathPolicy.create(store.root, [str(tmp_path)]))
    assert store_is_clean(store)


def test_hub_dataset(tmp_path, store, run_job, hf_hub):
    folder = tmp_path / "repo"
    folder.mkdir()
    write(folder, "jsonl")
    sha = hf_hub.add_repo("alice/corpus", folder, repo_type="dataset")
    hub = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_cache=tmp_path / "cache"))
    run = run_job("StartLoadDataset",
                  lambda ctx: run_load_dataset(store, hub, DatasetSpec(source="alice/corpus", name="corpus"), ctx))
    assert run.ok, run.final.error_message
    assert run.final.result["rows"] == 40
    typed = run.final.response  # no tokenizer_from: no token statistics, rather than zeros
    assert not typed.HasField("token_stats") and not typed.HasField("total_tokens") and typed.source_commit_sha == sha
    assert store.dataset("corpus").meta["source"]["commit_sha"] == sha
