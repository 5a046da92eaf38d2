"""Settings of a service or of the CLI, read once from the environment at the entry point.

Never read at import time: ``Settings.from_env()`` is called by ``main`` functions only.
Unknown ``APT_*`` variables are rejected so a typo does not silently fall back to a default.
"""

from __future__ import annotations

import os
import secrets
import shutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Callable, Iterable, Union

from apt_model import errors

DEFAULT_GATEWAY = "127.0.0.1:50051"
MiB = 1 << 20

# Variables consumed elsewhere (deployers, CLI) that Settings tolerates but does not parse.
_OTHER_KNOWN = {
    "APT_IMAGE_PREFIX", "APT_IMAGE_TAG", "APT_DOCKER_NETWORK", "APT_STORE_VOLUME",
    "APT_DOCKER_HOST_PORTS", "APT_K8S_NAMESPACE", "APT_DEBUG",
    "APT_GATEWAY", "APT_TLS_CA", "APT_PLUGIN_PYTHON",
    "APT_WHEELHOUSE", "APT_GATEWAY_PORT", "APT_DEMO_PORT", "APT_DEMO_STEPS", "APT_ROUTER_THREADS",
    "APT_PLUGIN_DIR", "APT_WHEEL_PORT",  # docker/run_plugin.py in plugin images; docker/imagebuild.py
    "APT_IMAGE",  # a plugin pod's own image (kubernetes deployer): its multi-node jobs' pods run it
}

# Settings.from_env(declared=...): plugin settings to tolerate, or how to find them from the settings
Declared = Union[Iterable[str], Callable[["Settings"], Iterable[str]]]


@dataclass(frozen=True)
class Settings:
    home: Path = Path(".apt")                # APT_HOME: the model store and local state
    listen: str = "127.0.0.1:50051"          # APT_LISTEN: host:port to bind (port 0 = any free)
    token: str = ""                          # APT_TOKEN: bearer token for gateway users
    admin_token: str = ""                    # APT_ADMIN_TOKEN: for plugin install/uninstall
    internal_token: str = ""                 # APT_INTERNAL_TOKEN: gateway -> plugin calls
    tls_cert: str = ""                       # APT_TLS_CERT: PEM path; TLS when set with the key
    tls_key: str = ""                        # APT_TLS_KEY
    max_message_bytes: int = 64 * MiB        # APT_MAX_MESSAGE_BYTES: per message, both ways
    grace_seconds: float = 10.0              # APT_GRACE_SECONDS: SIGTERM drain time
    job_workers: int = 2                     # APT_JOB_WORKERS: jobs run at once in this service
    deployer: str = "local"                  # APT_DEPLOYER: local | docker | kubernetes
    plugin_path: tuple[str, ...] = ()        # APT_PLUGIN_PATH: extra catalogue folders (os.pathsep)
    log_level: str = "INFO"                  # APT_LOG_LEVEL
    log_json: bool = True                    # APT_LOG_JSON: structured JSON log lines
    health_interval: float = 5.0             # APT_HEALTH_INTERVAL: gateway's plugin health poll, s
    install_timeout: float = 120.0           # APT_INSTALL_TIMEOUT: wait for a plugin to serve, s
    threads: int = 0                         # APT_THREADS: torch CPU threads (0 = torch default)
    router: str = "native"                   # APT_ROUTER: native (apt-router data plane) | python
    router_bin: str = ""                     # APT_ROUTER_BIN: the apt-router binary (default: found)
    # -- the trust boundary (README "Security") -------------------------------------------------
    data_roots: tuple[str, ...] = ()         # APT_DATA_ROOTS: host folders callers may name (os.pathsep); none by default
    allowed_endpoints: tuple[str, ...] = ()  # APT_ALLOWED_ENDPOINTS: URLs callers may pick (comma-separated); none by default
    secrets_dir: Path | None = None          # APT_SECRETS_DIR: generated tokens (default: beside APT_HOME, never in it)
    allow_plaintext: bool = False            # APT_ALLOW_PLAINTEXT: let the gateway serve plaintext on a non-loopback address
    publish_addr: str = ""                   # APT_PUBLISH_ADDR: host address a container's port is published on (compose)
    max_model_params: int = 10_000_000_000   # APT_MAX_MODEL_PARAMS: largest model a config may describe
    store_quota: int = 0                     # APT_STORE_QUOTA: bytes the store may hold (0 = the disk's free space)
    max_queued_jobs: int = 64                # APT_MAX_QUEUED_JOBS: jobs waiting per service before RESOURCE_EXHAUSTED
    max_uploads: int = 8                     # APT_MAX_UPLOADS: uploads the gateway receives at once
    upload_idle_seconds: float = 60.0        # APT_UPLOAD_IDLE_SECONDS: an upload silent this long is dropped
    # Plugin settings (a plugin.yaml's ``settings:``) found in the environment, as given: a plugin's
    # own, or in the gateway those of every catalogue plugin, which it passes on (Registry.plugin_env).
    plugin_env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, *, declared: Declared = (), **overrides) -> "Settings":
        """``declared``: the plugin settings to tolerate besides the shared ones, or a function of
        the settings parsed so far giving them (the gateway's catalogue depends on APT_PLUGIN_PATH)."""
        env = dict(os.environ if env is None else env)
        for attr, var in _TOKEN_FILES.items():  # mounted secret files (Kubernetes/compose secrets)
            if var in env:
                if f"APT_{attr.upper()}" in env:
                    raise errors.InvalidArgument(f"Set APT_{attr.upper()} or {var}, not both.")
                env[f"APT_{attr.upper()}"] = _read_secret_file(var, env.pop(var))
        values: dict = {}
        unknown: list[str] = []
        for key, raw in env.items():
            if not key.startswith("APT_"):
                continue
            if key in _PARSERS:
                attr, parse = _PARSERS[key]
                try:
                    values[attr] = parse(raw)
                except ValueError as exc:
                    raise errors.InvalidArgument(f"{key}={raw!r} is not valid: {exc}") from exc
            elif key not in _OTHER_KNOWN:
                unknown.append(key)
        values.update(overrides)
        settings = cls(**values)
        if unknown:
            tolerated = set(declared(settings) if callable(declared) else declared)
            rejected = sorted(k for k in unknown if k not in tolerated)
            if rejected:
                known = ", ".join(sorted([*_PARSERS, *_OTHER_KNOWN, *tolerated]))
                raise errors.InvalidArgument(
                    f"Unknown setting {rejected[0]}; known APT_* variables: {known}. A plugin's own settings "
                    "are the ones its plugin.yaml declares (settings:).")
            settings = settings.replace(plugin_env={k: env[k] for k in sorted(unknown)})
        if settings.deployer not in ("local", "docker", "kubernetes"):
            raise errors.InvalidArgument(
                f"APT_DEPLOYER={settings.deployer!r}; use local, docker or kubernetes."
            )
        if settings.router not in ("native", "python"):
            raise errors.InvalidArgument(f"APT_ROUTER={settings.router!r}; use native or python.")
        for root in settings.data_roots:
            if not os.path.isabs(root):
                raise errors.InvalidArgument(f"APT_DATA_ROOTS entry {root!r} is not an absolute path.")
        if bool(settings.tls_cert) != bool(settings.tls_key):
            raise errors.InvalidArgument("Set both APT_TLS_CERT and APT_TLS_KEY for TLS, or neither.")
        return settings

    def replace(self, **changes) -> "Settings":
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data.update(changes)
        return Settings(**data)


_TOKEN_FILES = {"token": "APT_TOKEN_FILE", "admin_token": "APT_ADMIN_TOKEN_FILE",
                "internal_token": "APT_INTERNAL_TOKEN_FILE"}


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be a positive integer")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError("must be a positive number")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


# variable -> (Settings field, parser of its text)
_PARSERS = {
    "APT_HOME": ("home", Path),
    "APT_LISTEN": ("listen", str),
    "APT_TOKEN": ("token", str),
    "APT_ADMIN_TOKEN": ("admin_token", str),
    "APT_INTERNAL_TOKEN": ("internal_token", str),
    "APT_TLS_CERT": ("tls_cert", str),
    "APT_TLS_KEY": ("tls_key", str),
    "APT_MAX_MESSAGE_BYTES": ("max_message_bytes", int),
    "APT_GRACE_SECONDS": ("grace_seconds", float),
    "APT_JOB_WORKERS": ("job_workers", int),
    "APT_DEPLOYER": ("deployer", str),
    "APT_PLUGIN_PATH": ("plugin_path", lambda v: tuple(p for p in v.split(os.pathsep) if p)),
    "APT_LOG_LEVEL": ("log_level", str.upper),
    "APT_LOG_JSON": ("log_json", lambda v: v.lower() not in ("0", "false", "no")),
    "APT_HEALTH_INTERVAL": ("health_interval", float),
    "APT_INSTALL_TIMEOUT": ("install_timeout", float),
    "APT_THREADS": ("threads", int),
    "APT_ROUTER": ("router", str.lower),
    "APT_ROUTER_BIN": ("router_bin", str),
    "APT_DATA_ROOTS": ("data_roots", lambda v: tuple(p for p in v.split(os.pathsep) if p)),
    "APT_ALLOWED_ENDPOINTS": ("allowed_endpoints", lambda v: tuple(u.strip() for u in v.split(",") if u.strip())),
    "APT_SECRETS_DIR": ("secrets_dir", Path),
    "APT_ALLOW_PLAINTEXT": ("allow_plaintext", _flag),
    "APT_PUBLISH_ADDR": ("publish_addr", str.strip),
    "APT_MAX_MODEL_PARAMS": ("max_model_params", _positive_int),
    "APT_STORE_QUOTA": ("store_quota", _non_negative_int),
    "APT_MAX_QUEUED_JOBS": ("max_queued_jobs", _positive_int),
    "APT_MAX_UPLOADS": ("max_uploads", _positive_int),
    "APT_UPLOAD_IDLE_SECONDS": ("upload_idle_seconds", _positive_float),
}
# The platform's own variables, tokens among them: no plugin.yaml may declare one (a declared
# variable is passed to the plugin, so declaring APT_ADMIN_TOKEN would hand it the admin token).
SHARED_VARIABLES = frozenset({*_PARSERS, *_OTHER_KNOWN, *_TOKEN_FILES.values()})


def _read_secret_file(var: str, path: str) -> str:
    try:
        value = Path(path).read_text().strip()
    except OSError as exc:
        raise errors.InvalidArgument(f"{var}={path!r} cannot be read ({exc.strerror}).") from exc
    if not value:
        raise errors.InvalidArgument(f"{var}={path!r} is empty; put the token in it (make secrets writes them).")
    return value


def secrets_dir(home: Path, configured: Path | None = None) -> Path:
    """Where generated tokens live: ``APT_SECRETS_DIR``, else ``.<home>-secrets`` beside APT_HOME.

    Never inside APT_HOME: plugins share that folder (a volume in containers) and callers name
    paths in its models/, datasets/ and exports/ folders, so a token there is a token read.
    """
    if configured is not None:
        return Path(configured)
    home = Path(home).absolute()
    return home.parent / f".{home.name.lstrip('.') or 'apt'}-secrets"


def _adopt_legacy_secrets(home: Path, folder: Path) -> None:
    """Move tokens an older version generated in ``APT_HOME/secrets`` out of the store's reach."""
    legacy = Path(home) / "secrets"
    if not legacy.is_dir():
        return
    for path in legacy.iterdir():
        if path.name in _TOKEN_FILES and not (folder / path.name).exists():
            os.replace(path, folder / path.name)
    shutil.rmtree(legacy, ignore_errors=True)


def ensure_local_tokens(settings: Settings) -> Settings:
    """Fill missing tokens from the secrets folder (created 0700, tokens 0600, on first start)."""
    folder = secrets_dir(settings.home, settings.secrets_dir)
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    _adopt_legacy_secrets(settings.home, folder)
    values = {}
    for attr in ("token", "admin_token", "internal_token"):
        if getattr(settings, attr):
            continue
        path = folder / attr
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        values[attr] = path.read_text().strip()
    return settings.replace(**values) if values else settings


def read_local_token(home: Path, which: str = "token", configured: Path | None = None) -> str:
    path = secrets_dir(home, configured) / which
    return path.read_text().strip() if path.exists() else ""
