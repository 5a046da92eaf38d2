"""Prove an exported GGUF: llama.cpp must tokenize and predict like the PyTorch model.

Two checks, both on the real runtimes: llama.cpp (llama-cpp-python) tokenizes sample
texts exactly as the HF tokenizer does, and its next-token logits on a few prompts are
compared with transformers' (max |delta| and top-1 agreement). A top-1 disagreement is
acceptable only at a near tie, where PyTorch's own top two logits are within
``near_tie`` of each other. llama.cpp's KV cache is kept in f32 here: its default f16
cache alone moves logits by about 1e-3, which would hide conversion errors of that size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from apt_model import errors

# Tokenizer and logits probes: English, Chinese, code with tabs/newlines, runs of spaces,
# digits, contractions, emoji, and the chat markers as special tokens.
SAMPLE_TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "机器学习是人工智能的一个分支。",
    "def add(a, b):\n\treturn a + b\n\n\nclass Foo:\n    pass\n",
    "Spaces:    four, then  two,\tand a tab.   ",
    "Digits 1234567890 and 3.14159, year 2026.",
    "It's, we're, they've, I'd, you'll, she'll've",
    "Emoji 😀🚀✨ mixed 中文 English",
    "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n",
]
GGML_TYPE_F32 = 0  # ggml_type value selecting an f32 KV cache
F32_RELATIVE_TOLERANCE = 1e-3  # f32 export: max |delta| allowed per unit of logit scale


@dataclass
class Comparison:
    positions: int
    max_abs_diff: float
    top1_agreement: float
    disagreements: int
    worst_disagreement_gap: float  # largest PyTorch top-2 gap among disagreements (0 when none)
    max_abs_logit: float  # scale of PyTorch's logits, for relative tolerances

    def near_ties_only(self, near_tie: float) -> bool:
        return self.worst_disagreement_gap <= near_tie


def missing_runtime() -> str | None:
    """Why verification cannot run here (a missing package), or None when it can."""
    for module, package in (("llama_cpp", "llama-cpp-python"), ("torch", "torch"), ("transformers", "transformers")):
        try:
            __import__(module)
        except ImportError:
            return f"{package} is not installed in the ollama-export service"
    return None


def load_llama(gguf_path: Path, n_ctx: int, f32_kv_cache: bool = True):
    from llama_cpp import Llama

    kwargs = dict(type_k=GGML_TYPE_F32, type_v=GGML_TYPE_F32) if f32_kv_cache else {}
    try:
        return Llama(model_path=str(gguf_path), n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                     n_threads=1, n_threads_batch=1, verbose=False, **kwargs)
    except ValueError as exc:  # llama-cpp-python's wording for "llama.cpp refused the file"
        raise errors.DataLoss(f"llama.cpp cannot load {gguf_path.name}: {exc}") from exc


def llama_logits(llm, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits for every position of ``ids``, shape (len(ids), n_vocab)."""
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def llama_tokenize(llm, text: str, add_special: bool = True) -> list[int]:
    # special=True: chat markers in the text become their special ids, as in HF.
    return llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)


def torch_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.no_grad():
        out = model(torch.tensor([ids], dtype=torch.long)).logits[0]
    return out.float().numpy()


def compare(ref: np.ndarray, got: np.ndarray) -> Comparison:
    """max |delta| and top-1 agreement of two (positions, vocab) logit arrays."""
    if ref.shape != got.shape:
        raise errors.DataLoss(f"llama.cpp produced logits of shape {got.shape}, PyTorch {ref.shape}.")
    top_ref, top_got = ref.argmax(-1), got.argmax(-1)
    disagree = np.nonzero(top_ref != top_got)[0]
    gaps = [0.0]
    for i in disagree:
        two = np.sort(ref[i])[-2:]
        gaps.append(float(two[1] - two[0]))
    return Comparison(
        positions=int(ref.shape[0]), max_abs_diff=float(np.abs(ref - got).max()),
        top1_agreement=float((top_ref == top_got).mean()), disagreements=int(disagree.size),
        worst_disagreement_gap=max(gaps), max_abs_logit=float(np.abs(ref).max()),
    )


def merge(parts: list[Comparison]) -> Comparison:
    n = sum(p.positions for p in parts)
    return Comparison(
        positions=n, max_abs_diff=max(p.max_abs_diff for p in parts),
        top1_agreement=sum(p.top1_agreement * p.positions for p in parts) / n,
        disagreements=sum(p.disagreements for p in parts),
        worst_disagreement_gap=max(p.worst_disagreement_gap for p in parts),
        max_abs_logit=max(p.max_abs_logit for p in parts),
    )


def verify_export(folder: Path, gguf_path: Path, outtype: str, progress, *, texts: list[str] = SAMPLE_TEXTS,
                  near_tie: float = 0.1, min_top1: float = 0.98) -> dict:
    """Run both checks; raise DataLoss when the GGUF does not reproduce the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    import torch

    tok = AutoTokenizer.from_pretrained(str(folder))
    from apt_model.modeling.io import building

    with building():  # one load at a time in this process (apt_model.modeling.io._BUILDING)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    hf_ids = [tok.encode(t, add_special_tokens=True) for t in texts]
    llm = load_llama(gguf_path, n_ctx=max(8, max(len(i) for i in hf_ids)))
    try:
        progress.report(stage="verify", message="tokenization")
        mismatched = [t for t, ids in zip(texts, hf_ids) if llama_tokenize(llm, t) != ids]
        parts = []
        for n, ids in enumerate(hf_ids):
            progress.check_cancelled()
            parts.append(compare(torch_logits(model, ids), llama_logits(llm, ids)))
            progress.report(progress=(n + 1) / len(hf_ids), stage="verify", message=f"logits {n + 1}/{len(hf_ids)}")
    finally:
        llm.close()
    total = merge(parts)
    report = {**asdict(total), "kv_cache": "f32", "near_tie": near_tie,
              "tokenization_texts": len(texts), "tokenization_mismatches": len(mismatched)}
    if mismatched:
        raise errors.DataLoss(
            f"llama.cpp tokenizes {len(mismatched)} of {len(texts)} sample texts differently from the model's "
            f"tokenizer (first: {mismatched[0]!r}); the GGUF's tokenizer metadata is wrong. Nothing was kept."
        )
    # f32 weights leave only float reordering: measured ~1e-6 on small models. A relative bound
    # of 1e-3 still catches layout errors that happen to keep the top-1 token (e.g. RoPE pairs).
    f32_off = outtype == "f32" and total.max_abs_diff > F32_RELATIVE_TOLERANCE * max(1.0, total.max_abs_logit)
    if f32_off or total.top1_agreement < min_top1 or not total.near_ties_only(near_tie):
        raise errors.DataLoss(
            f"llama.cpp's predictions differ from PyTorch's ({outtype}: top-1 agreement "
            f"{total.top1_agreement:.3f}, max |delta| {total.max_abs_diff:.3g}, a disagreement where PyTorch's top "
            f"two logits are {total.worst_disagreement_gap:.3g} apart); the GGUF does not reproduce the model. "
            "Nothing was kept."
        )
    return report
