"""Restore a backup into the store: every checksum is verified before the entry appears."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from apt_model import errors
from apt_model.store import Store, sha256_file
from apt_storage.backends import open_backend
from apt_storage.config import StorageConfig
from apt_storage.layout import FILES, backup_key
from apt_storage.listing import BackupState, list_backups
from apt_storage.progress import JobLike, TransferProgress
from apt_storage.specs import RestoreSpec


def pick_backup(states: list[BackupState], spec: RestoreSpec) -> BackupState:
    """The backup a restore request means; raises NotFound / InvalidArgument / FailedPrecondition."""
    src = spec.source
    if spec.kind:
        states = [s for s in states if s.kind == spec.kind]
    names = sorted({s.name for s in states})
    if not names:
        raise errors.NotFound(f"{src} holds no backups; check the URI (and its prefix).")
    name = spec.backup_name
    if not name:
        if len(names) > 1:
            raise errors.InvalidArgument(
                f"{src} holds backups of several entries ({', '.join(names)}); say which with backup_name.")
        name = names[0]
    mine = [s for s in states if s.name == name]
    if not mine:
        raise errors.NotFound(f"{src} holds no backup of {name!r}; it has: {', '.join(names)}.")
    if spec.tag:
        chosen = next((s for s in mine if s.tag == spec.tag), None)
        if chosen is None:
            raise errors.NotFound(
                f"{src} has no backup of {name!r} tagged {spec.tag!r}; tags: {', '.join(s.tag for s in mine)}.")
        if not chosen.complete:
            raise errors.FailedPrecondition(
                f"The backup {name}/{spec.tag} at {src} is incomplete (no manifest); run the backup "
                "again to finish it, or restore another tag.")
        return chosen
    complete = [s for s in mine if s.complete and s.manifest is not None]
    if not complete:
        raise errors.FailedPrecondition(
            f"{src} holds only incomplete backups of {name!r}; run the backup again to finish one.")
    return max(complete, key=lambda s: (s.manifest.created, s.tag))


def run_restore(store: Store, config: StorageConfig, spec: RestoreSpec, ctx: JobLike) -> dict[str, Any]:
    backend = open_backend(spec.source, spec.options, config.credentials)
    try:
        ctx.report(progress=0.0, stage="connect", message=f"Opening {backend.describe()}")
        backend.check()
        chosen = pick_backup(list_backups(backend, spec.source), spec)
        manifest = chosen.manifest
        assert manifest is not None  # pick_backup returns complete backups only
        kind, target = chosen.kind, spec.name or chosen.name  # no name: the one backed up
        # The claim on ``target`` is the store's: create refuses an existing name at once and
        # again when the restored entry is renamed in, so a model written meanwhile (another
        # restore, an upload, a training run) is never replaced without overwrite.
        progress = TransferProgress(ctx, manifest.size_bytes, "download")
        with store.create(kind, target, operation="restore", overwrite=spec.overwrite,
                          **_entry_record(spec, chosen, target)) as folder:
            _fetch_all(backend, spec, chosen, folder, progress)
            progress.finish()
            ctx.check_cancelled()
        ctx.report(progress=1.0, stage="done", message=f"Restored {target} from {chosen.tag}")
        return {"name": target, "kind": kind[:-1], "source": str(spec.source), "backup_name": chosen.name,
                "tag": chosen.tag, "files": len(manifest.files), "verified": True, **progress.summary()}
    finally:
        backend.close()


def _entry_record(spec: RestoreSpec, chosen: BackupState, target: str) -> dict[str, Any]:
    """The restored entry's lineage, parameters, metrics and provenance (``Store.create`` keywords)."""
    manifest = chosen.manifest
    lineage = manifest.meta.get("lineage", {})
    # The restore is one more step of the backed-up entry's history: a copy under another
    # name descends from that entry; under its own name it takes that entry's parent.
    parent = chosen.name if target != chosen.name else lineage.get("parent", "")
    return {
        "parent": parent,
        "parameters": {"source": str(spec.source), "backup_name": chosen.name, "tag": chosen.tag},
        "metrics": manifest.meta.get("metrics", {}),
        "extra": {"restored_from": {"source": str(spec.source), "name": chosen.name, "tag": chosen.tag,
                                    "backup_created": manifest.created},
                  "original_lineage": lineage},
    }


def _fetch_all(backend, spec: RestoreSpec, chosen: BackupState, folder: Path, progress: TransferProgress) -> None:
    """Every file of the backup into ``folder``, in parallel, each checked against its sha256; the
    first failure stops the rest (and the store removes the folder)."""
    with ThreadPoolExecutor(max_workers=spec.options.concurrency, thread_name_prefix="fetch") as pool:
        futures = [pool.submit(_fetch, backend, spec, chosen, folder, progress, rel, info)
                   for rel, info in sorted(chosen.manifest.files.items())]
        try:
            for f in as_completed(futures):
                f.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def _fetch(backend, spec: RestoreSpec, chosen: BackupState, folder: Path, progress: TransferProgress,
           rel: str, info: dict[str, Any]) -> None:
    progress.check_cancelled()
    path = folder / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    key = backup_key(spec.source, chosen.kind, chosen.name, chosen.tag, FILES, rel)
    try:
        backend.download(key, path, progress)
    except errors.NotFound as exc:
        raise errors.DataLoss(
            f"The backup {chosen.name}/{chosen.tag} lists {rel} but it is missing at "
            f"{spec.source}; nothing was restored. Restore another tag.") from exc
    actual = sha256_file(path)
    if actual != info["sha256"] or path.stat().st_size != info["size"]:
        raise errors.DataLoss(
            f"{rel} from {spec.source} (tag {chosen.tag}) does not match its recorded "
            f"sha256 ({actual[:12]}… instead of {info['sha256'][:12]}…); nothing was "
            "restored. Restore another tag or back the model up again.")
