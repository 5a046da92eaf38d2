"""The native data plane (apt-router, router/): it owns the public port, routes plugin calls
itself and everything else to the gateway process, follows the registry, and is supervised.

The router tests in test_router.py run against both APT_ROUTER=native and APT_ROUTER=python.
"""

from __future__ import annotations

import os
import signal
import time

import grpc
import pytest

from apt_model import errors
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.settings import Settings
from gateway.dataplane import find_binary
from gateway.testing import start_gateway, stop_gateway


def _echo(gw, text="x", **kw):
    return echo_pb2_grpc.EchoStub(gw.channel()).Echo(echo_pb2.EchoRequest(text=text), timeout=10, **kw)


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_public_port_is_apt_router_and_the_gateway_listens_on_loopback_only(echo_gateway):
    plane = echo_gateway.app.dataplane
    assert plane is not None and plane._proc.poll() is None
    assert echo_gateway.app.port == plane.port
    assert os.path.basename(plane.binary) == "apt-router"
    assert _echo(echo_gateway, "through the router").text == "through the router"
    # core and registry calls go through it to the gateway process
    reply = gateway_pb2_grpc.PluginRegistryStub(echo_gateway.channel()).ListPlugins(
        gateway_pb2.ListPluginsRequest(), timeout=10)
    assert any(p.name == "echo" for p in reply.plugins)


def test_plugin_calls_skip_the_gateway_process(echo_gateway):
    """A routed call is answered even while the gateway process's own router would refuse it."""
    app = echo_gateway.app
    calls = []
    original = app.router.service

    def spy(details):
        calls.append(details.method)
        return original(details)

    app.router.service = spy
    try:
        for _ in range(3):
            assert _echo(echo_gateway).text == "x"
    finally:
        app.router.service = original
    assert calls == []  # apt-router forwarded them straight to the plugin


def test_route_table_follows_install_and_uninstall(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _echo(gateway)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "apt-model plugin install echo" in err.value.details()
    gateway.app.registry.install("echo")
    assert _echo(gateway, "now installed").text == "now installed"
    gateway.app.registry.uninstall("echo")
    with pytest.raises(grpc.RpcError) as err:
        _echo(gateway)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "apt-model plugin install echo" in err.value.details()


@pytest.mark.parametrize("token,code", [("", grpc.StatusCode.UNAUTHENTICATED),
                                        ("wrong", grpc.StatusCode.UNAUTHENTICATED)])
def test_plugin_calls_without_a_valid_token_get_the_gateways_answer(echo_gateway, token, code):
    stub = echo_pb2_grpc.EchoStub(echo_gateway.channel(token=token))
    with pytest.raises(grpc.RpcError) as err:
        stub.Echo(echo_pb2.EchoRequest(text="x"), timeout=10)
    assert err.value.code() == code


def test_admin_token_may_call_plugins(echo_gateway):
    stub = echo_pb2_grpc.EchoStub(echo_gateway.admin_channel())
    assert stub.Echo(echo_pb2.EchoRequest(text="admin"), timeout=10).text == "admin"


def test_a_killed_router_is_restarted_on_the_same_port(echo_gateway):
    plane = echo_gateway.app.dataplane
    old = plane._proc
    port = plane.port
    old.send_signal(signal.SIGKILL)
    _wait(lambda: plane._proc is not None and plane._proc is not old and plane._proc.poll() is None)
    assert plane.port == port

    def answers():
        try:
            return _echo(echo_gateway, "back").text == "back"
        except grpc.RpcError:
            return False

    _wait(answers)


def test_stopping_the_gateway_stops_the_router(tmp_path):
    gw = start_gateway(tmp_path / "home")
    plane = gw.app.dataplane
    proc, reader = plane._proc, plane._reader
    stop_gateway(gw)
    assert proc.wait(10) == 0  # it drained and exited by itself, not killed
    # stop() returns once the events reader has read to the end and closed the pipe itself
    # (closed under it, the reader raised ValueError: "I/O operation on closed file")
    assert not reader.is_alive() and proc.stdout.closed


def test_router_exits_when_the_gateway_process_is_gone(tmp_path):
    """EOF on its control pipe (the gateway died without stopping it) ends apt-router."""
    gw = start_gateway(tmp_path / "home")
    plane = gw.app.dataplane
    proc = plane._proc
    plane._stopping.set()  # as if the gateway were gone: nobody restarts the router
    proc.stdin.close()
    try:
        assert proc.wait(10) == 0
    finally:
        stop_gateway(gw)


def test_missing_binary_names_the_build_command(tmp_path):
    with pytest.raises(errors.FailedPrecondition) as err:
        find_binary(Settings(home=tmp_path, router_bin=str(tmp_path / "nope")))
    assert "make router" in err.value.message and "APT_ROUTER=python" in err.value.message


def test_router_setting_is_validated():
    with pytest.raises(errors.InvalidArgument):
        Settings.from_env({"APT_ROUTER": "envoy"})
    assert Settings.from_env({"APT_ROUTER": "Python"}).router == "python"
