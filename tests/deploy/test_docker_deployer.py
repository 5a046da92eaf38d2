"""The docker deployer against the real engine: echo plugin containers, published on 127.0.0.1."""

from __future__ import annotations

import secrets

import grpc
import pytest

from apt_model import errors
from apt_model.client import connect
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings

from .conftest import ECHO_DIR

# Image builds run inside these tests (fixtures and `make up`): on a fresh machine the base image,
# the 4 GB wheelhouse and the torch layer take 35-45 minutes, far past the default 600 s.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]


@pytest.fixture
def deployer(docker_client, echo_image, store_volume, tmp_path):
    from gateway.deploy.docker import DockerConfig, DockerDeployer

    settings = Settings(home=tmp_path, install_timeout=60, grace_seconds=2)
    config = DockerConfig(store_volume=store_volume, host_ports=True)
    dep = DockerDeployer(settings, config, client=docker_client)
    yield dep
    dep.remove("echo")


def _echo(endpoint: str, token: str, text: str) -> str:
    with connect(endpoint, token) as channel:
        return echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(text=text), timeout=10).text


def test_deploy_two_replicas_discover_and_remove(deployer, docker_client):
    entry = PluginManifest.load(ECHO_DIR)
    token = secrets.token_hex(16)
    endpoints = deployer.deploy(entry, 2, {"APT_INTERNAL_TOKEN": token})
    assert len(set(endpoints)) == 2
    assert [_echo(e, token, f"hi {i}") for i, e in enumerate(endpoints)] == ["hi 0", "hi 1"]
    # the plugin accepts only the internal token
    with pytest.raises(grpc.RpcError) as info:
        _echo(endpoints[0], "wrong-token", "x")
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    containers = docker_client.containers.list(filters={"label": "apt.plugin=echo"})
    assert {c.labels["apt.replica"] for c in containers} == {"0", "1"}
    assert all(c.attrs["Config"]["User"] == "10001:10001" for c in containers)
    assert sorted(deployer.discover(entry)) == sorted(endpoints)

    deployer.remove("echo")
    assert deployer.discover(entry) == []
    assert docker_client.containers.list(all=True, filters={"label": "apt.plugin=echo"}) == []


def test_missing_image_is_failed_precondition(docker_client, store_volume, tmp_path):
    from gateway.deploy.docker import DockerConfig, DockerDeployer

    dep = DockerDeployer(Settings(home=tmp_path), DockerConfig(store_volume=store_volume, host_ports=True,
                                                               image_tag="no-such-tag"), client=docker_client)
    with pytest.raises(errors.FailedPrecondition, match="make images"):
        dep.deploy(PluginManifest.load(ECHO_DIR), 1, {})


def test_container_that_exits_is_unavailable_with_its_log(deployer, docker_client):
    # an unknown APT_* variable makes the plugin's Settings refuse to start: a real start failure
    with pytest.raises(errors.Unavailable, match="APT_NO_SUCH_SETTING"):
        deployer.deploy(PluginManifest.load(ECHO_DIR), 1, {"APT_NO_SUCH_SETTING": "1"})
    assert docker_client.containers.list(all=True, filters={"label": "apt.plugin=echo"}) == []


def test_config_requires_volume_and_network():
    from gateway.deploy.docker import DockerConfig

    with pytest.raises(errors.InvalidArgument, match="APT_STORE_VOLUME"):
        DockerConfig.from_env({"APT_DOCKER_NETWORK": "apt"})
    with pytest.raises(errors.InvalidArgument, match="APT_DOCKER_NETWORK"):
        DockerConfig.from_env({"APT_STORE_VOLUME": "apt-store"})
    cfg = DockerConfig.from_env({"APT_STORE_VOLUME": "v", "APT_DOCKER_NETWORK": "apt-net", "APT_IMAGE_TAG": "1.2"})
    assert cfg.image("model-pruning") == "apt/model-pruning:1.2"
    assert cfg.container_name("echo", 1) == "apt-net-echo-1"
