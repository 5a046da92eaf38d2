"""``info``, ``list`` and ``size``: what a stored model is, without running it.

Parameter counts and dtypes come from the safetensors headers (no weights are read);
per-module-type counts from the model built on the ``meta`` device (no memory used).
"""

from __future__ import annotations

import json
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apt_model import errors
from apt_model.modeling.io import read_config
from apt_model.store import Entry, Store

DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
SAFETENSORS_NAMES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
                     "I8": "int8", "U8": "uint8", "I32": "int32", "I64": "int64"}
MAX_HEADER = 100 << 20


def safetensors_header(path: Path) -> dict[str, Any]:
    """The JSON header of a .safetensors file; FailedPrecondition when it is corrupt."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise ValueError("file shorter than the 8-byte header length")
            (n,) = struct.unpack("<Q", raw)
            if n > MAX_HEADER:
                raise ValueError(f"header length {n} is implausible")
            header = json.loads(fh.read(n))
        size = path.stat().st_size
        for key, t in header.items():
            if key == "__metadata__":
                continue
            end = t["data_offsets"][1]
            if 8 + n + end > size:
                raise ValueError(f"tensor {key} ends past the end of the file (truncated)")
        return header
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise errors.FailedPrecondition(
            f"{path.name} of model {path.parent.name!r} is corrupt ({exc}). Run 'apt-model debug "
            f"{path.parent.name}' for details; re-upload or retrain the model.") from exc


def weight_files(folder: Path) -> list[Path]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise errors.FailedPrecondition(
            f"Model {folder.name!r} has no .safetensors weights; store it in safetensors format.")
    return files


@dataclass
class WeightsSummary:
    parameters: int
    dtype: str  # the most common tensor dtype, e.g. "float32"
    tensors: dict[str, tuple[str, list[int]]] = field(default_factory=dict)  # name -> (dtype, shape)


def weights_summary(folder: Path) -> WeightsSummary:
    params, dtypes, tensors = 0, Counter(), {}
    for path in weight_files(folder):
        for key, t in safetensors_header(path).items():
            if key == "__metadata__":
                continue
            n = 1
            for dim in t["shape"]:
                n *= dim
            params += n
            dtypes[t["dtype"]] += n
            tensors[key] = (t["dtype"], list(t["shape"]))
    top = dtypes.most_common(1)[0][0] if dtypes else ""
    return WeightsSummary(params, SAFETENSORS_NAMES.get(top, top.lower()), tensors)


def tokenizer_summary(folder: Path) -> dict[str, Any]:
    """vocab size, model type, special tokens and chat template, read from the JSON files."""
    out: dict[str, Any] = {"vocab_size": 0, "type": "", "special_tokens": {}, "has_chat_template": False}
    tok_json = folder / "tokenizer.json"
    if tok_json.is_file():
        data = json.loads(tok_json.read_text(encoding="utf-8"))
        model = data.get("model", {})
        out["type"] = model.get("type", "")
        ids = set(model.get("vocab", {}).values()) | {t["id"] for t in data.get("added_tokens", [])}
        out["vocab_size"] = len(ids)
    cfg_path = folder / "tokenizer_config.json"
    if cfg_path.is_file():
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        for role in ("bos_token", "eos_token", "pad_token", "unk_token"):
            value = cfg.get(role)
            if isinstance(value, dict):
                value = value.get("content")
            if value:
                out["special_tokens"][role.removesuffix("_token")] = value
        out["has_chat_template"] = bool(cfg.get("chat_template"))
    out["has_chat_template"] |= (folder / "chat_template.jinja").is_file()
    return out


def model_info(store: Store, name: str) -> dict[str, Any]:
    entry = store.model(name)
    config = read_config(entry.path)
    weights = weights_summary(entry.path)
    files = [{"path": p, "size": f["size"], "sha256": f["sha256"]} for p, f in entry.meta.get("files", {}).items()]
    return {
        "name": name,
        "architecture": (config.get("architectures") or [""])[0],
        "model_type": config.get("model_type", ""),
        "config": config,
        "parameters": weights.parameters,
        "dtype": weights.dtype,
        "files": files,
        "tokenizer": tokenizer_summary(entry.path),
        "lineage": entry.meta.get("lineage", {}),
        "metrics": {k: float(v) for k, v in entry.meta.get("metrics", {}).items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)},
        "created": entry.created,
        "size_bytes": entry.size_bytes,
    }


def _summary(entry: Entry) -> dict[str, Any]:
    try:
        params = weights_summary(entry.path).parameters
        arch = (read_config(entry.path).get("architectures") or [""])[0]
    except errors.FailedPrecondition:
        params, arch = -1, "(unreadable: run apt-model debug)"
    lineage = entry.meta.get("lineage", {})
    return {"name": entry.name, "size_bytes": entry.size_bytes, "parameters": params, "created": entry.created,
            "parent": lineage.get("parent", ""), "operation": lineage.get("operation", ""), "architecture": arch}


ORDERS = ("name", "created", "size", "parameters")


def list_models(store: Store, filter: str = "", order_by: str = "name", descending: bool = False
                ) -> list[dict[str, Any]]:
    """Models in the store. ``filter``: a name substring, ``parent=<name>`` or ``arch=<substring>``."""
    order_by = order_by or "name"
    if order_by not in ORDERS:
        raise errors.InvalidArgument(f"Unknown sort key {order_by!r}; use one of: {', '.join(ORDERS)}.")
    rows = [_summary(e) for e in store.list("models")]
    if filter.startswith("parent="):
        rows = [r for r in rows if r["parent"] == filter[len("parent="):]]
    elif filter.startswith("arch="):
        rows = [r for r in rows if filter[len("arch="):].lower() in r["architecture"].lower()]
    elif "=" in filter:
        raise errors.InvalidArgument(f"Unknown filter {filter!r}; use a name substring, parent=NAME or arch=ARCH.")
    elif filter:
        rows = [r for r in rows if filter in r["name"]]
    key = {"size": "size_bytes"}.get(order_by, order_by)
    return sorted(rows, key=lambda r: (r[key], r["name"]), reverse=descending)
