"""The Ollama REST client against LocalOllamaApiServer (conftest): blobs and create."""

from __future__ import annotations

import hashlib
import json
import socket
import threading

import pytest

from apt_model import errors

from apt_ollama.ollama_client import OllamaClient, check_model_name, check_url


# Every client here waits at most 10 s for an answer: a request whose body does not match its
# Content-Length leaves the local server waiting for the rest, and Ollama's default 600 s would
# hold a test (or a mutation run) that long.


def _gguf_file(tmp_path, payload: bytes = b"GGUF" + bytes(1000)):
    path = tmp_path / "model.gguf"
    path.write_bytes(payload)
    return path, "sha256:" + hashlib.sha256(payload).hexdigest()


def test_blob_upload_and_create(ollama_server, tmp_path):
    path, digest = _gguf_file(tmp_path)
    client = OllamaClient(ollama_server.url, timeout=10)
    assert client.has_blob(digest) is False
    sent = []
    client.push_blob(path, digest, sent.append)
    assert client.has_blob(digest) is True
    assert ollama_server.blobs[digest] == path.read_bytes() and sent[-1] == path.stat().st_size
    statuses = list(client.create("tiny:q8_0", {"model.gguf": digest}, template="T", system="S",
                                  parameters={"stop": ["<|im_end|>"], "num_ctx": 128}))
    assert statuses[0] == "parsing GGUF" and statuses[-1] == "success"
    req = ollama_server.creates[-1]
    assert req == {"model": "tiny:q8_0", "files": {"model.gguf": digest}, "stream": True, "template": "T",
                   "system": "S", "parameters": {"stop": ["<|im_end|>"], "num_ctx": 128}}


def test_digest_mismatch_is_data_loss(ollama_server, tmp_path):
    path, _ = _gguf_file(tmp_path)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(errors.DataLoss, match="rejected the upload"):
        OllamaClient(ollama_server.url, timeout=10).push_blob(path, wrong)
    assert wrong not in ollama_server.blobs


def test_create_with_a_missing_blob_fails(ollama_server):
    client = OllamaClient(ollama_server.url, timeout=10)
    with pytest.raises(errors.FailedPrecondition, match="not found"):
        list(client.create("tiny", {"model.gguf": "sha256:" + "1" * 64}, template=None, system=None, parameters={}))


def test_unreachable_server_is_unavailable():
    with socket.socket() as s:  # a port nobody listens on: bound, never listened
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(errors.Unavailable, match="ollama serve"):
            OllamaClient(f"http://127.0.0.1:{port}", timeout=5).has_blob("sha256:" + "2" * 64)


@pytest.mark.parametrize("url", ["ftp://x", "localhost:11434", ""])
def test_bad_url(url):
    with pytest.raises(errors.InvalidArgument, match="http://host:11434"):
        check_url(url)


@pytest.mark.parametrize("name", ["ok", "me/model:q8_0", "a.b-c_d:latest"])
def test_good_model_names(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", ["", "bad name", "-x", "a:b:c", "x/y/z"])
def test_bad_model_names(name):
    with pytest.raises(errors.InvalidArgument, match="Ollama model name"):
        check_model_name(name)


def test_each_request_says_what_its_body_is(ollama_server, tmp_path):
    path, digest = _gguf_file(tmp_path)
    client = OllamaClient(ollama_server.url, timeout=10)
    client.push_blob(path, digest)
    list(client.create("tiny", {"model.gguf": digest}, template=None, system=None, parameters={}))
    assert ollama_server.requests == [
        ("POST", f"/api/blobs/{digest}", "application/octet-stream", str(path.stat().st_size)),
        ("POST", "/api/create", "application/json", str(len(json.dumps(ollama_server.creates[-1]).encode())))]


def test_an_upload_reports_progress_per_mebibyte(ollama_server, tmp_path):
    path, digest = _gguf_file(tmp_path, b"GGUF" + bytes(5 * (1 << 19)))   # 2.5 MiB and 4 bytes
    sent = []
    OllamaClient(ollama_server.url, timeout=10).push_blob(path, digest, sent.append)
    assert sorted(set(sent)) == [1 << 20, 2 << 20, path.stat().st_size]


def test_a_blob_lookup_answered_with_an_error_is_unavailable(ollama_server):
    ollama_server.answers[("HEAD", "/api/blobs/")] = (500, b"")
    digest = "sha256:" + "3" * 64
    with pytest.raises(errors.Unavailable) as info:
        OllamaClient(ollama_server.url, timeout=10).has_blob(digest)
    assert info.value.message == f"Ollama answered 500 to HEAD /api/blobs/{digest}."


@pytest.mark.parametrize("code, body, error, message", [
    (400, b"", errors.DataLoss,
     "Ollama rejected the upload of model.gguf: digest mismatch. The file changed while uploading; export again."),
    (400, b"bad \xff digest " + b"x" * 400, errors.DataLoss,
     "Ollama rejected the upload of model.gguf: " + ("bad \ufffd digest " + "x" * 400)[:300] + ". The file "
     "changed while uploading; export again."),
    (507, b"disk full", errors.Unavailable, "Ollama answered 507 to the blob upload: disk full"),
    (202, b"", errors.Unavailable, "Ollama answered 202 to the blob upload."),
], ids=["mismatch-without-detail", "mismatch-with-long-detail", "server-error", "unexpected-success"])
def test_a_refused_upload_says_why(ollama_server, tmp_path, code, body, error, message):
    path, digest = _gguf_file(tmp_path)
    ollama_server.answers[("POST", "/api/blobs/")] = (code, body)
    with pytest.raises(error) as info:
        OllamaClient(ollama_server.url, timeout=10).push_blob(path, digest)
    assert info.value.message == message


def test_an_upload_answered_200_is_accepted(ollama_server, tmp_path):
    path, digest = _gguf_file(tmp_path)
    ollama_server.answers[("POST", "/api/blobs/")] = (200, b"")
    OllamaClient(ollama_server.url, timeout=10).push_blob(path, digest)


def test_a_refused_create_names_the_status_and_the_detail(ollama_server):
    ollama_server.answers[("POST", "/api/create")] = (500, b"out of \xff memory " + b"y" * 400)
    with pytest.raises(errors.FailedPrecondition) as info:
        list(OllamaClient(ollama_server.url, timeout=10).create("tiny", {}, template=None, system=None, parameters={}))
    assert info.value.message == "Ollama refused to create 'tiny' (500): " + ("out of \ufffd memory " + "y" * 400)[:300]


@pytest.mark.parametrize("lines, yielded, last", [
    ([], [], ""),
    ([b'{"status": "parsing GGUF"}\n', b'{"digest": "sha256:1", "completed": 5}\n'], ["parsing GGUF", ""], ""),
    ([b'{"status": "parsing GGUF"}\n', b"\n", b'{"status": "writing manifest"}\n'],
     ["parsing GGUF", "writing manifest"], "writing manifest"),
], ids=["empty", "last-line-without-status", "blank-line-then-no-success"])
def test_a_create_stream_that_ends_without_success_is_unavailable(ollama_server, lines, yielded, last):
    ollama_server.create_lines = lines
    got = []
    with pytest.raises(errors.Unavailable) as info:
        got.extend(OllamaClient(ollama_server.url, timeout=10).create("tiny", {}, template=None, system=None, parameters={}))
    assert got == yielded
    assert info.value.message == f"Ollama's create stream for 'tiny' ended without 'success' (last: {last!r})."


def test_a_blank_line_in_the_create_stream_is_skipped(ollama_server):
    ollama_server.create_lines = [b'{"status": "parsing GGUF"}\n', b"\n", b'{"status": "success"}\n']
    assert list(OllamaClient(ollama_server.url, timeout=10).create("tiny", {}, template=None, system=None,
                                                       parameters={})) == ["parsing GGUF", "success"]


def _server_that(behaviour: str):
    """A TCP port that accepts, then either hangs up without an answer ("closes") or never answers ("hangs")."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    held = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if behaviour == "closes":   # reads the request, answers nothing
                conn.recv(65536)
                conn.close()
            else:
                held.append(conn)

    threading.Thread(target=serve, daemon=True).start()
    return listener, held


def test_unreachable_says_where_and_why(ollama_server):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with pytest.raises(errors.Unavailable) as info:
            OllamaClient(f"http://127.0.0.1:{port}", timeout=5).has_blob("sha256:" + "2" * 64)
    assert info.value.message == (
        f"Cannot reach Ollama at http://127.0.0.1:{port} ([Errno 111] Connection refused). Start it with "
        "'ollama serve' or pass the right --ollama-url.")


def test_a_server_that_hangs_up_or_never_answers_is_unavailable_within_the_timeout():
    for behaviour, why in (("closes", "Remote end closed connection without response"), ("hangs", "timed out")):
        listener, held = _server_that(behaviour)
        port = listener.getsockname()[1]
        outcome = []
        caller = threading.Thread(target=lambda: outcome.append(_catch(
            lambda: OllamaClient(f"http://127.0.0.1:{port}", timeout=0.5).has_blob("sha256:" + "4" * 64))),
            daemon=True)
        caller.start()
        caller.join(10)
        listener.close()
        for conn in held:
            conn.close()
        assert outcome, f"{behaviour}: no answer within 10 s (the client's timeout is 0.5 s)"
        assert isinstance(outcome[0], errors.Unavailable)
        assert outcome[0].message == (f"Cannot reach Ollama at http://127.0.0.1:{port} ({why}). Start it with "
                                      "'ollama serve' or pass the right --ollama-url.")


def _catch(call):
    try:
        call()
    except Exception as exc:
        return exc
    return None
