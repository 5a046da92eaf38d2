"""Token streams for training and evaluation (reading the text is ``apt_model.corpus``).

Tokenized, documents are joined into one token stream with the end-of-sequence token
between them.
"""

from __future__ import annotations

import array

import torch

from apt_model import errors



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
    """(train, held-out): the held-out part is the last ``eval_fraction`` of the stream."""
    need = seq_len + 1
    if ids.numel() < need:
        raise errors.InvalidArgument(
            f"The corpus has {ids.numel()} tokens, fewer than one training sequence of {need}; "
            f"add text or lower --seq-len.")
    n_eval = int(ids.numel() * eval_fraction)
    if eval_fraction > 0:
        n_eval = max(n_eval, need)
    if ids.numel() - n_eval < need:
        raise errors.InvalidArgument(
            f"The corpus has {ids.numel()} tokens: too few for a training part and a held-out part of at "
            f"least {need} tokens each; add text, lower --seq-len or --eval-fraction.")
    return ids[: ids.numel() - n_eval], ids[ids.numel() - n_eval:]
