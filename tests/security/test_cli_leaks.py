"""What the CLI gives away on the user's own machine (issue 15, item 8): the token in ``ps``,
files outside the folder a pull writes into, files outside the folder a push reads from."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from .conftest import SECRET, assert_no_leak, env_without_apt

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, home: Path, env: dict[str, str] | None = None, stdin: str | None = None,
        gateway: str = "") -> subprocess.CompletedProcess:
    """``python -m apt_model ARGS`` as a user runs it: no APT_* variables but those in ``env``."""
    where = ["--gateway", gateway] if gateway else []
    return subprocess.run([sys.executable, "-m", "apt_model", *args, *where, "--home", str(home)],
                          capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=180,
                          env={**env_without_apt(), "PYTHONPATH": str(ROOT), **(env or {})})


# -- the token stays out of argv -------------------------------------------------------------------

def test_token_from_a_file_or_stdin(attack_gateway, tmp_path):
    gw = attack_gateway
    nowhere = tmp_path / "no-home"  # no secrets folder beside it: only --token can authenticate
    token_file = tmp_path / "token"
    token_file.write_text(gw.settings.token + "\n")
    out = cli("status", "--json", "--token", f"@{token_file}", home=nowhere, gateway=gw.address)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["version"]
    out = cli("status", "--json", "--token", "-", home=nowhere, gateway=gw.address, stdin=gw.settings.token + "\n")
    assert out.returncode == 0, out.stderr
    # the value read is what is sent: a wrong token in the file is refused as a wrong token
    token_file.write_text("0" * 64)
    out = cli("status", "--token", f"@{token_file}", home=nowhere, gateway=gw.address)
    assert out.returncode == 6 and "UNAUTHENTICATED" in out.stderr
    assert_no_leak(gw, out.stdout, out.stderr)


@pytest.mark.parametrize("content, match", [("", "holds no token"), ("a b\n", "more than one token")])
def test_bad_token_files_are_usage_errors(tmp_path, content, match):
    token_file = tmp_path / "token"
    token_file.write_text(content)
    out = cli("status", "--token", f"@{token_file}", home=tmp_path, gateway="127.0.0.1:1")
    assert out.returncode == 2 and match in out.stderr and "Traceback" not in out.stderr
    out = cli("status", "--token", f"@{tmp_path / 'missing'}", home=tmp_path, gateway="127.0.0.1:1")
    assert out.returncode == 2 and "cannot read" in out.stderr


def test_default_token_comes_from_the_secrets_folder(attack_gateway, tmp_path):
    gw = attack_gateway
    secrets = tmp_path / "elsewhere"
    secrets.mkdir()
    (secrets / "token").write_text(gw.settings.token)
    nowhere = tmp_path / "no-home"
    out = cli("status", "--json", home=nowhere, gateway=gw.address, env={"APT_SECRETS_DIR": str(secrets)})
    assert out.returncode == 0, out.stderr
    out = cli("status", home=nowhere, gateway=gw.address)  # no APT_SECRETS_DIR: nothing beside no-home
    assert out.returncode == 6
    help_text = cli("status", "--help", home=nowhere).stdout
    assert "@FILE" in help_text and "stdin" in help_text and "APT_SECRETS_DIR" in help_text


# -- pull: a hostile gateway cannot write outside the output folder -----------------------------

class _HostileCore(gateway_pb2_grpc.CoreServicer):
    """A gateway that answers DownloadModel with the messages the test sets."""

    responses: list[pb.DownloadModelResponse] = []

    def DownloadModel(self, request, context):
        yield from self.responses


def _download(files: list[tuple[str, bytes]], declared: dict[str, int] | None = None) -> list:
    """A download stream: the header (sizes as ``declared`` says, else the true ones), then the chunks."""
    declared = declared or {}
    return [pb.DownloadModelResponse(header=pb.UploadHeader(name="m", files=[
        pb.FileInfo(path=p, size=declared.get(p, len(d)), sha256=hashlib.sha256(d).hexdigest()) for p, d in files])),
        *[pb.DownloadModelResponse(chunk=pb.FileChunk(path=p, data=d)) for p, d in files if d]]


@pytest.fixture(scope="module")
def hostile():
    server = grpc.server(futures.ThreadPoolExecutor(2))
    servicer = _HostileCore()
    gateway_pb2_grpc.add_CoreServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, f"127.0.0.1:{port}"
    server.stop(0)


@pytest.mark.parametrize("bad, data", [
    ("../escape", b""),             # an empty file: never sent as a chunk, made from the header alone
    ("a/../../escape", b""),
    ("ABSOLUTE", b""),
    ("../escape", b"owned\n"),      # a file with bytes
])
def test_pull_refuses_paths_leaving_the_output_folder(hostile, tmp_path, bad, data):
    servicer, address = hostile
    work = tmp_path / "work"
    work.mkdir()
    if bad == "ABSOLUTE":
        bad = str(tmp_path / "escape")
    servicer.responses = _download([("config.json", b"{}"), (bad, data)])
    out = cli("model", "pull", "m", "-o", str(work / "out"), "--token", "t", home=tmp_path, gateway=address)
    assert out.returncode == 8, out.stderr
    assert "outside the target folder" in out.stderr or "unsafe file path" in out.stderr
    assert not (tmp_path / "escape").exists() and not (work / "escape").exists()
    assert list(work.iterdir()) == []  # neither the output folder nor its temporary


def test_pull_refuses_more_bytes_than_declared(hostile, tmp_path):
    servicer, address = hostile
    servicer.responses = _download([("config.json", b"{}" + b"x" * 4096)], declared={"config.json": 2})
    out = cli("model", "pull", "m", "-o", str(tmp_path / "out"), "--token", "t", home=tmp_path, gateway=address)
    assert out.returncode == 8 and "more bytes" in out.stderr, out.stderr
    assert not (tmp_path / "out").exists()


# -- push: links out of the folder are not followed -------------------------------------------------

def _model_folder(tmp_path: Path) -> Path:
    store = Store(tmp_path / "src-home")
    make_tiny_model(store, "src", vocab_size=320)
    folder = tmp_path / "model"
    shutil.copytree(store.model("src").path, folder)
    (folder / "apt.json").unlink()
    return folder


def test_model_push_refuses_a_link_out_of_the_folder(attack_gateway, host, tmp_path):
    gw = attack_gateway
    folder = _model_folder(tmp_path)
    os.symlink(host.root / "notes" / "passwords.txt", folder / "notes.txt")
    before = host.snapshot(gw.settings.home)
    out = cli("model", "push", str(folder), "--name", "leaky", home=gw.settings.home, gateway=gw.address)
    assert out.returncode == 3, out.stderr
    assert "symbolic link" in out.stderr and "outside" in out.stderr
    assert not Store(gw.settings.home).exists("models", "leaky")
    assert host.snapshot(gw.settings.home) == before
    assert_no_leak(gw, out.stdout, out.stderr)
    # a link to a file inside the folder is an ordinary file of it (Hugging Face caches use them)
    (folder / "notes.txt").unlink()
    os.symlink("config.json", folder / "config-copy.json")
    out = cli("model", "push", str(folder), "--name", "linked", home=gw.settings.home, gateway=gw.address)
    assert out.returncode == 0, out.stderr
    stored = Store(gw.settings.home).model("linked")
    assert (stored.path / "config-copy.json").read_bytes() == (folder / "config.json").read_bytes()


def test_data_push_refuses_links_out_of_the_folder(attack_gateway, host, tmp_path):
    gw = attack_gateway
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "a.txt").write_text("some text\n")
    os.symlink(host.root / "notes" / "passwords.md", folder / "b.md")
    out = cli("data", "push", str(folder), "--name", "leaky-data", home=gw.settings.home, gateway=gw.address)
    assert out.returncode == 3 and "symbolic link" in out.stderr, out.stderr
    # the same for a file named directly whose link leads out of its folder
    out = cli("data", "push", str(folder / "b.md"), "--name", "leaky-data", home=gw.settings.home,
              gateway=gw.address)
    assert out.returncode == 3 and "symbolic link" in out.stderr, out.stderr
    # a link to a folder is refused too, not silently left out
    (folder / "b.md").unlink()
    os.symlink(host.root / "notes", folder / "more")
    out = cli("data", "push", str(folder), "--name", "leaky-data", home=gw.settings.home, gateway=gw.address)
    assert out.returncode == 3 and "links to folders" in out.stderr, out.stderr
    assert not Store(gw.settings.home).exists("datasets", "leaky-data")
    assert SECRET not in out.stdout + out.stderr
    assert_no_leak(gw, out.stdout, out.stderr)
