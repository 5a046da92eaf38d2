"""What a store entry is: its name rules, its record (``apt.json``) and its files."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from apt_model import errors

NAME_RE = re.compile(r"^(?!.*\.\.)[a-z0-9][a-z0-9._-]{0,63}$")  # no "..": a name is one path part
META_FILE = "apt.json"
Kind = Literal["models", "datasets"]


def validate_name(name: str, what: str = "model") -> str:
    """Return ``name`` when it is a valid store name; raise InvalidArgument otherwise."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise errors.InvalidArgument(
            f"Invalid {what} name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')."
        )
    return name


@dataclass(frozen=True)
class Entry:
    """A model or dataset in the store, as recorded by its apt.json."""

    kind: Kind
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return sum(f["size"] for f in self.meta.get("files", {}).values())

    @property
    def parent(self) -> str:
        return self.meta.get("lineage", {}).get("parent", "") or ""

    @property
    def created(self) -> str:
        return self.meta.get("created", "")


def entry_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every file of an entry, its apt.json left out, sorted."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(rel, p) for p in files if (rel := p.relative_to(folder).as_posix()) != META_FILE]


def read_meta(folder: Path) -> dict[str, Any] | None:
    """An entry folder's apt.json; None when it is missing or unreadable."""
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
