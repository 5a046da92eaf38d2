"""The deployer interface and the health wait every deployer shares."""

from __future__ import annotations

import abc
import time
from typing import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gateway.catalog import CatalogEntry


class Deployer(abc.ABC):
    name: str = ""

    @abc.abstractmethod
    def deploy(self, entry: CatalogEntry, replicas: int, env: dict[str, str]) -> list[str]:
        """Start ``replicas`` instances; wait until each serves; return their "host:port" endpoints.

        On failure: stop whatever was started and raise ``errors.Unavailable`` (with the tail of
        the instance's log) or ``errors.FailedPrecondition`` (missing dependencies, no image).
        """

    @abc.abstractmethod
    def remove(self, name: str) -> None:
        """Stop and delete every instance of the plugin ``name``."""

    @abc.abstractmethod
    def discover(self, entry: CatalogEntry) -> list[str]:
        """Endpoints of instances already running (for re-attaching after a gateway restart)."""


def check_serving(endpoint: str, timeout: float = 1.0) -> bool:
    """True when the endpoint answers grpc.health.v1 with SERVING for the whole server."""
    try:
        with grpc.insecure_channel(endpoint) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""),
                                                              timeout=timeout)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def wait_serving(endpoint: str, timeout: float, still_starting: Callable[[], bool] = lambda: True) -> bool:
    """Poll health until SERVING (True), the timeout, or ``still_starting()`` turns False."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while time.monotonic() < deadline:
        if check_serving(endpoint, timeout=min(1.0, max(0.1, deadline - time.monotonic()))):
            return True
        if not still_starting():
            return False
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)
    return False
