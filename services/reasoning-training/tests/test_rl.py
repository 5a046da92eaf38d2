"""StartRLTraining through the real server: a run with signal stores a model and logs the GRPO
metrics; no signal from the start is refused with sample completions."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import json_format

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store

PLUGIN = Path(__file__).resolve().parents[1]


@pytest.fixture
def svc(home):
    with serve_plugin(PLUGIN, home) as (channel, _):
        yield reasoning_pb2_grpc.ReasoningStub(channel), channel


def test_grpo_with_signal_stores_the_model_and_logs_its_metrics(svc, wait_job, home, push_rows, coin_rows):
    stub, channel = svc
    push_rows(Store(home), "coin", coin_rows(40), coin_rows(6))
    sft = wait_job(channel, stub.StartCotTraining(pb.CotTrainingRequest(
        model="lm", dataset="coin", output_name="coin-sft", target="answer_only", max_steps=40, batch_size=8,
        learning_rate=0.003, eval_questions=2, max_new_tokens=8, device="cpu")).id, timeout=240)
    assert sft.state == job_pb2.JOB_STATE_SUCCEEDED, sft.error
    done = wait_job(channel, stub.StartRLTraining(pb.RLTrainingRequest(
        model="coin-sft", dataset="coin", output_name="coin-rl", max_steps=3, group=6, questions_per_step=2,
        max_new_tokens=8, learning_rate=1e-4, eval_questions=4, beta=0.04, loss_type="dapo", device="cpu",
        patience=3)).id, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    out = json_format.MessageToDict(done.result)
    assert out["model"] == "coin-rl" and out["eval_questions"] == 4
    rows = trainlog.read(Store(home).model("coin-rl").path)
    assert len(rows) == out["steps"] >= 1
    for key in ("reward_mean", "frac_reward_zero_std", "entropy", "kl", "completion_length", "clip_ratio"):
        assert key in rows[-1], key
    assert 0 <= rows[-1]["frac_reward_zero_std"] <= 1 and rows[-1]["completion_length"] > 0


def test_no_reward_signal_from_the_start_is_refused_with_samples(svc, wait_job, home):
    stub, channel = svc
    done = wait_job(channel, stub.StartRLTraining(pb.RLTrainingRequest(
        model="lm", dataset="probs", output_name="rl0", max_steps=5, group=4, questions_per_step=2,
        max_new_tokens=12, patience=2, device="cpu")).id, timeout=240)
    assert done.state == job_pb2.JOB_STATE_FAILED
    assert done.error.code == "FAILED_PRECONDITION"
    assert "No learning signal" in done.error.message and "Sample completions" in done.error.message
    assert not Store(home).exists("models", "rl0")


def test_group_of_one_is_refused(svc):
    stub, _ = svc
    with pytest.raises(grpc.RpcError) as err:
        stub.StartRLTraining(pb.RLTrainingRequest(model="lm", dataset="probs", output_name="x", group=1))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "--group" in err.value.details()


def test_cancel_then_resume_continues_grpo_from_the_checkpoint(coin_sft, report_every_step):
    from apt_model import errors
    from apt_model.testing import JobRecorder
    from apt_reason import rl

    store = coin_sft
    base = dict(max_steps=5, group=6, questions_per_step=2, max_new_tokens=8, learning_rate=1e-4, eval_questions=2,
                beta=0.04, device="cpu", patience=5, checkpoint_every=1000)
    with pytest.raises(errors.Cancelled):
        rl.run_rl(store, rl.RLSpec("coin-sft", "coin", "rc", **base), JobRecorder(cancel_at_step=2))
    ckpt = rl.RunCheckpoint(store, rl.KIND, "rc")
    assert not store.exists("models", "rc") and ckpt.step() == 2
    with pytest.raises(errors.FailedPrecondition, match="--resume"):
        ckpt.check_start(resume=False, overwrite=False)
    with pytest.raises(errors.FailedPrecondition, match="different settings"):
        rl.run_rl(store, rl.RLSpec("coin-sft", "coin", "rc", resume=True, **{**base, "beta": 0.1}), JobRecorder())
    resumed = rl.run_rl(store, rl.RLSpec("coin-sft", "coin", "rc", resume=True, **base), JobRecorder())
    whole = rl.run_rl(store, rl.RLSpec("coin-sft", "coin", "rw", **base), JobRecorder())
    a, b = trainlog.read(store.model("rc").path), trainlog.read(store.model("rw").path)
    assert resumed["steps"] == whole["steps"] and len(a) == len(b)
    for key in ("reward_mean", "loss", "kl"):
        assert [r.get(key) for r in a] == pytest.approx([r.get(key) for r in b], rel=1e-4, abs=1e-7), key
    assert ckpt.step() is None  # a stored run leaves no checkpoint


def test_format_and_verifier_rewards_add_up_and_give_a_signal_exact_match_lacks(vhome):
    from apt_model.testing import JobRecorder
    from apt_reason import rl
    from apt_reason.scorer import Verifier

    store = Store(vhome)
    pv = Verifier.load(store.model("pv").path, "pv", "cpu")
    spec = rl.RLSpec("lm", "probs", "x", format_weight=0.3, verifier="pv", verifier_weight=0.5)
    row = {"question": "Anna has 2 apples. Anna gets 1 more apples. How many apples does Anna have now?", "answer": "3"}
    texts = ["2 + 1 = 3\nAnswer: 3", "2 + 1 = 4\nAnswer: 4", "no answer here"]
    total, parts = rl.rewards_of(texts, row, spec, pv)
    scores = pv.score(row["question"], [(t.splitlines(keepends=True), True) for t in texts])
    expected = [1 + 0.3 + 0.5 * scores[0], 0.3 + 0.5 * scores[1], 0.5 * scores[2]]
    assert total.tolist() == pytest.approx(expected, rel=1e-5)
    assert float(parts["reward_format"]) == pytest.approx(2 / 3) and float(parts["reward_exact"]) == pytest.approx(1 / 3)
    # the untrained 'lm' never answers right (exact match alone: FAILED_PRECONDITION, see above); the
    # verifier's scores differ within each group, so GRPO has a signal and stores a model
    out = rl.run_rl(store, rl.RLSpec("lm", "probs", "rlv", max_steps=2, group=4, questions_per_step=2,
                                     max_new_tokens=12, patience=2, device="cpu", eval_questions=2, verifier="pv",
                                     checkpoint_every=0), JobRecorder())
    assert out["steps"] == 2 and out["frac_reward_zero_std"] < 1
    rows = trainlog.read(store.model("rlv").path)
    assert all("reward_verifier" in r and "reward_format" in r for r in rows)


def test_rl_verifier_refusals(svc, home):
    stub, _ = svc
    base = dict(model="lm", dataset="probs", output_name="x", device="cpu")
    cases = [(dict(verifier="lm"), grpc.StatusCode.FAILED_PRECONDITION, "not a verifier"),
             (dict(verifier="nope"), grpc.StatusCode.NOT_FOUND, "nope"),
             (dict(verifier_weight=1.0), grpc.StatusCode.INVALID_ARGUMENT, "--verifier")]
    for extra, code, words in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.StartRLTraining(pb.RLTrainingRequest(**{**base, **extra}))
        assert err.value.code() == code and words in err.value.details(), (extra, err.value.details())
