"""The extension point: distillation losses registered by entry point.

A package installed in the plugin's image registers a loss in the ``apt.distillation.loss``
group; its name becomes a strategy (``--strategy NAME``) and its weight is set with
``loss_weights[NAME]`` (default 1.0). In the package's ``pyproject.toml``::

    [project.entry-points."apt.distillation.loss"]
    attention_kl = "my_losses:attention_kl"

The object is a callable ``loss(inputs: apt_distill.objective.LossInputs) -> torch.Tensor``
returning a scalar that has a gradient through the student's outputs.
"""

from __future__ import annotations

import importlib.metadata
from typing import Callable

from apt_model import errors

GROUP = "apt.distillation.loss"


def registered_losses() -> frozenset[str]:
    """Names of the losses installed in this environment (read at every call, not cached,
    so a test or an operator that adds a distribution is seen at once)."""
    return frozenset(ep.name for ep in importlib.metadata.entry_points(group=GROUP))


def load_loss(name: str) -> Callable:
    matches = [ep for ep in importlib.metadata.entry_points(group=GROUP) if ep.name == name]
    if not matches:
        raise errors.InvalidArgument(f"No distillation loss {name!r} is registered in the {GROUP!r} entry-point group.")
    try:
        fn = matches[0].load()
    except (ImportError, AttributeError) as exc:
        raise errors.FailedPrecondition(
            f"The registered loss {name!r} ({matches[0].value}) cannot be imported: {exc}. "
            "Reinstall the package that provides it.") from exc
    if not callable(fn):
        raise errors.FailedPrecondition(f"The registered loss {name!r} ({matches[0].value}) is not callable.")
    return fn
