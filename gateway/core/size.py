"""``size``: parameters by module type and memory estimates for inference and training.

Nothing is built: the parameter count and its per-module-type breakdown come from the config's
dimensions (``apt_model.modeling.limits``), after the config passed its bounds, so sizing a
model costs neither memory nor time however large its config claims it is. The training
estimate is what ``train`` on CPU (fp32) allocates on top of an idle process: weights,
gradients, AdamW's two moments, and the activations autograd keeps for the backward pass
(counted per decoder layer from the shapes; see ``apt_model.modeling.memory``). bench/bench_train.py
checks it against the peak resident memory of a real run.
"""

from __future__ import annotations

from typing import Any

from apt_model import errors
from apt_model.modeling import limits
from apt_model.modeling.io import read_config
from apt_model.modeling.lm import context_length_of_config
from apt_model.modeling.memory import fused_loss_applies, kv_cache_bytes, training_estimate
from apt_model.runtime.settings import Settings
from apt_model.store import Store
from gateway.core.inspect import weights_summary


def model_size(store: Store, name: str, batch_size: int = 0, seq_len: int = 0,
               max_params: int = Settings.max_model_params) -> dict[str, Any]:
    entry = store.model(name)
    raw = read_config(entry.path)
    config, count = limits.checked_config(raw, max_params, f"The config of model {name!r}")
    weights_summary(entry.path)  # fails clearly when the weights are corrupt
    batch = batch_size or 8
    seq = seq_len or min(512, context_length_of_config(config))
    if batch < 1 or seq < 1:
        raise errors.InvalidArgument("batch_size and seq_len must be positive.")
    total, full = count.total, config.to_dict()  # full: with the architecture's defaults filled in
    breakdown = training_estimate(full, total, batch, seq, fused_loss_applies(config))
    return {
        "total_parameters": total,
        "trainable_parameters": total,  # a model built from its config trains every parameter
        "parameters_by_module_type": count.by_module_type,
        "disk_bytes": entry.size_bytes,
        # Inference: the weights plus a KV cache for one sequence of seq_len tokens.
        "inference_bytes_fp32": 4 * total + kv_cache_bytes(full, seq, 4),
        "inference_bytes_fp16": 2 * total + kv_cache_bytes(full, seq, 2),
        "inference_bytes_int8": total + kv_cache_bytes(full, seq, 2),
        "training_bytes": sum(breakdown.values()),
        "training_breakdown": {"batch_size": batch, "seq_len": seq, **breakdown},
    }


