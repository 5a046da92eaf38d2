"""Cloud credentials from the environment or mounted secret files; never logged or returned.

For every variable ``VAR`` the value is taken, in order, from ``VAR`` itself, from the file
named by ``VAR_FILE`` (the Docker/Kubernetes secret convention), or from the file
``$CLOUD_STORAGE_SECRETS_DIR/VAR`` (default ``/run/secrets``). Files are re-read for every
job so rotated secrets take effect without a restart.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from apt_model import errors
from apt_model.trust import EndpointPolicy

SECRETS_DIR_VAR = "CLOUD_STORAGE_SECRETS_DIR"
DEFAULT_SECRETS_DIR = "/run/secrets"

# The variables each scheme reads; the secret ones are redacted wherever text leaves the service.
VARIABLES = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    "oss": ("OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"),
    "hf": ("HF_TOKEN",),
    "modelscope": ("MODELSCOPE_API_TOKEN",),
    # a service-account or authorized-user JSON file (Google's variable), or an OAuth access token
    "gdrive": ("GOOGLE_APPLICATION_CREDENTIALS", "GDRIVE_ACCESS_TOKEN"),
    "file": (),
}
SECRET_VARIABLES = frozenset(v for names in VARIABLES.values() for v in names if not v.endswith("_ID"))


@dataclass(frozen=True)
class Credentials:
    """Resolved values for one scheme. ``repr`` never shows them."""

    values: dict[str, str] = field(default_factory=dict, repr=False)

    def get(self, name: str) -> str:
        return self.values.get(name, "")

    def redact(self, text: str) -> str:
        """``text`` with every credential value (ids included) replaced by ``***``."""
        for value in sorted(self.values.values(), key=len, reverse=True):
            if len(value) >= 4:
                text = text.replace(value, "***")
        return text


class CredentialSource:
    """Where credentials come from; built once at the entry point from the environment."""

    def __init__(self, environ: Mapping[str, str]):
        self._env = dict(environ)
        self.endpoints = EndpointPolicy.from_env(self._env)  # what callers may pick as endpoint_url
        self._secrets_dir = Path(self._env.get(SECRETS_DIR_VAR, DEFAULT_SECRETS_DIR))

    def _lookup(self, name: str) -> str:
        if self._env.get(name):
            return self._env[name].strip()
        pointer = self._env.get(f"{name}_FILE")
        if pointer:
            try:
                return Path(pointer).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise errors.FailedPrecondition(
                    f"{name}_FILE points at {pointer}, which cannot be read ({exc.strerror}); "
                    "mount the secret there or unset the variable."
                ) from exc
        candidate = self._secrets_dir / name
        if candidate.is_file():
            return candidate.read_text(encoding="utf-8").strip()
        return ""

    def for_scheme(self, scheme: str) -> Credentials:
        return Credentials({n: v for n in VARIABLES[scheme] if (v := self._lookup(n))})

    def env(self, name: str) -> str:
        """A non-secret setting such as an endpoint (``AWS_ENDPOINT_URL``, ``OSS_ENDPOINT``)."""
        return self._env.get(name, "")
