"""Checks and copies of Hugging Face checkpoint folders (config, weights, tokenizer files)."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Callable

from apt_model import errors

CONFIG_FILES = ["config.json", "generation_config.json"]
TOKENIZER_FILES = [
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    "vocab.json", "merges.txt", "vocab.txt", "tokenizer.model", "chat_template.jinja", "chat_template.json",
]
SAFETENSORS = ["*.safetensors", "*.safetensors.index.json"]
PYTORCH_BIN = ["pytorch_model*.bin", "pytorch_model.bin.index.json"]
_COPY_CHUNK = 64 << 20  # bytes per sendfile call: large enough to be fast, small enough for progress


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise errors.InvalidArgument(f"{path.parent} has no {path.name}: it is not a Hugging Face {what} folder.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidArgument(f"{path} is not valid JSON ({exc}).") from exc


def check_causal_lm(config: dict, source: str) -> str:
    """The architecture name when ``config`` describes a causal LM transformers can load."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    model_type = config.get("model_type", "")
    archs = config.get("architectures") or []
    causal_classes = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise errors.InvalidArgument(
            f"{source} is a {model_type or 'model of unknown type'!r} model ({', '.join(archs) or 'no architectures'}), "
            "which has no causal-LM head in transformers; only causal language models can be imported."
        )
    if archs and not any(a in causal_classes or a.endswith("ForCausalLM") or a.endswith("LMHeadModel")
                         for a in archs):
        raise errors.InvalidArgument(
            f"{source} declares architectures {archs}, none of which is a causal LM; only causal "
            "language models (e.g. LlamaForCausalLM, GPT2LMHeadModel) can be imported."
        )
    return archs[0] if archs else MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type]


def safetensors_tensor_count(path: Path) -> tuple[int, int]:
    """(tensors, parameters) of a safetensors file, after checking the file is complete.

    Reads only the JSON header; a file cut short (an interrupted copy or download) is
    caught by comparing the end of the last tensor with the file size.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) < 8:
            raise errors.DataLoss(f"{path.name} is truncated (no safetensors header).")
        (n,) = struct.unpack("<Q", raw)
        if n > min(size - 8, 100 << 20):
            raise errors.DataLoss(f"{path.name} is not a valid safetensors file (header length {n}).")
        try:
            header = json.loads(fh.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise errors.DataLoss(f"{path.name} has a corrupt safetensors header ({exc}).") from exc
    end, params = 0, 0
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    for v in tensors.values():
        end = max(end, v["data_offsets"][1])
        count = 1
        for d in v["shape"]:
            count *= d
        params += count
    if 8 + n + end != size:
        raise errors.DataLoss(
            f"{path.name} is {size} bytes but its header describes {8 + n + end}: the file is incomplete; "
            "download or copy it again."
        )
    return len(tensors), params


def weight_files(folder: Path) -> tuple[str, list[Path]]:
    """("safetensors" | "bin", files) of a checkpoint folder, preferring safetensors."""
    st = sorted(folder.glob("*.safetensors"))
    if st:
        return "safetensors", st
    bins = sorted(folder.glob("pytorch_model*.bin"))
    if bins:
        return "bin", bins
    raise errors.InvalidArgument(
        f"{folder} holds no model weights (*.safetensors or pytorch_model*.bin); "
        "TensorFlow, Flax and GGUF checkpoints are not imported."
    )


def copy_file(src: Path, dst: Path, on_bytes: Callable[[int], None]) -> None:
    """Copy ``src`` to ``dst`` in the kernel (sendfile), reporting bytes as they go."""
    size = src.stat().st_size
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        offset = 0
        while offset < size:
            sent = os.sendfile(fout.fileno(), fin.fileno(), offset, min(_COPY_CHUNK, size - offset))
            if sent == 0:
                raise errors.DataLoss(f"{src} shrank while it was being copied.")
            offset += sent
            on_bytes(sent)
