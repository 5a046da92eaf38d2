"""Device check of the core `train` on CUDA: bf16 autocast, loss falls, resume continues the curve.

    python tools/gpu_check_core.py [--steps 200]

Trains the `small` apt preset on the demo corpus on the GPU through the same job function
the gateway runs, then cancels a second run mid-way and resumes it, comparing the final
loss with an uninterrupted run. Prints JSON; exits non-zero when a check fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(store, spec, cancel_at: int | None = None) -> dict:
    from apt_model.runtime.jobs import JobManager, JobState

    jobs = JobManager("gpu-check", max_workers=1)
    from gateway.core.service import SERVICE
    from gateway.core.train import run_train

    snap = jobs.start(SERVICE + "StartTrain", lambda ctx: run_train(store, spec, ctx))
    last = None
    for last in jobs.watch(snap.id):
        if cancel_at and last.metrics.get("step", 0) >= cancel_at:
            jobs.cancel(snap.id)
    jobs.shutdown(cancel_running=False)
    return {"state": last.state.value, "result": last.result, "metrics": last.metrics,
            "error": last.error_message}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    import torch

    from apt_model.data import write_demo_corpus
    from apt_model.store import Store
    from gateway.core.train import TrainSpec

    out = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
           "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else ""}
    if not torch.cuda.is_available():
        print(json.dumps(out))
        return 2
    work = Path(tempfile.mkdtemp())
    train_file, _ = write_demo_corpus(work / "data")
    store = Store(work / "home")
    common = dict(corpus_paths=(str(train_file),), size="small", vocab_size=2048, seq_len=256, batch_size=32,
                  max_steps=args.steps, eval_every=50, checkpoint_every=25, device="cuda", seed=3,
                  learning_rate=3e-3)
    t = time.time()
    full = run(store, TrainSpec(name="full", **common))
    out["full"] = {"seconds": round(time.time() - t, 1), **full["metrics"], "state": full["state"]}
    part = run(store, TrainSpec(name="resumed", **common), cancel_at=args.steps // 2)
    out["interrupted"] = {"state": part["state"], "step": part["metrics"].get("step")}
    resumed = run(store, TrainSpec(name="resumed", resume=True, **common))
    out["resumed"] = {**resumed["metrics"], "state": resumed["state"], "error": resumed["error"]}
    checks = {
        "trained": full["state"] == "SUCCEEDED",
        "loss_fell": full["metrics"].get("val_loss", 99) < 7.0,
        "cancel_then_resume": part["state"] == "CANCELLED" and resumed["state"] == "SUCCEEDED",
        "same_final_loss": abs(resumed["metrics"].get("val_loss", 0) - full["metrics"].get("val_loss", 1)) < 2e-2,
    }
    out["checks"] = checks
    print(json.dumps(out, indent=1, default=str))
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
