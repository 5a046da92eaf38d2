"""Text for calibration, training and evaluation, cut into fixed-length token blocks.

Text comes from a store dataset (its .txt/.md/.jsonl files) or a file on the service's
machine. When no held-out text is given, the last tenth of the tokens of the given text is
held out for perplexity and never used for calibration or training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.modeling import lm
from apt_model.modeling.heldout import held_out
from apt_model.store import Store

HELD_OUT_FRACTION = 0.1
MAX_CALIBRATION_BLOCKS = 32


def read_texts(store: Store, dataset: str, path: str) -> list[str]:
    """Documents from a store dataset and/or one text file (.txt/.md, or .jsonl with "text")."""
    return load_corpus([path] if path else [], store, dataset).documents


def to_blocks(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """A token stream cut into (N, seq_len) blocks (the tail is dropped)."""
    n = stream.numel() // seq_len
    return stream[: n * seq_len].view(n, seq_len)


@dataclass
class TextSets:
    train: torch.Tensor        # (N, S) blocks for recovery / lottery training (may be empty)
    calibration: torch.Tensor  # (N, S) blocks for gradients (may be empty)
    eval: torch.Tensor         # 1-D held-out token stream for perplexity (``lm.perplexity``; may be empty)
    eval_source: str           # where the held-out text came from, for the report ("" = none given)


def load_text_sets(store: Store, spec, tokenizer) -> TextSets:
    """Tokenize every text source of ``spec`` (the platform's token stream, ``lm.tokenize_documents``)
    and hold out the evaluation text: an eval text of its own, or the last tenth of the recovery
    (else calibration) text (``apt_model.modeling.heldout``), never used for anything else."""
    s = spec.seq_len
    train = _stream(store, tokenizer, spec.recovery_dataset, spec.recovery_path, s, "recovery")
    calib = _stream(store, tokenizer, spec.calibration_dataset, spec.calibration_path, s, "calibration")
    if spec.eval_dataset or spec.eval_path:
        evals = _stream(store, tokenizer, spec.eval_dataset, spec.eval_path, s, "evaluation")
        source = spec.eval_dataset or spec.eval_path
    elif train is None and calib is None:  # a strategy that needs no text, and none given
        evals, source = torch.zeros(0, dtype=torch.long), ""
    else:
        donor = "recovery" if train is not None else "calibration"
        stream = train if train is not None else calib
        n_eval = held_out(stream.numel(), HELD_OUT_FRACTION, min_held=s, min_train=s, unit="tokens",
                          hint=f"too little {donor} text to hold out evaluation text; give more text, a shorter "
                               f"seq_len, or eval_path")
        evals, stream = stream[-n_eval:], stream[:-n_eval]
        if train is not None:
            train = stream
        else:
            calib = stream
        source = f"the last {n_eval} tokens of the {donor} text (held out)"
    if calib is None:  # documented: gradients come from the training text when no calibration text is given
        calib = train
    empty = torch.zeros((0, s), dtype=torch.long)
    return TextSets(
        train=to_blocks(train, s) if train is not None else empty,
        calibration=(to_blocks(calib, s) if calib is not None else empty)[:MAX_CALIBRATION_BLOCKS],
        eval=evals[:lm.MAX_EVAL_TOKENS], eval_source=source,
    )


def _stream(store: Store, tokenizer, dataset: str, path: str, seq_len: int, what: str) -> torch.Tensor | None:
    if not dataset and not path:
        return None
    stream = lm.tokenize_documents(tokenizer, read_texts(store, dataset, path))
    if stream.numel() < seq_len:
        raise errors.InvalidArgument(
            f"The {what} text ({dataset or path}) holds fewer than {seq_len} tokens; give more text or a shorter seq_len.")
    return stream


def batches(blocks: torch.Tensor, batch_size: int, seed: int) -> Iterator[torch.Tensor]:
    """Endless shuffled batches of ``batch_size`` blocks, deterministic for a seed. Every batch is
    full (an epoch's permutation runs on into the next one's), so the ranks of a data-parallel run,
    which all draw the same batch, each train an equal share of it."""
    if len(blocks) == 0:
        raise errors.InvalidArgument("There is no training text to draw batches from.")
    g = torch.Generator().manual_seed(seed)
    order = torch.zeros(0, dtype=torch.long)
    while True:
        while len(order) < batch_size:
            order = torch.cat([order, torch.randperm(len(blocks), generator=g)])
        yield blocks[order[:batch_size]]
        order = order[batch_size:]
