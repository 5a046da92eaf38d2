"""The work of a StartEvaluate job: caption retrieval by the LM's log-likelihood.

Each row's caption competes with every distinct caption of the dataset that has the same
media (the placeholders stay, the words differ): the row scores a hit when its own caption has
the highest summed log-likelihood given its media. The text-only baseline scores the same
candidates with the same LM and no media, so a gap between the two is what the encoders add.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling.io import pick_device
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_multimodal import model as mm
from apt_multimodal import shards
from apt_multimodal.batches import IGNORE, make_batch


@dataclass(frozen=True)
class EvaluateSpec:
    model: str
    dataset: str
    max_rows: int = 0
    device: str = "auto"


def run_evaluate(store: Store, spec: EvaluateSpec, ctx: JobContext) -> dict[str, Any]:
    device = pick_device(spec.device)
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, tok = mm.load(store.model(spec.model).path, device)
    data = shards.read(store.dataset(spec.dataset).path)
    missing = [m for m in data.modalities() if m not in model.encoders]
    if missing:
        raise errors.FailedPrecondition(f"Model {spec.model!r} has no {', '.join(missing)} encoder.")
    candidates = sorted({r.text for r in data.rows})
    if len(candidates) < 2:
        raise errors.FailedPrecondition(f"Dataset {spec.dataset!r} has one distinct caption: nothing to retrieve.")
    rows = data.rows[: spec.max_rows or None]
    tokens = {m: c.tokens for m, c in model.tower_configs.items()}
    hits = {True: 0, False: 0}
    per_modality: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        ctx.check_cancelled()
        for with_media in (True, False):
            pool = [c for c in candidates if _placeholders(c) == _placeholders(row.text)]
            scores = score(model, data, row, pool, tok, tokens, device, with_media)
            hit = pool[int(scores.argmax())] == row.text
            hits[with_media] += hit
            if with_media:
                for modality in row.media:
                    per_modality.setdefault(modality, []).append(hit)
        ctx.report(progress=(i + 1) / len(rows), stage="score", message=f"{i + 1}/{len(rows)} rows",
                   retrieval_accuracy=hits[True] / (i + 1), text_only_accuracy=hits[False] / (i + 1))
    return {"rows": len(rows), "candidates": len(candidates), "retrieval_accuracy": hits[True] / len(rows),
            "text_only_accuracy": hits[False] / len(rows),
            "per_modality_accuracy": {m: sum(v) / len(v) for m, v in per_modality.items()}}


def _placeholders(text: str) -> tuple[int, ...]:
    return tuple(text.count(p) for p in mm.PLACEHOLDERS.values())


@torch.no_grad()
def score(model: mm.MultimodalLM, data: shards.ShardSet, row: shards.StoredRow, candidates: list[str], tok,
          tokens: dict[str, int], device: str, with_media: bool) -> torch.Tensor:
    """Summed log-likelihood of each candidate caption's text tokens given the row's media."""
    rows = [shards.StoredRow(text, row.shard, row.media) for text in candidates]
    batch = make_batch(data, rows, tok, model.token_ids, tokens, with_media).to(device)
    logits = model(batch.input_ids, batch.attention_mask, media=batch.media, with_media=with_media).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = batch.labels[:, 1:]
    keep = target != IGNORE
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(dim=1)
