"""The docker deployer: each plugin replica is a container of the plugin's image.

Containers carry the labels ``apt.plugin``, ``apt.replica`` and ``apt.deployment`` (the network
name, or ``host``) so ``discover`` finds them again after a gateway restart and two stacks on one
engine never touch each other's containers. The gateway reaches the engine through the Docker
socket (``DOCKER_HOST`` or /var/run/docker.sock): whoever can use that socket is root on the host,
so only the admin token can install or remove plugins (see docs/deployment.md).

Every container is locked down as docker-compose.yml's plugin services are (tools/gen_deploy.py
writes those from ``container_kwargs`` below; a test holds the two equal): uid 10001, read-only
root filesystem with a tmpfs /tmp, no capabilities, no-new-privileges, memory and pids limits. A
plugin's memory limit and whether it may reach the internet come from its plugin.yaml
(``resources.memory_limit``, ``egress: internet``), as its Kubernetes objects do
(gateway/deploy/render.py). On a network (``APT_DOCKER_NETWORK``, in compose the internal network
``apt``) an internet-using plugin is also attached to ``<network>-egress``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.types import DeviceRequest

from apt_model import errors
from apt_model.runtime.settings import Settings
from gateway.catalog import CatalogEntry
from gateway.deploy.base import Deployer, check_serving, wait_serving
from gateway.deploy.render import PLUGIN_PORT, PLUGIN_UID

log = logging.getLogger(__name__)
PLUGIN_USER = f"{PLUGIN_UID}:{PLUGIN_UID}"  # the unprivileged user of every service image
PIDS_LIMIT = 1024  # processes + threads: torch starts one per core, gRPC up to 128


@dataclass(frozen=True)
class DockerConfig:
    image_prefix: str = "apt"      # APT_IMAGE_PREFIX: images are <prefix>/<plugin>:<tag>
    image_tag: str = "latest"      # APT_IMAGE_TAG
    network: str = ""              # APT_DOCKER_NETWORK: network shared with the gateway container
    store_volume: str = ""         # APT_STORE_VOLUME: named volume (or absolute host path) for /data
    host_ports: bool = False       # APT_DOCKER_HOST_PORTS: publish on 127.0.0.1 (gateway outside Docker)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "DockerConfig":
        env = dict(os.environ if env is None else env)
        config = cls(
            image_prefix=env.get("APT_IMAGE_PREFIX", "apt"),
            image_tag=env.get("APT_IMAGE_TAG", "latest"),
            network=env.get("APT_DOCKER_NETWORK", ""),
            store_volume=env.get("APT_STORE_VOLUME", ""),
            host_ports=env.get("APT_DOCKER_HOST_PORTS", "").lower() in ("1", "true", "yes"),
        )
        if not config.store_volume:
            raise errors.InvalidArgument(
                "APT_DEPLOYER=docker needs APT_STORE_VOLUME: the named volume (or absolute host path) "
                "holding the model store, mounted at /data in every plugin container."
            )
        if not config.network and not config.host_ports:
            raise errors.InvalidArgument(
                "APT_DEPLOYER=docker needs APT_DOCKER_NETWORK (the network the gateway container is on) "
                "or APT_DOCKER_HOST_PORTS=1 (gateway on the host: plugins publish ports on 127.0.0.1)."
            )
        return config

    @property
    def deployment(self) -> str:
        return self.network or "host"

    @property
    def egress_network(self) -> str:
        # docker-compose.yml: "apt" is internal (no route out), "apt-egress" an ordinary bridge
        return f"{self.network}-egress" if self.network else ""

    def image(self, plugin: str) -> str:
        return f"{self.image_prefix}/{plugin}:{self.image_tag}"

    def container_name(self, plugin: str, index: int) -> str:
        # network "apt" (docker-compose.yml) gives apt-cloud-storage-0, the names compose uses too
        return f"{self.network}-{plugin}-{index}" if self.network else f"apt-host-{plugin}-{index}"

    def egress(self, entry: CatalogEntry) -> str:
        """The egress network the plugin's containers join besides ``network``, or ""."""
        return self.egress_network if entry.egress == "internet" else ""


def container_kwargs(entry: CatalogEntry, index: int, env: dict[str, str], config: DockerConfig,
                     gpu: bool) -> dict:
    """Keyword arguments of ``containers.create`` for one replica; ``gpu``: the engine has the
    nvidia runtime (all GPUs then go to a plugin that wants one). The egress network is joined
    after creation (``DockerDeployer._run``)."""
    spec = dict(
        name=config.container_name(entry.name, index), detach=True, user=PLUGIN_USER,
        environment={**env, "APT_HOME": "/data", "APT_LISTEN": f"0.0.0.0:{PLUGIN_PORT}", "HOME": "/tmp",
                     "APT_DEPLOYER": "docker"},  # where it runs: a multi-node request is refused naming it
        labels={"apt.plugin": entry.name, "apt.replica": str(index), "apt.deployment": config.deployment,
                "apt.version": entry.version},
        volumes={config.store_volume: {"bind": "/data", "mode": "rw"}},
        restart_policy={"Name": "unless-stopped"}, init=True,
        read_only=True, tmpfs={"/tmp": ""}, cap_drop=["ALL"], security_opt=["no-new-privileges:true"],
        mem_limit=entry.resources.memory_limit_bytes, pids_limit=PIDS_LIMIT,
    )
    if config.network:
        spec["network"] = config.network
    if config.host_ports:
        spec["ports"] = {f"{PLUGIN_PORT}/tcp": ("127.0.0.1", None)}
    if entry.wants_gpu and gpu:
        spec["device_requests"] = [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return spec


class DockerDeployer(Deployer):
    name = "docker"

    def __init__(self, settings: Settings, config: DockerConfig | None = None, client=None):
        self.settings = settings
        self.config = config or DockerConfig.from_env()
        try:
            self.client = client or docker.from_env(timeout=60)
            self.client.ping()
        except DockerException as exc:
            raise errors.FailedPrecondition(
                f"APT_DEPLOYER=docker but the Docker engine does not answer ({exc}). Mount the socket "
                "(-v /var/run/docker.sock:/var/run/docker.sock) or set DOCKER_HOST."
            ) from exc
        self._gpu = "nvidia" in (self.client.info().get("Runtimes") or {})

    # -- queries -----------------------------------------------------------------------------
    def _containers(self, plugin: str, running_only: bool) -> list:
        filters = {"label": [f"apt.plugin={plugin}", f"apt.deployment={self.config.deployment}"]}
        if running_only:
            filters["status"] = "running"
        found = self.client.containers.list(all=not running_only, filters=filters)
        return sorted(found, key=lambda c: int(c.labels.get("apt.replica", "0")))

    def _endpoint(self, container) -> str:
        if self.config.host_ports:
            container.reload()
            bindings = container.attrs["NetworkSettings"]["Ports"].get(f"{PLUGIN_PORT}/tcp") or []
            if not bindings:
                raise errors.Unavailable(f"Container {container.name} has no published port for {PLUGIN_PORT}.")
            return f"127.0.0.1:{bindings[0]['HostPort']}"
        return f"{container.name}:{PLUGIN_PORT}"

    def log_tail(self, name: str) -> str:
        return "\n".join(_logs(c, 10) for c in self._containers(name, running_only=False))

    # -- Deployer ----------------------------------------------------------------------------
    def deploy(self, entry: CatalogEntry, replicas: int, env: dict[str, str]) -> list[str]:
        image = self.config.image(entry.name)
        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise errors.FailedPrecondition(
                f"Image {image} is not on this Docker engine. Build it with `make images` "
                f"(or: python docker/images.py build {entry.name})."
            ) from None
        self.remove(entry.name)  # leftovers of an earlier run would clash by name
        started = []
        try:
            for i in range(replicas):
                started.append(self._run(entry, image, i, env))
            deadline = time.monotonic() + self.settings.install_timeout
            return [self._wait(entry, c, deadline) for c in started]
        except BaseException:
            for container in started:
                _force_remove(container)
            raise

    def container_spec(self, entry: CatalogEntry, index: int, env: dict[str, str]) -> dict:
        """Keyword arguments of ``containers.create`` for one replica on this engine."""
        if entry.wants_gpu and not self._gpu:
            log.warning("plugin %s wants a GPU but the Docker engine has no nvidia runtime: it runs on CPU",
                        entry.name)
        return container_kwargs(entry, index, env, self.config, self._gpu)

    def _run(self, entry: CatalogEntry, image: str, index: int, env: dict[str, str]):
        spec = self.container_spec(entry, index, env)
        egress = self.config.egress(entry)
        if egress:
            try:
                egress_net = self.client.networks.get(egress)
            except NotFound:
                raise errors.FailedPrecondition(
                    f"Plugin {entry.name!r} calls out to the internet (egress: internet in its plugin.yaml) "
                    f"but the network {egress} does not exist: docker-compose.yml creates it, or run "
                    f"`docker network create {egress}`."
                ) from None
        try:
            container = self.client.containers.create(image, **spec)
            try:
                if egress:
                    egress_net.connect(container)
                container.start()
            except BaseException:
                _force_remove(container)
                raise
            return container
        except APIError as exc:
            raise errors.Unavailable(f"Docker could not start {spec['name']}: {exc.explanation or exc}") from exc

    def _wait(self, entry: CatalogEntry, container, deadline: float) -> str:
        def running() -> bool:
            container.reload()
            return container.status in ("created", "running")

        endpoint = self._endpoint(container)
        if not wait_serving(endpoint, max(0.0, deadline - time.monotonic()), running):
            state = container.attrs.get("State", {})
            why = (f"exited with code {state.get('ExitCode')}" if not running()
                   else f"did not reach SERVING within {self.settings.install_timeout:.0f}s (APT_INSTALL_TIMEOUT)")
            raise errors.Unavailable(
                f"Plugin {entry.name!r} container {container.name} {why}. Last log lines:\n{_logs(container, 20)}"
            )
        return endpoint

    def remove(self, name: str) -> None:
        for container in self._containers(name, running_only=False):
            try:
                container.stop(timeout=int(self.settings.grace_seconds))
            except NotFound:
                continue
            _force_remove(container)

    def discover(self, entry: CatalogEntry) -> list[str]:
        endpoints = [self._endpoint(c) for c in self._containers(entry.name, running_only=True)]
        return [e for e in endpoints if check_serving(e)]


def _logs(container, lines: int) -> str:
    try:
        return container.logs(tail=lines).decode(errors="replace").rstrip()
    except (APIError, NotFound) as exc:
        return f"(logs unavailable: {exc})"


def _force_remove(container) -> None:
    try:
        container.remove(force=True)
    except NotFound:
        pass  # already gone: removal is what we wanted
