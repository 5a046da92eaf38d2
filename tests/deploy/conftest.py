"""Fixtures for the deployment tests: a Docker engine when one answers, the images they need.

Tests marked ``docker`` skip with the reason when no engine answers or an image is not built;
`.ci/run` builds the images first (`make images`), so in CI they run.
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


def require_image(client, ref: str, build_hint: str) -> None:
    import docker.errors

    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        pytest.skip(f"image {ref} is not built; run: {build_hint}")


@pytest.fixture(scope="session")
def echo_image(docker_client) -> str:
    """apt/echo:latest, built from tests/deploy/echo.Dockerfile when missing (about 2 min, offline)."""
    ref = "apt/echo:latest"
    done = subprocess.run([sys.executable, str(ROOT / "docker/images.py"), "build", "echo",
                           "--plugin", str(ECHO_DIR), str(ROOT / "tests/deploy/echo.Dockerfile")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        if "make wheelhouse" in done.stderr or "make base-image" in done.stderr:
            pytest.skip(f"cannot build {ref}: {done.stderr.strip()[-300:]}")
        pytest.fail(f"building {ref} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return ref


@pytest.fixture
def store_volume(docker_client):
    """A fresh named volume for the model store, removed afterwards."""
    volume = docker_client.volumes.create(f"apt-test-store-{uuid.uuid4().hex[:8]}")
    yield volume.name
    volume.remove(force=True)
