"""StartProcess and CleanText through the real gRPC server, with real files and a real store."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import grpc
import pytest

from apt_model.corpus import load_corpus
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2_grpc
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path, data_root):
    home = tmp_path / "home"
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data_root),)) as (channel, app):
        yield data_processors_pb2_grpc.DataProcessorsStub(channel), channel, Store(home)


def run(served, **fields) -> job_pb2.Job:
    stub, channel, _ = served
    return wait_job(channel, stub.StartProcess(pb.ProcessRequest(**fields)).id)


def rows(store: Store, name: str, file: str = "data.jsonl") -> list[dict]:
    text = (store.dataset(name).path / file).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def test_process_dedups_splits_and_writes_a_dataset_train_reads(served, sample_files):
    _, _, store = served
    job = run(served, paths=[str(sample_files["jsonl"])], name="clean", dedup=True, eval_fraction=0.2, seed=3)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = pb.ProcessResult()
    job.response.Unpack(result)
    assert result.exact_duplicates >= 10 and result.near_duplicates >= 10   # 15 exact + 30 near planted
    assert result.documents_kept + result.eval_documents + sum(d.count for d in result.dropped) == result.documents_read
    assert result.cross_split_pairs == 0 and result.eval_name == "clean-eval"
    train, held = rows(store, "clean"), rows(store, "clean-eval")
    assert len(train) == result.documents_kept and len(held) == result.eval_documents
    assert not {r["text"] for r in train} & {r["text"] for r in held}
    rejected = rows(store, "clean", "rejected.jsonl")
    assert {"exact_duplicate", "near_duplicate"} <= {r["reason"] for r in rejected}
    assert all("score" in r and r["source"] == "planted.jsonl" for r in rejected)
    stats = json.loads((store.dataset("clean").path / "stats.json").read_text())
    assert stats["encodings"] == {"planted.jsonl": "utf-8"} and stats["examples"]["near_duplicate"]
    families = rows(store, "clean", "duplicates.jsonl")
    assert len(families) == result.duplicate_clusters and all(len(f["members"]) >= 2 for f in families)
    # what core train reads: data.jsonl only, not the reports beside it
    assert load_corpus([], store, "clean").documents == [r["text"] for r in train]
    assert store.dataset("clean").meta["lineage"]["operation"] == "data-processors.process"
    assert store.dataset("clean-eval").parent == "clean"


def test_near_duplicate_families_stay_on_one_side_without_dedup(served, sample_files):
    _, _, store = served
    job = run(served, paths=[str(sample_files["csv"])], name="kept", eval_fraction=0.3)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    families = rows(store, "kept", "duplicates.jsonl")
    assert families and all(m["kept"] for f in families for m in f["members"])
    held = {(r["source"], r["where"]) for r in rows(store, "kept-eval")}
    for family in families:
        sides = {(m["source"], m["where"]) in held for m in family["members"]}
        assert len(sides) == 1, family


@pytest.mark.parametrize("kind", ["csv", "xlsx", "gb18030", "big5", "mojibake", "html"])
def test_every_input_kind_is_read(served, sample_files, kind):
    _, _, store = served
    job = run(served, paths=[str(sample_files[kind])], name=f"k-{kind}")
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    texts = [r["text"] for r in rows(store, f"k-{kind}")]
    assert texts
    if kind in ("gb18030", "big5"):
        original = sample_files[kind].read_bytes().decode(kind)
        assert texts[0] == original.split("\n\n")[0]
    if kind == "mojibake":
        assert "é" in texts[0] and "Ã" not in "".join(texts)
    if kind == "html":
        assert "Privacy policy" not in texts[0] and "About us" not in texts[0] and "Sample page" in texts[0]


def test_clean_text_rpc(served):
    stub, _, _ = served
    answer = stub.CleanText(pb.CleanTextRequest(texts=["ＡＰＴ　模型 训练", "機器"], strategy="chinese",
                                                traditional_to_simplified=True))
    assert list(answer.texts) == ["APT 模型训练", "机器"]
    with pytest.raises(grpc.RpcError) as err:
        stub.CleanText(pb.CleanTextRequest(texts=["x"], strategy="fancy"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "basic" in err.value.details()


def _byte_level_tokenizer(store: Store, name: str, texts: list[str]) -> None:
    """A store model holding only a real byte-level BPE tokenizer.json, trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=600, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    with store.create("models", name, operation="test") as folder:
        tok.save(str(folder / "tokenizer.json"))


def test_tokens_per_byte_drops_garbage_under_a_store_tokenizer(served, data_root, sample_files):
    _, _, store = served
    english = [r["text"] for r in map(json.loads, sample_files["jsonl"].read_text(encoding="utf-8").splitlines())
               if " " in r["text"]]
    _byte_level_tokenizer(store, "tok", english)
    path = data_root / "mixed.jsonl"
    garbage = "Qx7 vZ9k Wq2 Jm8p Xk3 Zr5t Vb1 Ny6w Hq4 Pl0"  # passes the word rules, tokenizes byte by byte
    path.write_text("\n".join(json.dumps({"text": t}) for t in english[:5] + [garbage]), encoding="utf-8")
    job = run(served, paths=[str(path)], name="dense", tokenizer_model="tok")
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    rejected = rows(store, "dense", "rejected.jsonl")
    assert [r["reason"] for r in rejected] == ["tokens_per_byte"] and rejected[0]["text"] == garbage
    assert len(rows(store, "dense")) == 5


def test_an_unknown_tokenizer_model_is_not_found(served, sample_files):
    stub, _, _ = served
    with pytest.raises(grpc.RpcError) as err:
        stub.StartProcess(pb.ProcessRequest(paths=[str(sample_files["jsonl"])], name="x", tokenizer_model="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
