"""The stored form of a multimodal dataset: pre-decoded safetensors shards plus ``rows.jsonl``.

A dataset folder holds ``multimodal.json`` (the media sizes, the format version),
``rows.jsonl`` (per row: its text, its shard and the indices of its media inside that shard),
``shard-NNNNN.safetensors`` (``images`` uint8 (n, 3, S, S), ``audios`` float32 log-mel
(n, n_mels, frames), ``audio_frames`` int64 (n,), ``videos`` uint8 (n, F, 3, S, S)),
``report.json`` and ``rejected.jsonl``. Training reads these, never the original files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from apt_model import errors

FORMAT = "apt-multimodal-shards/1"
META_FILE = "multimodal.json"
ROWS_FILE = "rows.jsonl"
SHARD_ROWS = 2048  # rows per shard file
KEYS = {"image": "images", "audio": "audios", "video": "videos"}


@dataclass
class StoredRow:
    text: str
    shard: int
    media: dict[str, list[int]] = field(default_factory=dict)  # modality -> indices in its shard


@dataclass
class ShardSet:
    """A stored dataset loaded into memory: its rows and every shard's tensors."""

    rows: list[StoredRow]
    shards: list[dict[str, torch.Tensor]]
    meta: dict

    def media(self, row: StoredRow, modality: str) -> torch.Tensor | None:
        """The row's media of one modality, stacked (None when it has none)."""
        idx = row.media.get(modality)
        if not idx:
            return None
        held = self.shards[row.shard][KEYS[modality]]
        if idx == list(range(idx[0], idx[0] + len(idx))):  # as pack() writes them: a view, no copy
            return held[idx[0]:idx[0] + len(idx)]
        return held[torch.tensor(idx)]

    def modalities(self) -> list[str]:
        return sorted({m for r in self.rows for m in r.media})


def write(folder: Path, rows: list[StoredRow], tensors: list[dict[str, torch.Tensor]], meta: dict) -> int:
    """Write the shards and rows into ``folder`` (a store.create temporary); returns the shard bytes."""
    size = 0
    for k, shard in enumerate(tensors):
        path = folder / f"shard-{k:05d}.safetensors"
        save_file({key: t.contiguous() for key, t in shard.items()}, str(path))
        size += path.stat().st_size
    with open(folder / ROWS_FILE, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(asdict(row), ensure_ascii=False) + "\n")
    (folder / META_FILE).write_text(json.dumps({"format": FORMAT, **meta}, indent=2), encoding="utf-8")
    return size


def read(folder: Path) -> ShardSet:
    """A stored dataset; FailedPrecondition when the folder is not one of this plugin's."""
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise errors.FailedPrecondition(
            f"Dataset {folder.name!r} is not a multimodal dataset (no {META_FILE}); "
            f"make one with 'apt-model multimodal-training create-dataset'.")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise errors.FailedPrecondition(f"Dataset {folder.name!r} has format {meta.get('format')!r}, not {FORMAT}.")
    rows = [StoredRow(**json.loads(line)) for line in (folder / ROWS_FILE).read_text(encoding="utf-8").splitlines()]
    shards = [load_file(str(p)) for p in sorted(folder.glob("shard-*.safetensors"))]
    return ShardSet(rows, shards, meta)
