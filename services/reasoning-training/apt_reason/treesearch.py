"""The StartTreeSearch job: answer one prompt or a dataset's eval questions with a strategy
under one generated-token budget per question, and store the trees and results as a dataset."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import limits
from apt_model.modeling.io import load_model, load_tokenizer, pick_device, read_config
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import data
from apt_reason.prompts import Chat
from apt_reason.scorer import Verifier, verifier_kind
from apt_reason.search import kv_cache_bytes, search
from apt_reason.stepsearch import STEP_STRATEGIES, StepSearch, line_end_ids, run
from apt_reason.tasks import is_correct

OPERATION = "reasoning-tree-search"
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
    verifier: str = ""
    max_depth: int = 6
    expand: int = 4
    exploration: float = 1.0

    @classmethod
    def from_request(cls, r) -> "SearchSpec":
        strategy = r.strategy or "self_consistency"
        _check_strategy_fields(r, strategy)
        if bool(r.prompt) == bool(r.dataset):
            raise errors.InvalidArgument("Give exactly one of --prompt (one question) and --dataset "
                                         "(its eval.jsonl questions).", field="prompt")
        spec = cls(model=r.model, output_name=r.output_name, prompt=r.prompt, dataset=r.dataset, strategy=strategy,
                   token_budget=r.token_budget or 384, max_new_tokens=r.max_new_tokens or 96,
                   branches=r.beam_width, temperature=r.temperature or 0.8, max_questions=r.max_questions or 50,
                   seed=r.seed, device=r.device or "auto", overwrite=r.overwrite, verifier=r.verifier,
                   max_depth=r.max_depth or 6, expand=r.expand or 4,
                   exploration=r.exploration if r.HasField("exploration") else 1.0)
        if spec.strategy == "greedy" and spec.branches > 1:
            raise errors.InvalidArgument("greedy decoding has one branch; --beam-width applies to "
                                         "self_consistency, best_of_n, beam and dvts.", field="beam_width")
        if spec.strategy in STEP_STRATEGIES and not spec.branches:
            spec = replace(spec, branches=4)
        return spec

    @property
    def rows_at_once(self) -> int:
        """Sequences one model call holds (each with a KV cache up to the full context)."""
        if self.strategy == "greedy":
            return 1
        if self.strategy in ("self_consistency", "best_of_n"):
            return self.branches or max(1, self.token_budget // self.max_new_tokens)
        return self.expand * (1 if self.strategy == "mcts" else self.branches)


def _check_strategy_fields(r, strategy: str) -> None:
    """Fields that only some strategies use are refused for the others, a verifier is required by them."""
    if strategy in VERIFIER_GUIDED and not r.verifier:
        raise errors.InvalidArgument(f"--strategy {strategy} ranks answers with a verifier: pass --verifier (train "
                                     "one with start-verifier-training).", field="verifier")
    if strategy not in VERIFIER_GUIDED and r.verifier:
        raise errors.InvalidArgument(f"--verifier is used by best_of_n, beam, dvts and mcts, not by {strategy}; "
                                     "leave it out.", field="verifier")
    if strategy not in STEP_STRATEGIES:
        for name in ("max_depth", "expand"):
            if getattr(r, name):
                raise errors.InvalidArgument(f"--{name.replace('_', '-')} applies to beam, dvts and mcts, not to "
                                             f"{strategy}; leave it out.", field=name)
    if strategy != "mcts" and r.HasField("exploration"):
        raise errors.InvalidArgument(f"--exploration applies to mcts, not to {strategy}; leave it out.",
                                     field="exploration")


def check_verifier(store: Store, spec: SearchSpec) -> None:
    """The verifier exists and is of a kind the strategy can use (beam, dvts, mcts score steps)."""
    if spec.verifier and verifier_kind(store, spec.verifier) == "outcome" and spec.strategy in STEP_STRATEGIES:
        raise errors.FailedPrecondition(
            f"{spec.verifier!r} is an outcome verifier, which scores whole answers; {spec.strategy} scores each "
            "step: train a process verifier (start-verifier-training --kind process) or use --strategy best_of_n.")


def check_budget(store: Store, spec: SearchSpec) -> None:
    """RESOURCE_EXHAUSTED, with the estimate, when one question's branches cannot fit in memory:
    every branch holds the prompt and its generated tokens in the KV cache at once."""
    config = limits.hf_config(read_config(store.model(spec.model).path), f"the config of {spec.model!r}")
    positions = getattr(config, "max_position_embeddings", 2048)
    branches = spec.rows_at_once
    need = kv_cache_bytes(config, branches * positions)  # upper bound: each branch at full context
    device = pick_device(spec.device)
    have = limits.available_memory(device)
    if need > have:
        raise errors.ResourceExhausted(
            f"{spec.strategy} with a token budget of {spec.token_budget} and {spec.max_new_tokens} tokens per branch "
            f"runs {branches} branches at once, whose KV cache needs up to {need / 2**30:.1f} GiB; {have / 2**30:.1f} "
            f"GiB is available on {device}. " + ("Lower --beam-width or --expand." if spec.strategy in STEP_STRATEGIES
                                                 else "Lower --token-budget or --beam-width, or raise --max-new-tokens."),
            reason="BUDGET_TOO_LARGE")


def _answerer(store: Store, spec: SearchSpec, model, chat: Chat, device: str, gen: torch.Generator):
    """question -> Searched, for the spec's strategy."""
    if spec.strategy not in VERIFIER_GUIDED:
        return lambda q: search(model, chat, q, spec.strategy, spec.token_budget, spec.max_new_tokens,
                                branches=spec.branches, temperature=spec.temperature, generator=gen)
    verifier = Verifier.load(store.model(spec.verifier).path, spec.verifier, device)
    ends = line_end_ids(chat)
    return lambda q: run(spec.strategy, StepSearch(
        model, chat, verifier, q, ends, spec.token_budget, spec.max_new_tokens, max_depth=spec.max_depth,
        width=spec.branches, expand=spec.expand, temperature=spec.temperature, exploration=spec.exploration,
        generator=gen), n=spec.branches)


def run_search(store: Store, spec: SearchSpec, ctx: JobContext) -> dict[str, Any]:
    if spec.dataset:
        rows = data.read_split(store, spec.dataset, "eval", need_reasoning=False)[:spec.max_questions]
    else:
        rows = [{"question": spec.prompt}]
    device = pick_device(spec.device)
    path = store.model(spec.model).path
    model, chat = load_model(path, device=device).eval(), Chat.of(load_tokenizer(path))
    gen = torch.Generator().manual_seed(spec.seed)
    answer = _answerer(store, spec, model, chat, device, gen)
    trees, results, right, unparseable, tokens = [], [], 0, 0, 0
    for i, row in enumerate(rows):
        ctx.check_cancelled()
        found = answer(row["question"])
        correct = "answer" in row and is_correct(row, found.answer)
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
