"""The rules on request fields (apt.options.v1.rules in the proto) are checked by one generic
pass before any servicer runs, in every service, with one BadRequest violation per field."""

from __future__ import annotations

import math

import grpc
import pytest

from apt_model import errors
from apt_model.client import error_details
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc
from apt_model.runtime import validation


def test_rules_read_from_the_descriptors():
    given = dict(name="m", strategy="magnitude")
    assert validation.violations(pb.PruneRequest(ratio=0.5, **given)) == []  # zero = not given: the defaults apply
    assert validation.violations(pb.PruneRequest(ratio=0.5, batch_size=8, seq_len=128, **given)) == []
    assert dict(validation.violations(pb.PruneRequest())) == {
        "name": "name is required", "strategy": "strategy is required", "ratio": "ratio is required"}
    found = dict(validation.violations(pb.PruneRequest(ratio=1.5, batch_size=5000, seq_len=4, lottery_rounds=-1,
                                                       **given)))
    assert found == {
        "ratio": "ratio must be strictly between 0 and 1, got 1.5",
        "batch_size": "batch_size must be between 1 and 1024, got 5000",
        "seq_len": "seq_len must be between 8 and 32768, got 4",
        "lottery_rounds": "lottery_rounds must be between 0 and 20, got -1",
    }
    assert dict(validation.violations(pb.PruneRequest(ratio=math.nan)))["ratio"] == "ratio is not a number"
    with pytest.raises(errors.InvalidArgument) as err:
        validation.check(pb.PruneRequest(learning_rate=2.0, ratio=0.5, **given))
    assert err.value.violations == [("learning_rate", "learning_rate must be strictly between 0 and 1, got 2")]
    validation.check(b"raw bytes the router relays")  # not decoded: nothing to check


def test_a_plugin_refuses_before_its_servicer_runs(echo_gateway):
    """Through the gateway to the model-pruning plugin: the model does not exist either, but the
    rules come first (the servicer would have answered NOT_FOUND), and no job is started."""
    gw = echo_gateway
    gw.app.registry.install("model-pruning")
    stub = pruning_pb2_grpc.PruningStub(gw.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.StartPrune(pb.PruneRequest(name="no-such-model", strategy="magnitude", ratio=0.5, batch_size=5000,
                                        seq_len=4), timeout=30)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [f for f, _ in error_details(err.value).fields] == ["batch_size", "seq_len"]
    assert "batch_size must be between 1 and 1024" in err.value.details()
