"""Proof that a saved model loads without this project: a fresh interpreter that imports
only torch and transformers loads the folder and checks its logits are finite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apt_model import errors

RELOAD_TIMEOUT_S = 600

_SCRIPT = r"""
import json, sys
import torch
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
ids = torch.arange(1, 1 + min(16, model.config.vocab_size - 1)).unsqueeze(0)
with torch.no_grad():
    logits = model(input_ids=ids).logits
ours = sorted(m for m in sys.modules if m.split(".")[0] in ("apt_model", "apt_prune"))
print(json.dumps({"finite": bool(torch.isfinite(logits).all()), "logits_shape": list(logits.shape),
                  "parameters": sum(p.numel() for p in model.parameters()), "project_modules": ours}))
"""


def verify_reload(folder: Path) -> dict:
    """Load ``folder`` with plain transformers in a subprocess; raise FailedPrecondition unless it works."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.setdefault("OMP_NUM_THREADS", "1")
    # -I: isolated mode, so neither PYTHONPATH nor the working directory can supply this project.
    proc = subprocess.run([sys.executable, "-I", "-c", _SCRIPT, str(folder)], capture_output=True, text=True,
                          timeout=RELOAD_TIMEOUT_S, env=env, cwd="/")
    if proc.returncode != 0:
        raise errors.FailedPrecondition(
            "The pruned model does not reload with plain transformers, so it was not stored: "
            f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'exit ' + str(proc.returncode)}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["finite"]:
        raise errors.FailedPrecondition("The pruned model reloads but produces non-finite logits; it was not stored.")
    if result["project_modules"]:
        raise errors.FailedPrecondition(f"The reload check imported project modules {result['project_modules']}.")
    return result
