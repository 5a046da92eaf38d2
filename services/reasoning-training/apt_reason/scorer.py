"""Reading solutions with a verifier: the encoding shared by training and search, building a
verifier from a causal LM's body, loading a stored one, scoring, and AUROC.

An outcome verifier is a ``*ForSequenceClassification`` (its score: P(correct) at the last
token); a process verifier is a ``*ForTokenClassification`` (P(correct) at the last token of
each step). Both are plain transformers models with labels ``0: wrong, 1: correct``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from apt_model import errors
from apt_model.modeling.io import building, load_tokenizer, read_config

from apt_reason.prompts import Chat

KINDS = ("outcome", "process")
LABELS = {0: "wrong", 1: "correct"}


def encode(chat: Chat, question: str, pieces: list[str], finished: bool) -> tuple[list[int], list[int]]:
    """(ids, ends): the question's prompt then each piece; ``ends`` holds the index of each
    piece's last token. A finished solution's last piece is closed by the end-of-turn token."""
    ids, ends = list(chat.prompt_ids(question)), []
    for i, piece in enumerate(pieces):
        close = chat.end_of_turn if finished and i == len(pieces) - 1 else ""
        ids += chat.tokenizer(piece + close, add_special_tokens=False)["input_ids"]
        ends.append(len(ids) - 1)
    return ids, ends


def batch(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids and their attention mask."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)], mask[i, :len(r)] = torch.tensor(r), 1
    return ids, mask


def model_class(kind: str):
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    return AutoModelForSequenceClassification if kind == "outcome" else AutoModelForTokenClassification


def build(path: Path, kind: str, pad_id: int, device: str, seed: int):
    """A verifier whose body is the causal LM's at ``path`` and whose 2-way head is new (seeded)."""
    try:
        with building():  # one load at a time in this process (apt_model.modeling.io._BUILDING)
            torch.manual_seed(seed)
            model = model_class(kind).from_pretrained(str(path), num_labels=2, id2label=LABELS,
                                                      label2id={v: k for k, v in LABELS.items()}, dtype=torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        raise errors.FailedPrecondition(
            f"A {kind} verifier cannot be built from the model in {path} ({type(exc).__name__}: {str(exc)[:300]}); "
            "start from a causal LM that transformers has a classification head for (Llama, Qwen2, ...).") from exc
    if model.config.pad_token_id is None:  # the sequence head finds each row's last token by it
        model.config.pad_token_id = pad_id
    return model.to(device)


@torch.no_grad()
def probabilities(model, kind: str, encoded: list[tuple[list[int], list[int]]], pad_id: int,
                  batch_size: int = 16) -> list[list[float]]:
    """P(correct) per solution: one value (outcome) or one per step end (process)."""
    device = next(model.parameters()).device
    out: list[list[float]] = []
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start:start + batch_size]
        ids, mask = batch([e[0] for e in chunk], pad_id)
        probs = torch.softmax(model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float(), -1)
        for i, (_, ends) in enumerate(chunk):
            out.append([float(probs[i, 1])] if kind == "outcome" else probs[i, ends, 1].tolist())
    return out


def auroc(scores: list[float], labels: list[int]) -> float:
    """The chance that a random positive outscores a random negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        raise ValueError("AUROC needs both classes")
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


@dataclass
class Verifier:
    """A stored verifier, ready to score solutions of the search (texts re-tokenized by its tokenizer)."""

    model: object
    kind: str
    chat: Chat
    pad_id: int

    @classmethod
    def load(cls, path: Path, name: str, device: str) -> "Verifier":
        arch = (read_config(path).get("architectures") or [""])[0]
        kind = "outcome" if arch.endswith("ForSequenceClassification") else (
            "process" if arch.endswith("ForTokenClassification") else "")
        if not kind:
            raise errors.FailedPrecondition(
                f"{name!r} is not a verifier (its architecture is {arch or 'unknown'}); train one with "
                "'apt-model reasoning-training start-verifier-training'.")
        with building():
            model = model_class(kind).from_pretrained(str(path), dtype=torch.float32).to(device).eval()
        tok = load_tokenizer(path)
        return cls(model, kind, Chat.of(tok), tok.pad_token_id if tok.pad_token_id is not None else 0)

    def score(self, question: str, paths: list[tuple[list[str], bool]]) -> list[float]:
        """One score per (step texts, finished) path: outcome P(correct), or the process
        verifier's P(correct) at the path's last step."""
        encoded = [encode(self.chat, question, pieces or [""], finished) for pieces, finished in paths]
        return [p[-1] for p in probabilities(self.model, self.kind, encoded, self.pad_id)]


def verifier_kind(store, name: str) -> str:
    """"outcome" or "process" for a stored verifier; FAILED_PRECONDITION for any other model."""
    arch = (read_config(store.model(name).path).get("architectures") or [""])[0]
    for suffix, kind in (("ForSequenceClassification", "outcome"), ("ForTokenClassification", "process")):
        if arch.endswith(suffix):
            return kind
    raise errors.FailedPrecondition(
        f"{name!r} is not a verifier (its architecture is {arch or 'unknown'}); train one with "
        "'apt-model reasoning-training start-verifier-training'.")

