"""xlsx: every sheet, row by row (openpyxl read-only), the header row naming the columns.

Formulas are read through their cached values; a workbook saved by a tool that computes no
values (many generators) has none, and those cells are named rather than read as empty.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Iterator

import openpyxl

from apt_model import errors

from apt_data.ingest import OLE_MAGIC, Record

MAX_CELLS_NAMED = 10


def _open(path: Path, data_only: bool):
    with open(path, "rb") as f:
        magic = f.read(4)
    if path.suffix.lower() == ".xls" or magic == OLE_MAGIC:
        raise errors.InvalidArgument(
            f"{path.name} is an old-format .xls or a password-protected workbook, which cannot be read; "
            "open it and save as .xlsx (without a password).")
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=data_only)
    except (zipfile.BadZipFile, KeyError, OSError) as exc:
        raise errors.InvalidArgument(f"{path.name} is not a readable .xlsx workbook ({exc}); save it again as .xlsx.") from exc


def read_xlsx(path: Path, field: str) -> Iterator[Record]:
    values, formulas = _open(path, True), _open(path, False)
    try:
        for sheet in values.sheetnames:
            yield from _sheet(path, sheet, values[sheet], formulas[sheet], field)
    finally:
        values.close()
        formulas.close()


def _sheet(path: Path, name: str, values, formulas, field: str) -> Iterator[Record]:
    rows = zip(values.iter_rows(values_only=True), formulas.iter_rows())
    try:
        header, _ = next(rows)
    except StopIteration:
        return  # an empty sheet
    columns = [str(c) if c is not None else "" for c in header]
    if field not in columns:
        raise errors.InvalidArgument(
            f"{path.name} sheet {name!r} has no column {field!r}; its columns are: "
            f"{', '.join(c for c in columns if c) or '(none)'}. Pass --text-field with one of those.")
    col = columns.index(field)
    uncached: list[str] = []
    for rowno, (row, cells) in enumerate(rows, 2):
        value = row[col] if col < len(row) else None
        if value is None and col < len(cells) and isinstance(cells[col].value, str) and cells[col].value.startswith("="):
            uncached.append(cells[col].coordinate)
            continue
        if value is not None:
            yield Record(str(value), path.name, f"sheet {name} row {rowno}")
    if uncached:
        more = f" and {len(uncached) - MAX_CELLS_NAMED} more" if len(uncached) > MAX_CELLS_NAMED else ""
        raise errors.FailedPrecondition(
            f"{path.name} sheet {name!r}: formula cells without a cached value: "
            f"{', '.join(uncached[:MAX_CELLS_NAMED])}{more}. Open the workbook in Excel or LibreOffice and "
            "save it, so the computed values are stored.")
