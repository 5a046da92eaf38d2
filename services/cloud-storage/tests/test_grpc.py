"""The real plugin server in-process on loopback: status codes of bad input, jobs end to end."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as pb
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store
from apt_storage.testing import MiB, add_entry, random_bytes

PLUGIN_DIR = Path(__file__).resolve().parents[1]
SECRET = "grpc-test-secret-value"


@pytest.fixture
def served(tmp_path, monkeypatch, s3):
    endpoint, client, env = s3
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("CLOUD_STORAGE_SECRETS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("APT_DATA_ROOTS", str(tmp_path / "local"))
    (tmp_path / "local").mkdir()
    home = tmp_path / "home"
    add_entry(Store(home), "m1", {"config.json": b"{}", "model.safetensors": random_bytes(6 * MiB, 21)})
    # the runtime's settings, as Settings.from_env reads them in a plugin process
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(tmp_path / "local"),)) as (channel, app):
        yield cloud_storage_pb2_grpc.CloudStorageStub(channel), channel, endpoint, tmp_path, app


def _code(call, request) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=30)
    return info.value.code(), info.value.details()


def test_backup_list_restore_through_grpc(served):
    stub, channel, endpoint, tmp, app = served
    job = stub.StartBackup(pb.BackupRequest(name="m1", destination="s3://backups/grpc", tag="v1",
                                            endpoint_url=endpoint, part_size=5 * MiB), timeout=30)
    assert (list(job.reads), list(job.writes)) == (["models/m1"], [])
    done = wait_job(channel, job.id, timeout=60)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
    assert done.result["tag"] == "v1" and done.result["parts_sent"] == 2
    backup = typed_result(done)  # Job.response: the declared BackupResult
    assert isinstance(backup, pb.BackupResult) and (backup.name, backup.tag, backup.files) == ("m1", "v1", 2)
    assert (backup.bytes_total, backup.bytes_sent, backup.parts_sent, backup.resumed) == (6 * MiB + 2,) * 2 + (2, False)
    assert done.metrics["bytes_total"] == 6 * MiB + 2 and "bytes_per_s" in done.metrics

    listed = stub.ListBackups(pb.ListBackupsRequest(destination="s3://backups/grpc", endpoint_url=endpoint),
                              timeout=30)
    [b] = listed.backups
    assert (b.name, b.kind, b.tag, b.complete, b.files, b.size_bytes) == ("m1", "model", "v1", True, 2, 6 * MiB + 2)
    assert b.created

    job = stub.StartRestore(pb.RestoreRequest(source="s3://backups/grpc", name="m1-back", endpoint_url=endpoint),
                            timeout=30)
    done = wait_job(channel, job.id, timeout=60)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error.message
    assert done.result["verified"] is True
    restore = typed_result(done)
    assert isinstance(restore, pb.RestoreResult) and restore.verified and restore.files == 2
    assert (restore.name, restore.kind, restore.backup_name, restore.tag) == ("m1-back", "model", "m1", "v1")
    # #24 item 6: the copy descends from the backed-up model, whose own lineage it keeps
    restored, original = app.store.model("m1-back").meta, app.store.model("m1").meta
    assert (restored["lineage"]["parent"], restored["lineage"]["operation"]) == ("m1", "restore")
    assert restored["lineage"]["parameters"]["tag"] == "v1"
    assert restored["original_lineage"] == original["lineage"]

    code, details = _code(stub.StartRestore, pb.RestoreRequest(source="s3://backups/grpc", name="m1-back",
                                                                endpoint_url=endpoint))
    assert code == grpc.StatusCode.ALREADY_EXISTS  # checked on the call, not as a failed job


def test_restore_onto_existing_name_is_already_exists(served):
    stub, channel, endpoint, tmp, app = served
    code, details = _code(stub.StartRestore, pb.RestoreRequest(source="s3://backups/x", name="m1"))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "--overwrite" in details


def test_bad_input_status_codes(served):
    stub, channel, endpoint, tmp, app = served
    code, details = _code(stub.StartBackup, pb.BackupRequest(name="m1", destination="gs://bucket/x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    for scheme in ("s3://", "oss://", "hf://", "modelscope://", "file://"):
        assert scheme in details
    code, _ = _code(stub.StartBackup, pb.BackupRequest(name="ghost", destination="s3://backups/x"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = _code(stub.StartBackup, pb.BackupRequest(name="m1", destination="s3://backups/x", part_size=1))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, _ = _code(stub.StartBackup, pb.BackupRequest(name="m1", destination="file:///etc/apt-backups"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = _code(stub.StartUpload, pb.UploadRequest(paths=["/etc/passwd"], destination=f"file://{tmp}/local/o"))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    code, _ = _code(stub.ListBackups, pb.ListBackupsRequest(destination="s3://missing-bucket/x",
                                                            endpoint_url=endpoint))
    assert code == grpc.StatusCode.NOT_FOUND


def test_failed_job_carries_data_loss(served):
    stub, channel, endpoint, tmp, app = served
    job = stub.StartBackup(pb.BackupRequest(name="m1", destination=f"file://{tmp}/local/bk", tag="t"), timeout=30)
    assert wait_job(channel, job.id, timeout=60).state == job_pb2.JOB_STATE_SUCCEEDED
    victim = tmp / "local/bk/models/m1/t/files/config.json"
    victim.write_bytes(b"{ }")
    job = stub.StartRestore(pb.RestoreRequest(source=f"file://{tmp}/local/bk", name="m2"), timeout=30)
    done = wait_job(channel, job.id, timeout=60)
    assert done.state == job_pb2.JOB_STATE_FAILED and done.error.code == "DATA_LOSS"
    assert "config.json" in done.error.message


def test_describe(served):
    stub, channel, endpoint, tmp, app = served
    d = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest(), timeout=10)
    assert d.name == "cloud-storage" and not d.wants_gpu
    assert {o.name for o in d.operations} == {"StartBackup", "StartRestore", "StartUpload", "ListBackups"}
