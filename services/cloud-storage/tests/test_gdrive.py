"""Google Drive: the backend against LocalGDriveApiServer (a local server implementing the subset
of the Drive v3 API the backend uses): round trip, resumable upload resumed after a cancel,
md5 and sha256 checks, credentials, quota, the endpoint rule."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from apt_model import errors
from apt_storage.backends import open_backend
from apt_storage.backends.base import UploadItem
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.listing import list_backups
from apt_storage.progress import TransferProgress
from apt_storage.restore import run_restore
from apt_storage.retry import RetryPolicy
from apt_storage.specs import BackupSpec, RestoreSpec, UploadSpec, transfer_options
from apt_model.testing import JobRecorder
from apt_storage.testing import MiB, add_entry, dead_endpoint, random_bytes
from apt_storage.testing.gdrive_server import LocalGDriveApiServer
from apt_storage.upload import run_upload
from apt_storage.uri import parse

TOKEN = "ya29.test-access-token-not-to-be-shown"
PART = 5 * MiB
BIG = 2 * PART + MiB  # 3 chunks


@pytest.fixture
def drive():
    with LocalGDriveApiServer(TOKEN) as server:
        server.root = server.folder("backups")
        yield server


def _config(store, drive_url: str, **env):
    """The service as an operator sets it up: a token for the Drive endpoint it configured."""
    return StorageConfig.from_env(store.root, {"GDRIVE_ACCESS_TOKEN": TOKEN, "GDRIVE_ENDPOINT": drive_url,
                                               "CLOUD_STORAGE_SECRETS_DIR": "/nonexistent", **env})


def _spec(drive, tag="", concurrency=2, attempts=5, endpoint=""):
    options = dataclasses.replace(transfer_options(endpoint, part_size=PART, concurrency=concurrency),
                                  retry=RetryPolicy(attempts, 0.01))
    return BackupSpec("m1", "models", parse(f"gdrive://{drive.root}/apt"), tag, options)


def _restore_spec(drive, name="m1-copy", tag=""):
    return RestoreSpec(parse(f"gdrive://{drive.root}/apt"), "m1", tag, name, "", options=transfer_options())


def _chunk_starts(drive, total: int = BIG) -> list[int]:
    """Where each chunk PUT of the ``total``-byte file began (status queries, ``bytes */N``, left out)."""
    return [int(r.split(" ")[1].split("-")[0]) for m, r, n in drive.chunks
            if m == "PUT" and r.endswith(f"/{total}") and "*" not in r]


def test_round_trip_resume_after_cancel_sends_only_missing_chunks(drive, store):
    big = random_bytes(BIG, 7)
    add_entry(store, "m1", {"config.json": b"{}", "model.safetensors": big})

    def one_chunk_there() -> bool:
        return any(s.total == BIG and len(s.received) >= PART for s in drive.sessions.values())

    with pytest.raises(errors.Cancelled):
        run_backup(store, _config(store, drive.url), _spec(drive), JobRecorder(stop_when=one_chunk_there))
    assert _chunk_starts(drive) == [0]
    assert len(list((store.root / ".cloud-storage").iterdir())) == 1  # the session, kept service-side
    drive.chunks.clear()

    result = run_backup(store, _config(store, drive.url), _spec(drive), JobRecorder())
    assert result["resumed"] and _chunk_starts(drive) == [PART, 2 * PART]
    assert ("PUT", f"bytes */{BIG}", 0) in drive.chunks  # asked Drive what it holds first
    assert result["bytes_sent"] == BIG - PART and result["parts_skipped"] == 1
    assert list((store.root / ".cloud-storage").iterdir()) == []

    stored = drive.find(drive.root, f"apt/models/m1/{result['tag']}/files/model.safetensors")
    assert stored.data == big and stored.app_properties["sha256"]

    backend = open_backend(parse(f"gdrive://{drive.root}/apt"), transfer_options(),
                           _config(store, drive.url).credentials)
    [state] = list_backups(backend, parse(f"gdrive://{drive.root}/apt"))
    assert (state.name, state.tag, state.complete) == ("m1", result["tag"], True)

    out = run_restore(store, _config(store, drive.url), _restore_spec(drive), JobRecorder())
    assert out["tag"] == result["tag"] and out["verified"]
    assert (store.model("m1-copy").path / "model.safetensors").read_bytes() == big

    again = run_backup(store, _config(store, drive.url), _spec(drive, tag="v2"), JobRecorder())
    assert again["bytes_sent"] > 0 and len(drive.files) > 0  # a new tag uploads again, no duplicates
    assert sum(f.name == "model.safetensors" for f in drive.files.values()) == 2


def test_short_acknowledgement_resends_from_the_acknowledged_byte(drive, store):
    big = random_bytes(BIG, 9)
    add_entry(store, "m1", {"model.safetensors": big})
    drive.ack_short = 1  # Drive keeps only half of the first chunk
    run_backup(store, _config(store, drive.url), _spec(drive, tag="s1"), JobRecorder())
    assert _chunk_starts(drive)[:2] == [0, PART // 2]
    assert drive.find(drive.root, "apt/models/m1/s1/files/model.safetensors").data == big


def test_tampered_object_is_data_loss_by_md5(drive, store):
    add_entry(store, "m1", {"model.safetensors": random_bytes(MiB, 8)})
    run_backup(store, _config(store, drive.url), _spec(drive, tag="v1"), JobRecorder())
    f = drive.find(drive.root, "apt/models/m1/v1/files/model.safetensors")
    f.data = f.data[:-1] + bytes([f.data[-1] ^ 1])  # one flipped bit at rest, md5 unchanged
    with pytest.raises(errors.DataLoss, match="md5 Drive recorded"):
        run_restore(store, _config(store, drive.url), _restore_spec(drive, tag="v1"), JobRecorder())
    assert not store.exists("models", "m1-copy")


def test_replaced_object_is_data_loss_by_the_manifest_sha256(drive, store):
    add_entry(store, "m1", {"model.safetensors": random_bytes(MiB, 8)})
    run_backup(store, _config(store, drive.url), _spec(drive, tag="v1"), JobRecorder())
    f = drive.find(drive.root, "apt/models/m1/v1/files/model.safetensors")
    f.data = random_bytes(MiB, 10)
    f.md5 = hashlib.md5(f.data).hexdigest()  # a consistent new version: only sha256 can tell
    with pytest.raises(errors.DataLoss, match="recorded sha256"):
        run_restore(store, _config(store, drive.url), _restore_spec(drive, tag="v1"), JobRecorder())


def test_changed_store_file_never_completes_an_upload(drive, store):
    add_entry(store, "m1", {"model.safetensors": random_bytes(BIG, 5)})
    (store.model("m1").path / "model.safetensors").write_bytes(random_bytes(BIG, 6))
    with pytest.raises(errors.DataLoss, match="changed since the store recorded it"):
        run_backup(store, _config(store, drive.url), _spec(drive, tag="v1"), JobRecorder())
    assert drive.find(drive.root, "apt/models/m1/v1/files/model.safetensors") is None
    assert drive.find(drive.root, "apt/models/m1/v1/manifest.json") is None and not drive.sessions


def test_upload_damaged_on_the_way_is_caught_by_drives_md5_and_removed(drive, store):
    add_entry(store, "m1", {"model.safetensors": random_bytes(PART + MiB, 4)})
    backend = open_backend(parse(f"gdrive://{drive.root}/apt"), transfer_options(part_size=PART),
                           _config(store, drive.url).credentials)

    path = store.model("m1").path / "model.safetensors"
    item = UploadItem("apt/x/model.safetensors", path, path.stat().st_size,
                      store.model("m1").meta["files"]["model.safetensors"]["sha256"])
    drive.flip_next_upload = True
    with pytest.raises(errors.DataLoss, match="Drive's md5"):
        backend.upload([item], TransferProgress(JobRecorder(), item.size, "upload"))
    assert drive.find(drive.root, "apt/x/model.safetensors") is None


def test_bad_token_is_permission_denied_naming_the_variable(drive, store):
    add_entry(store, "m1", {"a.bin": b"x"})
    with pytest.raises(errors.PermissionDenied) as info:
        run_backup(store, _config(store, drive.url, GDRIVE_ACCESS_TOKEN="ya29.wrong-token-value"),
                   _spec(drive), JobRecorder())
    assert "GDRIVE_ACCESS_TOKEN" in info.value.message and "wrong-token" not in info.value.message


def test_missing_credentials_say_which_variables(drive, store):
    add_entry(store, "m1", {"a.bin": b"x"})
    config = StorageConfig.from_env(store.root, {"CLOUD_STORAGE_SECRETS_DIR": "/nonexistent",
                                                 "GDRIVE_ENDPOINT": drive.url})
    with pytest.raises(errors.PermissionDenied, match="GOOGLE_APPLICATION_CREDENTIALS or GDRIVE_ACCESS_TOKEN"):
        run_backup(store, config, _spec(drive), JobRecorder())


def _service_account(path, token_uri: str) -> bytes:
    """A service-account JSON file with a fresh RSA key; returns the public key (PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    path.write_text(json.dumps({"type": "service_account", "project_id": "p", "private_key_id": "k1",
                                "private_key": pem, "client_email": "backup@p.iam.gserviceaccount.com",
                                "client_id": "1", "token_uri": token_uri}))
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def test_service_account_file_is_exchanged_for_a_token(drive, store, tmp_path):
    creds = tmp_path / "sa.json"
    drive.signer_pem = _service_account(creds, f"{drive.url}/token")
    add_entry(store, "m1", {"a.bin": b"abc"})
    env = {"GDRIVE_ENDPOINT": drive.url, "CLOUD_STORAGE_SECRETS_DIR": "/nonexistent",
           "GOOGLE_APPLICATION_CREDENTIALS": str(creds)}
    run_backup(store, StorageConfig.from_env(store.root, env), _spec(drive, tag="a1"), JobRecorder())
    assert drive.find(drive.root, "apt/models/m1/a1/manifest.json") is not None
    assert ("POST", "/token") in drive.requests

    _service_account(creds, f"{drive.url}/token")  # another key: the grant is refused
    with pytest.raises(errors.PermissionDenied, match="GOOGLE_APPLICATION_CREDENTIALS") as info:
        run_backup(store, StorageConfig.from_env(store.root, env), _spec(drive, tag="a2"), JobRecorder())
    assert "PRIVATE KEY" not in info.value.message and str(creds) not in info.value.message


def test_quota_exceeded_is_resource_exhausted(store):
    with LocalGDriveApiServer(TOKEN, quota_bytes=MiB) as small:
        small.root = small.folder("backups")
        add_entry(store, "m1", {"model.safetensors": random_bytes(2 * MiB, 3)})
        with pytest.raises(errors.ResourceExhausted, match="quota"):
            run_backup(store, _config(store, small.url), _spec(small), JobRecorder())


def test_missing_folder_and_unreachable(drive, store):
    add_entry(store, "m1", {"a.bin": b"x"})
    spec = dataclasses.replace(_spec(drive), destination=parse("gdrive://no-such-folder/apt"))
    with pytest.raises(errors.NotFound, match="folder id"):
        run_backup(store, _config(store, drive.url), spec, JobRecorder())
    dead = dead_endpoint()
    with pytest.raises(errors.Unavailable, match="unreachable"):
        run_backup(store, _config(store, dead), _spec(drive, attempts=2), JobRecorder())


def test_transient_chunk_errors_are_retried_from_what_drive_holds(drive, store):
    big = random_bytes(PART + MiB, 9)
    add_entry(store, "m1", {"model.safetensors": big})
    drive.fail_next_chunks = 2
    run_backup(store, _config(store, drive.url), _spec(drive, tag="r1"), JobRecorder())
    assert drive.find(drive.root, "apt/models/m1/r1/files/model.safetensors").data == big
    drive.fail_next_chunks = 10  # more failures than tries: UNAVAILABLE, not a hang
    with pytest.raises(errors.Unavailable, match="503"):
        run_backup(store, _config(store, drive.url), _spec(drive, tag="r2", attempts=3), JobRecorder())


def test_caller_picked_drive_endpoint_outside_the_allowed_list_is_refused(drive, store):
    """Attack: a caller names its own Drive endpoint to collect the service's token."""
    add_entry(store, "m1", {"a.bin": b"x"})
    with LocalGDriveApiServer(token="") as attacker:
        config = _config(store, drive.url)  # APT_ALLOWED_ENDPOINTS unset
        with pytest.raises(errors.PermissionDenied, match="APT_ALLOWED_ENDPOINTS"):
            config.check_endpoint(parse(f"gdrive://{drive.root}/apt"), transfer_options(attacker.url))
        with pytest.raises(errors.PermissionDenied, match="APT_ALLOWED_ENDPOINTS"):
            run_backup(store, config, _spec(drive, endpoint=attacker.url), JobRecorder())
        assert attacker.requests == []
        # allowed by the operator: requests go there, but without the token
        allowed = _config(store, drive.url, APT_ALLOWED_ENDPOINTS=attacker.url)
        attacker.root = attacker.folder("x")
        run_upload(allowed, UploadSpec((), parse(f"gdrive://{attacker.root}/up"),
                                       transfer_options(attacker.url)), JobRecorder())
        assert attacker.requests  # it was reached...
        assert not any(TOKEN in str(h) for h in attacker.seen_auth)  # ...with no credentials


def test_drive_uris():
    d = parse("gdrive://1AbC-def_GHIjkl/team/apt/")
    assert (d.scheme, d.container, d.prefix) == ("gdrive", "1AbC-def_GHIjkl", "team/apt")
    assert str(d) == "gdrive://1AbC-def_GHIjkl/team/apt"
    with pytest.raises(errors.InvalidArgument, match="Drive folder id"):
        parse("gdrive://bad.id/x")
