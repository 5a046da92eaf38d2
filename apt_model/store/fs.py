"""Bytes on disk: sha256 of files, copies that hash on the way, fsync, atomic JSON writes, and
each kind folder's change token."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from apt_model import errors
from apt_model.store.entry import entry_files

_HASH_CHUNK = 1 << 20
CHANGES_FOLDER = ".changes"  # APT_HOME/.changes/<kind>: a new random token after every change


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_table(folder: Path, known: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    """sha256 and size of every file under ``folder`` (relative POSIX paths), apt.json excluded.

    ``known`` holds hashes computed while the files were written (``Store.copy_in``); they are
    used when the file's size is unchanged, and every other file is hashed here.
    """
    known = known or {}
    table = {}
    for rel, path in entry_files(folder):
        size = path.stat().st_size
        if rel in known and known[rel]["size"] == size:
            table[rel] = dict(known[rel])
        else:
            table[rel] = {"sha256": sha256_file(path), "size": size}
    return table


def size_table(folder: Path) -> dict[str, dict[str, Any]]:
    """The file table of an entry that settles later: sizes now, sha256 ``""`` until then."""
    return {rel: {"sha256": "", "size": p.stat().st_size} for rel, p in entry_files(folder)}


def copy_hashed(src: Path, dst: Path, on_bytes: Callable[[int], None] | None = None,
                chunk: int = 4 << 20) -> dict[str, Any]:
    """Copy ``src`` to ``dst`` reading it once, hashing on a second thread; fsyncs ``dst``.

    The bytes hashed are the bytes written, so the sha256 is that of the copy. hashlib and
    file I/O release the GIL, so hashing overlaps reading and writing (two cores).
    """
    digest = hashlib.sha256()
    pending: queue.Queue = queue.Queue(maxsize=4)

    def hasher() -> None:
        while (block := pending.get()) is not None:
            digest.update(block)

    worker = threading.Thread(target=hasher, name="sha256", daemon=True)
    worker.start()
    size = 0
    try:
        with open(src, "rb", buffering=0) as fin, open(dst, "wb", buffering=0) as fout:
            while block := fin.read(chunk):
                pending.put(block)
                fout.write(block)
                size += len(block)
                if on_bytes is not None:
                    on_bytes(len(block))
            os.fdatasync(fout.fileno())
    finally:
        pending.put(None)
        worker.join()
    return {"sha256": digest.hexdigest(), "size": size}


def copy_unhashed(src: Path, dst: Path, on_bytes: Callable[[int], None] | None = None,
                  chunk: int = 64 << 20) -> dict[str, Any]:
    """Copy ``src`` to ``dst`` inside the kernel (sendfile: no copy through user space), no fsync.

    For ``settle="background"`` entries, which are hashed and fsynced after they appear.
    """
    size = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        total = os.fstat(fin.fileno()).st_size
        while size < total:
            sent = os.sendfile(fout.fileno(), fin.fileno(), size, min(chunk, total - size))
            if sent == 0:
                raise errors.DataLoss(f"{src} ended at {size} of {total} bytes while it was copied; "
                                      "was it changed during the import?")
            size += sent
            if on_bytes is not None:
                on_bytes(sent)
    return {"sha256": "", "size": size}


def hash_and_fsync(folder: Path) -> dict[str, dict[str, Any]]:
    """``file_table(folder)`` while the same files are fsynced on a second thread, so the disk
    writes back while the CPU hashes; then the folders are fsynced."""
    files = entry_files(folder)

    def fsync_all() -> None:
        for _, path in files:
            with open(path, "rb") as fh:
                os.fdatasync(fh.fileno())

    with ThreadPoolExecutor(1, thread_name_prefix="fsync") as pool:
        synced = pool.submit(fsync_all)
        table = file_table(folder)
        synced.result()
    fsync_dirs(folder)
    return table


def fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    fsync_dirs(folder)


def fsync_dirs(folder: Path) -> None:
    for d in [folder, *[p for p in folder.rglob("*") if p.is_dir()]]:
        fsync_dir(d)


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to ``path`` through a temporary file, fsync and rename."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True, ensure_ascii=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def mark_changed(kind_folder: Path) -> None:
    """Give ``kind_folder`` (``APT_HOME/models`` or ``/datasets``) a new change token: called after
    every change to its entries (one appears, disappears or has its apt.json rewritten), by
    whichever process made it. Readers that keep answers (the gateway's read cache) key a listing
    on this token instead of on a ``stat`` per entry. Not fsynced: it keys answers held in
    memory, which a restart loses too."""
    folder = kind_folder.parent / CHANGES_FOLDER
    folder.mkdir(exist_ok=True)
    tmp = folder / f".{kind_folder.name}.{uuid.uuid4().hex[:8]}.tmp"
    tmp.write_text(uuid.uuid4().hex, encoding="ascii")
    os.replace(tmp, folder / kind_folder.name)


def change_token(kind_folder: Path) -> str:
    """The token ``mark_changed`` last wrote for ``kind_folder``; "" before the first change."""
    try:
        return (kind_folder.parent / CHANGES_FOLDER / kind_folder.name).read_text(encoding="ascii")
    except FileNotFoundError:
        return ""
