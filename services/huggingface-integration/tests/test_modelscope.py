"""ModelScope import and push through the modelscope SDK against a local server speaking its HTTP API."""

from __future__ import annotations

import pytest
import torch

from apt_model import errors

from apt_hf.exporter import PushSpec, run_push
from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, resolve_source, run_import
from apt_hf.settings import HubSettings
from apt_hf_testing.helpers import MS_TOKEN, store_is_clean


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
                                              modelscope_token=MS_TOKEN))
    assert (resolve_source(ImportSpec(source="alice/private", name="x", hub="modelscope"), owner).folder
            / "config.json").is_file()
    with pytest.raises(errors.InvalidArgument, match="Unknown hub"):
        get_hub("gitlab", HubSettings())
    assert store_is_clean(store)


def ms_client(ms_hub, token=MS_TOKEN):
    return get_hub("modelscope", HubSettings(modelscope_endpoint=ms_hub.url, modelscope_token=token))


def push(store, run_job, hub, **fields):
    spec = PushSpec(**{"name": "m", "repo_id": "alice/pushed", "hub": "modelscope", "commit_message": "c", **fields})
    return run_job("StartPushModel", lambda ctx: run_push(store, hub, spec, ctx))


@pytest.fixture
def stored(store, run_job, llama_dir):
    """Store model "m", imported from the local llama folder."""
    run = run_job("StartImportModel",
                  lambda ctx: run_import(store, None, ImportSpec(source=str(llama_dir), name="m"), ctx))
    assert run.ok, run.final.error_message
    return store.model("m").path


def test_modelscope_push_commits_the_store_models_files_to_a_new_private_repo(store, run_job, ms_hub, stored):
    run = push(store, run_job, ms_client(ms_hub), private=True, commit_message="first push")
    assert run.ok, run.final.error_message
    result, repo = run.final.result, ms_hub.repos["alice/pushed"]
    assert repo.private and repo.messages["master"].startswith("first push")  # the SDK adds " (batch 1/1)"
    assert (result["hub"], result["revision"], result["commit_sha"]) == ("modelscope", "master", repo.commits["master"])
    files = ms_hub.branch_files("alice/pushed")
    mine = {rel: (stored / rel).read_bytes() for rel in store.model("m").meta["files"]}  # all but apt.json
    assert {k: v for k, v in files.items() if k != "README.md"} == mine  # byte for byte, no apt.json
    assert files["README.md"].startswith(b"---\nlibrary_name: transformers")
    assert result["files"] == len(files) and max(run.metric_values("bytes_done")) == result["bytes"]
    assert store.model("m").meta["pushes"][0]["commit_sha"] == repo.commits["master"]
    assert any(m == "PUT" for m, _ in ms_hub.requests)  # the weights went up as an LFS blob

    # a second push sends no blob again: ModelScope already holds them (by sha256)
    ms_hub.requests.clear()
    again = push(store, run_job, ms_client(ms_hub), commit_message="again")
    assert again.ok and again.final.result["commit_sha"] == repo.commits["master"] != result["commit_sha"]
    assert not any(m == "PUT" for m, _ in ms_hub.requests) and repo.private  # an existing repo keeps its visibility


def test_modelscope_push_refusals_say_what_to_do_and_never_show_the_token(store, run_job, ms_hub, stored):
    wrong = "ms-wrong-token-5b1d2e"
    cases = [  # (token, repo id, revision, status, what the message says, whether ModelScope is asked)
        (None, "alice/x", "main", "PERMISSION_DENIED", "set MODELSCOPE_API_TOKEN", False),
        (wrong, "alice/x", "main", "PERMISSION_DENIED", "MODELSCOPE_API_TOKEN is set but was refused", True),
        # a missing repo the token may not create is refused, and nothing is committed
        (MS_TOKEN, "bob/x", "main", "PERMISSION_DENIED", "cannot create repos under 'bob'", True),
        (MS_TOKEN, "alice/x", "dev", "INVALID_ARGUMENT", "default branch 'master'", False),
    ]
    for token, repo_id, revision, status, says, asked in cases:
        ms_hub.requests.clear()
        run = push(store, run_job, ms_client(ms_hub, token), repo_id=repo_id, revision=revision)
        message = run.final.error_message
        assert (run.final.error_code, says in message) == (status, True), message
        assert wrong not in message and MS_TOKEN not in message
        assert bool(ms_hub.requests) == asked, ms_hub.requests
        assert not any("/commit/" in path or path.startswith("/ms-lfs/") for _, path in ms_hub.requests)
    assert ms_hub.repos == {} and "pushes" not in store.model("m").meta
