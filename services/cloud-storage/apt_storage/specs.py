"""Validated requests: proto messages become these before any work starts."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from apt_model import errors
from apt_model.store import validate_name
from apt_storage.backends.base import MIN_PART_SIZE, MiB, TransferOptions
from apt_storage.layout import KINDS, validate_tag
from apt_storage.uri import Destination, parse

MAX_PART_SIZE = 5 * 1024 * MiB  # S3's limit for one part
MAX_CONCURRENCY = 64


def parse_kind(kind: str, default: str = "model") -> str:
    kind = (kind or default).lower()
    if kind not in KINDS:
        raise errors.InvalidArgument(f"kind {kind!r} is not one of: model, dataset.")
    return KINDS[kind]


_REGION = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")


def transfer_options(endpoint_url: str = "", region: str = "", part_size: int = 0,
                     concurrency: int = 0, commit_message: str = "") -> TransferOptions:
    if endpoint_url and not endpoint_url.startswith(("http://", "https://")):
        raise errors.InvalidArgument(f"endpoint_url {endpoint_url!r} must start with http:// or https://.",
                                     field="endpoint_url")
    if region and not _REGION.fullmatch(region):
        # OSS and S3 build the host name from it: "evil.example/x?" would send signed requests elsewhere
        raise errors.InvalidArgument(f"region {region!r} is not a region name (e.g. cn-hangzhou, us-east-1: "
                                     "lowercase letters, digits and '-').", field="region")
    if part_size and not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
        raise errors.InvalidArgument(
            f"part_size {part_size} is out of range: use {MIN_PART_SIZE} (5 MiB) to {MAX_PART_SIZE} (5 GiB).")
    if concurrency and not 1 <= concurrency <= MAX_CONCURRENCY:
        raise errors.InvalidArgument(f"concurrency {concurrency} is out of range: use 1 to {MAX_CONCURRENCY}.")
    defaults = TransferOptions()
    return TransferOptions(endpoint_url=endpoint_url, region=region,
                           part_size=part_size or defaults.part_size,
                           concurrency=concurrency or defaults.concurrency,
                           commit_message=commit_message)


@dataclass(frozen=True)
class BackupSpec:
    name: str
    kind: str                 # "models" | "datasets"
    destination: Destination
    tag: str                  # '' = resume the unfinished backup of the same content, else a new timestamp
    options: TransferOptions = field(default_factory=TransferOptions)

    @classmethod
    def from_request(cls, req) -> "BackupSpec":
        kind = parse_kind(req.kind)
        return cls(name=validate_name(req.name, kind[:-1]), kind=kind, destination=parse(req.destination),
                   tag=validate_tag(req.tag) if req.tag else "",
                   options=transfer_options(req.endpoint_url, req.region, req.part_size, req.concurrency))


@dataclass(frozen=True)
class RestoreSpec:
    source: Destination
    backup_name: str          # '' = the only name backed up at the source
    tag: str                  # '' = the newest complete backup
    name: str                 # store name; '' = backup_name
    kind: str                 # '' = as backed up
    overwrite: bool = False
    options: TransferOptions = field(default_factory=TransferOptions)

    @classmethod
    def from_request(cls, req) -> "RestoreSpec":
        return cls(source=parse(req.source),
                   backup_name=validate_name(req.backup_name, "backup") if req.backup_name else "",
                   tag=validate_tag(req.tag) if req.tag else "",
                   name=validate_name(req.name) if req.name else "",
                   kind=parse_kind(req.kind) if req.kind else "",
                   overwrite=req.overwrite,
                   options=transfer_options(req.endpoint_url, req.region, concurrency=req.concurrency))


@dataclass(frozen=True)
class UploadSpec:
    paths: tuple[str, ...]
    destination: Destination
    options: TransferOptions = field(default_factory=TransferOptions)

    @classmethod
    def from_request(cls, req) -> "UploadSpec":
        if not req.paths:
            raise errors.InvalidArgument("Give at least one file or folder to upload.")
        return cls(paths=tuple(req.paths), destination=parse(req.destination),
                   options=transfer_options(req.endpoint_url, req.region, req.part_size,
                                            req.concurrency, req.commit_message))
