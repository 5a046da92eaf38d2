"""info / list / size / debug on real stored models, including corrupt ones."""

from __future__ import annotations

import json

import pytest

from apt_model import errors
from apt_model.modeling.io import load_model
from apt_model.testing import make_tiny_model
from gateway.core.debug import debug_model
from gateway.core.inspect import list_models, model_info
from apt_model.modeling.memory import activation_bytes
from gateway.core.size import model_size


def test_info(store, tiny):
    info = model_info(store, tiny)
    model = load_model(store.model(tiny).path)
    assert info["parameters"] == sum(p.numel() for p in model.parameters())
    assert (info["architecture"], info["model_type"], info["dtype"]) == ("LlamaForCausalLM", "llama", "float32")
    assert info["tokenizer"]["vocab_size"] == 320 and info["tokenizer"]["type"] == "BPE"
    assert info["tokenizer"]["special_tokens"]["eos"] == "</s>" and info["tokenizer"]["has_chat_template"]
    assert {f["path"] for f in info["files"]} >= {"config.json", "model.safetensors"}
    assert info["lineage"]["operation"] == "test-fixture"


def test_list_filter_and_sort(store):
    make_tiny_model(store, "a-model", vocab_size=300)
    make_tiny_model(store, "b-model", size="small", vocab_size=300)
    with store.create("models", "c-child", operation="copy", parent="a-model") as tmp:
        for f in store.model("a-model").path.iterdir():
            if f.name != "apt.json":
                (tmp / f.name).write_bytes(f.read_bytes())
    assert [r["name"] for r in list_models(store)] == ["a-model", "b-model", "c-child"]
    assert [r["name"] for r in list_models(store, order_by="parameters", descending=True)][0] == "b-model"
    assert [r["name"] for r in list_models(store, filter="parent=a-model")] == ["c-child"]
    assert [r["name"] for r in list_models(store, filter="b-")] == ["b-model"]
    assert len(list_models(store, filter="arch=llama")) == 3
    with pytest.raises(errors.InvalidArgument):
        list_models(store, order_by="colour")


def test_size(store, tiny):
    s = model_size(store, tiny, batch_size=2, seq_len=16)
    model = load_model(store.model(tiny).path)
    assert s["total_parameters"] == sum(p.numel() for p in model.parameters())
    assert s["parameters_by_module_type"]["Embedding"] == 320 * 64
    assert s["parameters_by_module_type"]["Linear"] + s["parameters_by_module_type"]["Embedding"] + \
        s["parameters_by_module_type"]["LlamaRMSNorm"] == s["total_parameters"]
    assert s["inference_bytes_fp32"] > s["inference_bytes_fp16"] > s["inference_bytes_int8"]
    b = s["training_breakdown"]
    assert s["training_bytes"] == sum(v for k, v in b.items() if k not in ("batch_size", "seq_len"))
    assert b["adamw_moments"] == 8 * s["total_parameters"]
    bigger = activation_bytes(json.loads((store.model(tiny).path / "config.json").read_text()), 4, 16, True)
    assert bigger["layers"] == 2 * b["activations_layers"]


def test_debug_healthy(store, tiny, corpus_file):
    report = debug_model(store, tiny, str(corpus_file))
    assert report["healthy"], report
    checks = {f["check"] for f in report["findings"]}
    assert {"files.checksums", "model.loadable", "weights.finite", "train.step", "environment",
            "data.readable"} <= checks


def _corrupt(path):
    data = bytearray(path.read_bytes())
    path.write_bytes(bytes(data[: len(data) // 2]))  # truncated mid-tensor


def test_corrupt_safetensors(store, tiny):
    _corrupt(store.model(tiny).path / "model.safetensors")
    report = debug_model(store, tiny)
    assert not report["healthy"]
    errs = {f["check"]: f for f in report["findings"] if f["severity"] == "error"}
    assert "model.safetensors: sha256 differs" in errs["files.checksums"]["message"]
    assert "truncated" in errs["files.weights_readable"]["message"] and errs["files.weights_readable"]["hint"]
    with pytest.raises(errors.FailedPrecondition, match="corrupt"):
        model_info(store, tiny)
    with pytest.raises(errors.FailedPrecondition):
        model_size(store, tiny)


def test_debug_finds_nan_and_vocab_mismatch(store, tiny, tmp_path):
    from safetensors.torch import load_file, save_file

    path = store.model(tiny).path / "model.safetensors"
    tensors = load_file(path)
    tensors["model.norm.weight"][0] = float("nan")
    save_file(tensors, path, metadata={"format": "pt"})
    report = debug_model(store, tiny)
    bad = {f["check"]: f for f in report["findings"] if f["severity"] == "error"}
    assert "model.norm.weight" in bad["weights.finite"]["message"]
    assert "train.forward" in bad or "train.backward" in bad

    make_tiny_model(store, "small-vocab", vocab_size=300)
    cfg_path = store.model("small-vocab").path / "config.json"
    tok_path = store.model(tiny).path / "tokenizer.json"
    (store.model("small-vocab").path / "tokenizer.json").write_bytes(tok_path.read_bytes())  # 320-token tokenizer
    report = debug_model(store, "small-vocab")
    bad = {f["check"]: f for f in report["findings"] if f["severity"] == "error"}
    assert "320 tokens but the embedding only 300" in bad["tokenizer.vocab_fits"]["message"]
    assert json.loads(cfg_path.read_text())["vocab_size"] == 300


def test_debug_reports_unreadable_data(store, tiny, tmp_path):
    (tmp_path / "bad.txt").write_bytes(b"\xff\xfe\xfa")
    report = debug_model(store, tiny, str(tmp_path / "bad.txt"))
    assert any(f["check"] == "data.readable" and f["severity"] == "error" for f in report["findings"])


def test_unknown_model(store):
    with pytest.raises(errors.NotFound):
        model_info(store, "ghost")
    with pytest.raises(errors.InvalidArgument):
        model_info(store, "../etc")
