"""The model store: ``APT_HOME/models/<name>/`` and ``APT_HOME/datasets/<name>/``.

Models are kept in Hugging Face layout plus ``apt.json`` (lineage, metrics, sha256 and size
of every file, created time). Every write is atomic: the new entry is built in a temporary
folder beside the target (``.tmp-*``, claimed by its writer with a lock in
``APT_HOME/.locks``, so a gateway cleaning up at start never takes one a live writer in
another process or container is building), then renamed into place, so a crash leaves the
old entry or the new one, never half of one. Creating a name without ``overwrite`` is
exclusive at that rename, not only when the writer started. Names are validated before any
path is built from them, so nothing is ever written outside the store through a name.

An entry is *settled* when its files are on disk (fsynced) and their sha256 are in apt.json.
By default ``create`` settles before the rename. ``create(settle="background")`` (used for
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

import contextlib
import dataclasses
import datetime as dt
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import queue
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from apt_model import errors

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
META_FILE = "apt.json"
Kind = Literal["models", "datasets"]
Settle = Literal["now", "background"]
_HASH_CHUNK = 1 << 20
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")

log = logging.getLogger(__name__)


@functools.cache
def boot_id() -> str:
    """This kernel's boot id ("" where the platform has none): page-cache contents survive
    a process crash but not a reboot, so it tells which unsettled entries can be trusted."""
    try:
        return _BOOT_ID.read_text().strip()
    except OSError:
        return ""


def validate_name(name: str, what: str = "model") -> str:
    """Return ``name`` when it is a valid store name; raise InvalidArgument otherwise."""
    if not isinstance(name, str) or not NAME_RE.match(name) or ".." in name:
        raise errors.InvalidArgument(
            f"Invalid {what} name {name!r}: use 1-64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit (no '/', no '..')."
        )
    return name


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
    for rel, path in _entry_files(folder):
        size = path.stat().st_size
        if rel in known and known[rel]["size"] == size:
            table[rel] = dict(known[rel])
        else:
            table[rel] = {"sha256": sha256_file(path), "size": size}
    return table


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


def _hash_and_fsync(folder: Path) -> dict[str, dict[str, Any]]:
    """``file_table(folder)`` while the same files are fsynced on a second thread, so the disk
    writes back while the CPU hashes; then the folders are fsynced."""
    files = _entry_files(folder)

    def fsync_all() -> None:
        for _, path in files:
            with open(path, "rb") as fh:
                os.fdatasync(fh.fileno())

    with ThreadPoolExecutor(1, thread_name_prefix="fsync") as pool:
        synced = pool.submit(fsync_all)
        table = file_table(folder)
        synced.result()
    _fsync_dirs(folder)
    return table


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
    _fsync_dirs(folder)


def _fsync_dirs(folder: Path) -> None:
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


@dataclass(frozen=True)
class Entry:
    """A model or dataset in the store, as recorded by its apt.json."""

    kind: Kind
    name: str
    path: Path
    meta: dict[str, Any]

    @property
    def size_bytes(self) -> int:
        return sum(f["size"] for f in self.meta.get("files", {}).values())

    @property
    def parent(self) -> str:
        return self.meta.get("lineage", {}).get("parent", "") or ""

    @property
    def created(self) -> str:
        return self.meta.get("created", "")


class Store:
    """A model store rooted at ``root`` (APT_HOME)."""

    def __init__(self, root: Path | str):
        self.root = Path(root).resolve()
        self._staging: dict[Path, _Staging] = {}  # create() folders being written
        self._staging_lock = threading.Lock()
        self._settlers: list[threading.Thread] = []

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

    def list(self, kind: Kind) -> list[Entry]:
        out = []
        for p in sorted(self._dir(kind).iterdir()):
            if p.name.startswith(".") or not (p / META_FILE).is_file() or not NAME_RE.match(p.name):
                continue
            out.append(self.get(kind, p.name))
        return out

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
        hashes and fsyncs before the rename; ``"background"`` after it (module docstring),
        on platforms with a boot id (Linux), and "now" elsewhere. Without ``overwrite`` the
        name is checked here and claimed again at the rename, under the name's lock: of two
        writers of one name the second to finish gets AlreadyExists, its folder is removed
        and the first one's entry stays as it was.
        """
        target = self.path(kind, name)
        if not overwrite and (target / META_FILE).exists():
            raise _exists(kind, name, "already exists in the store")
        tmp = target.with_name(f".tmp-{name}-{uuid.uuid4().hex[:8]}")
        claim = self._claim(tmp)  # held while tmp is built, so no clean_temporaries takes it
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
                "files": (_size_table(tmp) if background else file_table(tmp, staging.known)),
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
        lock = self._lock(kind, name)
        try:
            self._settle_locked(kind, name)  # an earlier entry of this name still settling
            if not overwrite and (target / META_FILE).exists():
                raise _exists(kind, name, "was created by another writer while this one was being written; "
                                          "nothing of this write was kept")
            old = target.with_name(f".old-{name}-{uuid.uuid4().hex[:8]}") if target.exists() else None
            if background:
                meta["settling"] = {"boot_id": boot_id(), "replaces": old.name if old else ""}
            write_json_atomic(tmp / META_FILE, meta)
            if not background:
                _fsync_tree(tmp)
            self._swap_in(tmp, target, old, keep_old=background)
        except BaseException:
            lock.release()
            raise
        if background:
            self._start_settler(kind, name, lock)  # which releases the lock when settled
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
            return copy_unhashed(Path(src), dst, on_bytes)  # hashed when it settles
        info = copy_hashed(Path(src), dst, on_bytes)
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
        fsync_dir(target.parent)
        if old is not None and not keep_old:
            # deleted before returning: a background delete raced with anything copying the
            # store right after (found by a test that copies APT_HOME)
            shutil.rmtree(old, ignore_errors=True)

    # -- settling (module docstring) -------------------------------------------------------

    def _start_settler(self, kind: Kind, name: str, lock: "_NameLock") -> None:
        def run() -> None:
            try:
                self._settle_locked(kind, name)
            except Exception:  # the entry stays unsettled; the next reader that needs it retries
                log.exception("settling %s/%s failed; the next reader of its checksums retries", kind, name)
            finally:
                lock.release()

        worker = threading.Thread(target=run, name=f"settle-{name}", daemon=True)
        with self._staging_lock:
            self._settlers = [t for t in self._settlers if t.is_alive()] + [worker]
        worker.start()

    def _settle_locked(self, kind: Kind, name: str) -> None:
        """Settle ``name`` if it is unsettled; the caller holds its name lock."""
        target = self.path(kind, name)
        meta = _read_meta(target) or {}  # {}: no entry, or an unreadable record get() reports
        state = meta.get("settling")
        if not state:
            return
        old = target.with_name(state["replaces"]) if state.get("replaces") else None
        if state.get("boot_id") != boot_id():
            # the machine restarted before this entry reached the disk: its bytes cannot be
            # trusted and there is nothing to check them against, so the previous entry returns
            trash = target.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
            os.rename(target, trash)
            if old is not None and old.is_dir():
                os.rename(old, target)
            fsync_dir(target.parent)
            shutil.rmtree(trash, ignore_errors=True)
            log.warning("%s/%s was written just before the machine restarted and never reached the disk; "
                        "it was dropped%s.", kind, name, " and the previous version restored" if old else "")
            return
        table = _hash_and_fsync(target)
        recorded = {rel: f["size"] for rel, f in meta.get("files", {}).items()}
        if recorded != {rel: f["size"] for rel, f in table.items()}:
            raise errors.DataLoss(
                f"The files of {name!r} changed while it was being stored (expected {sorted(recorded)} with "
                f"their recorded sizes); remove it with 'apt-model model rm {name}' and store it again.")
        meta.pop("settling")
        meta["files"] = table
        write_json_atomic(target / META_FILE, meta)
        fsync_dir(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _lock(self, kind: Kind, name: str, blocking: bool = True) -> "_NameLock":
        return _NameLock(self._locks() / f"{kind}-{validate_name(name)}", blocking)

    def _claim(self, staging: Path, blocking: bool = True) -> "_NameLock":
        """The lock a writer holds on a temporary folder (``.tmp-*``) while it builds it."""
        return _NameLock(self._locks() / f"staging-{staging.name}", blocking)

    def _locks(self) -> Path:
        folder = self.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def settled(self, kind: Kind, name: str) -> Entry:
        """The entry once it has settled (sha256 recorded, on disk), waiting or settling it here."""
        entry = self.get(kind, name)
        if "settling" not in entry.meta:
            return entry
        with self._lock(kind, name):
            self._settle_locked(kind, name)
        return self.get(kind, name)

    def wait_settled(self, timeout: float | None = None) -> bool:
        """Wait for this process's background settles; False when some still run after ``timeout``."""
        with self._staging_lock:
            workers = list(self._settlers)
        deadline = None if timeout is None else time.monotonic() + timeout
        for worker in workers:
            worker.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(w.is_alive() for w in workers)

    def recover(self) -> int:
        """Settle (or drop, after a restart) every unsettled entry no live process is settling."""
        n = 0
        for kind in ("models", "datasets"):
            for p in sorted(self._dir(kind).iterdir()):
                if p.name.startswith(".") or not NAME_RE.match(p.name) or not _settling(p):
                    continue
                lock = self._lock(kind, p.name, blocking=False)
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
        with self._lock(kind, name):  # not racing a settle's own rewrite
            self._settle_locked(kind, name)
            entry = self.get(kind, name)
            meta = dict(entry.meta)
            if metrics:
                meta["metrics"] = {**meta.get("metrics", {}), **metrics}
            meta.update(fields)
            write_json_atomic(entry.path / META_FILE, meta)
        return self.get(kind, name)

    def remove(self, kind: Kind, name: str) -> None:
        self.get(kind, name)
        with self._lock(kind, name):
            self._settle_locked(kind, name)  # also deletes the entry it replaced
            entry = self.get(kind, name)
            trash = entry.path.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
            os.rename(entry.path, trash)  # atomic disappearance, then the slow delete
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, kind: Kind, name: str) -> list[str]:
        """Problems found comparing the files on disk with the sha256 table in apt.json."""
        entry = self.settled(kind, name)
        problems = []
        recorded = entry.meta.get("files", {})
        actual = file_table(entry.path)
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
        if not NAME_RE.match(owner.name) or owner.exists():
            return False
        with self._lock(kind, owner.name):  # a live writer holds it between its two renames
            if owner.exists():
                return False
            os.rename(old, owner)
            fsync_dir(old.parent)
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
            kept = {_settling(p).get("replaces") for p in self._dir(kind).iterdir() if not p.name.startswith(".")}
            for p in self._dir(kind).iterdir():
                if not p.name.startswith((".tmp-", ".old-", ".rm-")) or p.name in kept:
                    continue
                if p.name.startswith(".old-") and self._put_back(kind, p):
                    continue
                claim = self._claim(p, blocking=False) if p.name.startswith(".tmp-") else None
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


class _NameLock:
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

    def __enter__(self) -> "_NameLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _exists(kind: Kind, name: str, what: str) -> errors.AlreadyExists:
    noun, command = ("Model", "model") if kind == "models" else ("Dataset", "data")
    return errors.AlreadyExists(
        f"{noun} {name!r} {what}. Choose another name, pass --overwrite to replace it, or remove it "
        f"first with 'apt-model {command} rm {name}'.")


def _size_table(folder: Path) -> dict[str, dict[str, Any]]:
    """The file table of an entry that settles later: sizes now, sha256 ``""`` until then."""
    return {rel: {"sha256": "", "size": p.stat().st_size} for rel, p in _entry_files(folder)}


def _entry_files(folder: Path) -> list[tuple[str, Path]]:
    """(relative POSIX path, path) of every file of an entry, its apt.json left out, sorted."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return [(rel, p) for p in files if (rel := p.relative_to(folder).as_posix()) != META_FILE]


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _settling(folder: Path) -> dict[str, Any]:
    """The ``settling`` record of an unsettled entry; ``{}`` for a settled one (or none)."""
    return (_read_meta(folder) or {}).get("settling") or {}
