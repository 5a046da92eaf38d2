"""LocalModelScopeApiServer: a local server implementing the subset of the ModelScope Hub HTTP
API that ``modelscope_hub.HubApi`` uses for this plugin (model repositories, branch master):

- ``GET  /openapi/v1/models/{owner}/{name}``                  repo info (OpenAPI envelope)
- ``GET  /api/v1/models/{owner}/{name}``                       repo info (legacy envelope)
- ``GET  /api/v1/models/{repo}/repo/files``                    recursive file listing with Sha256
- ``POST /api/v1/repos/models/{repo}/info/lfs/objects/batch``  blob validation (no action = stored)
- ``PUT  /ms-lfs/{sha256}``                                    blob upload (sha256 checked)
- ``POST /api/v1/repos/models/{repo}/commit/{revision}``       commit of create actions
- ``GET  /api/v1/models/{repo}/repo?FilePath=...``             file download (Range honoured)

Tokens are accepted as ``Authorization: Bearer`` or the ``m_session_id`` cookie, as the
service does. Used because ModelScope is unreachable from tests; the real client talks HTTP to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from urllib.parse import parse_qs, unquote, urlsplit

from apt_storage.testing.http_base import LocalServer, QuietHandler

_REPO = r"(?P<repo>[^/]+/[^/]+)"


class _MsHandler(QuietHandler):
    def _json(self, status: int, doc) -> None:
        self.send(status, json.dumps(doc).encode(), {"X-Request-ID": uuid.uuid4().hex},
                  content_type="application/json")

    def _legacy_error(self, status: int, message: str) -> None:
        self._json(status, {"Code": status, "Message": message, "Success": False,
                            "RequestId": uuid.uuid4().hex})

    def _token_ok(self) -> bool:
        token = self.api.token
        if self.headers.get("Authorization", "") == f"Bearer {token}":
            return True
        return f"m_session_id={token}" in self.headers.get("Cookie", "")

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        self.api.record(self.command, self.path)
        data = self.body() if self.command in ("PUT", "POST") else b""
        if not self._token_ok():
            return self._legacy_error(401, "Invalid access token; log in again.")
        if self.command == "PUT" and path.startswith("/ms-lfs/"):
            return self._blob(path.rsplit("/", 1)[1], data)
        routes = [
            ("GET", rf"^/openapi/v1/models/{_REPO}$", self._openapi_info),
            ("GET", rf"^/api/v1/models/{_REPO}$", self._legacy_info),
            ("GET", rf"^/api/v1/models/{_REPO}/repo/files$", self._files),
            ("POST", rf"^/api/v1/repos/models/{_REPO}/info/lfs/objects/batch$", self._batch),
            ("POST", rf"^/api/v1/repos/models/{_REPO}/commit/[^/]+$", self._commit),
            ("GET", rf"^/api/v1/models/{_REPO}/repo$", self._download),
        ]
        for method, pattern, fn in routes:
            m = re.match(pattern, path)
            if m and method == self.command:
                files = self.api.repos.get(m["repo"])
                if files is None:
                    if fn == self._openapi_info:
                        return self._json(404, {"success": False, "message": "model not found",
                                                "code": "NotFound"})
                    return self._legacy_error(404, f"Model {m['repo']} not found")
                return fn(m, files, data, query)
        return self._legacy_error(404, f"{self.command} {path} is not implemented by this local server")

    def _openapi_info(self, m, files, data, query) -> None:
        owner, name = m["repo"].split("/")
        self._json(200, {"success": True, "data": {"id": m["repo"], "owner": owner, "name": name,
                                                     "private": True}})

    def _legacy_info(self, m, files, data, query) -> None:
        owner, name = m["repo"].split("/")
        self._json(200, {"Code": 200, "Success": True, "Data": {"Id": 1, "Path": owner, "Name": name,
                                                                  "Visibility": 1}})

    def _files(self, m, files, data, query) -> None:
        root = query.get("Root", [""])[0].strip("/")
        chosen = [p for p in sorted(files) if not root or p.startswith(root + "/")]
        self._json(200, {"Code": 200, "Success": True, "Data": {"Files": [
            {"Path": p, "Name": p.rsplit("/", 1)[-1], "Size": len(files[p]), "Type": "blob",
             "Sha256": hashlib.sha256(files[p]).hexdigest(), "Revision": self.api.commit}
            for p in chosen]}})

    def _batch(self, m, files, data, query) -> None:
        objects = []
        for obj in json.loads(data)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.api.blobs:
                entry["actions"] = {"upload": {"href": f"{self.api.url}/ms-lfs/{obj['oid']}"}}
            objects.append(entry)
        self._json(200, {"Code": 200, "Success": True, "Data": {"objects": objects}})

    def _blob(self, oid: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != oid:
            return self._legacy_error(400, "The body's sha256 differs from the blob id.")
        self.api.blobs[oid] = data
        self._json(200, {"Code": 200, "Success": True})

    def _commit(self, m, files, data, query) -> None:
        staged = {}
        for action in json.loads(data)["actions"]:
            if action["type"] == "lfs":
                blob = self.api.blobs.get(action["sha256"])
                if blob is None:
                    return self._legacy_error(400, f"Blob of {action['path']} was never uploaded.")
                staged[action["path"]] = blob
            else:
                staged[action["path"]] = base64.b64decode(action["content"])
        files.update(staged)
        self.api.commit = uuid.uuid4().hex
        self._json(200, {"Code": 200, "Success": True, "Data": {"CommitId": self.api.commit}})

    def _download(self, m, files, data, query) -> None:
        rel = query.get("FilePath", [""])[0]
        blob = files.get(rel)
        if blob is None:
            return self._legacy_error(404, f"File {rel} not found")
        rng = re.match(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng:
            start = int(rng[1])
            end = int(rng[2]) if rng[2] else len(blob) - 1
            part = blob[start:end + 1]
            return self.send(206, part, {"Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(blob)}"},
                             content_type="application/octet-stream")
        self.send(200, blob, {}, content_type="application/octet-stream")

    do_GET = do_PUT = do_POST = do_HEAD = _dispatch


class LocalModelScopeApiServer(LocalServer):
    """``with LocalModelScopeApiServer(token, repos=["org/models"]) as ms: HubApi(endpoint=ms.url, ...)``."""

    handler_cls = _MsHandler

    def __init__(self, token: str, repos: list[str]):
        super().__init__()
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {r: {} for r in repos}
        self.blobs: dict[str, bytes] = {}
        self.commit = uuid.uuid4().hex
