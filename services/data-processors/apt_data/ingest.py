"""Readers: one input file -> a stream of ``Record``s, in bounded memory where the format allows.

csv/tsv are read by pandas in chunks, jsonl line by line, xlsx row by row (openpyxl read-only,
every sheet); json arrays, html pages and code files are read whole (a file is at most
``max_file_bytes``). Every error names the file and where in it, and what to do.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd

from apt_model import errors

from apt_data.encoding import decoded_lines, detect, read_text
from apt_data.html import extract_text

CSV_CHUNK_ROWS = 10_000
OLE_MAGIC = b"\xd0\xcf\x11\xe0"  # .xls and password-protected .xlsx are both OLE compound files
TEXT_SUFFIXES = {".txt", ".md", ".text"}
CODE_SUFFIXES = {".py"}
SUPPORTED = {".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".xlsx", ".xls", ".html", ".htm",
             *TEXT_SUFFIXES, *CODE_SUFFIXES}


@dataclass(frozen=True)
class Record:
    text: str
    source: str   # the file's name
    where: str    # "row 12", "line 4", "sheet S row 3", "paragraph 2", ""
    id: str | None = None               # the row's "id" (json/jsonl), as augment writes it for originals
    augmented_from: str | None = None   # the "id" of the row this one was augmented from (json/jsonl)


@dataclass(frozen=True)
class ReadOptions:
    text_field: str = "text"
    html_extractor: str = "main"
    whole_files: bool = False   # txt as one document per file (the code strategy) instead of per paragraph
    max_file_bytes: int = 1 << 30
    start: int = 0              # a byte range of a jsonl/csv/tsv file (a shard of it); other kinds are read whole
    end: int = -1
    first_line: int = 1         # the number of the line at ``start``
    first_row: int = 0          # csv/tsv: the data rows before ``start``
    header_end: int = 0         # csv/tsv: where the header record ends (a range is read after it)


def check_file(path: Path, max_bytes: int) -> None:
    """Refuse what cannot be read before reading any of it."""
    if not path.is_file():
        raise errors.NotFound(f"{path} does not exist or is not a regular file.")
    if path.suffix.lower() not in SUPPORTED:
        raise errors.InvalidArgument(
            f"{path.name}: unsupported file type {path.suffix or '(no suffix)'!r}; use one of "
            f"{', '.join(sorted(SUPPORTED - {'.xls'}))}.")
    size = path.stat().st_size
    if size > max_bytes:
        raise errors.ResourceExhausted(
            f"{path.name} is {size / 2**20:.1f} MiB, over this service's limit of {max_bytes / 2**20:.1f} MiB "
            "per file (APT_DATA_MAX_FILE_MB); split it into smaller files.")


def read_records(path: Path, options: ReadOptions) -> tuple[str, Iterator[Record]]:
    """(the encoding read with, or the format for binary ones; the file's records)."""
    check_file(path, options.max_file_bytes)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xls"):
        from apt_data.excel import read_xlsx

        return "xlsx", read_xlsx(path, options.text_field)
    encoding = detect(path)
    if suffix in (".csv", ".tsv"):
        return encoding, _csv(path, encoding, options, "\t" if suffix == ".tsv" else ",")
    if suffix in (".jsonl", ".ndjson"):
        return encoding, _jsonl(path, encoding, options)
    if suffix == ".json":
        return encoding, _json(path, encoding, options.text_field)
    if suffix in (".html", ".htm"):
        return encoding, iter([Record(extract_text(read_text(path, encoding), options.html_extractor), path.name, "")])
    if suffix in CODE_SUFFIXES or options.whole_files:
        return encoding, iter([Record(read_text(path, encoding), path.name, "")])
    return encoding, _paragraphs(path, encoding)


def _missing_field(path: Path, field: str, where: str, present: list[str]) -> errors.InvalidArgument:
    return errors.InvalidArgument(
        f"{path.name} {where} has no field {field!r}; it has: {', '.join(map(str, present)) or '(none)'}. "
        "Pass --text-field with one of those.")


_RAGGED = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class _HeaderAndRange(io.RawIOBase):
    """A csv/tsv byte range as pandas reads it: the file's header record, then bytes
    ``start``..``end``, streamed from the file (nothing of the range held in memory)."""

    def __init__(self, path: Path, header_end: int, start: int, end: int):
        super().__init__()
        self._file = open(path, "rb")
        self._head = self._file.read(header_end)
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        view = memoryview(buffer)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n], self._head = self._head[:n], self._head[n:]
            return n
        got = self._file.readinto(view[:max(0, min(len(view), self._left))]) if self._left > 0 else 0
        self._left -= got
        return got

    def close(self) -> None:
        self._file.close()
        super().close()


def _csv_source(path: Path, options: ReadOptions):
    """The file, or for a byte range its header record followed by the range."""
    if options.start == 0 and options.end < 0:
        return path
    return io.BufferedReader(_HeaderAndRange(path, options.header_end, options.start, options.end), 1 << 20)


def _csv(path: Path, encoding: str, options: ReadOptions, sep: str) -> Iterator[Record]:
    field, first_row = options.text_field, options.first_row
    source = _csv_source(path, options)
    try:
        reader = pd.read_csv(source, sep=sep, encoding=encoding.removesuffix("-sig"), dtype=str,
                             keep_default_na=False, chunksize=CSV_CHUNK_ROWS, quoting=csv.QUOTE_MINIMAL,
                             encoding_errors="strict")
        row = first_row
        for chunk in reader:
            if field not in chunk.columns:
                raise _missing_field(path, field, "(header)", list(chunk.columns))
            for text in chunk[field]:
                row += 1
                yield Record(text, path.name, f"row {row}")
    except pd.errors.ParserError as exc:
        found = _RAGGED.search(str(exc))
        if not found:
            raise errors.InvalidArgument(f"{path.name} is not a well-formed {sep!r}-separated file: {exc}") from exc
        expected, line, saw = found.groups()
        line = first_row + int(line)  # pandas counts records, the header first; a range's start after first_row rows
        raise errors.InvalidArgument(
            f"{path.name}: line {line} (data row {line - 1}) has {saw} fields where the header has {expected}; "
            "quote fields that contain the separator, or fix that row.") from exc
    except UnicodeDecodeError as exc:
        raise errors.InvalidArgument(
            f"{path.name}: bytes at byte offset {exc.start} of a read block are not valid {encoding}; "
            "convert the file to UTF-8 first.") from exc
    except pd.errors.EmptyDataError as exc:
        raise errors.InvalidArgument(f"{path.name} is empty: there is no header and no row.") from exc
    finally:
        if not isinstance(source, Path):
            source.close()


def _record_text(path: Path, record: object, field: str, where: str) -> str:
    if not isinstance(record, dict) or field not in record:
        present = sorted(record) if isinstance(record, dict) else [f"(a JSON {type(record).__name__}, not an object)"]
        raise _missing_field(path, field, where, present)
    value = record[field]
    if not isinstance(value, str):
        raise errors.InvalidArgument(f"{path.name} {where}: field {field!r} is a {type(value).__name__}, not text.")
    return value


def _lineage(record: dict) -> dict:
    """The row's ``id`` and ``augmented_from`` (written by augment), as text, when it has them."""
    return {key: str(record[key]) for key in ("id", "augmented_from")
            if isinstance(record.get(key), (int, str)) and not isinstance(record.get(key), bool)}


def _jsonl(path: Path, encoding: str, options: ReadOptions) -> Iterator[Record]:
    field = options.text_field
    lines = decoded_lines(path, encoding, options.start, options.end, options.first_line)
    for lineno, line in enumerate(lines, options.first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.InvalidArgument(f"{path.name} line {lineno} is not valid JSON ({exc.msg}).") from exc
        text = _record_text(path, record, field, f"line {lineno}")
        yield Record(text, path.name, f"line {lineno}", **_lineage(record))


def _json(path: Path, encoding: str, field: str) -> Iterator[Record]:
    try:
        data = json.loads(read_text(path, encoding))
    except json.JSONDecodeError as exc:
        raise errors.InvalidArgument(f"{path.name} is not valid JSON: {exc.msg} at line {exc.lineno}.") from exc
    if isinstance(data, dict) and isinstance(data.get("data"), list):  # {"data": [...]} as datasets export
        data = data["data"]
    if not isinstance(data, list):
        raise errors.InvalidArgument(
            f"{path.name} holds a JSON {type(data).__name__}; give an array of objects (or use .jsonl).")
    for i, record in enumerate(data, 1):
        yield Record(_record_text(path, record, field, f"item {i}"), path.name, f"item {i}", **_lineage(record))


def _paragraphs(path: Path, encoding: str) -> Iterator[Record]:
    """Plain text: one document per blank-line-separated paragraph."""
    lines: list[str] = []
    n = 0
    for line in decoded_lines(path, encoding):
        if line.strip():
            lines.append(line)
        elif lines:
            n += 1
            yield Record("\n".join(lines).removeprefix("\ufeff"), path.name, f"paragraph {n}")
            lines = []
    if lines:
        yield Record("\n".join(lines).removeprefix("\ufeff"), path.name, f"paragraph {n + 1}")
