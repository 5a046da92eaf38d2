"""Every error answer carries the standard google.rpc.Status details (docs/api.md "Errors"):
ErrorInfo with reason and domain, RequestInfo with the call's request id, BadRequest naming
the fields at fault — from the gateway's own services, from auth refusals, from apt-router's
own answers, and on the CLI's error line. Real gateway (native router) on loopback."""

from __future__ import annotations

import grpc
import pytest

from apt_model.client import error_details
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("details") / "home")
    yield gw
    stop_gateway(gw)


def _fail(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def _trailers(err: grpc.RpcError) -> dict[str, str]:
    return {m.key: m.value for m in err.trailing_metadata() or () if not m.key.endswith("-bin")}


def test_not_found_has_error_info_and_the_request_id_it_was_sent(gw):
    core = gateway_pb2_grpc.CoreStub(gw.channel())
    err = _fail(lambda: core.GetModelInfo(pb.GetModelInfoRequest(name="nope"), metadata=[("x-request-id", "rid-42")]))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    d = error_details(err)
    assert (d.reason, d.domain, d.request_id) == ("NOT_FOUND", "apt-platform", "rid-42")
    trailers = _trailers(err)   # the two plain trailers stay for clients that cannot decode details
    assert (trailers["apt-error-reason"], trailers["x-request-id"]) == ("NOT_FOUND", "rid-42")


def test_bad_request_names_every_field_at_fault(gw):
    core = gateway_pb2_grpc.CoreStub(gw.channel())
    err = _fail(lambda: core.GetModelSize(pb.GetModelSizeRequest(name="x", batch_size=-1)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(err).fields] == ["batch_size"]

    err = _fail(lambda: core.StartTrain(pb.TrainRequest(name="t", dataset="d", seq_len=1, learning_rate=3.0,
                                                        batch_size=1, max_steps=10, eval_every=1)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    fields = dict(error_details(err).fields)
    assert set(fields) == {"seq_len", "learning_rate"}, fields
    # the one generic pass (the rules on gateway.proto), before the servicer: its wording
    assert "strictly between 0 and 1" in fields["learning_rate"] and fields["seq_len"] in err.details()


def test_auth_refusals_carry_details(gw):
    core = gateway_pb2_grpc.CoreStub(grpc.insecure_channel(gw.address))
    err = _fail(lambda: core.GetStatus(pb.GetStatusRequest()))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    d = error_details(err)
    assert (d.reason, d.domain) == ("UNAUTHENTICATED", "apt-platform") and d.request_id


def test_apt_routers_own_answers_carry_details(gw):
    """A :path that is no gRPC method is answered by apt-router itself, before any request id."""
    channel = grpc.insecure_channel(gw.address)
    bad = channel.unary_unary("/apt.plugins.x", request_serializer=None, response_deserializer=None)
    err = _fail(lambda: bad(b"", metadata=[("authorization", f"Bearer {gw.settings.token}")], timeout=5))
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    d = error_details(err)
    assert (d.reason, d.domain, d.request_id) == ("UNIMPLEMENTED", "apt-platform", "")


def test_the_cli_prints_fields_and_the_request_id(gw):
    out = run_cli(gw, "size", "x", "--batch-size", "-1")
    assert out.returncode == 3, out.stderr
    assert "[fields: batch_size]" in out.stderr and "[request id " in out.stderr, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
