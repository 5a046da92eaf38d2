"""GGUF conversion read back with gguf.GGUFReader; bad input; cancel and disk full leave nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

from apt_model import errors

from apt_ollama import archs, vocab
from apt_ollama.gguf_export import convert

Q = gguf.GGMLQuantizationType


def _fields(reader: gguf.GGUFReader) -> dict:
    return {k: f.contents() for k, f in reader.fields.items()}


def _hf_tensors(folder: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


@pytest.mark.parametrize("outtype", ["f32", "f16", "q8_0"])
def test_llama_readback(llama_model, tmp_path, recorder, outtype):
    info = convert(llama_model, tmp_path / "m.gguf", outtype, recorder)
    r = gguf.GGUFReader(tmp_path / "m.gguf")
    f = _fields(r)
    config = json.loads((llama_model / "config.json").read_text())
    tj = json.loads((llama_model / "tokenizer.json").read_text())
    assert f["general.architecture"] == "llama"
    assert f["general.file_type"] == {"f32": 0, "f16": 1, "q8_0": 7}[outtype]
    assert f["llama.context_length"] == config["max_position_embeddings"]
    assert f["llama.embedding_length"] == config["hidden_size"]
    assert f["llama.block_count"] == config["num_hidden_layers"]
    assert f["llama.feed_forward_length"] == config["intermediate_size"]
    assert f["llama.attention.head_count"] == config["num_attention_heads"]
    assert f["llama.attention.head_count_kv"] == config["num_key_value_heads"]
    assert f["llama.rope.dimension_count"] == config["head_dim"]
    assert f["llama.rope.freq_base"] == pytest.approx(config["rope_parameters"]["rope_theta"])
    assert f["llama.attention.layer_norm_rms_epsilon"] == pytest.approx(config["rms_norm_eps"])
    assert f["tokenizer.ggml.model"] == "gpt2" and f["tokenizer.ggml.pre"] == "gpt-2"
    tokens = f["tokenizer.ggml.tokens"]
    assert len(tokens) == config["vocab_size"]
    assert all(tokens[i] == t for t, i in tj["model"]["vocab"].items())
    assert f["tokenizer.ggml.merges"][:3] == [" ".join(m) for m in tj["model"]["merges"][:3]]
    types = f["tokenizer.ggml.token_type"]
    assert types[:5] == [vocab.CONTROL] * 5 and set(types[5:]) == {vocab.NORMAL}
    assert (f["tokenizer.ggml.bos_token_id"], f["tokenizer.ggml.eos_token_id"]) == (1, 2)
    assert f["tokenizer.ggml.padding_token_id"] == 0 and f["tokenizer.ggml.add_bos_token"] is False
    assert "<|im_start|>" in f["tokenizer.chat_template"]

    by_name = {t.name: t for t in r.tensors}
    hf = _hf_tensors(llama_model)
    assert len(by_name) == info.n_tensors == len(hf)  # untied: output.weight present
    for hf_name, arr in hf.items():
        t = by_name[archs.gguf_name(hf_name, archs.read_hparams(config))]
        assert tuple(reversed(t.shape.tolist())) == arr.shape  # GGUF lists ne0 (row length) first
        if arr.ndim == 1:
            assert t.tensor_type == Q.F32
        elif outtype == "q8_0":
            assert t.tensor_type == (Q.Q8_0 if arr.shape[-1] % 32 == 0 else Q.F16)
        else:
            assert t.tensor_type == {"f32": Q.F32, "f16": Q.F16}[outtype]


def test_llama_qk_rows_are_interleaved_per_head(llama_model, tmp_path, recorder):
    convert(llama_model, tmp_path / "m.gguf", "f32", recorder)
    by_name = {t.name: t for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    hf = _hf_tensors(llama_model)
    q_hf, k_hf = hf["model.layers.0.self_attn.q_proj.weight"], hf["model.layers.0.self_attn.k_proj.weight"]
    q, k = np.array(by_name["blk.0.attn_q.weight"].data), np.array(by_name["blk.0.attn_k.weight"].data)
    hd = 16
    # Head 0 of q in GGUF: rows [x0, y0, x1, y1, ...] where HF has [x0, x1, ..., y0, y1, ...].
    assert np.array_equal(q[0], q_hf[0]) and np.array_equal(q[1], q_hf[hd // 2]) and np.array_equal(q[2], q_hf[1])
    assert np.array_equal(k[hd + 1], k_hf[hd + hd // 2])  # second KV head, first y row
    assert not np.array_equal(q, q_hf)
    v_hf = hf["model.layers.0.self_attn.v_proj.weight"]
    assert np.array_equal(np.array(by_name["blk.0.attn_v.weight"].data), v_hf)


def test_q8_0_falls_back_to_f16_with_a_warning(llama_model, tmp_path, recorder):
    info = convert(llama_model, tmp_path / "m.gguf", "q8_0", recorder)
    # intermediate_size 176 is not a multiple of 32: ffn_down rows cannot be Q8_0 blocks.
    assert info.type_counts["F16"] == 2
    assert [w for w in recorder.warnings if "ffn_down" in w and "F16" in w and "176" in w]
    t = {t.name: t for t in gguf.GGUFReader(tmp_path / "m.gguf").tensors}
    assert t["blk.0.ffn_down.weight"].tensor_type == Q.F16 and t["blk.0.ffn_up.weight"].tensor_type == Q.Q8_0


def test_qwen2_readback(qwen2_model, tmp_path, recorder):
    convert(qwen2_model, tmp_path / "q.gguf", "f16", recorder)
    r = gguf.GGUFReader(tmp_path / "q.gguf")
    f = _fields(r)
    assert f["general.architecture"] == "qwen2" and f["tokenizer.ggml.pre"] == "qwen2"
    assert f["qwen2.attention.head_count_kv"] == 2 and f["qwen2.attention.layer_norm_rms_epsilon"] == pytest.approx(1e-6)
    names = {t.name: t for t in r.tensors}
    assert "output.weight" not in names  # tied: llama.cpp reuses token_embd
    assert names["blk.1.attn_q.bias"].tensor_type == Q.F32 and names["blk.1.attn_k.bias"].shape.tolist() == [32]
    hf = _hf_tensors(qwen2_model)
    q_hf = hf["model.layers.0.self_attn.q_proj.weight"]  # qwen2 runs NeoX RoPE: no re-ordering
    np.testing.assert_array_equal(np.array(names["blk.0.attn_q.weight"].data), q_hf.astype(np.float16))


def _write_bf16_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """A safetensors file in the format's own layout: u64 header size, JSON header, raw data."""
    header, offset = {}, 0
    for name, arr in tensors.items():
        header[name] = {"dtype": "BF16", "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as fh:
        fh.write(len(blob).to_bytes(8, "little") + blob)
        for arr in tensors.values():
            fh.write(np.ascontiguousarray(arr).tobytes())


def test_bf16_checkpoint_matches_its_f32_widening(llama_model, tmp_path, recorder):
    src = tmp_path / "bf16"
    src.mkdir()
    for p in llama_model.iterdir():
        if p.name != "model.safetensors":
            (src / p.name).write_bytes(p.read_bytes())
    # bf16 = the high 16 bits of f32 (truncation).
    raw = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in _hf_tensors(llama_model).items()}
    _write_bf16_safetensors(src / "model.safetensors", raw)
    convert(src, tmp_path / "b.gguf", "f32", recorder)
    t = {t.name: t for t in gguf.GGUFReader(tmp_path / "b.gguf").tensors}
    want = (raw["model.embed_tokens.weight"].astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(np.array(t["token_embd.weight"].data), want)


def test_unsupported_architecture_names_the_supported_ones(llama_model, copy_model, tmp_path, recorder):
    bad = copy_model(llama_model, architectures=["GPT2LMHeadModel"], model_type="gpt2")
    with pytest.raises(errors.InvalidArgument, match="LlamaForCausalLM.*Qwen2ForCausalLM"):
        convert(bad, tmp_path / "x.gguf", "f16", recorder)
    assert list(tmp_path.glob("*.gguf*")) == []


def test_unknown_outtype(llama_model, tmp_path, recorder):
    with pytest.raises(errors.InvalidArgument, match="q4_k.*f32, f16, q8_0"):
        convert(llama_model, tmp_path / "x.gguf", "q4_k", recorder)


def test_unsupported_rope_scaling_is_refused(llama_model, copy_model, tmp_path, recorder):
    bad = copy_model(llama_model, rope_parameters={"rope_theta": 1e4, "rope_type": "yarn", "factor": 4.0})
    with pytest.raises(errors.InvalidArgument, match="yarn"):
        convert(bad, tmp_path / "x.gguf", "f16", recorder)


def test_pre_tokenizer_names():
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    assert vocab.pre_tokenizer_name(bl) == "gpt-2"
    split = lambda rx: {"type": "Sequence", "pretokenizers": [  # noqa: E731
        {"type": "Split", "pattern": {"Regex": rx}, "behavior": "Isolated", "invert": False},
        {**bl, "use_regex": False}]}
    assert vocab.pre_tokenizer_name(split(vocab.LLAMA3_REGEX)) == "llama-bpe"
    assert vocab.pre_tokenizer_name(split(vocab.QWEN2_REGEX)) == "qwen2"
    for bad in (None, {"type": "Whitespace"}, split(r"\s+"), {**bl, "add_prefix_space": True}):
        with pytest.raises(errors.InvalidArgument, match="pre-tokenizer"):
            vocab.pre_tokenizer_name(bad)


def test_cancel_leaves_no_partial_file(llama_model, tmp_path, recorder_cls):
    out = tmp_path / "out"
    with pytest.raises(errors.Cancelled):
        convert(llama_model, out / "m.gguf", "f16", recorder_cls(cancel_after=5))
    assert list(out.iterdir()) == []


_DISK_FULL = """
import resource, signal, sys
from pathlib import Path
sys.path[:0] = {paths!r}
from apt_model import errors
from apt_ollama.gguf_export import convert
class P:
    def report(self, **k): pass
    def check_cancelled(self): pass
    def warn(self, t): pass
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
try:
    convert(Path({src!r}), Path({dst!r}), "f32", P())
except errors.ResourceExhausted as exc:
    print("RESOURCE_EXHAUSTED", exc.message)
"""


def test_disk_full_leaves_no_partial_file(llama_model, tmp_path):
    """A real write failure (file size limit -> EFBIG, like ENOSPC) in a child process."""
    out = tmp_path / "out"
    out.mkdir()
    import apt_model
    import apt_ollama

    paths = [str(Path(apt_model.__file__).parents[1]), str(Path(apt_ollama.__file__).parents[1])]
    code = _DISK_FULL.format(paths=paths, src=str(llama_model), dst=str(out / "m.gguf"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "RESOURCE_EXHAUSTED" in proc.stdout, proc.stderr[-2000:]
    assert "free space (m.gguf needs about the model's size)" in proc.stdout
    assert str(out) not in proc.stdout                   # the host folder is not named
    assert list(out.iterdir()) == []


def _with_template(llama_model: Path, tmp_path: Path, single: list[str]) -> tuple[Path, dict]:
    """A copy of the tiny llama whose tokenizer adds ``single``'s special tokens around a text."""
    import shutil

    from apt_model.modeling.tokenizer import SPECIAL_TOKENS

    folder = tmp_path / "model"
    shutil.copytree(llama_model, folder)
    tj = json.loads((folder / "tokenizer.json").read_text())
    parts = [{"Sequence": {"id": "A", "type_id": 0}} if s == "$A" else {"SpecialToken": {"id": s, "type_id": 0}}
             for s in single]
    tj["post_processor"] = {
        "type": "TemplateProcessing", "single": parts, "pair": parts,
        "special_tokens": {s: {"id": s, "ids": [SPECIAL_TOKENS.index(s)], "tokens": [s]}
                           for s in single if s != "$A"}}
    (folder / "tokenizer.json").write_text(json.dumps(tj))
    return folder, json.loads((folder / "config.json").read_text())


@pytest.mark.parametrize("single, add_bos, add_eos", [
    (["<s>", "$A"], True, False), (["$A", "</s>"], False, True), (["<s>", "$A", "</s>"], True, True)])
def test_add_bos_and_add_eos_follow_the_tokenizers_template(llama_model, tmp_path, single, add_bos, add_eos):
    """A tokenizer that puts BOS first gets add_bos_token, read from the template's first token
    and matched against the BOS id (and EOS from its last), so llama.cpp adds what HF adds."""
    from apt_model.modeling.tokenizer import BOS, EOS

    assert (BOS, EOS) == ("<s>", "</s>")
    folder, config = _with_template(llama_model, tmp_path, single)
    v = vocab.read_vocab(folder, config["vocab_size"], config)
    assert (v.add_bos, v.add_eos) == (add_bos, add_eos)
