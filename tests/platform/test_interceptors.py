"""The one server interceptor (apt_model.runtime.interceptors), rule by rule.

``AuthPolicy.check`` is tested as a function: which token each method needs, how the header is
read, every refusal's whole sentence. The rest runs on real gRPC servers in this process — the
thread-pool server plugins use, and the asyncio server the gateway uses with sync and with async
handlers — with a probe service of every call kind: a refused call of each kind fails before its
request is parsed, the caller's role and request id reach the handler, every kind of exception
maps to its status with the standard details, and each call writes one access log line.
The whole gateway's auth matrix is tests/security/test_auth_matrix.py; this file is what
`make mutate`'s runtime-interceptors target runs (about 10 s).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from apt_model import errors
from apt_model.client import error_details
from apt_model.gen.apt.gateway.v1.gateway_pb2 import TrainRequest as Msg   # a rule: 0 < learning_rate < 1
from apt_model.runtime.interceptors import (AsyncServiceInterceptor, AuthPolicy, ServiceInterceptor,
                                            caller_is_admin)
from apt_model.runtime.logs import request_id

SERVICE = "apt.test.v1.Probe"
ADMIN_METHOD = f"/{SERVICE}/Admin"
USER, ADMIN = "user-token-1", "admin-token-1"
MISSING_GATEWAY = ("No token: set APT_TOKEN or pass --token (local runs: the file token in APT_SECRETS_DIR, by "
                   "default the folder .<APT_HOME name>-secrets beside APT_HOME).")
MISSING_PLUGIN = "Plugins accept calls from the gateway only (missing internal token)."
NEEDS_ADMIN = ("This call needs the admin token: set APT_ADMIN_TOKEN or pass --token with the admin token "
               "(local runs: the file admin_token in APT_SECRETS_DIR, by default the folder "
               ".<APT_HOME name>-secrets beside APT_HOME).")
POLICY = AuthPolicy(user_tokens=("other-user", USER), admin_tokens=("other-admin", ADMIN),
                    admin_methods=frozenset({ADMIN_METHOD}), audience="gateway")


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# ---- AuthPolicy.check -------------------------------------------------------------------------

def test_health_needs_no_token_and_never_makes_the_caller_an_admin():
    assert POLICY.check("/grpc.health.v1.Health/Check", {}) is False
    assert POLICY.check("/grpc.health.v1.Health/Watch", bearer(ADMIN)) is False
    with pytest.raises(errors.Unauthenticated):   # the prefix is the whole service name, not a part of it
        POLICY.check("/grpc.health.v1.HealthX/Check", {})


def test_without_any_token_configured_every_caller_may_do_everything():
    off = AuthPolicy(admin_methods=frozenset({ADMIN_METHOD}))
    assert off.check(ADMIN_METHOD, {}) is True
    assert off.check(f"/{SERVICE}/Unary", bearer("anything")) is True


@pytest.mark.parametrize("policy", [AuthPolicy(user_tokens=(USER,)), AuthPolicy(admin_tokens=(ADMIN,))],
                         ids=["user-tokens-only", "admin-tokens-only"])
def test_one_kind_of_token_configured_is_enough_to_require_a_token(policy):
    with pytest.raises(errors.Unauthenticated) as info:
        policy.check(f"/{SERVICE}/Unary", {})
    assert info.value.message == MISSING_GATEWAY


@pytest.mark.parametrize("header", ["Bearer " + USER, "bearer " + USER, "BEARER " + USER, "Bearer   " + USER + "  "])
def test_the_bearer_scheme_is_read_in_any_case_and_the_token_trimmed(header):
    assert POLICY.check(f"/{SERVICE}/Unary", {"authorization": header}) is False


@pytest.mark.parametrize("metadata", [{}, {"authorization": ""}, {"authorization": "Bearer "},
                                      {"authorization": "Bearer"}, {"authorization": USER},
                                      {"authorization": "Basic " + USER}, {"x-token": "Bearer " + USER}],
                         ids=["none", "empty", "scheme-only", "no-space", "no-scheme", "basic", "other-key"])
def test_a_missing_token_says_where_to_set_one(metadata):
    with pytest.raises(errors.Unauthenticated) as info:
        POLICY.check(f"/{SERVICE}/Unary", metadata)
    assert info.value.message == MISSING_GATEWAY
    plugin = AuthPolicy(user_tokens=("internal",), audience="plugin")
    with pytest.raises(errors.Unauthenticated) as info:
        plugin.check(f"/{SERVICE}/Unary", metadata)
    assert info.value.message == MISSING_PLUGIN


def test_ordinary_methods_take_any_user_or_admin_token_and_say_which():
    for token in (USER, "other-user"):
        assert POLICY.check(f"/{SERVICE}/Unary", bearer(token)) is False
    for token in (ADMIN, "other-admin"):
        assert POLICY.check(f"/{SERVICE}/Unary", bearer(token)) is True


@pytest.mark.parametrize("audience", ["gateway", "plugin"])
def test_an_unknown_token_is_refused_without_repeating_it(audience):
    policy = AuthPolicy(user_tokens=(USER,), admin_tokens=(ADMIN,), audience=audience)
    for token in ("wrong-token", USER + "x", USER[:-1], ADMIN.upper()):
        with pytest.raises(errors.Unauthenticated) as info:
            policy.check(f"/{SERVICE}/Unary", bearer(token))
        assert info.value.message == f"The token is not valid for this {audience}."


def test_admin_methods_take_the_admin_token_only():
    assert POLICY.check(ADMIN_METHOD, bearer(ADMIN)) is True
    assert POLICY.check(ADMIN_METHOD, bearer("other-admin")) is True
    for token in (USER, "other-user"):
        with pytest.raises(errors.PermissionDenied) as info:
            POLICY.check(ADMIN_METHOD, bearer(token))
        assert info.value.message == NEEDS_ADMIN
    with pytest.raises(errors.Unauthenticated) as info:
        POLICY.check(ADMIN_METHOD, bearer("wrong-token"))
    assert info.value.message == "The token is not valid for this gateway."
    with pytest.raises(errors.Unauthenticated) as info:
        POLICY.check(ADMIN_METHOD, {})
    assert info.value.message == MISSING_GATEWAY


def test_admin_methods_with_no_admin_token_configured_refuse_every_user():
    policy = AuthPolicy(user_tokens=(USER,), admin_methods=frozenset({ADMIN_METHOD}))
    with pytest.raises(errors.PermissionDenied):
        policy.check(ADMIN_METHOD, bearer(USER))


# ---- the probe service -----------------------------------------------------------------------

class Relayed(grpc.RpcError):
    """An upstream answer as the gateway relays it (a plugin's NOT_FOUND)."""

    text: str | None = "No job named plugin:42."

    def code(self):
        return grpc.StatusCode.NOT_FOUND

    def details(self):
        return self.text


class RelayedBare(Relayed):
    """An upstream answer without a message."""

    text = None


def _raise(what: str, context) -> None:
    """The failure ``what`` names, raised inside a handler."""
    if what == "typed":
        raise errors.FailedPrecondition("Entry busy.", reason="ENTRY_IN_USE", metadata={"job": "j-1"})
    if what == "invalid":
        raise errors.InvalidArgument("Two fields are wrong.", violations=[("a", "why a"), ("b.c", "why b")])
    if what == "boom":
        raise ValueError("secret detail of the host")
    if what == "bare":
        raise Exception("a plain exception, not an abort")
    if what == "relay":
        raise Relayed()
    if what == "relay-bare":
        raise RelayedBare()
    if what == "rpc-without-code":
        raise grpc.RpcError()
    if what == "abort":
        context.abort(grpc.StatusCode.ALREADY_EXISTS, "Aborted by the handler.")


@dataclass
class Probe:
    """What the handlers saw: how many ran, and whether a stream was closed by its caller."""

    calls: int = 0
    stream_closed: threading.Event | None = None
    blocked: threading.Event | None = None     # a "block" call is in its handler
    release: threading.Event | None = None     # lets it go

    def __post_init__(self):
        self.stream_closed, self.blocked, self.release = threading.Event(), threading.Event(), threading.Event()

    def seen(self, req: Msg) -> Msg:
        self.calls += 1
        return Msg(name=f"{req.name}|admin={caller_is_admin()}|rid={request_id.get()}")


def sync_handlers(probe: Probe):
    def unary(req, context):
        _raise(req.name, context)
        if req.name == "slow":
            time.sleep(0.2)
        if req.name == "block":
            probe.blocked.set()
            probe.release.wait(20)
        return probe.seen(req)

    def server_stream(req, context):
        first = probe.seen(req)
        if req.name == "forever":
            try:
                while True:
                    yield first
                    time.sleep(0.02)
            except GeneratorExit:
                probe.stream_closed.set()
                raise
        yield first
        _raise(req.name, context)
        yield first

    def client_stream(reqs, context):
        names = [r.name for r in reqs]
        _raise(names[-1], context)
        return probe.seen(Msg(name="+".join(names)))

    def bidi(reqs, context):
        for req in reqs:
            _raise(req.name, context)
            yield probe.seen(req)

    return unary, server_stream, client_stream, bidi


def async_handlers(probe: Probe):
    async def unary(req, context):
        if req.name == "abort":
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "Aborted by the handler.")
        _raise(req.name, context)
        if req.name == "slow":
            await asyncio.sleep(0.2)
        if req.name == "hang":
            try:
                await asyncio.sleep(20)
            except asyncio.CancelledError:
                probe.stream_closed.set()
                raise
        return probe.seen(req)

    async def server_stream(req, context):
        first = probe.seen(req)
        if req.name == "forever":
            try:
                while True:
                    yield first
                    await asyncio.sleep(0.02)
            except (GeneratorExit, asyncio.CancelledError):
                probe.stream_closed.set()
                raise
        yield first
        if req.name == "abort":
            await context.abort(grpc.StatusCode.ALREADY_EXISTS, "Aborted by the handler.")
        _raise(req.name, context)
        yield first

    async def client_stream(reqs, context):
        names = [r.name async for r in reqs]
        _raise(names[-1], context)
        return probe.seen(Msg(name="+".join(names)))

    async def bidi(reqs, context):
        async for req in reqs:
            _raise(req.name, context)
            yield probe.seen(req)

    return unary, server_stream, client_stream, bidi


def generic_handler(probe: Probe, asynchronous: bool, answers_streamed: bool = True):
    unary, server_stream, client_stream, bidi = (async_handlers if asynchronous else sync_handlers)(probe)
    des, ser = Msg.FromString, Msg.SerializeToString
    methods = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary, des, ser),
        "Admin": grpc.unary_unary_rpc_method_handler(unary, des, ser),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream, des, ser),
    }
    if answers_streamed:
        methods["ServerStream"] = grpc.unary_stream_rpc_method_handler(server_stream, des, ser)
        methods["Bidi"] = grpc.stream_stream_rpc_method_handler(bidi, des, ser)
    return grpc.method_handlers_generic_handler(SERVICE, methods)


class SyncServer:
    """The thread-pool server, as a plugin runs it."""

    def __init__(self, probe: Probe, policy: AuthPolicy):
        self.server = grpc.server(ThreadPoolExecutor(4), interceptors=[ServiceInterceptor(policy)])
        self.server.add_generic_rpc_handlers((generic_handler(probe, asynchronous=False),))
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait()


class AsyncServer:
    """The asyncio server, as the gateway runs it: async handlers on its loop, sync ones in its
    migration thread pool."""

    def __init__(self, probe: Probe, policy: AuthPolicy, async_handlers: bool, pool_threads: int = 4):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="probe-aio", daemon=True)
        self.thread.start()

        async def start():
            server = grpc.aio.server(migration_thread_pool=ThreadPoolExecutor(pool_threads),
                                     interceptors=[AsyncServiceInterceptor(policy)])
            # sync handlers that stream answers are left out, as the gateway has none: in the
            # migration pool they cannot fail after a first answer (grpc: TOO_MANY_OPERATIONS,
            # the caller waits out its deadline), and a caller's cancel blocks their thread for good
            server.add_generic_rpc_handlers((generic_handler(probe, asynchronous=async_handlers,
                                                             answers_streamed=async_handlers),))
            health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
            port = server.add_insecure_port("127.0.0.1:0")
            await server.start()
            return server, port

        self.server, self.port = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


KINDS = ["sync", "aio-sync-handlers", "aio-async-handlers"]
CALL_KINDS = ["Unary", "ServerStream", "ClientStream", "Bidi"]


@dataclass
class Served:
    channel: grpc.Channel
    probe: Probe
    kinds: list[str]    # the call kinds it serves
    server: str = ""    # which of KINDS

    def __iter__(self):
        return iter((self.channel, self.probe, self.kinds))


@pytest.fixture(params=KINDS)
def served(request):
    probe = Probe()
    server = (SyncServer(probe, POLICY) if request.param == "sync"
              else AsyncServer(probe, POLICY, async_handlers=request.param == "aio-async-handlers"))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    kinds = ["Unary", "ClientStream"] if request.param == "aio-sync-handlers" else CALL_KINDS
    try:
        yield Served(channel, probe, kinds, request.param)
    finally:
        channel.close()
        server.stop()


@pytest.fixture(params=[k for k in KINDS if k != "aio-sync-handlers"])
def streaming(request):
    """A server whose handlers stream answers (the gateway's are async ones)."""
    probe = Probe()
    server = (SyncServer(probe, POLICY) if request.param == "sync"
              else AsyncServer(probe, POLICY, async_handlers=True))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield Served(channel, probe, CALL_KINDS, request.param)
    finally:
        channel.close()
        server.stop()


def _call(channel, kind: str, names: list[str], metadata=(), raw: bytes | None = None):
    """One call of ``kind`` ("Unary", "Admin", "ServerStream", "ClientStream", "Bidi"); the
    answers' names, in order."""
    ser = (lambda b: b) if raw is not None else Msg.SerializeToString
    args = dict(request_serializer=ser, response_deserializer=Msg.FromString)
    path = f"/{SERVICE}/{kind}"
    requests = [raw] if raw is not None else [Msg(name=n) for n in names]
    md = tuple(metadata)
    if kind in ("Unary", "Admin"):
        return [channel.unary_unary(path, **args)(requests[0], metadata=md, timeout=10).name]
    if kind == "ServerStream":
        return [m.name for m in channel.unary_stream(path, **args)(requests[0], metadata=md, timeout=10)]
    if kind == "ClientStream":
        return [channel.stream_unary(path, **args)(iter(requests), metadata=md, timeout=10).name]
    return [m.name for m in channel.stream_stream(path, **args)(iter(requests), metadata=md, timeout=10)]


def _fails(channel, kind, names, metadata=(), raw=None) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        _call(channel, kind, names, metadata, raw)
    return info.value


def _md(token: str, rid: str = "") -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] + ([("x-request-id", rid)] if rid else [])


def _trailers(err: grpc.RpcError) -> dict[str, str]:
    return {m.key: m.value for m in err.trailing_metadata() or () if not m.key.endswith("-bin")}


# ---- auth on real servers --------------------------------------------------------------------

def test_every_call_kind_is_refused_without_a_token_before_its_handler_runs(served):
    channel, probe, kinds = served
    for kind in kinds:
        err = _fails(channel, kind, ["x"], metadata=[("x-request-id", "rid-refused")])
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, MISSING_GATEWAY), kind
        d = error_details(err)
        assert (d.reason, d.domain, d.request_id) == ("UNAUTHENTICATED", "apt-platform", "rid-refused"), kind
        assert _trailers(err) == {"apt-error-reason": "UNAUTHENTICATED", "x-request-id": "rid-refused"}, kind
    for kind in kinds:
        err = _fails(channel, kind, ["x"], metadata=_md("wrong"))
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED,
                                               "The token is not valid for this gateway."), kind
    err = _fails(channel, "Admin", ["x"], metadata=_md(USER))
    assert (err.code(), err.details()) == (grpc.StatusCode.PERMISSION_DENIED, NEEDS_ADMIN)
    assert error_details(err).reason == "PERMISSION_DENIED"
    assert probe.calls == 0


def test_a_refused_callers_bytes_are_never_parsed(served):
    channel, probe, kinds = served
    garbage = b"\xff\xff\xff\xff"   # not a protobuf message
    for kind in kinds:
        err = _fails(channel, kind, [], metadata=_md("wrong"), raw=garbage)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, kind
    # the same bytes from an accepted caller reach the parser (and fail there, not in a handler)
    err = _fails(channel, "Unary", [], metadata=_md(USER), raw=garbage)
    assert err.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK)
    assert probe.calls == 0


def test_every_call_kind_runs_for_a_valid_token_and_knows_the_callers_role(served):
    channel, probe, kinds = served
    assert _call(channel, "Unary", ["a"], _md(USER, "rid-1")) == ["a|admin=False|rid=rid-1"]
    assert _call(channel, "Unary", ["a"], _md("other-admin", "rid-2")) == ["a|admin=True|rid=rid-2"]
    assert _call(channel, "Admin", ["a"], _md(ADMIN, "rid-3")) == ["a|admin=True|rid=rid-3"]
    assert _call(channel, "ClientStream", ["a", "b"], _md(USER, "rid-4")) == ["a+b|admin=False|rid=rid-4"]
    assert probe.calls == 4


def test_streamed_answers_reach_the_caller_with_the_request_id(streaming):
    channel, probe, _ = streaming
    assert _call(channel, "ServerStream", ["s"], _md(USER, "rid-5")) == ["s|admin=False|rid=rid-5"] * 2
    assert _call(channel, "Bidi", ["p", "q"], _md(ADMIN, "rid-6")) == ["p|admin=True|rid=rid-6",
                                                                        "q|admin=True|rid=rid-6"]
    assert probe.calls == 3


def test_a_call_without_a_request_id_gets_a_fresh_one(served):
    channel, _, kinds = served
    ids = [_call(channel, "Unary", ["a"], _md(USER))[0].split("rid=")[1] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{12}", rid) for rid in ids), ids
    assert ids[0] != ids[1]


def test_health_answers_without_a_token_and_an_unknown_method_is_unimplemented(served):
    channel, _, kinds = served
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(f"/{SERVICE}/Nope")(b"", metadata=_md(USER), timeout=10)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


# ---- errors -----------------------------------------------------------------------------------

def test_a_typed_error_is_its_status_with_reason_metadata_and_request_id(served):
    channel, _, kinds = served
    for kind in kinds:
        err = _fails(channel, kind, ["typed"], _md(USER, "rid-t"))
        assert (err.code(), err.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "Entry busy."), kind
        d = error_details(err)
        assert (d.reason, d.domain, d.request_id, d.metadata) == ("ENTRY_IN_USE", "apt-platform", "rid-t",
                                                                   {"job": "j-1"}), kind
        assert _trailers(err) == {"apt-error-reason": "ENTRY_IN_USE", "x-request-id": "rid-t"}, kind


def test_fields_at_fault_are_sent_as_bad_request_violations(served):
    channel, _, kinds = served
    err = _fails(channel, "Unary", ["invalid"], _md(USER))
    assert (err.code(), err.details()) == (grpc.StatusCode.INVALID_ARGUMENT, "Two fields are wrong.")
    assert error_details(err).fields == (("a", "why a"), ("b.c", "why b"))


def test_the_requests_field_rules_are_checked_before_the_handler(served):
    channel, probe, kinds = served
    for kind in [k for k in ("Unary", "ServerStream") if k in kinds]:
        with pytest.raises(grpc.RpcError) as info:
            path = f"/{SERVICE}/{kind}"
            call = (channel.unary_unary if kind == "Unary" else channel.unary_stream)(
                path, request_serializer=Msg.SerializeToString, response_deserializer=Msg.FromString)
            result = call(Msg(name="x", learning_rate=3.0), metadata=_md(USER), timeout=10)
            list(result) if kind == "ServerStream" else result
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, kind
        assert [f for f, _ in error_details(info.value).fields] == ["learning_rate"], kind
    assert probe.calls == 0


def test_an_unknown_error_is_internal_with_the_request_id_and_its_traceback_stays_in_the_log(served, caplog):
    channel, _, kinds = served
    caplog.set_level(logging.INFO, logger="apt.access")
    for kind in kinds:
        caplog.clear()
        err = _fails(channel, kind, ["boom"], _md(USER, "rid-b"))
        assert (err.code(), err.details()) == (
            grpc.StatusCode.INTERNAL,
            "Internal error (ValueError). Request id rid-b; the service log has the details."), kind
        d = error_details(err)
        assert (d.reason, d.request_id) == ("INTERNAL", "rid-b"), kind
        assert _trailers(err) == {"apt-error-reason": "INTERNAL", "x-request-id": "rid-b"}, kind
        errors_logged = _errors_logged(caplog)
        assert [(r.getMessage(), r.method) for r in errors_logged] == [
            (f"unhandled error in /{SERVICE}/{kind}", f"/{SERVICE}/{kind}")], kind
        assert "secret detail of the host" in str(errors_logged[0].exc_info[1])


@pytest.mark.parametrize("what", ["bare", "rpc-without-code"])
def test_an_exception_that_only_looks_like_an_abort_or_a_relay_is_internal(served, what):
    channel, _, kinds = served
    err = _fails(channel, "Unary", [what], _md(USER, "rid-x"))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert err.details().startswith("Internal error (") and "rid-x" in err.details()


def test_a_relayed_upstream_answer_keeps_its_code_and_message(served):
    channel, _, kinds = served
    for kind in kinds:
        err = _fails(channel, kind, ["relay"], _md(USER, "rid-r"))
        assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "No job named plugin:42."), kind
        assert "apt-error-reason" not in _trailers(err), kind
    err = _fails(channel, "Unary", ["relay-bare"], _md(USER))
    assert (err.code(), err.details()) == (grpc.StatusCode.NOT_FOUND, "")


def test_an_abort_passes_through_untouched(served, caplog):
    channel, _, kinds = served
    caplog.set_level(logging.INFO, logger="apt.access")
    for kind in [k for k in ("Unary", "ServerStream") if k in kinds]:
        err = _fails(channel, kind, ["abort"], _md(USER))
        assert (err.code(), err.details()) == (grpc.StatusCode.ALREADY_EXISTS, "Aborted by the handler."), kind
    assert not _errors_logged(caplog)
    if served.server != "aio-sync-handlers":   # (that context has no code(); the gateway's sync handlers never abort)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _access_lines(caplog, "Unary"):
            time.sleep(0.05)
        assert [r.code for r in _access_lines(caplog, "Unary")] == ["ALREADY_EXISTS"]


def test_a_stream_that_fails_after_an_answer_delivers_it_then_the_status(streaming):
    channel, _, _ = streaming
    got = []
    with pytest.raises(grpc.RpcError) as info:
        for m in channel.unary_stream(f"/{SERVICE}/ServerStream", request_serializer=Msg.SerializeToString,
                                      response_deserializer=Msg.FromString)(Msg(name="typed"), metadata=_md(USER),
                                                                            timeout=10):
            got.append(m.name)
    assert len(got) == 1 and info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_stream_the_caller_cancels_is_closed_and_not_an_error(streaming, caplog):
    channel, probe, _ = streaming
    caplog.set_level(logging.INFO, logger="apt.access")
    stream = channel.unary_stream(f"/{SERVICE}/ServerStream", request_serializer=Msg.SerializeToString,
                                  response_deserializer=Msg.FromString)(Msg(name="forever"), metadata=_md(USER),
                                                                        timeout=10)
    next(stream)
    stream.cancel()
    assert probe.stream_closed.wait(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not _access_lines(caplog, "ServerStream"):
        time.sleep(0.05)
    assert not _errors_logged(caplog)
    assert [r.code for r in _access_lines(caplog, "ServerStream")] == ["CANCELLED"]


# ---- the access log ---------------------------------------------------------------------------

def _errors_logged(caplog) -> list[logging.LogRecord]:
    """The platform's error lines (grpc's own asyncio bookkeeping logs some of its own)."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("apt")]

def _access_lines(caplog, kind: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "apt.access" and r.levelno == logging.INFO
            and getattr(r, "method", "") == f"/{SERVICE}/{kind}"]


def test_each_call_writes_one_access_line_with_method_status_and_duration(served, caplog):
    channel, _, kinds = served
    caplog.set_level(logging.INFO, logger="apt.access")
    _call(channel, "Unary", ["slow"], _md(USER))
    _fails(channel, "Admin", ["x"], _md(USER))
    _fails(channel, "ClientStream", ["typed"], _md(USER))
    deadline = time.monotonic() + 5   # the line is written as the call ends, maybe after the answer left
    while time.monotonic() < deadline and not _access_lines(caplog, "ClientStream"):
        time.sleep(0.05)
    lines = {k: _access_lines(caplog, k) for k in ("Unary", "Admin", "ClientStream")}
    assert {k: [(r.getMessage(), r.code) for r in v] for k, v in lines.items()} == {
        "Unary": [(f"/{SERVICE}/Unary OK", "OK")],
        "Admin": [(f"/{SERVICE}/Admin PERMISSION_DENIED", "PERMISSION_DENIED")],
        "ClientStream": [(f"/{SERVICE}/ClientStream FAILED_PRECONDITION", "FAILED_PRECONDITION")],
    }
    slow = lines["Unary"][0].duration_ms
    assert isinstance(slow, float) and 200 <= slow < 5000 and slow == round(slow, 2), slow
    assert lines["Admin"][0].duration_ms < 200


def test_every_streaming_method_of_the_gateway_is_async():
    """What the aio-sync-handlers server above leaves out, the gateway must not have: a sync
    handler that streams answers, or reads a stream, in the asyncio server's migration pool."""
    from apt_model.gen.apt.gateway.v1 import gateway_pb2
    from apt_model.gen.apt.plugin.v1 import plugin_pb2
    from gateway.core.service import CoreServicer
    from gateway.jobs import GatewayJobsServicer
    from gateway.plugins_service import PluginRegistryServicer

    sync_streams = []
    for servicer, service in ((CoreServicer, gateway_pb2.DESCRIPTOR.services_by_name["Core"]),
                              (PluginRegistryServicer, gateway_pb2.DESCRIPTOR.services_by_name["PluginRegistry"]),
                              (GatewayJobsServicer, plugin_pb2.DESCRIPTOR.services_by_name["Jobs"])):
        for method in service.methods:
            behaviour = getattr(servicer, method.name)
            if (method.client_streaming or method.server_streaming) and not (
                    inspect.iscoroutinefunction(behaviour) or inspect.isasyncgenfunction(behaviour)):
                sync_streams.append(f"{service.name}.{method.name}")
    assert sync_streams == []


def test_a_refusal_needs_no_thread_of_the_asyncio_servers_pool():
    """Refusals run on the event loop: callers without a token get their answer even while every
    thread of the migration pool is taken by the gateway's sync handlers."""
    probe = Probe()
    server = AsyncServer(probe, POLICY, async_handlers=False, pool_threads=1)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    unary = channel.unary_unary(f"/{SERVICE}/Unary", request_serializer=Msg.SerializeToString,
                                response_deserializer=Msg.FromString)
    try:
        busy = unary.future(Msg(name="block"), metadata=_md(USER), timeout=20)
        assert probe.blocked.wait(10)
        with pytest.raises(grpc.RpcError) as info:
            unary(Msg(name="x"), metadata=_md("wrong"), timeout=3)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        probe.release.set()
    assert busy.result(10).name.startswith("block|")
    channel.close()
    server.stop()


def test_a_coroutine_the_caller_cancels_is_cancelled_not_an_error(caplog):
    caplog.set_level(logging.INFO, logger="apt.access")
    probe = Probe()
    server = AsyncServer(probe, POLICY, async_handlers=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        call = channel.unary_unary(f"/{SERVICE}/Unary", request_serializer=Msg.SerializeToString,
                                   response_deserializer=Msg.FromString).future(
            Msg(name="hang"), metadata=_md(USER), timeout=20)
        time.sleep(0.3)
        call.cancel()
        assert probe.stream_closed.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not _access_lines(caplog, "Unary"):
            time.sleep(0.05)
        assert [r.code for r in _access_lines(caplog, "Unary")] == ["CANCELLED"]
        assert not _errors_logged(caplog)
    finally:
        channel.close()
        server.stop()
