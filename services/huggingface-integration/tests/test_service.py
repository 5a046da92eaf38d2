"""The real plugin server in-process: Start calls, jobs followed to the end, status codes."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as pb
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc as pb_grpc
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job

from apt_hf_testing.helpers import READ_TOKEN, WRITE_TOKEN

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def served(tmp_path, monkeypatch, hf_hub, no_xet):
    # the service reads the hub settings from its environment when it is built
    monkeypatch.setenv("HF_ENDPOINT", hf_hub.url)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    # the test's folder is the operator's data root: local dataset files may be named there
    with serve_plugin(PLUGIN_DIR, tmp_path / "home", data_roots=(str(tmp_path),)) as (channel, app):
        yield pb_grpc.HuggingFaceStub(channel), channel, app


def code_of(call) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def test_import_export_push_over_grpc(tmp_path, served, hf_hub, llama_dir):
    stub, channel, app = served
    sha = hf_hub.add_repo("alice/tiny", llama_dir)
    job = stub.StartImportModel(pb.ImportModelRequest(source="alice/tiny", name="tiny"))
    assert (list(job.reads), list(job.writes)) == ([], ["models/tiny"])
    done = wait_job(channel, job.id, timeout=120)
    assert done.error.message == "" and done.result["commit_sha"] == sha
    imported = typed_result(done)  # Job.response: the declared ImportModelResult
    assert isinstance(imported, pb.ImportModelResult)
    assert (imported.hub, imported.repo_id) == ("huggingface", "alice/tiny")
    assert imported.parameters > 0 and imported.tensors > 0 and imported.weights_format == "safetensors"
    assert app.store.model("tiny").meta["source"]["repo_id"] == "alice/tiny"

    out = app.store.root / "exports" / "export"
    export = stub.StartExportModel(pb.ExportModelRequest(name="tiny", output_dir="export"))
    assert (list(export.reads), list(export.writes)) == (["models/tiny"], [])  # the gateway keeps it while read
    done = wait_job(channel, export.id)
    assert done.error.message == "" and (out / "README.md").is_file()
    exported = typed_result(done)
    assert isinstance(exported, pb.ExportModelResult) and exported.output_dir == str(out) and exported.files > 1

    done = wait_job(channel, stub.StartPushModel(pb.PushModelRequest(
        name="tiny", repo_id="alice/copy", private=True, commit_message="from grpc")).id)
    assert done.error.message == "", done.error.message
    assert hf_hub.repos[("model", "alice/copy")].private
    pushed = typed_result(done)
    assert isinstance(pushed, pb.PushModelResult) and pushed.private and pushed.bytes > 0
    assert pushed.commit_sha == hf_hub.repos[("model", "alice/copy")].branches["main"]


def test_bad_input_is_answered_on_the_start_call(tmp_path, served, hf_hub, llama_dir):
    stub, channel, app = served
    hf_hub.add_repo("bob/private", llama_dir, private=True, owner="bob")
    code, details = code_of(lambda: stub.StartImportModel(pb.ImportModelRequest(source="alice/none", name="x")))
    assert code == grpc.StatusCode.NOT_FOUND and "alice/none" in details
    code, details = code_of(lambda: stub.StartImportModel(pb.ImportModelRequest(source="bob/private", name="x")))
    # alice's token is valid but bob's private repo is not hers: the Hub answers 404, as for a missing repo
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: stub.StartImportModel(pb.ImportModelRequest(source="alice/tiny", name="Bad/Name")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, details = code_of(lambda: stub.StartTrain(pb.TrainRequest(model="none", dataset="d", output_name="o")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: stub.StartLoadDataset(pb.LoadDatasetRequest(
        source=str(tmp_path / "missing.csv"), name="d")))
    assert code == grpc.StatusCode.NOT_FOUND
    code, details = code_of(lambda: stub.StartPushModel(pb.PushModelRequest(
        name="tiny", repo_id="alice/x", hub="modelscope")))
    assert code == grpc.StatusCode.NOT_FOUND  # no model "tiny" in this store yet
    assert app.store.list("models") == []


def test_permission_denied_without_token(tmp_path, monkeypatch, hf_hub, llama_dir):
    hf_hub.add_repo("alice/secret", llama_dir, private=True)
    monkeypatch.setenv("HF_ENDPOINT", hf_hub.url)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with serve_plugin(PLUGIN_DIR, tmp_path / "home") as (channel, app):
        stub = pb_grpc.HuggingFaceStub(channel)
        code, details = code_of(lambda: stub.StartImportModel(pb.ImportModelRequest(source="alice/secret", name="s")))
        assert code == grpc.StatusCode.PERMISSION_DENIED and "HF_TOKEN" in details
        described = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest())
        assert {o.name for o in described.operations} == {
            "StartImportModel", "StartExportModel", "StartPushModel", "StartLoadDataset", "StartTrain"}


def test_unreachable_hub_is_unavailable(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    with serve_plugin(PLUGIN_DIR, tmp_path / "home") as (channel, app):
        stub = pb_grpc.HuggingFaceStub(channel)
        code, details = code_of(lambda: stub.StartImportModel(pb.ImportModelRequest(source="alice/m", name="m")))
        assert code == grpc.StatusCode.UNAVAILABLE and "HF_HUB_OFFLINE" in details
        assert not (tmp_path / "home" / "models" / "m").exists()
