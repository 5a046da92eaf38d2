"""Compose smoke test: `make up`, every service healthy, a short pipeline through the CLI, `make down`.

The stack is the real docker-compose.yml (docker-compose 1.29 here, `docker compose` v2 works the
same) on a free host port. Its container, network and volume names are fixed (apt-gateway, apt,
apt-store), so the test refuses to touch a stack that is already up rather than tear down
someone's work; it removes the apt-store volume afterwards only if the test created it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from gateway.core import transfer

from .conftest import ROOT

# Image builds run inside these tests (fixtures and `make up`): on a fresh machine the base image,
# the 4 GB wheelhouse and the torch layer take 35-45 minutes, far past the default 600 s.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]
COMPOSE_FILE = ROOT / "docker-compose.yml"
HEALTHY_WITHIN = 240  # s: six containers, four of them importing torch, on a 2-core machine


def _compose_command() -> str:
    if shutil.which("docker-compose"):
        return "docker-compose"
    if subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return "docker compose"
    pytest.skip("neither docker-compose nor `docker compose` is installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _container_names() -> list[str]:
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return [s["container_name"] for s in services.values()]


def _health(docker_client, name: str) -> str:
    c = docker_client.containers.get(name)
    return c.attrs["State"].get("Health", {}).get("Status", c.status)


def _make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    # -o: the venv running this test is the one to use; never reinstall it from inside a test
    return subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed", target], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=3600)


def _cli(address: str, token: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "apt_model", "--gateway", address, f"--token={token}", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"apt-model {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _upload(address: str, token: str, folder: Path, name: str) -> None:
    files = transfer.local_folder_files(folder)

    def messages():
        yield pb.UploadModelRequest(header=pb.UploadHeader(
            name=name, files=[pb.FileInfo(path=f.path, size=f.size, sha256=f.sha256) for f in files]))
        for path, data in transfer.iter_local_chunks(folder, files):
            yield pb.UploadModelRequest(chunk=pb.FileChunk(path=path, data=data))

    with connect(address, token) as ch:
        gateway_pb2_grpc.CoreStub(ch).UploadModel(messages(), timeout=120)


@pytest.fixture
def compose_stack(docker_client):
    import docker.errors

    compose = _compose_command()
    names = _container_names()
    running = [c.name for c in docker_client.containers.list(all=True) if c.name in names]
    if running:
        pytest.skip(f"a compose stack is already up ({', '.join(running)}); not touching it")
    try:
        docker_client.volumes.get("apt-store")
        own_volume = False
    except docker.errors.NotFound:
        own_volume = True
    port = _free_port()
    env = {**os.environ, "APT_GATEWAY_PORT": str(port), "COMPOSE": compose}
    try:
        up = _make("up", env)
        assert up.returncode == 0, f"make up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield f"127.0.0.1:{port}", names
    finally:
        down = _make("down", env)
        if own_volume:
            for volume in docker_client.volumes.list(filters={"name": "apt-store"}):
                if volume.name == "apt-store":
                    volume.remove(force=True)
    assert down.returncode == 0, f"make down failed:\n{down.stdout[-2000:]}\n{down.stderr[-2000:]}"
    assert [c.name for c in docker_client.containers.list(all=True) if c.name in names] == []


def test_make_up_pipeline_make_down(compose_stack, docker_client, tmp_path):
    address, names = compose_stack
    deadline = time.monotonic() + HEALTHY_WITHIN
    while (states := {n: _health(docker_client, n) for n in names}) and \
            any(s != "healthy" for s in states.values()) and time.monotonic() < deadline:
        assert not [n for n, s in states.items() if s in ("exited", "dead")], f"a service died: {states}"
        time.sleep(2)
    assert set(states.values()) == {"healthy"}, f"not healthy within {HEALTHY_WITHIN}s: {states}"
    # only the gateway publishes a port, and on loopback only
    published = {n: docker_client.containers.get(n).attrs["NetworkSettings"]["Ports"] for n in names}
    assert [n for n, ports in published.items() if any(ports.values())] == ["apt-gateway"]
    assert {b["HostIp"] for b in published["apt-gateway"]["50051/tcp"]} == {"127.0.0.1"}

    secrets = ROOT / ".apt-secrets"  # make secrets (run by make up)
    user, admin = (secrets / "token").read_text().strip(), (secrets / "admin_token").read_text().strip()
    status = json.loads(_cli(address, user, "--json", "status"))
    assert status, "empty status"
    _cli(address, admin, "plugin", "install", "model-pruning")

    # a short pipeline: a tiny model in, pruned by the plugin container, the result listed
    made = Store(tmp_path / "local")
    make_tiny_model(made, "smoke-tiny")
    _upload(address, user, made.model("smoke-tiny").path, "smoke-tiny")
    try:
        # held-out text for the perplexity report: a file here, which the CLI pushes into the store
        # as a dataset (the services read no host paths: APT_DATA_ROOTS is unset in compose)
        _cli(address, user, "model-pruning", "prune", "--name", "smoke-tiny", "--strategy", "magnitude", "--ratio", "0.5",
             "--output-name", "smoke-tiny-m50", "--overwrite",
             "--eval-path", str(ROOT / "services/model-pruning/README.md"))
        with connect(address, user) as ch:
            info = gateway_pb2_grpc.CoreStub(ch).GetModelInfo(pb.GetModelInfoRequest(name="smoke-tiny-m50"))
        assert info.lineage["parent"] == "smoke-tiny"
        assert "model-pruning" in _cli(address, user, "plugin", "list")
    finally:
        with connect(address, user) as ch:
            core = gateway_pb2_grpc.CoreStub(ch)
            for name in ("smoke-tiny-m50", "smoke-tiny"):
                try:
                    core.DeleteModel(pb.DeleteModelRequest(name=name), timeout=30)
                except grpc.RpcError as exc:  # cleanup only; the assertions above already decided
                    print(f"could not delete {name}: {exc.code().name}: {exc.details()}")
