"""The router forwards every call kind through the gateway to a real plugin process."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from apt_model.client import connect, error_details
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from gateway.testing import start_gateway, stop_gateway


@pytest.fixture(params=["native", "python"])
def gateway(request, tmp_path):
    """Every router test runs against apt-router (the default) and the in-process Python router."""
    gw = start_gateway(tmp_path / "home", router=request.param)
    yield gw
    stop_gateway(gw)


def _stub(gw):
    return echo_pb2_grpc.EchoStub(gw.channel())


def test_unary_carries_metadata_both_ways(echo_gateway):
    reply, call = _stub(echo_gateway).Echo.with_call(echo_pb2.EchoRequest(text="hi"),
                                                     metadata=[("x-test", "v1"), ("x-request-id", "rid-1")])
    assert reply.text == "hi"
    assert reply.metadata["x-test"] == "v1"
    assert reply.metadata["x-request-id"] == "rid-1"  # the caller's request id reaches the plugin
    assert ("x-echo-trailer", "yes") in [(m.key, m.value) for m in call.trailing_metadata()]


def test_the_client_token_never_reaches_the_plugin(echo_gateway):
    reply = _stub(echo_gateway).Echo(echo_pb2.EchoRequest(text="x"))
    assert "authorization" not in reply.metadata


def test_server_streaming(echo_gateway):
    assert [r.index for r in _stub(echo_gateway).Count(echo_pb2.CountRequest(n=5))] == [0, 1, 2, 3, 4]


def test_client_streaming(echo_gateway):
    reply = _stub(echo_gateway).Collect(iter([echo_pb2.EchoRequest(text=t) for t in "abcd"]))
    assert (reply.text, reply.index) == ("abcd", 4)


def test_bidi_streaming(echo_gateway):
    replies = _stub(echo_gateway).Chat(iter([echo_pb2.EchoRequest(text=t) for t in ("a", "b", "c")]))
    assert [r.text for r in replies] == ["A", "B", "C"]


def test_large_stream_passes_unchanged(echo_gateway):
    total = 0
    for chunk in _stub(echo_gateway).Artifact(echo_pb2.ArtifactRequest(total_bytes=20 << 20, chunk_bytes=1 << 20)):
        total += len(chunk.data)
    assert total == 20 << 20


def test_deadline_propagates_to_the_plugin(echo_gateway):
    stub = _stub(echo_gateway)
    start = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        stub.Echo(echo_pb2.EchoRequest(text="slow", sleep_seconds=5), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - start < 2
    # the plugin saw its call end too (its context went inactive), not only the gateway
    deadline = time.monotonic() + 5
    while stub.GetStats(echo_pb2.GetStatsRequest()).cancelled_calls < 1:
        assert time.monotonic() < deadline, "the plugin never saw the deadline"
        time.sleep(0.1)


def test_client_cancel_propagates_to_the_plugin(echo_gateway):
    stub = _stub(echo_gateway)
    call = stub.Count(echo_pb2.CountRequest(n=1000, interval_seconds=0.05))
    next(call)
    call.cancel()
    deadline = time.monotonic() + 5
    while stub.GetStats(echo_pb2.GetStatsRequest()).cancelled_calls < 1:
        assert time.monotonic() < deadline, "the plugin never saw the cancellation"
        time.sleep(0.1)


def test_typed_errors_keep_code_and_message(echo_gateway):
    stub = _stub(echo_gateway)
    with pytest.raises(grpc.RpcError) as err:
        stub.Fail(echo_pb2.FailRequest(error="NotFound", message="no such thing"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "no such thing"
    trailers = dict((m.key, m.value) for m in err.value.trailing_metadata())
    assert trailers["apt-error-reason"] == "NOT_FOUND"
    # the plugin's google.rpc.Status details pass through either router unchanged
    details = error_details(err.value)
    assert (details.reason, details.domain) == ("NOT_FOUND", "apt-platform")
    assert details.request_id and details.request_id == trailers["x-request-id"]


def test_unknown_exception_is_internal_without_traceback(echo_gateway):
    with pytest.raises(grpc.RpcError) as err:
        _stub(echo_gateway).Fail(echo_pb2.FailRequest(error="RuntimeError", message="secret detail"))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert "secret detail" not in err.value.details()
    assert "Traceback" not in err.value.details()
    assert "Request id" in err.value.details()
    details = error_details(err.value)
    assert details.reason == "INTERNAL" and details.request_id in err.value.details()


def test_not_installed_plugin_is_unavailable_with_the_install_command(gateway):
    with pytest.raises(grpc.RpcError) as err:
        _stub(gateway).Echo(echo_pb2.EchoRequest(text="x"))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "apt-model plugin install echo" in err.value.details()
    # answered by the router itself (apt-router or the Python one): the same standard details
    details = error_details(err.value)
    assert (details.reason, details.domain) == ("UNAVAILABLE", "apt-platform") and details.request_id


def test_replicas_are_balanced_round_robin(gateway):
    gateway.app.registry.install("echo", replicas=2)
    inst = gateway.app.registry.installed("echo")
    assert len(inst.endpoints) == 2
    stub = _stub(gateway)
    for _ in range(4):
        stub.Echo(echo_pb2.EchoRequest(text="x", sleep_seconds=0.3))  # cancelled by deadline below
    # each replica served calls: ask both directly how many calls were cut by a deadline
    for _ in range(4):
        with pytest.raises(grpc.RpcError):
            stub.Echo(echo_pb2.EchoRequest(text="x", sleep_seconds=5), timeout=0.2)
    time.sleep(0.5)
    counts = []
    for endpoint in inst.endpoints:
        direct = echo_pb2_grpc.EchoStub(connect(endpoint, gateway.settings.internal_token))
        counts.append(direct.GetStats(echo_pb2.GetStatsRequest()).cancelled_calls)
    assert counts == [2, 2]


def test_many_concurrent_callers(echo_gateway):
    stub = _stub(echo_gateway)
    errors = []

    def worker(i):
        try:
            for j in range(20):
                assert stub.Echo(echo_pb2.EchoRequest(text=f"{i}-{j}")).text == f"{i}-{j}"
        except Exception as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors


def test_python_router_forwards_a_method_it_has_no_descriptor_for_as_a_stream(tmp_path):
    """A plugin whose proto the gateway never imported (one from outside the repository): the
    Python router cannot know the call kind, so it forwards bidi streaming, which carries every
    kind; a stream sent down a unary path would lose all but one message."""
    from google.protobuf import descriptor_pool

    gw = start_gateway(tmp_path / "home", router="python")
    try:
        gw.app.registry.install("echo")
        gw.app.router._pool = descriptor_pool.DescriptorPool()  # knows no plugin service
        stub = _stub(gw)
        assert [r.index for r in stub.Count(echo_pb2.CountRequest(n=3))] == [0, 1, 2]
        assert stub.Collect(iter([echo_pb2.EchoRequest(text=t) for t in "ab"])).text == "ab"
        assert [r.text for r in stub.Chat(iter([echo_pb2.EchoRequest(text=t) for t in "xy"]))] == ["X", "Y"]
        assert stub.Echo(echo_pb2.EchoRequest(text="one")).text == "one"
    finally:
        stop_gateway(gw)
