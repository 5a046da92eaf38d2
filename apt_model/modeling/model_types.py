"""Model types that plugins define, so the core (``info``, ``size``, ``test``) loads their models.

A plugin whose stored models are their own transformers ``model_type`` names it here with the
module that registers it with ``AutoConfig``/``AutoModel``/``AutoModelForCausalLM`` on import.
Only the modules listed here are ever imported: a model folder cannot name code to run.
The module is imported from the plugin's folder (``services/<plugin>``, present beside the
gateway in the repository and in the gateway image) when it is not importable already.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

from apt_model import errors

# model_type -> (plugin, module that registers it)
PLUGIN_MODEL_TYPES: dict[str, tuple[str, str]] = {
    "apt_multimodal": ("multimodal-training", "apt_multimodal.hf"),
}
SERVICES = Path(__file__).resolve().parents[2] / "services"


def ensure_registered(model_type: str | None) -> None:
    """Import the module that registers ``model_type`` when a plugin defines it; nothing otherwise.
    FailedPrecondition when the plugin's code is not there."""
    entry = PLUGIN_MODEL_TYPES.get(model_type or "")
    if entry is None:
        return
    plugin, module = entry
    if module in sys.modules:
        return
    folder = SERVICES / plugin
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as first:
        if first.name != module.split(".")[0] or not folder.is_dir():
            raise errors.FailedPrecondition(
                f"Model type {model_type!r} is defined by plugin {plugin!r}, whose module {module} cannot be "
                f"imported here ({first}); install that plugin's requirements next to the gateway.") from first
        sys.path.append(str(folder))
        importlib.import_module(module)
