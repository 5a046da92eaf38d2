"""Attack: make the platform read or write host files through every path-taking field.

A live gateway with its default trust settings (APT_DATA_ROOTS empty) and every built plugin
installed as a real process; the attacker holds only the user token. Every field that names a
host path is tried with files the attacker wants (a notes file, the admin token, the gateway's
state, /etc/passwd, /proc/self/environ, '~'): each call must be refused with
PERMISSION_DENIED (or INVALID_ARGUMENT for a relative path) before anything is read, no
secret may appear in any answer or log line, and the store and host files stay unchanged.
"""

from __future__ import annotations

import os
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as gw_pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc as gw_grpc
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as cs_pb
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc as cs_grpc
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as hf_pb
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc as hf_grpc
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as kd_pb
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc as kd_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pr_pb
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc as pr_grpc
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as ol_pb
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc as ol_grpc
from apt_model.runtime.settings import secrets_dir
from apt_model.runtime.testing import wait_job
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from apt_model.trust import PathPolicy
from gateway.testing import start_gateway, stop_gateway

from .conftest import SECRET, assert_no_leak, rpc_error, user_channel

PLUGINS = ("huggingface-integration", "cloud-storage", "model-pruning", "model-distillation", "ollama-export")
DENIED = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)


@pytest.fixture(scope="module")
def armed(attack_gateway, host):
    """The gateway with every built plugin installed, and the paths an attacker aims at."""
    for name in PLUGINS:
        attack_gateway.app.registry.install(name)
    home = Path(attack_gateway.settings.home)
    targets = {
        "notes": str(host.root / "notes" / "passwords.txt"),
        "notes-md": str(host.root / "notes" / "passwords.md"),
        "notes-jsonl": str(host.root / "notes" / "passwords.jsonl"),
        "admin-token": str(secrets_dir(home) / "admin_token"),
        "gateway-state": str(home / "gateway" / "plugins.json"),
        "etc-passwd": "/etc/passwd",
        "environ": "/proc/self/environ",
        "tilde": "~/notes.txt",
        "relative": "notes/passwords.txt",
        "store-relative-secret": f"../{secrets_dir(home).name}/admin_token",  # uploads resolve relative to the store
        "legacy-secret": str(home / "secrets" / "admin_token"),
        "dotdot": str(home / "models" / ".." / "gateway" / "plugins.json"),
    }
    return attack_gateway, targets


def _read_fields(ch):
    """(field, call) for every field that makes a service read a host path; call(path) -> reply."""
    core, hf = gw_grpc.CoreStub(ch), hf_grpc.HuggingFaceStub(ch)
    cs, pr, kd = cs_grpc.CloudStorageStub(ch), pr_grpc.PruningStub(ch), kd_grpc.DistillationStub(ch)
    return {
        "Core.StartTrain.corpus_paths": lambda p: core.StartTrain(
            gw_pb.TrainRequest(name="stolen", corpus_paths=[p], max_steps=2), timeout=30),
        "Core.StartTest.eval_path": lambda p: core.StartTest(gw_pb.TestModelRequest(name="m", eval_path=p), timeout=30),
        "Core.StartCompare.eval_path": lambda p: core.StartCompare(
            gw_pb.CompareModelsRequest(names=["m", "n"], eval_path=p), timeout=30),
        "Core.DebugModel.data_path": lambda p: core.DebugModel(gw_pb.DebugModelRequest(name="m", data_path=p), timeout=30),
        "HuggingFace.StartImportModel.source": lambda p: hf.StartImportModel(
            hf_pb.ImportModelRequest(source=p, name="stolen"), timeout=30),
        "HuggingFace.StartLoadDataset.source": lambda p: hf.StartLoadDataset(
            hf_pb.LoadDatasetRequest(source=p, name="stolen", format="text"), timeout=30),
        "CloudStorage.StartUpload.paths": lambda p: cs.StartUpload(
            cs_pb.UploadRequest(paths=[p], destination="s3://bucket/x"), timeout=30),
        "Pruning.StartPrune.calibration_path": lambda p: pr.StartPrune(
            pr_pb.PruneRequest(name="m", output_name="o", strategy="taylor", ratio=0.5, calibration_path=p), timeout=30),
        "Pruning.StartPrune.recovery_path": lambda p: pr.StartPrune(
            pr_pb.PruneRequest(name="m", output_name="o", strategy="magnitude", ratio=0.5, recovery_path=p), timeout=30),
        "Pruning.StartPrune.eval_path": lambda p: pr.StartPrune(
            pr_pb.PruneRequest(name="m", output_name="o", strategy="magnitude", ratio=0.5, eval_path=p), timeout=30),
        "Distillation.StartDistill.corpus_paths": lambda p: kd.StartDistill(
            kd_pb.DistillRequest(teacher="m", output_name="o", student_layers=1, strategies=["response"], corpus_paths=[p]), timeout=30),
    }


def _write_fields(ch, target: str):
    """(field, call) for every field that makes a service write at a host path."""
    hf, cs, ol = hf_grpc.HuggingFaceStub(ch), cs_grpc.CloudStorageStub(ch), ol_grpc.OllamaExportStub(ch)
    return {
        "HuggingFace.StartExportModel.output_dir": lambda: hf.StartExportModel(
            hf_pb.ExportModelRequest(name="m", output_dir=target), timeout=30),
        "CloudStorage.StartBackup.destination": lambda: cs.StartBackup(
            cs_pb.BackupRequest(name="m", destination=f"file://{target}"), timeout=30),
        "CloudStorage.StartUpload.destination": lambda: cs.StartUpload(
            cs_pb.UploadRequest(paths=["models"], destination=f"file://{target}"), timeout=30),
        "CloudStorage.StartRestore.source": lambda: cs.StartRestore(
            cs_pb.RestoreRequest(source=f"file://{target}", name="stolen"), timeout=30),
        "CloudStorage.ListBackups.destination": lambda: cs.ListBackups(
            cs_pb.ListBackupsRequest(destination=f"file://{target}"), timeout=30),
        "OllamaExport.StartExport.output_dir": lambda: ol.StartExport(
            ol_pb.ExportRequest(name="m", output_dir=target), timeout=30),
    }


def test_no_field_reads_a_host_path(armed, host):
    gw, targets = armed
    before = host.snapshot(gw.settings.home)
    ch = user_channel(gw)
    seen = []
    for field, call in _read_fields(ch).items():
        for what, path in targets.items():
            if what == "relative" and field.startswith("HuggingFace"):
                continue  # 'notes/passwords.txt' is a hub repo id there, never a path
            err = rpc_error(lambda: call(path))
            assert err.code() in DENIED, f"{field} with {what}: {err.code()} {err.details()}"
            if what not in ("tilde", "relative", "store-relative-secret"):
                assert err.code() == grpc.StatusCode.PERMISSION_DENIED, f"{field} with {what}: {err.details()}"
                assert "APT_DATA_ROOTS" in err.details(), err.details()
            seen.append(err.details())
    assert_no_leak(gw, *seen)
    assert host.snapshot(gw.settings.home) == before


def test_no_field_writes_a_host_path(armed, host, tmp_path):
    gw, targets = armed
    ch = user_channel(gw)
    outside = tmp_path / "dropzone"
    site = tmp_path / "venv" / "site-packages"
    site.mkdir(parents=True)
    before = host.snapshot(gw.settings.home, tmp_path)
    aims = [str(outside), str(site), str(secrets_dir(Path(gw.settings.home))),
            str(Path(gw.settings.home) / "gateway"), str(Path(gw.settings.home) / "models" / "m"),
            "/etc", str(host.root / "notes")]
    seen = []
    for aim in aims:
        for field, call in _write_fields(ch, aim).items():
            err = rpc_error(call)
            assert err.code() in DENIED, f"{field} -> {aim}: {err.code()} {err.details()}"
            seen.append(err.details())
    assert_no_leak(gw, *seen)
    assert host.snapshot(gw.settings.home, tmp_path) == before
    assert not outside.exists() and list(site.iterdir()) == []


def test_outputs_never_replace_what_they_did_not_make(armed):
    """An Ollama export into a folder something else made, and a file:// upload over a file
    with other bytes, are ALREADY_EXISTS; what was there is unchanged. Re-running into what
    the operation itself made is fine."""
    gw, _ = armed
    home = Path(gw.settings.home)
    store = Store(home)
    if not store.exists("models", "tiny-out"):
        make_tiny_model(store, "tiny-out", vocab_size=320)
    ch = user_channel(gw)
    taken = home / "exports" / "taken"
    taken.mkdir(parents=True, exist_ok=True)
    (taken / "model.gguf").write_bytes(b"not made by an ollama export")
    err = rpc_error(lambda: ol_grpc.OllamaExportStub(ch).StartExport(
        ol_pb.ExportRequest(name="tiny-out", output_dir="taken", skip_verify=True), timeout=30))
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS and "not made by an Ollama export" in err.details()
    assert (taken / "model.gguf").read_bytes() == b"not made by an ollama export"

    cs = cs_grpc.CloudStorageStub(ch)
    source, dest = store.model("tiny-out").path / "config.json", home / "exports" / "cs-dest"

    def upload():
        job = cs.StartUpload(cs_pb.UploadRequest(paths=[str(source)], destination=f"file://{dest}"), timeout=30)
        return wait_job(ch, job.id, timeout=60)

    assert upload().state == job_pb2.JOB_STATE_SUCCEEDED
    assert upload().state == job_pb2.JOB_STATE_SUCCEEDED  # the same bytes again: nothing to replace
    (copy,) = [p for p in dest.rglob("config.json")]
    copy.write_text('{"someone": "else"}')
    done = upload()
    assert done.state == job_pb2.JOB_STATE_FAILED and done.error.code == "ALREADY_EXISTS", done
    assert copy.read_text() == '{"someone": "else"}'
    assert not [p.name for p in copy.parent.iterdir() if p.name.startswith(".part-")]


def test_a_name_with_a_trailing_newline_names_no_entry_and_no_folder(armed, host):
    """A store name, an export folder and an Ollama model name are checked whole: '$' alone
    matches before a final newline, so 'stolen\\n' once passed the rules and named a folder."""
    gw, _ = armed
    home = Path(gw.settings.home)
    before = host.snapshot(home)
    ch = user_channel(gw)
    core, pr = gw_grpc.CoreStub(ch), pr_grpc.PruningStub(ch)
    ol = ol_grpc.OllamaExportStub(ch)   # (huggingface-integration trims the names it is given)
    calls = {
        "Core.StartTrain.name": lambda: core.StartTrain(gw_pb.TrainRequest(name="stolen\n", max_steps=2), timeout=30),
        "Core.DeleteModel.name": lambda: core.DeleteModel(gw_pb.DeleteModelRequest(name="m\n"), timeout=30),
        "Pruning.StartPrune.output_name": lambda: pr.StartPrune(
            pr_pb.PruneRequest(name="m", output_name="o\n", strategy="magnitude", ratio=0.5), timeout=30),
        "OllamaExport.StartExport.output_dir": lambda: ol.StartExport(
            ol_pb.ExportRequest(name="m", output_dir="out\n"), timeout=30),
        "OllamaExport.StartExport.ollama_model": lambda: ol.StartExport(
            ol_pb.ExportRequest(name="m", ollama_model="m:q8\n"), timeout=30),
    }
    for field, call in calls.items():
        err = rpc_error(call)
        assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {err.code()} {err.details()}"
    assert host.snapshot(home) == before


def test_no_operation_tells_whether_a_path_exists(armed, host):
    """The answer for a missing file and for an existing one is the same refusal."""
    gw, _ = armed
    core = gw_grpc.CoreStub(user_channel(gw))
    there = rpc_error(lambda: core.DebugModel(gw_pb.DebugModelRequest(name="m", data_path="/etc/passwd")))
    missing = rpc_error(lambda: core.DebugModel(gw_pb.DebugModelRequest(name="m", data_path="/etc/no-such-file")))
    assert there.code() == missing.code() == grpc.StatusCode.PERMISSION_DENIED
    assert there.details().replace("/etc/passwd", "X") == missing.details().replace("/etc/no-such-file", "X")


@pytest.fixture
def rooted(tmp_path, host):
    """A gateway whose operator allowed one data root, holding a text file and a link out of it."""
    root = tmp_path / "shared-data"
    root.mkdir()
    (root / "corpus.txt").write_text("plain words for a corpus\n" * 50)
    os.symlink(host.root / "notes" / "passwords.txt", root / "escape.txt")
    os.symlink(host.root / "notes", root / "escape-dir")
    gw = start_gateway(tmp_path / "home", data_roots=(str(root),))
    gw.app.registry.install("cloud-storage")
    yield gw, root
    stop_gateway(gw)


def test_links_inside_a_data_root_do_not_lead_out(rooted, host):
    gw, root = rooted
    ch = user_channel(gw)
    core, cs = gw_grpc.CoreStub(ch), cs_grpc.CloudStorageStub(ch)
    for path in (root / "escape.txt", root / "escape-dir" / "passwords.txt", root / ".." / "host"):
        err = rpc_error(lambda: core.DebugModel(gw_pb.DebugModelRequest(name="m", data_path=str(path))))
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED, err.details()
    # a folder upload walks the folder: the link inside it is refused, not followed
    err = rpc_error(lambda: cs.StartUpload(cs_pb.UploadRequest(paths=[str(root)], destination=f"file://{root}/out")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED and "escape" in err.details()
    assert not (root / "out").exists()
    assert_no_leak(gw, err.details())


def test_links_in_a_named_folder_do_not_lead_out(rooted, host):
    """HF import of a local folder and LoadDataset of a folder read every file in it: a link
    among them leading out of the folder fails the job (PERMISSION_DENIED) before it is read."""
    gw, root = rooted
    gw.app.registry.install("huggingface-integration")
    model, data = root / "model", root / "ds"
    model.mkdir()
    (model / "config.json").write_text('{"architectures": ["LlamaForCausalLM"], "model_type": "llama"}')
    os.symlink(host.root / "notes" / "passwords.txt", model / "tokenizer.json")
    data.mkdir()
    (data / "a.txt").write_text("fine text\n")
    os.symlink(host.root / "notes" / "passwords.txt", data / "b.txt")
    before = host.snapshot(gw.settings.home / "models", gw.settings.home / "datasets")
    ch = user_channel(gw)
    hf = hf_grpc.HuggingFaceStub(ch)
    starts = [lambda: hf.StartImportModel(hf_pb.ImportModelRequest(source=str(model), name="linked"), timeout=60),
              lambda: hf.StartLoadDataset(hf_pb.LoadDatasetRequest(source=str(data), name="linked", format="text"),
                                          timeout=60)]
    for start in starts:
        done = wait_job(ch, start().id, timeout=120)
        assert done.state == job_pb2.JOB_STATE_FAILED and done.error.code == "PERMISSION_DENIED", done
        assert "link leading out" in done.error.message
        assert_no_leak(gw, done.error.message, str(done.result))
    assert host.snapshot(gw.settings.home / "models", gw.settings.home / "datasets") == before


def test_a_data_root_is_usable(rooted):
    """What the operator allowed works: a file in the root uploads to a folder in the root."""
    gw, root = rooted
    (root / "escape.txt").unlink()
    (root / "escape-dir").unlink()
    ch = user_channel(gw)
    cs = cs_grpc.CloudStorageStub(ch)
    job = cs.StartUpload(cs_pb.UploadRequest(paths=[str(root / "corpus.txt")], destination=f"file://{root}/out"),
                         timeout=30)
    done = wait_job(ch, job.id, timeout=60)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done
    assert (root / "out" / "corpus.txt").read_text() == (root / "corpus.txt").read_text()


def test_policy_units(tmp_path):
    """The rules themselves, without a gateway."""
    home = tmp_path / "home"
    (home / "models" / "m").mkdir(parents=True)
    (home / "exports").mkdir()
    (home / "gateway").mkdir()
    root = tmp_path / "root"
    root.mkdir()
    policy = PathPolicy.create(home, [str(root)], [str(tmp_path / ".home-secrets")])
    assert policy.allows(str(root / "a.txt"))
    assert policy.allows(str(home / "models" / "m" / "config.json"))
    assert not policy.allows(str(home / "models" / "m"), write=True)  # entries are written by name only
    assert policy.allows(str(home / "exports" / "x"), write=True)
    assert not policy.allows(str(home / "gateway" / "plugins.json"))
    assert not policy.allows(str(home))
    assert not policy.allows(str(tmp_path / ".home-secrets" / "token"))
    assert not policy.allows(str(tmp_path / "rootless"))  # a sibling sharing the prefix "root"
    assert not policy.allows(str(root) + "less")
    # a root that holds the store does not open the store's own state, nor the secrets beside it
    wide = PathPolicy.create(home, [str(tmp_path)], [str(tmp_path / ".home-secrets")])
    assert wide.allows(str(tmp_path / "corpus.txt")) and wide.allows(str(home / "datasets" / "d"))
    assert not wide.allows(str(home / "gateway" / "plugins.json"))
    assert not wide.allows(str(home / "logs" / "x.log"))
    assert not wide.allows(str(tmp_path / ".home-secrets" / "admin_token"))
    closed = PathPolicy.create(home)
    assert not closed.allows(str(root / "a.txt"))
    # mounted secrets and the kernel's views stay closed even under a root of "/"
    (root / "mounted").mkdir()
    env = {"APT_DATA_ROOTS": "/", "APT_TOKEN_FILE": str(root / "mounted" / "token"),
           "CLOUD_STORAGE_SECRETS_DIR": str(root / "cloud"), "AWS_SHARED_CREDENTIALS_FILE": str(root / "aws")}
    everything = PathPolicy.from_env(home, env)
    assert everything.allows(str(root / "a.txt"))
    for secret in (root / "mounted" / "token", root / "cloud" / "key", root / "aws", Path("/proc/self/environ"),
                   Path("/sys/kernel"), Path("/dev/mem")):
        assert not everything.allows(str(secret)), secret
    assert SECRET  # the planted secret exists for the battery above
