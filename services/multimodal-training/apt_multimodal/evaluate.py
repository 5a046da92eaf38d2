"""The work of a StartEvaluate job: caption retrieval by the LM's log-likelihood, and
exact-match captioning.

Each row's caption competes with every distinct caption of the dataset that has the same
media (the placeholders stay, the words differ): the row scores a hit when its own caption has
the highest summed log-likelihood given its media. The text-only baseline scores the same
candidates with the same LM and no media, so a gap between the two is what the encoders add.
Exact-match captioning: the prompt is the row up to its last placeholder (the media), the model
continues it greedily, and the row counts when the words equal the reference caption.
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
from apt_multimodal.batches import IGNORE, encode, make_batch


@dataclass(frozen=True)
class EvaluateSpec:
    model: str
    dataset: str
    max_rows: int = 0
    device: str = "auto"
    max_new_tokens: int = 16


def run_evaluate(store: Store, spec: EvaluateSpec, ctx: JobContext) -> dict[str, Any]:
    device = pick_device(spec.device)
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r}")
    model, tok = mm.load(store.model(spec.model).path, device)
    data = shards.read(store.dataset(spec.dataset).path)
    missing = [m for m in data.modalities() if m not in model.config.modalities()]
    if missing:
        raise errors.FailedPrecondition(f"Model {spec.model!r} has no {', '.join(missing)} encoder.")
    candidates = sorted({r.text for r in data.rows})
    if len(candidates) < 2:
        raise errors.FailedPrecondition(f"Dataset {spec.dataset!r} has one distinct caption: nothing to retrieve.")
    rows = data.rows[: spec.max_rows or None]
    tokens = model.tokens_per_item()
    hits, matches = {True: 0, False: 0}, 0
    per_modality: dict[str, list[tuple[bool, bool]]] = {}
    for i, row in enumerate(rows):
        ctx.check_cancelled()
        pool = [c for c in candidates if _placeholders(c) == _placeholders(row.text)]
        hit, text_hit = (pool[int(score(model, data, row, pool, tok, tokens, device, w).argmax())] == row.text
                         for w in (True, False))
        hits[True] += hit
        hits[False] += text_hit
        prompt, reference = split_caption(row.text)
        match = caption(model, data, row, prompt, tok, tokens, device, spec.max_new_tokens) == reference
        matches += match
        for modality in row.media:
            per_modality.setdefault(modality, []).append((hit, match))
        ctx.report(progress=(i + 1) / len(rows), stage="score", message=f"{i + 1}/{len(rows)} rows",
                   retrieval_accuracy=hits[True] / (i + 1), text_only_accuracy=hits[False] / (i + 1),
                   exact_match=matches / (i + 1))
    return {"rows": len(rows), "candidates": len(candidates), "retrieval_accuracy": hits[True] / len(rows),
            "text_only_accuracy": hits[False] / len(rows), "exact_match": matches / len(rows),
            "per_modality_accuracy": {m: sum(h for h, _ in v) / len(v) for m, v in per_modality.items()},
            "per_modality_exact_match": {m: sum(e for _, e in v) / len(v) for m, v in per_modality.items()}}


def split_caption(text: str) -> tuple[str, str]:
    """(prompt up to and with the last placeholder, the caption after it, stripped)."""
    end = max((text.rfind(p) + len(p) for p in mm.PLACEHOLDERS.values() if p in text), default=0)
    return text[:end], text[end:].strip()


@torch.no_grad()
def caption(model: mm.MultimodalLM, data: shards.ShardSet, row: shards.StoredRow, prompt: str, tok,
            tokens: dict[str, int], device: str, max_new_tokens: int) -> str:
    """The greedy continuation of ``prompt`` given the row's media, decoded and stripped."""
    ids, _ = encode(prompt, tok, model.config.token_ids(), tokens)
    if tok.eos_token_id is not None:
        ids = ids[:-1]  # encode closes a row with EOS; the caption follows the media instead
    media = {m: x.to(device) for m in row.media if (x := data.media(row, m)) is not None}
    ids_t, new = torch.tensor([ids], device=device), []
    embeds = model.embed(ids_t, media)  # the media are encoded once; each new token appends one embedding
    for _ in range(max_new_tokens):
        logits = model.language_model(inputs_embeds=embeds, use_cache=False).logits[0, -1]
        nxt = int(logits.argmax())
        if nxt == tok.eos_token_id:
            break
        new.append(nxt)
        step = model.get_input_embeddings()(torch.tensor([[nxt]], device=device))
        embeds = torch.cat([embeds, step], dim=1)
    return tok.decode(new, skip_special_tokens=True).strip()


def _placeholders(text: str) -> tuple[int, ...]:
    return tuple(text.count(p) for p in mm.PLACEHOLDERS.values())


@torch.no_grad()
def score(model: mm.MultimodalLM, data: shards.ShardSet, row: shards.StoredRow, candidates: list[str], tok,
          tokens: dict[str, int], device: str, with_media: bool) -> torch.Tensor:
    """Summed log-likelihood of each candidate caption's text tokens given the row's media."""
    rows = [shards.StoredRow(text, row.shard, row.media) for text in candidates]
    batch = make_batch(data, rows, tok, model.config.token_ids(), tokens, with_media).to(device)
    logits = model(batch.input_ids, batch.attention_mask, media=batch.media, with_media=with_media).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    target = batch.labels[:, 1:]
    keep = target != IGNORE
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(dim=1)
