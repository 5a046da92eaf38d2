"""The upload wire format both ends share: file lists with size and sha256, relative paths,
and 1 MiB chunks; the client side reads local folders into it (the CLI). The gateway's side
(checks against the store, writing, downloads) is ``gateway.core.transfer``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Iterable, Iterator

from apt_model import errors
from apt_model.store import META_FILE, Kind, sha256_file

CHUNK_BYTES = 1 << 20  # about 1 MiB per message, as the gRPC maintainers suggest for files
# Plain data files a dataset may hold: what apt_model.corpus, the HF plugin's loader and data-processors read.
DATASET_SUFFIXES = (".txt", ".md", ".text", ".jsonl", ".ndjson", ".json", ".csv", ".tsv", ".parquet",
                    ".xlsx", ".html", ".htm")  # the last three: raw inputs of the data-processors plugin
NOUN = {"models": "model", "datasets": "dataset"}


@dataclass(frozen=True)
class FileSpec:
    path: str  # relative, POSIX separators
    size: int
    sha256: str


MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 1024  # per path component (every Linux file system's limit); whole path


def check_relative_path(path: str, kind: Kind = "models") -> str:
    """A safe relative POSIX path inside an entry's folder, or InvalidArgument."""
    p = PurePosixPath(path)
    if (not path or "\\" in path or "\x00" in path or p.is_absolute() or not p.parts
            or any(part in ("", ".", "..") for part in p.parts) or path != p.as_posix()):
        raise errors.InvalidArgument(
            f"File path {path!r} is not a plain relative path inside the {NOUN[kind]} folder.")
    if len(path.encode()) > MAX_PATH_BYTES or any(len(part.encode()) > MAX_NAME_BYTES for part in p.parts):
        raise errors.InvalidArgument(
            f"File path {path[:80]!r}... is too long: at most {MAX_NAME_BYTES} bytes per name and "
            f"{MAX_PATH_BYTES} in all.")
    if path == META_FILE:
        raise errors.InvalidArgument(f"{META_FILE} is written by the store itself; do not upload it.")
    return path


def local_file(path: Path, folder: Path) -> Path:
    """``path`` (a file in ``folder``) to read for an upload; InvalidArgument for a symbolic link
    that leads outside ``folder``, so a folder handed to a user cannot make them upload, say,
    their SSH key."""
    if not path.is_symlink():
        return path
    real, inside = path.resolve(), folder.resolve()
    if inside not in real.parents:
        raise errors.InvalidArgument(
            f"{path} is a symbolic link to {real}, outside {folder}; it is not uploaded. Copy the file "
            "into the folder (or name it directly) if you mean to upload it.")
    if not real.is_file():
        raise errors.InvalidArgument(f"{path} is a symbolic link to {real}, which is not a regular file.")
    return path


def local_folder_files(folder: Path) -> list[FileSpec]:
    """The files of a local folder to upload (hidden files and apt.json left out); symbolic
    links are followed only to files inside the folder (``local_file``)."""
    if not folder.is_dir():
        raise errors.NotFound(f"{folder} is not a folder.")
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):  # links to folders are not walked into
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]  # hidden folders are left out
        for d in dirnames:
            if (here / d).is_symlink():
                raise errors.InvalidArgument(
                    f"{here / d} is a symbolic link to a folder; links to folders are not uploaded. "
                    "Copy its files into the folder instead.")
        for fname in filenames:
            p = here / fname
            rel = p.relative_to(folder).as_posix()
            if rel == META_FILE or fname.startswith("."):
                continue
            p = local_file(p, folder)
            if p.is_file():
                out.append(FileSpec(rel, p.stat().st_size, sha256_file(p)))
    return sorted(out, key=lambda f: f.path)


def iter_file_chunks(sources: Iterable[tuple[str, Path]]) -> Iterator[tuple[str, bytes]]:
    """(upload path, bytes) chunks of each (upload path, local file) in turn."""
    for rel, path in sources:
        with open(path, "rb") as fh:
            while data := fh.read(CHUNK_BYTES):
                yield rel, data


def iter_local_chunks(folder: Path, files: Iterable[FileSpec]) -> Iterator[tuple[str, bytes]]:
    return iter_file_chunks((f.path, folder / f.path) for f in files)
