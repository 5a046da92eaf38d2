"""Read a Hugging Face checkpoint folder without torch: config and memory-mapped tensors.

The safetensors format is an 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and byte range, then the raw data. Mapping the file and
viewing byte ranges as numpy arrays means a tensor is only read from disk when it is
converted, one at a time, so exporting never holds the whole model in memory. bf16 has
no numpy dtype; it is widened to f32 by shifting its 16 bits into the high half.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from apt_model import errors

_NUMPY_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_,
}
_MAX_HEADER = 100 << 20  # a header larger than 100 MiB means a corrupt file


@dataclass(frozen=True)
class TensorRef:
    """Where one tensor lives: its file, dtype tag, shape (numpy order) and byte range."""

    name: str
    file: Path
    dtype: str  # safetensors tag: F32, F16, BF16, ...
    shape: tuple[int, ...]
    begin: int  # absolute byte offsets in the file
    end: int


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise errors.FailedPrecondition(f"{path.name} is missing from {path.parent}: {what}.") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.FailedPrecondition(f"{path} is not valid JSON ({exc}); re-save the model.") from exc


def _read_header(file: Path) -> list[TensorRef]:
    try:
        with open(file, "rb") as fh:
            raw_len = fh.read(8)
            if len(raw_len) != 8:
                raise errors.DataLoss(f"{file} is truncated: it has no safetensors header.")
            (n,) = struct.unpack("<Q", raw_len)
            if n > _MAX_HEADER:
                raise errors.DataLoss(f"{file} has an implausible header size ({n} bytes); the file is corrupt.")
            header = json.loads(fh.read(n))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.DataLoss(f"{file} has an unreadable safetensors header ({exc}).") from exc
    size = file.stat().st_size
    base = 8 + n
    refs = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if base + end > size:
            raise errors.DataLoss(f"{file} is truncated: tensor {name!r} ends past the end of the file.")
        refs.append(TensorRef(name, file, info["dtype"], tuple(info["shape"]), base + begin, base + end))
    return refs


class Checkpoint:
    """The tensors of a safetensors checkpoint (single file or sharded with an index)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        index = self.folder / "model.safetensors.index.json"
        single = self.folder / "model.safetensors"
        if single.is_file():
            files = [single]
        elif index.is_file():
            weight_map = read_json(index, "the shard index of a sharded checkpoint")["weight_map"]
            files = [self.folder / f for f in sorted(set(weight_map.values()))]
        else:
            raise errors.FailedPrecondition(
                f"No model.safetensors (or sharded index) in {self.folder}; only safetensors "
                "checkpoints can be exported. Re-save the model with safe_serialization=True."
            )
        self.tensors: dict[str, TensorRef] = {}
        for file in files:
            for ref in _read_header(file):
                self.tensors[ref.name] = ref
        self._maps: dict[Path, np.memmap] = {}

    def read(self, name: str) -> np.ndarray:
        """The tensor as a read-only array mapped from disk (bf16 widened to f32)."""
        ref = self.tensors[name]
        mm = self._maps.get(ref.file)
        if mm is None:
            mm = self._maps[ref.file] = np.memmap(ref.file, dtype=np.uint8, mode="r")
        raw = mm[ref.begin:ref.end]
        if ref.dtype == "BF16":
            return (raw.view(np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(ref.shape)
        if ref.dtype not in _NUMPY_DTYPES:
            raise errors.InvalidArgument(
                f"Tensor {name!r} has dtype {ref.dtype}, which cannot be exported; "
                "use a checkpoint stored in f32, f16 or bf16."
            )
        return raw.view(_NUMPY_DTYPES[ref.dtype]).reshape(ref.shape)

    def close(self) -> None:
        self._maps.clear()  # dropping the maps unmaps the files
