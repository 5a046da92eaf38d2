"""Benchmark: reasoning-training's pipeline at a tiny CPU configuration (issue 23's table).

One run, per seed (median of ``--repeats`` seeds): a dataset of 2-3-step EN+ZH problems is
generated (eval split = held-out templates), a tokenizer is trained on the train split with the
platform's ``train_tokenizer`` and an ``apt`` preset model is built from it; then
(1) CoT SFT vs answer-only SFT at equal steps from the same init: exact match on held-out;
(2) SFT S steps + GRPO K steps vs SFT S+K steps (``--grpo-steps``, 0 skips it);
(3) self-consistency vs greedy under one token budget per question (CoT model);
(4) shared-prefix KV cache vs re-encoding the prompt per branch (4 branches): tokens/s, identical ids;
(5) outcome verifier AUROC and process verifier first-wrong-step accuracy on planted errors in
    held-out-template problems (verifiers trained from the CoT model's body);
(6) verifier best-of-N, process-verifier beam search, DVTS and MCTS vs self-consistency and greedy at
    one token budget per question;
(7) beam search (width 4, expand 4, depth 4) with children sharing their prefix's KV cache vs each
    child re-encoding it: tokens/s and identical trees.
The GRPO-loss-vs-TRL row is a test (tests/test_grpo.py), not timed here. ``--rows search`` runs only
the SFT model and rows 5-7 (saved as results/reasoning_search.json). ``--rows tree`` trains the CoT model
and a process verifier, then runs the StartTreeSearch job (``--tree-strategy`` beam or mcts) on the first
eval question and writes its ``trees.json`` to ``--tree-out`` (the README's example tree).
``--countdown-share`` mixes countdown puzzles into the generated dataset (scored by their checker).

    .venv/bin/python bench/bench_reasoning.py [--quick] [--repeats 3] [--size tiny|small] [--rows all|search|tree]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "reasoning-training"), str(ROOT / "bench")]

import torch  # noqa: E402

from apt_model.modeling.io import load_model  # noqa: E402
from apt_model.store import Store  # noqa: E402
from apt_model.testing import JobRecorder, make_tiny_model  # noqa: E402
from apt_reason import cot, data, rl, treesearch, verifier  # noqa: E402
from apt_reason.scorer import Verifier  # noqa: E402
from apt_reason.search import decode, search  # noqa: E402
from apt_reason.stepsearch import StepSearch, line_end_ids, run  # noqa: E402
from apt_reason.tasks import is_correct  # noqa: E402
from common import machine, save  # noqa: E402


def one_seed(args, seed: int) -> dict:
    store = Store(Path(tempfile.mkdtemp(prefix="bench-reason-")))
    data.generate_dataset(store, data.GenerateSpec("probs", train_size=args.train_rows, eval_size=args.eval_rows,
                                                   min_steps=2, max_steps=3, seed=seed,
                                                   countdown_share=args.countdown_share), JobRecorder())
    rows = data.read_split(store, "probs", "train", need_reasoning=True)
    texts = [f"{r['question']}\n{r['reasoning']}\nAnswer: {r['answer']}" for r in rows]
    make_tiny_model(store, "base", size=args.size, texts=texts, vocab_size=args.vocab, seed=seed)
    out: dict = {"seed": seed}
    common = dict(batch_size=args.batch, learning_rate=args.lr, seed=seed, eval_questions=args.eval_rows,
                  max_new_tokens=args.max_new, device="cpu", checkpoint_every=0)
    t = time.perf_counter()
    r = cot.run_cot(store, cot.CotSpec("base", "probs", "cot", max_steps=args.steps, ablation=args.rows == "all",
                                       **common), JobRecorder())
    if args.rows == "search":
        return {**out, "cot_em": r["eval_exact_match"], **search_rows(args, store, seed)}
    if args.rows == "tree":
        return {**out, "cot_em": r["eval_exact_match"], **tree_example(args, store, seed)}
    out.update(cot_em=r["eval_exact_match"], answer_only_em=r["ablation_exact_match"],
               cot_unparseable=r["eval_unparseable"], sft_seconds=time.perf_counter() - t)
    if args.grpo_steps:
        s = args.steps - args.grpo_steps
        cot.run_cot(store, cot.CotSpec("base", "probs", "sft-s", max_steps=s, **common), JobRecorder())
        g = rl.run_rl(store, rl.RLSpec("sft-s", "probs", "grpo", max_steps=args.grpo_steps, group=8,
                                       questions_per_step=4, max_new_tokens=args.max_new, learning_rate=args.lr / 10,
                                       eval_questions=args.eval_rows, seed=seed, device="cpu", patience=5),
                      JobRecorder())
        out.update(sft_plus_grpo_em=g["eval_exact_match"], sft_equal_steps_em=r["eval_exact_match"],
                   grpo_stopped=g["stopped"], grpo_steps_kept=g["steps"])
    model = load_model(store.model("cot").path).eval()
    chat = cot.Chat.of(cot.load_tokenizer(store.model("cot").path))
    evals = data.read_split(store, "probs", "eval", need_reasoning=False)[:args.search_questions]
    budget = 4 * args.max_new
    for strategy in ("greedy", "self_consistency"):
        gen = torch.Generator().manual_seed(seed)
        right = sum(is_correct(q, search(model, chat, q["question"], strategy, budget, args.max_new,
                                         generator=gen).answer) for q in evals)
        out[f"{strategy}_em"] = right / len(evals)
    out.update(kv_share_speedup(model, chat, evals[0]["question"], args.max_new))
    return out


def search_rows(args, store: Store, seed: int) -> dict:
    """Rows 5-7: verifiers from the CoT model's body, then every strategy at one budget per question."""
    out: dict = {}
    for kind in ("outcome", "process"):
        v = verifier.run_verifier(store, verifier.VerifierSpec(
            "cot", "probs", f"{kind}-v", max_steps=args.verifier_steps, kind=kind, batch_size=args.batch,
            learning_rate=args.lr, seed=seed, eval_examples=args.eval_rows * 2, device="cpu", checkpoint_every=0),
            JobRecorder())
        out[f"{kind}_auroc"] = v["auroc"]
        if kind == "process":
            out.update(first_wrong_step=v["first_wrong_step_accuracy"], step_accuracy=v["step_accuracy"])
    model = load_model(store.model("cot").path).eval()
    chat = cot.Chat.of(cot.load_tokenizer(store.model("cot").path))
    pv, ov = (Verifier.load(store.model(n).path, n, "cpu") for n in ("process-v", "outcome-v"))
    ends = line_end_ids(chat)
    evals = data.read_split(store, "probs", "eval", need_reasoning=False)[:args.search_questions]
    budget = 4 * args.max_new
    for strategy in ("greedy", "self_consistency", "best_of_n", "beam", "dvts", "mcts"):
        gen, right, spent = torch.Generator().manual_seed(seed), 0, 0
        for q in evals:
            if strategy in ("greedy", "self_consistency"):
                found = search(model, chat, q["question"], strategy, budget, args.max_new, generator=gen)
            else:
                found = run(strategy, StepSearch(model, chat, ov if strategy == "best_of_n" else pv, q["question"],
                                                 ends, budget, args.max_new, max_depth=5, width=2, expand=2,
                                                 generator=gen))
            right, spent = right + is_correct(q, found.answer), spent + found.tokens
        out[f"{strategy}_em"], out[f"{strategy}_tokens"] = right / len(evals), spent / len(evals)
    out.update(kv_beam(model, chat, pv, ends, evals[0]["question"], args.max_new))
    return out


def tree_example(args, store: Store, seed: int) -> dict:
    """A process verifier from the CoT model's body, then the StartTreeSearch job on the first eval
    question; its trees.json is copied to ``--tree-out``."""
    v = verifier.run_verifier(store, verifier.VerifierSpec(
        "cot", "probs", "process-v", max_steps=args.verifier_steps, kind="process", batch_size=args.batch,
        learning_rate=args.lr, seed=seed, eval_examples=args.eval_rows * 2, device="cpu", checkpoint_every=0),
        JobRecorder())
    spec = treesearch.SearchSpec("cot", "tree", dataset="probs", strategy=args.tree_strategy, verifier="process-v",
                                 token_budget=4 * args.max_new, max_new_tokens=args.max_new, branches=2, expand=2,
                                 max_depth=4, max_questions=1, seed=seed, device="cpu")
    found = treesearch.run_search(store, spec, JobRecorder())
    trees = store.dataset("tree").path / "trees.json"
    if args.tree_out:
        Path(args.tree_out).write_text(trees.read_text(encoding="utf-8"), encoding="utf-8")
    return {"process_first_wrong_step": v["first_wrong_step_accuracy"], "tree_exact_match": found["exact_match"],
            "tree_tokens": found["tokens_generated"], "trees_json": str(args.tree_out or trees)}


def kv_beam(model, chat, pv, ends, question: str, max_new: int) -> dict:
    """Beam 4 x expand 4, depth 4, one long prompt: children share their prefix's cache or re-encode it."""
    rates, trees = {True: [], False: []}, {True: [], False: []}
    question = " ".join([question] * 3)
    for share in (True, False) * 3:
        s = StepSearch(model, chat, pv, question, ends, 10**6, max_new, max_depth=4, width=4, expand=4,
                       generator=torch.Generator().manual_seed(0), share_prefix=share)
        t = time.perf_counter()
        found = run("beam", s)
        rates[share].append(s.spent / (time.perf_counter() - t))
        trees[share].append(json.dumps(found.tree))
    return {"beam_kv_shared_tok_s": statistics.median(rates[True]),
            "beam_kv_reencode_tok_s": statistics.median(rates[False]),
            "beam_kv_identical": len(set(trees[True] + trees[False])) == 1}


def kv_share_speedup(model, chat, question: str, max_new: int) -> dict:
    """4 branches of one long prompt (the question repeated as context), greedy so outputs compare."""
    prompt = chat.prompt_ids(" ".join([question] * 6))
    rates, same = {}, True
    for share in (True, False, True, False, True, False):
        t = time.perf_counter()
        b = decode(model, prompt, 4, max_new, (-1,), share_prefix=share)  # no stop: equal work
        rates.setdefault(share, []).append(b.tokens / (time.perf_counter() - t))
        same &= b.ids == decode(model, prompt, 4, max_new, (-1,), share_prefix=not share).ids
    return {"kv_shared_tok_s": statistics.median(rates[True]), "kv_reencode_tok_s": statistics.median(rates[False]),
            "kv_identical": same, "prompt_tokens": len(prompt)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="fewer rows and steps (a smoke run)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--size", default="tiny")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--grpo-steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--vocab", type=int, default=400)
    p.add_argument("--max-new", type=int, default=48)
    p.add_argument("--train-rows", type=int, default=2000)
    p.add_argument("--eval-rows", type=int, default=100)
    p.add_argument("--search-questions", type=int, default=40)
    p.add_argument("--verifier-steps", type=int, default=300)
    p.add_argument("--rows", choices=["all", "search", "tree"], default="all")
    p.add_argument("--tree-strategy", choices=["beam", "mcts"], default="beam", help="--rows tree: the search run")
    p.add_argument("--tree-out", default="", help="--rows tree: where trees.json is copied")
    p.add_argument("--countdown-share", type=float, default=0.0, help="share of countdown puzzles in the dataset")
    args = p.parse_args()
    if args.quick:
        args.steps, args.grpo_steps, args.train_rows, args.eval_rows, args.search_questions = 60, 10, 300, 20, 10
        args.verifier_steps = 40
    torch.set_num_threads(2)
    runs = []
    for seed in range(args.repeats):
        runs.append(one_seed(args, seed))
        print(json.dumps(runs[-1]), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))
           and not isinstance(runs[0][k], bool) and k != "seed"}
    if args.rows == "search":
        return print_search(args, runs, med)
    if args.rows == "tree":
        return print(f"\n{machine()}\ntrees.json: {runs[-1]['trees_json']}")
    print(f"\n{machine()}\n{args.size} preset, {args.steps} SFT steps x {args.batch} rows, median of {args.repeats} seeds")
    print(f"CoT SFT vs answer-only (held-out templates): {med['cot_em']:.0%} vs {med['answer_only_em']:.0%} "
          f"({100 * (med['cot_em'] - med['answer_only_em']):+.0f} points; target >= +15)")
    if args.grpo_steps:
        print(f"SFT {args.steps - args.grpo_steps} + GRPO {args.grpo_steps} vs SFT {args.steps}: "
              f"{med['sft_plus_grpo_em']:.0%} vs {med['sft_equal_steps_em']:.0%} "
              f"({100 * (med['sft_plus_grpo_em'] - med['sft_equal_steps_em']):+.0f} points; target >= +5)")
    print(f"self-consistency vs greedy, budget {4 * args.max_new} tokens/question: {med['self_consistency_em']:.0%} "
          f"vs {med['greedy_em']:.0%}")
    print(f"shared-prefix KV vs re-encoding, 4 branches: {med['kv_shared_tok_s'] / med['kv_reencode_tok_s']:.2f}x "
          f"tokens/s, identical ids in every run: {all(r['kv_identical'] for r in runs)} (target >= 2x)")
    save("reasoning", {"args": vars(args), "runs": runs, "medians": med})


def print_search(args, runs: list[dict], med: dict) -> None:
    budget = 4 * args.max_new
    print(f"\n{machine()}\n{args.size} preset, CoT SFT {args.steps} steps (held-out EM {med['cot_em']:.0%}), "
          f"verifiers {args.verifier_steps} steps, median of {args.repeats} seeds")
    print(f"outcome verifier AUROC: {med['outcome_auroc']:.3f} (target >= 0.85); process verifier: first wrong step "
          f"{med['first_wrong_step']:.0%} (target >= 80%), its AUROC {med['process_auroc']:.3f}")
    for strategy in ("greedy", "self_consistency", "best_of_n", "beam", "dvts", "mcts"):
        print(f"{strategy:>16}: {med[strategy + '_em']:.0%} exact match, {med[strategy + '_tokens']:.0f} tokens/question "
              f"(budget {budget})")
    print(f"beam 4x4 depth 4, shared prefix KV vs re-encoding: "
          f"{med['beam_kv_shared_tok_s'] / med['beam_kv_reencode_tok_s']:.2f}x tokens/s, identical trees in every "
          f"run: {all(r['beam_kv_identical'] for r in runs)} (target >= 2x)")
    save("reasoning_search", {"args": vars(args), "runs": runs, "medians": med})


if __name__ == "__main__":
    main()
