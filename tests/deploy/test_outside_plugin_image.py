"""A plugin written outside the repository (`apt-model plugin new`) as an image: built with the one
plugin Dockerfile template, run by the docker deployer, answering raw gRPC and Describe from its
own proto, removed, with no file of the repository changed."""

from __future__ import annotations

import secrets
import subprocess
import sys

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings

from .conftest import ROOT, build_images

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]


def _repo_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


@pytest.fixture
def outside_plugin(tmp_path, docker_client):
    before = _repo_state()
    out = subprocess.run([sys.executable, "-m", "apt_model", "plugin", "new", "word-count", "--dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    folder = tmp_path / "word-count"
    build_images("word-count", plugin=folder)
    yield folder
    docker_client.images.remove("apt/word-count:latest", force=True)
    assert _repo_state() == before, "building or running the outside plugin changed files of the repository"


def test_outside_plugin_image_serves_its_own_contract(outside_plugin, docker_client, store_volume, tmp_path):
    from gateway.deploy.docker import DockerConfig, DockerDeployer

    entry = PluginManifest.load(outside_plugin)
    deployer = DockerDeployer(Settings(home=tmp_path, install_timeout=60, grace_seconds=2),
                              DockerConfig(store_volume=store_volume, host_ports=True), client=docker_client)
    token = secrets.token_hex(16)
    try:
        (endpoint,) = deployer.deploy(entry, 1, {"APT_INTERNAL_TOKEN": token})
        with connect(endpoint, token) as channel:
            desc = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest(), timeout=10)
            (op,) = desc.operations
            assert (op.name, op.long_running) == ("StartCountWords", True) and op.description
            assert {a.name: a.description != "" for a in op.arguments} == {"dataset": True, "top": True,
                                                                           "lowercase": True}
            # raw gRPC, no generated code: the request built from the description's own descriptors
            from apt_model.cli.generic import Contract

            request = Contract(desc).message(op.request_type)(dataset="not-there")
            start = channel.unary_unary(f"/{op.service}/{op.name}", request_serializer=lambda m: m.SerializeToString(),
                                        response_deserializer=bytes)
            with pytest.raises(grpc.RpcError) as info:
                start(request, timeout=10)
            assert info.value.code() == grpc.StatusCode.NOT_FOUND and "not-there" in info.value.details()
            with pytest.raises(grpc.RpcError) as info:
                start(Contract(desc).message(op.request_type)(), timeout=10)
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "dataset is required" in info.value.details()
        container = docker_client.containers.list(filters={"label": "apt.plugin=word-count"})[0]
        assert container.attrs["Config"]["User"] == "10001:10001"
    finally:
        deployer.remove("word-count")
    assert docker_client.containers.list(all=True, filters={"label": "apt.plugin=word-count"}) == []


def test_a_pip_installed_plugin_builds_and_runs_under_the_docker_deployer(tmp_path, docker_client, store_volume):
    """`plugin package` → `pip install` → the image is built from the folder the installed package
    carries (`images.py build --installed NAME`, found through its apt.plugins entry point as the
    gateway finds it) → the docker deployer runs it from the catalogue entry → removed."""
    import os

    from gateway.catalog import Catalog
    from gateway.deploy.docker import DockerConfig, DockerDeployer

    before = _repo_state()
    run = lambda *cmd, env=None: subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    done = run(sys.executable, "-m", "apt_model", "plugin", "new", "line-count", "--dir", str(tmp_path))
    assert done.returncode == 0, done.stderr
    done = run(sys.executable, "-m", "apt_model", "plugin", "package", str(tmp_path / "line-count"),
               "--out", str(tmp_path / "dist"))
    assert done.returncode == 0, done.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    site = tmp_path / "site"
    done = run(sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    assert done.returncode == 0, done.stderr
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    missing = run(sys.executable, str(ROOT / "docker/images.py"), "build", "line-count", "--installed", "nothing-here",
                  env=env)
    assert missing.returncode == 1 and "No installed package registers the plugin nothing-here" in missing.stderr
    assert "line-count" in missing.stderr  # the installed ones are listed
    done = run(sys.executable, str(ROOT / "docker/images.py"), "build", "line-count", "--installed", "line-count",
               env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    sys.path.insert(0, str(site))  # what `pip install` into the gateway's environment does
    try:
        entry = Catalog().get("line-count")
    finally:
        sys.path.remove(str(site))
    assert entry.dir == site / "apt_plugin_line_count" / "line-count"
    deployer = DockerDeployer(Settings(home=tmp_path / "home", install_timeout=60, grace_seconds=2),
                              DockerConfig(store_volume=store_volume, host_ports=True), client=docker_client)
    token = secrets.token_hex(16)
    try:
        (endpoint,) = deployer.deploy(entry, 1, {"APT_INTERNAL_TOKEN": token})
        with connect(endpoint, token) as channel:
            desc = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest(), timeout=10)
            assert desc.name == "line-count" and [op.name for op in desc.operations] == ["StartCountWords"]
    finally:
        deployer.remove("line-count")
        docker_client.images.remove("apt/line-count:latest", force=True)
    assert docker_client.containers.list(all=True, filters={"label": "apt.plugin=line-count"}) == []
    assert _repo_state() == before
