"""Fixtures: a real S3-protocol server (moto, server mode) on loopback, store entries, job contexts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import boto3
import pytest
import requests

from apt_storage.testing import S3_ENV


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server on a free loopback port, with its request recorder writing to a temp file."""
    from moto.moto_api import recorder
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    Path(recorder._location).unlink(missing_ok=True)


@pytest.fixture
def s3(moto_server, tmp_path, monkeypatch):
    """(endpoint, boto3 client, environment for the service) against a reset server."""
    from moto.moto_api import recorder

    monkeypatch.setattr(recorder, "_location", str(tmp_path / "moto-recording.jsonl"))
    # moto's recorder appends one JSON line per request without a lock, so parallel part
    # uploads interleave their lines; serialise it (the server itself is untouched)
    lock = threading.Lock()
    unlocked = recorder._record_request

    def record_serially(*args, **kwargs):
        with lock:
            return unlocked(*args, **kwargs)

    monkeypatch.setattr(recorder, "_record_request", record_serially)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    client = boto3.client("s3", endpoint_url=moto_server, region_name="us-east-1",
                          aws_access_key_id=S3_ENV["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=S3_ENV["AWS_SECRET_ACCESS_KEY"])
    client.create_bucket(Bucket="backups")
    # the service as an operator sets it up: the keys are for this endpoint
    yield moto_server, client, {**S3_ENV, "AWS_ENDPOINT_URL": moto_server}
    client.close()


@pytest.fixture
def no_secrets_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUD_STORAGE_SECRETS_DIR", str(tmp_path / "no-secrets"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL",
                "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "HF_TOKEN", "MODELSCOPE_API_TOKEN",
                "GOOGLE_APPLICATION_CREDENTIALS", "GDRIVE_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return os.environ
