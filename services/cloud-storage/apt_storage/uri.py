"""Destination URIs: ``scheme://bucket-or-owner/...`` parsed into one typed value.

Each scheme maps to one backend module (``apt_storage.backends.<scheme>``); adding a platform
is one new module plus one entry in ``SCHEMES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from apt_model import errors

# scheme -> what the first URI component names, for messages
SCHEMES = {
    "s3": "s3://bucket/prefix",
    "oss": "oss://bucket/prefix",
    "hf": "hf://owner/repo[/path]",
    "modelscope": "modelscope://owner/repo[/path]",
    "gdrive": "gdrive://folder-id[/path]",
    "file": "file:///absolute/path",
}
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DRIVE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{4,200}$")  # Drive ids; 'root' is My Drive
_REPO_PART_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


def supported() -> str:
    return ", ".join(SCHEMES.values())


@dataclass(frozen=True)
class Destination:
    """A parsed destination. ``container`` is the bucket, the ``owner/repo`` or, for file, ``''``."""

    scheme: str
    container: str
    prefix: str  # key prefix inside the container, no leading or trailing '/'; for file, the path

    def key(self, *parts: str) -> str:
        """Join ``parts`` under the prefix with '/' (object-store keys are POSIX-like)."""
        return "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))

    def __str__(self) -> str:
        if self.scheme == "file":
            return f"file://{self.prefix}"
        tail = f"/{self.prefix}" if self.prefix else ""
        return f"{self.scheme}://{self.container}{tail}"


def _clean_prefix(path: str, uri: str) -> str:
    parts = [p for p in path.split("/") if p]
    if any(p in (".", "..") for p in parts):
        raise errors.InvalidArgument(f"{uri!r}: '.' and '..' are not allowed in a destination path.")
    return "/".join(parts)


def parse(uri: str) -> Destination:
    """Parse a destination URI; raises InvalidArgument naming the supported forms."""
    if not uri or "://" not in uri:
        raise errors.InvalidArgument(
            f"Destination {uri!r} is not a URI; use one of: {supported()}."
        )
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise errors.InvalidArgument(
            f"Unsupported scheme {parts.scheme!r} in {uri!r}; supported: {supported()}."
        )
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise errors.InvalidArgument(
            f"{uri!r}: queries, fragments and credentials do not belong in a destination URI; "
            "pass endpoints as endpoint_url and credentials through the environment."
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise errors.InvalidArgument(f"{uri!r}: use file:///absolute/path (three slashes).")
        path = PurePosixPath(parts.path)
        if not path.is_absolute():
            raise errors.InvalidArgument(f"{uri!r}: a file destination needs an absolute path.")
        return Destination("file", "", "/" + _clean_prefix(parts.path, uri))
    if scheme in ("s3", "oss"):
        bucket = parts.netloc
        if not _BUCKET_RE.fullmatch(bucket):
            raise errors.InvalidArgument(
                f"{uri!r}: {bucket!r} is not a valid bucket name (3-63 characters of a-z, 0-9, '.', '-')."
            )
        return Destination(scheme, bucket, _clean_prefix(parts.path, uri))
    if scheme == "gdrive":
        if not _DRIVE_ID_RE.fullmatch(parts.netloc):
            raise errors.InvalidArgument(
                f"{uri!r}: {parts.netloc!r} is not a Drive folder id (the last part of the folder's "
                "URL, letters, digits, '-' and '_').")
        return Destination(scheme, parts.netloc, _clean_prefix(parts.path, uri))
    owner = parts.netloc
    path = [p for p in parts.path.split("/") if p]
    if not path or not _REPO_PART_RE.fullmatch(owner) or not _REPO_PART_RE.fullmatch(path[0]):
        raise errors.InvalidArgument(
            f"{uri!r}: expected {SCHEMES[scheme]} with a valid owner and repository name."
        )
    return Destination(scheme, f"{owner}/{path[0]}", _clean_prefix("/".join(path[1:]), uri))
