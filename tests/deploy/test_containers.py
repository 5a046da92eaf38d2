"""The gateway image and the model-pruning image on the real engine (testcontainers, no pulls).

The gateway container runs APT_DEPLOYER=docker with the Docker socket mounted; the plugin is
installed through it and called through it, as a user would. The model store is a host folder
bind-mounted into both containers, so the test reads it with ``Store`` directly. Ryuk is
disabled: the fixtures remove what they start.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import uuid
from pathlib import Path

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2, pruning_pb2_grpc
from apt_model.runtime.jobs_grpc import FINAL_STATES
from apt_model.store import Store
from apt_model.testing import make_tiny_model
from gateway.testing import wait_answering

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
testcontainers = pytest.importorskip("testcontainers.core.container")
# Image builds run inside these tests (fixtures and `make up`): on a fresh machine the base image,
# the 4 GB wheelhouse and the torch layer take 35-45 minutes, far past the default 600 s.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]
SERVICE_UID = 10001  # the user every service image runs as
TEXT = ("The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。 " * 40 + "\n") * 8


@pytest.fixture
def store_dir(tmp_path) -> Path:
    """A host folder holding a tiny model and a text dataset, writable by the services' user."""
    root = tmp_path / "store"
    store = Store(root)
    make_tiny_model(store, "tiny", texts=[TEXT])
    with store.create("datasets", "corpus", operation="test-fixture") as folder:
        (folder / "corpus.txt").write_text(TEXT)
    for path in [root, *root.rglob("*")]:
        if os.geteuid() == 0:
            os.chown(path, SERVICE_UID, SERVICE_UID)
        else:  # a rootless engine user: let uid 10001 write
            path.chmod(0o777 if path.is_dir() else 0o666)
    return root


@pytest.fixture
def stack(docker_client, platform_images, store_dir):
    """A network, the gateway container publishing a random port, and the tokens."""
    network = docker_client.networks.create(f"apt-test-{uuid.uuid4().hex[:8]}")
    tokens = {k: secrets.token_hex(16) for k in ("APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN")}
    sock_gid = os.stat("/var/run/docker.sock").st_gid
    gw = (testcontainers.DockerContainer(platform_images["gateway"])
          .with_name(f"{network.name}-gateway").with_exposed_ports(50051)
          .with_volume_mapping(str(store_dir), "/data", "rw")
          .with_volume_mapping("/var/run/docker.sock", "/var/run/docker.sock", "rw")
          .with_kwargs(network=network.name, group_add=[str(sock_gid)]))
    # plaintext on 0.0.0.0 inside the container: published on a random port of this test host only
    for k, v in {**tokens, "APT_DEPLOYER": "docker", "APT_DOCKER_NETWORK": network.name, "APT_ALLOW_PLAINTEXT": "1",
                 "APT_STORE_VOLUME": str(store_dir), "APT_INSTALL_TIMEOUT": "120"}.items():
        gw = gw.with_env(k, v)
    gw.start()
    try:
        address = f"127.0.0.1:{gw.get_exposed_port(50051)}"
        _wait_gateway(address, tokens["APT_TOKEN"])
        yield gw, address, tokens, network
    finally:
        # shown by pytest only when the test fails: the gateway's side of the story
        print(gw.get_wrapped_container().logs(tail=60).decode(errors="replace"))
        for c in docker_client.containers.list(all=True, filters={"label": f"apt.deployment={network.name}"}):
            c.remove(force=True)
        gw.stop()
        network.remove()


def _wait_gateway(address: str, token: str, timeout: float = 120) -> None:
    if not wait_answering(address, token, timeout):
        pytest.fail(f"gateway at {address} did not answer within {timeout}s")


def _strategies(address: str, token: str) -> list[str]:
    with connect(address, token) as ch:
        reply = pruning_pb2_grpc.PruningStub(ch).ListStrategies(pruning_pb2.ListStrategiesRequest(), timeout=30)
    return list(reply.strategies)


def _snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file of every visible store entry (staging folders start with '.')."""
    out = {}
    for kind in ("models", "datasets"):
        for entry in Store(root).list(kind):
            for f in sorted(entry.path.rglob("*")):
                if f.is_file():
                    out[f.relative_to(root).as_posix()] = hashlib.sha256(f.read_bytes()).hexdigest()
    return out


def _plugin_containers(docker_client, network) -> list:
    return docker_client.containers.list(filters={"label": [f"apt.deployment={network.name}",
                                                            "apt.plugin=model-pruning"]})


def test_install_call_restart_kill_mid_job_uninstall(stack, docker_client, store_dir):
    gw, address, tokens, network = stack
    with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
        gateway_pb2_grpc.PluginRegistryStub(ch).InstallPlugin(
            gateway_pb2.InstallPluginRequest(name="model-pruning", replicas=1), timeout=180)
    [plugin] = _plugin_containers(docker_client, network)
    assert plugin.attrs["Config"]["User"] == f"{SERVICE_UID}:{SERVICE_UID}"
    assert "magnitude" in _strategies(address, tokens["APT_TOKEN"])

    # The gateway restarts: it re-attaches to the running container instead of starting another.
    restarted = docker_client.containers.get(gw.get_wrapped_container().id)
    restarted.restart(timeout=10)
    restarted.reload()  # the engine may publish the port on another host port after a restart
    address = f"127.0.0.1:{restarted.attrs['NetworkSettings']['Ports']['50051/tcp'][0]['HostPort']}"
    _wait_gateway(address, tokens["APT_TOKEN"])
    assert "magnitude" in _strategies(address, tokens["APT_TOKEN"])
    assert [c.id for c in _plugin_containers(docker_client, network)] == [plugin.id]

    # The plugin container dies mid-job: the watching client gets UNAVAILABLE, the store is unchanged.
    before = _snapshot(store_dir)
    with connect(address, tokens["APT_TOKEN"]) as ch:
        job = pruning_pb2_grpc.PruningStub(ch).StartPrune(pruning_pb2.PruneRequest(
            name="tiny", output_name="tiny-m50", strategy="magnitude", ratio=0.5, recovery_steps=100000,
            recovery_dataset="corpus", batch_size=2, seq_len=32), timeout=60)
        stream = plugin_pb2_grpc.JobsStub(ch).WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=240)
        killed = False
        with pytest.raises(grpc.RpcError) as info:
            for update in stream:
                assert update.state not in FINAL_STATES, f"the job ended before the kill: {update}"
                if update.progress > 0 and not killed:  # work has begun: the job is truly mid-way
                    plugin.kill()
                    killed = True
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()
    assert _snapshot(store_dir) == before
    assert [e.name for e in Store(store_dir).list("models")] == ["tiny"]
    assert Store(store_dir).verify("models", "tiny") == []

    with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
        gateway_pb2_grpc.PluginRegistryStub(ch).UninstallPlugin(
            gateway_pb2.UninstallPluginRequest(name="model-pruning"), timeout=60)
    assert docker_client.containers.list(all=True, filters={"label": f"apt.deployment={network.name}"}) == []


def test_train_with_two_ranks_inside_the_gateway_container(stack, store_dir):
    """--workers 2 in a container (#18): torchrun's ranks run inside the gateway's image, as its
    unprivileged user, and rank 0 writes the model into the mounted store."""
    gw, address, tokens, network = stack
    with connect(address, tokens["APT_TOKEN"]) as ch:
        job = gateway_pb2_grpc.CoreStub(ch).StartTrain(gateway_pb2.TrainRequest(
            name="ranked", dataset="corpus", vocab_size=300, seq_len=32, batch_size=4, max_steps=6, eval_every=3,
            threads=1, workers=2), timeout=60)
        final = None
        for update in plugin_pb2_grpc.JobsStub(ch).WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=600):
            final = update
            if update.state in FINAL_STATES:
                break
    assert final is not None and final.state == job_pb2.JOB_STATE_SUCCEEDED, final
    entry = Store(store_dir).model("ranked")
    assert entry.meta["lineage"]["parameters"]["workers"] == 2 and entry.meta["metrics"]["steps"] == 6
