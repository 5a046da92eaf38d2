"""Deployers: how installing a plugin becomes a running service (local, docker, kubernetes)."""

from __future__ import annotations

from apt_model import errors
from apt_model.runtime.settings import Settings
from gateway.deploy.base import Deployer


def make_deployer(settings: Settings) -> Deployer:
    if settings.deployer == "local":
        from gateway.deploy.local import LocalDeployer

        return LocalDeployer(settings)
    if settings.deployer == "docker":
        try:
            from gateway.deploy.docker import DockerDeployer
        except ImportError as exc:
            raise errors.FailedPrecondition(f"The docker deployer cannot load ({exc}).") from exc
        return DockerDeployer(settings)
    if settings.deployer == "kubernetes":
        try:
            from gateway.deploy.kubernetes import KubernetesDeployer
        except ImportError as exc:
            raise errors.FailedPrecondition(f"The kubernetes deployer cannot load ({exc}).") from exc
        return KubernetesDeployer(settings)
    raise errors.InvalidArgument(f"Unknown deployer {settings.deployer!r}; use local, docker or kubernetes.")
