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


def _rules_contract():
    """A message type built here, with one field per kind of rule and nested and repeated
    messages, so that every branch of the generic check meets a value just inside and just
    outside its rule (the services' own contracts have no repeated message with rules, and their
    ranges mostly start at 0, which a field without presence never checks)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    from apt_model.gen.apt.options.v1 import options_pb2

    T = descriptor_pb2.FieldDescriptorProto
    f = descriptor_pb2.FileDescriptorProto(name="apt_test/rules.proto", package="apt_test.rules", syntax="proto3",
                                           dependency=[options_pb2.DESCRIPTOR.name])

    def field(msg, name, number, kind, *, rules=None, repeated=False, type_name="", optional=False):
        fd = msg.field.add(name=name, number=number, type=kind,
                           label=T.LABEL_REPEATED if repeated else T.LABEL_OPTIONAL)
        if type_name:
            fd.type_name = type_name
        if rules is not None:
            fd.options.Extensions[options_pb2.rules].CopyFrom(options_pb2.FieldRules(**rules))
        if optional:  # proto3 `optional`: a synthetic oneof gives the field presence
            fd.proto3_optional = True
            fd.oneof_index = len(msg.oneof_decl)
            msg.oneof_decl.add(name=f"_{name}")

    inner = f.message_type.add(name="Inner")
    field(inner, "n", 1, T.TYPE_INT32, rules=dict(min=1, max=10))
    field(inner, "label", 2, T.TYPE_STRING, rules=dict(required=True))
    outer = f.message_type.add(name="Outer")
    field(outer, "one", 1, T.TYPE_MESSAGE, type_name=".apt_test.rules.Inner")
    field(outer, "many", 2, T.TYPE_MESSAGE, type_name=".apt_test.rules.Inner", repeated=True)
    field(outer, "at_least", 3, T.TYPE_INT32, rules=dict(min=2))
    field(outer, "at_most", 4, T.TYPE_DOUBLE, rules=dict(max=5))
    field(outer, "above", 5, T.TYPE_DOUBLE, rules=dict(greater_than=0))
    field(outer, "below", 6, T.TYPE_DOUBLE, rules=dict(less_than=1))
    field(outer, "between", 7, T.TYPE_DOUBLE, rules=dict(greater_than=0.5, less_than=2))
    field(outer, "span", 8, T.TYPE_INT32, rules=dict(min=3, max=7))
    field(outer, "pick", 9, T.TYPE_STRING, rules=dict(choices=["a", "b"]))
    field(outer, "picks", 10, T.TYPE_STRING, rules=dict(choices=["a", "b"]), repeated=True)
    field(outer, "opt", 11, T.TYPE_DOUBLE, rules=dict(greater_than=0), optional=True)
    field(outer, "must", 12, T.TYPE_STRING, rules=dict(required=True))
    pool = descriptor_pool.Default()
    try:
        desc = pool.FindMessageTypeByName("apt_test.rules.Outer")
    except KeyError:
        pool.AddSerializedFile(f.SerializeToString())
        desc = pool.FindMessageTypeByName("apt_test.rules.Outer")
    return message_factory.GetMessageClass(desc), message_factory.GetMessageClass(desc.fields_by_name["one"].message_type)


def test_each_rule_accepts_its_edges_and_refuses_just_past_them():
    Outer, _ = _rules_contract()
    edges = [dict(at_least=2), dict(at_most=5), dict(above=1e-9), dict(below=0.999), dict(between=0.501),
             dict(between=1.999), dict(span=3), dict(span=7), dict(pick="a"), dict(picks=["b", "a"]), dict(opt=1e-9)]
    for given in edges:
        assert validation.violations(Outer(must="x", **given)) == [], given
    refused = [
        (dict(at_least=1), "at_least must be at least 2, got 1"),
        (dict(at_most=5.5), "at_most must be at most 5, got 5.5"),
        (dict(above=-1), "above must be greater than 0, got -1"),
        (dict(below=1), "below must be less than 1, got 1"),
        (dict(between=0.5), "between must be strictly between 0.5 and 2, got 0.5"),
        (dict(between=2), "between must be strictly between 0.5 and 2, got 2"),
        (dict(span=2), "span must be between 3 and 7, got 2"),
        (dict(span=8), "span must be between 3 and 7, got 8"),
        (dict(pick="c"), "pick 'c' is not one of: a, b"),
        (dict(picks=["a", "c", "d"]), "picks 'c' is not one of: a, b"),  # the first bad item only
        (dict(opt=0.0), "opt must be greater than 0, got 0"),  # given, though zero: the field has presence
    ]
    for given, why in refused:
        field_name = next(iter(given))
        assert validation.violations(Outer(must="x", **given)) == [(field_name, why)], given
    assert validation.violations(Outer()) == [("must", "must is required")]


def test_nested_and_repeated_messages_are_checked_under_their_dotted_names():
    Outer, Inner = _rules_contract()
    found = validation.violations(Outer(one=Inner(n=11, label="l"), many=[Inner(n=5, label="l"), Inner(n=12, label="l")],
                                       at_least=1, must="x"))
    assert found == [("one.n", "one.n must be between 1 and 10, got 11"),
                     ("many[1].n", "many[1].n must be between 1 and 10, got 12"),
                     ("at_least", "at_least must be at least 2, got 1")]
    assert validation.violations(Outer(one=Inner(n=10, label="l"), many=[Inner(n=1, label="l")], must="x")) == []
    # a nested message not given is not checked (its required fields with it); a given one is
    assert validation.violations(Outer(must="x")) == []
    assert validation.violations(Outer(one=Inner(n=1), must="x")) == [("one.label", "one.label is required")]
    with pytest.raises(errors.InvalidArgument) as err:
        validation.check(Outer(one=Inner(n=11, label="l"), at_least=1))
    assert err.value.message == ("one.n must be between 1 and 10, got 11; at_least must be at least 2, got 1; "
                                 "must is required.")
    assert [f for f, _ in err.value.violations] == ["one.n", "at_least", "must"]
