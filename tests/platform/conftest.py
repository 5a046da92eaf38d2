"""Fixtures: a real gateway in this process, plugins as real child processes (local deployer)."""

from __future__ import annotations

import pytest

from gateway.testing import start_gateway, stop_gateway


@pytest.fixture
def gateway(tmp_path):
    gw = start_gateway(tmp_path / "home")
    yield gw
    stop_gateway(gw)


@pytest.fixture
def echo_gateway(gateway):
    """A gateway with the echo test plugin installed (one replica, a real child process)."""
    gateway.app.registry.install("echo")
    return gateway
