"""Reading a dataset's rows: a JSON-lines manifest or a folder with metadata.csv/metadata.jsonl.

Every row is normalised before any file is opened: a media path given as a string becomes a
one-element list, unknown columns are refused next to the accepted ones, a path that leaves the
data folder (``..``, an absolute path elsewhere, a symlink out) is refused, and the placeholders
in ``text`` must match the media of the row one for one.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from apt_model import errors
from apt_model.jsonl import json_objects

# modality -> (manifest column, placeholder in the text)
MODALITIES = {"image": ("images", "<image>"), "audio": ("audios", "<audio>"), "video": ("videos", "<video>")}
MAX_LISTED = 5  # row errors quoted in one message


@dataclass
class Row:
    """One manifest row: its number (1-based, as a person counts lines), text and media paths."""

    number: int
    text: str
    media: dict[str, list[Path]] = field(default_factory=dict)  # modality -> resolved files


def manifest_file(path: Path) -> Path:
    """The manifest itself: the path when it is a file, else the folder's metadata file."""
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("metadata.jsonl", "metadata.csv"):
            if (path / name).is_file():
                return path / name
        raise errors.InvalidArgument(
            f"The folder {path} holds neither metadata.jsonl nor metadata.csv; add one with a `text` column "
            f"and `images`/`audios`/`videos` columns of paths.")
    raise errors.InvalidArgument(f"The manifest {path} does not exist.")


def read_rows(path: Path, modalities: tuple[str, ...]) -> list[Row]:
    """All rows of the manifest, checked; InvalidArgument naming every bad row (up to MAX_LISTED)."""
    file = manifest_file(path)
    folder = file.parent.resolve()
    raw = _read_jsonl(file) if file.suffix == ".jsonl" or file.suffix == ".json" else _read_csv(file)
    if not raw:
        raise errors.InvalidArgument(f"The manifest {file} has no rows.")
    rows, problems = [], []
    for number, record in raw:
        try:
            rows.append(check_row(number, record, folder, modalities))
        except errors.InvalidArgument as exc:
            problems.append(str(exc))
    raise_if_any(problems, file)
    return rows


def raise_if_any(problems: list[str], file: Path) -> None:
    if problems:
        more = f" (and {len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
        raise errors.InvalidArgument(
            f"{len(problems)} row(s) of {file} are refused, nothing was stored: "
            + " | ".join(problems[:MAX_LISTED]) + more)


def check_row(number: int, record: dict, folder: Path, modalities: tuple[str, ...]) -> Row:
    """One row normalised and checked (without opening its files)."""
    accepted = {"text"} | {MODALITIES[m][0] for m in modalities}
    unknown = sorted(set(record) - accepted)
    if unknown:
        raise errors.InvalidArgument(
            f"row {number}: unknown column(s) {', '.join(unknown)}; accepted: {', '.join(sorted(accepted))}")
    text = record.get("text")
    if not isinstance(text, str) or not text.strip():
        raise errors.InvalidArgument(f"row {number}: `text` is missing or empty")
    row = Row(number, text)
    for modality in modalities:
        column, placeholder = MODALITIES[modality]
        paths = as_list(record.get(column), number, column)
        if text.count(placeholder) != len(paths):
            raise errors.InvalidArgument(
                f"row {number}: the text has {text.count(placeholder)} {placeholder} placeholder(s) "
                f"and {len(paths)} {column}; give one placeholder per file")
        if paths:
            row.media[modality] = [inside(folder, p, number) for p in paths]
    return row


def as_list(value, number: int, column: str) -> list[str]:
    """A path or a list of paths as a list (a string is a one-element list; empty = none)."""
    if value is None or value == "":
        return []
    refusal = errors.InvalidArgument(f"row {number}: `{column}` must be a path or a list of paths")
    if isinstance(value, str):
        try:  # a CSV cell may hold a JSON list
            value = json.loads(value) if value.lstrip().startswith("[") else [value]
        except json.JSONDecodeError:
            raise refusal from None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise refusal
    return value


def inside(folder: Path, raw: str, number: int) -> Path:
    """The real path of ``raw`` (relative to the manifest's folder); refused when it leaves the folder."""
    real = Path(os.path.realpath(folder / raw))
    if real != folder and folder not in real.parents:
        raise errors.InvalidArgument(
            f"row {number}: the path {raw!r} is outside the data folder {folder}; "
            f"put the file inside it and name it relative to the manifest")
    return real


def _read_jsonl(file: Path) -> list[tuple[int, dict]]:
    return list(json_objects(file.read_text(encoding="utf-8").splitlines(), str(file)))


def _read_csv(file: Path) -> list[tuple[int, dict]]:
    with open(file, newline="", encoding="utf-8") as fh:
        return [(number, {k: v for k, v in record.items() if v not in (None, "")} | {"text": record.get("text")})
                for number, record in enumerate(csv.DictReader(fh), 2)]  # line 1 is the header
