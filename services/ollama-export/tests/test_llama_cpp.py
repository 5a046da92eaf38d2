"""The exported files in real llama.cpp (llama-cpp-python): logits vs PyTorch, tokenization vs HF."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (services/ollama-export/requirements-verify.txt)")

from apt_model.testing import SAMPLE_TEXT  # noqa: E402

from apt_ollama import verify  # noqa: E402
from apt_ollama.gguf_export import convert  # noqa: E402

PROMPTS = verify.SAMPLE_TEXTS + [t[:80] for t in SAMPLE_TEXT[:5]]
FAMILIES = ["llama_model", "qwen2_model"]


@pytest.fixture(scope="module")
def exported(request, tmp_path_factory):
    """(family, outtype) -> (model folder, gguf path), converted once per module."""
    out = tmp_path_factory.mktemp("gguf")
    cache = {}

    class Quiet:
        def report(self, **_k): pass
        def check_cancelled(self): pass
        def warn(self, _t): pass

    def get(family: str, outtype: str):
        if (family, outtype) not in cache:
            folder = request.getfixturevalue(family)
            cache[family, outtype] = folder, convert(folder, out / f"{family}-{outtype}.gguf", outtype, Quiet()).path
        return cache[family, outtype]

    return get


@pytest.fixture(scope="module")
def torch_side():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = (AutoTokenizer.from_pretrained(str(folder)),
                             AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval())
        return cache[folder]

    return get


def _compare_all(exported, torch_side, family, outtype, f32_kv=True) -> verify.Comparison:
    folder, path = exported(family, outtype)
    tok, model = torch_side(folder)
    ids = [tok.encode(p) for p in PROMPTS]
    llm = verify.load_llama(path, n_ctx=max(map(len, ids)), f32_kv_cache=f32_kv)
    try:
        return verify.merge([verify.compare(verify.torch_logits(model, i), verify.llama_logits(llm, i)) for i in ids])
    finally:
        llm.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_logits_match_pytorch(exported, torch_side, family):
    c = _compare_all(exported, torch_side, family, "f32")
    assert c.positions > 150
    assert c.max_abs_diff <= 1e-4, c
    assert c.top1_agreement == 1.0, c


@pytest.mark.parametrize("family", FAMILIES)
def test_f32_logits_with_llama_cpp_default_f16_cache(exported, torch_side, family):
    c = _compare_all(exported, torch_side, family, "f32", f32_kv=False)
    assert c.max_abs_diff <= 2e-3, c


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("outtype", ["f16", "q8_0"])
def test_reduced_precision_top1_agreement(exported, torch_side, family, outtype):
    c = _compare_all(exported, torch_side, family, outtype)
    assert c.top1_agreement >= 0.98, c
    assert c.near_ties_only(0.1), c  # every disagreement: PyTorch's top two within 0.1
    # A broken conversion (e.g. q/k rows not interleaved) is far off, not just near ties.
    assert c.max_abs_diff < (0.05 if outtype == "f16" else 0.25), c


def test_unpermuted_qk_would_be_caught(llama_model, tmp_path, torch_side, monkeypatch):
    """The logits check is sharp enough to catch the classic mistake: no Q/K re-ordering."""
    from apt_ollama import archs

    monkeypatch.setattr(archs, "_interleave_rope_rows", lambda w, n_head: w)

    class Quiet:
        def report(self, **_k): pass
        def check_cancelled(self): pass
        def warn(self, _t): pass

    path = convert(llama_model, tmp_path / "bad.gguf", "f32", Quiet()).path
    tok, model = torch_side(llama_model)
    ids = tok.encode(PROMPTS[0])
    llm = verify.load_llama(path, n_ctx=len(ids))
    try:
        c = verify.compare(verify.torch_logits(model, ids), verify.llama_logits(llm, ids))
    finally:
        llm.close()
    assert c.max_abs_diff > 1e-2


TEXTS = [
    "Hello world", "机器学习是人工智能的一个分支。", "def f(x):\n\treturn x\n\n\n", "a    b     c", "   leading",
    "trailing   ", "\n\n\t\t  \n", "1234567890 12 345 6789", "3.14159e-10", "it's we're they've I'd you'll",
    "IT'S WE'RE", "😀🚀✨👨‍👩‍👧", "mixed 中文English123😀", "<|im_start|>user\nhi<|im_end|>\n", "</s><s><pad>",
    "ünïcödé café naïve", "tab\tseparated\tvalues", "\r\nwindows\r\n", "", " ", "x" * 300,
]


@pytest.fixture(scope="module")
def tokenizers_pair(exported, torch_side):
    """family -> (HF tokenizer, llama.cpp model loaded vocab-only)."""
    from llama_cpp import Llama

    pairs, opened = {}, []
    for family in FAMILIES:
        folder, path = exported(family, "f16")
        llm = Llama(model_path=str(path), vocab_only=True, verbose=False)
        opened.append(llm)
        pairs[family] = (torch_side(folder)[0], llm)
    yield pairs
    for llm in opened:
        llm.close()


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenization_equals_hf_on_hard_cases(tokenizers_pair, family):
    tok, llm = tokenizers_pair[family]
    for text in TEXTS:
        assert verify.llama_tokenize(llm, text) == tok.encode(text), text


_pieces = st.one_of(
    st.text(max_size=12),  # any unicode
    st.sampled_from([" ", "  ", "   ", "\t", "\n", "\r\n", "'s", "'re", "'ll", "'d", "n't", "😀", "中文", "١٢٣"]),
    st.from_regex(r"[0-9]{1,8}", fullmatch=True),
    st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True),
)


@pytest.mark.parametrize("family", FAMILIES)
def test_tokenization_property(tokenizers_pair, family):
    tok, llm = tokenizers_pair[family]
    seen = []

    @settings(max_examples=1500, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(st.lists(_pieces, max_size=8).map("".join))
    def check(text):
        if family == "qwen2_model":
            text = unicodedata.normalize("NFC", text)  # see test_qwen2_nfc_is_the_one_known_difference
        seen.append(text)
        assert verify.llama_tokenize(llm, text) == tok.encode(text)

    check()
    assert len(set(seen)) > 1000  # thousands of distinct strings over both families


def test_qwen2_nfc_is_the_one_known_difference(tokenizers_pair, qwen2_model, recorder, tmp_path):
    """transformers' Qwen2Tokenizer NFC-normalizes; llama.cpp cannot (GGUF has no normalizer field).

    The export warns about it; on NFC text (nearly all real text) the two agree.
    """
    tok, llm = tokenizers_pair["qwen2_model"]
    assert verify.llama_tokenize(llm, "\uf900") != tok.encode("\uf900")
    assert verify.llama_tokenize(llm, "\u8c48") == tok.encode("\uf900") == tok.encode("\u8c48")
    convert(qwen2_model, tmp_path / "q.gguf", "f16", recorder)
    assert any("NFC" in w for w in recorder.warnings)
