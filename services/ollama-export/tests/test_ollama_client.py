"""The Ollama REST client against LocalOllamaApiServer (conftest): blobs and create."""

from __future__ import annotations

import hashlib
import socket

import pytest

from apt_model import errors

from apt_ollama.ollama_client import OllamaClient, check_model_name, check_url


def _gguf_file(tmp_path, payload: bytes = b"GGUF" + bytes(1000)):
    path = tmp_path / "model.gguf"
    path.write_bytes(payload)
    return path, "sha256:" + hashlib.sha256(payload).hexdigest()


def test_blob_upload_and_create(ollama_server, tmp_path):
    path, digest = _gguf_file(tmp_path)
    client = OllamaClient(ollama_server.url)
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
        OllamaClient(ollama_server.url).push_blob(path, wrong)
    assert wrong not in ollama_server.blobs


def test_create_with_a_missing_blob_fails(ollama_server):
    client = OllamaClient(ollama_server.url)
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
