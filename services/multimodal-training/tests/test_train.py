"""StartTrain and StartEvaluate through the real server: align/full stages, freezing, per-module
learning rates, placeholder tokens added to the LM, cancel and resume, the text-only baseline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
from apt_multimodal.batches import encode
from apt_multimodal.evaluate import caption, split_caption
from apt_multimodal.shards import read

PLUGIN_DIR = Path(__file__).resolve().parents[1]
REPO = PLUGIN_DIR.parents[1]


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
    # the stored model is its own model type; AutoModelForCausalLM gives the whole of it
    assert type(after).__name__ == "AptMultimodalForConditionalGeneration" and after.config.model_type == "apt_multimodal"
    # the LM's own weights did not move; its embedding table grew by the placeholder row only
    lm = after.language_model
    assert torch.equal(before.model.layers[0].mlp.up_proj.weight, lm.model.layers[0].mlp.up_proj.weight)
    old = before.get_input_embeddings().weight
    assert torch.equal(after.get_input_embeddings().weight[: old.shape[0]], old)
    assert after.get_input_embeddings().weight.shape[0] == old.shape[0] + 1
    model, tok = mm.load(entry.path)
    assert mm.module_names(model) == ["lm", "image_encoder", "image_projector"]
    assert tok.convert_tokens_to_ids("<image>") == model.config.image_token_id


def test_full_stage_with_a_frozen_encoder_and_a_module_learning_rate(service, home):
    stub, _, channel = service
    assert wait_job(channel, train(stub).id).state == job_pb2.JOB_STATE_SUCCEEDED
    job = wait_job(channel, train(stub, model="mm", output_name="mm-full", stage="full", freeze=["image_encoder"],
                                  module_learning_rates={"lm": 1e-4}).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    first, full = mm.load(Store(home).model("mm").path)[0], mm.load(Store(home).model("mm-full").path)[0]
    patch = "embeddings.patch_embedding.weight"
    assert torch.equal(first.vision_tower.get_parameter(patch), full.vision_tower.get_parameter(patch))
    assert not torch.equal(first.language_model.model.layers[0].mlp.up_proj.weight,
                           full.language_model.model.layers[0].mlp.up_proj.weight)
    assert not torch.equal(first.multi_modal_projector.linear_1.weight, full.multi_modal_projector.linear_1.weight)
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


def test_a_batch_the_ranks_cannot_share_is_refused(service):
    """Before the deployer is asked about nodes (tests/test_multi_node.py): the layout is wrong anywhere."""
    stub, _, _ = service
    code, details = code_of(lambda: train(stub, batch_size=3, workers=2))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "batch_size (3) must be a multiple of workers (2)" in details
    code, details = code_of(lambda: train(stub, batch_size=4, workers=3, nodes=2))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "must be a multiple of workers x nodes (6)" in details


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
    assert set(result["per_modality_accuracy"]) == {"image"} == set(result["per_modality_exact_match"])
    assert 0 <= result["exact_match"] <= 1
    job = wait_job(channel, stub.StartEvaluate(pb.EvaluateRequest(model="lm", dataset="digits")).id)
    assert job.error.code == "FAILED_PRECONDITION" and "not a multimodal model" in job.error.message


def test_exact_match_captioning_continues_the_media_greedily_as_transformers_generate_does(service, home):
    stub, _, channel = service
    assert wait_job(channel, train(stub, max_steps=4, stage="full").id).state == job_pb2.JOB_STATE_SUCCEEDED
    store = Store(home)
    model, tok = mm.load(store.model("mm").path)
    data = read(store.dataset("digits").path)
    row = data.rows[0]
    prompt, reference = split_caption(row.text)
    assert prompt == "<image>" and reference == row.text.removeprefix("<image>").strip() and reference
    prompt = "<image> a handwritten"  # past the media, so a briefly trained model says a word before EOS
    mine = caption(model, data, row, prompt, tok, model.tokens_per_item(), "cpu", 6)
    ids, _ = encode(prompt, tok, model.config.token_ids(), model.tokens_per_item())
    with torch.no_grad():
        embeds = model.embed(torch.tensor([ids[:-1]]), {"image": data.media(row, "image")})
        out = model.generate(inputs_embeds=embeds, max_new_tokens=6, do_sample=False,
                             eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    theirs = tok.decode([t for t in out[0].tolist() if t != tok.eos_token_id], skip_special_tokens=True).strip()
    assert mine == theirs and mine


def test_the_core_loads_the_stored_model_in_a_process_without_the_plugin_on_its_path(service, home):
    stub, _, channel = service
    assert wait_job(channel, train(stub).id).state == job_pb2.JOB_STATE_SUCCEEDED
    script = ("import sys; from apt_model.modeling.io import load_model; "
              f"m = load_model({str(Store(home).model('mm').path)!r}); "
              "print(type(m).__name__, m.config.model_type, sum(p.numel() for p in m.parameters()))")
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the repository (apt_model), not services/multimodal-training
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split()[:2] == ["AptMultimodalForConditionalGeneration", "apt_multimodal"]


LLAVA_SCRIPT = """
import json, sys, torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor
folder, image, out = sys.argv[1:4]
model = AutoModelForImageTextToText.from_pretrained(folder).eval()
processor = AutoProcessor.from_pretrained(folder)
x = processor(images=Image.open(image), text="<image>a handwritten seven", return_tensors="pt")
with torch.no_grad():
    logits = model(**x).logits
torch.save({"input_ids": x["input_ids"], "logits": logits}, out)
print(json.dumps({"class": type(model).__name__, "project": sorted(m for m in sys.modules if m.startswith("apt"))}))
"""


def test_export_llava_loads_without_this_project_and_gives_the_same_logits(service, home, tmp_path):
    from PIL import Image

    stub, _, channel = service
    assert wait_job(channel, train(stub, stage="full").id).state == job_pb2.JOB_STATE_SUCCEEDED
    job = wait_job(channel, stub.StartExportLlava(pb.ExportLlavaRequest(model="mm", output_name="mm-llava")).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert job_result(job)["architecture"] == "LlavaForConditionalGeneration"
    store = Store(home)
    data = read(store.dataset("digits").path)
    pixels = data.media(data.rows[3], "image")  # (1, 3, 16, 16) uint8, as training saw it
    Image.fromarray(pixels[0].permute(1, 2, 0).numpy()).save(tmp_path / "digit.png")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([sys.executable, "-I", "-c", LLAVA_SCRIPT, str(store.model("mm-llava").path),
                          str(tmp_path / "digit.png"), str(tmp_path / "out.pt")],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"class": "LlavaForConditionalGeneration", "project": []}
    theirs = torch.load(tmp_path / "out.pt")
    model, tok = mm.load(store.model("mm").path)
    ids, _ = encode("<image> a handwritten seven", tok, model.config.token_ids(), model.tokens_per_item())
    assert theirs["input_ids"][0].tolist() == ids[1:-1]  # the processor adds neither BOS nor EOS
    with torch.no_grad():
        mine = model(theirs["input_ids"], torch.ones_like(theirs["input_ids"]), media={"image": pixels}).logits
    assert (mine - theirs["logits"]).abs().max() < 1e-5


def test_export_llava_refuses_a_model_without_images_and_an_existing_name(service, home, data):
    stub, _, channel = service
    job = wait_job(channel, stub.StartCreateDataset(pb.CreateDatasetRequest(
        name="spoken", manifest_path=str(data / "spoken" / "manifest.jsonl"))).id)
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error.message
    assert wait_job(channel, train(stub, dataset="spoken", output_name="ears", max_steps=2).id).state == \
        job_pb2.JOB_STATE_SUCCEEDED
    job = wait_job(channel, stub.StartExportLlava(pb.ExportLlavaRequest(model="ears", output_name="x")).id)
    assert job.error.code == "FAILED_PRECONDITION" and "no image tower" in job.error.message
    assert not Store(home).exists("models", "x")
    code, details = code_of(lambda: stub.StartExportLlava(pb.ExportLlavaRequest(model="ears", output_name="lm")))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "--overwrite" in details
