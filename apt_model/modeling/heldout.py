"""The one held-out split of the training services: the last ``fraction`` of what was read
(tokens or blocks) is held out for validation, never trained on, so a resumed run and an
uninterrupted one validate on the same text and training never sees it.
"""

from __future__ import annotations

from apt_model import errors


def held_out(total: int, fraction: float, *, min_held: int, min_train: int, max_held: int | None = None,
             unit: str = "tokens", hint: str = "add text") -> int:
    """How many of the ``total`` units at the end are held out: ``fraction`` of them, at least
    ``min_held`` (when ``fraction`` > 0) and at most ``max_held``; refused when fewer than
    ``min_train`` would be left to train on."""
    if total < min_train:
        raise errors.InvalidArgument(
            f"The text gives {total} {unit}, fewer than one training sequence ({min_train} {unit}); {hint}.")
    n = int(total * fraction)
    if fraction > 0:
        n = max(n, min_held)
    if max_held is not None:
        n = min(n, max_held)
    if total - n < min_train:
        parts = f"a training part of {min_train}" + (f" and a held-out part of {min_held}" if fraction > 0 else "")
        raise errors.InvalidArgument(
            f"The text gives {total} {unit}: too few for {parts} {unit} at least; {hint}.")
    return n


def split_tokens(ids, eval_fraction: float, seq_len: int, hint: str = "add text, lower --seq-len or --eval-fraction"):
    """(train, held-out) parts of a token stream (a 1-D tensor): the held-out part is the last
    ``eval_fraction`` of it (``held_out``), each part at least one sequence of ``seq_len`` + 1.
    Core ``train`` splits its stream with this, and advanced-debugging's replay rebuilds the
    same training part with it."""
    need = seq_len + 1
    n_eval = held_out(ids.numel(), eval_fraction, min_held=need, min_train=need, hint=hint)
    return ids[: ids.numel() - n_eval], ids[ids.numel() - n_eval:]
