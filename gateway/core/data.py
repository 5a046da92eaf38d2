"""Token streams for training and evaluation (reading the text is ``apt_model.corpus``).

Tokenized, documents are joined into one token stream with the end-of-sequence token
between them.
"""

from __future__ import annotations

import array

import torch

from apt_model import errors
from apt_model.modeling.heldout import held_out


def tokenize_documents(tokenizer, documents: list[str], batch: int = 256) -> torch.Tensor:
    """One int64 token stream: each document's tokens followed by the eos token."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise errors.FailedPrecondition("The tokenizer has no eos token to separate documents; add one.")
    out = array.array("q")  # 8 bytes a token, not a Python int object each
    for i in range(0, len(documents), batch):
        for ids in tokenizer(documents[i:i + batch], add_special_tokens=False).input_ids:
            out.extend(ids)
            out.append(eos)
    return torch.frombuffer(out, dtype=torch.long).clone() if out else torch.empty(0, dtype=torch.long)


def split_tokens(ids: torch.Tensor, eval_fraction: float, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): the held-out part is the last ``eval_fraction`` of the stream
    (``apt_model.modeling.heldout``), each part at least one sequence of ``seq_len`` + 1."""
    need = seq_len + 1
    n_eval = held_out(ids.numel(), eval_fraction, min_held=need, min_train=need,
                      hint="add text, lower --seq-len or --eval-fraction")
    return ids[: ids.numel() - n_eval], ids[ids.numel() - n_eval:]
