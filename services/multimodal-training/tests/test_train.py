"""StartTrain and StartEvaluate through the real server: align/full stages, freezing, per-module
learning rates, placeholder tokens added to the LM, cancel and resume, the text-only baseline."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
import torch

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2 as pb
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.modeling.io import load_model
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

from apt_multimodal import model as mm

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(home, data):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data),)) as (channel, app):
        stub = multimodal_pb2_grpc.MultimodalStub(channel)
        job = wait_job(channel, stub.StartCreateDataset(pb.CreateDatasetRequest(
            name="digits", manifest_path=str(data / "digits" / "manifest.jsonl"), image_size=16)).id)
        assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
        yield stub, plugin_pb2_grpc.JobsStub(channel), channel


def train(stub, **kw) -> pb.TrainRequest:
    base = dict(model="lm", dataset="digits", output_name="mm", max_steps=6, batch_size=4, learning_rate=3e-3,
                encoder_width=32, encoder_layers=1, patch_size=8, device="cpu")
    return stub.StartTrain(pb.TrainRequest(**{**base, **kw}))


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_align_trains_encoder_and_projector_with_the_lm_frozen_and_adds_the_placeholder(service, home):
    stub, _, channel = service
    job = wait_job(channel, train(stub).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = job_result(job)
    assert result["added_tokens"] == ["<image>"] and result["steps"] == 6
    store = Store(home)
    entry = store.model("mm")
    assert entry.meta["lineage"]["parameters"]["added_tokens"] == ["<image>"]
    assert len(trainlog.read(entry.path)) == 6
    before, after = load_model(store.model("lm").path), load_model(entry.path)
    # the LM's own weights did not move; its embedding table grew by the placeholder row only
    assert torch.equal(before.model.layers[0].mlp.up_proj.weight, after.model.layers[0].mlp.up_proj.weight)
    old = before.get_input_embeddings().weight
    assert torch.equal(after.get_input_embeddings().weight[: old.shape[0]], old)
    assert after.get_input_embeddings().weight.shape[0] == old.shape[0] + 1
    model, tok = mm.load(entry.path)
    assert set(model.encoders) == {"image"} and tok.convert_tokens_to_ids("<image>") == model.token_ids["image"]


def test_full_stage_with_a_frozen_encoder_and_a_module_learning_rate(service, home):
    stub, _, channel = service
    assert wait_job(channel, train(stub).id).state == job_pb2.JOB_STATE_SUCCEEDED
    job = wait_job(channel, train(stub, model="mm", output_name="mm-full", stage="full", freeze=["image_encoder"],
                                  module_learning_rates={"lm": 1e-4}).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    first, full = mm.load(Store(home).model("mm").path)[0], mm.load(Store(home).model("mm-full").path)[0]
    assert torch.equal(first.encoders["image"].patches.weight, full.encoders["image"].patches.weight)
    assert not torch.equal(first.lm.model.layers[0].mlp.up_proj.weight, full.lm.model.layers[0].mlp.up_proj.weight)
    assert job_result(job)["added_tokens"] == []


@pytest.mark.parametrize("kw,code,needle", [
    (dict(freeze=["vision_tower"]), grpc.StatusCode.INVALID_ARGUMENT, "Unknown module 'vision_tower'"),
    (dict(freeze=["lm", "image_encoder", "image_projector"]), grpc.StatusCode.INVALID_ARGUMENT, "Every module"),
    (dict(patch_size=5), grpc.StatusCode.INVALID_ARGUMENT, "does not divide"),
])
def test_bad_training_settings_fail_the_job(service, kw, code, needle):
    stub, _, channel = service
    job = wait_job(channel, train(stub, **kw).id)
    assert job.state == job_pb2.JOB_STATE_FAILED and job.error.code == code.name and needle in job.error.message


def test_a_text_dataset_or_a_missing_model_is_refused(service, home):
    stub, _, channel = service
    code, _ = code_of(lambda: train(stub, model="nobody"))
    assert code == grpc.StatusCode.NOT_FOUND
    with Store(home).create("datasets", "plain", operation="test") as tmp:
        (tmp / "a.txt").write_text("text only")
    job = wait_job(channel, train(stub, dataset="plain").id)
    assert job.error.code == "FAILED_PRECONDITION" and "not a multimodal dataset" in job.error.message


def wait_for_step(jobs, job_id: str, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = jobs.GetJob(job_pb2.GetJobRequest(id=job_id))
        if snap.metrics.get("step", 0) >= step:
            return
        assert snap.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING), snap.error.message
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} did not reach step {step}")


def test_cancel_leaves_no_model_and_resume_continues_the_same_curve(service, home):
    stub, jobs, channel = service
    job = train(stub, output_name="cut", max_steps=30)
    wait_for_step(jobs, job.id, 2)
    jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
    assert wait_job(channel, job.id).state == job_pb2.JOB_STATE_CANCELLED
    store = Store(home)
    assert not store.exists("models", "cut")
    code, details = code_of(lambda: train(stub, output_name="cut", max_steps=30))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "--resume" in details
    resumed = wait_job(channel, train(stub, output_name="cut", max_steps=30, resume=True).id)
    assert resumed.state == job_pb2.JOB_STATE_SUCCEEDED, resumed.error.message
    whole = wait_job(channel, train(stub, output_name="whole", max_steps=30).id)
    assert job_result(resumed)["loss"] == pytest.approx(job_result(whole)["loss"], rel=1e-4)
    assert len(trainlog.read(store.model("cut").path)) == 30


def test_evaluate_scores_retrieval_against_the_text_only_baseline(service, home):
    stub, _, channel = service
    assert wait_job(channel, train(stub, max_steps=4).id).state == job_pb2.JOB_STATE_SUCCEEDED
    job = wait_job(channel, stub.StartEvaluate(pb.EvaluateRequest(model="mm", dataset="digits", max_rows=6,
                                                                  device="cpu")).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    result = job_result(job)
    assert result["rows"] == 6 and result["candidates"] > 10  # English and Chinese captions
    assert 0 <= result["retrieval_accuracy"] <= 1 and 0 <= result["text_only_accuracy"] <= 1
    assert set(result["per_modality_accuracy"]) == {"image"}
    job = wait_job(channel, stub.StartEvaluate(pb.EvaluateRequest(model="lm", dataset="digits")).id)
    assert job.error.code == "FAILED_PRECONDITION" and "not a multimodal model" in job.error.message
