"""Resumable multipart upload shared by the S3 and OSS backends.

Parts are read in order by one thread, which also hashes the whole file (sha256) so a file
that changed since the store recorded it is never completed; the parts themselves go out
in parallel, each with the integrity checksum its platform verifies on arrival. A resumed
upload lists the parts the server already holds and re-sends only those whose size or MD5
(the part ETag) differs from the local bytes; MD5 is computed only for those parts.
"""

from __future__ import annotations

import abc
import base64
import hashlib
import os
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from apt_model import errors
from apt_storage.backends.base import MAX_PARTS, MIN_PART_SIZE, Backend, UploadItem
from apt_storage.progress import TransferProgress
from apt_storage.retry import with_retries


@dataclass(frozen=True)
class RemotePart:
    size: int
    etag: str  # as the server returns it, quotes stripped, lower case


def md5_b64(data: bytes) -> tuple[str, str]:
    """(hex, base64) MD5 of ``data``: hex to compare with part ETags, base64 for Content-MD5."""
    digest = hashlib.md5(data, usedforsecurity=False).digest()
    return digest.hex(), base64.b64encode(digest).decode("ascii")


class MultipartBackend(Backend):
    """Object stores with S3-style multipart uploads. Subclasses supply the primitives."""

    META_SHA256 = "sha256"  # user metadata key holding the object's sha256

    # --- primitives --------------------------------------------------------------------
    @abc.abstractmethod
    def _head_sha256(self, key: str) -> tuple[int, str] | None:
        """(size, sha256 metadata or '') of an existing object, None when there is none."""

    @abc.abstractmethod
    def _put(self, key: str, data: bytes, md5: str, sha256: str) -> None: ...

    @abc.abstractmethod
    def _find_upload(self, key: str) -> tuple[str, dict[int, RemotePart]] | None:
        """The newest unfinished multipart upload of ``key`` and its parts, if any."""

    @abc.abstractmethod
    def _create_upload(self, key: str, sha256: str) -> str: ...

    @abc.abstractmethod
    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes) -> dict:
        """Send one part; returns its entry for ``_complete`` (ETag, checksum)."""

    @abc.abstractmethod
    def _existing_part(self, number: int, remote: RemotePart, data: bytes) -> dict:
        """The ``_complete`` entry of a part the server already holds with these bytes."""

    @abc.abstractmethod
    def _complete(self, key: str, upload_id: str, parts: dict[int, dict]) -> None: ...

    @abc.abstractmethod
    def _abort(self, key: str, upload_id: str) -> None: ...

    @abc.abstractmethod
    def _is_transient(self, exc: BaseException) -> bool: ...

    @abc.abstractmethod
    def _map_error(self, exc: BaseException, action: str) -> errors.AptError | None:
        """The platform error for a library error; None for anything else (a bug: re-raised)."""

    # --- shared logic ------------------------------------------------------------------
    def _call(self, fn, action: str):
        """Run one request with retries; map a final failure to a platform error."""
        try:
            return with_retries(fn, self.options.retry, self._is_transient, action)
        except errors.AptError:
            raise
        except Exception as exc:  # noqa: BLE001 - library errors become typed ones, others propagate
            mapped = self._map_error(exc, action)
            if mapped is None:
                raise
            raise mapped from exc

    def part_size_for(self, size: int) -> int:
        """The configured part size, grown when a file would need more than 10,000 parts."""
        part = max(self.options.part_size, MIN_PART_SIZE)
        while -(-size // part) > MAX_PARTS:
            part *= 2
        return part

    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        for item in items:
            progress.check_cancelled()
            self._upload_one(item, progress)

    def _upload_one(self, item: UploadItem, progress: TransferProgress) -> None:
        existing = self._call(lambda: self._head_sha256(item.key), f"inspect {item.key}")
        if existing == (item.size, item.sha256):
            progress.add_skipped(item.size)
            return
        part_size = self.part_size_for(item.size)
        if item.size <= part_size:
            data = item.path.read_bytes()
            _check_sha(item, hashlib.sha256(data).hexdigest())
            b64 = md5_b64(data)[1]
            self._call(lambda: self._put(item.key, data, b64, item.sha256), f"upload {item.key}")
            progress.add_sent(len(data))
            return
        found = self._call(lambda: self._find_upload(item.key), f"list parts of {item.key}")
        upload_id, remote = found if found else (None, {})
        if upload_id is None:
            upload_id = self._call(lambda: self._create_upload(item.key, item.sha256),
                                   f"start multipart upload of {item.key}")
        parts = self._send_parts(item, upload_id, remote, part_size, progress)
        self._call(lambda: self._complete(item.key, upload_id, parts), f"complete {item.key}")

    def _send_parts(self, item: UploadItem, upload_id: str, remote: dict[int, RemotePart],
                    part_size: int, progress: TransferProgress) -> dict[int, dict]:
        parts: dict[int, dict] = {}
        whole = hashlib.sha256()
        pending: set[Future] = set()
        limit = max(1, self.options.concurrency)

        def send(number: int, data: bytes) -> tuple[int, dict]:
            progress.check_cancelled()
            entry = self._call(lambda: self._upload_part(item.key, upload_id, number, data),
                               f"upload part {number} of {item.key}")
            progress.add_sent(len(data), part=True)
            return number, entry

        with ThreadPoolExecutor(max_workers=limit, thread_name_prefix="part") as pool:
            try:
                fd = os.open(item.path, os.O_RDONLY)
                try:
                    for number, offset in enumerate(range(0, item.size, part_size), start=1):
                        progress.check_cancelled()
                        data = os.pread(fd, min(part_size, item.size - offset), offset)
                        whole.update(data)
                        have = remote.get(number)
                        if have and have.size == len(data) and have.etag == md5_b64(data)[0]:
                            parts[number] = self._existing_part(number, have, data)
                            progress.add_skipped(len(data), part=True)
                            continue
                        while len(pending) >= limit:  # bounds memory to `limit` parts
                            done, pending = wait(pending, return_when=FIRST_COMPLETED)
                            parts.update(f.result() for f in done)
                        pending.add(pool.submit(send, number, data))
                finally:
                    os.close(fd)
                done, pending = wait(pending)
                parts.update(f.result() for f in done)
            except BaseException:
                for f in pending:
                    f.cancel()
                raise
        if whole.hexdigest() != item.sha256:
            self._call(lambda: self._abort(item.key, upload_id), f"abort upload of {item.key}")
            _check_sha(item, whole.hexdigest())
        return parts


def _check_sha(item: UploadItem, actual: str) -> None:
    if actual != item.sha256:
        raise errors.DataLoss(
            f"{item.path.name} changed since the store recorded it (sha256 {actual[:12]}… "
            f"instead of {item.sha256[:12]}…); run 'apt-model verify' on the model and "
            "recreate it before backing it up."
        )
