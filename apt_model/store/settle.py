"""Entries that settle in the background.

An entry is *settled* when its files are on disk (fsynced) and their sha256 are in apt.json.
By default ``Store.create`` settles before the rename. ``create(settle="background")`` (used for
large imports) renames first and settles on a background thread, so the entry is usable as
soon as its bytes are in the page cache; until it has settled:

- apt.json holds ``settling: {boot_id, replaces}`` and sha256 ``""`` for each file;
- the entry it replaced is kept as ``.old-<name>-*`` and deleted only once the new one settled;
- a per-name lock (``APT_HOME/.locks/<kind>-<name>``, flock) is held by the settling
  thread; readers that need the checksums (``settled``, ``verify``, ``remove``, backups,
  downloads) wait on it, and finish the work themselves when its owner died (same boot: the page cache still holds the
  bytes, so they are hashed and fsynced);
- after a machine restart (a different ``boot_id``) the bytes may never have reached the
  disk, so the entry is dropped and the one it replaced restored: old or new, never half.
  A process on another machine sharing the store (a ReadWriteMany volume) cannot tell that
  from a restart and does the same, so if a writer dies mid-settle and another machine
  reaches the entry first, the import is undone rather than trusted unchecked.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Literal

from apt_model import errors
from apt_model.store import fs
from apt_model.store.entry import META_FILE, Kind, read_meta
from apt_model.store.locks import NameLock

Settle = Literal["now", "background"]
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

log = logging.getLogger("apt_model.store")  # the store's one logger: the name operators filter on


@functools.cache
def boot_id() -> str:
    """This kernel's boot id ("" where the platform has none): page-cache contents survive
    a process crash but not a reboot, so it tells which unsettled entries can be trusted."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def settling(folder: Path) -> dict[str, Any]:
    """The ``settling`` record of an unsettled entry; ``{}`` for a settled one (or none)."""
    return (read_meta(folder) or {}).get("settling") or {}


def settle_locked(kind: Kind, name: str, target: Path) -> None:
    """Settle entry ``name`` (folder ``target``) if it is unsettled; the caller holds its name lock."""
    meta = read_meta(target) or {}  # {}: no entry, or an unreadable record Store.get reports
    state = meta.get("settling")
    if not state:
        return
    old = target.with_name(state["replaces"]) if state.get("replaces") else None
    if state.get("boot_id") != boot_id():
        _drop(kind, name, target, old)
        return
    table = fs.hash_and_fsync(target)
    recorded = {rel: f["size"] for rel, f in meta.get("files", {}).items()}
    if recorded != {rel: f["size"] for rel, f in table.items()}:
        raise errors.DataLoss(
            f"The files of {name!r} changed while it was being stored (expected {sorted(recorded)} with "
            f"their recorded sizes); remove it with 'apt-model model rm {name}' and store it again.")
    meta.pop("settling")
    meta["files"] = table
    fs.write_json_atomic(target / META_FILE, meta)
    fs.fsync_dir(target.parent)
    fs.mark_changed(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _drop(kind: Kind, name: str, target: Path, old: Path | None) -> None:
    """The machine restarted before this entry reached the disk: its bytes cannot be trusted
    and there is nothing to check them against, so the previous entry returns."""
    trash = target.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
    os.rename(target, trash)
    if old is not None and old.is_dir():
        os.rename(old, target)
    fs.fsync_dir(target.parent)
    fs.mark_changed(target.parent)
    shutil.rmtree(trash, ignore_errors=True)
    log.warning("%s/%s was written just before the machine restarted and never reached the disk; "
                "it was dropped%s.", kind, name, " and the previous version restored" if old else "")


class Settlers:
    """This process's background settle threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self, kind: Kind, name: str, target: Path, lock: NameLock) -> None:
        """Settle ``name`` on a new thread, which releases ``lock`` (its name lock) when done."""
        def run() -> None:
            try:
                settle_locked(kind, name, target)
            except Exception:  # the entry stays unsettled; the next reader that needs it retries
                log.exception("settling %s/%s failed; the next reader of its checksums retries", kind, name)
            finally:
                lock.release()

        worker = threading.Thread(target=run, name=f"settle-{name}", daemon=True)
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [worker]
        worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the threads started so far; False when some still run after ``timeout``."""
        with self._lock:
            workers = list(self._threads)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers)
