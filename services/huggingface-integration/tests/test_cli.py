"""`apt-model hf import|dataset` (hand-written: local folder paths and data files) and the
commands made from the plugin's proto (`apt-model huggingface-integration export-model|push-model|
train`) as a user runs them: a CLI process, a real in-process gateway, and the real
huggingface-integration plugin process the gateway installs. Hub calls go to LocalHfHubServer and
LocalModelScopeServer, local HTTP servers speaking the subset of the Hugging Face Hub and ModelScope
APIs these calls use (no internet here).
"""

from __future__ import annotations

import functools
import json

import pytest

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, write_sample_jsonl
from apt_model.testing.hubs import LocalHfHubServer, LocalModelScopeServer
from gateway.testing import run_cli, start_gateway, stop_gateway

from apt_hf_testing.helpers import HUB_TOKENS, MS_NAMESPACES, MS_TOKEN, WRITE_TOKEN, save_non_causal_model

pytestmark = pytest.mark.slow  # a gateway and a plugin process importing torch + transformers: about 30 s

# HF_* of the test process must not reach the CLI; the plugin gets its own from the gateway's environment.
hf = functools.partial(run_cli, drop=("APT_", "HF_"), timeout=300)


def ok(out) -> dict:
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    return job["result"]


@pytest.fixture(scope="module")
def hub():
    with LocalHfHubServer(tokens=HUB_TOKENS) as server:
        yield server


@pytest.fixture(scope="module")
def ms():
    with LocalModelScopeServer(tokens={MS_TOKEN}, namespaces=MS_NAMESPACES) as server:
        yield server


@pytest.fixture(scope="module")
def gw(hub, ms, tmp_path_factory):
    """A gateway whose environment (inherited by the plugin process it starts) points at the local hubs."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MODELSCOPE_ENDPOINT", ms.url)
        env.setenv("MODELSCOPE_API_TOKEN", MS_TOKEN)  # alice's: creates repos under "alice" only
        env.setenv("MODELSCOPE_CACHE", str(tmp_path_factory.mktemp("ms-cache")))
        env.setenv("HF_ENDPOINT", hub.url)
        env.setenv("HF_TOKEN", WRITE_TOKEN)  # alice's: reads and writes her own repos only
        env.setenv("HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf-cache")))
        env.setenv("HF_HUB_DISABLE_XET", "1")  # the local hub speaks LFS, not Xet
        env.delenv("HF_HUB_OFFLINE", raising=False)
        # the operator lets callers name the tests' folders (local HF model folders to import)
        gw = start_gateway(tmp_path_factory.mktemp("cli") / "home", data_roots=(str(tmp_path_factory.getbasetemp()),))
        try:
            gw.app.registry.install("huggingface-integration")
            yield gw
        finally:
            stop_gateway(gw)


@pytest.fixture(scope="module")
def hfi(tmp_path_factory):
    """The generic plugin command, with a description cache of its own."""
    cache = str(tmp_path_factory.mktemp("cli-cache"))
    return lambda gw, *args: hf(gw, "huggingface-integration", *args, env_extra={"XDG_CACHE_HOME": cache})


@pytest.fixture(scope="module")
def base(gw, llama_dir) -> str:
    """A store model imported from a local HF folder through the CLI."""
    result = ok(hf(gw, "hf", "import", str(llama_dir), "--name", "base", "--json"))
    assert result["architecture"] == "LlamaForCausalLM" and result["parameters"] > 0
    return "base"


def test_export_writes_a_folder_transformers_loads(gw, base, hfi, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out_dir = gw.settings.home / "exports" / "exported"  # exports go to APT_HOME/exports only
    ok(hfi(gw, "export-model", "--name", base, "--output-dir", "exported", "--json"))
    assert (out_dir / "README.md").is_file() and (out_dir / "model.safetensors").is_file()
    assert AutoModelForCausalLM.from_pretrained(out_dir).config.architectures == ["LlamaForCausalLM"]
    assert AutoTokenizer.from_pretrained(out_dir)("hello")["input_ids"]
    # exporting into a folder that now holds files refuses, and leaves them alone
    out = hfi(gw, "export-model", "--name", base, "--output-dir", "exported")
    assert out.returncode == 4 and "already exists" in out.stderr
    out = hfi(gw, "export-model", "--name", base, "--output-dir", str(tmp_path / "elsewhere"))
    assert out.returncode == 6 and "APT_HOME/exports" in out.stderr and not (tmp_path / "elsewhere").exists()
    assert (out_dir / "model.safetensors").is_file()


def test_push_then_import_the_pushed_repo_back(gw, base, hub, hfi):
    result = ok(hfi(gw, "push-model", "--name", base, "--repo-id", "alice/pushed", "--private", "--commit-message",
                    "from the CLI", "--json"))
    repo = hub.repos[("model", "alice/pushed")]
    assert repo.private and result["commit_sha"] == repo.branches["main"]
    assert "model.safetensors" in hub.files_at("alice/pushed")
    back = ok(hf(gw, "hf", "import", "alice/pushed", "--name", "back", "--json"))
    assert back["commit_sha"] == result["commit_sha"]
    assert Store(gw.settings.home).model("back").meta["source"] == {
        "hub": "huggingface", "repo_id": "alice/pushed", "revision": "main", "commit_sha": result["commit_sha"]}


def test_push_to_modelscope_then_import_it_back(gw, base, ms, hfi):
    result = ok(hfi(gw, "push-model", "--name", base, "--repo-id", "alice/ms-pushed", "--hub", "modelscope",
                    "--private", "--commit-message", "from the CLI", "--json"))
    repo = ms.repos["alice/ms-pushed"]
    assert repo.private and repo.messages["master"].startswith("from the CLI")
    assert (result["hub"], result["revision"], result["commit_sha"]) == ("modelscope", "master", repo.commits["master"])
    stored = Store(gw.settings.home).model(base)
    pushed = ms.branch_files("alice/ms-pushed")
    assert all(pushed[rel] == (stored.path / rel).read_bytes() for rel in stored.meta["files"])
    ok(hf(gw, "hf", "import", "alice/ms-pushed", "--hub", "modelscope", "--name", "back-ms", "--json"))
    back = Store(gw.settings.home).model("back-ms")
    assert back.meta["source"]["hub"] == "modelscope"
    assert all((back.path / rel).read_bytes() == (stored.path / rel).read_bytes() for rel in stored.meta["files"])
    # a repo the token may not create: PERMISSION_DENIED (exit 6), saying what to do, never showing the token
    out = hfi(gw, "push-model", "--name", base, "--repo-id", "bob/ms-pushed", "--hub", "modelscope")
    assert out.returncode == 6 and "cannot create repos under 'bob'" in out.stderr, out.stderr
    assert MS_TOKEN not in out.stdout + out.stderr and "bob/ms-pushed" not in ms.repos


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "corpus.jsonl"
    write_sample_jsonl(path)
    return path


def test_dataset_from_a_local_jsonl_with_token_stats(gw, base, corpus):
    result = ok(hf(gw, "hf", "dataset", str(corpus), "--name", "corpus", "--tokenizer-from", base, "--json"))
    assert result["rows"] == len(SAMPLE_TEXT) and list(result["features"]) == ["text"]
    assert "string" in result["features"]["text"]
    assert result["token_stats"]["total_tokens"] > len(SAMPLE_TEXT)
    assert Store(gw.settings.home).dataset("corpus").meta["metrics"]["rows"] == len(SAMPLE_TEXT)
    table = hf(gw, "hf", "dataset", str(corpus), "--name", "corpus", "--overwrite")
    assert table.returncode == 0 and "columns" in table.stdout and "preview" in table.stdout, table.stderr


def test_train_lowers_eval_loss_and_records_lineage(gw, base, corpus, hfi):
    ok(hf(gw, "hf", "dataset", str(corpus), "--name", "train-corpus", "--json"))
    result = ok(hfi(gw, "train", "--model", base, "--dataset", "train-corpus", "--output-name", "tuned",
                    "--max-steps", "20", "--seq-len", "32", "--batch-size", "8", "--learning-rate", "3e-3", "--json"))
    assert result["steps"] == 20 and result["eval_loss"] < result["eval_loss_before"], result
    out = hf(gw, "info", "tuned", "--json")
    assert out.returncode == 0, out.stderr
    lineage = json.loads(out.stdout)["lineage"]
    assert lineage["operation"] == "hf-train" and lineage["parent"] == base, lineage


def test_bad_input_exit_codes_and_nothing_stored(gw, base, hub, hfi, llama_dir, tmp_path):
    before = sorted(p.name for p in (gw.settings.home / "models").iterdir())
    out = hf(gw, "hf", "import", "alice/nothing-here", "--name", "x")
    assert out.returncode == 4 and "alice/nothing-here" in out.stderr  # NOT_FOUND
    # like the Hub: a signed-in caller who may not see a private repo is told it does not exist
    hub.add_repo("bob/secret", llama_dir, private=True, owner="bob")
    out = hf(gw, "hf", "import", "bob/secret", "--name", "x")
    assert out.returncode == 4 and "bob/secret" in out.stderr
    bobs = hub.add_repo("bob/public", llama_dir, owner="bob")
    out = hfi(gw, "push-model", "--name", base, "--repo-id", "bob/public")
    assert out.returncode == 6 and "HF_TOKEN" in out.stderr, out.stderr  # PERMISSION_DENIED
    assert hub.repos[("model", "bob/public")].branches["main"] == bobs  # nothing committed
    bert = save_non_causal_model(tmp_path / "bert")
    out = hf(gw, "hf", "import", str(bert), "--name", "x")
    assert out.returncode == 3 and "causal" in out.stderr  # INVALID_ARGUMENT
    out = hfi(gw, "train", "--model", base, "--dataset", "no-such-dataset", "--output-name", "x")
    assert out.returncode == 4 and "no-such-dataset" in out.stderr
    assert sorted(p.name for p in (gw.settings.home / "models").iterdir()) == before


def test_hub_down_is_unavailable_with_the_offline_hint(gw, hub, llama_dir):
    """Runs last: it puts the local hub in an outage (every request answered 503). A refused
    connection is the unit tests' case (test_import.py); here the plugin's pooled HTTP connections
    to the hub would outlive closing its socket."""
    sha = hub.add_repo("alice/cached", llama_dir)
    ok(hf(gw, "hf", "import", "alice/cached", "--name", "cached", "--json"))  # fills the plugin's HF cache
    hub.down = True
    out = hf(gw, "hf", "import", "alice/cached", "--name", "y")
    # UNAVAILABLE, naming the commit the plugin's cache holds rather than importing it unasked
    assert out.returncode == 5 and "HF_HUB_OFFLINE=1" in out.stderr and f"holds commit {sha}" in out.stderr, out.stderr
    out = hf(gw, "hf", "import", "alice/nothing-cached", "--name", "z")
    assert out.returncode == 5 and "HF_HUB_OFFLINE=1" in out.stderr, out.stderr
    assert not (gw.settings.home / "models" / "y").exists() and not (gw.settings.home / "models" / "z").exists()


def test_generic_cli_export_and_a_required_field(gw, base, tmp_path):
    """The commands made from the proto (`apt-model huggingface-integration export-model`)."""
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    result = ok(hf(gw, "huggingface-integration", "export-model", "--name", base, "--output-dir", "generic-export",
                   "--json", env_extra=env))
    assert result["output_dir"].endswith("generic-export")
    assert (gw.settings.home / "exports" / "generic-export" / "model.safetensors").is_file()
    out = hf(gw, "huggingface-integration", "import-model", "--source", "alice/x", env_extra=env)
    assert out.returncode == 2 and "--name" in out.stderr and "required" in out.stderr
