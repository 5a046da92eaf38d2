"""LocalHfHubServer: a local HTTP server implementing the subset of the Hugging Face Hub API
that huggingface_hub's download, create-repo and commit calls use.

It is not the Hub and not a mock of this project: it is a small in-memory git-like store
speaking the Hub's HTTP protocol (repo info, tree listing, resolve with Range, create repo,
branch, preupload, LFS batch + basic PUT transfer, ndjson commit, YAML check), so the real
client library runs unmodified against it in tests. Tokens and private repos behave the
way the Hub answers them: 404 RepoNotFound for unknown repos, 401 for private repos without
a valid token, 401 "Invalid credentials" for an unknown token, 403 for a read-only token
that writes.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse


def git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class RepoFileEntry:
    data: bytes
    lfs: bool

    @property
    def oid(self) -> str:  # what the preupload endpoint reports for an existing file
        return hashlib.sha256(self.data).hexdigest() if self.lfs else git_blob_sha(self.data)


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    owner: str
    branches: dict[str, str] = field(default_factory=dict)  # branch -> commit sha
    commits: dict[str, dict[str, RepoFileEntry]] = field(default_factory=dict)  # sha -> files


class LocalHfHubServer:
    """Start with ``with LocalHfHubServer(tokens={...}) as hub: hub.url``."""

    LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".arrow", ".pt")

    def __init__(self, tokens: dict[str, tuple[str, bool]] | None = None):
        # token -> (user name, may write)
        self.tokens = dict(tokens or {})
        self.repos: dict[tuple[str, str], Repo] = {}
        self.lfs_objects: dict[str, bytes] = {}
        self.lfs_bytes_received = 0
        self.requests: list[str] = []
        self.down = False  # True: every request gets 503, as from a Hub in an outage
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "LocalHfHubServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- test set-up -------------------------------------------------------------------
    def add_repo(self, repo_id: str, folder: Path | None = None, *, private: bool = False,
                 owner: str = "alice", repo_type: str = "model", files: dict[str, bytes] | None = None) -> str:
        """Create a repo holding ``folder``'s files (and ``files``) on ``main``; returns the commit sha."""
        repo = Repo(repo_type, repo_id, private, owner)
        content = {}
        if folder is not None:
            for p in sorted(Path(folder).rglob("*")):
                if p.is_file():
                    content[p.relative_to(folder).as_posix()] = p.read_bytes()
        content.update(files or {})
        with self._lock:
            self.repos[(repo_type, repo_id)] = repo
            return self._commit(repo, "main", {k: self._entry(k, v) for k, v in content.items()}, "initial")

    def _entry(self, path: str, data: bytes) -> RepoFileEntry:
        lfs = path.endswith(self.LFS_SUFFIXES) or len(data) > 1_000_000
        if lfs:
            self.lfs_objects[hashlib.sha256(data).hexdigest()] = data
        return RepoFileEntry(data, lfs)

    def _commit(self, repo: Repo, branch: str, files: dict[str, RepoFileEntry], message: str) -> str:
        parent = repo.branches.get(branch, "")
        listing = json.dumps({"parent": parent, "message": message,
                              "files": {k: v.oid for k, v in sorted(files.items())}})
        sha = hashlib.sha1(listing.encode()).hexdigest()
        repo.commits[sha] = files
        repo.branches[branch] = sha
        return sha

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        repo = self.repos[(repo_type, repo_id)]
        sha = repo.branches.get(revision, revision)
        return {k: v.data for k, v in repo.commits[sha].items()}


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


def _make_handler(hub: LocalHfHubServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            return

        # -- plumbing ----------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                  content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode(), headers)

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _body(self) -> bytes:
            return self.body

        def _user(self) -> tuple[str, bool] | None | bool:
            """(user, can_write), None when anonymous, False when the token is unknown."""
            auth = self.headers.get("Authorization", "")
            if not auth.startswith("Bearer "):
                return None
            return hub.tokens.get(auth[len("Bearer "):], False)

        def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo | None:
            """The repo when this caller may see it (and write it); otherwise answers and returns None."""
            user = self._user()
            if user is False:
                self._error(401, "", "Invalid credentials in Authorization header")
                return None
            repo = hub.repos.get((repo_type, repo_id))
            visible = repo is not None and (not repo.private or (user and user[0] == repo.owner))
            if not visible:
                if user is None:
                    # like the Hub: anonymous callers get 401 whether the repo is private or missing
                    self._error(401, "RepoNotFound", "Repository not found")
                else:
                    self._error(404, "RepoNotFound", "Repository not found")
                return None
            if write and not (user and user[1] and user[0] == repo.owner):
                self._error(403, "", "You don't have the rights to write to this repo")
                return None
            return repo

        def _resolve(self, repo: Repo, revision: str) -> str | None:
            revision = unquote(revision)
            sha = repo.branches.get(revision) or (revision if revision in repo.commits else None)
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
            return sha

        # -- routes --------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_GET(self) -> None:
            self._route("GET")

        def do_POST(self) -> None:
            self._route("POST")

        def do_PUT(self) -> None:
            self._route("PUT")

        def _route(self, method: str) -> None:
            url = urlparse(self.path)
            path = url.path
            hub.requests.append(f"{method} {path}")
            # always drain the body: an unread body would corrupt the next request on this connection
            n = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(n) if n else b""
            if hub.down:
                self._error(503, "", "Service Unavailable")
                return
            with hub._lock:
                for pattern, handler in ROUTES:
                    if handler.__name__.startswith(method.lower()) or (
                            method == "HEAD" and handler.__name__.startswith("get")):
                        m = re.fullmatch(pattern, path)
                        if m:
                            handler(self, parse_qs(url.query), **m.groupdict())
                            return
            self._error(404, "", f"no route for {method} {path}")

        def get_info(self, query, rtype: str, repo_id: str, revision: str = "main") -> None:
            repo = self._repo(_TYPES[rtype], repo_id)
            if repo and (sha := self._resolve(repo, revision or "main")):
                files = repo.commits[sha]
                self._json(200, {"id": repo_id, "sha": sha, "private": repo.private,
                                 "siblings": [{"rfilename": k} for k in sorted(files)]})

        def get_tree(self, query, rtype: str, repo_id: str, revision: str, sub: str = "") -> None:
            repo = self._repo(_TYPES[rtype], repo_id)
            if not (repo and (sha := self._resolve(repo, revision))):
                return
            prefix = unquote(sub or "").strip("/")
            out = []
            for k, v in sorted(repo.commits[sha].items()):
                if prefix and not k.startswith(prefix + "/"):
                    continue
                item = {"type": "file", "path": k, "size": len(v.data), "oid": git_blob_sha(v.data)}
                if v.lfs:
                    item["lfs"] = {"oid": hashlib.sha256(v.data).hexdigest(), "size": len(v.data),
                                   "pointerSize": 134}
                out.append(item)
            self._json(200, out)

        def get_resolve(self, query, rprefix: str, repo_id: str, revision: str, filename: str) -> None:
            repo = self._repo("dataset" if rprefix else "model", repo_id)
            if not (repo and (sha := self._resolve(repo, revision))):
                return
            entry = repo.commits[sha].get(unquote(filename))
            if entry is None:
                self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}")
                return
            etag = hashlib.sha256(entry.data).hexdigest() if entry.lfs else git_blob_sha(entry.data)
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
            data = entry.data
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if rng and self.command == "GET":
                start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
                headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
                self._send(206, data[start:end + 1], headers, "application/octet-stream")
                return
            self._send(200, data, headers, "application/octet-stream")

        def post_create(self, query) -> None:
            user = self._user()
            if not user:
                self._error(401, "", "Invalid credentials in Authorization header")
                return
            if not user[1]:
                self._error(403, "", "You don't have the rights to create a repo")
                return
            body = json.loads(self._body() or b"{}")
            repo_type = body.get("type") or "model"
            repo_id = f"{body['organization'] or user[0]}/{body['name']}"
            if (repo_type, repo_id) in hub.repos:
                self._json(409, {"error": "You already created this model repo", "url": f"{hub.url}/{repo_id}"})
                return
            private = body.get("private", body.get("visibility") == "private")
            repo = Repo(repo_type, repo_id, bool(private), user[0])
            hub.repos[(repo_type, repo_id)] = repo
            hub._commit(repo, "main", {".gitattributes": RepoFileEntry(b"*.safetensors filter=lfs\n", False)},
                        "initial commit")
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id})

        def post_branch(self, query, rtype: str, repo_id: str, branch: str) -> None:
            repo = self._repo(_TYPES[rtype], repo_id, write=True)
            if not repo:
                return
            branch = unquote(branch)
            if branch in repo.branches:
                self._error(409, "", "Reference already exists")
                return
            repo.branches[branch] = repo.branches["main"]
            self._json(200, {})

        def post_preupload(self, query, rtype: str, repo_id: str, revision: str) -> None:
            repo = self._repo(_TYPES[rtype], repo_id, write=True)
            if not repo:
                return
            current = repo.commits.get(repo.branches.get(unquote(revision), ""), {})
            files = []
            for f in json.loads(self._body())["files"]:
                lfs = f["path"].endswith(hub.LFS_SUFFIXES) or f["size"] > 1_000_000
                existing = current.get(f["path"])
                files.append({"path": f["path"], "uploadMode": "lfs" if lfs else "regular",
                              "shouldIgnore": False, "oid": existing.oid if existing else None})
            self._json(200, {"files": files})

        def post_lfsbatch(self, query, rprefix: str, repo_id: str) -> None:
            repo = self._repo("dataset" if rprefix else "model", repo_id, write=True)
            if not repo:
                return
            objects = []
            for obj in json.loads(self._body())["objects"]:
                item = {"oid": obj["oid"], "size": obj["size"]}
                if obj["oid"] not in hub.lfs_objects:  # already held: nothing to send again
                    item["actions"] = {"upload": {"href": f"{hub.url}/lfs-upload/{obj['oid']}"}}
                objects.append(item)
            self._json(200, {"transfer": "basic", "objects": objects})

        def put_lfs(self, query, oid: str) -> None:
            data = self._body()
            if hashlib.sha256(data).hexdigest() != oid:
                self._error(400, "", "sha256 of the uploaded object differs from its oid")
                return
            hub.lfs_objects[oid] = data
            hub.lfs_bytes_received += len(data)
            self._send(200)

        def post_commit(self, query, rtype: str, repo_id: str, revision: str) -> None:
            repo = self._repo(_TYPES[rtype], repo_id, write=True)
            if not repo:
                return
            branch = unquote(revision)
            if branch not in repo.branches:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
                return
            files = dict(repo.commits[repo.branches[branch]])
            summary = ""
            for line in self._body().splitlines():
                item = json.loads(line)
                value = item["value"]
                if item["key"] == "header":
                    summary = value["summary"]
                elif item["key"] == "file":
                    files[value["path"]] = RepoFileEntry(base64.b64decode(value["content"]), False)
                elif item["key"] == "lfsFile":
                    data = hub.lfs_objects.get(value["oid"])
                    if data is None:
                        self._error(400, "", f"LFS object {value['oid']} was never uploaded")
                        return
                    files[value["path"]] = RepoFileEntry(data, True)
                elif item["key"] == "deletedFile":
                    files.pop(value["path"], None)
            sha = hub._commit(repo, branch, files, summary)
            self._json(200, {"commitOid": sha, "commitUrl": f"{hub.url}/{repo_id}/commit/{sha}",
                             "success": True})

        def post_validateyaml(self, query) -> None:
            self._json(200, {"errors": [], "warnings": []})

    repo = r"(?P<repo_id>[^/]+/[^/]+)"
    ROUTES = [
        (rf"/api/(?P<rtype>models|datasets)/{repo}/revision/(?P<revision>[^/]+)", Handler.get_info),
        (rf"/api/(?P<rtype>models|datasets)/{repo}", Handler.get_info),
        (rf"/api/(?P<rtype>models|datasets)/{repo}/tree/(?P<revision>[^/]+)(?P<sub>/.*)?", Handler.get_tree),
        (rf"/(?P<rprefix>datasets/)?{repo}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", Handler.get_resolve),
        (r"/api/repos/create", Handler.post_create),
        (rf"/api/(?P<rtype>models|datasets)/{repo}/branch/(?P<branch>[^/]+)", Handler.post_branch),
        (rf"/api/(?P<rtype>models|datasets)/{repo}/preupload/(?P<revision>[^/]+)", Handler.post_preupload),
        (rf"/(?P<rprefix>datasets/)?{repo}\.git/info/lfs/objects/batch", Handler.post_lfsbatch),
        (r"/lfs-upload/(?P<oid>[0-9a-f]{64})", Handler.put_lfs),
        (rf"/api/(?P<rtype>models|datasets)/{repo}/commit/(?P<revision>[^/]+)", Handler.post_commit),
        (r"/api/validate-yaml", Handler.post_validateyaml),
    ]
    return Handler
