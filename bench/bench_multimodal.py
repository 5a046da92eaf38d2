"""multimodal-training at a tiny CPU configuration, every ratio against a baseline of the same run.

- digits: 10-way caption retrieval on held-out load_digits images, the trained model with its
  images vs the same LM without them (text-only);
- data: a second epoch's inputs read from the pre-decoded shards vs decoding the files again;
- step time: a training step with the images vs a text-only step over the same token count.

    .venv/bin/python bench/bench_multimodal.py [--steps 1000] [--train 1200] [--eval 100]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "multimodal-training"), str(ROOT / "bench")]

from common import machine, median, save, verdict  # noqa: E402

from apt_model.store import Store  # noqa: E402
from apt_model.testing import JobRecorder, make_tiny_model, pretrain  # noqa: E402
from apt_multimodal import sample_data, shards  # noqa: E402
from apt_multimodal.batches import make_batch  # noqa: E402
from apt_multimodal.create import Counts, CreateSpec, create_dataset, decode_row  # noqa: E402
from apt_multimodal.manifest import read_rows  # noqa: E402
from apt_multimodal.media import MediaSpec  # noqa: E402
from apt_multimodal.model import load  # noqa: E402
from apt_multimodal.evaluate import EvaluateSpec, run_evaluate  # noqa: E402
from apt_multimodal.train import TrainSpec, run_train  # noqa: E402

REPEATS = 3


def digits_retrieval(store: Store, data: Path, args) -> dict:
    # files at 128 px, trained at 32 px: a file is larger than what the model sees, as in real data
    train_manifest = sample_data.digits(data / "train", args.train, size=128)
    eval_manifest = sample_data.digits(data / "eval", args.eval, start=1797 - args.eval, size=128)
    for name, manifest in (("digits-train", train_manifest), ("digits-eval", eval_manifest)):
        create_dataset(store, CreateSpec(name, manifest, ("image",), MediaSpec()), JobRecorder())
    t0 = time.perf_counter()
    trained = run_train(store, TrainSpec("lm", "digits-train", "mm", max_steps=args.steps, batch_size=32,
                                         learning_rate=3e-3, stage="full", module_learning_rates={"lm": 1e-3},
                                         encoder_width=64, encoder_layers=2, patch_size=8, device="cpu",
                                         checkpoint_every=0), JobRecorder())
    seconds = time.perf_counter() - t0
    result = run_evaluate(store, EvaluateSpec("mm", "digits-eval", device="cpu"), JobRecorder())
    return {"steps": args.steps, "train_seconds": round(seconds, 1), "final_loss": trained["loss"],
            "multimodal": result["retrieval_accuracy"], "text_only": result["text_only_accuracy"],
            "rows": result["rows"], "candidates": result["candidates"]}


def shard_vs_decode(store: Store, data: Path) -> dict:
    """A second epoch's media as tensors: from the shards a run loaded once (its load timed
    apart) vs decoding every file again, as a pipeline without shards does each epoch."""
    manifest = data / "train" / "manifest.jsonl"
    rows = read_rows(manifest, ("image",))
    load_s = _seconds(lambda: shards.read(store.dataset("digits-train").path))
    ds = shards.read(store.dataset("digits-train").path)
    decode = [_seconds(lambda: [decode_row(r, MediaSpec(), Counts()) for r in rows]) for _ in range(REPEATS)]
    shard = [_seconds(lambda: [ds.media(r, "image") for r in ds.rows]) for _ in range(REPEATS)]
    return {"decode_s": median(decode), "shard_s": median(shard), "shard_load_once_s": load_s,
            "speedup": median(decode) / median(shard)}


def step_time(store: Store) -> dict:
    """Forward + backward of the trained model on 32 rows with images vs the same LM on text-only
    rows of the same token count (the placeholder positions hold plain tokens)."""
    model, tok = load(store.model("mm").path)
    model.train()
    ds = shards.read(store.dataset("digits-train").path)
    tokens = {m: c.tokens for m, c in model.tower_configs.items()}
    batch = make_batch(ds, ds.rows[:32], tok, model.token_ids, tokens)

    def multimodal():
        model(batch.input_ids, batch.attention_mask, batch.labels, batch.media).loss.backward()

    def text_only():
        model.lm(input_ids=batch.input_ids, attention_mask=batch.attention_mask, labels=batch.labels).loss.backward()

    for fn in (multimodal, text_only):  # warm-up
        fn()
    mm = [_seconds(multimodal) for _ in range(5)]
    text = [_seconds(text_only) for _ in range(5)]
    return {"multimodal_s": median(mm), "text_only_s": median(text), "ratio": median(mm) / median(text),
            "tokens": int(batch.attention_mask.sum())}


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--train", type=int, default=1200)
    parser.add_argument("--eval", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    root = Path(tempfile.mkdtemp(prefix="bench-mm-"))
    store, data = Store(root / "home"), root / "data"
    captions = [f"a handwritten {w}" for w in sample_data.EN]
    make_tiny_model(store, "lm", texts=captions * 20, seed=0)
    pretrain(store, "lm", captions * 10, steps=60, seq_len=16)
    out = {"digits": digits_retrieval(store, data, args), "data": shard_vs_decode(store, data),
           "step": step_time(store)}
    d, s, st = out["digits"], out["data"], out["step"]
    print(f"machine: {machine()}")
    print(f"digits 10-way retrieval ({d['rows']} held-out, {d['steps']} steps, {d['train_seconds']} s): "
          f"multimodal {d['multimodal']:.3f} [{verdict(d['multimodal'], 0.85, True)} >= 0.85]  "
          f"text-only {d['text_only']:.3f} [{verdict(d['text_only'], 0.15, False)} <= 0.15]")
    print(f"epoch inputs: decode {s['decode_s']:.3f} s, shards {s['shard_s']:.4f} s: "
          f"{s['speedup']:.1f}x [{verdict(s['speedup'], 3.0, True)} >= 3x]")
    print(f"step time: multimodal {st['multimodal_s'] * 1e3:.1f} ms, text-only {st['text_only_s'] * 1e3:.1f} ms "
          f"({st['tokens']} tokens): {st['ratio']:.2f}x [{verdict(st['ratio'], 2.0, False)} <= 2x]")
    print(f"results: {save('multimodal', out)}")


if __name__ == "__main__":
    main()
