"""The Reasoning service through its real gRPC server: generated datasets, CoT SFT with the
answer-only ablation, search under a budget, and every refusal."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest
import torch
from google.protobuf import json_format

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.modeling.io import load_model
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_reason.cot import KIND


PLUGIN = Path(__file__).resolve().parents[1]
SUCCEEDED, FAILED, CANCELLED = job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED


@pytest.fixture
def svc(home):
    with serve_plugin(PLUGIN, home) as (channel, _):
        yield reasoning_pb2_grpc.ReasoningStub(channel), channel


def _result(job) -> dict:
    return json_format.MessageToDict(job.result)  # Struct -> plain dict


def _ok(channel, wait_job, job):
    done = wait_job(channel, job.id, timeout=240)
    assert done.state == SUCCEEDED, done.error
    return _result(done)


def test_generate_tasks_writes_template_disjoint_splits(svc, wait_job, home):
    stub, channel = svc
    out = _ok(channel, wait_job, stub.StartGenerateTasks(pb.GenerateTasksRequest(
        output_name="gen", train_size=50, eval_size=10, languages=["zh"], seed=4)))
    assert (out["train_rows"], out["eval_rows"]) == (50, 10)
    assert not set(out["train_templates"]) & set(out["eval_templates"])
    folder = Store(home).dataset("gen").path
    rows = {s: [json.loads(x) for x in (folder / f"{s}.jsonl").read_text().splitlines()] for s in ("train", "eval")}
    assert {r["template"] for r in rows["eval"]} <= set(out["eval_templates"])
    assert {r["template"] for r in rows["train"]} <= set(out["train_templates"])
    assert {r["language"] for r in rows["train"]} == {"zh"}
    with pytest.raises(grpc.RpcError) as err:  # the name is taken
        stub.StartGenerateTasks(pb.GenerateTasksRequest(output_name="gen"))
    assert err.value.code() == grpc.StatusCode.ALREADY_EXISTS
    with pytest.raises(grpc.RpcError) as err:
        stub.StartGenerateTasks(pb.GenerateTasksRequest(output_name="g2", min_steps=3, max_steps=2))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--min-steps" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:  # 2 held-out target blocks leave none for train
        stub.StartGenerateTasks(pb.GenerateTasksRequest(output_name="g3", countdown_share=0.5, countdown_max_target=25))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--countdown-max-target" in err.value.details()


def test_cot_training_with_ablation_stores_both_models(svc, wait_job, home):
    stub, channel = svc
    out = _ok(channel, wait_job, stub.StartCotTraining(pb.CotTrainingRequest(
        model="lm", dataset="probs", output_name="cot", max_steps=6, batch_size=4, ablation=True,
        eval_questions=4, max_new_tokens=24, device="cpu")))
    assert out["model"] == "cot" and out["ablation_model"] == "cot-ablation" and out["steps"] == 6
    assert out["eval_questions"] == 4 and 0 <= out["eval_exact_match"] <= 1
    assert 0 <= out["eval_unparseable"] <= 4 and out["tokens_seen"] > 0
    store = Store(home)
    for name, target in (("cot", "cot"), ("cot-ablation", "answer_only")):
        entry = store.model(name)
        assert entry.meta["lineage"]["parent"] == "lm"
        assert entry.meta["lineage"]["parameters"]["target"] == target
        assert len(trainlog.read(entry.path)) == 6
        assert load_model(entry.path) is not None
    start = load_model(store.model("lm").path).state_dict()
    for name in ("cot", "cot-ablation"):  # both trained away from the same start
        assert not torch.equal(load_model(store.model(name).path).state_dict()["lm_head.weight"],
                               start["lm_head.weight"])
    assert not (home / "checkpoints" / KIND / "cot").exists()


def test_rows_without_a_checkable_answer_are_refused_with_row_numbers(svc, home, push_rows):
    stub, _ = svc
    good = {"question": "Anna has 2 apples.", "reasoning": "2 + 1 = 3", "answer": "3"}
    push_rows(Store(home), "bad", [good, {"question": "q", "reasoning": "r", "answer": "three"}, good,
                                   "not json", {"question": "q", "reasoning": "r"}], [good])
    with pytest.raises(grpc.RpcError) as err:
        stub.StartCotTraining(pb.CotTrainingRequest(model="lm", dataset="bad", output_name="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rows 2, 4, 5" in err.value.details()
    push_rows(Store(home), "noreason", [{"question": "q", "answer": 3}], [good])  # fine for answer_only
    with pytest.raises(grpc.RpcError) as err:
        stub.StartCotTraining(pb.CotTrainingRequest(model="lm", dataset="noreason", output_name="x"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "rows 1" in err.value.details()
    with pytest.raises(grpc.RpcError) as err:
        stub.StartCotTraining(pb.CotTrainingRequest(model="missing", dataset="probs", output_name="x"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def _wait_for_step(jobs, job_id: str, step: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = jobs.GetJob(job_pb2.GetJobRequest(id=job_id))
        if snap.metrics.get("step", 0) >= step:
            return
        assert snap.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING), snap.error.message
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not reach step {step}")


def test_cancel_leaves_no_model_and_resume_matches_an_uninterrupted_run(svc, wait_job, home, report_every_step):
    stub, channel = svc
    jobs = plugin_pb2_grpc.JobsStub(channel)
    req = dict(model="lm", dataset="probs", max_steps=30, batch_size=2, eval_questions=1, max_new_tokens=4,
               device="cpu", checkpoint_every=1000)
    job = stub.StartCotTraining(pb.CotTrainingRequest(output_name="cc", **req))
    _wait_for_step(jobs, job.id, 2)
    jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
    assert wait_job(channel, job.id).state == CANCELLED
    store = Store(home)
    assert not store.exists("models", "cc")
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".tmp-")]
    assert (home / "checkpoints" / KIND / "cc").is_dir()
    with pytest.raises(grpc.RpcError) as err:  # a checkpoint is there: resume or overwrite
        stub.StartCotTraining(pb.CotTrainingRequest(output_name="cc", **req))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "--resume" in err.value.details()
    resumed = _ok(channel, wait_job, stub.StartCotTraining(pb.CotTrainingRequest(output_name="cc", resume=True, **req)))
    whole = _ok(channel, wait_job, stub.StartCotTraining(pb.CotTrainingRequest(output_name="whole", **req)))
    assert resumed["steps"] == 30 and resumed["loss"] == pytest.approx(whole["loss"], rel=1e-4)
    assert len(trainlog.read(store.model("cc").path)) == 30


def test_tree_search_self_consistency_on_a_dataset(svc, wait_job, home):
    stub, channel = svc
    out = _ok(channel, wait_job, stub.StartTreeSearch(pb.TreeSearchRequest(
        model="lm", dataset="probs", output_name="sc", strategy="self_consistency", token_budget=40,
        max_new_tokens=10, max_questions=3, device="cpu", seed=1)))
    assert out["questions"] == 3 and out["tokens_generated"] <= 3 * 40 and 0 <= out["exact_match"] <= 1
    tree = json.loads(out["tree_json"])
    assert tree["strategy"] == "self_consistency" and len(tree["children"]) == 4
    assert tree["tokens"] <= 40 and sum(c["tokens"] for c in tree["children"]) <= tree["tokens"]
    folder = Store(home).dataset("sc").path
    assert len(json.loads((folder / "trees.json").read_text())) == 3
    results = [json.loads(x) for x in (folder / "results.jsonl").read_text().splitlines()]
    assert sum(r["answer"] is None for r in results) == out["unparseable"]


def test_tree_search_one_prompt_greedy(svc, wait_job):
    stub, channel = svc
    out = _ok(channel, wait_job, stub.StartTreeSearch(pb.TreeSearchRequest(
        model="lm", prompt="Anna has 3 apples. Anna gets 4 more apples. How many apples does Anna have now?",
        output_name="g1", strategy="greedy", token_budget=16, device="cpu")))
    assert out["questions"] == 1 and "exact_match" not in out
    assert out["tokens_generated"] <= 16 and len(json.loads(out["tree_json"])["children"]) == 1


def test_search_refusals(svc, home):
    stub, _ = svc
    base = dict(model="lm", prompt="q", output_name="r", device="cpu")
    cases = [
        (dict(token_budget=2_000_000_000, max_new_tokens=1), grpc.StatusCode.RESOURCE_EXHAUSTED, "GiB"),
        (dict(strategy="mcts"), grpc.StatusCode.INVALID_ARGUMENT, "pass --verifier"),
        (dict(verifier="v"), grpc.StatusCode.INVALID_ARGUMENT, "--verifier"),
        (dict(max_depth=3), grpc.StatusCode.INVALID_ARGUMENT, "--max-depth"),
        (dict(dataset="probs"), grpc.StatusCode.INVALID_ARGUMENT, "exactly one"),
        (dict(strategy="greedy", beam_width=4), grpc.StatusCode.INVALID_ARGUMENT, "one branch"),
    ]
    for extra, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.StartTreeSearch(pb.TreeSearchRequest(**{**base, **extra}))
        assert err.value.code() == code, extra
        assert words in err.value.details(), extra
