"""``test`` and ``compare``: perplexity on held-out text, generations, prefill/decode speed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import lm
from apt_model.modeling.io import load_model, load_tokenizer, pick_device
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store
from apt_model.corpus import load_eval_documents
from gateway.core.inspect import weights_summary

DEFAULT_PROMPTS = ("The", "机器学习")
MAX_PROMPTS = 32


@dataclass(frozen=True)
class EvalSpec:
    names: tuple[str, ...]  # one model for test, two or more for compare
    eval_text: str = ""
    eval_path: str = ""
    eval_dataset: str = ""
    prompts: tuple[str, ...] = ()
    generation: lm.GenerationParams = field(default_factory=lm.GenerationParams)
    max_eval_tokens: int = lm.MAX_EVAL_TOKENS  # tokens scored at most (the text is cut beyond)
    stride: int = 0  # perplexity window stride; 0 = the window (disjoint windows)
    device: str = "auto"

    def validate(self, store: Store, compare: bool) -> "EvalSpec":
        if compare and len(set(self.names)) < 2:
            raise errors.InvalidArgument("compare needs two or more different model names.")
        if not self.names:
            raise errors.InvalidArgument("Name the model to test.")
        for n in self.names:
            store.model(n)
        if sum(map(bool, (self.eval_text, self.eval_path, self.eval_dataset))) > 1:
            raise errors.InvalidArgument("Give one evaluation text: inline, a file or a dataset, not several.")
        if self.eval_dataset:
            store.dataset(self.eval_dataset)
        if self.max_eval_tokens < 2 or self.stride < 0:
            raise errors.InvalidArgument("max_eval_tokens must be >= 2 and stride >= 0.")
        if len(self.prompts) > MAX_PROMPTS:
            raise errors.InvalidArgument(f"At most {MAX_PROMPTS} prompts per call.")
        self.generation.validate()
        pick_device(self.device)
        return self

    @property
    def has_eval_text(self) -> bool:
        return bool(self.eval_text or self.eval_path or self.eval_dataset)


def test_model(store: Store, spec: EvalSpec, name: str, text: list[str] | None,
               ctx: JobContext | None = None) -> dict[str, Any]:
    """One model: perplexity on ``text`` (its documents, when given; ``lm.text_perplexity``,
    the number the pruning report gives for the same text) and a generation per prompt."""
    device = pick_device(spec.device)
    folder = store.model(name).path
    weights_summary(folder)  # a corrupt or truncated weights file fails here with a clear message
    model = load_model(folder, device=device)
    tokenizer = load_tokenizer(folder)
    total, _ = lm.count_parameters(model)
    out: dict[str, Any] = {"name": name, "parameters": total, "size_bytes": store.model(name).size_bytes,
                           "device": device}
    if text:
        if ctx:
            ctx.report(stage="perplexity", message=f"{name}: scoring at most {spec.max_eval_tokens} tokens")
        try:
            ppl = lm.text_perplexity(model, tokenizer, text, max_tokens=spec.max_eval_tokens, stride=spec.stride or None)
        except errors.FailedPrecondition as exc:
            raise errors.FailedPrecondition(f"{name}: {exc}") from exc
        out.update(perplexity=ppl.perplexity, nll=ppl.nll, tokens_scored=ppl.tokens_scored,
                   eval_seconds=ppl.seconds, eval_tokens_per_s=ppl.tokens_scored / ppl.seconds)
    generations = []
    for i, prompt in enumerate(spec.prompts or DEFAULT_PROMPTS):
        if ctx:
            ctx.check_cancelled()
            ctx.report(stage="generate", message=f"{name}: prompt {i + 1}")
        g = lm.generate(model, tokenizer, prompt, spec.generation)
        generations.append({"prompt": prompt, "text": g.text, "prompt_tokens": g.prompt_tokens,
                            "new_tokens": g.new_tokens, "prefill_seconds": g.prefill_seconds,
                            "decode_seconds": g.decode_seconds, "prefill_tokens_per_s": g.prefill_tokens_per_s,
                            "decode_tokens_per_s": g.decode_tokens_per_s})
    out["generations"] = generations
    out["prefill_tokens_per_s"] = statistics.median(g["prefill_tokens_per_s"] for g in generations)
    decode = [g["decode_tokens_per_s"] for g in generations if g["new_tokens"] > 1]
    out["decode_tokens_per_s"] = statistics.median(decode) if decode else 0.0
    # Latency: the time to the first new token (prefill) and per further token (decode).
    out["first_token_ms"] = 1000 * statistics.median(g["prefill_seconds"] for g in generations)
    steps = sum(max(g["new_tokens"] - 1, 0) for g in generations)
    out["per_token_ms"] = 1000 * sum(g["decode_seconds"] for g in generations) / steps if steps else 0.0
    del model
    return out


def run_test(store: Store, spec: EvalSpec, ctx: JobContext) -> dict[str, Any]:
    text = _text(store, spec)
    torch.manual_seed(spec.generation.seed)
    return test_model(store, spec, spec.names[0], text, ctx)


def run_compare(store: Store, spec: EvalSpec, ctx: JobContext) -> dict[str, Any]:
    text = _text(store, spec)
    results = []
    for i, name in enumerate(spec.names):
        ctx.check_cancelled()
        ctx.report(progress=i / len(spec.names), stage="model", message=name)
        results.append(test_model(store, spec, name, text, ctx))
    side_by_side = [{"prompt": g["prompt"], "outputs": {r["name"]: r["generations"][k]["text"] for r in results}}
                    for k, g in enumerate(results[0]["generations"])]
    best = min(results, key=lambda r: r.get("perplexity", float("inf")))["name"] if text else ""
    return {"models": results, "generations": side_by_side, "best_perplexity": best}


def _text(store: Store, spec: EvalSpec) -> list[str] | None:
    if not spec.has_eval_text:
        return None
    return load_eval_documents(spec.eval_text, spec.eval_path, spec.eval_dataset, store)
