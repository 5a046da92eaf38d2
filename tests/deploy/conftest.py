"""Fixtures for the deployment tests: a Docker engine when one answers, the images they need.

Tests marked ``docker`` skip, with the reason, only when no Docker engine answers. Images they
need are built on demand by docker/images.py (what `make images` runs): a no-op when the image's
inputs are unchanged, a cached rebuild when only code changed, the full offline build on a fresh
machine (local base image and wheelhouse included).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ECHO_DIR = ROOT / "tests" / "plugins" / "echo"
sys.path.insert(0, str(ROOT / "docker"))  # imagebuild (docker/ has no __init__.py on purpose)


def _engine():
    try:
        import docker

        client = docker.from_env(timeout=30)
        client.ping()
        return client
    except Exception as exc:  # any failure to reach an engine means: skip, with the reason
        return exc


@pytest.fixture(scope="session")
def docker_client():
    client = _engine()
    if isinstance(client, Exception):
        pytest.skip(f"no Docker engine answers ({client}); container tests skipped")
    return client


def build_images(*names: str, plugin: Path | None = None) -> None:
    """Build (or confirm up to date) these images with docker/images.py; fail the test if it cannot.
    ``plugin``: a plugin folder outside services/ to build as well (docker/plugin.Dockerfile)."""
    cmd = [sys.executable, str(ROOT / "docker/images.py"), "build", *names]
    if plugin is not None:
        cmd += ["--plugin", str(plugin)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"building {', '.join(names)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


@pytest.fixture(scope="session")
def echo_image(docker_client) -> str:
    """apt/echo:latest (tests/plugins/echo, no torch): about 2 min the first time, offline."""
    build_images("echo", plugin=ECHO_DIR)
    return "apt/echo:latest"


@pytest.fixture(scope="session")
def platform_images(docker_client) -> dict[str, str]:
    """apt/gateway and apt/model-pruning (both on apt/torch-base) built from this checkout."""
    build_images("gateway", "model-pruning")
    return {"gateway": "apt/gateway:latest", "model-pruning": "apt/model-pruning:latest"}


@pytest.fixture
def store_volume(docker_client):
    """A fresh named volume for the model store, removed afterwards."""
    volume = docker_client.volumes.create(f"apt-test-store-{uuid.uuid4().hex[:8]}")
    yield volume.name
    volume.remove(force=True)
