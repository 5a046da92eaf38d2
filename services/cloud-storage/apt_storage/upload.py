"""Upload arbitrary files or folders (readable by the service) to a bucket, repo or folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from apt_model.store import sha256_file
from apt_storage.backends import open_backend
from apt_storage.backends.base import UploadItem
from apt_storage.config import StorageConfig
from apt_storage.progress import JobLike, TransferProgress
from apt_storage.specs import UploadSpec


def collect(config: StorageConfig, spec: UploadSpec) -> list[tuple[str, Path]]:
    """(relative key, file) pairs: a file keeps its name, a folder its name and inner layout."""
    pairs: list[tuple[str, Path]] = []
    for raw in spec.paths:
        path = config.readable_source(raw)
        if path.is_dir():
            for p in sorted(path.rglob("*")):
                if p.is_file():  # a link inside an allowed folder may not lead out of it
                    pairs.append((f"{path.name}/{p.relative_to(path).as_posix()}",
                                  config.paths.resolve(str(p), "upload source")))
        else:
            pairs.append((path.name, path))
    return pairs


def run_upload(config: StorageConfig, spec: UploadSpec, ctx: JobLike) -> dict[str, Any]:
    pairs = collect(config, spec)
    config.check_local_destination(spec.destination)
    backend = open_backend(spec.destination, spec.options, config.credentials, config.state_dir)
    try:
        ctx.report(progress=0.0, stage="connect", message=f"Opening {backend.describe()}")
        backend.check()
        ctx.report(stage="hash", message=f"Hashing {len(pairs)} files")
        items = []
        for rel, path in pairs:
            ctx.check_cancelled()
            items.append(UploadItem(spec.destination.key(rel), path, path.stat().st_size, sha256_file(path)))
        progress = TransferProgress(ctx, sum(i.size for i in items), "upload")
        backend.upload(items, progress)
        progress.finish()
        return {"destination": str(spec.destination),
                "uploaded": [{"key": i.key, "size": i.size, "sha256": i.sha256} for i in items],
                **progress.summary()}
    finally:
        backend.close()
