"""Hub backends with their real client libraries against local servers implementing the subset
of each platform's HTTP API that the backends use."""

from __future__ import annotations

import huggingface_hub.constants
import pytest

from apt_model import errors
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.restore import run_restore
from apt_storage.specs import BackupSpec, RestoreSpec, UploadSpec, transfer_options
from apt_model.testing import JobRecorder
from apt_model.testing.hubs import LocalHfHubServer, LocalModelScopeServer
from apt_storage.testing import MiB, add_entry, dead_endpoint, random_bytes
from apt_storage.upload import run_upload
from apt_storage.uri import parse

HF_TOKEN = "hf_local_test_token_0123456789"


@pytest.fixture(autouse=True)
def no_xet(monkeypatch):
    """The local Hub speaks the LFS basic transfer only. huggingface_hub reads HF_HUB_DISABLE_XET
    once, at import, which another test module may already have done: set the constant itself."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)


def _config(store, endpoint: str, **env):
    """The service as an operator sets it up: credentials for the endpoint they belong to."""
    return StorageConfig.from_env(store.root, {"CLOUD_STORAGE_SECRETS_DIR": "/nonexistent", "HF_ENDPOINT": endpoint,
                                               "MODELSCOPE_ENDPOINT": endpoint, **env})


@pytest.fixture
def hub(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with LocalHfHubServer(tokens={HF_TOKEN: ("org", True)}) as server:
        server.add_repo("org/backups", private=True, owner="org")
        yield server


def test_hf_backup_restore_and_resume(hub, store):
    big = random_bytes(MiB, 31)
    add_entry(store, "m1", {"config.json": b'{"x": 1}', "model.safetensors": big})
    config = _config(store, hub.url, HF_TOKEN=HF_TOKEN)
    spec = BackupSpec("m1", "models", parse("hf://org/backups/apt"), "v1", transfer_options(hub.url))
    result = run_backup(store, config, spec, JobRecorder())
    repo = hub.branch_files("org/backups")
    assert repo["apt/models/m1/v1/files/model.safetensors"] == big
    assert "apt/models/m1/v1/manifest.json" in repo
    assert any(m == "PUT" and p.startswith("/lfs-upload/") for m, p in hub.requests)  # LFS path used
    assert result["bytes_sent"] == len(big) + 8

    # an interruption after the files commit: the manifest is missing; a rerun commits only the manifest
    del repo["apt/models/m1/v1/manifest.json"]
    hub.requests.clear()
    again = run_backup(store, config, spec, JobRecorder())
    assert again["resumed"] and again["bytes_sent"] == 0 and again["bytes_skipped"] == len(big) + 8
    assert not any(p.startswith("/lfs-upload/") for _, p in hub.requests)

    out = run_restore(store, config, RestoreSpec(parse("hf://org/backups/apt"), "", "", "m1-hf", "",
                                                 options=transfer_options(hub.url)), JobRecorder())
    assert out["tag"] == "v1"
    assert (store.model("m1-hf").path / "model.safetensors").read_bytes() == big

    repo["apt/models/m1/v1/files/config.json"] = b'{"x": 2}'  # changed behind the manifest
    with pytest.raises(errors.DataLoss, match="config.json"):
        run_restore(store, config, RestoreSpec(parse("hf://org/backups/apt"), "", "", "m1-bad", "",
                                               options=transfer_options(hub.url)), JobRecorder())
    assert not store.exists("models", "m1-bad")


def test_hf_upload_and_errors(hub, store, tmp_path):
    add_entry(store, "m1", {"README.md": b"# hi\n"})
    config = _config(store, hub.url, HF_TOKEN=HF_TOKEN)
    out = run_upload(config, UploadSpec(("models/m1",), parse("hf://org/backups"),
                                        transfer_options(hub.url, commit_message="hello")), JobRecorder())
    assert hub.branch_files("org/backups")["m1/README.md"] == b"# hi\n"
    assert {u["key"] for u in out["uploaded"]} == {"m1/README.md", "m1/apt.json"}

    spec = BackupSpec("m1", "models", parse("hf://org/missing"), "", transfer_options(hub.url))
    with pytest.raises(errors.NotFound, match="org/missing"):
        run_backup(store, config, spec, JobRecorder())
    bad = _config(store, hub.url, HF_TOKEN="hf_wrong_token_value_987")
    spec = BackupSpec("m1", "models", parse("hf://org/backups"), "", transfer_options(hub.url))
    with pytest.raises(errors.PermissionDenied) as info:
        run_backup(store, bad, spec, JobRecorder())
    assert "hf_wrong_token_value_987" not in info.value.message and "HF_TOKEN" in info.value.message
    dead = dead_endpoint()
    with pytest.raises(errors.Unavailable, match="unreachable"):
        run_backup(store, _config(store, dead, HF_TOKEN=HF_TOKEN),
                   BackupSpec("m1", "models", parse("hf://org/backups"), "", transfer_options(dead)), JobRecorder())


MS_TOKEN = "ms-local-test-token-abcdef"


@pytest.fixture
def ms(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELSCOPE_CACHE", str(tmp_path / "ms-cache"))
    with LocalModelScopeServer(tokens={MS_TOKEN}) as server:
        server.add_repo("org/backups", private=True)
        yield server


def test_modelscope_backup_restore_resume_and_errors(ms, store):
    big = random_bytes(2 * MiB, 41)
    add_entry(store, "m1", {"config.json": b'{"y": 1}', "model.safetensors": big})
    config = _config(store, ms.url, MODELSCOPE_API_TOKEN=MS_TOKEN)
    spec = BackupSpec("m1", "models", parse("modelscope://org/backups/apt"), "v1", transfer_options(ms.url))
    result = run_backup(store, config, spec, JobRecorder())
    repo = ms.branch_files("org/backups")
    assert repo["apt/models/m1/v1/files/model.safetensors"] == big
    assert "apt/models/m1/v1/manifest.json" in repo and result["bytes_sent"] == len(big) + 8

    del repo["apt/models/m1/v1/manifest.json"]  # interrupted before the manifest
    ms.requests.clear()
    again = run_backup(store, config, spec, JobRecorder())
    assert again["resumed"] and again["bytes_sent"] == 0
    assert not any(m == "PUT" for m, _ in ms.requests)

    out = run_restore(store, config, RestoreSpec(parse("modelscope://org/backups/apt"), "", "", "m1-ms", "",
                                                 options=transfer_options(ms.url)), JobRecorder())
    assert out["tag"] == "v1"
    assert (store.model("m1-ms").path / "model.safetensors").read_bytes() == big

    repo["apt/models/m1/v1/files/model.safetensors"] = random_bytes(2 * MiB, 42)
    with pytest.raises(errors.DataLoss):
        run_restore(store, config, RestoreSpec(parse("modelscope://org/backups/apt"), "", "", "m1-bad", "",
                                               options=transfer_options(ms.url)), JobRecorder())
    assert not store.exists("models", "m1-bad")

    with pytest.raises(errors.NotFound, match="org/missing"):
        run_backup(store, config, BackupSpec("m1", "models", parse("modelscope://org/missing"), "",
                                             transfer_options(ms.url)), JobRecorder())
    bad = _config(store, ms.url, MODELSCOPE_API_TOKEN="ms-wrong-token-value")
    with pytest.raises(errors.PermissionDenied) as info:
        run_backup(store, bad, spec, JobRecorder())
    assert "ms-wrong-token-value" not in info.value.message
