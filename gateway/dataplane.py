"""The native data plane: the ``apt-router`` process (``router/``, Rust) in front of the gateway.

With ``APT_ROUTER=native`` (the default) apt-router owns the gateway's public address. It
forwards calls to plugins with healthy endpoints straight to them as raw HTTP/2 streams, and
every other call (core, registry, jobs, health, reflection, and every error case) to this
Python process, which listens on a loopback port only it knows. This process stays the
control plane: it writes a route table to apt-router's stdin whenever the registry changes,
and reads apt-router's events (a plugin endpoint that broke off a call) from its stdout.
``APT_ROUTER=python`` routes inside this process instead (gateway/router.py); it is slower
(see the README's benchmark) and needs no Rust build.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable

from apt_model import errors
from apt_model.runtime.settings import Settings

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
BUILT_BINARY = REPO_ROOT / "router" / "target" / "release" / "apt-router"
START_TIMEOUT = 15.0
MAX_RESTARTS = 5
TABLE_ACK_SECONDS = 5.0  # how long an install/uninstall waits for apt-router to use its table


def find_binary(settings: Settings) -> str:
    """The apt-router binary: APT_ROUTER_BIN, else the repository build, else on PATH."""
    if settings.router_bin:
        candidates = [settings.router_bin]
    else:
        candidates = [str(BUILT_BINARY), shutil.which("apt-router") or ""]
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise errors.FailedPrecondition(
        f"The gateway's native router is not built (looked for {', '.join(c for c in candidates if c)}). "
        "Build it with 'make router' (needs cargo), point APT_ROUTER_BIN at the binary, "
        "or set APT_ROUTER=python to route inside the gateway process (slower)."
    )


class NativeRouter:
    """Runs apt-router as a child process and keeps its route table current."""

    def __init__(self, settings: Settings, binary: str, backend: str, table: Callable[[], dict],
                 on_unavailable: Callable[[str, str], None]):
        self.settings = settings
        self.binary = binary
        self.backend = backend
        self.table = table
        self.on_unavailable = on_unavailable
        self.listen = settings.listen
        self.port = 0
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._restarts = 0
        self._applied = threading.Condition()  # apt-router's acknowledgements of route tables
        self._version = self._acked = 0
        self._reader: threading.Thread | None = None  # reads apt-router's stdout, and closes it

    def start(self) -> int:
        """Start apt-router, wait until it listens, send it the table; returns the bound port."""
        self._spawn()
        return self.port

    def _spawn(self) -> None:
        cmd = [self.binary, "--listen", self.listen, "--backend", self.backend,
               "--grace", str(self.settings.grace_seconds)]
        if self.settings.tls_cert:
            cmd += ["--tls-cert", self.settings.tls_cert, "--tls-key", self.settings.tls_key]
        env = {k: v for k, v in os.environ.items() if not k.startswith("APT_") or k == "APT_ROUTER_THREADS"}
        env.update(APT_TOKEN=self.settings.token, APT_ADMIN_TOKEN=self.settings.admin_token,
                   APT_INTERNAL_TOKEN=self.settings.internal_token, APT_LOG_LEVEL=self.settings.log_level)
        # stderr is inherited: its JSON log lines go where the gateway's own go
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, bufsize=1)
        first = _read_line(proc, START_TIMEOUT)
        try:
            port = int(json.loads(first)["port"]) if first else 0
        except (ValueError, KeyError, TypeError):
            port = 0
        if not port:
            proc.kill()
            proc.wait()
            raise errors.Unavailable(
                f"The gateway's router could not listen on {self.listen} (exit code {proc.returncode}); "
                "its error is in the log above. Is the port in use?"
            )
        with self._lock:
            self._proc, self.port = proc, port
            self.listen = f"{self.listen.rpartition(':')[0]}:{port}"  # a restart keeps the port
        self._reader = threading.Thread(target=self._read_events, args=(proc,), name="apt-router-events",
                                        daemon=True)
        self._reader.start()
        self.update()

    def update(self, timeout: float = TABLE_ACK_SECONDS) -> None:
        """Send the current route table (called whenever the registry changes) and wait until
        apt-router uses it, so that once an install or uninstall returns, calls follow it."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                return
            self._version += 1
            version = self._version
            line = json.dumps({**self.table(), "version": version}, separators=(",", ":")) + "\n"
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
            except (BrokenPipeError, ValueError, OSError):
                return  # it died: _read_events restarts it and sends a fresh table
        with self._applied:
            if not self._applied.wait_for(lambda: self._acked >= version, timeout):
                log.warning("apt-router has not confirmed route table %d after %.0f s; calls may follow the "
                            "previous one for a moment", version, timeout)

    def _read_events(self, proc: subprocess.Popen) -> None:
        # This thread alone closes stdout, at its end: closed by stop() while the loop still
        # read, the next line raised ValueError in this thread.
        with proc.stdout:
            for line in proc.stdout:
                try:
                    ev = json.loads(line)
                except ValueError:
                    continue
                if ev.get("event") == "unavailable":
                    self.on_unavailable(ev.get("plugin", ""), ev.get("endpoint", ""))
                elif ev.get("event") == "table":
                    with self._applied:
                        self._acked = max(self._acked, int(ev.get("version", 0)))
                        self._applied.notify_all()
        code = proc.wait()
        if self._stopping.is_set():
            return
        log.error("the gateway's router exited (code %s) while serving", code)
        if self._restarts >= MAX_RESTARTS:
            log.error("the router exited %d times: the gateway stops routing; restart the gateway", MAX_RESTARTS)
            return
        self._restarts += 1
        time.sleep(0.2)
        try:
            self._spawn()
        except errors.AptError as exc:
            log.error("cannot restart the router: %s", exc.message)

    def stop(self, grace: float) -> None:
        """Stop accepting, let open calls finish within ``grace``, then kill."""
        self._stopping.set()
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(grace + 2)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            proc.stdin.close()
        except OSError:
            pass
        if self._reader is not None:  # it reaches the end of stdout now that the router exited
            self._reader.join(5)


def _read_line(proc: subprocess.Popen, timeout: float) -> str:
    """The first stdout line of ``proc`` within ``timeout`` ('' when it exits or times out)."""
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""
