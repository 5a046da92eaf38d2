"""The real OllamaExport service in-process on loopback: export jobs, bad input, Ollama create."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import grpc
import gguf
import pytest

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as pb
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job

from apt_ollama.export_job import EXPORT_MARKER, ExportSpec, run_export

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(store, llama_model, qwen2_model):
    with serve_plugin(PLUGIN_DIR, store.root) as (channel, app):
        yield ollama_export_pb2_grpc.OllamaExportStub(channel), channel


def _export(service, **fields) -> tuple[job_pb2.Job, dict]:
    stub, channel = service
    job = wait_job(channel, stub.StartExport(pb.ExportRequest(**fields)).id, timeout=120)
    return job, (job_result(job) if job.state == job_pb2.JOB_STATE_SUCCEEDED else {})


def test_export_q8_0_is_verified_and_ready_for_ollama(service, store):
    job, result = _export(service, name="llama-tiny", outtype="q8_0", num_ctx=128,
                          parameters={"temperature": "0.5"})
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error
    assert (list(job.reads), list(job.writes)) == (["models/llama-tiny"], [])
    out = store.root / "exports" / "llama-tiny-q8_0"
    assert result["gguf"] == str(out / "model.gguf") and result["pre_tokenizer"] == "gpt-2"
    assert result["tensor_types"] == {"Q8_0": 14, "F16": 2, "F32": 5}
    v = result["verification"]
    assert v["kv_cache"] == "f32" and v["tokenization_mismatches"] == 0 and v["top1_agreement"] >= 0.98
    assert v["positions"] > 50
    assert any("ffn_down" in w for w in result["warnings"])  # the F16 fallback, reported
    assert result["command"] == f"cd {out} && ollama create llama-tiny -f Modelfile"
    text = (out / "Modelfile").read_text()
    assert "FROM ./model.gguf" in text and "PARAMETER num_ctx 128" in text and "temperature 0.5" in text
    assert sorted(p.name for p in out.iterdir()) == [EXPORT_MARKER, "Modelfile", "model.gguf"]
    assert gguf.GGUFReader(out / "model.gguf").fields["general.file_type"].contents() == 7
    typed = typed_result(job)  # Job.response: the declared ExportResult, integers as integers
    assert isinstance(typed, pb.ExportResult) and dict(typed.tensor_types) == {"Q8_0": 14, "F16": 2, "F32": 5}
    assert typed.size_bytes == (out / "model.gguf").stat().st_size and typed.n_vocab > 0
    assert typed.verification.tokenization_mismatches == 0 and not typed.verification.HasField("skipped")
    assert typed.HasField("command") and not typed.HasField("ollama")


@pytest.fixture
def ollama_service(store, llama_model, qwen2_model, ollama_server):
    """The service with the local Ollama server on the operator's APT_ALLOWED_ENDPOINTS."""
    with serve_plugin(PLUGIN_DIR, store.root, allowed_endpoints=(ollama_server.url,)) as (channel, app):
        yield ollama_export_pb2_grpc.OllamaExportStub(channel), channel


def test_export_qwen2_to_ollama(ollama_service, store, ollama_server):
    service = ollama_service
    job, result = _export(service, name="qwen2-tiny", outtype="f16", ollama_url=ollama_server.url,
                          ollama_model="qwen2-tiny:f16", system="Answer briefly.")
    assert job.state == job_pb2.JOB_STATE_SUCCEEDED, job.error
    assert result["verification"]["max_abs_diff"] < 0.05
    o = result["ollama"]
    assert o["uploaded"] is True and o["statuses"][-1] == "success" and o["model"] == "qwen2-tiny:f16"
    gguf_bytes = Path(result["gguf"]).read_bytes()
    assert ollama_server.blobs[o["digest"]] == gguf_bytes
    req = ollama_server.creates[-1]
    assert req["files"] == {"model.gguf": o["digest"]} and req["system"] == "Answer briefly."
    assert "<|im_start|>{{ .Role }}" in req["template"]
    assert req["parameters"]["stop"][:2] == ["<|im_start|>", "<|im_end|>"] and req["parameters"]["num_ctx"] == 256
    # A second export of the same file reuses the blob (HEAD says it exists).
    job, again = _export(service, name="qwen2-tiny", outtype="f16", ollama_url=ollama_server.url,
                         ollama_model="qwen2-tiny:f16", skip_verify=True)
    assert again["ollama"]["uploaded"] is False and again["verification"] == {"skipped": "skip_verify was requested"}
    typed = typed_result(job)
    assert typed.ollama.model == "qwen2-tiny:f16" and not typed.verification.HasField("positions")
    assert not typed.HasField("command")


def test_create_modelfile_rpc(service):
    stub, _ = service
    mf = stub.CreateModelfile(pb.CreateModelfileRequest(name="llama-tiny", system="Be kind."))
    assert mf.chat_format == "chatml" and 'SYSTEM """Be kind."""' in mf.text and not mf.warnings


@pytest.mark.parametrize("fields,code,match", [
    ({"name": "llama-tiny", "outtype": "q4_k"}, grpc.StatusCode.INVALID_ARGUMENT, "f32, f16, q8_0"),
    ({"name": "no-such-model"}, grpc.StatusCode.NOT_FOUND, "no-such-model"),
    ({"name": "Bad/Name"}, grpc.StatusCode.INVALID_ARGUMENT, "Invalid model name"),
    ({"name": "llama-tiny", "output_dir": "../etc"}, grpc.StatusCode.INVALID_ARGUMENT, "one folder name"),
    ({"name": "llama-tiny", "ollama_url": "localhost:11434"}, grpc.StatusCode.INVALID_ARGUMENT, "http://"),
    ({"name": "llama-tiny", "parameters": {"temprature": "1"}}, grpc.StatusCode.INVALID_ARGUMENT, "temprature"),
    ({"name": "gpt2-like"}, grpc.StatusCode.INVALID_ARGUMENT, "LlamaForCausalLM .llama.*Qwen2ForCausalLM"),
])
def test_bad_requests_fail_the_call(service, store, llama_model, fields, code, match):
    if fields["name"] == "gpt2-like" and not store.exists("models", "gpt2-like"):
        import json

        with store.create("models", "gpt2-like", operation="test") as tmp:
            for p in llama_model.iterdir():
                if p.name != "apt.json":
                    shutil.copy(p, tmp / p.name)
            cfg = json.loads((tmp / "config.json").read_text())
            cfg.update(architectures=["GPT2LMHeadModel"], model_type="gpt2")
            (tmp / "config.json").write_text(json.dumps(cfg))
    stub, _ = service
    with pytest.raises(grpc.RpcError) as info:
        stub.StartExport(pb.ExportRequest(**fields))
    assert info.value.code() == code
    assert re.search(match, info.value.details()), info.value.details()


def test_cancel_during_verification_leaves_nothing(store, llama_model, recorder_cls):
    # 21 tensor checks during conversion pass; the first check in verification cancels.
    spec = ExportSpec(name="llama-tiny", output_dir="cancelled", outtype="f32")
    rec = recorder_cls(cancel_after=21)
    with pytest.raises(errors.Cancelled):
        run_export(store, spec, rec)
    assert any(r["stage"] == "verify" for r in rec.reports)  # the GGUF was complete, then removed
    assert list((store.root / "exports" / "cancelled").iterdir()) == []


def test_a_gguf_that_fails_verification_is_not_kept(store, llama_model, recorder, monkeypatch):
    """Fault injection: skip the Q/K re-ordering. llama.cpp loads the file and mispredicts."""
    pytest.importorskip("llama_cpp")
    from apt_ollama import archs

    spec = ExportSpec(name="llama-tiny", output_dir="guarded", outtype="f32")
    good = run_export(store, spec, recorder)
    before = Path(good["gguf"]).read_bytes()
    monkeypatch.setattr(archs, "_interleave_rope_rows", lambda w, n_head: w)
    with pytest.raises(errors.DataLoss, match="does not reproduce the model"):
        run_export(store, spec, recorder)
    out = store.root / "exports" / "guarded"
    assert sorted(p.name for p in out.iterdir()) == [EXPORT_MARKER, "Modelfile", "model.gguf"]  # no staged leftovers
    assert (out / "model.gguf").read_bytes() == before  # the verified export survives
