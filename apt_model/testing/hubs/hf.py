"""LocalHfHubServer: a local HTTP server implementing the subset of the Hugging Face Hub API that
huggingface_hub's calls in both hub plugins use (huggingface-integration: snapshot download,
create repo, branch, commit; cloud-storage: repo info, tree listing, file download, commit):

- ``GET  /api/{models|datasets}/{repo}[/revision/{rev}]``   repo info with its files
- ``GET  /api/{models|datasets}/{repo}/tree/{rev}[/{path}]`` recursive listing (404 for a missing path)
- ``HEAD|GET /[datasets/]{repo}/resolve/{rev}/{path}``       download with X-Repo-Commit, ETag, Range
- ``POST /api/repos/create``, ``POST /api/models/{repo}/branch/{name}``
- ``POST /api/models/{repo}/preupload/{rev}``                 upload modes (LFS by suffix or size)
- ``POST /{repo}.git/info/lfs/objects/batch``, ``PUT /lfs-upload/{oid}``  LFS basic transfer; objects
  the server holds already get no action, so the client does not send them again
- ``POST /api/models/{repo}/commit/{rev}``                    ndjson commit (file, lfsFile, deletedFile)

It is not the Hub: a small in-memory git-like store (one commit per push, branches, private
repos with an owner) speaking the Hub's HTTP protocol, so the real client library runs unmodified
against it. Tokens behave the way the Hub answers them: 404 RepoNotFound for a repo the caller
may not see, 401 for anonymous callers whether the repo is private or missing, 401 "Invalid
credentials" for an unknown token, 403 for a read-only token that writes. Xet is not spoken:
tests set ``huggingface_hub.constants.HF_HUB_DISABLE_XET``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from apt_model.testing.http_server import LocalServer, QuietHandler


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


class BranchFiles(MutableMapping):
    """The files at the head of one branch, {path: bytes}, read live. Setting or deleting a file
    is a new commit on the branch, as if someone else had pushed it: how a test changes a repo
    behind a client's back."""

    def __init__(self, hub: "LocalHfHubServer", repo: Repo, branch: str):
        self._hub, self._repo, self._branch = hub, repo, branch

    def _head(self) -> dict[str, RepoFileEntry]:
        return self._repo.commits[self._repo.branches[self._branch]]

    def __getitem__(self, path: str) -> bytes:
        return self._head()[path].data

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._head()))

    def __len__(self) -> int:
        return len(self._head())

    def __setitem__(self, path: str, data: bytes) -> None:
        with self._hub.lock:
            files = dict(self._head())
            files[path] = self._hub._entry(path, data)
            self._hub._commit(self._repo, self._branch, files, f"Update {path}")

    def __delitem__(self, path: str) -> None:
        with self._hub.lock:
            files = dict(self._head())
            del files[path]
            self._hub._commit(self._repo, self._branch, files, f"Delete {path}")


_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}


class _HfHandler(QuietHandler):
    api: LocalHfHubServer

    def _json(self, status: int, obj, headers: dict[str, str] | None = None) -> None:
        self.send(status, json.dumps(obj).encode(), headers, content_type="application/json")

    def _error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

    def _user(self) -> tuple[str, bool] | None | bool:
        """(user, can_write), None when anonymous, False when the token is unknown."""
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return None
        return self.api.tokens.get(auth[len("Bearer "):], False)

    def _repo(self, repo_type: str, repo_id: str, write: bool = False) -> Repo | None:
        """The repo when this caller may see it (and write it); otherwise answers and returns None."""
        user = self._user()
        if user is False:
            self._error(401, "", "Invalid credentials in Authorization header")
            return None
        repo = self.api.repos.get((repo_type, repo_id))
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

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.api.record(self.command, self.path)
        # always drain the body: an unread body would corrupt the next request on this connection
        self.data = self.body()
        if self.api.down:
            return self._error(503, "", "Service Unavailable")
        method = "GET" if self.command == "HEAD" else self.command
        with self.api.lock:
            for verb, pattern, handler in _ROUTES:
                m = re.fullmatch(pattern, url.path)
                if m and verb == method:
                    return handler(self, parse_qs(url.query), **m.groupdict())
        self._error(404, "", f"{self.command} {url.path} is not implemented by this local server")

    do_GET = do_PUT = do_POST = do_HEAD = _dispatch

    # -- routes ------------------------------------------------------------------------------
    def get_info(self, query, rtype: str, repo_id: str, revision: str = "main") -> None:
        repo = self._repo(_TYPES[rtype], repo_id)
        if repo and (sha := self._resolve(repo, revision or "main")):
            files = repo.commits[sha]
            self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                             "siblings": [{"rfilename": k} for k in sorted(files)]})

    def get_tree(self, query, rtype: str, repo_id: str, revision: str, sub: str = "") -> None:
        repo = self._repo(_TYPES[rtype], repo_id)
        if not (repo and (sha := self._resolve(repo, revision))):
            return
        prefix = unquote(sub or "").strip("/")
        chosen = [(k, v) for k, v in sorted(repo.commits[sha].items()) if not prefix or k.startswith(prefix + "/")]
        if prefix and not chosen:
            return self._error(404, "EntryNotFound", f"{prefix} does not exist at {revision}")
        out = []
        for k, v in chosen:
            item = {"type": "file", "path": k, "size": len(v.data), "oid": git_blob_sha(v.data)}
            if v.lfs:
                item["lfs"] = {"oid": hashlib.sha256(v.data).hexdigest(), "size": len(v.data), "pointerSize": 134}
            out.append(item)
        self._json(200, out)

    def get_resolve(self, query, rprefix: str, repo_id: str, revision: str, filename: str) -> None:
        repo = self._repo("dataset" if rprefix else "model", repo_id)
        if not (repo and (sha := self._resolve(repo, revision))):
            return
        entry = repo.commits[sha].get(unquote(filename))
        if entry is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist at {revision}")
        headers = {"X-Repo-Commit": sha, "ETag": f'"{entry.oid}"', "Accept-Ranges": "bytes"}
        data = entry.data
        rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        if rng and self.command == "GET":
            start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self.send(206, data[start:end + 1], headers, "application/octet-stream")
        self.send(200, data, headers, "application/octet-stream")

    def post_create(self, query) -> None:
        user = self._user()
        if not user:
            return self._error(401, "", "Invalid credentials in Authorization header")
        if not user[1]:
            return self._error(403, "", "You don't have the rights to create a repo")
        body = json.loads(self.data or b"{}")
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or user[0]}/{body['name']}"
        if (repo_type, repo_id) in self.api.repos:
            return self._json(409, {"error": "You already created this model repo", "url": f"{self.api.url}/{repo_id}"})
        private = body.get("private", body.get("visibility") == "private")
        repo = Repo(repo_type, repo_id, bool(private), user[0])
        self.api.repos[(repo_type, repo_id)] = repo
        self.api._commit(repo, "main", {".gitattributes": RepoFileEntry(b"*.safetensors filter=lfs\n", False)},
                         "initial commit")
        self._json(200, {"url": f"{self.api.url}/{repo_id}", "name": repo_id})

    def post_branch(self, query, rtype: str, repo_id: str, branch: str) -> None:
        repo = self._repo(_TYPES[rtype], repo_id, write=True)
        if not repo:
            return
        branch = unquote(branch)
        if branch in repo.branches:
            return self._error(409, "", "Reference already exists")
        repo.branches[branch] = repo.branches["main"]
        self._json(200, {})

    def post_preupload(self, query, rtype: str, repo_id: str, revision: str) -> None:
        repo = self._repo(_TYPES[rtype], repo_id, write=True)
        if not repo:
            return
        current = repo.commits.get(repo.branches.get(unquote(revision), ""), {})
        files = []
        for f in json.loads(self.data)["files"]:
            existing = current.get(f["path"])
            files.append({"path": f["path"], "uploadMode": "lfs" if self.api.is_lfs(f["path"], f["size"]) else "regular",
                          "shouldIgnore": False, "oid": existing.oid if existing else None})
        self._json(200, {"files": files})

    def post_lfsbatch(self, query, rprefix: str, repo_id: str) -> None:
        repo = self._repo("dataset" if rprefix else "model", repo_id, write=True)
        if not repo:
            return
        objects = []
        for obj in json.loads(self.data)["objects"]:
            item = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.api.lfs_objects:  # already held: nothing to send again
                item["actions"] = {"upload": {"href": f"{self.api.url}/lfs-upload/{obj['oid']}"}}
            objects.append(item)
        self._json(200, {"transfer": "basic", "objects": objects})

    def put_lfs(self, query, oid: str) -> None:
        if hashlib.sha256(self.data).hexdigest() != oid:
            return self._error(400, "", "sha256 of the uploaded object differs from its oid")
        self.api.lfs_objects[oid] = self.data
        self.api.lfs_bytes_received += len(self.data)
        self.send(200, b"", {})

    def post_commit(self, query, rtype: str, repo_id: str, revision: str) -> None:
        repo = self._repo(_TYPES[rtype], repo_id, write=True)
        if not repo:
            return
        branch = unquote(revision)
        if branch not in repo.branches:
            return self._error(404, "RevisionNotFound", f"Invalid rev id: {branch}")
        files = dict(repo.commits[repo.branches[branch]])
        summary = ""
        for line in self.data.splitlines():
            item = json.loads(line)
            value = item["value"]
            if item["key"] == "header":
                summary = value["summary"]
            elif item["key"] == "file":
                files[value["path"]] = RepoFileEntry(base64.b64decode(value["content"]), False)
            elif item["key"] == "lfsFile":
                data = self.api.lfs_objects.get(value["oid"])
                if data is None:
                    return self._error(400, "", f"LFS object {value['oid']} of {value['path']} was never uploaded")
                files[value["path"]] = RepoFileEntry(data, True)
            elif item["key"] == "deletedFile":
                files.pop(value["path"], None)
        sha = self.api._commit(repo, branch, files, summary)
        self._json(200, {"commitOid": sha, "commitUrl": f"{self.api.url}/{repo_id}/commit/{sha}", "success": True})

    def post_validateyaml(self, query) -> None:
        self._json(200, {"errors": [], "warnings": []})


_REPO = r"(?P<repo_id>[^/]+/[^/]+)"
_ROUTES = [  # (method, path pattern, handler); HEAD is routed as GET
    ("GET", rf"/api/(?P<rtype>models|datasets)/{_REPO}/revision/(?P<revision>[^/]+)", _HfHandler.get_info),
    ("GET", rf"/api/(?P<rtype>models|datasets)/{_REPO}", _HfHandler.get_info),
    ("GET", rf"/api/(?P<rtype>models|datasets)/{_REPO}/tree/(?P<revision>[^/]+)(?P<sub>/.*)?", _HfHandler.get_tree),
    ("GET", rf"/(?P<rprefix>datasets/)?{_REPO}/resolve/(?P<revision>[^/]+)/(?P<filename>.+)", _HfHandler.get_resolve),
    ("POST", r"/api/repos/create", _HfHandler.post_create),
    ("POST", rf"/api/(?P<rtype>models|datasets)/{_REPO}/branch/(?P<branch>[^/]+)", _HfHandler.post_branch),
    ("POST", rf"/api/(?P<rtype>models|datasets)/{_REPO}/preupload/(?P<revision>[^/]+)", _HfHandler.post_preupload),
    ("POST", rf"/(?P<rprefix>datasets/)?{_REPO}\.git/info/lfs/objects/batch", _HfHandler.post_lfsbatch),
    ("PUT", r"/lfs-upload/(?P<oid>[0-9a-f]{64})", _HfHandler.put_lfs),
    ("POST", rf"/api/(?P<rtype>models|datasets)/{_REPO}/commit/(?P<revision>[^/]+)", _HfHandler.post_commit),
    ("POST", r"/api/validate-yaml", _HfHandler.post_validateyaml),
]


class LocalHfHubServer(LocalServer):
    """``with LocalHfHubServer(tokens={token: (user, may_write)}) as hub: HfApi(endpoint=hub.url)``."""

    LFS_SUFFIXES = (".safetensors", ".bin", ".parquet", ".arrow", ".pt")
    LFS_MIN_BYTES = 1_000_000  # larger files go through LFS whatever their name

    handler_cls = _HfHandler

    def __init__(self, tokens: dict[str, tuple[str, bool]] | None = None):
        super().__init__()
        self.tokens = dict(tokens or {})  # token -> (user name, may write)
        self.repos: dict[tuple[str, str], Repo] = {}  # (repo type, repo id) -> repo
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.lfs_bytes_received = 0
        self.down = False  # True: every request gets 503, as from a Hub in an outage

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
        with self.lock:
            self.repos[(repo_type, repo_id)] = repo
            return self._commit(repo, "main", {k: self._entry(k, v) for k, v in content.items()}, "initial")

    def _entry(self, path: str, data: bytes) -> RepoFileEntry:
        lfs = self.is_lfs(path, len(data))
        if lfs:
            self.lfs_objects[hashlib.sha256(data).hexdigest()] = data
        return RepoFileEntry(data, lfs)

    def is_lfs(self, path: str, size: int) -> bool:
        return path.endswith(self.LFS_SUFFIXES) or size > self.LFS_MIN_BYTES

    def _commit(self, repo: Repo, branch: str, files: dict[str, RepoFileEntry], message: str) -> str:
        parent = repo.branches.get(branch, "")
        listing = json.dumps({"parent": parent, "message": message,
                              "files": {k: v.oid for k, v in sorted(files.items())}})
        sha = hashlib.sha1(listing.encode()).hexdigest()
        repo.commits[sha] = files
        repo.branches[branch] = sha
        return sha

    def files_at(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """A copy of the files at ``revision`` (a branch or a commit sha)."""
        repo = self.repos[(repo_type, repo_id)]
        sha = repo.branches.get(revision, revision)
        return {k: v.data for k, v in repo.commits[sha].items()}

    def branch_files(self, repo_id: str, branch: str = "main", repo_type: str = "model") -> BranchFiles:
        """The live files of ``branch``; see BranchFiles."""
        return BranchFiles(self, self.repos[(repo_type, repo_id)], branch)
