"""The gateway image and the echo plugin image on the real engine (testcontainers, no pulls).

The gateway container runs APT_DEPLOYER=docker with the socket mounted; plugins are installed
through it and called through it, exactly as a user would. Ryuk is disabled: containers are
removed by these fixtures instead.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc

from .conftest import ECHO_DIR, require_image

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
testcontainers = pytest.importorskip("testcontainers.core.container")
pytestmark = pytest.mark.docker
GATEWAY_IMAGE = "apt/gateway:latest"


@pytest.fixture
def stack(docker_client, echo_image, store_volume):
    """A network, the gateway container publishing a random port, and the tokens."""
    require_image(docker_client, GATEWAY_IMAGE, "make images  (or: python docker/images.py build gateway)")
    network = docker_client.networks.create(f"apt-test-{uuid.uuid4().hex[:8]}")
    tokens = {k: secrets.token_urlsafe(16) for k in ("APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN")}
    sock_gid = os.stat("/var/run/docker.sock").st_gid
    gw = (testcontainers.DockerContainer(GATEWAY_IMAGE)
          .with_name(f"{network.name}-gateway").with_exposed_ports(50051)
          .with_volume_mapping(store_volume, "/data", "rw")
          .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
          .with_volume_mapping(str(ECHO_DIR), "/plugins/echo", "ro")
          .with_kwargs(network=network.name, group_add=[str(sock_gid)]))
    for k, v in {**tokens, "APT_DEPLOYER": "docker", "APT_DOCKER_NETWORK": network.name,
                 "APT_STORE_VOLUME": store_volume, "APT_PLUGIN_PATH": "/plugins", "APT_INSTALL_TIMEOUT": "60"}.items():
        gw = gw.with_env(k, v)
    gw.start()
    try:
        address = f"127.0.0.1:{gw.get_exposed_port(50051)}"
        _wait_gateway(address, tokens["APT_TOKEN"])
        yield gw, address, tokens, network
    finally:
        for c in docker_client.containers.list(all=True, filters={"label": f"apt.deployment={network.name}"}):
            c.remove(force=True)
        gw.stop()
        network.remove()


def _wait_gateway(address: str, token: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with connect(address, token) as ch:
                gateway_pb2_grpc.PluginRegistryStub(ch).ListPlugins(gateway_pb2.ListPluginsRequest(), timeout=3)
                return
        except grpc.RpcError:
            time.sleep(0.5)
    pytest.fail(f"gateway at {address} did not answer within {timeout}s")


def _echo(address: str, token: str, text: str) -> str:
    with connect(address, token) as ch:
        return echo_pb2_grpc.EchoStub(ch).Echo(echo_pb2.EchoRequest(text=text), timeout=15).text


def test_install_call_kill_restart_uninstall(stack, docker_client):
    gw, address, tokens, network = stack
    with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
        gateway_pb2_grpc.PluginRegistryStub(ch).InstallPlugin(
            gateway_pb2.InstallPluginRequest(name="echo", replicas=1), timeout=120)
    assert _echo(address, tokens["APT_TOKEN"], "through the gateway") == "through the gateway"

    # the gateway restarts: the installed plugin is still routed
    docker_client.containers.get(gw.get_wrapped_container().id).restart(timeout=10)
    _wait_gateway(address, tokens["APT_TOKEN"])
    assert _echo(address, tokens["APT_TOKEN"], "after restart") == "after restart"

    # the plugin container dies mid-call: the client gets UNAVAILABLE, not a hang or a stack trace
    [plugin] = docker_client.containers.list(filters={"label": f"apt.deployment={network.name}"})
    with connect(address, tokens["APT_TOKEN"]) as ch:
        stream = echo_pb2_grpc.EchoStub(ch).Count(echo_pb2.CountRequest(n=1000, interval_seconds=0.05), timeout=60)
        next(stream)
        plugin.kill()
        with pytest.raises(grpc.RpcError) as info:
            list(stream)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE

    with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
        gateway_pb2_grpc.PluginRegistryStub(ch).UninstallPlugin(gateway_pb2.UninstallPluginRequest(name="echo"),
                                                                timeout=60)
    assert docker_client.containers.list(all=True, filters={"label": f"apt.deployment={network.name}"}) == []
