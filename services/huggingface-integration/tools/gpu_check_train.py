"""Device check: the HF Trainer path on CUDA (bf16) lowers eval loss. Run on a GPU machine:

    python services/huggingface-integration/tools/gpu_check_train.py

Prints the versions it found first, so a machine lacking a dependency says which.
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
NEEDED = ["torch", "transformers", "datasets", "tokenizers", "safetensors", "accelerate", "pyarrow", "grpc", "yaml"]


def main() -> int:
    found = {"python": sys.version.split()[0]}
    for name in NEEDED:
        try:
            found[name] = getattr(importlib.import_module(name), "__version__", "present")
        except ImportError as exc:
            found[name] = f"MISSING ({exc})"
    print(json.dumps(found, indent=1), flush=True)
    if any(str(v).startswith("MISSING") for v in found.values()):
        return 2
    import torch

    print("cuda:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
    sys.path[:0] = [str(ROOT), str(ROOT / "services" / "huggingface-integration")]
    from apt_model.runtime.jobs import JobContext, JobManager
    from apt_model.store import Store
    from apt_model.testing import make_tiny_model, write_sample_jsonl

    from apt_hf.datasets_io import DatasetSpec, run_load_dataset
    from apt_hf.trainer import TrainSpec, run_train

    with tempfile.TemporaryDirectory() as work:
        store = Store(Path(work) / "home")
        make_tiny_model(store, "base", size="small")
        corpus = Path(work) / "c.jsonl"
        write_sample_jsonl(corpus)
        ctx = JobContext(JobManager("gpu"), "gpu:1")
        run_load_dataset(store, None, DatasetSpec(source=str(corpus), name="corpus"), ctx)
        result = run_train(store, TrainSpec(model="base", dataset="corpus", output_name="tuned", seq_len=64,
                                            learning_rate=3e-3, batch_size=8, max_steps=40, eval_fraction=0.2), ctx)
        print(json.dumps(result, indent=1))
        ok = result["bf16"] is torch.cuda.is_bf16_supported() and result["eval_loss"] < result["eval_loss_before"]
        print("GPU CHECK", "PASSED" if ok else "FAILED")
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
