"""The store's locks: flock files in ``APT_HOME/.locks``, shared by every process (and container)
that mounts the store.

- ``<kind>-<name>``: held by a writer from its commit until its entry settled, and by readers
  that need the entry's checksums, a remove or a metadata update;
- ``staging-<.tmp folder>``: held by a writer while it builds that temporary folder, so a
  process cleaning up at start never takes a folder a live writer is building.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from apt_model.store.entry import Kind, validate_name


class Locks:
    """The lock files of the store rooted at ``root``."""

    def __init__(self, root: Path):
        self._folder = root / ".locks"

    def name(self, kind: Kind, name: str, blocking: bool = True) -> "NameLock":
        """The lock of one entry name."""
        return NameLock(self._dir() / f"{kind}-{validate_name(name)}", blocking)

    def claim(self, staging: Path, blocking: bool = True) -> "NameLock":
        """The lock a writer holds on a temporary folder (``.tmp-*``) while it builds it."""
        return NameLock(self._dir() / f"staging-{staging.name}", blocking)

    def _dir(self) -> Path:
        self._folder.mkdir(parents=True, exist_ok=True)
        return self._folder


class NameLock:
    """An exclusive flock on ``path`` (created if missing); released by ``release`` from any
    thread, or at process exit. Name locks are never deleted, so every process locks the same
    inode; one-use claims on temporary folders are deleted by their holder (``remove``)."""

    def __init__(self, path: Path, blocking: bool = True):
        self._path = path
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            self.release()
        except BaseException:
            self.release()
            raise

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self, remove: bool = False) -> None:
        """Release; ``remove`` deletes the lock file first (for one-use locks: a process that
        opens it meanwhile and then gets the lock finds nothing left to guard)."""
        if self._fd is not None:
            if remove:
                self._path.unlink(missing_ok=True)
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> "NameLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
