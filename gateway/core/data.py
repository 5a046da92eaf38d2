"""Token streams for training (reading the text is ``apt_model.corpus``; the stream itself,
documents each followed by the end-of-sequence token, is ``apt_model.modeling.lm``)."""

from __future__ import annotations

import torch

from apt_model.modeling.heldout import held_out
from apt_model.modeling.lm import tokenize_documents  # noqa: F401 - the platform's token stream, used here


def split_tokens(ids: torch.Tensor, eval_fraction: float, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out): the held-out part is the last ``eval_fraction`` of the stream
    (``apt_model.modeling.heldout``), each part at least one sequence of ``seq_len`` + 1."""
    need = seq_len + 1
    n_eval = held_out(ids.numel(), eval_fraction, min_held=need, min_train=need,
                      hint="add text, lower --seq-len or --eval-fraction")
    return ids[: ids.numel() - n_eval], ids[ids.numel() - n_eval:]
