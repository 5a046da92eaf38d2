"""The one interface every destination implements; ``apt_storage.backends`` picks the module."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from apt_storage.credentials import Credentials, CredentialSource
from apt_storage.progress import TransferProgress
from apt_storage.retry import RetryPolicy
from apt_storage.uri import Destination

MiB = 1 << 20
MIN_PART_SIZE = 5 * MiB  # S3 and OSS reject smaller parts except the last
MAX_PARTS = 10_000


@dataclass(frozen=True)
class TransferOptions:
    endpoint_url: str = ""          # S3-compatible / OSS / hub endpoint; '' = the scheme's default
    region: str = ""
    part_size: int = 8 * MiB        # bytes per multipart part (S3, OSS)
    concurrency: int = 4            # parts in flight at once
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    commit_message: str = ""        # hubs: the commit message


@dataclass(frozen=True)
class ObjectInfo:
    key: str       # full key inside the container (bucket or repo), '/'-separated
    size: int      # bytes
    modified: str  # RFC 3339 when the platform says, else ''


@dataclass(frozen=True)
class UploadItem:
    key: str
    path: Path
    size: int
    sha256: str  # expected content hash; the upload fails with DATA_LOSS if the file differs


def write_chunks(chunks: Iterable[bytes], target: Path, progress: TransferProgress,
                 on_chunk: Callable[[bytes], None] | None = None) -> None:
    """Write a download's chunks to ``target``, counting each in ``progress`` (and checking for
    cancel between chunks); ``on_chunk`` sees each one too (a digest). On any failure the bytes
    counted are taken back: a retry starts the file again."""
    written = 0
    try:
        with open(target, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                if on_chunk is not None:
                    on_chunk(chunk)
                written += len(chunk)
                progress.add_sent(len(chunk))
                progress.check_cancelled()
    except BaseException:
        progress.add_sent(-written)
        raise


class Backend(abc.ABC):
    """A destination: a bucket, a hub repository or a local folder."""

    def __init__(self, dest: Destination, options: TransferOptions, creds: Credentials,
                 source: CredentialSource, state_dir: Path | None = None):
        self.dest = dest
        self.options = options
        self.creds = creds
        self.source = source
        # the service's own folder for transfer state that must outlive a job (Drive's upload
        # session URIs); None: nothing is remembered and an interrupted upload starts again
        self.state_dir = state_dir

    @abc.abstractmethod
    def check(self) -> None:
        """Raise NotFound / PermissionDenied / Unavailable when the destination cannot be used."""

    @abc.abstractmethod
    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with ``prefix + '/'`` (recursive)."""

    @abc.abstractmethod
    def read_bytes(self, key: str) -> bytes | None:
        """A small object's content, or None when it does not exist."""

    @abc.abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Write a small object in one request (manifests)."""

    @abc.abstractmethod
    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        """Upload files; resumable backends skip what is already there. ``replace``: the keys
        are this operation's own (a resumed backup's tag), so other bytes there are replaced;
        without it the local backend (a host folder) refuses to replace a file with other
        bytes. Object stores and hub repos keep their own semantics (a new object version or
        commit) either way."""

    @abc.abstractmethod
    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        """Write the object ``key`` to ``target`` (the caller verifies its checksum)."""

    def close(self) -> None:
        """Release connections; the default has none."""

    def describe(self) -> str:
        endpoint = f" at {self.options.endpoint_url}" if self.options.endpoint_url else ""
        return f"{self.dest}{endpoint}"
