"""file:// destinations on real folders, URI parsing, credentials and upload source checks."""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.gen.apt.plugins.cloud_storage.v1.cloud_storage_pb2 import UploadResult
from apt_model.runtime.results import to_message
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.credentials import CredentialSource
from apt_storage.restore import run_restore
from apt_storage.specs import BackupSpec, RestoreSpec, UploadSpec, transfer_options
from apt_model.testing import JobRecorder
from apt_storage.testing import MiB, add_entry, random_bytes
from apt_storage.upload import run_upload
from apt_storage.uri import parse


def _config(store, **env):
    """The service with the test's folder as the operator's data root (file:// destinations)."""
    env = {"CLOUD_STORAGE_SECRETS_DIR": "/nonexistent", "APT_DATA_ROOTS": str(store.root.parent), **env}
    return StorageConfig.from_env(store.root, env)


def test_parse_destinations():
    assert parse("s3://bucket/a/b/").key("x") == "a/b/x"
    assert parse("oss://my-bucket").key("x") == "x"
    d = parse("hf://owner/repo/sub/dir")
    assert (d.container, d.prefix) == ("owner/repo", "sub/dir")
    assert str(parse("file:///tmp//x/")) == "file:///tmp/x"
    assert parse("modelscope://org/model").container == "org/model"


@pytest.mark.parametrize("uri, match", [
    ("ftp://host/x", "supported: s3://bucket/prefix, oss://bucket/prefix, hf://"),
    ("/just/a/path", "not a URI"),
    ("s3://Bad_Bucket/x", "not a valid bucket"),
    ("s3://bucket/../etc", r"'\.\.' are not allowed"),
    ("file://relative/path", "three slashes"),
    ("hf://owner", "owner and repository"),
    ("s3://key:secret@bucket/x", "credentials do not belong"),
])
def test_bad_destinations_are_invalid_argument(uri, match):
    with pytest.raises(errors.InvalidArgument, match=match):
        parse(uri)


def test_transfer_option_limits():
    with pytest.raises(errors.InvalidArgument, match="5 MiB"):
        transfer_options(part_size=1024)
    with pytest.raises(errors.InvalidArgument, match="concurrency"):
        transfer_options(concurrency=1000)
    with pytest.raises(errors.InvalidArgument, match="http"):
        transfer_options(endpoint_url="ftp://x")


def test_local_backup_list_restore_and_resume(store, tmp_path):
    data = random_bytes(3 * MiB, 11)
    add_entry(store, "m1", {"config.json": b"{}", "model.safetensors": data, "nested/t.json": b"[]"})
    dest = parse(f"file://{tmp_path}/bk")
    spec = BackupSpec("m1", "models", dest, "", transfer_options())
    first = run_backup(store, _config(store), spec, JobRecorder())
    # an interrupted second backup: the manifest is gone, one file is half-copied
    second = run_backup(store, _config(store), spec, JobRecorder())
    assert second["tag"] != first["tag"] and not second["resumed"]
    base = tmp_path / "bk/models/m1" / second["tag"]
    (base / "manifest.json").unlink()
    (base / "files/model.safetensors").write_bytes(data[: MiB])
    third = run_backup(store, _config(store), spec, JobRecorder())
    assert third["resumed"] and third["tag"] == second["tag"]
    assert third["bytes_sent"] == len(data) and third["bytes_skipped"] == 2 + 2  # other files kept

    out = run_restore(store, _config(store), RestoreSpec(dest, "", "", "m2", "", False, transfer_options()),
                      JobRecorder())
    assert out["tag"] == third["tag"]
    assert (store.model("m2").path / "model.safetensors").read_bytes() == data
    with pytest.raises(errors.AlreadyExists):
        run_restore(store, _config(store), RestoreSpec(dest, "", "", "m2", "", False, transfer_options()),
                    JobRecorder())
    with pytest.raises(errors.NotFound, match="tagged 'nope'"):
        run_restore(store, _config(store), RestoreSpec(dest, "", "nope", "m3", "", False, transfer_options()),
                    JobRecorder())


def test_tampered_manifest_path_is_refused(store, tmp_path):
    add_entry(store, "m1", {"a.bin": b"abc"})
    dest = parse(f"file://{tmp_path}/bk")
    r = run_backup(store, _config(store), BackupSpec("m1", "models", dest, "v1", transfer_options()),
                   JobRecorder())
    manifest = tmp_path / "bk/models/m1/v1/manifest.json"
    manifest.write_text(manifest.read_text().replace('"a.bin"', '"../../escape.bin"'))
    with pytest.raises(errors.DataLoss, match="unsafe path"):
        run_restore(store, _config(store), RestoreSpec(dest, "", "v1", "m9", "", False, transfer_options()),
                    JobRecorder())
    assert r["tag"] == "v1" and not store.exists("models", "m9")


def test_duplicate_tag_and_unknown_model(store, tmp_path):
    add_entry(store, "m1", {"a.bin": b"abc"})
    dest = parse(f"file://{tmp_path}/bk")
    run_backup(store, _config(store), BackupSpec("m1", "models", dest, "v1", transfer_options()), JobRecorder())
    with pytest.raises(errors.AlreadyExists, match="tagged 'v1'"):
        run_backup(store, _config(store), BackupSpec("m1", "models", dest, "v1", transfer_options()),
                   JobRecorder())
    with pytest.raises(errors.NotFound, match="No model named 'ghost'"):
        run_backup(store, _config(store), BackupSpec("ghost", "models", dest, "", transfer_options()),
                   JobRecorder())


def test_local_roots_restrict_destinations_and_upload_sources(store, tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "notes.txt").write_text("hello")
    config = _config(store, APT_DATA_ROOTS=str(allowed))
    with pytest.raises(errors.PermissionDenied, match="APT_DATA_ROOTS"):
        run_upload(config, UploadSpec(("/etc/hostname",), parse(f"file://{allowed}/out")), JobRecorder())
    with pytest.raises(errors.PermissionDenied, match="outside the folders"):
        run_upload(config, UploadSpec((str(allowed / "notes.txt"),), parse(f"file://{tmp_path}/elsewhere")),
                   JobRecorder())
    out = run_upload(config, UploadSpec((str(allowed / "notes.txt"),), parse(f"file://{allowed}/out")),
                     JobRecorder())
    assert (allowed / "out/notes.txt").read_text() == "hello"
    assert out["uploaded"][0]["size"] == 5
    typed = to_message(UploadResult, out)  # what the job runtime does with it: it fits the contract
    assert typed.uploaded[0].size == 5 and typed.bytes_total == 5 and typed.destination.endswith("/out")


def test_credentials_from_secret_files(tmp_path):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "HF_TOKEN").write_text("hf_from_dir\n")
    (tmp_path / "aws").write_text("aws-secret-from-file")
    source = CredentialSource({"CLOUD_STORAGE_SECRETS_DIR": str(secrets),
                               "AWS_SECRET_ACCESS_KEY_FILE": str(tmp_path / "aws"),
                               "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE"})
    assert source.for_scheme("hf").get("HF_TOKEN") == "hf_from_dir"
    creds = source.for_scheme("s3")
    assert creds.get("AWS_SECRET_ACCESS_KEY") == "aws-secret-from-file"
    assert "aws-secret-from-file" not in repr(creds)
    assert creds.redact("key AKIAEXAMPLE secret aws-secret-from-file") == "key *** secret ***"
    with pytest.raises(errors.FailedPrecondition, match="HF_TOKEN_FILE"):
        CredentialSource({"HF_TOKEN_FILE": str(tmp_path / "missing")}).for_scheme("hf")


def test_service_imports_no_torch():
    """The image carries no torch: the server and every backend must import without it."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    code = ("import sys; import apt_storage.server, apt_storage.backends.s3, apt_storage.backends.oss, "
            "apt_storage.backends.hf, apt_storage.backends.modelscope, apt_storage.backends.local, "
            "apt_storage.backends.gdrive; "
            "bad = [m for m in ('torch', 'transformers') if m in sys.modules]; print(bad); sys.exit(bool(bad))")
    env = {"PYTHONPATH": f"{root}:{root / 'services' / 'cloud-storage'}", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_a_failed_download_takes_back_the_bytes_it_counted(tmp_path):
    """backends.base.write_chunks (the S3, OSS and Drive downloads): a retry starts the file again,
    so the progress of a download that broke off mid-way must not keep its bytes."""
    from apt_model.testing import JobRecorder
    from apt_storage.backends.base import write_chunks
    from apt_storage.progress import TransferProgress

    def broken():
        yield b"a" * 10
        yield b"b" * 5
        raise ConnectionError("reset by peer")

    progress = TransferProgress(JobRecorder(), 30, "download")
    seen = []
    with pytest.raises(ConnectionError):
        write_chunks(broken(), tmp_path / "f", progress, seen.append)
    assert progress.sent == 0 and seen == [b"a" * 10, b"b" * 5]
    write_chunks(iter([b"x" * 7, b"y" * 3]), tmp_path / "f", progress)
    assert progress.sent == 10 and (tmp_path / "f").read_bytes() == b"x" * 7 + b"y" * 3
