"""S3 against moto's real S3-protocol server on loopback: multipart, resume, checksums, errors."""

from __future__ import annotations

import dataclasses
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest

from apt_model import errors
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.listing import list_backups
from apt_storage.backends import open_backend
from apt_storage.restore import run_restore
from apt_storage.retry import RetryPolicy
from apt_storage.specs import BackupSpec, RestoreSpec, transfer_options
from apt_storage.uri import parse

from apt_model.testing import JobRecorder

from apt_storage.testing import MiB, S3Recorder, add_entry, dead_endpoint, random_bytes

PART = 5 * MiB
BIG = 3 * PART + 2 * MiB  # 4 parts: 5, 5, 5, 2 MiB


def _config(store, env):
    return StorageConfig.from_env(store.root, {**env, "CLOUD_STORAGE_SECRETS_DIR": "/nonexistent"})


def _backup(store, env, endpoint, name="m1", tag="", concurrency=2, ctx=None):
    spec = BackupSpec(name=name, kind="models", destination=parse("s3://backups/team/apt"), tag=tag,
                      options=transfer_options(endpoint, part_size=PART, concurrency=concurrency))
    return run_backup(store, _config(store, env), spec, ctx or JobRecorder())


def _restore(store, env, endpoint, name="", tag="", backup_name=""):
    spec = RestoreSpec(source=parse("s3://backups/team/apt"), backup_name=backup_name, tag=tag,
                       name=name, kind="", options=transfer_options(endpoint, concurrency=2))
    return run_restore(store, _config(store, env), spec, JobRecorder())


def _part_uploads(records: list[dict]) -> list[int]:
    """Part numbers of the UploadPart requests the server received."""
    out = []
    for r in records:
        query = parse_qs(urlsplit(r["url"]).query)
        if r["method"] == "PUT" and "partNumber" in query:
            out.append(int(query["partNumber"][0]))
    return sorted(out)


def test_backup_list_restore_round_trip_multipart(s3, store):
    endpoint, client, env = s3
    big = random_bytes(BIG, 1)
    add_entry(store, "m1", {"config.json": b'{"a": 1}', "model.safetensors": big,
                            "sub/tokenizer.json": b"{}"})
    rec = S3Recorder(endpoint)
    rec.start()
    ctx = JobRecorder()
    result = _backup(store, env, endpoint, tag="v1", ctx=ctx)
    assert _part_uploads(rec.stop()) == [1, 2, 3, 4]
    assert result["tag"] == "v1" and result["files"] == 3 and not result["resumed"]
    assert result["bytes_sent"] == BIG + 8 + 2 and result["parts_sent"] == 4
    assert any("bytes_per_s" in r and r.get("stage") == "upload" for r in ctx.reports)

    key = "team/apt/models/m1/v1/files/model.safetensors"
    head = client.head_object(Bucket="backups", Key=key)
    assert head["ContentLength"] == BIG and "-4" in head["ETag"]  # a 4-part multipart object
    assert head["Metadata"]["sha256"] == hashlib.sha256(big).hexdigest()

    backend = open_backend(parse("s3://backups/team/apt"), transfer_options(endpoint),
                           _config(store, env).credentials)
    states = list_backups(backend, parse("s3://backups/team/apt"))
    assert [(s.name, s.tag, s.complete) for s in states] == [("m1", "v1", True)]
    assert states[0].manifest.size_bytes == BIG + 10

    out = _restore(store, env, endpoint, name="m1-back")
    assert out["tag"] == "v1" and out["verified"]
    restored = store.model("m1-back")
    assert (restored.path / "model.safetensors").read_bytes() == big
    assert (restored.path / "sub/tokenizer.json").read_bytes() == b"{}"
    assert store.verify("models", "m1-back") == []
    assert restored.meta["restored_from"]["tag"] == "v1"
    assert restored.meta["metrics"] == {"loss": 1.5}


def test_interrupted_backup_resumes_sending_only_missing_parts(s3, store):
    endpoint, client, env = s3
    add_entry(store, "m1", {"config.json": b"{}", "model.safetensors": random_bytes(BIG, 2)})

    def two_parts_on_server() -> bool:  # the interruption lands once the server holds 2 parts
        uploads = client.list_multipart_uploads(Bucket="backups").get("Uploads", [])
        return any(len(client.list_parts(Bucket="backups", Key=u["Key"], UploadId=u["UploadId"])
                       .get("Parts", [])) >= 2 for u in uploads)

    rec = S3Recorder(endpoint)
    rec.start()
    with pytest.raises(errors.Cancelled):
        _backup(store, env, endpoint, concurrency=1, ctx=JobRecorder(stop_when=two_parts_on_server))
    assert _part_uploads(rec.stop()) == [1, 2]

    backend = open_backend(parse("s3://backups/team/apt"), transfer_options(endpoint),
                           _config(store, env).credentials)
    [state] = list_backups(backend, parse("s3://backups/team/apt"))
    assert not state.complete  # no manifest: visibly incomplete
    with pytest.raises(errors.FailedPrecondition, match="incomplete"):
        _restore(store, env, endpoint)

    rec.start()
    result = _backup(store, env, endpoint, concurrency=2)  # no tag: resumes the unfinished one
    records = rec.stop()
    assert _part_uploads(records) == [3, 4]
    assert result["resumed"] and result["tag"] == state.tag
    assert result["parts_skipped"] == 2 and result["bytes_skipped"] == 2 * PART + 2
    assert result["bytes_sent"] == BIG - 2 * PART
    assert not any(r["method"] == "PUT" and r["url"].endswith("config.json") for r in records)
    assert _restore(store, env, endpoint, name="m1-copy")["tag"] == state.tag
    assert store.verify("models", "m1-copy") == []


def test_checksum_mismatch_on_restore_is_data_loss_and_leaves_store_untouched(s3, store):
    endpoint, client, env = s3
    add_entry(store, "m1", {"config.json": b"{}", "model.safetensors": random_bytes(2 * MiB, 3)})
    _backup(store, env, endpoint, tag="v1")
    # the object changes behind the manifest's back (bit rot, a bad copy, tampering)
    client.put_object(Bucket="backups", Key="team/apt/models/m1/v1/files/model.safetensors",
                      Body=random_bytes(2 * MiB, 4))
    with pytest.raises(errors.DataLoss, match="model.safetensors"):
        _restore(store, env, endpoint, name="m1-bad")
    assert not store.exists("models", "m1-bad")
    assert [p.name for p in (store.root / "models").iterdir()] == ["m1"]  # no temporaries left


def test_changed_store_file_fails_backup_before_the_manifest(s3, store):
    endpoint, client, env = s3
    add_entry(store, "m1", {"model.safetensors": random_bytes(2 * MiB, 5)})
    (store.model("m1").path / "model.safetensors").write_bytes(random_bytes(2 * MiB, 6))
    with pytest.raises(errors.DataLoss, match="changed since the store recorded it"):
        _backup(store, env, endpoint, tag="v1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="backups").get("Contents", [])]
    assert not any(k.endswith("manifest.json") for k in keys)


def test_missing_bucket_is_not_found(s3, store):
    endpoint, client, env = s3
    add_entry(store, "m1", {"a.bin": b"x"})
    spec = BackupSpec("m1", "models", parse("s3://no-such-bucket/x"), "", transfer_options(endpoint))
    with pytest.raises(errors.NotFound, match="no-such-bucket"):
        run_backup(store, _config(store, env), spec, JobRecorder())


def test_wrong_credentials_are_permission_denied_without_the_secret(s3, store, monkeypatch):
    from moto import settings as moto_settings

    endpoint, client, env = s3
    add_entry(store, "m1", {"a.bin": b"x"})
    monkeypatch.setattr(moto_settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)  # the server checks keys now
    bad = {"AWS_ACCESS_KEY_ID": "AKIAWRONGWRONGWRONG1", "AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789",
           "AWS_ENDPOINT_URL": endpoint}
    spec = BackupSpec("m1", "models", parse("s3://backups/x"), "", transfer_options(endpoint))
    with pytest.raises(errors.PermissionDenied) as info:
        run_backup(store, _config(store, bad), spec, JobRecorder())
    assert "wrong-secret" not in info.value.message and "AKIAWRONG" not in info.value.message
    assert "AWS_SECRET_ACCESS_KEY" in info.value.message


def test_unreachable_endpoint_is_unavailable(store):
    add_entry(store, "m1", {"a.bin": b"x"})
    spec = BackupSpec("m1", "models", parse("s3://backups/x"), "",
                      transfer_options(dead_endpoint()))
    env = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s", "CLOUD_STORAGE_SECRETS_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": spec.options.endpoint_url}
    spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, retry=RetryPolicy(2, 0.01)))
    with pytest.raises(errors.Unavailable, match="unreachable"):
        run_backup(store, StorageConfig.from_env(store.root, env), spec, JobRecorder())
