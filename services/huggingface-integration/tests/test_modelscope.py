"""ModelScope import through the modelscope SDK against a local server speaking its HTTP API."""

from __future__ import annotations

import pytest
import torch

from apt_model import errors

from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, resolve_source, run_import
from apt_hf.settings import HubSettings
from apt_hf_testing.helpers import store_is_clean


def test_modelscope_import(store, run_job, ms_hub, llama_dir):
    from transformers import AutoModelForCausalLM

    ms_hub.add_repo("alice/tiny", llama_dir)
    settings = HubSettings(modelscope_endpoint=ms_hub.url, modelscope_cache=store.root.parent / "ms-cache")
    spec = ImportSpec(source="alice/tiny", name="from-ms", hub="modelscope")
    run = run_job("StartImportModel", lambda ctx: run_import(store, get_hub("modelscope", settings), spec, ctx))
    assert run.ok, run.final.error_message
    entry = store.model("from-ms")
    assert entry.meta["source"]["hub"] == "modelscope" and entry.meta["source"]["revision"] == "main"
    assert max(run.metric_values("bytes_done")) >= (llama_dir / "model.safetensors").stat().st_size
    ids = torch.tensor([[1, 8, 30, 2]])
    a, b = (AutoModelForCausalLM.from_pretrained(p).eval() for p in (llama_dir, entry.path))
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)
    assert any(m == "GET" and p.startswith("/api/v1/models/alice/tiny/repo/files") for m, p in ms_hub.requests)


def test_modelscope_errors(store, ms_hub, llama_dir):
    ms_hub.add_repo("alice/private", llama_dir, private=True)
    cache = store.root.parent / "ms-cache"
    anonymous = get_hub("modelscope", HubSettings(modelscope_endpoint=ms_hub.url, modelscope_cache=cache))
    with pytest.raises(errors.NotFound, match="alice/missing"):
        resolve_source(ImportSpec(source="alice/missing", name="x", hub="modelscope"), anonymous)
    with pytest.raises(errors.PermissionDenied, match="MODELSCOPE_API_TOKEN"):
        resolve_source(ImportSpec(source="alice/private", name="x", hub="modelscope"), anonymous)
    owner = get_hub("modelscope", HubSettings(modelscope_endpoint=ms_hub.url, modelscope_cache=cache,
                                              modelscope_token="ms_token"))
    assert (resolve_source(ImportSpec(source="alice/private", name="x", hub="modelscope"), owner).folder
            / "config.json").is_file()
    with pytest.raises(errors.InvalidArgument, match="Unknown hub"):
        get_hub("gitlab", HubSettings())
    assert store_is_clean(store)
