"""The guards every operation shares: models that exist (else the close names), an output
dataset that is free (or ``overwrite``), and no caller-chosen output path."""

from __future__ import annotations

import difflib

from apt_model import errors
from apt_model.store import Store
from apt_model.store.entry import validate_name


def check_models(store: Store, names: list[str]) -> None:
    """NOT_FOUND for the first unknown model, naming the store's closest names."""
    known = [e.name for e in store.list("models")]
    for name in names:
        validate_name(name)
        if not store.exists("models", name):
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise errors.NotFound(f"No model named {name!r} in the store.{hint} "
                                  "Run 'apt-model list' to see what is there.")


def check_output(store: Store, output_name: str, overwrite: bool, output_path: str) -> None:
    """Outputs are store datasets: refuse the draft's output path and a taken name without overwrite."""
    if output_path:
        raise errors.InvalidArgument(
            "output_path is no longer used: outputs are store datasets. Pass --output-name NAME and "
            "download the result with 'apt-model data pull NAME'.")
    validate_name(output_name, "dataset")
    if store.exists("datasets", output_name) and not overwrite:
        raise errors.AlreadyExists(
            f"Dataset {output_name!r} already exists in the store; choose another --output-name or pass --overwrite.")
