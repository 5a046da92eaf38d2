"""One backend module per scheme; ``open_backend`` is the only way the logic reaches them.

Modules are imported on first use so that, e.g., a broken modelscope install does not stop
S3 backups.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from apt_model.trust import same_endpoint
from apt_storage.backends.base import Backend, TransferOptions
from apt_storage.credentials import Credentials, CredentialSource
from apt_storage.uri import Destination

# scheme -> (module, class)
_BACKENDS = {
    "s3": ("apt_storage.backends.s3", "S3Backend"),
    "oss": ("apt_storage.backends.oss", "OssBackend"),
    "hf": ("apt_storage.backends.hf", "HfBackend"),
    "modelscope": ("apt_storage.backends.modelscope", "ModelScopeBackend"),
    "gdrive": ("apt_storage.backends.gdrive", "GDriveBackend"),
    "file": ("apt_storage.backends.local", "LocalBackend"),
}


# scheme -> the variables that configure its endpoint on the service, and the default endpoint
ENDPOINT_SETTINGS = {
    "s3": (("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"), ""),
    "oss": (("OSS_ENDPOINT",), ""),
    "hf": (("HF_ENDPOINT",), "https://huggingface.co"),
    "modelscope": (("MODELSCOPE_ENDPOINT",), "https://www.modelscope.cn"),
    "gdrive": (("GDRIVE_ENDPOINT",), "https://www.googleapis.com"),
    "file": ((), ""),
}


def configured_endpoint(scheme: str, source: CredentialSource) -> str:
    """The endpoint the operator configured for ``scheme`` (the one its credentials are for)."""
    names, default = ENDPOINT_SETTINGS[scheme]
    return next((source.env(n) for n in names if source.env(n)), default)


def open_backend(dest: Destination, options: TransferOptions, source: CredentialSource,
                 state_dir: Path | None = None) -> Backend:
    """The backend for ``dest``. A caller-picked ``endpoint_url`` other than the configured one
    must be on APT_ALLOWED_ENDPOINTS, and gets no credentials: they are sent only to the
    endpoint they are configured for (a caller could otherwise collect them)."""
    module, cls = _BACKENDS[dest.scheme]
    backend_cls = getattr(importlib.import_module(module), cls)
    creds = source.for_scheme(dest.scheme)
    if options.endpoint_url and not same_endpoint(options.endpoint_url, configured_endpoint(dest.scheme, source)):
        source.endpoints.check(options.endpoint_url, "endpoint_url")
        creds = Credentials()
    return backend_cls(dest, options, creds, source, state_dir)
