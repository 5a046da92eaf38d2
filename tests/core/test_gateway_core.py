"""Every core command end to end through a real gateway on loopback, on tiny real models."""

from __future__ import annotations

import hashlib

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import wait_job
from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model, write_sample_jsonl
from gateway.core import transfer


@pytest.fixture(scope="module")
def gw(gateway):
    store = Store(gateway.settings.home)
    make_tiny_model(store, "tiny", vocab_size=320)
    make_tiny_model(store, "tiny-b", vocab_size=320, seed=1)
    channel = gateway.channel()
    return gateway, store, gateway_pb2_grpc.CoreStub(channel), plugin_pb2_grpc.JobsStub(channel), channel


def _code(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code()


def test_status_info_list_size(gw):
    gateway, store, core, _, _ = gw
    status = core.GetStatus(pb.GetStatusRequest())
    assert status.apt_home == "" and status.torch_version      # a user is not told where the store is
    admin = gateway_pb2_grpc.CoreStub(gateway.admin_channel()).GetStatus(pb.GetStatusRequest())
    assert admin.apt_home == str(store.root)
    info = core.GetModelInfo(pb.GetModelInfoRequest(name="tiny"))
    assert info.architecture == "LlamaForCausalLM" and info.parameters > 0 and info.tokenizer.vocab_size == 320
    assert info.config["hidden_size"] == 64 and info.lineage["operation"] == "test-fixture"
    names = [m.name for m in core.ListModels(pb.ListModelsRequest(order_by="name")).models]
    assert {"tiny", "tiny-b"} <= set(names)
    size = core.GetModelSize(pb.GetModelSizeRequest(name="tiny", batch_size=2, seq_len=32))
    assert size.total_parameters == info.parameters and size.training_bytes > size.inference_bytes_fp32
    assert size.training_breakdown["batch_size"] == 2


def test_errors_map_to_status_codes(gw):
    _, store, core, _, _ = gw
    assert _code(lambda: core.GetModelInfo(pb.GetModelInfoRequest(name="ghost"))) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: core.GetModelInfo(pb.GetModelInfoRequest(name="../etc"))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: core.StartTest(pb.TestModelRequest(name="ghost"))) == grpc.StatusCode.NOT_FOUND
    assert _code(lambda: core.StartCompare(pb.CompareModelsRequest(names=["tiny"]))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: core.StartTrain(pb.TrainRequest(name="x", dataset="nope", size="huge"))) == \
        grpc.StatusCode.INVALID_ARGUMENT
    assert _code(lambda: core.DeleteModel(pb.DeleteModelRequest(name="ghost"))) == grpc.StatusCode.NOT_FOUND


def test_test_and_compare_jobs(gw, tmp_path):
    _, _, core, _, channel = gw
    gen = pb.GenerationOptions(max_new_tokens=6)
    job = core.StartTest(pb.TestModelRequest(name="tiny", eval_text=" ".join(SAMPLE_TEXT[:10]),
                                             prompts=["The", "机器"], generation=gen))
    done = wait_job(channel, job.id, 120)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
    r = job_result(done)
    assert r["perplexity"] > 1 and r["tokens_scored"] > 10 and len(r["generations"]) == 2
    assert r["prefill_tokens_per_s"] > 0 and r["decode_tokens_per_s"] > 0
    typed = typed_result(done)  # Job.response: the declared TestModelResult, integers as integers
    assert isinstance(typed, pb.TestModelResult) and typed.name == "tiny" and typed.tokens_scored == r["tokens_scored"]
    assert [g.new_tokens for g in typed.generations] == [g["new_tokens"] for g in r["generations"]]
    job = core.StartCompare(pb.CompareModelsRequest(names=["tiny", "tiny-b"], eval_text=" ".join(SAMPLE_TEXT[:5]),
                                                    prompts=["Hello"], generation=gen))
    done = wait_job(channel, job.id, 120)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
    r = job_result(done)
    assert [m["name"] for m in r["models"]] == ["tiny", "tiny-b"]
    assert set(r["generations"][0]["outputs"]) == {"tiny", "tiny-b"}
    assert r["models"][0]["perplexity"] != r["models"][1]["perplexity"]
    typed = typed_result(done)
    assert isinstance(typed, pb.CompareModelsResult) and typed.best_perplexity in ("tiny", "tiny-b")
    assert set(typed.generations[0].outputs) == {"tiny", "tiny-b"} and typed.models[1].parameters > 0


def test_debug(gw):
    _, store, core, _, _ = gw
    report = core.DebugModel(pb.DebugModelRequest(name="tiny"))
    assert report.healthy and any(f.check == "train.step" and f.severity == "ok" for f in report.findings)
    make_tiny_model(store, "broken", vocab_size=300)
    weights = store.model("broken").path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1000])  # truncated
    report = core.DebugModel(pb.DebugModelRequest(name="broken"))
    bad = [f for f in report.findings if f.severity == "error"]
    assert not report.healthy and any("truncated" in f.message and f.hint for f in bad)
    for call in (lambda: core.GetModelInfo(pb.GetModelInfoRequest(name="broken")),
                 lambda: core.GetModelSize(pb.GetModelSizeRequest(name="broken")),
                 lambda: core.StartTest(pb.TestModelRequest(name="broken", eval_text="x y z"))):
        try:
            job = call()
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "debug broken" in exc.details()
        else:  # the test job fails when it loads the weights
            done = wait_job(gw[4], job.id, 60)
            assert done.error.code == "FAILED_PRECONDITION", done


def test_train_job_stores_a_model(gw, tmp_path):
    _, store, core, _, channel = gw
    corpus = tmp_path / "c.jsonl"
    write_sample_jsonl(corpus)
    job = core.StartTrain(pb.TrainRequest(name="trained", corpus_paths=[str(corpus)], vocab_size=300, seq_len=32,
                                          batch_size=4, max_steps=8, eval_every=4, threads=1))
    assert job.labels["model"] == "trained"
    done = wait_job(channel, job.id, 120)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
    assert {"loss", "val_loss", "lr", "tokens_per_s"} <= set(done.metrics)
    info = core.GetModelInfo(pb.GetModelInfoRequest(name="trained"))
    assert info.lineage["operation"] == "train" and info.metrics["steps"] == 8
    assert _code(lambda: core.StartTrain(pb.TrainRequest(name="trained", corpus_paths=[str(corpus)]))) == \
        grpc.StatusCode.ALREADY_EXISTS
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ok\n\xff\xfe")
    job = core.StartTrain(pb.TrainRequest(name="bad-data", corpus_paths=[str(bad)], vocab_size=300))
    done = wait_job(channel, job.id, 60)
    assert done.state == job_pb2.JOB_STATE_FAILED and done.error.code == "INVALID_ARGUMENT"
    assert "byte offset 3" in done.error.message and not store.exists("models", "bad-data")


def _upload_messages(folder, name, files, cut_after=None, raise_after=None):
    yield pb.UploadModelRequest(header=pb.UploadHeader(
        name=name, files=[pb.FileInfo(path=f.path, size=f.size, sha256=f.sha256) for f in files]))
    for i, (path, data) in enumerate(transfer.iter_local_chunks(folder, files)):
        if cut_after is not None and i >= cut_after:
            return
        if raise_after is not None and i >= raise_after:
            raise RuntimeError("client crashed")  # grpc cancels the call mid-upload
        yield pb.UploadModelRequest(chunk=pb.FileChunk(path=path, data=data))


def test_push_pull_and_rm(gw, tmp_path):
    _, store, core, _, _ = gw
    src = store.model("tiny").path
    files = transfer.local_folder_files(src)
    info = core.UploadModel(_upload_messages(src, "pushed", files))
    assert info.name == "pushed" and store.verify("models", "pushed") == []
    got, header = {}, None
    for msg in core.DownloadModel(pb.DownloadModelRequest(name="pushed")):
        if msg.WhichOneof("part") == "header":
            header = msg.header
        else:
            got[msg.chunk.path] = got.get(msg.chunk.path, b"") + msg.chunk.data
    assert {f.path: f.sha256 for f in header.files} == {p: hashlib.sha256(d).hexdigest() for p, d in got.items()}
    assert {f.path for f in header.files} == {f.path for f in files}

    # truncated and interrupted uploads leave nothing
    n = len(list(transfer.iter_local_chunks(src, files)))
    assert _code(lambda: core.UploadModel(_upload_messages(src, "cut", files, cut_after=n - 1))) == \
        grpc.StatusCode.DATA_LOSS
    with pytest.raises(grpc.RpcError):
        core.UploadModel(_upload_messages(src, "dead", files, raise_after=1))
    assert not store.exists("models", "cut") and not store.exists("models", "dead")
    evil = pb.UploadModelRequest(header=pb.UploadHeader(name="../evil", files=[]))
    assert _code(lambda: core.UploadModel(iter([evil]))) == grpc.StatusCode.INVALID_ARGUMENT

    core.DeleteModel(pb.DeleteModelRequest(name="pushed"))
    assert not store.exists("models", "pushed")


def test_rm_refuses_while_a_job_uses_the_model(gw, tmp_path):
    gateway, store, core, jobs, channel = gw
    make_tiny_model(store, "busy", vocab_size=300)
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SAMPLE_TEXT * 5), encoding="utf-8")
    job = core.StartTrain(pb.TrainRequest(name="busy", overwrite=True, corpus_paths=[str(corpus)], vocab_size=300,
                                          seq_len=32, batch_size=2, max_steps=100000, threads=1))
    try:
        err = pytest.raises(grpc.RpcError, core.DeleteModel, pb.DeleteModelRequest(name="busy"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and job.id in err.value.details()
    finally:
        jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
    done = wait_job(channel, job.id, 60)
    assert done.state == job_pb2.JOB_STATE_CANCELLED
    core.DeleteModel(pb.DeleteModelRequest(name="busy"))
    assert not store.exists("models", "busy")
