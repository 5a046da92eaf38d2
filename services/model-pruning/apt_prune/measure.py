"""What every report holds: parameters, sparsity by layer, size on disk, CPU latency, perplexity."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from apt_model.modeling import lm

LATENCY_REPEATS = 7
LATENCY_WARMUP = 2


def prunable_linears(model) -> dict[str, torch.nn.Linear]:
    """The Linear layers inside the decoder blocks: what every strategy prunes.

    Unstructured strategies leave embeddings, the LM head and norms whole: they are shared by
    every token, and zeroing single weights there costs quality without any speed. Structured
    pruning narrows them as a whole instead (``apt_prune.width``).
    """
    return {name: m for name, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and ".layers." in f".{name}"}


def count_parameters(model) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    head = model.get_output_embeddings()
    if head is not None and head.weight is not model.get_input_embeddings().weight:
        embed += head.weight.numel()
    nonzero = sum(int(torch.count_nonzero(p)) for p in model.parameters())
    return {"total": total, "non_embedding": total - embed, "nonzero": nonzero}


def sparsity_by_layer(model) -> dict[str, dict]:
    """For each prunable Linear: its shape and the fraction of exactly-zero weights."""
    out = {}
    for name, m in prunable_linears(model).items():
        w = m.weight.detach()
        out[name] = {"shape": list(w.shape), "sparsity": round(1.0 - int(torch.count_nonzero(w)) / w.numel(), 6)}
    return out


def prunable_sparsity(model) -> float:
    """Fraction of zero weights over all prunable Linear weights."""
    zeros = total = 0
    for m in prunable_linears(model).values():
        total += m.weight.numel()
        zeros += m.weight.numel() - int(torch.count_nonzero(m.weight.detach()))
    return zeros / total if total else 0.0


def folder_size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file() and p.name != "apt.json")


@torch.inference_mode()
def cpu_latency_ms(model, batch_size: int, seq_len: int, vocab_size: int, seed: int = 0) -> float:
    """Median wall time of one forward pass over (batch_size, seq_len) random token ids, in ms."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (batch_size, seq_len), generator=g)
    was_training = model.training
    model.eval()
    times = []
    for i in range(LATENCY_WARMUP + LATENCY_REPEATS):
        t0 = time.perf_counter()
        model(input_ids=ids, use_cache=False)
        if i >= LATENCY_WARMUP:
            times.append((time.perf_counter() - t0) * 1000.0)
    model.train(was_training)
    return statistics.median(times)


@torch.inference_mode()
def perplexity(model, ids: torch.Tensor) -> lm.PerplexityResult:
    """Perplexity over the held-out token stream: ``lm.perplexity`` in windows of the model's
    context — for an eval text of its own, the number 'apt-model test' prints for that text."""
    was_training = model.training
    try:
        return lm.perplexity(model, ids)
    finally:
        model.train(was_training)
