"""A small client for the Ollama REST API endpoints that create a model from a GGUF.

``HEAD /api/blobs/sha256:<hex>`` (200 present, 404 absent), ``POST /api/blobs/sha256:<hex>``
with the raw bytes (201 created, 400 digest mismatch), and ``POST /api/create`` with
``{model, files, template, system, parameters}``, which streams ``{"status": ...}`` lines
ending in ``success`` (or an ``{"error": ...}`` line). Standard library only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

from apt_model import errors

_NAME = re.compile(r"^(?:[a-zA-Z0-9][a-zA-Z0-9._-]*/)?[a-zA-Z0-9][a-zA-Z0-9._-]*(?::[a-zA-Z0-9][a-zA-Z0-9._-]{0,127})?$")
_CHUNK = 1 << 20


def check_url(url: str) -> str:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise errors.InvalidArgument(f"Ollama URL {url!r} must look like http://host:11434.")
    return url.rstrip("/")


def check_model_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise errors.InvalidArgument(
            f"{name!r} is not a valid Ollama model name; use e.g. 'mymodel', 'mymodel:q8_0' or 'me/mymodel:latest'."
        )
    return name


class _ProgressReader:
    """A file wrapper that reports bytes read and lets the caller abort between chunks."""

    def __init__(self, path: Path, on_bytes: Callable[[int], None]):
        self._fh = open(path, "rb")
        self._on_bytes = on_bytes
        self._sent = 0

    def read(self, size: int = -1) -> bytes:
        """Up to ``_CHUNK`` bytes, whatever ``size`` asks (http.client asks 8 KiB and sends each
        read until an empty one): a progress report and a cancel check per MiB, not per 8 KiB."""
        chunk = self._fh.read(_CHUNK)
        self._sent += len(chunk)
        self._on_bytes(self._sent)
        return chunk

    def close(self) -> None:
        self._fh.close()


class OllamaClient:
    def __init__(self, base_url: str, timeout: float = 600.0):
        self.base_url = check_url(base_url)
        self.timeout = timeout

    def _open(self, method: str, path: str, data=None, headers: dict | None = None):
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=headers or {})
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError:
            raise  # a status the caller interprets
        except (urllib.error.URLError, OSError) as exc:
            raise errors.Unavailable(
                f"Cannot reach Ollama at {self.base_url} ({getattr(exc, 'reason', exc)}). Start it with "
                "'ollama serve' or pass the right --ollama-url."
            ) from exc

    def has_blob(self, digest: str) -> bool:
        try:
            with self._open("HEAD", f"/api/blobs/{digest}"):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise errors.Unavailable(f"Ollama answered {exc.code} to HEAD /api/blobs/{digest}.") from exc

    def push_blob(self, path: Path, digest: str, on_bytes: Callable[[int], None] = lambda _n: None) -> None:
        size = path.stat().st_size
        body = _ProgressReader(path, on_bytes)
        try:
            with self._open("POST", f"/api/blobs/{digest}", data=body,
                            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"}) as resp:
                if resp.status not in (200, 201):
                    raise errors.Unavailable(f"Ollama answered {resp.status} to the blob upload.")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            if exc.code == 400:
                raise errors.DataLoss(f"Ollama rejected the upload of {path.name}: {detail or 'digest mismatch'}. "
                                      "The file changed while uploading; export again.") from exc
            raise errors.Unavailable(f"Ollama answered {exc.code} to the blob upload: {detail}") from exc
        finally:
            body.close()

    def create(self, model: str, files: dict[str, str], *, template: str | None, system: str | None,
               parameters: dict) -> Iterator[str]:
        """POST /api/create; yields each status line; raises when it ends without success."""
        payload: dict = {"model": check_model_name(model), "files": files, "stream": True}
        if template is not None:
            payload["template"] = template
        if system:
            payload["system"] = system
        if parameters:
            payload["parameters"] = parameters
        data = json.dumps(payload).encode()
        try:
            resp = self._open("POST", "/api/create", data=data, headers={"Content-Type": "application/json"})
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")[:300]
            raise errors.FailedPrecondition(f"Ollama refused to create {model!r} ({exc.code}): {detail}") from exc
        last = ""
        with resp:
            for raw in resp:
                if not raw.strip():
                    continue
                msg = json.loads(raw)
                if "error" in msg:
                    raise errors.FailedPrecondition(f"Ollama could not create {model!r}: {msg['error']}")
                last = msg.get("status", "")
                yield last
        if last != "success":
            raise errors.Unavailable(f"Ollama's create stream for {model!r} ended without 'success' (last: {last!r}).")
