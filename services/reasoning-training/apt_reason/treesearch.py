"""The StartTreeSearch job: answer one prompt or a dataset's eval questions with a strategy
under one generated-token budget per question, and store the trees and results as a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import limits
from apt_model.modeling.io import load_model, load_tokenizer, pick_device, read_config
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import data
from apt_reason.prompts import Chat
from apt_reason.search import kv_cache_bytes, search

OPERATION = "reasoning-tree-search"
BUILT = ("greedy", "self_consistency")
VERIFIER_GUIDED = ("best_of_n", "beam", "dvts", "mcts")


@dataclass(frozen=True)
class SearchSpec:
    model: str
    output_name: str
    prompt: str = ""
    dataset: str = ""
    strategy: str = "self_consistency"
    token_budget: int = 384
    max_new_tokens: int = 96
    branches: int = 0
    temperature: float = 0.8
    max_questions: int = 50
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False

    @classmethod
    def from_request(cls, r) -> "SearchSpec":
        strategy = r.strategy or "self_consistency"
        if strategy in VERIFIER_GUIDED:
            raise errors.Unimplemented(
                f"Strategy {strategy!r} needs a trained verifier, and verifier training and verifier-guided "
                f"search are not built yet; use --strategy greedy or self_consistency.")
        if r.verifier:
            raise errors.InvalidArgument("--verifier is used by best_of_n, beam, dvts and mcts only, which are "
                                         "not built yet; leave it out.", field="verifier")
        if r.max_depth:
            raise errors.InvalidArgument("--max-depth applies to beam search and MCTS, which are not built yet; "
                                         "leave it out.", field="max_depth")
        if bool(r.prompt) == bool(r.dataset):
            raise errors.InvalidArgument("Give exactly one of --prompt (one question) and --dataset "
                                         "(its eval.jsonl questions).", field="prompt")
        spec = cls(model=r.model, output_name=r.output_name, prompt=r.prompt, dataset=r.dataset, strategy=strategy,
                   token_budget=r.token_budget or 384, max_new_tokens=r.max_new_tokens or 96,
                   branches=r.beam_width, temperature=r.temperature or 0.8, max_questions=r.max_questions or 50,
                   seed=r.seed, device=r.device or "auto", overwrite=r.overwrite)
        if spec.strategy == "greedy" and spec.branches > 1:
            raise errors.InvalidArgument("greedy decoding has one branch; --beam-width applies to "
                                         "self_consistency.", field="beam_width")
        return spec


def check_budget(store: Store, spec: SearchSpec) -> None:
    """RESOURCE_EXHAUSTED, with the estimate, when one question's branches cannot fit in memory:
    every branch holds the prompt and its generated tokens in the KV cache at once."""
    config = limits.hf_config(read_config(store.model(spec.model).path), f"the config of {spec.model!r}")
    positions = getattr(config, "max_position_embeddings", 2048)
    branches = 1 if spec.strategy == "greedy" else (spec.branches or max(1, spec.token_budget // spec.max_new_tokens))
    need = kv_cache_bytes(config, branches * positions)  # upper bound: each branch at full context
    device = pick_device(spec.device)
    have = limits.available_memory(device)
    if need > have:
        raise errors.ResourceExhausted(
            f"A token budget of {spec.token_budget} with {spec.max_new_tokens} tokens per branch runs "
            f"{branches} branches at once, whose KV cache needs up to {need / 2**30:.1f} GiB; {have / 2**30:.1f} "
            f"GiB is available on {device}. Lower --token-budget or raise --max-new-tokens.",
            reason="BUDGET_TOO_LARGE")


def run_search(store: Store, spec: SearchSpec, ctx: JobContext) -> dict[str, Any]:
    if spec.dataset:
        rows = data.read_split(store, spec.dataset, "eval", need_reasoning=False)[:spec.max_questions]
    else:
        rows = [{"question": spec.prompt}]
    device = pick_device(spec.device)
    path = store.model(spec.model).path
    model, chat = load_model(path, device=device).eval(), Chat.of(load_tokenizer(path))
    gen = torch.Generator().manual_seed(spec.seed)
    trees, results, right, unparseable, tokens = [], [], 0, 0, 0
    for i, row in enumerate(rows):
        ctx.check_cancelled()
        found = search(model, chat, row["question"], spec.strategy, spec.token_budget, spec.max_new_tokens,
                       branches=spec.branches, temperature=spec.temperature, generator=gen)
        correct = "answer" in row and found.answer == row["answer"]
        right += correct
        unparseable += found.answer is None
        tokens += found.tokens
        trees.append(found.tree)
        results.append({"question": row["question"], "expected": row.get("answer"), "answer": found.answer,
                        "correct": correct if "answer" in row else None, "tokens": found.tokens})
        ctx.report(progress=0.95 * (i + 1) / len(rows), stage="search",
                   message=f"{i + 1}/{len(rows)} questions", tokens_generated=tokens)
    if unparseable:
        ctx.warn(f"{unparseable} of {len(rows)} final answers had no parseable 'Answer:' line; they count as wrong.")
    ctx.check_cancelled()
    metrics: dict[str, Any] = {"questions": len(rows), "unparseable": unparseable, "tokens_generated": tokens}
    if spec.dataset:
        metrics["exact_match"] = right / len(rows)
    with store.create("datasets", spec.output_name, operation=OPERATION, parent=spec.model,
                      parameters=asdict(spec), metrics=metrics, overwrite=spec.overwrite) as folder:
        (folder / "trees.json").write_text(json.dumps(trees, ensure_ascii=False, indent=1), encoding="utf-8")
        data.write_jsonl(folder / "results.jsonl", results)
    out = {"dataset": spec.output_name, "strategy": spec.strategy, "token_budget": spec.token_budget,
           "tree_json": json.dumps(trees[0], ensure_ascii=False), **metrics}
    if spec.prompt:
        out["answer"] = rows and results[0]["answer"] or ""
    return out
