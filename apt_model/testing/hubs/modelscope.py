"""LocalModelScopeServer: a local HTTP server implementing the subset of the ModelScope Hub HTTP
API that the modelscope SDK uses in both hub plugins (huggingface-integration: snapshot download
and folder push; cloud-storage: ``modelscope_hub.HubApi`` repo info, listing, download and upload):

- ``GET  /openapi/v1/models/{owner}/{name}``                  repo info (OpenAPI envelope)
- ``GET  /api/v1/models/{owner}/{name}``                       repo info (legacy envelope)
- ``POST /api/v1/models``                                      create a model repo (Path, Name, Visibility)
- ``GET  /api/v1/models/{repo}/repo/files``                    recursive file listing with Sha256
- ``HEAD|GET /api/v1/models/{repo}/repo?FilePath=...``         file download (Range honoured)
- ``POST /api/v1/repos/models/{repo}/info/lfs/objects/batch``  blob validation (no action = stored)
- ``PUT  /ms-lfs/{sha256}``                                    blob upload (sha256 checked)
- ``POST /api/v1/repos/models/{repo}/commit/{revision}``       commit of create actions

Answers come in ModelScope's JSON envelope (``{"Code", "Message", "Success", "Data"}``). Tokens
are accepted as ``Authorization: Bearer`` or the ``m_session_id`` cookie, as the service does: an
unknown token gets 401, a private repo 401 without a valid token, an unknown repo or revision
404; writing needs a valid token, and creating a repo a token whose ``namespaces`` entry names
the repo's owner (403 otherwise; an existing repo gets 400 with ModelScope's "already exists"
code). It is not ModelScope; the real client talks HTTP to it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from apt_model.testing.http_server import LocalServer, QuietHandler

_REPO = r"(?P<repo>[^/]+/[^/]+)"


@dataclass
class MsRepo:
    private: bool
    revisions: dict[str, dict[str, bytes]] = field(default_factory=dict)  # branch -> {path: content}
    commits: dict[str, str] = field(default_factory=dict)  # branch -> id of its last commit
    messages: dict[str, str] = field(default_factory=dict)  # branch -> message of its last commit

    def branch_of(self, revision: str) -> str | None:
        """The branch ``revision`` names, directly or by its last commit id."""
        if revision in self.revisions:
            return revision
        return next((b for b, c in self.commits.items() if c == revision), None)


class _MsHandler(QuietHandler):
    api: "LocalModelScopeServer"

    def _json(self, status: int, doc) -> None:
        self.send(status, json.dumps(doc).encode(), {"X-Request-ID": uuid.uuid4().hex},
                  content_type="application/json")

    def _envelope(self, status: int, data=None, message: str = "") -> None:
        self._json(status, {"Code": status, "Message": message or "success", "Success": status == 200,
                            "RequestId": uuid.uuid4().hex, "Data": data})

    def _token(self) -> str | None:
        """The caller's token: "" when anonymous, None when it is not one the server knows."""
        auth = self.headers.get("Authorization", "")
        cookie = re.search(r"m_session_id=([^;\s]+)", self.headers.get("Cookie", ""))
        token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else (cookie[1] if cookie else "")
        return token if not token or token in self.api.tokens else None

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        path, query = unquote(url.path), {k: v[0] for k, v in parse_qs(url.query).items()}
        self.api.record(self.command, self.path)
        data = self.body()  # always drained: an unread body would corrupt the next request
        token = self._token()
        if token is None:
            return self._envelope(401, message="Invalid access token; log in again.")
        if self.command == "POST" and path == "/api/v1/models":
            return self._create(token, json.loads(data or b"{}"))
        if self.command == "PUT" and path.startswith("/ms-lfs/"):
            if not token:
                return self._envelope(401, message="Uploading needs an access token.")
            return self._blob(path.rsplit("/", 1)[1], data)
        method = "GET" if self.command == "HEAD" else self.command
        for verb, pattern, fn, writes in _ROUTES:
            m = re.fullmatch(pattern, path)
            if not (m and verb == method):
                continue
            repo = self.api.repos.get(m["repo"])
            if repo is None:
                if fn is _MsHandler._openapi_info:
                    return self._json(404, {"success": False, "message": "model not found", "code": "NotFound"})
                return self._envelope(404, message=f"Model {m['repo']} not found")
            if (repo.private or writes) and not token:
                return self._envelope(401, message="Unauthorized: a valid access token is required")
            with self.api.lock:
                return fn(self, m, repo, data, query)
        self._envelope(404, message=f"{self.command} {path} is not implemented by this local server")

    do_GET = do_PUT = do_POST = do_HEAD = _dispatch

    def _branch(self, repo: MsRepo, query: dict) -> str | None:
        revision = query.get("Revision") or "master"
        branch = repo.branch_of(revision)
        if branch is None:
            self._envelope(404, message=f"Revision {revision} not found")
        return branch

    def _create(self, token: str, body: dict) -> None:
        repo_id = f"{body.get('Path', '')}/{body.get('Name', '')}"
        if not token:
            return self._envelope(401, message="Unauthorized: a valid access token is required")
        if body.get("Path") not in self.api.namespaces.get(token, ()):
            return self._envelope(403, message=f"No permission to create a model under {body.get('Path')!r}")
        with self.api.lock:
            if repo_id in self.api.repos:
                # ModelScope's business code for "model already exists" (the SDK's AlreadyExistsError)
                return self._json(400, {"Code": 10010101001, "Message": "Model already exists", "Success": False})
            self.api.repos[repo_id] = MsRepo(private=int(body.get("Visibility", 5)) == 1,
                                             revisions={"master": {}}, commits={"master": uuid.uuid4().hex})
        self._envelope(200, {"Path": body["Path"], "Name": body["Name"]})

    def _openapi_info(self, m, repo: MsRepo, data, query) -> None:
        owner, name = m["repo"].split("/")
        self._json(200, {"success": True, "data": {"id": m["repo"], "owner": owner, "name": name,
                                                     "private": repo.private}})

    def _legacy_info(self, m, repo: MsRepo, data, query) -> None:
        owner, name = m["repo"].split("/")
        self._envelope(200, {"Id": 1, "Path": owner, "Name": name, "Visibility": 1 if repo.private else 5})

    def _files(self, m, repo: MsRepo, data, query) -> None:
        if (branch := self._branch(repo, query)) is None:
            return
        files = repo.revisions[branch]
        root = query.get("Root", "").strip("/")
        self._envelope(200, {"Files": [
            {"Path": p, "Name": p.rsplit("/", 1)[-1], "Size": len(files[p]), "Type": "blob",
             "Sha256": hashlib.sha256(files[p]).hexdigest(), "Revision": repo.commits[branch]}
            for p in sorted(files) if not root or p.startswith(root + "/")]})

    def _download(self, m, repo: MsRepo, data, query) -> None:
        if (branch := self._branch(repo, query)) is None:
            return
        rel = query.get("FilePath", "")
        blob = repo.revisions[branch].get(rel)
        if blob is None:
            return self._envelope(404, message=f"File {rel} not found")
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng:
            start = int(rng[1])
            end = int(rng[2]) if rng[2] else len(blob) - 1
            part = blob[start:end + 1]
            return self.send(206, part, {"Content-Range": f"bytes {start}-{start + len(part) - 1}/{len(blob)}"},
                             content_type="application/octet-stream")
        self.send(200, blob, {}, content_type="application/octet-stream")

    def _batch(self, m, repo: MsRepo, data, query) -> None:
        objects = []
        for obj in json.loads(data)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.api.blobs:
                entry["actions"] = {"upload": {"href": f"{self.api.url}/ms-lfs/{obj['oid']}"}}
            objects.append(entry)
        self._envelope(200, {"objects": objects})

    def _blob(self, oid: str, data: bytes) -> None:
        if hashlib.sha256(data).hexdigest() != oid:
            return self._envelope(400, message="The body's sha256 differs from the blob id.")
        with self.api.lock:
            self.api.blobs[oid] = data
        self._envelope(200)

    def _commit(self, m, repo: MsRepo, data, query) -> None:
        branch = m["revision"]
        staged = {}
        for action in json.loads(data)["actions"]:
            if action["type"] == "lfs":
                blob = self.api.blobs.get(action["sha256"])
                if blob is None:
                    return self._envelope(400, message=f"Blob of {action['path']} was never uploaded.")
                staged[action["path"]] = blob
            else:
                staged[action["path"]] = base64.b64decode(action["content"])
        repo.revisions.setdefault(branch, {}).update(staged)
        repo.commits[branch] = uuid.uuid4().hex
        repo.messages[branch] = json.loads(data).get("commit_message", "")
        self._envelope(200, {"CommitId": repo.commits[branch]})


_ROUTES = [  # (method, path pattern, handler, whether it writes); HEAD is routed as GET
    ("GET", rf"/openapi/v1/models/{_REPO}", _MsHandler._openapi_info, False),
    ("GET", rf"/api/v1/models/{_REPO}", _MsHandler._legacy_info, False),
    ("GET", rf"/api/v1/models/{_REPO}/repo/files", _MsHandler._files, False),
    ("GET", rf"/api/v1/models/{_REPO}/repo", _MsHandler._download, False),
    ("POST", rf"/api/v1/repos/models/{_REPO}/info/lfs/objects/batch", _MsHandler._batch, True),
    ("POST", rf"/api/v1/repos/models/{_REPO}/commit/(?P<revision>[^/]+)", _MsHandler._commit, True),
]


class LocalModelScopeServer(LocalServer):
    """``with LocalModelScopeServer(tokens={token}) as ms: HubApi(endpoint=ms.url, token=token)``.

    ``namespaces`` maps a token to the owners it may create repos under (none when absent).
    """

    handler_cls = _MsHandler

    def __init__(self, tokens: set[str] | None = None, namespaces: dict[str, set[str]] | None = None):
        super().__init__()
        self.tokens = set(tokens or ())
        self.namespaces = {token: set(owners) for token, owners in (namespaces or {}).items()}
        self.repos: dict[str, MsRepo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content of the blobs uploaded

    def add_repo(self, repo_id: str, folder: Path | None = None, *, private: bool = False,
                 revision: str = "master", files: dict[str, bytes] | None = None) -> None:
        """Put ``folder``'s files (and ``files``) on branch ``revision`` of a repo, created when missing."""
        content = {p.relative_to(folder).as_posix(): p.read_bytes()
                   for p in sorted(Path(folder).rglob("*")) if p.is_file()} if folder is not None else {}
        content.update(files or {})
        with self.lock:
            repo = self.repos.setdefault(repo_id, MsRepo(private))
            repo.revisions[revision] = content
            repo.commits[revision] = uuid.uuid4().hex

    def branch_files(self, repo_id: str, branch: str = "master") -> dict[str, bytes]:
        """The live files of ``branch``: a test changes the repo behind a client's back through it."""
        return self.repos[repo_id].revisions[branch]
