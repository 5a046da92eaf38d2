"""Scale-out benchmark (#18): tokens/s of core ``train`` with 1 rank vs 2 ranks (torchrun, gloo).

    .venv/bin/python bench/bench_scaleout.py [--quick] [--repeats N] [--steps N]
    .venv/bin/python bench/bench_scaleout.py --gpu     # one GPU: tokens/s and MFU of the base preset


The apt ``small`` preset, the same global batch (``--batch``, default 32 sequences of 128 tokens:
32 on one rank, 16 + 16 on two), one torch thread per rank, the demo corpus and tokenizer; the two settings
alternate in one run, each repeated, and the medians are compared. tokens/s is the job's own
figure (``TrainResult.tokens_per_s``: the global tokens of the steps after the first over their
time on rank 0, which includes the gradient all-reduce). Target: 2 ranks >= 1.6x one rank on a
2-core machine.

``--gpu``: core ``train`` of the ``base`` preset on one CUDA device (bf16 autocast, the job's own
path), ``--gpu-seq`` tokens a sequence; tokens/s is the job's figure, and MFU = tokens/s x
FLOPs/token (apt_model.modeling.flops: 6N + 12LTd) / the device's dense bf16 peak
(``--peak-tflops`` for a device not in flops.PEAK_BF16_FLOPS). Goal: >= 40% MFU.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, median, save, verdict  # noqa: E402

TARGET = 1.6
MFU_GOAL = 0.40


def run(store, train_path: Path, name: str, workers: int, steps: int, batch: int, size: str = "small",
        seq_len: int = 128, device: str = "cpu") -> float:
    from apt_model.testing import JobRecorder
    from gateway.core.train import TrainSpec, run_train

    spec = TrainSpec(name=name, corpus_paths=(str(train_path),), tokenizer_from="tok", size=size, seq_len=seq_len,
                     batch_size=batch, max_steps=steps, warmup_steps=1, eval_every=steps, eval_fraction=0.01,
                     checkpoint_every=0, threads=1, learning_rate=1e-3, workers=workers, overwrite=True,
                     device=device)
    return run_train(store, spec.validate(store), JobRecorder())["tokens_per_s"]


def gpu(a) -> None:
    """One CUDA device: the base preset's tokens/s and MFU, medians of the repeats."""
    import torch

    from apt_model.modeling.flops import peak_flops, train_flops_per_token
    from apt_model.modeling.io import load_tokenizer
    from apt_model.modeling.preset import preset_config
    from bench_train import _setup

    if not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device; none is visible to torch here.")
    name = torch.cuda.get_device_name()
    peak = a.peak_tflops * 1e12 if a.peak_tflops else peak_flops(name)
    if not peak:
        sys.exit(f"No dense bf16 peak is known for {name!r}: pass --peak-tflops (the data sheet's, without sparsity).")
    with tempfile.TemporaryDirectory() as tmp:
        store, train_path, _ = _setup(Path(tmp) / "home", 4)
        vocab = len(load_tokenizer(store.model("tok").path))
        per_token = train_flops_per_token(preset_config("base", vocab), a.gpu_seq)
        rates = [run(store, train_path, f"g{r}", 1, a.steps, a.gpu_batch, "base", a.gpu_seq, "cuda")
                 for r in range(a.repeats)]
    rate = median(rates)
    mfu = rate * per_token / peak
    result = {"preset": "base", "device": name, "seq_len": a.gpu_seq, "batch": a.gpu_batch, "steps": a.steps,
              "tokens_per_s": rates, "median_tokens_per_s": rate, "flops_per_token": per_token,
              "peak_flops": peak, "mfu": mfu, "goal": MFU_GOAL}
    path = save("scaleout-gpu", result)
    print(f"{machine()['date']}: {name}: {rate:,.0f} tokens/s, {per_token / 1e6:.1f} MFLOPs/token, "
          f"MFU {mfu:.1%} (goal >= {MFU_GOAL:.0%})  -> {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="2 repeats of 6 steps")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--batch", type=int, default=32, help="the global batch, sequences of 128 tokens (even)")
    p.add_argument("--gpu", action="store_true", help="one CUDA device: base preset tokens/s and MFU")
    p.add_argument("--gpu-batch", type=int, default=32, help="with --gpu: sequences a step")
    p.add_argument("--gpu-seq", type=int, default=1024, help="with --gpu: tokens a sequence")
    p.add_argument("--peak-tflops", type=float, default=0.0, help="with --gpu: the device's dense bf16 peak")
    a = p.parse_args()
    if a.gpu:
        return gpu(a)
    repeats, steps = (2, 6) if a.quick else (a.repeats, a.steps)
    import torch

    from bench_train import _setup

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        store, train_path, _ = _setup(Path(tmp) / "home", 1)
        rates: dict[int, list[float]] = {1: [], 2: []}
        started = time.monotonic()
        for r in range(repeats):
            for workers in (1, 2):
                rates[workers].append(run(store, train_path, f"s{workers}", workers, steps, a.batch))
                print(f"repeat {r + 1}: {workers} rank(s) {rates[workers][-1]:,.0f} tokens/s", flush=True)
    one, two = median(rates[1]), median(rates[2])
    ratio = two / one
    result = {"preset": "small", "seq_len": 128, "global_batch": a.batch, "threads_per_rank": 1, "steps": steps,
              "repeats": repeats, "tokens_per_s": {"1": rates[1], "2": rates[2]},
              "median_tokens_per_s": {"1": one, "2": two}, "ratio": ratio, "target": TARGET,
              "verdict": verdict(ratio, TARGET, True), "seconds": round(time.monotonic() - started, 1)}
    path = save(f"scaleout-batch{a.batch}", result)
    print(f"{machine()['date']}: 1 rank {one:,.0f} tokens/s, 2 ranks {two:,.0f} tokens/s: {ratio:.2f}x "
          f"(target >= {TARGET}x) {result['verdict']}  -> {path}")


if __name__ == "__main__":
    main()
