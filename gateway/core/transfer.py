"""Model transfer: a streamed upload into the store and a streamed download out of it.

An upload is a header naming every file with its size and sha256, then the files' bytes
in chunks, in header order. The files are written inside ``Store.create``'s temporary
folder, so an upload that stops early, sends too much or fails a checksum leaves nothing
in the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from apt_model import errors
from apt_model.store import META_FILE, Store, sha256_file

CHUNK_BYTES = 1 << 20  # about 1 MiB per message, as the gRPC maintainers suggest for files
MAX_FILES = 10_000
MAX_UPLOAD_BYTES = 256 << 30


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative, POSIX separators
    size: int
    sha256: str


def check_relative_path(path: str) -> str:
    """A safe relative POSIX path inside a model folder, or InvalidArgument."""
    p = PurePosixPath(path)
    if (not path or "\\" in path or "\x00" in path or p.is_absolute() or any(part in ("", ".", "..") for part in p.parts)
            or path != p.as_posix()):
        raise errors.InvalidArgument(f"File path {path!r} is not a plain relative path inside the model folder.")
    if path == META_FILE:
        raise errors.InvalidArgument(f"{META_FILE} is written by the store itself; do not upload it.")
    return path


def check_header(files: list[FileSpec]) -> None:
    if not files:
        raise errors.InvalidArgument("The upload lists no files.")
    if len(files) > MAX_FILES:
        raise errors.ResourceExhausted(f"An upload may hold at most {MAX_FILES} files, got {len(files)}.")
    seen = set()
    for f in files:
        check_relative_path(f.path)
        if f.path in seen:
            raise errors.InvalidArgument(f"File {f.path!r} is listed twice in the upload header.")
        seen.add(f.path)
        if f.size < 0 or len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256):
            raise errors.InvalidArgument(f"File {f.path!r}: give its size (>= 0) and lowercase hex sha256.")
    total = sum(f.size for f in files)
    if total > MAX_UPLOAD_BYTES:
        raise errors.ResourceExhausted(f"The upload is {total} bytes; the limit is {MAX_UPLOAD_BYTES}.")
    if "config.json" not in seen:
        raise errors.InvalidArgument("The upload has no config.json: it is not a Hugging Face model folder.")
    if not any(p.endswith(".safetensors") for p in seen):
        raise errors.InvalidArgument("The upload has no .safetensors weights; convert the model to safetensors.")


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
                   overwrite: bool = False) -> None:
    """Write an uploaded model into the store, atomically; raises and stores nothing on any fault."""
    check_header(files)
    with store.create("models", name, operation="upload", overwrite=overwrite,
                      parameters={"files": len(files), "bytes": sum(f.size for f in files)}) as tmp:
        _write_files(tmp, files, chunks)


def download_plan(store: Store, name: str) -> list[FileSpec]:
    """The files of a stored model (apt.json excluded) with the sizes and sha256 recorded at creation
    (waiting for a model still settling: its sha256 are recorded once it has)."""
    entry = store.settled("models", name)
    return [FileSpec(p, int(f["size"]), f["sha256"]) for p, f in sorted(entry.meta.get("files", {}).items())]


def iter_download(store: Store, name: str, files: list[FileSpec]) -> Iterator[tuple[str, bytes]]:
    """(path, bytes) chunks of every file; DataLoss when a file no longer matches its record."""
    folder = store.model(name).path
    for f in files:
        digest, size = hashlib.sha256(), 0
        try:
            with open(folder / f.path, "rb") as fh:
                while data := fh.read(CHUNK_BYTES):
                    digest.update(data)
                    size += len(data)
                    yield f.path, data
        except FileNotFoundError as exc:
            raise errors.DataLoss(f"{f.path} of {name!r} is missing from the store; run 'apt-model debug {name}'.") from exc
        if size != f.size or digest.hexdigest() != f.sha256:
            raise errors.DataLoss(
                f"{f.path} of {name!r} does not match the sha256 recorded when it was stored; the copy sent is "
                f"corrupt. Run 'apt-model debug {name}'.")


def local_folder_files(folder: Path) -> list[FileSpec]:
    """The files of a local HF folder to upload (hidden files and apt.json left out)."""
    if not folder.is_dir():
        raise errors.NotFound(f"{folder} is not a folder.")
    out = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel != META_FILE and not any(part.startswith(".") for part in PurePosixPath(rel).parts):
            out.append(FileSpec(rel, p.stat().st_size, sha256_file(p)))
    return out


def iter_local_chunks(folder: Path, files: Iterable[FileSpec]) -> Iterator[tuple[str, bytes]]:
    for f in files:
        with open(folder / f.path, "rb") as fh:
            while data := fh.read(CHUNK_BYTES):
                yield f.path, data
