"""LocalModelScopeServer: a local HTTP server implementing the subset of the ModelScope Hub
HTTP API (``/api/v1``) that the modelscope SDK's snapshot download uses: the file listing
of a repo revision and the per-file download with Range. Private repos answer 401 without a
valid bearer token, unknown repos 404, both in ModelScope's JSON envelope
(``{"Code", "Message", "Success", "Data"}``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse


class LocalModelScopeServer:
    def __init__(self, tokens: set[str] | None = None):
        self.tokens = set(tokens or ())
        # repo id -> {"private": bool, "revisions": {rev: {path: bytes}}}
        self.repos: dict[str, dict] = {}
        self.requests: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> "LocalModelScopeServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def add_repo(self, repo_id: str, folder: Path, *, private: bool = False, revision: str = "master") -> None:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(Path(folder).rglob("*"))
                 if p.is_file()}
        self.repos.setdefault(repo_id, {"private": private, "revisions": {}})["revisions"][revision] = files


def _make_handler(ms: LocalModelScopeServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            return

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _envelope(self, status: int, data=None, message: str = "") -> None:
            body = {"Code": 200 if status == 200 else status, "Message": message or "success",
                    "Success": status == 200, "RequestId": "local", "Data": data}
            self._send(status, json.dumps(body).encode(), "application/json")

        def _files(self, repo_id: str, revision: str) -> dict | None:
            repo = ms.repos.get(repo_id)
            token = self.headers.get("Authorization", "").removeprefix("Bearer ")
            if repo is None:
                self._envelope(404, message=f"Model {repo_id} not found")
                return None
            if repo["private"] and token not in ms.tokens:
                self._envelope(401, message="Unauthorized: a valid access token is required")
                return None
            files = repo["revisions"].get(revision)
            if files is None:
                self._envelope(404, message=f"Revision {revision} of {repo_id} not found")
            return files

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            ms.requests.append(f"GET {url.path}?{url.query}")
            m = re.fullmatch(r"/api/v1/models/(?P<repo>[^/]+/[^/]+)/repo(?P<files>/files)?", url.path)
            if not m:
                self._envelope(404, message=f"no route for {url.path}")
                return
            revision = q.get("Revision") or "master"
            files = self._files(m["repo"], revision)
            if files is None:
                return
            if m["files"]:
                listing = [{"Name": Path(p).name, "Path": p, "Type": "blob", "Size": len(b),
                            "Sha256": hashlib.sha256(b).hexdigest(), "Revision": revision}
                           for p, b in sorted(files.items())]
                self._envelope(200, {"Files": listing})
                return
            data = files.get(q.get("FilePath", ""))
            if data is None:
                self._envelope(404, message=f"File {q.get('FilePath')} not found")
                return
            rng = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            if rng:
                start, end = int(rng.group(1)), int(rng.group(2) or len(data) - 1)
                self._send(206, data[start:end + 1], "application/octet-stream",
                           {"Content-Range": f"bytes {start}-{end}/{len(data)}"})
                return
            self._send(200, data, "application/octet-stream")

        do_HEAD = do_GET

    return Handler
