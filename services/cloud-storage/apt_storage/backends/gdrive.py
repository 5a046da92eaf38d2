"""Google Drive (API v3, plain HTTP; google-auth signs the requests): ``gdrive://<folder-id>/path``.

Drive holds a tree of named files, not keys: a key ``a/b/c.bin`` is the file ``c.bin`` in the
folder ``b`` in the folder ``a`` under the URI's folder, folders created on demand. Files are
sent with Drive's resumable protocol: files.create (or files.update) with
``uploadType=resumable`` returns a session URI, chunks go out as PUTs with ``Content-Range``,
and Drive answers 308 with ``Range: bytes=0-N``, the bytes it holds. The session URI is kept
in the service's own state folder (never at the destination: it is a capability to write
that file), so a cancelled backup asks Drive what it holds and goes on from byte N + 1.
Every file's md5 as Drive computed it is checked against the local bytes after an upload and
against the downloaded bytes on restore; restore also checks the manifest's sha256.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from urllib.parse import urlsplit

import google.auth.exceptions
import google.auth.transport.requests
import requests
from google.oauth2 import credentials as oauth2_credentials
from google.oauth2 import service_account

from apt_model import errors
from apt_storage.backends.base import Backend, ObjectInfo, UploadItem, write_chunks
from apt_storage.progress import TransferProgress
from apt_storage.retry import with_retries

DEFAULT_ENDPOINT = "https://www.googleapis.com"
SCOPES = ("https://www.googleapis.com/auth/drive",)
FOLDER = "application/vnd.google-apps.folder"
CHUNK_UNIT = 256 << 10  # Drive wants every chunk but the last to be a multiple of 256 KiB
_FILE_FIELDS = "id,name,mimeType,size,md5Checksum,modifiedTime,appProperties"
_SHARED = {"supportsAllDrives": "true"}  # folders in shared drives work like My Drive ones
_TRANSIENT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded", "backendError", "internalError"}
_DOWNLOAD_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"bytes=0-(\d+)")


class DriveHttpError(Exception):
    """A Drive answer other than the one expected; ``reason`` is Drive's ``errors[0].reason``."""

    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status, self.reason, self.message = status, reason, message

    @classmethod
    def of(cls, resp: requests.Response) -> "DriveHttpError":
        try:
            err = resp.json().get("error", {})
            reason = (err.get("errors") or [{}])[0].get("reason", "") or str(err.get("status", ""))
            return cls(resp.status_code, reason, str(err.get("message", "")))
        except (ValueError, AttributeError):
            return cls(resp.status_code, "", resp.text[:200])


def _q_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_credentials(creds) -> tuple[object | None, str]:
    """(google-auth credentials or None, the variable they came from) for the scheme's values.

    ``GOOGLE_APPLICATION_CREDENTIALS`` is Google's variable: the path of a service-account or
    OAuth authorized-user JSON file (a mounted secret file holds the JSON itself);
    ``GDRIVE_ACCESS_TOKEN`` is an OAuth access token.
    """
    raw = creds.get("GOOGLE_APPLICATION_CREDENTIALS")
    if raw:
        var = "GOOGLE_APPLICATION_CREDENTIALS"
        try:
            text = raw if raw.lstrip().startswith("{") else Path(raw).read_text(encoding="utf-8")
            info = json.loads(text)
            if info.get("type") == "service_account":
                return service_account.Credentials.from_service_account_info(info, scopes=SCOPES), var
            if info.get("type") == "authorized_user":
                return oauth2_credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES), var
            raise ValueError(f"type {info.get('type')!r} is neither service_account nor authorized_user")
        except (OSError, ValueError, KeyError) as exc:
            raise errors.PermissionDenied(
                f"{var} does not hold usable Google credentials ({type(exc).__name__}); point it at a "
                "service-account or authorized-user JSON file (values are not shown).") from None
    token = creds.get("GDRIVE_ACCESS_TOKEN")
    if token:
        return oauth2_credentials.Credentials(token=token), "GDRIVE_ACCESS_TOKEN"
    return None, ""


class GDriveBackend(Backend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.root_id = self.dest.container
        self.endpoint = (self.options.endpoint_url or self.source.env("GDRIVE_ENDPOINT")
                         or DEFAULT_ENDPOINT).rstrip("/")
        self.google_creds, self.cred_var = load_credentials(self.creds)
        self.http = requests.Session()
        self._auth_request = google.auth.transport.requests.Request(self.http)
        self._folders: dict[str, str] = {"": self.root_id}  # folder path -> id
        self._folder_lock = threading.Lock()

    def describe(self) -> str:
        return f"gdrive://{self.root_id} at {self.endpoint}"

    # --- HTTP -------------------------------------------------------------------------
    def _send(self, method: str, url: str, expect: tuple[int, ...] = (200,), **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if self.google_creds is not None:
            self.google_creds.before_request(self._auth_request, method, url, headers)
        resp = self.http.request(method, url, headers=headers, timeout=(10, 120), **kwargs)
        if resp.status_code not in expect:
            raise DriveHttpError.of(resp)
        return resp

    def _call(self, fn, action: str):
        """One request (or a few) with retries; a final failure becomes a platform error."""
        try:
            return with_retries(fn, self.options.retry, self._is_transient, action)
        except errors.AptError:
            raise
        except (DriveHttpError, requests.RequestException, google.auth.exceptions.GoogleAuthError) as exc:
            raise self._map_error(exc, action) from exc

    def _is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (requests.ConnectionError, requests.Timeout, google.auth.exceptions.TransportError)):
            return True
        return isinstance(exc, DriveHttpError) and (
            exc.status >= 500 or exc.status == 429 or exc.reason in _TRANSIENT_REASONS)

    def _map_error(self, exc: BaseException, action: str) -> errors.AptError:
        where = self.describe()
        which = self.cred_var or "GOOGLE_APPLICATION_CREDENTIALS or GDRIVE_ACCESS_TOKEN"
        if isinstance(exc, google.auth.exceptions.TransportError):
            return errors.Unavailable(
                f"Cannot {action}: Google's token endpoint is unreachable ({type(exc).__name__}); check "
                "the network, then run the command again.")
        if isinstance(exc, google.auth.exceptions.GoogleAuthError):
            return errors.PermissionDenied(
                f"Cannot {action}: Google refused the credentials from {which} ({type(exc).__name__}); "
                "check that variable (values are not shown).")
        if isinstance(exc, requests.RequestException):
            return errors.Unavailable(
                f"Cannot {action}: {where} is unreachable ({type(exc).__name__}). Check the endpoint "
                "and the network, then run the command again; backups resume.")
        assert isinstance(exc, DriveHttpError)
        if exc.status == 401:
            return errors.PermissionDenied(
                f"Cannot {action}: {where} refused the credentials ({exc.reason or 401}). Check {which} "
                "(values are not shown); a caller-picked endpoint_url gets no credentials.")
        if exc.reason == "storageQuotaExceeded":
            return errors.ResourceExhausted(
                f"Cannot {action}: the Drive storage quota at {where} is used up. Free space or raise "
                "the quota, then run the command again; backups resume.")
        if exc.status == 403:
            return errors.PermissionDenied(
                f"Cannot {action}: {where} answered 403 {exc.reason}; share the folder with the account "
                f"behind {which} (as editor).")
        if exc.status == 404:
            return errors.NotFound(f"Cannot {action}: not found in {where}; check the folder id.")
        if self._is_transient(exc):
            return errors.Unavailable(f"Cannot {action}: {where} answered {exc.status}; try again later.")
        return errors.FailedPrecondition(
            self.creds.redact(f"Cannot {action}: {where} answered {exc.status} {exc.reason}: {exc.message}"))

    # --- the folder tree ----------------------------------------------------------------
    def _children(self, folder_id: str, name: str = "") -> list[dict]:
        q = f"{_q_literal(folder_id)} in parents and trashed = false"
        if name:
            q += f" and name = {_q_literal(name)}"
        out, token = [], ""
        while True:
            params = {"q": q, "fields": f"nextPageToken,files({_FILE_FIELDS})", "pageSize": "1000",
                      "includeItemsFromAllDrives": "true", **_SHARED, **({"pageToken": token} if token else {})}
            page = self._send("GET", f"{self.endpoint}/drive/v3/files", params=params).json()
            out += page.get("files", [])
            token = page.get("nextPageToken", "")
            if not token:
                return out

    def _folder(self, path: str, create: bool) -> str | None:
        """The id of the folder at ``path`` ('/'-separated, under the root), created when asked."""
        with self._folder_lock:  # parallel restores and uploads share the cache
            if path in self._folders:
                return self._folders[path]
            parent_path, _, name = path.rpartition("/")
        parent = self._folder(parent_path, create)
        if parent is None:
            return None
        with self._folder_lock:
            if path in self._folders:
                return self._folders[path]
            found = [f for f in self._children(parent, name) if f.get("mimeType") == FOLDER]
            if found:
                self._folders[path] = found[0]["id"]
            elif create:
                meta = {"name": name, "mimeType": FOLDER, "parents": [parent]}
                self._folders[path] = self._send("POST", f"{self.endpoint}/drive/v3/files",
                                                 params={"fields": "id", **_SHARED}, json=meta).json()["id"]
            else:
                return None
            return self._folders[path]

    def _file(self, key: str) -> dict | None:
        """Drive's metadata of the file at ``key``, None when there is none."""
        folder_path, _, name = key.rpartition("/")
        folder = self._folder(folder_path, create=False)
        if folder is None:
            return None
        found = [f for f in self._children(folder, name) if f.get("mimeType") != FOLDER]
        return found[0] if found else None

    # --- Backend ------------------------------------------------------------------------
    def check(self) -> None:
        def run() -> None:
            meta = self._send("GET", f"{self.endpoint}/drive/v3/files/{self.root_id}",
                              params={"fields": "id,mimeType", **_SHARED}).json()
            if meta.get("mimeType") != FOLDER:
                raise errors.FailedPrecondition(f"{self.root_id} is a file on Drive, not a folder.")
        self._call(run, f"open folder {self.root_id}")

    def list(self, prefix: str) -> list[ObjectInfo]:
        def run() -> list[ObjectInfo]:
            start = self._folder(prefix.strip("/"), create=False)
            out: list[ObjectInfo] = []
            todo = [(prefix.strip("/"), start)] if start else []
            while todo:
                path, folder_id = todo.pop()
                for f in self._children(folder_id):
                    key = f"{path}/{f['name']}" if path else f["name"]
                    if f.get("mimeType") == FOLDER:
                        todo.append((key, f["id"]))
                    else:
                        out.append(ObjectInfo(key, int(f.get("size", 0)), f.get("modifiedTime", "")))
            return sorted(out, key=lambda o: o.key)
        return self._call(run, f"list folder {self.root_id}")

    def read_bytes(self, key: str) -> bytes | None:
        def run() -> bytes | None:
            meta = self._file(key)
            if meta is None:
                return None
            return self._send("GET", f"{self.endpoint}/drive/v3/files/{meta['id']}",
                              params={"alt": "media", **_SHARED}).content
        return self._call(run, f"read {key}")

    def write_bytes(self, key: str, data: bytes) -> None:
        def run() -> None:
            uri = self._start_session(key, len(data), "")
            meta = self._send("PUT", uri, expect=(200, 201), data=data,
                              headers={"Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}" if data
                                       else "bytes */0"}).json()
            if meta.get("md5Checksum") != hashlib.md5(data, usedforsecurity=False).hexdigest():
                raise errors.DataLoss(f"Drive's md5 of {key} does not match the bytes sent; run the command again.")
        self._call(run, f"write {key}")

    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        for item in items:
            progress.check_cancelled()
            existing = self._call(lambda: self._file(item.key), f"inspect {item.key}")
            if (existing and int(existing.get("size", -1)) == item.size
                    and (existing.get("appProperties") or {}).get("sha256") == item.sha256):
                progress.add_skipped(item.size)
                continue
            self._upload_one(item, progress)

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        def run() -> None:
            meta = self._file(key)
            if meta is None:
                raise errors.NotFound(f"{key} is missing from {self.describe()}.")
            resp = self._send("GET", f"{self.endpoint}/drive/v3/files/{meta['id']}",
                              params={"alt": "media", **_SHARED}, stream=True)
            md5 = hashlib.md5(usedforsecurity=False)
            with resp:
                write_chunks(resp.iter_content(_DOWNLOAD_CHUNK), target, progress, md5.update)
            if md5.hexdigest() != meta.get("md5Checksum"):
                raise errors.DataLoss(
                    f"{key} from {self.describe()} does not match the md5 Drive recorded for it "
                    f"({md5.hexdigest()[:12]}… instead of {str(meta.get('md5Checksum'))[:12]}…); "
                    "nothing was restored. Restore another tag or back the model up again.")
        self._call(run, f"download {key}")

    # --- resumable sessions -------------------------------------------------------------
    def _start_session(self, key: str, size: int, sha256: str) -> str:
        """A new resumable session for ``key`` (files.update when a file is already there)."""
        folder_path, _, name = key.rpartition("/")
        existing = self._file(key)
        meta: dict = {"appProperties": {"sha256": sha256}} if sha256 else {}
        headers = {"X-Upload-Content-Length": str(size), "X-Upload-Content-Type": "application/octet-stream"}
        params = {"uploadType": "resumable", "fields": _FILE_FIELDS, **_SHARED}
        if existing:
            resp = self._send("PATCH", f"{self.endpoint}/upload/drive/v3/files/{existing['id']}",
                              params=params, json=meta, headers=headers)
        else:
            meta.update(name=name, parents=[self._folder(folder_path, create=True)])
            resp = self._send("POST", f"{self.endpoint}/upload/drive/v3/files", params=params,
                              json=meta, headers=headers)
        uri = resp.headers.get("Location", "")
        self._check_session_uri(uri)
        return uri

    def _check_session_uri(self, uri: str) -> None:
        """Chunks (and the token) go only to the endpoint the session was opened at."""
        a, b = urlsplit(uri), urlsplit(self.endpoint)
        if (a.scheme, a.netloc) != (b.scheme, b.netloc):
            raise errors.FailedPrecondition(
                f"{self.describe()} handed out an upload session at another host ({a.netloc or 'none'}); "
                "refusing to send the file there.")

    def _upload_one(self, item: UploadItem, progress: TransferProgress) -> None:
        record = _state_file(self.state_dir, self, item) if self.state_dir else None
        uri, offset, meta = "", 0, None
        if record is not None and record.is_file():
            uri = json.loads(record.read_text(encoding="utf-8"))["uri"]
            self._check_session_uri(uri)
            status = self._call(lambda: self._received(uri, item.size), f"resume upload of {item.key}")
            if status is None:
                uri = ""  # the session expired (Drive keeps them a week): start again
            else:
                offset, meta = status
        if not uri:
            uri = self._call(lambda: self._start_session(item.key, item.size, item.sha256),
                             f"start upload of {item.key}")
            if record is not None:
                _write_private(record, json.dumps({"uri": uri, "key": item.key}).encode())
        try:
            _ResumableSend(self, item, uri, progress).run(offset, meta)
        except errors.DataLoss:
            if record is not None:
                record.unlink(missing_ok=True)
            raise
        if record is not None:
            record.unlink(missing_ok=True)

    def _received(self, uri: str, size: int) -> tuple[int, dict | None] | None:
        """(bytes Drive holds, the file when it is complete) of a session; None once it expired."""
        resp = self._send("PUT", uri, expect=(200, 201, 308, 404, 410), headers={"Content-Range": f"bytes */{size}"})
        if resp.status_code in (404, 410):
            return None
        if resp.status_code in (200, 201):
            return size, resp.json()
        return acknowledged(resp), None

    def close(self) -> None:
        self.http.close()


def acknowledged(resp: requests.Response) -> int:
    """The byte after the last one Drive holds, from a 308's ``Range: bytes=0-N`` (none: 0)."""
    match = _RANGE_RE.fullmatch(resp.headers.get("Range", "").strip())
    return int(match.group(1)) + 1 if match else 0


class _ResumableSend:
    """The chunk loop of one session: every byte hashed once (sha256 against the store, md5
    against Drive's), only bytes past Drive's acknowledged range sent."""

    def __init__(self, backend: GDriveBackend, item: UploadItem, uri: str, progress: TransferProgress):
        self.b, self.item, self.uri, self.progress = backend, item, uri, progress
        self.chunk = max(CHUNK_UNIT, backend.options.part_size // CHUNK_UNIT * CHUNK_UNIT)
        self.sha = hashlib.sha256()
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.hashed = 0  # bytes of the file fed to both hashes

    def _hash(self, offset: int, data: bytes) -> None:
        if offset + len(data) > self.hashed:
            new = data[self.hashed - offset:]
            self.sha.update(new)
            self.md5.update(new)
            self.hashed += len(new)

    def run(self, offset: int, meta: dict | None) -> None:
        item = self.item
        with open(item.path, "rb") as fh:
            while self.hashed < offset:  # what Drive already holds: hashed here, never sent
                block = fh.read(min(self.chunk, offset - self.hashed))
                if not block:
                    break
                self._hash(self.hashed, block)
                self.progress.add_skipped(len(block), part=True)
            while meta is None:
                self.progress.check_cancelled()
                retrying = [False]

                def step() -> tuple[int, dict | None]:
                    at = offset
                    if retrying[0]:  # a failed chunk may have landed in part: ask Drive first
                        status = self.b._received(self.uri, item.size)
                        if status is None:
                            raise errors.Unavailable(f"The upload session of {item.key} expired; run the "
                                                     "command again to start it anew.")
                        at = status[0]
                    retrying[0] = True
                    return self._put(fh, at)
                start = offset
                offset, meta = self.b._call(step, f"upload {item.key} at byte {offset}")
                self.progress.add_sent(max(offset - start, 0), part=True)
        if self.sha.hexdigest() != item.sha256 or self.md5.hexdigest() != meta.get("md5Checksum"):
            self.b._call(lambda: self.b._send("DELETE", f"{self.b.endpoint}/drive/v3/files/{meta['id']}",
                                             expect=(200, 204), params=_SHARED), f"remove {item.key}")
            changed = "; the local file changed too" if self.sha.hexdigest() != item.sha256 else ""
            raise errors.DataLoss(
                f"Drive's md5 of {item.key} ({str(meta.get('md5Checksum'))[:12]}…) does not match the local "
                f"bytes ({self.md5.hexdigest()[:12]}…){changed}; the file was removed. Run the backup again.")

    def _put(self, fh, offset: int) -> tuple[int, dict | None]:
        size = self.item.size
        fh.seek(offset)
        data = fh.read(min(self.chunk, size - offset))
        self._hash(offset, data)
        end = offset + len(data)
        if end >= size and self.sha.hexdigest() != self.item.sha256:
            # the last chunk completes the file: never with bytes the store did not record
            self.b._send("DELETE", self.uri, expect=(499, 200, 204, 404, 410))
            raise errors.DataLoss(
                f"{self.item.path.name} changed since the store recorded it (sha256 "
                f"{self.sha.hexdigest()[:12]}… instead of {self.item.sha256[:12]}…); run 'apt-model verify' "
                "on the model and recreate it before backing it up.")
        resp = self.b._send("PUT", self.uri, expect=(200, 201, 308), data=data,
                            headers={"Content-Range": f"bytes {offset}-{end - 1}/{size}" if data
                                     else f"bytes */{size}"})
        if resp.status_code in (200, 201):
            return size, resp.json()
        return acknowledged(resp), None


def _state_file(state_dir: Path, backend: GDriveBackend, item: UploadItem) -> Path:
    """Where the session of ``item`` is remembered: one file per (endpoint, folder, key, content)."""
    ident = "\n".join((backend.endpoint, backend.root_id, item.key, item.sha256, str(item.size)))
    return state_dir / f"{hashlib.sha256(ident.encode()).hexdigest()[:32]}.json"


def _write_private(path: Path, data: bytes) -> None:
    """Session URIs let anyone write the file: only the service's user may read them."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(path.with_suffix(".tmp"), path)
