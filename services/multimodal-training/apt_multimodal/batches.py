"""Rows of a stored dataset as model batches: token ids with each placeholder expanded to its
medium's patch count, labels on the text only, and the media stacked in row order (the order
in which ``MultimodalLM.embed`` fills the placeholder runs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from apt_multimodal.model import PLACEHOLDERS
from apt_multimodal.shards import ShardSet, StoredRow

IGNORE = -100
_SPLIT = re.compile("(" + "|".join(re.escape(p) for p in PLACEHOLDERS.values()) + ")")
_MODALITY_OF = {p: m for m, p in PLACEHOLDERS.items()}


@dataclass
class Batch:
    input_ids: torch.Tensor       # (B, T)
    attention_mask: torch.Tensor  # (B, T)
    labels: torch.Tensor          # (B, T), IGNORE on media, padding and the first token
    media: dict[str, torch.Tensor]

    def to(self, device: str) -> "Batch":
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device),
                     {m: x.to(device) for m, x in self.media.items()})


def encode(text: str, tokenizer, token_ids: dict[str, int], tokens: dict[str, int],
           with_media: bool = True) -> tuple[list[int], list[int]]:
    """(ids, labels) of one row; ``with_media=False`` drops the placeholders (text-only baseline)."""
    ids = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    labels = [IGNORE] * len(ids)
    for piece in _SPLIT.split(text):
        if piece in _MODALITY_OF:
            if with_media:
                modality = _MODALITY_OF[piece]
                ids += [token_ids[modality]] * tokens[modality]
                labels += [IGNORE] * tokens[modality]
        elif piece.strip():
            part = tokenizer(piece.strip(), add_special_tokens=False)["input_ids"]
            ids += part
            labels += part
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
        labels.append(tokenizer.eos_token_id)
    return ids, labels


def make_batch(data: ShardSet, rows: list[StoredRow], tokenizer, token_ids: dict[str, int],
               tokens: dict[str, int], with_media: bool = True) -> Batch:
    encoded = [encode(r.text, tokenizer, token_ids, tokens, with_media) for r in rows]
    width = max(len(ids) for ids, _ in encoded)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (ids, lab) in enumerate(encoded):
        input_ids[i, :len(ids)] = torch.tensor(ids)
        labels[i, :len(lab)] = torch.tensor(lab)
        mask[i, :len(ids)] = 1
    media = {}
    if with_media:
        for modality in token_ids:
            parts = [x for r in rows if (x := data.media(r, modality)) is not None]
            if parts:
                media[modality] = torch.cat(parts)
    return Batch(input_ids, mask, labels, media)
