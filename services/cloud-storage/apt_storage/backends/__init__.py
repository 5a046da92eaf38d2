"""One backend module per scheme; ``open_backend`` is the only way the logic reaches them.

Modules are imported on first use so that, e.g., a broken modelscope install does not stop
S3 backups.
"""

from __future__ import annotations

import importlib

from apt_storage.backends.base import Backend, TransferOptions
from apt_storage.credentials import CredentialSource
from apt_storage.uri import Destination

# scheme -> (module, class)
_BACKENDS = {
    "s3": ("apt_storage.backends.s3", "S3Backend"),
    "oss": ("apt_storage.backends.oss", "OssBackend"),
    "hf": ("apt_storage.backends.hf", "HfBackend"),
    "modelscope": ("apt_storage.backends.modelscope", "ModelScopeBackend"),
    "file": ("apt_storage.backends.local", "LocalBackend"),
}


def open_backend(dest: Destination, options: TransferOptions, source: CredentialSource) -> Backend:
    module, cls = _BACKENDS[dest.scheme]
    backend_cls = getattr(importlib.import_module(module), cls)
    return backend_cls(dest, options, source.for_scheme(dest.scheme), source)
