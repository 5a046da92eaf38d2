"""Loading and saving store models in Hugging Face layout."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from pathlib import Path

from apt_model import errors

# transformers 5 swaps class attributes for the length of a from_pretrained (PreTrainedModel.tie_weights
# and the torch init functions: transformers.initialization.no_tie_weights / no_init_weights), so two
# loads in threads of one process can leave them swapped for good: every tied model built afterwards
# untied (seen: a Qwen2 export that llama.cpp could not reproduce) or "Cannot copy out of meta tensor".
_BUILDING = threading.RLock()


@contextmanager
def building():
    """Held while a model is loaded or built: one at a time in this process (see _BUILDING)."""
    with _BUILDING:
        yield


def save_model(model, tokenizer, folder: Path | str) -> None:
    """Write ``model`` (safetensors), its generation config and ``tokenizer`` into ``folder``."""
    folder = Path(folder)
    model.save_pretrained(str(folder), safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))


def read_config(folder: Path | str) -> dict:
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise errors.FailedPrecondition(f"{path} is missing: this is not a Hugging Face model folder.") from exc
    except json.JSONDecodeError as exc:
        raise errors.FailedPrecondition(f"{path} is not valid JSON ({exc}); re-save the model.") from exc


def load_model(folder: Path | str, device: str = "cpu", dtype=None):
    """Load a causal LM from a store folder; corrupt files become FailedPrecondition."""
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM

    from apt_model.modeling.model_types import ensure_registered

    folder = Path(folder)
    ensure_registered(read_config(folder).get("model_type"))  # a plugin's own model type, when it is one
    try:
        with building():
            model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype or torch.float32)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise errors.FailedPrecondition(
            f"The model in {folder} cannot be loaded ({type(exc).__name__}: {str(exc)[:300]}). "
            f"Run 'apt-model debug {folder.name}' for a diagnosis."
        ) from exc
    return model.to(device).eval()


def load_tokenizer(folder: Path | str):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise errors.FailedPrecondition(
            f"The tokenizer in {folder} cannot be loaded ({str(exc)[:300]})."
        ) from exc


def pick_device(requested: str = "auto") -> str:
    import torch

    if requested in ("", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise errors.FailedPrecondition("device 'cuda' was requested but no CUDA GPU is visible; use --device cpu.")
    if requested not in ("cpu", "cuda"):
        raise errors.InvalidArgument(f"Unknown device {requested!r}; use auto, cpu or cuda.")
    return requested


PRELOADED_ARCHITECTURES = ("llama", "qwen2", "gpt2")


def preload_architectures() -> None:
    """Import transformers' lazily loaded modules once, at service start.

    transformers resolves its Auto classes and modeling modules on first use; two job threads
    doing that first use at the same moment can get an ImportError from a half-initialised
    module. Torch services call this from their wiring, before any job runs.
    """
    import importlib

    import transformers

    for name in ("AutoConfig", "AutoModelForCausalLM", "AutoTokenizer", "PreTrainedTokenizerFast"):
        getattr(transformers, name)
    for arch in PRELOADED_ARCHITECTURES:
        importlib.import_module(f"transformers.models.{arch}.modeling_{arch}")
        importlib.import_module(f"transformers.models.{arch}.configuration_{arch}")
