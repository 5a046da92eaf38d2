"""Core training benchmarks: throughput vs HF Trainer, size estimate vs peak RSS, demo quality.

    .venv/bin/python bench/bench_train.py [--quick] [--threads N]

1. Throughput: tokens/s of ``train`` (gateway.core.train.run_train) and of the Hugging Face
   ``Trainer`` on the same model (apt ``small``), batch, sequence length, data and CPU threads,
   alternated in one process; medians of the repeats. Target >= 1.1x.
2. Memory: the training estimate of ``size`` against the peak resident memory that ``train``
   adds to its process (sampled every 2 ms in a fresh subprocess). Target within 25%.
3. Quality: ``train`` with the ``make demo`` budget (<= 3 min) on the demo corpus; validation
   perplexity on the held-out demo text against the unigram perplexity of the same tokenizer
   on the same tokens. Target <= 0.5x.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, median, save, verdict  # noqa: E402

# The demo training budget (the settings in gateway/core/README.md): within 3 minutes on 2 CPU cores.
DEMO = dict(size="tiny", vocab_size=2048, seq_len=128, batch_size=16, learning_rate=1e-2, max_steps=300,
            warmup_steps=10, eval_every=50, checkpoint_every=0, max_minutes=3.0)


def _setup(home: Path, threads: int):
    """A store with the demo corpus written out and a stored small model carrying its tokenizer."""
    import torch

    from apt_model.data import write_demo_corpus
    from apt_model.modeling.io import save_model
    from apt_model.modeling.preset import create_model, preset_config
    from apt_model.modeling.tokenizer import train_tokenizer
    from apt_model.store import Store
    from apt_model.corpus import load_corpus

    torch.set_num_threads(threads)
    store = Store(home)
    train_path, eval_path = write_demo_corpus(home / "corpus")
    if not store.exists("models", "tok"):
        tok = train_tokenizer(load_corpus([str(train_path)]).documents, vocab_size=4096)
        cfg = preset_config("small", len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                            pad_token_id=tok.pad_token_id)
        with store.create("models", "tok", operation="bench-fixture") as tmp:
            save_model(create_model(cfg, seed=0), tok, tmp)
    return store, train_path, eval_path


def _ctx():
    """A real job context for calling run_train directly, outside a running job."""
    from apt_model.runtime.jobs import JobContext, JobManager

    return JobContext(JobManager("bench"), "bench:0")


class StepClock:
    """Wall and CPU time at the end of each optimizer step. CPU time (this process, one torch
    thread) is what the comparison uses: on a machine shared with other jobs it counts the work
    done, not the time spent waiting for a core."""

    def __init__(self):
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def tick(self) -> None:
        self.wall.append(time.perf_counter())
        self.cpu.append(time.process_time())

    def rates(self, tokens_per_step: int, last: int) -> tuple[float, float]:
        """tokens/s (wall, cpu) from the end of step 1 to the end of step ``last``."""
        n = last - 1
        return (n * tokens_per_step / (self.wall[last - 1] - self.wall[0]),
                n * tokens_per_step / (self.cpu[last - 1] - self.cpu[0]))


def run_ours(store, train_path, steps: int, batch: int, seq: int, threads: int, name: str) -> tuple[float, float]:
    import apt_model.modeling.loop as loop_mod
    from apt_model.runtime.jobs import JobContext, JobManager
    from gateway.core.train import TrainSpec, run_train

    clock = StepClock()

    class Clocked(JobContext):
        def report(self, progress=None, stage=None, message=None, eta_seconds=None, **metrics):
            if "step" in metrics:
                clock.tick()
            super().report(progress, stage, message, eta_seconds, **metrics)

    loop_mod.REPORT_SECONDS = 0.0  # report (and so stamp) every step
    spec = TrainSpec(name=name, corpus_paths=(str(train_path),), tokenizer_from="tok", size="small", seq_len=seq,
                     batch_size=batch, max_steps=steps, eval_every=steps, checkpoint_every=0, threads=threads,
                     learning_rate=1e-3, overwrite=True).validate(store)
    run_train(store, spec, Clocked(JobManager("bench"), "bench:0"))
    return clock.rates(batch * seq, steps - 1)  # the last step also runs the validation pass


def run_hf_trainer(store, train_path, steps: int, batch: int, seq: int, threads: int) -> tuple[float, float]:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from apt_model.modeling import lm
    from apt_model.modeling.io import load_tokenizer
    from apt_model.modeling.preset import create_model, preset_config
    from apt_model.corpus import load_corpus
    from gateway.core.data import split_tokens, tokenize_documents

    torch.set_num_threads(threads)
    tok = load_tokenizer(store.model("tok").path)
    ids = tokenize_documents(tok, load_corpus([str(train_path)]).documents)
    train_ids, _ = split_tokens(ids, 0.05, seq)
    # The same windows our loop draws for these steps, cut to seq tokens (HF shifts inside the model).
    rows = [w[:seq] for s in range(steps) for w in lm.random_windows(train_ids, batch, seq, 0, s)]

    class Windows(torch.utils.data.Dataset):
        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            return {"input_ids": rows[i], "labels": rows[i]}

    clock = StepClock()

    class Clock(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            clock.tick()

    cfg = preset_config("small", len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                        pad_token_id=tok.pad_token_id)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=batch, max_steps=steps, learning_rate=1e-3,
            warmup_steps=max(1, steps // 20), lr_scheduler_type="cosine", weight_decay=0.1, max_grad_norm=1.0,
            adam_beta2=0.95, logging_steps=steps, save_strategy="no", report_to=[], use_cpu=True,
            dataloader_num_workers=0, disable_tqdm=True, seed=0)
        Trainer(model=create_model(cfg, seed=0), args=args, train_dataset=Windows(),
                callbacks=[Clock()]).train()
    return clock.rates(batch * seq, steps - 1)


def throughput(store, train_path, quick: bool, threads: int) -> dict:
    steps, repeats, batch, seq = (10, 2, 8, 128) if quick else (20, 4, 8, 128)
    ours, hf = [], []
    for r in range(repeats):  # alternated, so load from other processes hits both alike
        hf.append(run_hf_trainer(store, train_path, steps, batch, seq, threads))
        ours.append(run_ours(store, train_path, steps, batch, seq, threads, f"bench-{r}"))
        print(f"  repeat {r + 1}: tokens/s by CPU time: ours {ours[-1][1]:.0f}, HF Trainer {hf[-1][1]:.0f}; "
              f"by wall time: ours {ours[-1][0]:.0f}, HF Trainer {hf[-1][0]:.0f}", flush=True)
    o_cpu, h_cpu = median([x[1] for x in ours]), median([x[1] for x in hf])
    o_wall, h_wall = median([x[0] for x in ours]), median([x[0] for x in hf])
    return {"steps": steps, "batch_size": batch, "seq_len": seq, "threads": threads, "repeats": repeats,
            "ours_tokens_per_s": o_cpu, "hf_trainer_tokens_per_s": h_cpu, "ratio": o_cpu / h_cpu,
            "ours_tokens_per_s_wall": o_wall, "hf_trainer_tokens_per_s_wall": h_wall, "ratio_wall": o_wall / h_wall,
            "target": 1.1, "all_ours_wall_cpu": ours, "all_hf_wall_cpu": hf}


def _memory_child(home: str, batch: int, seq: int, steps: int, threads: int) -> None:
    """Runs in a fresh process: RSS before train, peak RSS while it runs, the size estimate."""
    import gc

    import psutil
    import torch

    from apt_model.store import Store
    from gateway.core.size import model_size
    from gateway.core.train import TrainSpec, run_train

    torch.set_num_threads(threads)
    store = Store(home)
    train_path = Path(home) / "corpus" / "demo-train.jsonl"
    spec = TrainSpec(name="mem", corpus_paths=(str(train_path),), tokenizer_from="tok", size="small",
                     seq_len=seq, batch_size=batch, max_steps=steps, eval_every=steps, checkpoint_every=0,
                     threads=threads, overwrite=True).validate(store)
    estimate = model_size(store, "tok", batch, seq)
    proc = psutil.Process()
    gc.collect()
    base = proc.memory_info().rss
    peak, done = [base], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.002)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    run_train(store, spec, _ctx())
    done.set()
    t.join()
    print(json.dumps({"baseline_rss": base, "peak_rss": peak[0], "measured_bytes": peak[0] - base,
                      "estimate_bytes": estimate["training_bytes"],
                      "breakdown": estimate["training_breakdown"]}))


def memory(home: Path, quick: bool, threads: int) -> dict:
    batch, seq, steps = (8, 256, 4) if quick else (8, 256, 10)
    proc = subprocess.run([sys.executable, __file__, "--memory-child", str(home), str(batch), str(seq), str(steps),
                           str(threads)], capture_output=True, text=True, cwd=ROOT, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-3000:])
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["ratio"] = r["estimate_bytes"] / r["measured_bytes"]
    r["target"] = "within 25% (0.75..1.25)"
    r.update(batch_size=batch, seq_len=seq, steps=steps)
    return r


def unigram_perplexity(train_ids, eval_ids) -> float:
    """Add-one smoothed unigram model from the training tokens, scored on eval_ids[1:]."""
    counts = collections.Counter(train_ids.tolist())
    vocab = max(max(counts), int(eval_ids.max())) + 1
    total = sum(counts.values()) + vocab
    targets = eval_ids[1:].tolist()
    nll = -sum(math.log((counts.get(t, 0) + 1) / total) for t in targets) / len(targets)
    return math.exp(nll)


def quality(store, train_path, eval_path, quick: bool, threads: int) -> dict:
    from apt_model.modeling import lm
    from apt_model.modeling.io import load_model, load_tokenizer
    from apt_model.corpus import load_corpus
    from gateway.core.data import split_tokens, tokenize_documents
    from gateway.core.train import TrainSpec, run_train

    settings = {**DEMO, **({"max_minutes": 1.0} if quick else {})}
    spec = TrainSpec(name="demo", corpus_paths=(str(train_path),), threads=threads, overwrite=True, **settings)
    t0 = time.perf_counter()
    result = run_train(store, spec.validate(store), _ctx())
    seconds = time.perf_counter() - t0
    folder = store.model("demo").path
    model, tok = load_model(folder), load_tokenizer(folder)
    eval_ids = tok(eval_path.read_text(encoding="utf-8"), return_tensors="pt").input_ids[0][:16384]
    ppl = lm.perplexity(model, eval_ids, max_length=DEMO["seq_len"]).perplexity
    train_ids, _ = split_tokens(tokenize_documents(tok, load_corpus([str(train_path)]).documents), 0.05,
                                DEMO["seq_len"])
    uni = unigram_perplexity(train_ids, eval_ids)
    return {"settings": settings, "steps": result["steps"], "train_seconds_total": seconds,
            "val_perplexity": ppl, "unigram_perplexity": uni, "ratio": ppl / uni, "target": 0.5,
            "eval_tokens": int(eval_ids.numel()), "train_val_perplexity": result["val_perplexity"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats, a 1-minute demo budget")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for every run")
    parser.add_argument("--only", choices=["throughput", "memory", "quality"], action="append")
    parser.add_argument("--memory-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        home, batch, seq, steps, threads = args.memory_child
        _memory_child(home, int(batch), int(seq), int(steps), int(threads))
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parts = args.only or ["throughput", "memory", "quality"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        store, train_path, eval_path = _setup(home, args.threads)
        out = {"quick": args.quick}
        if "throughput" in parts:
            print("throughput: ours vs HF Trainer", flush=True)
            out["throughput"] = throughput(store, train_path, args.quick, args.threads)
        if "memory" in parts:
            print("memory: size estimate vs peak RSS of train", flush=True)
            out["memory"] = memory(home, args.quick, args.threads)
        if "quality" in parts:
            print("quality: demo budget vs unigram", flush=True)
            out["quality"] = quality(store, train_path, eval_path, args.quick, args.threads)
    m = machine()
    print(f"\n{m['date']}  {m['cpu']}  {m['cores']} cores  {m['ram_gib']} GiB  threads={args.threads}")
    print(f"{'measure':44} {'value':>14} {'baseline':>14} {'ratio':>7} {'target':>12} verdict")
    if "throughput" in out:
        t = out["throughput"]
        print(f"{'train tokens/s vs HF Trainer (CPU time)':44} {t['ours_tokens_per_s']:14.0f} "
              f"{t['hf_trainer_tokens_per_s']:14.0f} {t['ratio']:7.2f} {'>= 1.1':>12} {verdict(t['ratio'], 1.1, True)}")
        print(f"{'train tokens/s vs HF Trainer (wall time)':44} {t['ours_tokens_per_s_wall']:14.0f} "
              f"{t['hf_trainer_tokens_per_s_wall']:14.0f} {t['ratio_wall']:7.2f} {'>= 1.1':>12} "
              f"{verdict(t['ratio_wall'], 1.1, True)}")
    if "memory" in out:
        r = out["memory"]
        ok = "PASS" if 0.75 <= r["ratio"] <= 1.25 else "MISS"
        print(f"{'size training estimate vs peak RSS (MiB)':44} {r['estimate_bytes'] / 2**20:14.1f} "
              f"{r['measured_bytes'] / 2**20:14.1f} {r['ratio']:7.2f} {'0.75..1.25':>12} {ok}")
    if "quality" in out:
        q = out["quality"]
        print(f"{'demo val perplexity vs unigram':44} {q['val_perplexity']:14.1f} {q['unigram_perplexity']:14.1f} "
              f"{q['ratio']:7.3f} {'<= 0.5':>12} {verdict(q['ratio'], 0.5, False)}")
    print(f"results: {save('train' if not args.quick else 'train_quick', out)}")


if __name__ == "__main__":
    main()
