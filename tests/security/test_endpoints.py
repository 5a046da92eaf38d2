"""Attack: make the platform call a URL the caller chose, and collect its credentials there.

A local HTTP server stands in for the attacker's endpoint and records every request it gets.
With the default settings (APT_ALLOWED_ENDPOINTS empty) every caller-picked endpoint is
refused at the Start call and the recorder hears nothing. With the endpoint allowed by the
operator, calls reach it, but without the credentials the service holds for its configured
endpoints: they are sent only where they are configured.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest

from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as cs_pb
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc as cs_grpc
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as ol_pb
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc as ol_grpc
from apt_model.client import error_details
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.runtime.testing import wait_job
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from apt_model.trust import EndpointPolicy
from apt_model import errors
from gateway.testing import start_gateway, stop_gateway

from .conftest import Host, assert_no_leak, rpc_error, user_channel

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIDPLANTEDKEYID0001", "AWS_SECRET_ACCESS_KEY": "planted-aws-secret-0001",
               "HF_TOKEN": "hf_planted_token_0001", "OSS_ACCESS_KEY_ID": "oss-planted-id-0001",
               "OSS_ACCESS_KEY_SECRET": "oss-planted-secret-0001", "MODELSCOPE_API_TOKEN": "ms-planted-token-0001"}


class Recorder(ThreadingHTTPServer):
    """Answers 403 to everything and keeps each request's line, headers and body."""

    def __init__(self):
        self.seen: list[str] = []

        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorder.seen.append(f"{self.requestline}\n{self.headers}\n{body.decode('latin-1')}")
                self.send_response(403)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _any

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()


@pytest.fixture
def recorder():
    server = Recorder()
    yield server
    server.shutdown()


def _caller_endpoint_calls(ch, url: str):
    cs, ol = cs_grpc.CloudStorageStub(ch), ol_grpc.OllamaExportStub(ch)
    return {
        "CloudStorage.StartBackup.endpoint_url": lambda: cs.StartBackup(
            cs_pb.BackupRequest(name="m", destination="s3://bucket/x", endpoint_url=url), timeout=30),
        "CloudStorage.StartUpload.endpoint_url": lambda: cs.StartUpload(
            cs_pb.UploadRequest(paths=["models"], destination="hf://org/repo", endpoint_url=url), timeout=30),
        "CloudStorage.StartRestore.endpoint_url": lambda: cs.StartRestore(
            cs_pb.RestoreRequest(source="oss://bucket/x", endpoint_url=url), timeout=30),
        "CloudStorage.ListBackups.endpoint_url": lambda: cs.ListBackups(
            cs_pb.ListBackupsRequest(destination="modelscope://org/repo", endpoint_url=url), timeout=30),
        "OllamaExport.StartExport.ollama_url": lambda: ol.StartExport(
            ol_pb.ExportRequest(name="m", ollama_url=url), timeout=30),
    }


@pytest.fixture
def plugins_with_credentials(monkeypatch):
    """Install hook: cloud-storage and ollama-export with cloud credentials in their environment."""
    for k, v in CREDENTIALS.items():
        monkeypatch.setenv(k, v)

    def install(gw):
        for name in ("cloud-storage", "ollama-export"):
            gw.app.registry.install(name)
        return gw
    return install


def test_caller_endpoints_are_refused_by_default(tmp_path, recorder, plugins_with_credentials):
    gw = plugins_with_credentials(start_gateway(tmp_path / "home"))
    try:
        store = Host(tmp_path / "home" / "models")  # the entries (and exports) the calls could write
        before = store.snapshot(tmp_path / "home" / "datasets", tmp_path / "home" / "exports")
        seen = []
        for field, call in _caller_endpoint_calls(user_channel(gw), recorder.url).items():
            err = rpc_error(call)
            assert err.code() == grpc.StatusCode.PERMISSION_DENIED, f"{field}: {err.code()} {err.details()}"
            assert "APT_ALLOWED_ENDPOINTS" in err.details(), err.details()
            seen.append(err.details())
        assert recorder.seen == []
        assert_no_leak(gw, *seen)
        assert store.snapshot(tmp_path / "home" / "datasets", tmp_path / "home" / "exports") == before
    finally:
        stop_gateway(gw)


def test_a_region_cannot_steer_the_endpoint(tmp_path, recorder, plugins_with_credentials):
    """OSS and S3 build their host from the region: a region that is not a region name is
    INVALID_ARGUMENT naming the field, before anything is called (the recorder hears nothing)."""
    gw = plugins_with_credentials(start_gateway(tmp_path / "home"))
    try:
        cs = cs_grpc.CloudStorageStub(user_channel(gw))
        host = recorder.url.removeprefix("http://")
        for dest in ("oss://bucket/x", "s3://bucket/x"):
            for region in (f"x.{host}/", f"{host}#", "cn-hangzhou.evil.example"):
                err = rpc_error(lambda: cs.ListBackups(
                    cs_pb.ListBackupsRequest(destination=dest, region=region), timeout=30))
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (dest, region, err.details())
                assert [f for f, _ in error_details(err).fields] == ["region"]
        assert recorder.seen == []
    finally:
        stop_gateway(gw)


def test_credentials_go_only_to_their_endpoint(tmp_path, recorder, plugins_with_credentials):
    """An allowed endpoint is called, but with none of the service's credentials."""
    gw = plugins_with_credentials(start_gateway(tmp_path / "home", allowed_endpoints=(recorder.url,)))
    try:
        cs = cs_grpc.CloudStorageStub(user_channel(gw))
        answers = []
        for dest in ("s3://bucket/x", "oss://bucket/x", "hf://org/repo", "modelscope://org/repo"):
            err = rpc_error(lambda: cs.ListBackups(
                cs_pb.ListBackupsRequest(destination=dest, endpoint_url=recorder.url), timeout=60))
            assert err.code() != grpc.StatusCode.OK
            answers.append(err.details())
        # the transfer jobs open the same backends: backup, upload and restore through S3 and OSS
        make_tiny_model(Store(gw.settings.home), "m", vocab_size=320)
        ch = user_channel(gw)
        heard_before = len(recorder.seen)
        for dest in ("s3://bucket/x", "oss://bucket/x"):
            for start in (lambda: cs.StartBackup(cs_pb.BackupRequest(name="m", destination=dest,
                                                                    endpoint_url=recorder.url), timeout=60),
                          lambda: cs.StartUpload(cs_pb.UploadRequest(
                              paths=[str(Store(gw.settings.home).model("m").path / "config.json")],
                              destination=dest, endpoint_url=recorder.url), timeout=60),
                          lambda: cs.StartRestore(cs_pb.RestoreRequest(source=dest, name="back",
                                                                       endpoint_url=recorder.url), timeout=60)):
                done = wait_job(ch, start().id, timeout=120)
                assert done.state == job_pb2.JOB_STATE_FAILED, done  # the recorder is no bucket
                answers.append(done.error.message)
        assert len(recorder.seen) > heard_before, "the jobs never called the allowed endpoint"
        assert recorder.seen, "the allowed endpoint was never called: the test proves nothing"
        heard = "\n".join(recorder.seen)
        for name, value in CREDENTIALS.items():
            if name.endswith("_ID"):
                continue  # ids are not secrets, but none should be there either
            assert value not in heard, f"{name} was sent to a caller-picked endpoint"
        assert CREDENTIALS["AWS_ACCESS_KEY_ID"] not in heard and "Authorization: AWS4" not in heard
        for text in answers:
            for value in CREDENTIALS.values():
                assert value not in text
        assert_no_leak(gw, *answers)
    finally:
        stop_gateway(gw)


def test_endpoint_policy_units():
    policy = EndpointPolicy(("https://minio.internal:9000/base", "http://127.0.0.1:8080"))
    assert policy.check("https://minio.internal:9000/base/bucket", "u")
    assert policy.check("https://MINIO.internal:9000/base", "u")
    assert policy.check("http://127.0.0.1:8080/", "u")
    for bad in ("https://minio.internal:9001/base", "http://minio.internal:9000/base", "https://minio.internal/base",
                "https://minio.internal:9000/basement", "https://minio.internal.evil:9000/base",
                "http://127.0.0.1:8081", "http://localhost:8080"):
        with pytest.raises(errors.PermissionDenied):
            policy.check(bad, "u")
    for malformed in ("file:///etc/passwd", "gopher://x", "http://user:pw@127.0.0.1:8080", "not a url"):
        with pytest.raises(errors.InvalidArgument):
            policy.check(malformed, "u")
    with pytest.raises(errors.PermissionDenied, match="none are set"):
        EndpointPolicy().check("https://example.com", "u")
