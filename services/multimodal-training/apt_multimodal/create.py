"""The work of a StartCreateDataset job: check every row and file, then store the shards.

Nothing is stored until every file decoded and every row passed: a decoder failure, a
placeholder mismatch or a path outside the folder fails the job with INVALID_ARGUMENT naming
the rows. Over-long audio is not an error of the manifest but of one clip: its row goes to
``rejected.jsonl`` with the reason (or the clip is truncated when asked).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from apt_model import errors
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_multimodal import shards
from apt_multimodal.manifest import MODALITIES, Row, raise_if_any, read_rows
from apt_multimodal.media import MediaError, MediaSpec, TooLong, decode_audio, decode_image, decode_video

OPERATION = "multimodal-create-dataset"


@dataclass(frozen=True)
class CreateSpec:
    name: str
    manifest: Path                 # resolved inside APT_DATA_ROOTS
    modalities: tuple[str, ...]
    media: MediaSpec
    overwrite: bool = False


@dataclass
class Counts:
    images: int = 0
    audios: int = 0
    videos: int = 0
    resampled: int = 0
    downmixed: int = 0
    truncated: int = 0
    audio_seconds: float = 0.0


def create_dataset(store: Store, spec: CreateSpec, ctx: JobContext) -> dict[str, Any]:
    ctx.report(progress=0.0, stage="check", message=f"reading {spec.manifest}")
    rows = read_rows(spec.manifest, spec.modalities)
    decoded, rejected, counts = decode_all(rows, spec, ctx)
    stored, tensors = pack(decoded)
    ctx.check_cancelled()
    ctx.report(progress=0.95, stage="store", message=f"writing {len(stored)} rows")
    report = {"rows": len(stored), "rejected": len(rejected), **asdict(counts),
              "media": asdict(spec.media), "manifest": spec.manifest.name}
    with store.create("datasets", spec.name, operation=OPERATION, parameters=_lineage(spec),
                      metrics={"rows": len(stored), "rejected": len(rejected)}, overwrite=spec.overwrite) as tmp:
        size = shards.write(tmp, stored, tensors, {"media": asdict(spec.media), "modalities": list(spec.modalities)})
        report["bytes"] = size
        (tmp / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        (tmp / "rejected.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejected),
                                            encoding="utf-8")
    for r in rejected:
        ctx.warn(f"row {r['row']} rejected: {r['reason']}")
    return {"dataset": spec.name, "rows": len(stored), "rejected": len(rejected), "bytes": size,
            **asdict(counts)}


def decode_all(rows: list[Row], spec: CreateSpec, ctx: JobContext):
    """Every row's media decoded: (kept rows with tensors, rejected rows, counts). Decoder
    failures of any row fail the whole job (InvalidArgument) before anything is stored."""
    decoded, rejected, problems, counts = [], [], [], Counts()
    for i, row in enumerate(rows):
        ctx.check_cancelled()
        try:
            decoded.append((row, decode_row(row, spec.media, counts)))
        except MediaError as exc:
            problems.append(str(exc))
        except TooLong as exc:
            rejected.append({"row": row.number, "text": row.text, "reason": f"audio too long: {exc}"})
        if i % 16 == 0:
            ctx.report(progress=0.9 * (i + 1) / len(rows), message=f"checked {i + 1}/{len(rows)} rows")
    raise_if_any(problems, spec.manifest)
    if not decoded:
        raise errors.InvalidArgument(f"Every row of {spec.manifest} was rejected; see the reasons: "
                                     + " | ".join(r["reason"] for r in rejected[:3]))
    return decoded, rejected, counts


def decode_row(row: Row, media: MediaSpec, counts: Counts) -> dict[str, list[torch.Tensor]]:
    """The row's tensors by modality; MediaError names the row and the file."""
    out: dict[str, list[torch.Tensor]] = {}
    for modality, paths in row.media.items():
        for path in paths:
            try:
                out.setdefault(modality, []).append(_decode(modality, path, media, counts))
            except MediaError as exc:
                raise MediaError(f"row {row.number}: {path.name} does not decode ({exc})") from exc
            except FileNotFoundError as exc:
                raise MediaError(f"row {row.number}: {path.name} is missing") from exc
    return out


def _decode(modality: str, path: Path, media: MediaSpec, counts: Counts):
    if not path.is_file():
        raise FileNotFoundError(path)
    if modality == "image":
        counts.images += 1
        return decode_image(path, media)
    if modality == "video":
        counts.videos += 1
        return decode_video(path, media)
    audio = decode_audio(path, media)
    counts.audios += 1
    counts.resampled += audio.resampled
    counts.downmixed += audio.downmixed
    counts.truncated += audio.truncated
    counts.audio_seconds += audio.seconds
    return audio


def pack(decoded) -> tuple[list[shards.StoredRow], list[dict[str, torch.Tensor]]]:
    """Rows and their media into shards of ``SHARD_ROWS`` rows."""
    rows, tensors = [], []
    for start in range(0, len(decoded), shards.SHARD_ROWS):
        lists: dict[str, list] = {}
        for row, media in decoded[start:start + shards.SHARD_ROWS]:
            indices = {}
            for modality, items in media.items():
                held = lists.setdefault(modality, [])
                indices[modality] = list(range(len(held), len(held) + len(items)))
                held.extend(items)
            rows.append(shards.StoredRow(row.text, len(tensors), indices))
        tensors.append(_stack(lists))
    return rows, tensors


def _stack(lists: dict[str, list]) -> dict[str, torch.Tensor]:
    out = {}
    for modality, items in lists.items():
        if modality == "audio":
            out["audios"] = torch.stack([a.features for a in items])
            out["audio_frames"] = torch.tensor([a.frames for a in items], dtype=torch.int64)
        else:
            out[shards.KEYS[modality]] = torch.stack(items)
    return out


def _lineage(spec: CreateSpec) -> dict[str, Any]:
    return {"manifest": spec.manifest.name, "modalities": list(spec.modalities), **asdict(spec.media)}


def all_modalities(requested) -> tuple[str, ...]:
    return tuple(requested) or tuple(MODALITIES)
