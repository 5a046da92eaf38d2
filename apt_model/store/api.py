"""The model store: ``APT_HOME/models/<name>/`` and ``APT_HOME/datasets/<name>/``.

Models are kept in Hugging Face layout plus ``apt.json`` (lineage, metrics, sha256 and size
of every file, created time). Every write is atomic: the new entry is built in a temporary
folder beside the target (``.tmp-*``, claimed by its writer with a lock in
``APT_HOME/.locks``, so a gateway cleaning up at start never takes one a live writer in
another process or container is building), then renamed into place, so a crash leaves the
old entry or the new one, never half of one. Creating a name without ``overwrite`` is
exclusive at that rename, not only when the writer started. Names are validated before any
path is built from them, so nothing is ever written outside the store through a name.
Entries written with ``settle="background"`` get their fsync and sha256 after the rename
(``settle.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from apt_model import errors
from apt_model.store import fs, settle
from apt_model.store.entry import META_FILE, NAME_RE, Entry, Kind, validate_name
from apt_model.store.locks import Locks
from apt_model.store.settle import Settle, Settlers, boot_id


class Store:
    """A model store rooted at ``root`` (APT_HOME)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self._staging: dict[Path, _Staging] = {}  # create() folders being written
        self._staging_lock = threading.Lock()
        self._locks = Locks(self.root)
        self._settlers = Settlers()

    def _dir(self, kind: Kind) -> Path:
        d = self.root / kind
        d.mkdir(parents=True, exist_ok=True)
        return d

    def path(self, kind: Kind, name: str) -> Path:
        """The folder of an entry (validated name, not checked for existence)."""
        validate_name(name, "model" if kind == "models" else "dataset")
        p = (self._dir(kind) / name).resolve()
        if p.parent != self._dir(kind):  # belt and braces: the regex already forbids this
            raise errors.InvalidArgument(f"Name {name!r} points outside the store.")
        return p

    def exists(self, kind: Kind, name: str) -> bool:
        return (self.path(kind, name) / META_FILE).is_file()

    def get(self, kind: Kind, name: str) -> Entry:
        p = self.path(kind, name)
        meta_path = p / META_FILE
        if not meta_path.is_file():
            what = "model" if kind == "models" else "dataset"
            raise errors.NotFound(
                f"No {what} named {name!r} in the store at {self.root}. "
                f"Run 'apt-model list' to see what is there."
            )
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise errors.FailedPrecondition(
                f"The record {meta_path} of {name!r} is unreadable ({exc}); remove the entry "
                "with 'apt-model model rm' and store it again."
            ) from exc
        return Entry(kind=kind, name=name, path=p, meta=meta)

    def model(self, name: str) -> Entry:
        return self.get("models", name)

    def dataset(self, name: str) -> Entry:
        return self.get("datasets", name)

    def _entry_folders(self, kind: Kind) -> Iterator[Path]:
        """The folders of ``kind`` that may be entries, by name: not a leftover (``.tmp-``,
        ``.old-``, ``.rm-``), not a foreign name, not a link (the store never makes one)."""
        for p in sorted(self._dir(kind).iterdir()):
            if not p.name.startswith(".") and not p.is_symlink() and NAME_RE.fullmatch(p.name):
                yield p

    def list(self, kind: Kind) -> list[Entry]:
        return [self.get(kind, p.name) for p in self._entry_folders(kind) if (p / META_FILE).is_file()]

    def used_bytes(self) -> int:
        """Bytes held by every model and dataset, as their apt.json records them (what
        ``APT_STORE_QUOTA`` limits; temporary folders of writers in progress are not counted)."""
        return sum(e.size_bytes for kind in ("models", "datasets") for e in self.list(kind))

    @contextlib.contextmanager
    def create(
        self,
        kind: Kind,
        name: str,
        *,
        operation: str,
        parent: str = "",
        parameters: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        overwrite: bool = False,
        settle: Settle = "now",
    ) -> Iterator[Path]:
        """Build a new entry in a temporary folder; it appears in the store only on success.

        The caller writes the files into the yielded folder. On normal exit the folder gets
        its apt.json and is renamed into place; on any exception it is removed and the store
        is unchanged. ``extra`` keys are stored at the top level of apt.json. ``settle="now"``
        hashes and fsyncs before the rename; ``"background"`` after it (``settle.py``),
        on platforms with a boot id (Linux), and "now" elsewhere. Without ``overwrite`` the
        name is checked here and claimed again at the rename, under the name's lock: of two
        writers of one name the second to finish gets AlreadyExists, its folder is removed
        and the first one's entry stays as it was.
        """
        target = self.path(kind, name)
        if not overwrite and (target / META_FILE).exists():
            raise _exists(kind, name, "already exists in the store")
        tmp = target.with_name(f".tmp-{name}-{uuid.uuid4().hex[:8]}")
        claim = self._locks.claim(tmp)  # held while tmp is built, so no clean_temporaries takes it
        background = settle == "background" and bool(boot_id())
        try:
            tmp.mkdir(parents=True)
            with self._staging_lock:
                self._staging[tmp] = _Staging(background)
            yield tmp
            staging = self._pop_staging(tmp)
            meta = {
                "name": name,
                "kind": kind[:-1],
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "lineage": {"parent": parent, "operation": operation, "parameters": parameters or {}},
                "metrics": metrics or {},
                "files": (fs.size_table(tmp) if background else fs.file_table(tmp, staging.known)),
                **(extra or {}),
            }
            self._commit(kind, name, tmp, meta, background, overwrite)
        except BaseException:
            self._pop_staging(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        finally:
            claim.release(remove=True)

    def _commit(self, kind: Kind, name: str, tmp: Path, meta: dict[str, Any], background: bool,
                overwrite: bool) -> None:
        """Write apt.json into ``tmp`` and rename it in place of ``name``, under the name's lock.

        Without ``overwrite`` the name is claimed here, not only when ``create`` started: two
        writers of one name may both pass that first check, and the one committing second
        must not replace the first one's finished entry.
        """
        target = self.path(kind, name)
        lock = self._locks.name(kind, name)
        try:
            self._settle_locked(kind, name)  # an earlier entry of this name still settling
            if not overwrite and (target / META_FILE).exists():
                raise _exists(kind, name, "was created by another writer while this one was being written; "
                                          "nothing of this write was kept")
            old = target.with_name(f".old-{name}-{uuid.uuid4().hex[:8]}") if target.exists() else None
            if background:
                meta["settling"] = {"boot_id": boot_id(), "replaces": old.name if old else ""}
            fs.write_json_atomic(tmp / META_FILE, meta)
            if not background:
                fs.fsync_tree(tmp)
            self._swap_in(tmp, target, old, keep_old=background)
        except BaseException:
            lock.release()
            raise
        if background:
            self._settlers.start(kind, name, target, lock)  # which releases the lock when settled
        else:
            lock.release()

    def copy_in(self, staging: Path, src: Path | str, rel: str,
                on_bytes: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Copy a file into a ``create()`` staging folder, hashing it on the way (no second read)."""
        dst = (staging / rel).resolve()
        if staging.resolve() not in dst.parents:
            raise errors.InvalidArgument(f"{rel!r} points outside the entry being written.")
        dst.parent.mkdir(parents=True, exist_ok=True)
        with self._staging_lock:
            state = self._staging.get(staging)
        if state is not None and state.background:
            return fs.copy_unhashed(Path(src), dst, on_bytes)  # hashed when it settles
        info = fs.copy_hashed(Path(src), dst, on_bytes)
        if state is not None:
            with self._staging_lock:
                state.known[Path(rel).as_posix()] = info
        return info

    def _pop_staging(self, staging: Path) -> _Staging:
        with self._staging_lock:
            return self._staging.pop(staging, None) or _Staging(False)

    def _swap_in(self, tmp: Path, target: Path, old: Path | None, keep_old: bool) -> None:
        if old is not None:
            os.rename(target, old)
        os.rename(tmp, target)
        fs.fsync_dir(target.parent)
        fs.mark_changed(target.parent)
        if old is not None and not keep_old:
            # deleted before returning: a background delete raced with anything copying the
            # store right after (found by a test that copies APT_HOME)
            shutil.rmtree(old, ignore_errors=True)

    # -- settling (settle.py) ------------------------------------------------------------

    def _settle_locked(self, kind: Kind, name: str) -> None:
        """Settle ``name`` if it is unsettled; the caller holds its name lock."""
        settle.settle_locked(kind, name, self.path(kind, name))

    def settled(self, kind: Kind, name: str) -> Entry:
        """The entry once it has settled (sha256 recorded, on disk), waiting or settling it here."""
        entry = self.get(kind, name)
        if "settling" not in entry.meta:
            return entry
        with self._locks.name(kind, name):
            self._settle_locked(kind, name)
        return self.get(kind, name)

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait for this process's background settles; False when some still run after ``timeout``."""
        return self._settlers.wait(timeout)

    def recover(self) -> int:
        """Settle (or drop, after a restart) every unsettled entry no live process is settling."""
        n = 0
        for kind in ("models", "datasets"):
            for p in self._entry_folders(kind):
                if not settle.settling(p):
                    continue
                lock = self._locks.name(kind, p.name, blocking=False)
                if not lock.held:
                    continue  # a live process is settling it
                try:
                    self._settle_locked(kind, p.name)
                    n += 1
                finally:
                    lock.release()
        return n

    def update_meta(self, kind: Kind, name: str, *, metrics: dict[str, Any] | None = None,
                    **fields: Any) -> Entry:
        """Merge metrics and top-level fields into an entry's apt.json, atomically."""
        self.get(kind, name)  # NotFound before a lock file is made for a name that does not exist
        with self._locks.name(kind, name):  # not racing a settle's own rewrite
            self._settle_locked(kind, name)
            entry = self.get(kind, name)
            meta = dict(entry.meta)
            if metrics:
                meta["metrics"] = {**meta.get("metrics", {}), **metrics}
            meta.update(fields)
            fs.write_json_atomic(entry.path / META_FILE, meta)
            fs.mark_changed(entry.path.parent)
        return self.get(kind, name)

    def remove(self, kind: Kind, name: str) -> None:
        self.get(kind, name)
        with self._locks.name(kind, name):
            self._settle_locked(kind, name)  # also deletes the entry it replaced
            entry = self.get(kind, name)
            trash = entry.path.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
            os.rename(entry.path, trash)  # atomic disappearance, then the slow delete
            fs.mark_changed(entry.path.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, kind: Kind, name: str) -> list[str]:
        """Problems found comparing the files on disk with the sha256 table in apt.json."""
        entry = self.settled(kind, name)
        problems = []
        recorded = entry.meta.get("files", {})
        actual = fs.file_table(entry.path)
        for rel, info in recorded.items():
            if rel not in actual:
                problems.append(f"{rel}: missing")
            elif actual[rel]["sha256"] != info["sha256"]:
                problems.append(f"{rel}: sha256 differs from the one recorded at creation")
        for rel in actual.keys() - recorded.keys():
            problems.append(f"{rel}: not recorded in apt.json")
        return problems

    def _put_back(self, kind: Kind, old: Path) -> bool:
        """Rename ``.old-<name>-<8 hex>`` back to ``<name>`` when that entry is missing."""
        owner = old.with_name(old.name[len(".old-"):-9])  # .old-<name>-<8 hex> (see _commit)
        if not NAME_RE.fullmatch(owner.name) or owner.exists():
            return False
        with self._locks.name(kind, owner.name):  # a live writer holds it between its two renames
            if owner.exists():
                return False
            os.rename(old, owner)
            fs.fsync_dir(old.parent)
            fs.mark_changed(old.parent)
        return True

    def clean_temporaries(self) -> int:
        """Remove temporary folders left by a crash; returns how many were removed.

        Kept: a ``.tmp-`` folder a live writer (any process sharing the store) still builds,
        and an ``.old-`` folder an unsettled entry replaces (what that entry falls back to if
        the machine restarts before it settles). Put back: an ``.old-`` folder whose entry is
        missing (a writer died between moving the old entry aside and moving the new one in).
        """
        n = 0
        for kind in ("models", "datasets"):
            kept = {settle.settling(p).get("replaces") for p in self._dir(kind).iterdir() if not p.name.startswith(".")}
            for p in self._dir(kind).iterdir():
                if not p.name.startswith((".tmp-", ".old-", ".rm-")) or p.name in kept:
                    continue
                if p.name.startswith(".old-") and self._put_back(kind, p):
                    continue
                claim = self._locks.claim(p, blocking=False) if p.name.startswith(".tmp-") else None
                if claim is not None and not claim.held:
                    continue  # its writer is alive
                shutil.rmtree(p, ignore_errors=True)
                n += 1
                if claim is not None:
                    claim.release(remove=True)
        return n


@dataclass
class _Staging:
    background: bool
    known: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)  # hashes from copy_in


def _exists(kind: Kind, name: str, what: str) -> errors.AlreadyExists:
    noun, command = ("Model", "model") if kind == "models" else ("Dataset", "data")
    return errors.AlreadyExists(
        f"{noun} {name!r} {what}. Choose another name, pass --overwrite to replace it, or remove it "
        f"first with 'apt-model {command} rm {name}'.")
