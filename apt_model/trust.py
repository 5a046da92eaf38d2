"""What a remote caller may make a service read, write or call (README "Security").

A caller holding the user token runs operations on the store. It may name host paths only
inside the folders the operator listed in ``APT_DATA_ROOTS`` (none by default) or the store's
own ``models/``, ``datasets/`` and ``exports/``; it may name endpoints only from
``APT_ALLOWED_ENDPOINTS`` (none by default). Everything else is ``PERMISSION_DENIED`` naming
the setting, so an operator knows what to change and a caller knows what to do instead.

Paths are resolved with every symlink followed (``os.path.realpath``) before they are
compared, so a link inside an allowed folder cannot lead out of it. Nothing here touches
the file system beyond resolving: callers open the resolved path themselves.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping
from urllib.parse import urlsplit

from apt_model import errors

CALLER_STORE_FOLDERS = ("models", "datasets", "exports")  # the parts of APT_HOME a caller may name
WRITABLE_STORE_FOLDERS = ("exports",)  # ... and may make a service write into by path (entries: only by name)
ROOTS_SETTING = "APT_DATA_ROOTS"
ENDPOINTS_SETTING = "APT_ALLOWED_ENDPOINTS"
PUSH_HINT = "push the file into the store with 'apt-model data push FILE --name N' and name the dataset instead"


# Never a caller's to name, even under a data root of "/": the kernel's views of processes
# (/proc/self/environ holds every token) and devices.
KERNEL_FOLDERS = ("/proc", "/sys", "/dev")
# Environment variables that name a secret file or folder (mounted tokens, cloud credentials).
_SECRET_VARIABLE = ("_FILE", "_TOKEN_PATH", "SECRETS_DIR", "CREDENTIALS_FILE", "_CONFIG_FILE")


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def secret_paths(env: Mapping[str, str]) -> list[str]:
    """Files and folders the environment names as holding secrets (APT_TOKEN_FILE,
    CLOUD_STORAGE_SECRETS_DIR, AWS_SHARED_CREDENTIALS_FILE, ...): a caller may never name them."""
    return [v for k, v in env.items() if k.endswith(_SECRET_VARIABLE) and os.path.isabs(v)]


def _never(secrets_folder: Path, env: Mapping[str, str]) -> tuple[Path | str, ...]:
    """What no caller may name, even inside a data root: the secrets folder, the secret files and
    folders ``env`` names, and the kernel's folders."""
    return (secrets_folder, *secret_paths(env), *KERNEL_FOLDERS)


def check_contained(folder: Path | str, files: Iterable[Path | str], what: str) -> None:
    """PermissionDenied when one of ``files``, found inside a caller-named ``folder`` that was
    allowed, is a link leading out of it: the folder was allowed, not what its links point at."""
    base = os.path.realpath(folder)
    for f in files:
        if not _inside(os.path.realpath(f), base):
            raise errors.PermissionDenied(
                f"{Path(f).name!r} in the {what} is a link leading out of it; links may not lead elsewhere "
                "on the service's machine. Copy the file into the folder instead.")


@dataclass(frozen=True)
class PathPolicy:
    """The host folders a caller may name, all resolved (no symlinks) at start."""

    home: str                  # APT_HOME, resolved
    roots: tuple[str, ...]     # APT_DATA_ROOTS, resolved
    denied: tuple[str, ...]    # never, even inside a root: secrets (folder, mounted files), /proc, /sys, /dev

    @classmethod
    def create(cls, home: Path | str, roots: Iterable[str] = (), denied: Iterable[Path | str] = ()) -> "PathPolicy":
        return cls(os.path.realpath(home), tuple(os.path.realpath(r) for r in roots),
                   tuple(os.path.realpath(d) for d in denied))

    @classmethod
    def from_env(cls, home: Path | str, env: Mapping[str, str]) -> "PathPolicy":
        """For a service reading its own environment (the variables as Settings parses them)."""
        from apt_model.runtime.settings import secrets_dir

        roots = [r for r in env.get(ROOTS_SETTING, "").split(os.pathsep) if r]
        configured = env.get("APT_SECRETS_DIR")
        return cls.create(home, roots, _never(secrets_dir(home, Path(configured) if configured else None), env))

    @classmethod
    def from_settings(cls, settings) -> "PathPolicy":
        from apt_model.runtime.settings import secrets_dir

        return cls.create(settings.home, settings.data_roots,
                          _never(secrets_dir(settings.home, settings.secrets_dir), os.environ))

    def allows(self, raw: str, write: bool = False) -> bool:
        real = os.path.realpath(raw)
        if any(_inside(real, d) for d in self.denied):
            return False
        store_folders = WRITABLE_STORE_FOLDERS if write else CALLER_STORE_FOLDERS
        if any(_inside(real, os.path.join(self.home, f)) for f in store_folders):
            return True
        if _inside(real, self.home):  # the rest of APT_HOME: gateway state, logs, locks
            return False
        return any(_inside(real, r) for r in self.roots)

    def resolve(self, raw: str, what: str, write: bool = False) -> Path:
        """The real path of a caller-named host path, or PermissionDenied/InvalidArgument.

        ``what`` names the field in the messages (e.g. "corpus path"); ``write`` for a path
        the service will write into (store entries are written by name only, never by path).
        """
        if not raw or not raw.strip():
            raise errors.InvalidArgument(f"The {what} is empty.")
        if "\x00" in raw:
            raise errors.InvalidArgument(f"The {what} contains a NUL byte.")
        if not os.path.isabs(raw):
            raise errors.InvalidArgument(
                f"The {what} {raw!r} is not absolute: paths are read on the service's machine, "
                f"where '~' and relative paths mean nothing to you; give an absolute path inside "
                f"{ROOTS_SETTING}, or {PUSH_HINT}.")
        if not self.allows(raw, write):
            where = ", ".join(self.roots) if self.roots else "none are set"
            raise errors.PermissionDenied(
                f"The {what} {raw!r} is outside the folders callers may name ({ROOTS_SETTING}: {where}). "
                f"An operator can add its folder to {ROOTS_SETTING} on the gateway; otherwise {PUSH_HINT}.")
        return Path(os.path.realpath(raw))

    def resolve_all(self, raws: Iterable[str], what: str) -> tuple[str, ...]:
        return tuple(str(self.resolve(r, what)) for r in raws)

    def resolve_optional(self, raw: str, what: str) -> str:
        """``resolve`` for an optional field: '' stays ''."""
        return str(self.resolve(raw, what)) if raw else ""

    def export_dir(self, name: str) -> Path:
        """``APT_HOME/exports/<name>``: the one place operations write files outside entries."""
        from apt_model.store import validate_name

        validate_name(name, "export")
        return Path(self.home) / "exports" / name


def _origin(url: str) -> tuple[str, str, int, str]:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise errors.InvalidArgument(f"{url!r} is not an http(s) URL with a host.")
    if parts.username or parts.password:
        raise errors.InvalidArgument(f"{url!r} carries credentials in the URL; configure them on the service instead.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise errors.InvalidArgument(f"{url!r} has an invalid port.") from exc
    return scheme, parts.hostname.lower(), port, parts.path.rstrip("/")


def same_endpoint(a: str, b: str) -> bool:
    """True when both URLs name the same scheme, host, port and path."""
    if not a or not b:
        return False
    try:
        return _origin(a) == _origin(b)
    except errors.AptError:
        return False


@dataclass(frozen=True)
class EndpointPolicy:
    """The URLs a caller may make a service call (APT_ALLOWED_ENDPOINTS)."""

    allowed: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "EndpointPolicy":
        return cls(tuple(u.strip() for u in env.get(ENDPOINTS_SETTING, "").split(",") if u.strip()))

    @classmethod
    def from_settings(cls, settings) -> "EndpointPolicy":
        return cls(tuple(settings.allowed_endpoints))

    def check(self, url: str, what: str) -> str:
        """``url`` when an operator allowed it: same scheme, host and port as an allowed entry,
        and a path under the entry's path. PermissionDenied otherwise."""
        scheme, host, port, path = _origin(url)
        for entry in self.allowed:
            a_scheme, a_host, a_port, a_path = _origin(entry)
            if (scheme, host, port) == (a_scheme, a_host, a_port) and (
                    not a_path or path == a_path or path.startswith(a_path + "/")):
                return url
        listed = ", ".join(self.allowed) if self.allowed else "none are set"
        raise errors.PermissionDenied(
            f"The {what} {url!r} is not an endpoint callers may pick ({ENDPOINTS_SETTING}: {listed}). "
            f"Leave it empty to use the service's configured endpoint, or ask an operator to add it "
            f"to {ENDPOINTS_SETTING}.")
