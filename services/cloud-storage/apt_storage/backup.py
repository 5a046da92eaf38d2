"""Back up a store entry to a destination, resuming an unfinished backup of the same content."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from apt_model import errors
from apt_model.store import Store
from apt_storage.backends import open_backend
from apt_storage.backends.base import Backend, UploadItem
from apt_storage.config import StorageConfig
from apt_storage.layout import FILES, MANIFEST, PENDING, Manifest, backup_key, timestamp_tag
from apt_storage.listing import tags_of
from apt_storage.progress import JobLike, TransferProgress
from apt_storage.specs import BackupSpec

log = logging.getLogger(__name__)


def run_backup(store: Store, config: StorageConfig, spec: BackupSpec, ctx: JobLike) -> dict[str, Any]:
    entry = store.settled(spec.kind, spec.name)  # a fresh import's sha256 are recorded once it settles
    files = {rel: {"sha256": f["sha256"], "size": int(f["size"])}
             for rel, f in entry.meta.get("files", {}).items()}
    missing = [rel for rel in files if not (entry.path / rel).is_file()]
    if missing:
        raise errors.DataLoss(
            f"{spec.name} is missing {', '.join(missing[:3])} recorded in its apt.json; "
            "run 'apt-model verify' and recreate it before backing it up.")
    config.check_local_destination(spec.destination)
    backend = open_backend(spec.destination, spec.options, config.credentials, config.state_dir)
    try:
        ctx.report(progress=0.0, stage="connect", message=f"Opening {backend.describe()}")
        backend.check()
        tag, resumed = _choose_tag(backend, spec, files)
        draft = Manifest(name=spec.name, kind=spec.kind, tag=tag,
                         created=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                         files=files, meta=entry.meta)
        base = backup_key(spec.destination, spec.kind, spec.name, tag)
        if not resumed:
            backend.write_bytes(f"{base}/{PENDING}", draft.to_json())
        items = [UploadItem(f"{base}/{FILES}/{rel}", entry.path / rel, f["size"], f["sha256"])
                 for rel, f in sorted(files.items())]
        progress = TransferProgress(ctx, draft.size_bytes, "upload")
        backend.upload(items, progress, replace=resumed)  # a resumed tag's files are this backup's own
        progress.finish()
        ctx.check_cancelled()
        # last: only now is the backup complete (and listed as such)
        backend.write_bytes(f"{base}/{MANIFEST}", draft.to_json())
        ctx.report(progress=1.0, stage="done", message=f"Backed up {spec.name} as {tag}")
        return {"destination": str(spec.destination), "name": spec.name, "tag": tag,
                "files": len(files), "resumed": resumed, **progress.summary()}
    finally:
        backend.close()


def _choose_tag(backend: Backend, spec: BackupSpec, files: dict[str, dict[str, Any]]) -> tuple[str, bool]:
    """(tag, resumed): resume an unfinished backup of the same content, else start a new tag."""
    tags = tags_of(backend, spec.destination, spec.kind, spec.name)
    if spec.tag:
        state = tags.get(spec.tag)
        if state is None:
            return spec.tag, False
        if state.complete:
            raise errors.AlreadyExists(
                f"{spec.destination} already holds a complete backup of {spec.name} tagged "
                f"{spec.tag!r}; choose another tag.")
        if state.manifest is not None and state.manifest.files != files:
            raise errors.FailedPrecondition(
                f"The unfinished backup {spec.tag!r} of {spec.name} at {spec.destination} holds "
                "different content; choose another tag.")
        return spec.tag, state.manifest is not None
    for tag in sorted(tags, reverse=True):
        state = tags[tag]
        if not state.complete and state.manifest is not None and state.manifest.files == files:
            log.info("resuming unfinished backup %s of %s", tag, spec.name)
            return tag, True
    tag = timestamp_tag()
    n = 2
    while tag in tags:  # two backups within one second
        tag = f"{timestamp_tag()}-{n}"
        n += 1
    return tag, False
