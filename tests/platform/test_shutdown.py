"""SIGTERM drains in-flight calls within the grace period, then the process exits."""

from __future__ import annotations

import os
import signal
import threading
import time

from apt_model.client import connect
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.settings import Settings
from gateway.catalog import Catalog
from gateway.deploy.local import LocalDeployer, _alive
from gateway.testing import TEST_PLUGINS


def test_sigterm_lets_an_in_flight_call_finish(tmp_path):
    settings = Settings(home=tmp_path, grace_seconds=5.0, install_timeout=60)
    deployer = LocalDeployer(settings)
    entry = Catalog((str(TEST_PLUGINS),)).get("echo")
    endpoint = deployer.deploy(entry, 1, {"APT_INTERNAL_TOKEN": "t0k", "APT_GRACE_SECONDS": "5"})[0]
    pid = int(__import__("json").loads((tmp_path / "gateway/local/echo.json").read_text())["replicas"][0]["pid"])
    stub = echo_pb2_grpc.EchoStub(connect(endpoint, "t0k"))
    result = {}

    def slow_call():
        result["reply"] = stub.Echo(echo_pb2.EchoRequest(text="drained", sleep_seconds=1.5), timeout=10)

    t = threading.Thread(target=slow_call)
    t.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGTERM)
    t.join(10)
    assert result["reply"].text == "drained"
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, "plugin did not exit after its grace period"
        time.sleep(0.1)
    deployer.remove("echo")
