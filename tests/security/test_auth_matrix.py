"""The authentication matrix (issue 15, item 8): every RPC of every service, read from the
protobuf descriptors, called in its own call kind without a valid credential.

Rows: every method of every generated ``apt.*`` service (gateway Core and PluginRegistry,
``apt.plugin.v1`` Plugin and Jobs, every plugin's typed service) plus server reflection, each
called with the default request (an iterator of one default message for streaming requests).
Columns: no token, a wrong token, the internal token, the user token without the ``Bearer``
scheme, and a malformed request body without a token; the user token for admin methods.
Through the gateway (apt-router, and the in-process Python router) every call must end
UNAUTHENTICATED (PERMISSION_DENIED for admin methods with the user token) before any message;
straight at a plugin's endpoint every token but the internal one must. Only health is open.

A new RPC or service is covered as soon as its stubs are generated: nobody lists methods here,
and the services each server announces by reflection must all be in the matrix.
"""

from __future__ import annotations

import importlib
import pkgutil
import secrets
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import apt_model.gen.apt as generated
from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from gateway.server import ADMIN_METHODS
from gateway.testing import Gateway, start_gateway, stop_gateway
from .conftest import assert_no_leak

CALL_TIMEOUT = 5.0  # s; an unguarded streaming call may wait for input that never comes
DESCRIBE = "/apt.plugin.v1.Plugin/Describe"
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
REFLECTION = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
MALFORMED = b"\xff"  # a truncated varint: no message type parses it


@dataclass(frozen=True)
class Rpc:
    service: ServiceDescriptor
    method: MethodDescriptor

    @property
    def path(self) -> str:
        return f"/{self.service.full_name}/{self.method.name}"

    @property
    def kind(self) -> str:
        return {(False, False): "unary_unary", (False, True): "unary_stream",
                (True, False): "stream_unary", (True, True): "stream_stream"}[
            (self.method.client_streaming, self.method.server_streaming)]

    def default_request(self) -> bytes:
        return message_factory.GetMessageClass(self.method.input_type)().SerializeToString()


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    messages: int  # response messages received before the status
    trailers: str


def invoke(channel: grpc.Channel, rpc: Rpc, metadata: list[tuple[str, str]], body: bytes | None = None
           ) -> Outcome:
    """Call ``rpc`` in its own kind with raw bytes (the default request unless ``body``)."""
    body = rpc.default_request() if body is None else body
    multicallable = getattr(channel, rpc.kind)(rpc.path)  # no (de)serialisers: bytes both ways
    request = iter([body]) if rpc.method.client_streaming else body
    received = 0
    try:
        if rpc.method.server_streaming:
            for _ in multicallable(request, metadata=metadata, timeout=CALL_TIMEOUT):
                received += 1
        else:
            multicallable(request, metadata=metadata, timeout=CALL_TIMEOUT)
            received = 1
    except grpc.RpcError as exc:
        trailers = " ".join(f"{k}={v}" for k, v in (exc.trailing_metadata() or ()))
        return Outcome(exc.code(), exc.details() or "", received, trailers)
    return Outcome(grpc.StatusCode.OK, "", received, "")


# -- the rows: from the descriptors -----------------------------------------------------------
def generated_services() -> dict[str, ServiceDescriptor]:
    """Every service of every generated module under apt_model.gen.apt, by full name."""
    out = {}
    for info in pkgutil.walk_packages(generated.__path__, generated.__name__ + "."):
        if info.name.endswith("_pb2"):
            for service in importlib.import_module(info.name).DESCRIPTOR.services_by_name.values():
                out[service.full_name] = service
    return out


GENERATED = generated_services()
KNOWN = {**GENERATED, REFLECTION.full_name: REFLECTION}


def rows(service_names) -> list[Rpc]:
    return [Rpc(KNOWN[s], m) for s in sorted(service_names) for m in KNOWN[s].methods]


def served_services(channel: grpc.Channel) -> set[str]:
    """What the server announces by reflection (the channel must carry a valid token)."""
    return set(ProtoReflectionDescriptorDatabase(channel).get_services())


def gateway_rows() -> list[Rpc]:
    # every apt.* service: the gateway's own, and every plugin's (routed, or refused when the
    # plugin is not installed) - installed or not, no caller without a token gets past auth
    return rows({*GENERATED, REFLECTION.full_name})


def plugin_rows(gw: Gateway, plugin: str) -> list[Rpc]:
    entry = gw.app.catalog.entries[plugin]
    return rows({*entry.services, "apt.plugin.v1.Plugin", "apt.plugin.v1.Jobs", REFLECTION.full_name})


# -- the columns ------------------------------------------------------------------------------
def bearer(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]


def gateway_columns(gw: Gateway) -> dict[str, list[tuple[str, str]]]:
    s = gw.settings
    return {"no token": [], "wrong token": bearer("wrong-" + secrets.token_hex(16)),
            "internal token": bearer(s.internal_token),
            "user token without Bearer": [("authorization", s.token)]}


def plugin_columns(gw: Gateway) -> dict[str, list[tuple[str, str]]]:
    s = gw.settings
    return {"no token": [], "wrong token": bearer("wrong-" + secrets.token_hex(16)),
            "user token": bearer(s.token), "admin token": bearer(s.admin_token)}


def check(channel, rpc: Rpc, column: str, metadata, expected: grpc.StatusCode, failures: list[str],
          body: bytes | None = None) -> None:
    out = invoke(channel, rpc, metadata, body)
    sent = [v.split()[-1] for k, v in metadata if k == "authorization"]
    problems = []
    if out.code != expected:
        problems.append(f"{out.code.name} (expected {expected.name})")
    if out.messages:
        problems.append(f"{out.messages} response message(s)")
    if any(t and (t in out.details or t in out.trailers) for t in sent):
        problems.append("the token is echoed")
    if "Traceback" in out.details or 'File "' in out.details:
        problems.append("a traceback reached the caller")
    if problems:
        failures.append(f"{rpc.path} [{rpc.kind}] {column}: {', '.join(problems)}: {out.details[:160]!r}")


def run_matrix(channel, rpcs: list[Rpc], columns, expected=grpc.StatusCode.UNAUTHENTICATED,
               extra_metadata=lambda rpc: [], body: bytes | None = None) -> list[str]:
    failures: list[str] = []
    for rpc in rpcs:
        extra = extra_metadata(rpc)
        for column, metadata in columns.items():
            check(channel, rpc, column, [*metadata, *extra], expected, failures, body)
    return failures


def describe_names(plugin: str):
    # Describe through the gateway names its plugin in metadata (as 'apt-model plugin describe' does)
    return lambda rpc: [("x-apt-plugin", plugin)] if rpc.path == DESCRIBE else []


# -- the gateways -----------------------------------------------------------------------------
def install_every_plugin(gw: Gateway) -> list[str]:
    """Install echo and every built plugin of the catalogue (all import in the dev venv)."""
    names = sorted(n for n, e in gw.app.catalog.entries.items() if e.available)
    for name in names:
        gw.app.registry.install(name)
    return names


@pytest.fixture(scope="module")
def native(attack_gateway) -> Gateway:
    """apt-router in front (the default), echo and every built plugin installed."""
    assert attack_gateway.settings.router == "native"
    attack_gateway.plugins = install_every_plugin(attack_gateway)
    return attack_gateway


@pytest.fixture(scope="module")
def python_router(tmp_path_factory) -> Gateway:
    """APT_ROUTER=python, echo installed."""
    gw = start_gateway(tmp_path_factory.mktemp("python-router") / "home", router="python")
    gw.app.registry.install("echo")
    gw.plugins = ["echo"]
    yield gw
    stop_gateway(gw)


@pytest.fixture(params=["native", "python"])
def gw(request) -> Gateway:
    return request.getfixturevalue("native" if request.param == "native" else "python_router")


def test_rows_cover_every_call_kind_and_the_download():
    kinds = {r.kind for r in gateway_rows()}
    assert kinds == {"unary_unary", "unary_stream", "stream_unary", "stream_stream"}
    paths = {r.path for r in gateway_rows()}
    assert {"/apt.gateway.v1.Core/DownloadModel", "/apt.plugins.echo.v1.Echo/Chat",
            "/apt.gateway.v1.PluginRegistry/InstallPlugin", "/apt.plugin.v1.Jobs/WatchJob",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"} <= paths


def test_every_service_the_gateway_announces_is_in_the_matrix(gw):
    announced = served_services(gw.channel())
    assert announced - {HEALTH} <= {r.service.full_name for r in gateway_rows()}


def test_every_service_a_plugin_announces_is_in_the_matrix(native):
    for plugin in native.plugins:
        for endpoint in native.app.registry.installed(plugin).endpoints:
            announced = served_services(connect(endpoint, native.settings.internal_token))
            assert announced - {HEALTH} <= {r.service.full_name for r in plugin_rows(native, plugin)}, plugin


def test_gateway_refuses_every_rpc_without_a_valid_token(gw):
    with grpc.insecure_channel(gw.address) as channel:
        failures = run_matrix(channel, gateway_rows(), gateway_columns(gw), extra_metadata=describe_names("echo"))
    assert not failures, f"{len(failures)} call(s) got past auth:\n" + "\n".join(failures)
    assert_no_leak(gw)


def test_gateway_refuses_malformed_requests_before_parsing_them(gw):
    """Without a token the body is never parsed: UNAUTHENTICATED, not a decoding error."""
    with grpc.insecure_channel(gw.address) as channel:
        failures = run_matrix(channel, gateway_rows(), {"malformed request, no token": []},
                              extra_metadata=describe_names("echo"), body=MALFORMED)
    assert not failures, f"{len(failures)} call(s) parsed before auth:\n" + "\n".join(failures)


def test_admin_methods_refuse_the_user_token(gw):
    registry = gateway_pb2.DESCRIPTOR.services_by_name["PluginRegistry"]
    # standard reads are Get*/List*; every other registry method changes what runs: admin only
    writes = {f"/{registry.full_name}/{m.name}" for m in registry.methods if not m.name.startswith(("Get", "List"))}
    assert writes <= ADMIN_METHODS
    admin_rows = [r for r in gateway_rows() if r.path in ADMIN_METHODS]
    assert {r.path for r in admin_rows} == ADMIN_METHODS  # every admin method exists in the contracts
    failures: list[str] = []
    with grpc.insecure_channel(gw.address) as channel:
        for rpc in admin_rows:
            check(channel, rpc, "user token", bearer(gw.settings.token), grpc.StatusCode.PERMISSION_DENIED, failures)
    assert not failures, "\n".join(failures)


def test_plugins_refuse_every_token_but_the_internal_one(native):
    failures: list[str] = []
    for plugin in native.plugins:
        for endpoint in native.app.registry.installed(plugin).endpoints:
            with grpc.insecure_channel(endpoint) as channel:
                failures += [f"{plugin}: {f}" for f in
                             run_matrix(channel, plugin_rows(native, plugin), plugin_columns(native))]
    assert not failures, f"{len(failures)} call(s) got past auth:\n" + "\n".join(failures)
    assert_no_leak(native)


def test_plugins_refuse_malformed_requests_before_parsing_them(native):
    failures: list[str] = []
    for plugin in native.plugins:
        endpoint = native.app.registry.installed(plugin).endpoints[0]
        with grpc.insecure_channel(endpoint) as channel:
            failures += [f"{plugin}: {f}" for f in run_matrix(
                channel, plugin_rows(native, plugin), {"malformed request, no token": []}, body=MALFORMED)]
    assert not failures, f"{len(failures)} call(s) parsed before auth:\n" + "\n".join(failures)


def test_the_valid_tokens_get_through(gw):
    """The control for the matrix: the same calls with the right token are answered."""
    replies = echo_pb2_grpc.EchoStub(gw.channel()).Count(echo_pb2.CountRequest(n=2), timeout=10)
    assert [r.index for r in replies] == [0, 1]
    endpoint = gw.app.registry.installed("echo").endpoints[0]
    replies = echo_pb2_grpc.EchoStub(connect(endpoint, gw.settings.internal_token)).Count(
        echo_pb2.CountRequest(n=2), timeout=10)
    assert [r.index for r in replies] == [0, 1]


def test_download_streams_nothing_without_a_token(native):
    marker = secrets.token_bytes(4096)
    with native.app.store.create("models", "private", operation="test", overwrite=True) as folder:
        (folder / "weights.bin").write_bytes(marker)
    rpc = Rpc(gateway_pb2.DESCRIPTOR.services_by_name["Core"],
              gateway_pb2.DESCRIPTOR.services_by_name["Core"].methods_by_name["DownloadModel"])
    request = gateway_pb2.DownloadModelRequest(name="private").SerializeToString()
    failures: list[str] = []
    with grpc.insecure_channel(native.address) as channel:
        for column, metadata in gateway_columns(native).items():
            out = invoke(channel, rpc, metadata, request)
            if (out.code, out.messages) != (grpc.StatusCode.UNAUTHENTICATED, 0):
                failures.append(f"{column}: {out.code.name}, {out.messages} message(s)")
        assert invoke(channel, rpc, bearer(native.settings.token), request).messages > 0  # the control
    assert not failures, failures


def test_health_stays_open(gw):
    targets = [gw.address, *(e for p in gw.plugins for e in gw.app.registry.installed(p).endpoints)]
    for address in targets:
        with grpc.insecure_channel(address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, address
            watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
            assert next(watch).status == health_pb2.HealthCheckResponse.SERVING, address
            watch.cancel()


# -- reflection (what grpcurl uses) needs the token -------------------------------------------
def _reflection_error(channel) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        ProtoReflectionDescriptorDatabase(channel).get_services()
    return info.value


def test_gateway_reflection_needs_the_token(gw):
    assert _reflection_error(connect(gw.address)).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reflection_error(connect(gw.address, "wrong")).code() == grpc.StatusCode.UNAUTHENTICATED
    for token in (gw.settings.token, gw.settings.admin_token):
        db = ProtoReflectionDescriptorDatabase(connect(gw.address, token))
        assert {"apt.gateway.v1.Core", "apt.gateway.v1.PluginRegistry"} <= set(db.get_services())
        assert db.FindFileContainingSymbol("apt.gateway.v1.Core").package == "apt.gateway.v1"


def test_plugin_reflection_needs_the_internal_token(native):
    endpoint = native.app.registry.installed("echo").endpoints[0]
    for token in ("", "wrong", native.settings.token, native.settings.admin_token):
        assert _reflection_error(connect(endpoint, token)).code() == grpc.StatusCode.UNAUTHENTICATED, token[:4]
    db = ProtoReflectionDescriptorDatabase(connect(endpoint, native.settings.internal_token))
    assert "apt.plugins.echo.v1.Echo" in db.get_services()
    assert db.FindFileContainingSymbol("apt.plugins.echo.v1.Echo").package == "apt.plugins.echo.v1"
