"""LocalGDriveApiServer: a local server implementing the subset of the Google Drive API v3 that
the cloud-storage plugin's Drive backend uses — files.get (metadata and ``alt=media``),
files.list with ``'<id>' in parents and trashed = false [and name = '<n>']`` queries and page
tokens, metadata-only files.create (folders), files.create / files.update with
``uploadType=resumable`` (session URI in ``Location``, chunks as PUTs with ``Content-Range``,
``308`` + ``Range: bytes=0-N`` until the last one, ``bytes */N`` status queries, 256 KiB chunk
multiples), files.delete, Drive's JSON error bodies (``authError``, ``storageQuotaExceeded``,
``notFound``) and bearer tokens. Also the OAuth token endpoint for a service account's signed JWT.

It exists because Google Drive cannot be reached from the test machines; it is not a mock of
our code: the backend talks HTTP to it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qs, parse_qsl, urlsplit

from apt_model.testing.http_server import LocalServer, QuietHandler

FOLDER = "application/vnd.google-apps.folder"
CHUNK_UNIT = 256 << 10
_Q_RE = re.compile(r"^'((?:[^'\\]|\\.)*)' in parents and trashed = false(?: and name = '((?:[^'\\]|\\.)*)')?$")
_RANGE_RE = re.compile(r"^bytes (?:(\d+)-(\d+)|\*)/(\d+)$")


def _unq(v: str) -> str:
    return re.sub(r"\\(.)", r"\1", v)


@dataclass
class DriveFile:
    id: str
    name: str
    parents: list[str]
    mime: str
    data: bytes = b""
    app_properties: dict[str, str] = field(default_factory=dict)
    md5: str = ""  # what Drive recorded on upload; a test may change ``data`` behind its back
    modified: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def resource(self) -> dict:
        out = {"kind": "drive#file", "id": self.id, "name": self.name, "mimeType": self.mime,
               "parents": self.parents, "modifiedTime": self.modified, "appProperties": self.app_properties}
        if self.mime != FOLDER:
            out.update(size=str(len(self.data)), md5Checksum=self.md5)
        return out


@dataclass
class Session:
    total: int
    meta: dict
    file_id: str = ""  # files.update: the file whose content is replaced
    received: bytearray = field(default_factory=bytearray)


class _DriveHandler(QuietHandler):
    def _json(self, status: int, doc: dict, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(doc).encode(), headers, content_type="application/json; charset=UTF-8")

    def _error(self, status: int, reason: str, message: str) -> None:
        self._json(status, {"error": {"code": status, "message": message,
                                      "errors": [{"domain": "global", "reason": reason, "message": message}]}})

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.api.record(self.command, self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        data = self.body() if self.command in ("PUT", "POST", "PATCH") else b""
        with self.api.lock:
            self.api.chunks.append((self.command, self.headers.get("Content-Range", ""), len(data)))
            self.api.seen_auth.append(self.headers.get("Authorization", ""))
        if url.path == "/token":
            return self._token(data)
        if self.api.token and self.headers.get("Authorization") != f"Bearer {self.api.token}":
            return self._error(401, "authError", "Invalid Credentials")
        parts = url.path.strip("/").split("/")
        with self.api.lock:
            if parts[:4] == ["upload", "drive", "v3", "files"]:
                if "upload_id" in params:
                    return self._chunk(params["upload_id"], data)
                return self._open_session(parts[4] if len(parts) > 4 else "", params, data)
            if parts[:3] != ["drive", "v3", "files"]:
                return self._error(404, "notFound", "Unknown path.")
            if len(parts) == 3 and self.command == "GET":
                return self._list(params)
            if len(parts) == 3 and self.command == "POST":
                meta = json.loads(data)
                f = self.api.add(meta["name"], meta.get("parents", ["root"])[0], meta.get("mimeType", ""))
                return self._json(200, {"id": f.id})
            f = self.api.files.get(parts[3])
            if f is None:
                return self._error(404, "notFound", f"File not found: {parts[3]}.")
            if self.command == "DELETE":
                del self.api.files[f.id]
                return self.send(204, b"", {"Content-Length": "0"})
            if params.get("alt") == "media":
                return self.send(200, f.data, content_type="application/octet-stream")
            return self._json(200, f.resource())

    def _token(self, data: bytes) -> None:
        """Service-account grant: an RS256 JWT signed with the key ``signer_pem`` is the public half of."""
        form = {k: v[0] for k, v in parse_qs(data.decode()).items()}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or not self._signed(
                form.get("assertion", "")):
            return self._json(400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."})
        self._json(200, {"access_token": self.api.token, "expires_in": 3599, "token_type": "Bearer"})

    def _signed(self, assertion: str) -> bool:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        head, body, sig = (assertion.split(".") + ["", "", ""])[:3]
        key = serialization.load_pem_public_key(self.api.signer_pem)
        try:
            key.verify(base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4)), f"{head}.{body}".encode(),
                       padding.PKCS1v15(), hashes.SHA256())
            return True
        except (InvalidSignature, ValueError):
            return False

    def _list(self, params: dict[str, str]) -> None:
        m = _Q_RE.match(params.get("q", ""))
        if not m:
            return self._error(400, "invalidParameter", f"Query not supported here: {params.get('q')!r}")
        parent, name = _unq(m.group(1)), _unq(m.group(2)) if m.group(2) is not None else None
        hits = [f for f in self.api.files.values() if parent in f.parents and (name is None or f.name == name)]
        start, size = int(params.get("pageToken") or 0), min(int(params.get("pageSize") or 100), self.api.page_size)
        doc = {"kind": "drive#fileList", "files": [f.resource() for f in hits[start:start + size]]}
        if start + size < len(hits):
            doc["nextPageToken"] = str(start + size)
        self._json(200, doc)

    def _open_session(self, file_id: str, params: dict[str, str], data: bytes) -> None:
        if params.get("uploadType") != "resumable":
            return self._error(400, "badRequest", "Only uploadType=resumable is served here.")
        total = int(self.headers.get("X-Upload-Content-Length", "0"))
        if file_id and file_id not in self.api.files:
            return self._error(404, "notFound", f"File not found: {file_id}.")
        if self.api.used() + total > self.api.quota_bytes:
            return self._error(403, "storageQuotaExceeded", "The user's Drive storage quota has been exceeded.")
        sid = uuid.uuid4().hex
        self.api.sessions[sid] = Session(total, json.loads(data) if data else {}, file_id)
        self.send(200, b"", {"Location": f"{self.api.url}/upload/drive/v3/files?uploadType=resumable&upload_id={sid}",
                             "Content-Length": "0"})

    def _chunk(self, sid: str, data: bytes) -> None:
        s = self.api.sessions.get(sid)
        if s is None:
            return self._error(404, "notFound", "Upload session not found or expired.")
        if self.command == "DELETE":
            del self.api.sessions[sid]
            return self.send(499, b"", {"Content-Length": "0"})
        m = _RANGE_RE.match(self.headers.get("Content-Range", ""))
        if not m or int(m.group(3)) != s.total:
            return self._error(400, "badContentRange", "Content-Range does not match the session.")
        if m.group(1) is not None:
            start, end = int(m.group(1)), int(m.group(2))
            if self.api.fail_next_chunks > 0:
                self.api.fail_next_chunks -= 1
                return self._error(503, "backendError", "Backend Error")
            if end - start + 1 != len(data) or start > len(s.received):
                return self._error(400, "badContentRange", "The chunk does not continue the bytes received.")
            if end + 1 < s.total and len(data) % CHUNK_UNIT:
                return self._error(400, "badContentRange", "Chunks must be multiples of 256 KiB.")
            keep = data[len(s.received) - start:]
            if self.api.ack_short > 0 and end + 1 < s.total:  # Drive may keep less than it was sent
                self.api.ack_short -= 1
                keep = keep[:len(keep) // 2]
            s.received += keep
        if len(s.received) < s.total:
            headers = {"Content-Length": "0"}
            if s.received:
                headers["Range"] = f"bytes=0-{len(s.received) - 1}"
            return self.send(308, b"", headers)
        del self.api.sessions[sid]
        if s.file_id:
            f = self.api.files[s.file_id]
        else:
            f = self.api.add(s.meta["name"], s.meta["parents"][0], "application/octet-stream")
        if self.api.flip_next_upload:  # bytes damaged on the way in: Drive's md5 is of what it got
            self.api.flip_next_upload = False
            s.received[-1] ^= 1
        f.data, f.md5 = bytes(s.received), hashlib.md5(bytes(s.received)).hexdigest()
        f.app_properties.update(s.meta.get("appProperties", {}))
        self._json(200, f.resource())

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch


class LocalGDriveApiServer(LocalServer):
    """``with LocalGDriveApiServer(token="t") as drive: drive.folder("backups")`` — a folder id."""

    handler_cls = _DriveHandler

    def __init__(self, token: str, signer_pem: bytes = b"", quota_bytes: int = 1 << 40, page_size: int = 1000):
        super().__init__()
        self.token = token                  # the only access token accepted
        self.signer_pem = signer_pem        # the service account's public key (PEM): /token hands out ``token``
        self.quota_bytes = quota_bytes
        self.page_size = page_size          # files.list answers at most this many per page
        self.files: dict[str, DriveFile] = {}
        self.sessions: dict[str, Session] = {}
        self.chunks: list[tuple[str, str, int]] = []  # (method, Content-Range, body bytes) as received
        self.seen_auth: list[str] = []  # the Authorization header of every request
        self.fail_next_chunks = 0  # the next N chunk PUTs answer 503 (retry tests)
        self.ack_short = 0         # the next N chunks are only half kept (308 with a shorter Range)
        self.flip_next_upload = False  # the next completed upload is stored with its last bit flipped

    def add(self, name: str, parent: str, mime: str) -> DriveFile:
        f = DriveFile(uuid.uuid4().hex[:20], name, [parent], mime)
        self.files[f.id] = f
        return f

    def folder(self, name: str) -> str:
        return self.add(name, "root", FOLDER).id

    def used(self) -> int:
        return sum(len(f.data) for f in self.files.values())

    def find(self, root: str, path: str) -> DriveFile | None:
        """The file at ``path`` under the folder ``root``, by names."""
        current = root
        for name in path.split("/"):
            hit = next((f for f in self.files.values() if current in f.parents and f.name == name), None)
            if hit is None:
                return None
            current = hit.id
        return self.files[current]
