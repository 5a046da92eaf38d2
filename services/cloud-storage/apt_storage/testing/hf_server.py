"""LocalHfHubApiServer: a local server implementing the subset of the Hugging Face Hub HTTP API
that huggingface_hub's HfApi uses for this plugin, with the LFS "basic" transfer (no Xet):

- ``GET  /api/models/{repo}``                        repo info (RepoNotFound when missing)
- ``POST /api/models/{repo}/preupload/{rev}``        upload modes (lfs above ``lfs_threshold`` bytes)
- ``POST /{repo}.git/info/lfs/objects/batch``        LFS batch; objects already stored get no action
- ``PUT  /lfs-upload/{oid}``, ``POST /lfs-verify``   the basic transfer (sha256 checked on arrival)
- ``POST /api/models/{repo}/commit/{rev}``           ndjson commit (header, file, lfsFile)
- ``GET  /api/models/{repo}/tree/{rev}[/{path}]``    file listing (recursive)
- ``HEAD|GET /{repo}/resolve/{rev}/{path}``          downloads with X-Repo-Commit and ETag

Bearer-token auth as the Hub answers it. Used because the real Hub is unreachable from tests;
the real huggingface_hub client speaks HTTP to it.
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


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _HfHandler(QuietHandler):
    def _json(self, status: int, doc, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(doc).encode(), headers, content_type="application/json")

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.api.record(self.command, self.path)
        data = self.body() if self.command in ("PUT", "POST") else b""
        if path.startswith("/lfs-"):  # pre-signed style URLs handed out by the batch call
            return self._lfs(path, data)
        auth = self.headers.get("Authorization", "")
        if auth != f"Bearer {self.api.token}":
            return self._error(401, "", "Invalid credentials in Authorization header")
        routes = [
            ("GET", rf"^/api/models/{_REPO}(/revision/[^/]+)?$", self._info),
            ("POST", rf"^/api/models/{_REPO}/preupload/[^/]+$", self._preupload),
            ("POST", rf"^/{_REPO}\.git/info/lfs/objects/batch$", self._batch),
            ("POST", rf"^/api/models/{_REPO}/commit/[^/]+$", self._commit),
            ("GET", rf"^/api/models/{_REPO}/tree/[^/]+(?P<path>/.*)?$", self._tree),
            ("HEAD", rf"^/{_REPO}/resolve/[^/]+/(?P<path>.+)$", self._resolve),
            ("GET", rf"^/{_REPO}/resolve/[^/]+/(?P<path>.+)$", self._resolve),
        ]
        for method, pattern, fn in routes:
            m = re.match(pattern, path)
            if m and method == self.command:
                files = self.api.repos.get(m["repo"])
                if files is None:
                    return self._error(404, "RepoNotFound", "Repository not found")
                return fn(m, files, data, parse_qs(url.query))
        return self._error(404, "", f"{self.command} {path} is not implemented by this local server")

    def _info(self, m, files, data, query) -> None:
        self._json(200, {"id": m["repo"], "modelId": m["repo"], "sha": self.api.commit, "private": True,
                         "siblings": [{"rfilename": p} for p in sorted(files)]})

    def _preupload(self, m, files, data, query) -> None:
        doc = json.loads(data)
        self._json(200, {"files": [{"path": f["path"], "shouldIgnore": False,
                                    "uploadMode": "lfs" if f["size"] > self.api.lfs_threshold else "regular"}
                                   for f in doc["files"]]})

    def _batch(self, m, files, data, query) -> None:
        objects = []
        for obj in json.loads(data)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.api.lfs:  # already stored: no action, the client skips it
                entry["actions"] = {"upload": {"href": f"{self.api.url}/lfs-upload/{obj['oid']}"},
                                    "verify": {"href": f"{self.api.url}/lfs-verify"}}
            objects.append(entry)
        self._json(200, {"transfer": "basic", "objects": objects})

    def _lfs(self, path: str, data: bytes) -> None:
        if self.command == "PUT" and path.startswith("/lfs-upload/"):
            oid = path.rsplit("/", 1)[1]
            if hashlib.sha256(data).hexdigest() != oid:
                return self._error(400, "", "sha256 of the body differs from the object id")
            self.api.lfs[oid] = data
            return self.send(200, b"", {})
        if self.command == "POST" and path == "/lfs-verify":
            oid = json.loads(data)["oid"]
            return self._json(200 if oid in self.api.lfs else 404, {})
        return self._error(404, "", "unknown LFS route")

    def _commit(self, m, files, data, query) -> None:
        staged = {}
        for line in data.decode().splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif item["key"] == "lfsFile":
                blob = self.api.lfs.get(value["oid"])
                if blob is None:
                    return self._error(400, "", f"LFS object {value['oid']} of {value['path']} was never uploaded")
                staged[value["path"]] = blob
        files.update(staged)
        self.api.commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
        self._json(200, {"commitUrl": f"{self.api.url}/{m['repo']}/commit/{self.api.commit}",
                         "commitOid": self.api.commit, "success": True})

    def _tree(self, m, files, data, query) -> None:
        base = (m["path"] or "").strip("/")
        chosen = [p for p in sorted(files) if not base or p.startswith(base + "/")]
        if base and not chosen:
            return self._error(404, "EntryNotFound", f"{base} does not exist")
        out = []
        for p in chosen:
            blob = files[p]
            entry = {"type": "file", "path": p, "size": len(blob), "oid": git_blob_sha1(blob)}
            if len(blob) > self.api.lfs_threshold:
                entry["lfs"] = {"oid": hashlib.sha256(blob).hexdigest(), "size": len(blob), "pointerSize": 134}
            out.append(entry)
        self._json(200, out)

    def _resolve(self, m, files, data, query) -> None:
        blob = files.get(m["path"])
        if blob is None:
            return self._error(404, "EntryNotFound", f"{m['path']} does not exist")
        headers = {"X-Repo-Commit": self.api.commit, "ETag": f'"{hashlib.sha256(blob).hexdigest()}"',
                   "Content-Length": str(len(blob)), "Content-Type": "application/octet-stream"}
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(blob)

    do_GET = do_PUT = do_POST = do_HEAD = _dispatch


class LocalHfHubApiServer(LocalServer):
    """``with LocalHfHubApiServer(token, repos=["org/models"]) as hub: HfApi(endpoint=hub.url, ...)``."""

    handler_cls = _HfHandler

    def __init__(self, token: str, repos: list[str], lfs_threshold: int = 64 * 1024):
        super().__init__()
        self.token = token
        self.repos: dict[str, dict[str, bytes]] = {r: {} for r in repos}
        self.lfs: dict[str, bytes] = {}
        self.lfs_threshold = lfs_threshold
        self.commit = uuid.uuid4().hex + uuid.uuid4().hex[:8]
