"""LocalKubeApiServer: a local HTTP server implementing the subset of the Kubernetes API that the
kubernetes deployer uses (Deployments and Services: create, read, replace, delete; Pods: list by
label, log; Kubeflow PyTorchJobs: create, read, list, watch, delete). It stands in for the controllers
too: a Deployment's pods are ready at once, with the addresses given in ``pod_ips``; a PyTorchJob
gets the training operator's ``Created`` condition when it is created, and the tests move it on
(``set_condition``: Running, Succeeded, Failed) as the operator would. Every request is recorded so tests can check the objects sent.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

_ROUTES = [
    ("deployments", re.compile(r"^/apis/apps/v1/namespaces/([^/]+)/deployments(?:/([^/]+))?$")),
    ("services", re.compile(r"^/api/v1/namespaces/([^/]+)/services(?:/([^/]+))?$")),
    ("pods", re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?(/log)?$")),
    ("pytorchjobs", re.compile(r"^/apis/kubeflow.org/v1/namespaces/([^/]+)/pytorchjobs(?:/([^/]+))?$")),
]


def _status(code: int, reason: str, message: str) -> dict:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "message": message,
            "code": code}


def _condition(kind: str, reason: str, message: str = "") -> dict:
    return {"type": kind, "status": "True", "reason": reason, "message": message or f"PyTorchJob is {kind.lower()}.",
            "lastTransitionTime": "2026-01-01T00:00:00Z", "lastUpdateTime": "2026-01-01T00:00:00Z"}


class LocalKubeApiServer:
    def __init__(self, pod_ips: list[str]):
        self.pod_ips = pod_ips
        self.objects: dict[tuple[str, str, str], dict] = {}   # (resource, namespace, name) -> object
        self.requests: list[tuple[str, str, dict | None]] = []  # (method, path, body)
        self.events: list[tuple[str, tuple[str, str, str], dict]] = []  # (ADDED/MODIFIED/DELETED, key, object)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if method == "GET" and query.get("watch", [""])[0] in ("true", "True", "1"):
                    server.requests.append((method, url.path, None))
                    return server.watch(self, url.path, query)
                with server._lock:
                    server.requests.append((method, url.path, body))
                    code, reply = server.dispatch(method, url.path, parse_qs(url.query), body)
                if isinstance(reply, str):
                    data = reply.encode()
                    self.send_response(code)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self._reply(code, reply)

            def do_GET(self):
                self._handle("GET")

            def do_POST(self):
                self._handle("POST")

            def do_PUT(self):
                self._handle("PUT")

            def do_DELETE(self):
                self._handle("DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "LocalKubeApiServer":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- API -------------------------------------------------------------------------------------
    def watch(self, handler, path: str, query: dict) -> None:
        """A watch of a collection (``?watch=true``): ADDED for what is there now, then each change,
        one JSON event a line, until ``timeoutSeconds`` (default 5) ends the response, as the API
        server does; ``fieldSelector=metadata.name=NAME`` narrows it to one object."""
        resource = next((r for r, pattern in _ROUTES if pattern.match(path)), None)
        ns = path.split("/namespaces/")[1].split("/")[0]
        only = query.get("fieldSelector", [""])[0].removeprefix("metadata.name=")
        deadline = time.monotonic() + float(query.get("timeoutSeconds", ["5"])[0])

        def wanted(key) -> bool:
            return key[0] == resource and key[1] == ns and (not only or key[2] == only)

        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Connection", "close")
        handler.end_headers()
        with self._lock:
            seen = len(self.events)
            lines = [{"type": "ADDED", "object": self._view(k[0], o)} for k, o in self.objects.items() if wanted(k)]
        while True:
            for event in lines:
                handler.wfile.write((json.dumps(event) + "\n").encode())
            handler.wfile.flush()
            with self._changed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait_for(lambda: len(self.events) > seen, timeout=left)
                lines = [{"type": kind, "object": self._view(key[0], obj)}
                         for kind, key, obj in self.events[seen:] if wanted(key)]
                seen = len(self.events)
        handler.close_connection = True

    def _changed_object(self, kind: str, key: tuple[str, str, str], obj: dict) -> None:
        """Record a change for the watches (the caller holds the lock)."""
        self.events.append((kind, key, json.loads(json.dumps(obj))))
        self._changed.notify_all()

    def dispatch(self, method: str, path: str, query: dict, body: dict | None):
        for resource, pattern in _ROUTES:
            match = pattern.match(path)
            if match:
                break
        else:
            return 404, _status(404, "NotFound", f"no route {path}")
        ns, name = match.group(1), match.group(2)
        if resource == "pods":
            return self._pods(ns, name, query, is_log=bool(match.group(3)))
        if method == "GET" and not name:
            items = [self._view(r, o) for (r, o_ns, _), o in self.objects.items() if r == resource and o_ns == ns]
            return 200, {"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}
        key = (resource, ns, name or (body or {}).get("metadata", {}).get("name", ""))
        if method == "POST":
            if key in self.objects:
                return 409, _status(409, "AlreadyExists", f"{resource} {key[2]} already exists")
            if resource == "pytorchjobs":  # the operator's first word on a job it accepted
                body = {**body, "status": {"conditions": [_condition("Created", "PyTorchJobCreated")],
                                           "replicaStatuses": {}}}
            self.objects[key] = body
            self._changed_object("ADDED", key, body)
            return 201, self._view(resource, body)
        if key not in self.objects:
            return 404, _status(404, "NotFound", f"{resource} {key[2]} not found")
        if method == "GET":
            return 200, self._view(resource, self.objects[key])
        if method == "PUT":
            self.objects[key] = body
            self._changed_object("MODIFIED", key, body)
            return 200, self._view(resource, body)
        if method == "DELETE":  # as the real API: a Service answers with itself, a Deployment with a Status
            removed = self.objects.pop(key)
            self._changed_object("DELETED", key, removed)
            if resource == "services":
                return 200, removed
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}
        return 405, _status(405, "MethodNotAllowed", method)

    def set_condition(self, namespace: str, name: str, kind: str, reason: str = "", message: str = "") -> None:
        """As the training operator does: append the PyTorchJob's condition ``kind`` (Running,
        Succeeded, Failed), the earlier ones no longer true."""
        with self._lock:
            job = self.objects[("pytorchjobs", namespace, name)]
            for c in job["status"]["conditions"]:
                c["status"] = "False"
            job["status"]["conditions"].append(_condition(kind, reason or f"PyTorchJob{kind}", message))
            self._changed_object("MODIFIED", ("pytorchjobs", namespace, name), job)

    def _view(self, resource: str, obj: dict) -> dict:
        view = json.loads(json.dumps(obj))
        if resource == "deployments":  # the controller's report: every replica is ready
            n = view["spec"].get("replicas", 1)
            view["status"] = {"replicas": n, "readyReplicas": n, "observedGeneration": 1}
        return view

    def _pods(self, ns: str, name: str | None, query: dict, is_log: bool):
        pods = []
        selector = dict(kv.split("=", 1) for kv in query.get("labelSelector", [""])[0].split(",") if "=" in kv)
        for (resource, obj_ns, obj_name), obj in self.objects.items():
            if resource != "deployments" or obj_ns != ns:
                continue
            labels = obj["spec"]["template"]["metadata"]["labels"]
            if any(labels.get(k) != v for k, v in selector.items()):
                continue
            for i in range(obj["spec"].get("replicas", 1)):
                pods.append({"metadata": {"name": f"{obj_name}-{i}", "namespace": ns, "labels": labels},
                             "status": {"podIP": self.pod_ips[i % len(self.pod_ips)],
                                        "conditions": [{"type": "Ready", "status": "True"}]}})
        if name is not None:
            found = [p for p in pods if p["metadata"]["name"] == name]
            if not found:
                return 404, _status(404, "NotFound", f"pod {name} not found")
            return (200, f"log of {name}\n") if is_log else (200, found[0])
        return 200, {"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods}
