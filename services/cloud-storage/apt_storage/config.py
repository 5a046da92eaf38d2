"""The service's own configuration, read once from the environment at the entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from apt_model import errors
from apt_model.trust import EndpointPolicy, PathPolicy, same_endpoint
from apt_storage.backends import configured_endpoint
from apt_storage.backends.base import TransferOptions
from apt_storage.credentials import CredentialSource
from apt_storage.uri import Destination


@dataclass(frozen=True)
class StorageConfig:
    store_root: Path
    # what callers may name (apt_model.trust): file:// destinations and upload sources inside
    # APT_DATA_ROOTS (and the store's own folders), endpoint_url from APT_ALLOWED_ENDPOINTS
    paths: PathPolicy
    endpoints: EndpointPolicy
    credentials: CredentialSource

    @classmethod
    def from_env(cls, store_root: Path, environ: Mapping[str, str] | None = None) -> "StorageConfig":
        env = os.environ if environ is None else environ
        return cls(Path(store_root).resolve(), PathPolicy.from_env(store_root, env),
                   EndpointPolicy.from_env(env), CredentialSource(env))

    @property
    def state_dir(self) -> Path:
        """The service's transfer state (Drive upload sessions), private to it, next to the store."""
        return self.store_root / ".cloud-storage"

    def check_local_destination(self, dest: Destination) -> None:
        """A file:// destination is written into: only inside APT_DATA_ROOTS or APT_HOME/exports."""
        if dest.scheme == "file":
            self.paths.resolve(dest.prefix, f"destination {dest}", write=True)

    def check_endpoint(self, dest: Destination, options: TransferOptions) -> None:
        """Refuse a caller-picked endpoint_url that is not allowed, at the Start call (the job's
        ``open_backend`` checks again and withholds credentials from it)."""
        if options.endpoint_url and not same_endpoint(options.endpoint_url,
                                                      configured_endpoint(dest.scheme, self.credentials)):
            self.endpoints.check(options.endpoint_url, "endpoint_url")

    def readable_source(self, raw: str) -> Path:
        """Resolve an upload source path (relative = inside the store) and check it is allowed."""
        path = raw if os.path.isabs(raw) else str(self.store_root / raw)
        resolved = self.paths.resolve(path, "upload source")
        if not resolved.exists():
            raise errors.NotFound(f"{raw} does not exist on the storage service.")
        return resolved
