"""Text for calibration, training and evaluation, cut into fixed-length token blocks.

Text comes from a store dataset (its .txt/.md/.jsonl files) or a file on the service's
machine. When no held-out text is given, the last tenth of the blocks of the given text is
held out for perplexity and never used for calibration or training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.store import Store

HELD_OUT_FRACTION = 0.1
MAX_EVAL_BLOCKS = 32      # perplexity over at most this many blocks keeps a job's report quick
MAX_CALIBRATION_BLOCKS = 32


def read_texts(store: Store, dataset: str, path: str) -> list[str]:
    """Documents from a store dataset and/or one text file (.txt/.md, or .jsonl with "text")."""
    return load_corpus([path] if path else [], store, dataset).documents


def to_blocks(tokenizer, docs: list[str], seq_len: int) -> torch.Tensor:
    """Documents joined with EOS and cut into (N, seq_len) blocks of token ids (the tail is dropped)."""
    eos = tokenizer.eos_token_id
    ids: list[int] = []
    for doc in docs:
        ids += tokenizer(doc, add_special_tokens=False)["input_ids"]
        if eos is not None:
            ids.append(eos)
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)


@dataclass
class TextSets:
    train: torch.Tensor        # (N, S) blocks for recovery / lottery training (may be empty)
    calibration: torch.Tensor  # (N, S) blocks for gradients (may be empty)
    eval: torch.Tensor         # (N, S) held-out blocks for perplexity
    eval_source: str           # where the held-out text came from, for the report ("" = none given)


def load_text_sets(store: Store, spec, tokenizer) -> TextSets:
    """Tokenize every text source of ``spec`` and hold out evaluation blocks."""
    s = spec.seq_len
    empty = torch.zeros((0, s), dtype=torch.long)
    train = _blocks(store, tokenizer, spec.recovery_dataset, spec.recovery_path, s, "recovery")
    calib = _blocks(store, tokenizer, spec.calibration_dataset, spec.calibration_path, s, "calibration")
    if spec.eval_dataset or spec.eval_path:
        evals = _blocks(store, tokenizer, spec.eval_dataset, spec.eval_path, s, "evaluation")
        source = spec.eval_dataset or spec.eval_path
    elif train is None and calib is None:  # a strategy that needs no text, and none given
        evals, source = empty, ""
    else:
        donor = "recovery" if train is not None else "calibration"
        blocks = train if train is not None else calib
        n_eval = max(1, round(len(blocks) * HELD_OUT_FRACTION))
        if len(blocks) - n_eval < 1:
            raise errors.InvalidArgument(
                f"The {donor} text gives only {len(blocks)} blocks of {s} tokens: too little to hold out "
                "evaluation text. Give more text, a shorter seq_len, or eval_path.")
        evals, blocks = blocks[-n_eval:], blocks[:-n_eval]
        if train is not None:
            train = blocks
        else:
            calib = blocks
        source = f"the last {n_eval} blocks of the {donor} text (held out)"
    if calib is None:  # documented: gradients come from the training text when no calibration text is given
        calib = train
    return TextSets(
        train=train if train is not None else empty,
        calibration=(calib if calib is not None else empty)[:MAX_CALIBRATION_BLOCKS],
        eval=evals[:MAX_EVAL_BLOCKS], eval_source=source,
    )


def _blocks(store: Store, tokenizer, dataset: str, path: str, seq_len: int, what: str) -> torch.Tensor | None:
    if not dataset and not path:
        return None
    blocks = to_blocks(tokenizer, read_texts(store, dataset, path), seq_len)
    if len(blocks) == 0:
        raise errors.InvalidArgument(
            f"The {what} text ({dataset or path}) holds fewer than {seq_len} tokens; give more text or a shorter seq_len.")
    return blocks


def batches(blocks: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of blocks; a new permutation each epoch, deterministic for a seed."""
    if len(blocks) == 0:
        raise errors.InvalidArgument("There is no training text to draw batches from.")
    g = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(len(blocks), generator=g)
        for i in range(0, len(order), batch_size):
            yield blocks[order[i:i + batch_size]]
