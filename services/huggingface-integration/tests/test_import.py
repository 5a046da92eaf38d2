"""Import from local folders and from a hub (local server speaking the Hub API), errors, offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from apt_model import errors
from apt_model.store import sha256_file
from apt_model.trust import PathPolicy

from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, resolve_source, run_import
from apt_hf.settings import HubSettings
from apt_hf_testing.helpers import READ_TOKEN, save_non_causal_model, store_is_clean

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def logits(folder: Path) -> torch.Tensor:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        return model(torch.tensor([[1, 5, 9, 17, 33, 2]])).logits


def do_import(store, run_job, spec: ImportSpec, settings: HubSettings | None = None):
    hub = None if spec.is_local else get_hub(spec.hub, settings)
    return run_job("StartImportModel", lambda ctx: run_import(store, hub, spec, ctx))


@pytest.mark.parametrize("fixture", ["llama_dir", "gpt2_dir"])
def test_local_folder_import_keeps_weights_and_lineage(request, store, run_job, fixture):
    src = request.getfixturevalue(fixture)
    run = do_import(store, run_job, ImportSpec(source=str(src), name="imported"))
    assert run.ok, run.final.error_message
    entry = store.model("imported")
    assert (entry.path / "model.safetensors").is_file() and (entry.path / "tokenizer.json").is_file()
    assert not (entry.path / "apt.json").read_text().count("test-fixture")  # the source's record is not copied
    assert entry.meta["lineage"]["operation"] == "hf-import"
    assert entry.meta["source"]["hub"] == "local" and entry.meta["source"]["repo_id"] == str(src)
    assert store.verify("models", "imported") == []
    assert torch.equal(logits(src), logits(entry.path))
    assert run.final.result["architecture"] in ("LlamaForCausalLM", "GPT2LMHeadModel")
    assert run.final.result["parameters"] > 0
    # the checksums, recorded once the import settled in the background, are the source's
    settled = store.settled("models", "imported").meta["files"]
    assert "settling" not in store.model("imported").meta
    for name in ("model.safetensors", "tokenizer.json", "config.json"):
        assert settled[name] == {"sha256": sha256_file(src / name), "size": (src / name).stat().st_size}


def test_bin_checkpoint_is_converted_to_safetensors(tmp_path, store, run_job, gpt2_dir):
    from transformers import AutoModelForCausalLM

    src = tmp_path / "bin-model"
    src.mkdir()
    # transformers 5 no longer writes .bin; such checkpoints are what older Hub repos hold
    torch.save(AutoModelForCausalLM.from_pretrained(gpt2_dir).state_dict(), src / "pytorch_model.bin")
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (src / f).write_bytes((gpt2_dir / f).read_bytes())
    assert (src / "pytorch_model.bin").is_file() and not list(src.glob("*.safetensors"))
    run = do_import(store, run_job, ImportSpec(source=str(src), name="from-bin"))
    assert run.ok, run.final.error_message
    path = store.model("from-bin").path
    assert (path / "model.safetensors").is_file() and not list(path.glob("*.bin"))
    assert torch.equal(logits(gpt2_dir), logits(path))
    assert any("converted" in w for w in run.final.result["warnings"])


def test_non_causal_model_is_refused(tmp_path, store):
    src = save_non_causal_model(tmp_path / "bert")
    with pytest.raises(errors.InvalidArgument, match="causal"):
        resolve_source(ImportSpec(source=str(src), name="bert"), None)
    assert store_is_clean(store)


def test_truncated_weights_leave_nothing_in_the_store(tmp_path, store, run_job, llama_dir):
    src = tmp_path / "cut"
    src.mkdir()
    for f in llama_dir.iterdir():
        data = f.read_bytes()
        (src / f.name).write_bytes(data[: len(data) - 100] if f.suffix == ".safetensors" else data)
    run = do_import(store, run_job, ImportSpec(source=str(src), name="cut"))
    assert run.final.error_code == "DATA_LOSS" and "incomplete" in run.final.error_message
    assert store_is_clean(store)


def test_hub_import_records_commit_and_reports_bytes(store, run_job, hf_hub, llama_dir):
    sha = hf_hub.add_repo("alice/tiny-llama", llama_dir)
    settings = HubSettings(hf_endpoint=hf_hub.url, hf_cache=store.root.parent / "hf-cache")
    run = do_import(store, run_job, ImportSpec(source="alice/tiny-llama", name="tl"), settings)
    assert run.ok, run.final.error_message
    entry = store.model("tl")
    assert entry.meta["source"] == {"hub": "huggingface", "repo_id": "alice/tiny-llama", "revision": "main",
                                    "commit_sha": sha}
    assert run.final.result["commit_sha"] == sha
    done = run.metric_values("bytes_done")
    assert done and max(done) >= (llama_dir / "model.safetensors").stat().st_size
    assert torch.equal(logits(llama_dir), logits(entry.path))


def test_hub_import_of_a_branch(store, run_job, hf_hub, llama_dir, gpt2_dir):
    hf_hub.add_repo("alice/two", llama_dir)
    repo = hf_hub.repos[("model", "alice/two")]
    files = {k: hf_hub._entry(k, (gpt2_dir / k).read_bytes()) for k in ("config.json", "model.safetensors")}
    dev_sha = hf_hub._commit(repo, "dev", files, "gpt2 on dev")
    settings = HubSettings(hf_endpoint=hf_hub.url, hf_cache=store.root.parent / "hf-cache")
    run = do_import(store, run_job, ImportSpec(source="alice/two", name="dev", revision="dev"), settings)
    assert run.ok, run.final.error_message
    assert store.model("dev").meta["source"]["commit_sha"] == dev_sha
    assert run.final.result["architecture"] == "GPT2LMHeadModel"


def test_hub_errors_have_codes_and_next_steps(store, hf_hub, llama_dir):
    hf_hub.add_repo("alice/secret", llama_dir, private=True)
    cache = store.root.parent / "hf-cache"
    authed = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_cache=cache, hf_token=READ_TOKEN))
    with pytest.raises(errors.NotFound, match="alice/nothing-here"):
        resolve_source(ImportSpec(source="alice/nothing-here", name="x"), authed)
    with pytest.raises(errors.NotFound, match="revision 'v9'"):
        resolve_source(ImportSpec(source="alice/secret", name="x", revision="v9"), authed)
    anonymous = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_cache=cache))
    with pytest.raises(errors.PermissionDenied, match="set HF_TOKEN"):
        resolve_source(ImportSpec(source="alice/secret", name="x"), anonymous)
    bad = get_hub("huggingface", HubSettings(hf_endpoint=hf_hub.url, hf_cache=cache, hf_token="hf_wrong"))
    with pytest.raises(errors.PermissionDenied, match="HF_TOKEN is set but was refused"):
        resolve_source(ImportSpec(source="alice/secret", name="x"), bad)
    # the owner's token reads the private repo
    assert resolve_source(ImportSpec(source="alice/secret", name="x"), authed).commit_sha
    unreachable = get_hub("huggingface", HubSettings(hf_endpoint="http://127.0.0.1:9", hf_cache=cache / "empty"))
    with pytest.raises(errors.Unavailable, match="HF_HUB_OFFLINE=1"):
        resolve_source(ImportSpec(source="alice/tiny", name="x"), unreachable)
    with pytest.raises(errors.InvalidArgument):
        ImportSpec.from_request(type("R", (), dict(source="not a repo!", name="x", hub="", revision="",
                                                   overwrite=False))(), PathPolicy.create(store.root))
    assert store_is_clean(store)


def test_cancelled_import_leaves_nothing(store, hf_hub, llama_dir):
    from apt_model.runtime.jobs import JobManager

    hf_hub.add_repo("alice/tiny", llama_dir)
    settings = HubSettings(hf_endpoint=hf_hub.url, hf_cache=store.root.parent / "hf-cache")
    spec = ImportSpec(source="alice/tiny", name="cancelled")
    manager = JobManager("test", max_workers=1)

    seen_tmp = []

    def work(ctx):
        report = ctx.report

        def cancel_during_copy(**kw):
            report(**kw)
            if kw.get("stage") == "copy":
                seen_tmp.extend(p for p in (store.root / "models").iterdir() if p.name.startswith(".tmp-"))
                manager.cancel(ctx.job_id)  # what CancelJob does, while the entry is half built

        ctx.report = cancel_during_copy
        return run_import(store, get_hub("huggingface", settings), spec, ctx)

    job = manager.start("/apt.plugins.huggingface_integration.v1.HuggingFace/StartImportModel", work)
    final = list(manager.watch(job.id, poll=0.05))[-1]
    manager.shutdown()
    assert final.state.value == "CANCELLED"
    assert seen_tmp  # the cancel really landed inside Store.create
    assert store_is_clean(store)


OFFLINE_SCRIPT = """
import json, sys
from apt_model.runtime.jobs import JobContext, JobManager
from apt_model.store import Store
from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, run_import
from apt_hf.settings import HubSettings
import huggingface_hub.constants as c
assert c.HF_HUB_OFFLINE, "huggingface_hub did not see HF_HUB_OFFLINE"
settings = HubSettings.from_env()
assert settings.offline
ctx = JobContext(JobManager("offline"), "offline:1")
result = run_import(Store(sys.argv[1]), get_hub("huggingface", settings),
                    ImportSpec(source=sys.argv[2], name=sys.argv[3]), ctx)
print(json.dumps(result))
"""


def test_offline_import_from_a_cache_filled_by_snapshot_download(tmp_path, hf_hub, llama_dir):
    """HF_HUB_OFFLINE=1 in a fresh process: snapshot_download serves the import from the cache."""
    from huggingface_hub import snapshot_download

    sha = hf_hub.add_repo("alice/cached", llama_dir)
    cache = tmp_path / "hf-cache"
    snapshot_download("alice/cached", cache_dir=cache, endpoint=hf_hub.url, token=False)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache),
           "HF_ENDPOINT": "http://127.0.0.1:9", "PYTHONPATH": os.pathsep.join(
               [str(PLUGIN_DIR), str(PLUGIN_DIR.parents[1])])}
    env.pop("HF_TOKEN", None)
    home = tmp_path / "home"
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(home), "alice/cached", "offline-model"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["commit_sha"] == sha
    meta = json.loads((home / "models" / "offline-model" / "apt.json").read_text())
    assert meta["source"]["commit_sha"] == sha
    # a repo that is not in the cache fails with the offline hint, and stores nothing
    out = subprocess.run([sys.executable, "-c", OFFLINE_SCRIPT, str(home), "alice/never-cached", "nope"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "HF_HUB_OFFLINE is set" in out.stderr
    assert not (home / "models" / "nope").exists()


def test_unreachable_hub_is_unavailable_even_when_the_cache_holds_the_branch(store, run_job, hf_hub, llama_dir):
    """huggingface_hub would quietly serve the cached copy; online, the Hub must answer for a branch."""
    from huggingface_hub import snapshot_download

    sha = hf_hub.add_repo("alice/cached", llama_dir)
    cache = store.root.parent / "hf-cache"
    snapshot_download("alice/cached", cache_dir=cache, endpoint=hf_hub.url, token=False)
    down = HubSettings(hf_endpoint="http://127.0.0.1:9", hf_cache=cache)
    run = do_import(store, run_job, ImportSpec(source="alice/cached", name="stale"), down)
    assert run.final.error_code == "UNAVAILABLE", run.final.error_message
    assert f"holds commit {sha}" in run.final.error_message and "HF_HUB_OFFLINE=1" in run.final.error_message
    assert store_is_clean(store)
    # an exact commit cannot drift: the cached copy of it is what the Hub would send
    run = do_import(store, run_job, ImportSpec(source="alice/cached", name="pinned", revision=sha), down)
    assert run.ok, run.final.error_message
    assert store.model("pinned").meta["source"]["commit_sha"] == sha
