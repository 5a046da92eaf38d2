"""The control plane's read cache (gateway.core.readcache) through a real gateway: repeated
info/list calls are answered without reading the entry again, and every kind of write to the
shared store — a new entry, an overwrite, a removal, a settled or updated apt.json, a file
damaged in place, an entry copied in or deleted by hand — is seen at the very next call, whoever
wrote it."""

from __future__ import annotations

import shutil

import grpc
import pytest

from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from apt_model.store import Store, write_json_atomic
from apt_model.testing import make_tiny_model
from gateway.core import inspect


@pytest.fixture(scope="module")
def world(gateway):
    store = Store(gateway.settings.home)
    for name in ("rc-a", "rc-b"):
        if not store.exists("models", name):
            make_tiny_model(store, name, vocab_size=320)
    return store, gateway_pb2_grpc.CoreStub(gateway.channel())


@pytest.fixture
def reads(monkeypatch):
    """How many times the servicer really read an entry (info) or the store (list)."""
    counts = {"info": 0, "list": 0}
    real_info, real_list = inspect.model_info, inspect.list_models

    def info(*a, **k):
        counts["info"] += 1
        return real_info(*a, **k)

    def listing(*a, **k):
        counts["list"] += 1
        return real_list(*a, **k)

    monkeypatch.setattr(inspect, "model_info", info)
    monkeypatch.setattr(inspect, "list_models", listing)
    return counts


def _names(core) -> list[str]:
    return [m.name for m in core.ListModels(pb.ListModelsRequest(order_by="name")).models]


def test_repeated_reads_are_answered_from_the_cache(world, reads):
    _, core = world
    first = [core.GetModelInfo(pb.GetModelInfoRequest(name="rc-a")) for _ in range(5)]
    assert all(i == first[0] for i in first) and reads["info"] <= 1
    lists = [_names(core) for _ in range(5)]
    assert all(n == lists[0] for n in lists) and reads["list"] <= 1
    core.ListModels(pb.ListModelsRequest(order_by="created"))  # another question: read once more
    assert reads["list"] <= 2


def test_every_write_is_seen_at_the_next_call(world, reads):
    store, core = world
    assert "rc-new" not in _names(core)
    make_tiny_model(store, "rc-new", vocab_size=320)  # a write the gateway did not make
    assert "rc-new" in _names(core)

    before = core.GetModelInfo(pb.GetModelInfoRequest(name="rc-new"))
    make_tiny_model(store, "rc-tmp", size="small", vocab_size=320)
    with store.create("models", "rc-new", operation="overwrite", overwrite=True) as tmp:
        for f in store.model("rc-tmp").path.iterdir():
            if f.name != "apt.json":
                shutil.copy(f, tmp / f.name)
    after = core.GetModelInfo(pb.GetModelInfoRequest(name="rc-new"))
    assert after.parameters > before.parameters and after.lineage["operation"] == "overwrite"

    entry = store.model("rc-new")  # apt.json rewritten in place (as when checksums settle)
    write_json_atomic(entry.path / "apt.json", {**entry.meta, "metrics": {"marker": 7}})
    assert core.GetModelInfo(pb.GetModelInfoRequest(name="rc-new")).metrics["marker"] == 7

    weights = next(entry.path.glob("*.safetensors"))  # damaged in place: info says so at once
    weights.write_bytes(weights.read_bytes()[:-1000])
    with pytest.raises(grpc.RpcError) as err:
        core.GetModelInfo(pb.GetModelInfoRequest(name="rc-new"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION and "truncated" in err.value.details()

    def children_of_a() -> list[str]:
        return [m.name for m in core.ListModels(pb.ListModelsRequest(filter="parent=rc-a")).models]

    assert "rc-new" not in children_of_a()  # this answer is now kept
    store.update_meta("models", "rc-new", lineage={"parent": "rc-a", "operation": "relabel"})
    assert "rc-new" in children_of_a()

    shutil.copytree(store.model("rc-a").path, store.root / "models" / "rc-copy")  # by hand, no API
    assert "rc-copy" in _names(core)
    shutil.rmtree(store.root / "models" / "rc-copy")
    assert "rc-copy" not in _names(core)

    store.remove("models", "rc-new")
    store.remove("models", "rc-tmp")
    assert "rc-new" not in _names(core)
    with pytest.raises(grpc.RpcError) as err:
        core.GetModelInfo(pb.GetModelInfoRequest(name="rc-new"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
