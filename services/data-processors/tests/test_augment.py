"""StartAugment through the real server: seeded copies that name their original; code renamed
through ast still computes the same."""

from __future__ import annotations

import json
import random
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb
from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2_grpc
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

from apt_data.augment import punctuation, rename_identifiers, word_drop

PLUGIN_DIR = Path(__file__).resolve().parents[1]
TEXTS = ["The teacher model reads the text and the student model learns from its answers today.",
         "机器学习是人工智能的一个分支，学生模型向教师模型学习。"]


@pytest.fixture
def served(tmp_path):
    home = tmp_path / "home"
    store = Store(home)
    with store.create("datasets", "base", operation="test") as folder:
        (folder / "data.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS),
                                           encoding="utf-8")
    with serve_plugin(PLUGIN_DIR, home) as (channel, _):
        yield data_processors_pb2_grpc.DataProcessorsStub(channel), channel, store


def augment(served, **fields) -> tuple[job_pb2.Job, list[dict]]:
    stub, channel, store = served
    job = wait_job(channel, stub.StartAugment(pb.AugmentRequest(dataset="base", name="aug", **fields)).id)
    if job.state != job_pb2.JOB_STATE_SUCCEEDED:
        return job, []
    lines = (store.dataset("aug").path / "data.jsonl").read_text(encoding="utf-8").splitlines()
    return job, [json.loads(line) for line in lines]


def test_copies_record_their_original_and_repeat_with_the_seed(served):
    job, rows = augment(served, methods=["word_drop", "punctuation"], copies=2, seed=5)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert len(rows) == 6 and [r.get("id") for r in rows if "id" in r] == [0, 1]
    copies = [r for r in rows if "augmented_from" in r]
    assert [c["augmented_from"] for c in copies] == [0, 0, 1, 1]
    assert {c["method"] for c in copies} == {"word_drop", "punctuation"}
    assert all(c["text"] != TEXTS[c["augmented_from"]] for c in copies)
    _, again = augment(served, methods=["word_drop", "punctuation"], copies=2, seed=5, overwrite=True)
    assert again == rows


def test_chinese_word_ops_and_punctuation():
    rng = random.Random(0)
    assert punctuation(TEXTS[1], rng) == "机器学习是人工智能的一个分支,学生模型向教师模型学习."
    dropped = word_drop(TEXTS[1] * 5, random.Random(1))
    assert len(dropped) < len(TEXTS[1] * 5) and "机器" in dropped  # whole jieba words go, not characters


def test_rename_identifiers_keeps_behaviour():
    source = ("import math\n\ndef area(radius, scale=2):\n    squared = radius * radius\n"
              "    return [math.pi * squared * k for k in range(scale)]\n\nRESULT = area(3, scale=3)\n")
    renamed = rename_identifiers(source, random.Random(0))
    assert "squared" not in renamed and "radius" not in renamed
    before, after = {}, {}
    exec(source, before)
    exec(renamed, after)
    assert before["RESULT"] == after["RESULT"]


def test_renaming_prose_is_refused_and_a_missing_dataset_is_not_found(served):
    stub, _, _ = served
    job, _ = augment(served, methods=["rename_identifiers"])
    assert job.state == job_pb2.JOB_STATE_FAILED and job.error.code == "INVALID_ARGUMENT"
    assert not served[2].exists("datasets", "aug")
    with pytest.raises(grpc.RpcError) as err:
        stub.StartAugment(pb.AugmentRequest(dataset="missing", name="x"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
