"""Importance scores that rank weights, heads and channels, and the extension point.

A score function takes ``(name, weight, grad)`` — the parameter's dotted name, its weight
tensor and the mean gradient over the calibration text (``None`` when the score does not
need gradients) — and returns a tensor of the weight's shape: higher means keep. The
unstructured strategies prune the lowest-scoring weights; the structured strategy sums the
scores of every weight that leaves with a head group or an MLP channel.

Users add their own without editing the service: a distribution installed in the plugin's
image registers an object in the ``apt.pruning.importance`` entry-point group, e.g. in its
``pyproject.toml``::

    [project.entry-points."apt.pruning.importance"]
    fisher = "my_scores:fisher"

The object is a callable with the signature above; an attribute ``needs_gradients = True``
asks for the calibration gradient. Its name then works as ``strategy`` (unstructured) and as
``importance`` (structured).
"""

from __future__ import annotations

import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from apt_model import errors

GROUP = "apt.pruning.importance"
log = logging.getLogger(__name__)

ScoreFn = Callable[[str, torch.Tensor, Optional[torch.Tensor]], torch.Tensor]


@dataclass(frozen=True)
class Importance:
    name: str
    score: ScoreFn
    needs_gradients: bool
    source: str  # "built-in" or the entry point's "module:attr"


def _magnitude(name: str, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    return weight.abs()


def _taylor(name: str, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    # First-order Taylor estimate of the loss change when the weight is zeroed: |w * dL/dw|.
    if grad is None:
        raise errors.FailedPrecondition(f"Taylor importance needs a gradient for {name}; none was computed.")
    return (weight * grad).abs()


BUILTIN_IMPORTANCES: dict[str, Importance] = {
    "magnitude": Importance("magnitude", _magnitude, False, "built-in"),
    "taylor": Importance("taylor", _taylor, True, "built-in"),
}
_RESERVED = set(BUILTIN_IMPORTANCES) | {"lottery", "structured"}


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    # Read at every call, not cached: an operator (or a test) that installs a distribution is seen at once.
    eps = []
    for ep in importlib.metadata.entry_points(group=GROUP):
        if ep.name in _RESERVED:
            log.warning("Ignoring entry point %r (%s): the name is a built-in strategy or importance.",
                        ep.name, ep.value)
            continue
        eps.append(ep)
    return eps


def registered_importances() -> frozenset[str]:
    """Names of the importances registered by entry point in this environment."""
    return frozenset(ep.name for ep in _entry_points())


def load_importance(name: str) -> Importance:
    """A built-in importance or the registered one called ``name``."""
    if name in BUILTIN_IMPORTANCES:
        return BUILTIN_IMPORTANCES[name]
    matches = [ep for ep in _entry_points() if ep.name == name]
    if not matches:
        raise errors.InvalidArgument(f"No importance {name!r} is registered in the {GROUP!r} entry-point group.")
    ep = matches[0]
    try:
        fn = ep.load()
    except (ImportError, AttributeError) as exc:
        raise errors.FailedPrecondition(
            f"The registered importance {name!r} ({ep.value}) cannot be imported: {exc}. "
            "Reinstall the package that provides it.") from exc
    if not callable(fn):
        raise errors.FailedPrecondition(f"The registered importance {name!r} ({ep.value}) is not callable.")
    return Importance(name, fn, bool(getattr(fn, "needs_gradients", False)), ep.value)


def score_weight(imp: Importance, name: str, weight: torch.Tensor, grad: torch.Tensor | None) -> torch.Tensor:
    """Run a score function and check what it returned, so a faulty plugin fails clearly."""
    with torch.no_grad():
        scores = imp.score(name, weight.detach(), None if grad is None else grad.detach())
    if not isinstance(scores, torch.Tensor) or scores.shape != weight.shape:
        got = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
        raise errors.FailedPrecondition(
            f"Importance {imp.name!r} ({imp.source}) returned {got} for {name}; "
            f"it must return a tensor of the weight's shape {tuple(weight.shape)}.")
    scores = scores.detach().float()
    if not torch.isfinite(scores).all():
        raise errors.FailedPrecondition(f"Importance {imp.name!r} returned non-finite scores for {name}.")
    return scores
