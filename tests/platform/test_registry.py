"""Plugin registry: install/uninstall with real child processes, persistence, health, auth."""

from __future__ import annotations

import os
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.settings import Settings, ensure_local_tokens, secrets_dir

from gateway.testing import start_gateway, stop_gateway


def _registry(channel):
    return gateway_pb2_grpc.PluginRegistryStub(channel)


def _status(gw, name):
    return _registry(gw.channel()).GetPlugin(gateway_pb2.GetPluginRequest(name=name)).status


@pytest.fixture
def unbuilt_gateway(tmp_path):
    """A gateway whose catalogue also holds a plugin folder that says ``available: false`` (all
    ten in services/ are built now; the rule for one that is not still holds)."""
    from gateway.testing import start_gateway, stop_gateway, unbuilt_plugin

    folder = unbuilt_plugin(tmp_path)
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(folder.parent),))
    yield gw
    stop_gateway(gw)


def test_catalogue_lists_all_ten_plugins_and_marks_unbuilt_ones(unbuilt_gateway):
    gateway = unbuilt_gateway
    plugins = {p.name: p for p in _registry(gateway.channel()).ListPlugins(gateway_pb2.ListPluginsRequest()).plugins}
    for name in ("huggingface-integration", "cloud-storage", "ollama-export", "model-distillation",
                 "model-pruning", "multimodal-training", "data-processors", "advanced-debugging",
                 "advanced-visualization", "reasoning-training"):
        assert name in plugins, f"{name}: {gateway.app.catalog.broken.get(name, 'no plugin.yaml')}"
        assert plugins[name].status == gateway_pb2.PLUGIN_STATUS_AVAILABLE, name
    assert plugins["not-built-yet"].status == gateway_pb2.PLUGIN_STATUS_NOT_AVAILABLE_YET


def test_unbuilt_plugin_cannot_be_installed(unbuilt_gateway):
    with pytest.raises(grpc.RpcError) as err:
        _registry(unbuilt_gateway.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="not-built-yet"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "not available yet" in err.value.details()


def test_install_and_uninstall_start_and_stop_a_process(gateway):
    info = _registry(gateway.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="echo"))
    assert info.status == gateway_pb2.PLUGIN_STATUS_INSTALLED and info.deployer == "local"
    pid = __import__("json").loads((gateway.settings.home / "gateway/local/echo.json").read_text())["replicas"][0]["pid"]
    os.kill(pid, 0)  # running
    _registry(gateway.admin_channel()).UninstallPlugin(gateway_pb2.UninstallPluginRequest(name="echo"))
    assert _status(gateway, "echo") == gateway_pb2.PLUGIN_STATUS_AVAILABLE
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]:
        assert time.monotonic() < deadline, "plugin process still running after uninstall"
        time.sleep(0.1)


def test_registry_survives_a_gateway_restart(tmp_path):
    home = tmp_path / "home"
    gw = start_gateway(home)
    gw.app.registry.install("echo")
    endpoint = gw.app.registry.installed("echo").endpoints[0]
    stop_gateway(gw, remove_plugins=False)  # the plugin process keeps running
    gw2 = start_gateway(home)
    try:
        assert gw2.app.registry.installed("echo").endpoints == [endpoint]  # re-attached, not redeployed
        reply = echo_pb2_grpc.EchoStub(gw2.channel()).Echo(echo_pb2.EchoRequest(text="after restart"))
        assert reply.text == "after restart"
    finally:
        stop_gateway(gw2)


def test_restart_redeploys_a_plugin_that_died_meanwhile(tmp_path):
    home = tmp_path / "home"
    gw = start_gateway(home)
    gw.app.registry.install("echo")
    stop_gateway(gw, remove_plugins=True)
    # state still says installed (we removed processes behind the registry's back)
    (home / "gateway/plugins.json").write_text('{"echo": {"endpoints": ["127.0.0.1:1"], "replicas": 1}}')
    gw2 = start_gateway(home)
    try:
        assert echo_pb2_grpc.EchoStub(gw2.channel()).Echo(echo_pb2.EchoRequest(text="x")).text == "x"
    finally:
        stop_gateway(gw2)


def test_crash_mid_stream_gives_unavailable_promptly_and_marks_unhealthy(echo_gateway):
    stub = echo_pb2_grpc.EchoStub(echo_gateway.channel())
    (endpoint,) = echo_gateway.app.registry.installed("echo").endpoints
    start = time.monotonic()
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for reply in stub.Count(echo_pb2.CountRequest(n=100, interval_seconds=0.01, crash_after=3)):
            got.append(reply.index)
    assert got == [0, 1, 2]
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "echo" in err.value.details()
    assert endpoint not in err.value.details()  # plugin addresses are for admins (ListPlugins)
    assert time.monotonic() - start < 5
    assert _status(echo_gateway, "echo") == gateway_pb2.PLUGIN_STATUS_UNHEALTHY
    with pytest.raises(grpc.RpcError) as err:
        stub.Echo(echo_pb2.EchoRequest(text="x"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "apt-model plugin install echo" in err.value.details()


def _write_plugin(root: Path, name: str, imports: list[str], body: str) -> Path:
    folder = root / name
    (folder / f"pkg_{name.replace('-', '_')}").mkdir(parents=True)
    (folder / f"pkg_{name.replace('-', '_')}" / "__init__.py").write_text("")
    (folder / f"pkg_{name.replace('-', '_')}" / "server.py").write_text(body)
    (folder / "plugin.yaml").write_text(
        f"name: {name}\nversion: 0.0.1\ndescription: test\navailable: true\n"
        f"module: pkg_{name.replace('-', '_')}.server\nservices: []\nimports: {imports}\n")
    return folder


def test_crash_at_start_reports_the_plugin_log(tmp_path):
    _write_plugin(tmp_path / "plugins", "crasher", [],
                  "import sys\nprint('cannot open the model cache: disk is on fire', file=sys.stderr)\nsys.exit(2)\n")
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(tmp_path / "plugins"),))
    try:
        with pytest.raises(grpc.RpcError) as err:
            _registry(gw.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="crasher"))
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "exited with code 2" in err.value.details()
        assert "disk is on fire" in err.value.details()
    finally:
        stop_gateway(gw)


def test_missing_dependencies_are_named_with_the_install_command(tmp_path):
    _write_plugin(tmp_path / "plugins", "needy", ["surely_not_installed_mod"], "raise SystemExit(1)\n")
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(tmp_path / "plugins"),))
    try:
        with pytest.raises(grpc.RpcError) as err:
            _registry(gw.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="needy"))
        assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "surely_not_installed_mod" in err.value.details()
        assert "pip install -r" in err.value.details()
    finally:
        stop_gateway(gw)


@pytest.mark.parametrize("name", ["../etc", "Echo", "a/b", ""])
def test_invalid_plugin_names_are_invalid_argument(gateway, name):
    with pytest.raises(grpc.RpcError) as err:
        _registry(gateway.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name=name))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_unknown_plugin_is_not_found(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _registry(gateway.channel()).GetPlugin(gateway_pb2.GetPluginRequest(name="no-such-plugin"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


# -- auth --------------------------------------------------------------------------------------
def test_no_token_is_unauthenticated(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _registry(gateway.channel(token="")).ListPlugins(gateway_pb2.ListPluginsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "APT_TOKEN" in err.value.details()


def test_wrong_token_is_unauthenticated(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _registry(gateway.channel(token="nope")).ListPlugins(gateway_pb2.ListPluginsRequest())
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_user_token_cannot_install(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _registry(gateway.channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="echo"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "admin token" in err.value.details()


def test_health_needs_no_token(gateway):
    reply = health_pb2_grpc.HealthStub(gateway.channel(token="")).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_plugin_refuses_calls_without_the_internal_token(echo_gateway):
    endpoint = echo_gateway.app.registry.installed("echo").endpoints[0]
    for token in ("", echo_gateway.settings.token):
        with pytest.raises(grpc.RpcError) as err:
            echo_pb2_grpc.EchoStub(grpc.insecure_channel(endpoint) if not token else
                                   __import__("apt_model.client").client.connect(endpoint, token)
                                   ).Echo(echo_pb2.EchoRequest(text="x"))
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_local_tokens_are_private_files(gateway):
    """Generated tokens are 0600 in a 0700 folder beside the store, never inside it."""
    folder = secrets_dir(gateway.settings.home)
    assert folder.stat().st_mode & 0o777 == 0o700 and gateway.settings.home.resolve() not in folder.resolve().parents
    for name in ("token", "admin_token", "internal_token"):
        assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert not (gateway.settings.home / "secrets").exists()


def test_tokens_of_an_older_store_move_out_of_it(tmp_path):
    """A store from before the secrets folder moved keeps its tokens, now outside the store."""
    home = tmp_path / "home"
    (home / "secrets").mkdir(parents=True)
    (home / "secrets" / "token").write_text("old-user-token")
    settings = ensure_local_tokens(Settings(home=home))
    assert settings.token == "old-user-token" and not (home / "secrets").exists()
    assert (secrets_dir(home) / "token").read_text() == "old-user-token"


def test_install_adopts_instances_already_running(tmp_path):
    """An instance started outside this gateway (compose, an earlier gateway) is adopted, not replaced."""
    home = tmp_path / "home"
    gw = start_gateway(home)
    gw.app.registry.install("echo")
    endpoint = gw.app.registry.installed("echo").endpoints[0]
    stop_gateway(gw, remove_plugins=False)
    (home / "gateway/plugins.json").write_text("{}")  # the new gateway does not know it
    gw2 = start_gateway(home)
    try:
        assert gw2.app.registry.installed("echo") is None
        gw2.app.registry.install("echo")
        assert gw2.app.registry.installed("echo").endpoints == [endpoint]
        assert echo_pb2_grpc.EchoStub(gw2.channel()).Echo(echo_pb2.EchoRequest(text="adopted")).text == "adopted"
    finally:
        stop_gateway(gw2)


def test_installing_again_is_idempotent(echo_gateway):
    before = echo_gateway.app.registry.installed("echo").endpoints
    _registry(echo_gateway.admin_channel()).InstallPlugin(gateway_pb2.InstallPluginRequest(name="echo"))
    assert echo_gateway.app.registry.installed("echo").endpoints == before


def test_unhealthy_plugin_is_rediscovered_where_it_runs_now(echo_gateway):
    registry = echo_gateway.app.registry
    inst = registry.installed("echo")
    real = list(inst.endpoints)
    inst.endpoints = ["127.0.0.1:1"]  # as if the instance moved (a pod restarted with a new IP)
    inst.healthy = {"127.0.0.1:1": False}
    deadline = time.monotonic() + 10
    while registry.installed("echo").endpoints != real:
        assert time.monotonic() < deadline, "the registry never asked the deployer again"
        time.sleep(0.2)
    assert echo_pb2_grpc.EchoStub(echo_gateway.channel()).Echo(echo_pb2.EchoRequest(text="moved")).text == "moved"
