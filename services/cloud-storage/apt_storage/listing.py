"""What backups a destination holds: names, tags, complete or not, sizes and dates."""

from __future__ import annotations

from dataclasses import dataclass

from apt_storage.backends.base import Backend
from apt_storage.layout import KINDS, MANIFEST, PENDING, Manifest, backup_key
from apt_storage.uri import Destination


@dataclass(frozen=True)
class BackupState:
    kind: str
    name: str
    tag: str
    complete: bool              # manifest.json present
    manifest: Manifest | None   # manifest.json, else pending.json, else None
    stored_bytes: int           # bytes of the backup's objects at the destination


def _scan(backend: Backend, dest: Destination, base: str) -> list[BackupState]:
    """Every backup under ``base`` (``<prefix>`` or deeper), from one listing."""
    prefix_len = len(dest.key()) + 1 if dest.key() else 0
    found: dict[tuple[str, str, str], dict] = {}
    for obj in backend.list(base):
        parts = obj.key[prefix_len:].split("/")
        if len(parts) < 4 or parts[0] not in KINDS.values():
            continue
        slot = found.setdefault((parts[0], parts[1], parts[2]), {"bytes": 0, "names": set()})
        slot["bytes"] += obj.size
        slot["names"].add("/".join(parts[3:]))
    states = []
    for (kind, name, tag), slot in sorted(found.items()):
        complete = MANIFEST in slot["names"]
        record = MANIFEST if complete else PENDING if PENDING in slot["names"] else ""
        manifest = None
        if record:
            key = backup_key(dest, kind, name, tag, record)
            data = backend.read_bytes(key)
            manifest = Manifest.from_json(data, f"{dest.scheme}://{dest.container}/{key}") if data else None
        states.append(BackupState(kind, name, tag, complete, manifest, slot["bytes"]))
    return states


def tags_of(backend: Backend, dest: Destination, kind: str, name: str) -> dict[str, BackupState]:
    return {s.tag: s for s in _scan(backend, dest, backup_key(dest, kind, name))}


def list_backups(backend: Backend, dest: Destination) -> list[BackupState]:
    return _scan(backend, dest, dest.key())
