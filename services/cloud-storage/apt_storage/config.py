"""The service's own configuration, read once from the environment at the entry point."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from apt_model import errors
from apt_storage.credentials import CredentialSource
from apt_storage.uri import Destination

ROOTS_VAR = "CLOUD_STORAGE_ROOTS"


@dataclass(frozen=True)
class StorageConfig:
    store_root: Path
    # CLOUD_STORAGE_ROOTS (os.pathsep-separated): folders that file:// destinations and upload
    # sources may use besides the store. Empty = file:// may be any absolute path, and uploads
    # may read the store only.
    roots: tuple[Path, ...]
    credentials: CredentialSource

    @classmethod
    def from_env(cls, store_root: Path, environ: Mapping[str, str] | None = None) -> "StorageConfig":
        env = os.environ if environ is None else environ
        roots = tuple(Path(p).resolve() for p in env.get(ROOTS_VAR, "").split(os.pathsep) if p)
        return cls(Path(store_root).resolve(), roots, CredentialSource(env))

    def check_local_destination(self, dest: Destination) -> None:
        if dest.scheme != "file" or not self.roots:
            return
        path = Path(dest.prefix).resolve()
        if not any(path == r or r in path.parents for r in self.roots):
            allowed = ", ".join(str(r) for r in self.roots)
            raise errors.PermissionDenied(
                f"{dest} is outside the folders this service may use ({allowed}); "
                f"choose one of them or add it to {ROOTS_VAR}.")

    def readable_source(self, raw: str) -> Path:
        """Resolve an upload source path (relative = inside the store) and check it is allowed."""
        path = Path(raw)
        path = (path if path.is_absolute() else self.store_root / path).resolve()
        allowed = (self.store_root, *self.roots)
        if not any(path == r or r in path.parents for r in allowed):
            raise errors.PermissionDenied(
                f"{raw} is outside the folders this service may read ({', '.join(map(str, allowed))}); "
                f"add its folder to {ROOTS_VAR} on the service.")
        if not path.exists():
            raise errors.NotFound(f"{raw} does not exist on the storage service.")
        return path
