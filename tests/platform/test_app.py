"""One call starts a service (apt_model.runtime.app), piece by piece, in the test's process: the echo
test plugin as a PluginApp on the thread-pool server, and a bare ServiceApp on the asyncio server
the gateway uses. Health per service, reflection, Describe, the message size limit, TLS, a port
that cannot be bound, stop (health, running jobs), settings at the entry point, the hard exit
after SIGTERM and the store recovery at start. What `make mutate`'s runtime-app target runs."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from apt_model import errors
from apt_model.client import connect
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime import app as app_module
from apt_model.runtime import logs
from apt_model.runtime.app import PluginApp, ServiceApp, describe, server_options
from apt_model.runtime.interceptors import AuthPolicy
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.plugin_settings import SettingSpec
from apt_model.runtime.settings import Settings
from gateway.testing import tls_files

ECHO_DIR = Path(__file__).resolve().parents[1] / "plugins" / "echo"
OLLAMA_DIR = Path(__file__).resolve().parents[2] / "services" / "ollama-export"   # a plugin that declares a setting
sys.path.insert(0, str(ECHO_DIR))
from apt_echo.server import build  # noqa: E402

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


def echo_app(tmp_path: Path, **settings) -> PluginApp:
    token = secrets.token_hex(8)
    app = PluginApp(Settings(home=tmp_path / "home", listen="127.0.0.1:0", internal_token=token, log_json=False,
                             **settings), PluginManifest.load(ECHO_DIR))
    build(app)
    return app


@pytest.fixture
def echo(tmp_path):
    app = echo_app(tmp_path)
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", app.settings.internal_token)
    yield app, channel
    channel.close()
    app.stop(grace=0.5)


def health_of(channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_every_service_and_the_server_report_serving(echo):
    app, channel = echo
    for service in ("", "apt.plugins.echo.v1.Echo", "apt.plugin.v1.Plugin", "apt.plugin.v1.Jobs"):
        assert health_of(channel, service) == SERVING, service
    assert app.port > 0 and app.name == "echo"


def test_reflection_lists_the_services_health_and_itself(echo):
    _, channel = echo
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answer = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                            timeout=5))
    assert sorted(s.name for s in answer.list_services_response.service) == [
        "apt.plugin.v1.Jobs", "apt.plugin.v1.Plugin", "apt.plugins.echo.v1.Echo", "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection"]


def test_describe_is_the_catalogue_entry_and_the_contract(echo):
    app, channel = echo
    got = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest(), timeout=5)
    assert (got.name, got.version, list(got.services), got.wants_gpu) == ("echo", "0.1.0",
                                                                          ["apt.plugins.echo.v1.Echo"], False)
    assert got.description.startswith("Test plugin exercising every gRPC call kind")
    assert "StartEcho" in [op.name for op in got.operations] and got.file_descriptor_set
    assert got == describe(app.manifest)
    grpcio = [d for d in got.required_dependencies if d.name == "grpcio"]
    assert grpcio and grpcio[0].installed_version == grpc.__version__


def test_describe_carries_the_gpu_wish_and_the_optional_specifiers():
    manifest = PluginManifest.load(ECHO_DIR)
    manifest = type(manifest)(**{**manifest.__dict__, "wants_gpu": True,
                                 "optional_requirements": (("grpcio", ">=1.0"),)})
    got = describe(manifest)
    assert got.wants_gpu is True
    assert [(d.name, d.specifier) for d in got.optional_dependencies] == [("grpcio", ">=1.0")]


def test_a_dependency_not_installed_has_no_version(tmp_path):
    manifest = PluginManifest.load(ECHO_DIR)
    manifest = type(manifest)(**{**manifest.__dict__, "requirements": (("no-such-package-xyz", ">=1"),),
                                 "optional_requirements": (("grpcio[extra]", ""),)})
    got = describe(manifest)
    assert [(d.name, d.specifier, d.installed_version) for d in got.required_dependencies] == [
        ("no-such-package-xyz", ">=1", "")]
    assert got.optional_dependencies[0].installed_version == grpc.__version__   # extras stripped for the lookup


def test_a_plugin_answers_only_the_gateways_token(echo):
    app, _ = echo
    for token, sentence in (("", "Plugins accept calls from the gateway only (missing internal token)."),
                            ("wrong", "The token is not valid for this plugin.")):
        channel = grpc.insecure_channel(f"127.0.0.1:{app.port}")
        md = [("authorization", f"Bearer {token}")] if token else []
        with pytest.raises(grpc.RpcError) as info:
            echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(text="x"), metadata=md, timeout=5)
        assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, sentence)
        channel.close()


def test_a_plugin_built_in_process_without_an_internal_token_checks_none(tmp_path):
    """Tests and tools wire a PluginApp in their own process with no token; the entry point
    (from_env) refuses to start a plugin process that way (below)."""
    app = PluginApp(Settings(home=tmp_path / "home", listen="127.0.0.1:0"), PluginManifest.load(ECHO_DIR))
    build(app)
    port = app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        assert echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(text="x"), timeout=5).text.startswith("x")
    finally:
        channel.close()
        app.stop(grace=0.5)


def test_a_plugins_own_settings_are_typed_before_it_serves(tmp_path):
    manifest = PluginManifest.load(ECHO_DIR)
    manifest = type(manifest)(**{**manifest.__dict__, "settings": (
        SettingSpec("APT_ECHO_LIMIT", "int", 3, "test"), SettingSpec("APT_ECHO_NAME", "str", "a", "test"))})
    app = PluginApp(Settings(home=tmp_path / "home", plugin_env={"APT_ECHO_LIMIT": "7"}), manifest)
    assert app.plugin_settings == {"APT_ECHO_LIMIT": 7, "APT_ECHO_NAME": "a"}
    with pytest.raises(errors.InvalidArgument) as info:
        PluginApp(Settings(home=tmp_path / "other", plugin_env={"APT_ECHO_LIMIT": "many"}), manifest)
    assert info.value.message.startswith("APT_ECHO_LIMIT='many' is not a valid int")


def test_messages_over_the_limit_are_refused_both_ways(tmp_path):
    assert server_options(Settings(max_message_bytes=1234)) == [
        ("grpc.max_receive_message_length", 1234), ("grpc.max_send_message_length", 1234), ("grpc.so_reuseport", 0)]
    app = echo_app(tmp_path, max_message_bytes=4096)
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", app.settings.internal_token)
    try:
        stub = echo_pb2_grpc.EchoStub(channel)
        assert stub.Echo(echo_pb2.EchoRequest(text="x" * 1000), timeout=5).text.startswith("x")
        with pytest.raises(grpc.RpcError) as info:
            stub.Echo(echo_pb2.EchoRequest(text="x" * 5000), timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()
        app.stop(grace=0.5)


def test_a_port_that_cannot_be_bound_says_so(tmp_path, echo):
    busy, _ = echo
    app = echo_app(tmp_path / "second")
    with pytest.raises(errors.Unavailable) as info:
        app.start(f"127.0.0.1:{busy.port}")
    assert info.value.message == (f"Cannot bind 127.0.0.1:{busy.port}: the port is in use or the address is wrong.")


def test_tls_when_a_certificate_is_set_and_plaintext_when_asked(tmp_path):
    (tmp_path / "tls").mkdir()
    ca, cert, key = tls_files(tmp_path / "tls")
    app = echo_app(tmp_path, tls_cert=cert, tls_key=key)
    port = app.start()
    try:
        secure = connect(f"localhost:{port}", app.settings.internal_token, ca_cert=ca)
        assert health_of(secure, "") == SERVING
        secure.close()
        plain = grpc.insecure_channel(f"127.0.0.1:{port}")
        with pytest.raises(grpc.RpcError):
            health_of(plain, "")
        plain.close()
    finally:
        app.stop(grace=0.5)
    plain_app = echo_app(tmp_path / "plain", tls_cert=cert, tls_key=key)
    port = plain_app.start(tls=False)   # the gateway's loopback listener for its own plugins
    try:
        assert health_of(grpc.insecure_channel(f"127.0.0.1:{port}"), "") == SERVING
    finally:
        plain_app.stop(grace=0.5)


def test_stop_cancels_running_jobs_and_stops_serving(tmp_path):
    app = echo_app(tmp_path)
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", app.settings.internal_token)
    job = echo_pb2_grpc.EchoStub(channel).StartEcho(
        echo_pb2.StartEchoRequest(text="x", steps=600, interval_seconds=0.1), timeout=5)
    deadline = time.monotonic() + 10
    while app.jobs.get(job.id).state.name != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    app.stop(grace=0.5)
    app.stop(grace=0.5)   # a second stop does nothing
    assert app.jobs.get(job.id).state.name == "CANCELLED"
    with pytest.raises(grpc.RpcError) as info:
        health_of(channel, "")
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    channel.close()


@pytest.mark.parametrize("use_aio", [False, True], ids=["thread-pool", "asyncio"])
def test_a_service_app_on_either_server_serves_health_and_jobs_then_drains(tmp_path, use_aio):
    token = secrets.token_hex(8)
    settings = Settings(home=tmp_path / "home", listen="127.0.0.1:0", token=token, log_json=False)
    app = ServiceApp(settings, "svc", AuthPolicy(user_tokens=(token,)), use_aio=use_aio, max_threads=4)
    port = app.start()
    assert (tmp_path / "home").is_dir()
    channel = connect(f"127.0.0.1:{port}", token)
    try:
        assert health_of(channel, "") == SERVING and health_of(channel, "apt.plugin.v1.Jobs") == SERVING
        jobs = plugin_pb2_grpc.JobsStub(channel)
        assert list(jobs.ListJobs(job_pb2.ListJobsRequest(), timeout=5).jobs) == []
        watcher = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert next(watcher).status == SERVING
        stopper = threading.Thread(target=app.stop, kwargs={"grace": 0.5})
        stopper.start()
        assert next(watcher).status == NOT_SERVING   # graceful shutdown is announced before the drain
        stopper.join(10)
        assert not stopper.is_alive()
    finally:
        channel.close()


def test_a_service_without_jobs_has_no_jobs_service(tmp_path):
    token = secrets.token_hex(8)
    app = ServiceApp(Settings(home=tmp_path / "h", listen="127.0.0.1:0", token=token), "bare",
                     AuthPolicy(user_tokens=(token,)), serve_jobs=False)
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", token)
    try:
        with pytest.raises(grpc.RpcError) as info:
            health_of(channel, "apt.plugin.v1.Jobs")
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        channel.close()
        app.stop(grace=0.5)


def test_the_service_name_comes_from_the_generated_add_function():
    assert app_module._service_name_of(plugin_pb2_grpc.add_JobsServicer_to_server) == "apt.plugin.v1.Jobs"
    assert app_module._service_name_of(echo_pb2_grpc.add_EchoServicer_to_server) == "apt.plugins.echo.v1.Echo"

    def add_NopeServicer_to_server(servicer, server):
        pass

    add_NopeServicer_to_server.__module__ = plugin_pb2_grpc.__name__
    with pytest.raises(errors.FailedPrecondition) as info:
        app_module._service_name_of(add_NopeServicer_to_server)
    assert info.value.message == "Cannot find the service of add_NopeServicer_to_server."


# ---- the entry point --------------------------------------------------------------------------

def test_a_plugin_started_without_the_internal_token_refuses_to_start(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("APT_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("APT_HOME", str(tmp_path / "h"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        with pytest.raises(errors.FailedPrecondition) as info:
            PluginApp.from_env(ECHO_DIR)
        assert info.value.message == (
            "APT_INTERNAL_TOKEN is not set: a plugin accepts calls from the gateway only. Install it with "
            "'apt-model plugin install' or set the gateway's internal token.")
        monkeypatch.setenv("APT_INTERNAL_TOKEN", "tok")
        monkeypatch.setenv("APT_THREADS", "3")
        seen = []
        monkeypatch.setattr(app_module, "_set_torch_threads", seen.append)
        app = PluginApp.from_env(ECHO_DIR, listen="127.0.0.1:0")
        assert (app.settings.internal_token, app.settings.listen, app.name, seen) == ("tok", "127.0.0.1:0", "echo", [3])
        assert len(root.handlers) == 1 and root.level == logging.INFO   # logs configured for the plugin
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


def test_torch_threads_are_set_when_asked():
    import torch

    before = torch.get_num_threads()
    try:
        app_module._set_torch_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_the_hard_exit_after_sigterm_logs_then_ends_the_process(monkeypatch, caplog):
    ended = threading.Event()
    codes = []
    monkeypatch.setattr(app_module.os, "_exit", lambda code: (codes.append(code), ended.set()))
    monkeypatch.setattr(app_module.logging, "shutdown", lambda: None)
    caplog.set_level(logging.WARNING, logger="apt_model.runtime.app")
    app_module._exit_after(0.05, "svc")
    assert ended.wait(5) and codes == [0]
    assert [r.getMessage() for r in caplog.records] == [
        "svc: still busy 0.1s after SIGTERM (a caller that stopped reading?); exiting now"]


def test_the_hard_exit_timer_does_not_keep_a_drained_process_alive():
    before = set(threading.enumerate())
    app_module._exit_after(60, "svc")
    (timer,) = set(threading.enumerate()) - before
    try:
        assert isinstance(timer, threading.Timer) and timer.daemon
    finally:
        timer.cancel()


def test_store_recovery_at_start_is_logged_and_a_failure_does_not_stop_the_service(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="apt_model.runtime.app")
    app = echo_app(tmp_path)
    monkeypatch.setattr(app.store, "recover", lambda: 2)
    app._recover_store()
    monkeypatch.setattr(app.store, "recover", lambda: 0)
    app._recover_store()

    def broken():
        raise OSError("disk gone")

    monkeypatch.setattr(app.store, "recover", broken)
    app._recover_store()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "echo: settled 2 store entries left unsettled by a stopped process"),
        ("ERROR", "echo: recovering unsettled store entries failed")]
    assert caplog.records[1].exc_info[1].args == ("disk gone",)


# ---- serve(): until SIGTERM or SIGINT, then the drain --------------------------------------------

def _signal_when_handled(signum: int, default) -> threading.Thread:
    """Send ``signum`` to this process once serve() has put its handler in place (never before:
    the default handler would end the test run)."""
    def send():
        deadline = time.monotonic() + 20
        while signal.getsignal(signum) is default and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signum)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def signals():
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield saved
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_prints_its_port_and_drains_on_a_signal(tmp_path, monkeypatch, capsys, caplog, signals, signum):
    caplog.set_level(logging.INFO, logger="apt_model.runtime.app")
    app = echo_app(tmp_path, grace_seconds=0.5)
    armed = []
    monkeypatch.setattr(app_module, "_exit_after", lambda seconds, name: armed.append((seconds, name)))
    sender = _signal_when_handled(signum, signals[signum])
    app.serve()
    sender.join(5)
    assert capsys.readouterr().out == f"echo listening on port {app.port}\n"
    assert armed == [(1.0, "echo")] and app._stopped.is_set()
    assert f"echo: signal {int(signum)}, draining for 0.5s" in [r.getMessage() for r in caplog.records]


def test_a_plugin_process_main_reads_its_settings_wires_and_serves(tmp_path, monkeypatch, capsys, signals):
    for key in [k for k in os.environ if k.startswith("APT_")]:
        monkeypatch.delenv(key)
    for key, value in {"APT_HOME": str(tmp_path / "h"), "APT_INTERNAL_TOKEN": "tok", "APT_LISTEN": "127.0.0.1:0",
                       "APT_GRACE_SECONDS": "0.5", "APT_LOG_JSON": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(app_module, "_exit_after", lambda seconds, name: None)
    wired = []
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    sender = _signal_when_handled(signal.SIGTERM, signals[signal.SIGTERM])
    try:
        PluginApp.main(ECHO_DIR, lambda app: (wired.append(app), build(app)))
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    sender.join(5)
    (app,) = wired
    assert app.settings.internal_token == "tok" and app._stopped.is_set()
    assert capsys.readouterr().out == f"echo listening on port {app.port}\n"


def test_a_generic_handler_is_served_beside_the_servicers(tmp_path):
    token = secrets.token_hex(8)
    app = ServiceApp(Settings(home=tmp_path / "h", listen="127.0.0.1:0", token=token), "gen",
                     AuthPolicy(user_tokens=(token,)), serve_jobs=False)
    app.add_generic_handler(grpc.method_handlers_generic_handler("apt.test.v1.Raw", {
        "Echo": grpc.unary_unary_rpc_method_handler(lambda request, context: request[::-1])}))
    port = app.start()
    channel = connect(f"127.0.0.1:{port}", token)
    try:
        assert channel.unary_unary("/apt.test.v1.Raw/Echo")(b"abc", timeout=5) == b"cba"
    finally:
        channel.close()
        app.stop(grace=0.5)


# ---- the two servers: pool, auth and limits, policies, start, stop ------------------------------

def _raw_app(tmp_path: Path, use_aio: bool, token: str | None = None, handler=None, **settings) -> ServiceApp:
    """A bare ServiceApp (on the asyncio server when ``use_aio``) serving /apt.test.v1.Raw/Echo."""
    kwargs = {"use_aio": True} if use_aio else {}   # the thread-pool server is the default
    app = ServiceApp(Settings(home=tmp_path / "home", listen="127.0.0.1:0", log_json=False, **settings), "svc",
                     AuthPolicy(user_tokens=(token,) if token else ()), serve_jobs=False, max_threads=2, **kwargs)
    app.add_generic_handler(grpc.method_handlers_generic_handler("apt.test.v1.Raw", {
        "Echo": grpc.unary_unary_rpc_method_handler(handler or (lambda request, context: request))}))
    return app


SERVERS = pytest.mark.parametrize("use_aio", [False, True], ids=["thread-pool", "asyncio"])


@SERVERS
def test_handlers_run_in_the_services_own_pool_of_max_threads(tmp_path, use_aio):
    lock, active, peak, names = threading.Lock(), [0], [0], set()

    def slow(request, context):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            names.add(threading.current_thread().name)
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return request

    app = _raw_app(tmp_path, use_aio, handler=slow)
    assert isinstance(app.server, grpc.aio.Server) is use_aio and app.port == 0
    port = app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        call = channel.unary_unary("/apt.test.v1.Raw/Echo")
        futures = [call.future(b"x", timeout=20) for _ in range(5)]
        assert [f.result() for f in futures] == [b"x"] * 5
        assert peak[0] <= 2 and all(n.startswith("svc-rpc") for n in names), (peak, names)
        if use_aio:   # its event loop has a thread of its own, which does not hold the process
            (loop,) = [t for t in threading.enumerate() if t.name == "svc-loop"]
            assert loop.daemon
    finally:
        channel.close()
        app.stop(grace=0.5)


@SERVERS
def test_both_servers_check_tokens_and_message_sizes(tmp_path, use_aio):
    token = secrets.token_hex(8)
    app = _raw_app(tmp_path, use_aio, token, max_message_bytes=4096)
    port = app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    call = channel.unary_unary("/apt.test.v1.Raw/Echo")
    md = [("authorization", f"Bearer {token}")]
    try:
        with pytest.raises(grpc.RpcError) as info:
            call(b"x", timeout=5)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert call(b"x" * 1000, metadata=md, timeout=5) == b"x" * 1000
        with pytest.raises(grpc.RpcError) as info:
            call(b"x" * 5000, metadata=md, timeout=5)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        channel.close()
        app.stop(grace=0.5)


def test_the_app_holds_the_operators_path_and_endpoint_rules_and_its_job_manager(tmp_path):
    (tmp_path / "data").mkdir()
    app = ServiceApp(Settings(home=tmp_path / "home", data_roots=(str(tmp_path / "data"),),
                              allowed_endpoints=("http://127.0.0.1:9",), job_workers=3, max_queued_jobs=5),
                     "svc", AuthPolicy())
    assert app.paths.allows(str(tmp_path / "data" / "x.txt")) and not app.paths.allows(str(tmp_path / "x.txt"))
    assert app.endpoints.check("http://127.0.0.1:9/api", "url") == "http://127.0.0.1:9/api"
    with pytest.raises(errors.PermissionDenied):
        app.endpoints.check("http://127.0.0.1:10/api", "url")
    assert (app.jobs.service, app.jobs._max_workers, app.jobs.max_queued, app.jobs.home) == (
        "svc", 3, 5, app.store.root)


def test_start_on_an_existing_home_logs_the_port_and_recovers_the_store_in_a_thread(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="apt_model.runtime.app")
    (tmp_path / "home").mkdir()   # a restart: the home is there
    app = _raw_app(tmp_path, False)
    ran = []
    recovered = threading.Event()
    monkeypatch.setattr(app.store, "recover", lambda: (ran.append(threading.current_thread()), recovered.set(), 0)[2])
    port = app.start()
    try:
        assert recovered.wait(5)
        (thread,) = ran
        assert (thread.name, thread.daemon) == ("svc-recover", True)   # a long recovery holds nothing
        assert f"svc serving on port {port}" in [r.getMessage() for r in caplog.records]
    finally:
        app.stop(grace=0.5)


def test_stop_waits_for_settling_store_entries_then_says_when_it_could_not(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.WARNING, logger="apt_model.runtime.app")
    app = _raw_app(tmp_path, False)
    app.start()
    waited = []
    monkeypatch.setattr(app.store, "wait_settled", lambda timeout: (waited.append(timeout), False)[1])
    app.stop(grace=0.5)
    assert waited == [1.5]
    assert [r.getMessage() for r in caplog.records] == [
        "svc: stopped while store entries were still settling; the next service to start on this machine "
        "finishes them"]
    app2 = _raw_app(tmp_path / "2", False)
    app2.start()
    monkeypatch.setattr(app2.store, "wait_settled", lambda timeout: True)
    caplog.clear()
    app2.stop(grace=0.5)
    assert caplog.records == []


@SERVERS
def test_a_call_in_flight_finishes_within_the_grace_period(tmp_path, use_aio):
    entered = threading.Event()

    def slow(request, context):
        entered.set()
        time.sleep(0.5)
        return request

    app = _raw_app(tmp_path, use_aio, handler=slow)
    port = app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        future = channel.unary_unary("/apt.test.v1.Raw/Echo").future(b"x", timeout=10)
        assert entered.wait(5)
        app.stop(grace=5)
        assert future.result() == b"x"
    finally:
        channel.close()


def test_the_asyncio_server_stops_its_loop_and_its_pool(tmp_path):
    app = _raw_app(tmp_path, True)
    port = app.start()
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    assert channel.unary_unary("/apt.test.v1.Raw/Echo")(b"x", timeout=5) == b"x"
    channel.close()
    app.stop(grace=0.5)
    left = [t.name for t in threading.enumerate() if t.name == "svc-loop" or t.name.startswith("svc-rpc")]
    assert left == []


CHILD = """
import sys
from pathlib import Path
from apt_model.runtime.app import ServiceApp
from apt_model.runtime.interceptors import AuthPolicy
from apt_model.runtime.settings import Settings
ServiceApp(Settings(home=Path(sys.argv[1]), listen="127.0.0.1:0", grace_seconds=30, log_json=False),
           "child", AuthPolicy()).serve()
"""


def test_a_service_process_prints_its_port_at_once_and_ends_soon_after_sigterm(tmp_path):
    """The local deployer reads the port from the child's stdout, a pipe (block-buffered unless
    flushed); and a drained service exits without waiting out its hard-exit timer."""
    import apt_model

    tree = str(Path(apt_model.__file__).resolve().parents[1])   # the same apt_model as this test's
    # no PYTHONUNBUFFERED (the local deployer and the images set it): serve() must flush by itself
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APT_") and k != "PYTHONUNBUFFERED"},
           "PYTHONPATH": os.pathsep.join([tree, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path / "home")], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = []
        reader = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(30)
        assert line and line[0].startswith("child listening on port "), line
        port = int(line[0].rsplit(" ", 1)[1])
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        assert health_of(channel, "") == SERVING
        channel.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0   # the grace period is 30 s: the drain ended, nothing waited
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_plugin_process_reads_the_settings_its_plugin_yaml_declares_and_logs_json(tmp_path, monkeypatch):
    for key in [k for k in os.environ if k.startswith("APT_")]:
        monkeypatch.delenv(key)
    for key, value in {"APT_HOME": str(tmp_path / "h"), "APT_INTERNAL_TOKEN": "tok",
                       "APT_OLLAMA_URL": "http://127.0.0.1:11434"}.items():
        monkeypatch.setenv(key, value)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        app = PluginApp.from_env(OLLAMA_DIR)
        assert app.plugin_settings == {"APT_OLLAMA_URL": "http://127.0.0.1:11434"}
        (handler,) = root.handlers
        assert isinstance(handler.formatter, logs.JsonFormatter) and handler.formatter.service == "ollama-export"
        monkeypatch.setenv("APT_LOG_JSON", "0")
        PluginApp.from_env(OLLAMA_DIR)
        assert not isinstance(root.handlers[0].formatter, logs.JsonFormatter)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
