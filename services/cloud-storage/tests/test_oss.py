"""OSS: the real oss2 client against LocalOssApiServer (a local server implementing the subset of
the OSS HTTP API the backend uses): round trip, multipart resume, signatures, errors."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import pytest

from apt_model import errors
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.restore import run_restore
from apt_storage.retry import RetryPolicy
from apt_storage.specs import BackupSpec, RestoreSpec, transfer_options
from apt_model.testing import JobRecorder
from apt_storage.testing import MiB, add_entry, dead_endpoint, random_bytes
from apt_storage.testing.oss_server import LocalOssApiServer
from apt_storage.uri import parse

KEY_ID, SECRET = "LTAI-test-key-id", "oss-secret-not-to-be-shown"
PART = 5 * MiB
BIG = 2 * PART + MiB  # 3 parts


@pytest.fixture
def oss():
    with LocalOssApiServer(KEY_ID, SECRET, buckets=["models-bak"]) as server:
        yield server


def _config(store, endpoint: str, key_id=KEY_ID, secret=SECRET):
    """The service as an operator sets it up: credentials for the endpoint they belong to."""
    return StorageConfig.from_env(store.root, {"OSS_ACCESS_KEY_ID": key_id, "OSS_ACCESS_KEY_SECRET": secret,
                                               "CLOUD_STORAGE_SECRETS_DIR": "/nonexistent", "OSS_ENDPOINT": endpoint})


def _spec(oss_url, uri="oss://models-bak/apt", tag="", concurrency=2, attempts=5):
    options = dataclasses.replace(transfer_options(oss_url, part_size=PART, concurrency=concurrency),
                                  retry=RetryPolicy(attempts, 0.01))
    return BackupSpec("m1", "models", parse(uri), tag, options)


def _parts(requests_seen) -> list[int]:
    out = []
    for method, path in requests_seen:
        q = parse_qs(urlsplit(path).query)
        if method == "PUT" and "partNumber" in q:
            out.append(int(q["partNumber"][0]))
    return sorted(out)


def test_round_trip_and_resume(oss, store):
    big = random_bytes(BIG, 7)
    add_entry(store, "m1", {"config.json": b"{}", "model.safetensors": big})

    def one_part_there() -> bool:
        return any(len(u.parts) >= 1 for u in oss.uploads.values())

    with pytest.raises(errors.Cancelled):
        run_backup(store, _config(store, oss.url), _spec(oss.url, concurrency=1),
                   JobRecorder(stop_when=one_part_there))
    assert _parts(oss.requests) == [1]
    oss.requests.clear()

    result = run_backup(store, _config(store, oss.url), _spec(oss.url), JobRecorder())
    assert result["resumed"] and _parts(oss.requests) == [2, 3]
    assert result["bytes_sent"] == BIG - PART and result["parts_skipped"] == 1

    obj = oss.buckets["models-bak"][f"apt/models/m1/{result['tag']}/files/model.safetensors"]
    assert obj.data == big and obj.etag.endswith("-3")

    spec = RestoreSpec(parse("oss://models-bak/apt"), "", "", "m1-copy", "",
                       options=transfer_options(oss.url))
    out = run_restore(store, _config(store, oss.url), spec, JobRecorder())
    assert out["tag"] == result["tag"]
    assert (store.model("m1-copy").path / "model.safetensors").read_bytes() == big


def test_corrupted_object_is_data_loss(oss, store):
    add_entry(store, "m1", {"model.safetensors": random_bytes(MiB, 8)})
    run_backup(store, _config(store, oss.url), _spec(oss.url, tag="v1"), JobRecorder())
    obj = oss.buckets["models-bak"]["apt/models/m1/v1/files/model.safetensors"]
    obj.data = obj.data[:-1] + bytes([obj.data[-1] ^ 1])  # one flipped bit at rest
    spec = RestoreSpec(parse("oss://models-bak/apt"), "m1", "v1", "m1-copy", "", options=transfer_options(oss.url))
    with pytest.raises(errors.DataLoss):
        run_restore(store, _config(store, oss.url), spec, JobRecorder())
    assert not store.exists("models", "m1-copy")


def test_wrong_secret_is_permission_denied_and_redacted(oss, store):
    add_entry(store, "m1", {"a.bin": b"x"})
    with pytest.raises(errors.PermissionDenied) as info:
        run_backup(store, _config(store, oss.url, secret="a-wrong-secret-value"), _spec(oss.url), JobRecorder())
    assert "a-wrong-secret-value" not in info.value.message and KEY_ID not in info.value.message
    assert "OSS_ACCESS_KEY_SECRET" in info.value.message


def test_missing_bucket_and_unreachable(oss, store):
    add_entry(store, "m1", {"a.bin": b"x"})
    with pytest.raises(errors.NotFound, match="no-such-bucket"):
        run_backup(store, _config(store, oss.url), _spec(oss.url, uri="oss://no-such-bucket/apt"), JobRecorder())
    dead = dead_endpoint()
    with pytest.raises(errors.Unavailable, match="unreachable"):
        run_backup(store, _config(store, dead), _spec(dead, attempts=2), JobRecorder())


def test_missing_credentials_say_which_variables(store):
    add_entry(store, "m1", {"a.bin": b"x"})
    config = StorageConfig.from_env(store.root, {"CLOUD_STORAGE_SECRETS_DIR": "/nonexistent",
                                                 "OSS_ENDPOINT": "http://127.0.0.1:9"})
    with pytest.raises(errors.PermissionDenied, match="OSS_ACCESS_KEY_ID"):
        run_backup(store, config, _spec("http://127.0.0.1:9"), JobRecorder())


def test_transient_server_errors_are_retried_with_backoff(oss, store):
    big = random_bytes(PART + MiB, 9)
    add_entry(store, "m1", {"model.safetensors": big})
    oss.fail_next_parts = 2  # the first part is refused twice with 503
    result = run_backup(store, _config(store, oss.url), _spec(oss.url, concurrency=1, tag="r1"), JobRecorder())
    assert _parts(oss.requests) == [1, 1, 1, 2] and result["parts_sent"] == 2
    assert oss.buckets["models-bak"]["apt/models/m1/r1/files/model.safetensors"].data == big

    oss.fail_next_parts = 10  # more failures than tries: UNAVAILABLE, not a hang
    with pytest.raises(errors.Unavailable, match="503"):
        run_backup(store, _config(store, oss.url), _spec(oss.url, concurrency=1, tag="r2", attempts=3), JobRecorder())
