"""Local (or mounted network) folders: ``file:///path``.

Files are copied through a temporary name and renamed, so a reader never sees half a file;
an interrupted backup resumes by skipping files already copied with the right checksum.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from apt_model import errors
from apt_model.store import sha256_file
from apt_storage.backends.base import Backend, ObjectInfo, UploadItem
from apt_storage.progress import TransferProgress

_CHUNK = 4 << 20


def _place(tmp: Path, target: Path, key: str) -> None:
    """Give the finished ``tmp`` the name ``target`` without replacing anything (a hard link
    fails when the name exists): a file already there with the same bytes is fine (a resumed
    or repeated copy), one with other bytes was not written by us and stays as it is."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        if target.is_symlink() or not filecmp.cmp(tmp, target, shallow=False):
            raise errors.AlreadyExists(
                f"{key} already exists at the destination with other content; nothing was replaced. "
                "Choose another destination (or remove that file there).") from None


class LocalBackend(Backend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root = Path(self.dest.prefix)

    def _path(self, key: str) -> Path:
        # keys are built from a validated prefix, names and manifest paths; still refuse escapes
        path = (Path("/") / key).resolve()
        if path != self.root and self.root not in path.parents:
            raise errors.InvalidArgument(f"{key!r} points outside {self.root}.")
        return path

    def check(self) -> None:
        if not self.root.exists():
            parent = self.root.parent
            if not parent.is_dir():
                raise errors.NotFound(
                    f"{parent} does not exist; create it (or mount the volume) before using "
                    f"file://{self.root}.")
            try:
                self.root.mkdir()
            except OSError as exc:
                raise errors.PermissionDenied(f"Cannot create {self.root}: {exc.strerror}.") from exc
        if not self.root.is_dir():
            raise errors.FailedPrecondition(f"{self.root} exists and is not a folder.")
        if not os.access(self.root, os.R_OK | os.X_OK):
            raise errors.PermissionDenied(f"The service may not read {self.root}; fix its permissions.")

    def list(self, prefix: str) -> list[ObjectInfo]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        out = []
        for p in sorted(base.rglob("*")):
            if p.is_file() and not p.name.startswith(".part-"):
                st = p.stat()
                out.append(ObjectInfo(p.relative_to("/").as_posix(), st.st_size,
                                      datetime.fromtimestamp(st.st_mtime, timezone.utc)
                                      .isoformat(timespec="seconds")))
        return out

    def read_bytes(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        self._mkdir(path.parent)
        tmp = path.with_name(f".part-{uuid.uuid4().hex[:8]}-{path.name}")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            _place(tmp, path, key)
        finally:
            tmp.unlink(missing_ok=True)

    def _mkdir(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise errors.PermissionDenied(f"Cannot create {folder}: {exc.strerror}.") from exc

    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        for item in items:
            progress.check_cancelled()
            target = self._path(item.key)
            if target.is_file() and target.stat().st_size == item.size and sha256_file(target) == item.sha256:
                progress.add_skipped(item.size)
                continue
            self._mkdir(target.parent)
            tmp = target.with_name(f".part-{uuid.uuid4().hex[:8]}-{target.name}")
            digest = hashlib.sha256()
            try:
                with open(item.path, "rb") as src, open(tmp, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        digest.update(chunk)
                        dst.write(chunk)
                        progress.add_sent(len(chunk))
                        progress.check_cancelled()
                    dst.flush()
                    os.fsync(dst.fileno())
                if digest.hexdigest() != item.sha256:
                    raise errors.DataLoss(
                        f"{item.path.name} changed since the store recorded it; run "
                        "'apt-model verify' on the model and recreate it before backing it up.")
                if replace:
                    os.replace(tmp, target)
                else:
                    _place(tmp, target, item.key)
            except OSError as exc:
                raise errors.Unavailable(f"Cannot write {target}: {exc.strerror}.") from exc
            finally:
                tmp.unlink(missing_ok=True)

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        source = self._path(key)
        if not source.is_file():
            raise errors.NotFound(f"{source} is missing from the backup.")
        with open(source, "rb") as src, open(target, "wb") as dst:
            while chunk := src.read(_CHUNK):
                dst.write(chunk)
                progress.add_sent(len(chunk))
                progress.check_cancelled()

