"""The model store: ``APT_HOME/models/<name>/`` and ``APT_HOME/datasets/<name>/``.

Models are kept in Hugging Face layout plus ``apt.json`` (lineage, metrics, sha256 and size
of every file, created time). Every write is atomic: the new entry is built in a temporary
folder beside the target, fsynced, then renamed into place, so a crash leaves the old
entry or the new one, never half of one. Names are validated before any path is built
from them, so nothing is ever written outside the store through a name.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import queue
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from apt_model import errors

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
META_FILE = "apt.json"
Kind = Literal["models", "datasets"]
_HASH_CHUNK = 1 << 20


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
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = path.relative_to(folder).as_posix()
        if rel == META_FILE:
            continue
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


def _fsync_tree(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
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
        self._known: dict[Path, dict[str, dict[str, Any]]] = {}  # staging folder -> hashes
        self._known_lock = threading.Lock()

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
    ) -> Iterator[Path]:
        """Build a new entry in a temporary folder; it appears in the store only on success.

        The caller writes the files into the yielded folder. On normal exit the folder gets
        its apt.json, is fsynced and renamed into place; on any exception it is removed and
        the store is unchanged. ``extra`` keys are stored at the top level of apt.json.
        """
        target = self.path(kind, name)
        if not overwrite and (target / META_FILE).exists():
            raise errors.AlreadyExists(
                f"{name!r} already exists in the store; choose another name or remove it first "
                f"with 'apt-model model rm {name}'."
            )
        tmp = target.with_name(f".tmp-{name}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        try:
            yield tmp
            meta = {
                "name": name,
                "kind": kind[:-1],
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                "lineage": {"parent": parent, "operation": operation, "parameters": parameters or {}},
                "metrics": metrics or {},
                "files": file_table(tmp, self._pop_known(tmp)),
                **(extra or {}),
            }
            write_json_atomic(tmp / META_FILE, meta)
            _fsync_tree(tmp)
            self._swap_in(tmp, target)
        except BaseException:
            self._pop_known(tmp)
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def copy_in(self, staging: Path, src: Path | str, rel: str,
                on_bytes: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Copy a file into a ``create()`` staging folder, hashing it on the way (no second read)."""
        dst = (staging / rel).resolve()
        if staging.resolve() not in dst.parents:
            raise errors.InvalidArgument(f"{rel!r} points outside the entry being written.")
        dst.parent.mkdir(parents=True, exist_ok=True)
        info = copy_hashed(Path(src), dst, on_bytes)
        with self._known_lock:
            self._known.setdefault(staging, {})[Path(rel).as_posix()] = info
        return info

    def _pop_known(self, staging: Path) -> dict[str, dict[str, Any]]:
        with self._known_lock:
            return self._known.pop(staging, {})

    def _swap_in(self, tmp: Path, target: Path) -> None:
        old = None
        if target.exists():
            old = target.with_name(f".old-{target.name}-{uuid.uuid4().hex[:8]}")
            os.rename(target, old)
        os.rename(tmp, target)
        fsync_dir(target.parent)
        if old is not None:
            # deleted before returning: a background delete raced with anything copying the
            # store right after (found by a test that copies APT_HOME)
            shutil.rmtree(old, ignore_errors=True)

    def update_meta(self, kind: Kind, name: str, *, metrics: dict[str, Any] | None = None,
                    **fields: Any) -> Entry:
        """Merge metrics and top-level fields into an entry's apt.json, atomically."""
        entry = self.get(kind, name)
        meta = dict(entry.meta)
        if metrics:
            meta["metrics"] = {**meta.get("metrics", {}), **metrics}
        meta.update(fields)
        write_json_atomic(entry.path / META_FILE, meta)
        return self.get(kind, name)

    def remove(self, kind: Kind, name: str) -> None:
        entry = self.get(kind, name)
        trash = entry.path.with_name(f".rm-{name}-{uuid.uuid4().hex[:8]}")
        os.rename(entry.path, trash)  # atomic disappearance, then the slow delete
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, kind: Kind, name: str) -> list[str]:
        """Problems found comparing the files on disk with the sha256 table in apt.json."""
        entry = self.get(kind, name)
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

    def clean_temporaries(self) -> int:
        """Remove temporary folders left by a crash; returns how many were removed."""
        n = 0
        for kind in ("models", "datasets"):
            for p in self._dir(kind).iterdir():
                if p.name.startswith((".tmp-", ".old-", ".rm-")):
                    shutil.rmtree(p, ignore_errors=True)
                    n += 1
        return n
