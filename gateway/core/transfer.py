"""Store transfer: streamed uploads into the store and downloads out of it, models and datasets.

An upload is a header naming every file with its size and sha256, then the files' bytes
in chunks, in header order. The header is checked before anything is written: plain relative
paths, the files a model or a dataset may hold, and room for the declared bytes on the store's
disk and under ``APT_STORE_QUOTA``. The files are written inside ``Store.create``'s temporary
folder, so an upload that stops early, sends more than it declared or fails a checksum leaves
nothing in the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import threading
from pathlib import Path, PurePosixPath
from typing import Iterator

from apt_model import errors
from apt_model.store import Kind, Store
from apt_model.transfer import (  # noqa: F401 - the wire format, shared with the CLI; re-exported
    CHUNK_BYTES, DATASET_SUFFIXES, NOUN, FileSpec, check_relative_path, iter_file_chunks, iter_local_chunks,
    local_file, local_folder_files)

MAX_FILES = 10_000
MAX_UPLOAD_BYTES = 256 << 30
DISK_MARGIN_BYTES = 256 << 20  # kept free on the store's disk: apt.json, logs, locks, other writers
_RM = {"models": "apt-model model rm NAME", "datasets": "apt-model data rm NAME"}

# Bytes promised to uploads in progress, per store root: each upload's header is checked
# against free space and quota minus what the uploads already running will still write.
_reserved: dict[Path, int] = {}
_reserved_lock = threading.Lock()


def check_header(files: list[FileSpec], kind: Kind = "models") -> None:
    if not files:
        raise errors.InvalidArgument("The upload lists no files.")
    if len(files) > MAX_FILES:
        raise errors.ResourceExhausted(f"An upload may hold at most {MAX_FILES} files, got {len(files)}.")
    seen = set()
    for f in files:
        check_relative_path(f.path, kind)
        if f.path in seen:
            raise errors.InvalidArgument(f"File {f.path!r} is listed twice in the upload header.")
        seen.add(f.path)
        if f.size < 0 or len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256):
            raise errors.InvalidArgument(f"File {f.path!r}: give its size (>= 0) and lowercase hex sha256.")
    folders = {str(parent) for f in files for parent in PurePosixPath(f.path).parents if str(parent) != "."}
    if clash := sorted(seen & folders):
        raise errors.InvalidArgument(f"{clash[0]!r} is listed as a file and is also the folder of another file.")
    total = sum(f.size for f in files)
    if total > MAX_UPLOAD_BYTES:
        raise errors.ResourceExhausted(f"The upload is {total} bytes; the limit is {MAX_UPLOAD_BYTES}.")
    if kind == "datasets":
        for f in files:
            if PurePosixPath(f.path).suffix.lower() not in DATASET_SUFFIXES:
                raise errors.InvalidArgument(
                    f"{f.path!r} is not a data file a dataset may hold; datasets take only "
                    f"{' '.join(DATASET_SUFFIXES)} files (convert others with the data-processors plugin).")
        return
    if "config.json" not in seen:
        raise errors.InvalidArgument("The upload has no config.json: it is not a Hugging Face model folder.")
    if not any(p.endswith(".safetensors") for p in seen):
        raise errors.InvalidArgument("The upload has no .safetensors weights; convert the model to safetensors.")


def disk_free(folder: Path) -> int:
    """Bytes free on the file system holding ``folder`` (or, before it exists, its parent)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return shutil.disk_usage(folder).free


def _size(n: int) -> str:
    return f"{n:,} bytes ({n / (1 << 20):,.1f} MiB)"


@contextlib.contextmanager
def reserve_room(store: Store, kind: Kind, needed: int, quota: int = 0, replaces: int = 0) -> Iterator[None]:
    """Hold ``needed`` bytes for an upload, or ResourceExhausted when the store has no room.

    Room is the free space of the store's disk less ``DISK_MARGIN_BYTES`` and, with a quota
    (``APT_STORE_QUOTA``, bytes, 0 = none), the quota less the bytes every entry holds;
    ``replaces`` is the size of the entry an overwrite removes (freed under the quota once the
    new one is in; the disk holds both meanwhile). Uploads in progress count with what they declared.
    """
    root = store.root
    what = f"The {NOUN[kind]} upload needs {_size(needed)}"
    remedy = f"remove entries you no longer need ('apt-model list', 'apt-model data list', '{_RM[kind]}')"
    with _reserved_lock:
        pending = _reserved.get(root, 0)
        busy = f"; uploads in progress hold {_size(pending)} more" if pending else ""
        free = disk_free(root)
        if needed + pending + DISK_MARGIN_BYTES > free:
            raise errors.ResourceExhausted(
                f"{what} but the store's disk has {_size(free)} free, of which {_size(DISK_MARGIN_BYTES)} "
                f"stays spare{busy}. Nothing was written; {remedy} or ask the operator for a larger volume "
                "for APT_HOME, then retry.", reason="STORE_DISK_FULL")
        if quota:
            used = max(0, store.used_bytes() - replaces)
            if used + pending + needed > quota:
                raise errors.ResourceExhausted(
                    f"{what} but the store holds {_size(used)} of its quota of {_size(quota)} "
                    f"(APT_STORE_QUOTA){busy}, leaving {_size(max(0, quota - used - pending))}. Nothing was "
                    f"written; {remedy} or ask the operator to raise APT_STORE_QUOTA, then retry.",
                    reason="STORE_QUOTA_EXCEEDED")
        _reserved[root] = pending + needed
    try:
        yield
    finally:
        with _reserved_lock:
            left = _reserved.pop(root) - needed
            if left:
                _reserved[root] = left


def _write_files(folder: Path, files: list[FileSpec], chunks: Iterator[tuple[str, bytes]]) -> None:
    index, fh, digest, written = -1, None, None, 0

    def close_current() -> None:
        nonlocal fh
        if fh is None:
            return
        fh.close()
        fh = None
        f = files[index]
        if written != f.size:
            raise errors.DataLoss(f"Upload of {f.path} ended after {written} of {f.size} bytes; nothing was stored.")
        if digest.hexdigest() != f.sha256:
            raise errors.DataLoss(f"{f.path}: sha256 of the received bytes does not match the header; "
                                  f"nothing was stored. Retry the upload.")

    def open_next() -> None:
        nonlocal index, fh, digest, written
        index += 1
        target = folder / files[index].path
        target.parent.mkdir(parents=True, exist_ok=True)
        fh, digest, written = open(target, "wb"), hashlib.sha256(), 0

    listed = {f.path for f in files}
    try:
        for path, data in chunks:
            if path not in listed:
                raise errors.InvalidArgument(f"Chunk for {path!r}, which the upload header does not list.")
            # Move on to the file this chunk belongs to; empty files in between get no chunk.
            while fh is None or (path != files[index].path):
                close_current()
                if index + 1 >= len(files):
                    raise errors.InvalidArgument(f"Chunk for {path!r} is not in the header or out of header order.")
                open_next()
            if written + len(data) > files[index].size:
                raise errors.InvalidArgument(f"More bytes arrived for {path} than its declared {files[index].size}.")
            fh.write(data)
            digest.update(data)
            written += len(data)
        close_current()
        while index + 1 < len(files):  # trailing files never sent: only valid when empty
            open_next()
            close_current()
    finally:
        if fh is not None:
            fh.close()


def receive_upload(store: Store, name: str, files: list[FileSpec], chunks: Iterator[tuple[str, bytes]],
                   overwrite: bool = False, kind: Kind = "models", quota: int = 0) -> None:
    """Write an uploaded model or dataset into the store, atomically; raises and stores nothing on any fault."""
    check_header(files, kind)
    needed = sum(f.size for f in files)
    with store.create(kind, name, operation="upload", overwrite=overwrite,
                      parameters={"files": len(files), "bytes": needed}) as tmp:
        # inside create: a name taken without --overwrite is ALREADY_EXISTS before any room is counted
        replaces = store.get(kind, name).size_bytes if overwrite and store.exists(kind, name) else 0
        with reserve_room(store, kind, needed, quota, replaces):
            _write_files(tmp, files, chunks)


def download_plan(store: Store, name: str, kind: Kind = "models") -> list[FileSpec]:
    """The files of a stored entry (apt.json excluded) with the sizes and sha256 recorded at creation
    (waiting for an entry still settling: its sha256 are recorded once it has)."""
    entry = store.settled(kind, name)
    return [FileSpec(p, int(f["size"]), f["sha256"]) for p, f in sorted(entry.meta.get("files", {}).items())]


def iter_download(store: Store, name: str, files: list[FileSpec], kind: Kind = "models") -> Iterator[tuple[str, bytes]]:
    """(path, bytes) chunks of every file; DataLoss when a file no longer matches its record."""
    folder = store.get(kind, name).path
    check = f"apt-model debug {name}" if kind == "models" else f"apt-model data info {name}"
    for f in files:
        digest, size = hashlib.sha256(), 0
        try:
            with open(folder / f.path, "rb") as fh:
                while data := fh.read(CHUNK_BYTES):
                    digest.update(data)
                    size += len(data)
                    yield f.path, data
        except FileNotFoundError as exc:
            raise errors.DataLoss(f"{f.path} of {name!r} is missing from the store; run '{check}'.") from exc
        if size != f.size or digest.hexdigest() != f.sha256:
            raise errors.DataLoss(
                f"{f.path} of {name!r} does not match the sha256 recorded when it was stored; the copy sent is "
                f"corrupt. Run '{check}'.")
