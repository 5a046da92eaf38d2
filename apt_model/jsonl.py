"""JSON lines read the one way every service reads them: blank lines skipped, each line one JSON
object, and a bad line refused with its number (``INVALID_ARGUMENT``) before the caller uses it."""

from __future__ import annotations

import json
from typing import Any, Iterable, Iterator

from apt_model import errors


def json_objects(lines: Iterable[str], name: str, first_line: int = 1) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of ``lines`` (``name`` names the file in
    errors; ``first_line`` is the number of the first line given, for a reader that starts
    mid-file)."""
    for number, line in enumerate(lines, first_line):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise errors.InvalidArgument(f"{name} line {number} is not valid JSON ({exc.msg}).") from exc
        if not isinstance(record, dict):
            raise errors.InvalidArgument(
                f"{name} line {number} is a JSON {type(record).__name__}, not an object; write one object per line.")
        yield number, record
