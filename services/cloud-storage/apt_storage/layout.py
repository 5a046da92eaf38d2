"""Where a backup lives at a destination and what its manifest holds.

``<prefix>/<models|datasets>/<name>/<tag>/``
    ``pending.json``   written first: what this backup will hold (lets a rerun resume it)
    ``files/<path>``   the entry's files
    ``manifest.json``  written last: sha256 and size of every file plus the entry's apt.json;
                       a backup without it is incomplete and is never restored
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from apt_model import errors
from apt_storage.uri import Destination

FORMAT = "apt-backup/1"
MANIFEST = "manifest.json"
PENDING = "pending.json"
FILES = "files"
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
KINDS = {"model": "models", "dataset": "datasets"}


def validate_tag(tag: str) -> str:
    if not TAG_RE.fullmatch(tag):
        raise errors.InvalidArgument(
            f"Invalid tag {tag!r}: use 1-64 characters of A-Z, a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit.")
    return tag


def timestamp_tag(now: dt.datetime | None = None) -> str:
    """A UTC timestamp that sorts in time order, e.g. ``20261126T041737Z``."""
    return (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def backup_key(dest: Destination, kind: str, name: str, tag: str = "", *rest: str) -> str:
    return dest.key(kind, name, tag, *rest)


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: str                         # "models" or "datasets"
    tag: str
    created: str                      # RFC 3339, when the backup started
    files: dict[str, dict[str, Any]]  # relative path -> {"sha256", "size"}
    meta: dict[str, Any]              # the entry's apt.json at backup time

    @property
    def size_bytes(self) -> int:
        return sum(int(f["size"]) for f in self.files.values())

    def to_json(self) -> bytes:
        doc = {"format": FORMAT, "name": self.name, "kind": self.kind, "tag": self.tag,
               "created": self.created, "size_bytes": self.size_bytes, "files": self.files,
               "meta": self.meta}
        return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes, where: str) -> "Manifest":
        try:
            doc = json.loads(data)
            if doc.get("format") != FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {FORMAT!r}")
            files = {str(k): {"sha256": str(v["sha256"]), "size": int(v["size"])}
                     for k, v in doc["files"].items()}
            for rel in files:
                check_relative(rel, where)
            return cls(name=str(doc["name"]), kind=str(doc["kind"]), tag=str(doc["tag"]),
                       created=str(doc["created"]), files=files, meta=dict(doc.get("meta") or {}))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise errors.DataLoss(
                f"The backup record {where} is damaged ({exc}); restore another tag or back up again."
            ) from exc


def check_relative(rel: str, where: str) -> str:
    """A manifest path must stay inside the entry folder."""
    path = PurePosixPath(rel)
    if (not rel or path.is_absolute() or any(p in ("", ".", "..") for p in rel.split("/"))
            or rel == "apt.json"):
        raise errors.DataLoss(f"The backup record {where} lists an unsafe path {rel!r}; refusing it.")
    return rel
