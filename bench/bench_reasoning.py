"""Benchmark: reasoning-training's pipeline at a tiny CPU configuration (issue 23's table).

One run, per seed (median of ``--repeats`` seeds): a dataset of 2-3-step EN+ZH problems is
generated (eval split = held-out templates), a tokenizer is trained on the train split with the
platform's ``train_tokenizer`` and an ``apt`` preset model is built from it; then
(1) CoT SFT vs answer-only SFT at equal steps from the same init: exact match on held-out;
(2) SFT S steps + GRPO K steps vs SFT S+K steps (``--grpo-steps``, 0 skips it);
(3) self-consistency vs greedy under one token budget per question (CoT model);
(4) shared-prefix KV cache vs re-encoding the prompt per branch (4 branches): tokens/s, identical ids.
The GRPO-loss-vs-TRL row is a test (tests/test_grpo.py), not timed here.

    .venv/bin/python bench/bench_reasoning.py [--quick] [--repeats 3] [--size tiny|small]
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
from apt_reason import cot, data, rl  # noqa: E402
from apt_reason.search import decode, search  # noqa: E402
from common import machine, save  # noqa: E402


def one_seed(args, seed: int) -> dict:
    store = Store(Path(tempfile.mkdtemp(prefix="bench-reason-")))
    data.generate_dataset(store, data.GenerateSpec("probs", train_size=args.train_rows, eval_size=args.eval_rows,
                                                   min_steps=2, max_steps=3, seed=seed), JobRecorder())
    rows = data.read_split(store, "probs", "train", need_reasoning=True)
    texts = [f"{r['question']}\n{r['reasoning']}\nAnswer: {r['answer']}" for r in rows]
    make_tiny_model(store, "base", size=args.size, texts=texts, vocab_size=args.vocab, seed=seed)
    out: dict = {"seed": seed}
    common = dict(batch_size=args.batch, learning_rate=args.lr, seed=seed, eval_questions=args.eval_rows,
                  max_new_tokens=args.max_new, device="cpu", checkpoint_every=0)
    t = time.perf_counter()
    r = cot.run_cot(store, cot.CotSpec("base", "probs", "cot", max_steps=args.steps, ablation=True, **common),
                    JobRecorder())
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
        right = sum(search(model, chat, q["question"], strategy, budget, args.max_new, generator=gen).answer
                    == q["answer"] for q in evals)
        out[f"{strategy}_em"] = right / len(evals)
    out.update(kv_share_speedup(model, chat, evals[0]["question"], args.max_new))
    return out


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
    args = p.parse_args()
    if args.quick:
        args.steps, args.grpo_steps, args.train_rows, args.eval_rows, args.search_questions = 60, 10, 300, 20, 10
    torch.set_num_threads(2)
    runs = []
    for seed in range(args.repeats):
        runs.append(one_seed(args, seed))
        print(json.dumps(runs[-1]), flush=True)
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0] if isinstance(runs[0][k], (int, float))
           and not isinstance(runs[0][k], bool) and k != "seed"}
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


if __name__ == "__main__":
    main()
