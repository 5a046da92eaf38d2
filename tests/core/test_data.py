"""Corpus loading reports bad data (where and what to do) instead of skipping it."""

from __future__ import annotations

import json

import pytest
import torch

from apt_model import errors
from apt_model.corpus import load_corpus, load_eval_text
from apt_model.store import Store
from gateway.core.data import split_tokens, tokenize_documents


def test_txt_and_jsonl(tmp_path):
    (tmp_path / "a.txt").write_text("hello 世界", encoding="utf-8")
    (tmp_path / "b.jsonl").write_text(json.dumps({"text": "one"}) + "\n\n" + json.dumps({"text": "二"}) + "\n",
                                      encoding="utf-8")
    corpus = load_corpus([str(tmp_path / "a.txt"), str(tmp_path / "b.jsonl")])
    assert corpus.documents == ["hello 世界", "one", "二"]


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "e.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(errors.InvalidArgument, match="empty"):
        load_corpus([str(tmp_path / "e.txt")])


def test_undecodable_bytes_name_the_offset(tmp_path):
    (tmp_path / "gbk.txt").write_bytes("第一行\n".encode() + "中文".encode("gbk"))
    with pytest.raises(errors.InvalidArgument, match=r"byte offset 10 \(line 2\)"):
        load_corpus([str(tmp_path / "gbk.txt")])


def test_jsonl_problems(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"text": "ok"}\n{"body": "no text"}\n', encoding="utf-8")
    with pytest.raises(errors.InvalidArgument, match="line 2 has no field 'text'"):
        load_corpus([str(p)])
    p.write_text('{"text": "ok"}\n{broken\n', encoding="utf-8")
    with pytest.raises(errors.InvalidArgument, match="line 2 is not valid JSON"):
        load_corpus([str(p)])
    p.write_text('{"text": "ok"}\n\n["a", "list"]\n', encoding="utf-8")  # blank lines still count
    with pytest.raises(errors.InvalidArgument, match="line 3 is a JSON list, not an object"):
        load_corpus([str(p)])
    warnings = []
    p.write_text('{"text": "ok"}\n{"text": ""}\n', encoding="utf-8")
    assert load_corpus([str(p)], warn=warnings.append).documents == ["ok"]
    assert "1 record(s) with an empty 'text'" in warnings[0]


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(errors.NotFound):
        load_corpus([str(tmp_path / "nope.txt")])
    (tmp_path / "x.csv").write_text("a,b", encoding="utf-8")
    with pytest.raises(errors.InvalidArgument, match="unsupported"):
        load_corpus([str(tmp_path / "x.csv")])
    with pytest.raises(errors.InvalidArgument, match="No corpus"):
        load_corpus([])


def test_corpus_smaller_than_one_sequence():
    with pytest.raises(errors.InvalidArgument, match="fewer than one training sequence"):
        split_tokens(torch.arange(10), 0.1, seq_len=16)
    with pytest.raises(errors.InvalidArgument, match="too few"):
        split_tokens(torch.arange(40), 0.1, seq_len=30)
    train, held = split_tokens(torch.arange(1000), 0.1, seq_len=16)
    assert train.numel() == 900 and torch.equal(held, torch.arange(900, 1000))


def test_tokenize_separates_documents_with_eos(store, tiny):
    from apt_model.modeling.io import load_tokenizer

    tok = load_tokenizer(store.model(tiny).path)
    ids = tokenize_documents(tok, ["ab", "cd"])
    assert (ids == tok.eos_token_id).sum() == 2 and int(ids[-1]) == tok.eos_token_id


def test_eval_text_needs_exactly_one_source(tmp_path):
    with pytest.raises(errors.InvalidArgument):
        load_eval_text()
    with pytest.raises(errors.InvalidArgument):
        load_eval_text(text="a", path="b")
    assert load_eval_text(text="abc") == "abc"


def test_demo_corpus_is_real_english_and_chinese(tmp_path):
    import re

    from apt_model.data import write_demo_corpus

    train_path, eval_path = write_demo_corpus(tmp_path, english_chars=20_000, chinese_chars=20_000)
    train = [json.loads(line)["text"] for line in train_path.read_text(encoding="utf-8").splitlines()]
    held_out = eval_path.read_text(encoding="utf-8")
    joined = "".join(train)
    assert len(re.findall(r"[\u4e00-\u9fff]", joined)) > 5_000  # Chinese
    assert len(re.findall(r"\b(the|and|of)\b", joined)) > 200  # English
    assert "/v" not in joined[:2000] and "人民" in joined  # POS tags stripped, newspaper text kept
    assert held_out and all(doc not in held_out for doc in train[:20])


def test_a_dataset_listing_its_text_files_is_read_from_those_only(tmp_path):
    """A dataset whose apt.json names ``text_files`` keeps reports (rejected.jsonl) beside its text."""
    store = Store(tmp_path / "home")
    with store.create("datasets", "clean", operation="test", extra={"text_files": ["data.jsonl"]}) as folder:
        (folder / "data.jsonl").write_text('{"text": "kept"}\n', encoding="utf-8")
        (folder / "rejected.jsonl").write_text('{"reason": "too_short", "excerpt": "x"}\n', encoding="utf-8")
    assert load_corpus([], store, "clean").documents == ["kept"]


def test_text_files_outside_the_dataset_are_refused(tmp_path):
    store = Store(tmp_path / "home")
    (tmp_path / "home" / "secret.txt").parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "home" / "secret.txt").write_text("not yours", encoding="utf-8")
    with store.create("datasets", "sneaky", operation="test", extra={"text_files": ["../../secret.txt"]}) as folder:
        (folder / "data.jsonl").write_text('{"text": "kept"}\n', encoding="utf-8")
    with pytest.raises(errors.DataLoss, match="outside the dataset"):
        load_corpus([], store, "sneaky")
