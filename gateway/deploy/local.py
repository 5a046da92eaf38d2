"""The local deployer: each plugin replica is a child process on a free loopback port.

Replicas run in their own process session so they outlive a gateway restart; their pids
and ports are kept in ``APT_HOME/gateway/local/<plugin>.json`` for re-attaching. They run with
umask 027, so what they write into the store is never world-readable; their logs
(``APT_HOME/logs/<plugin>-<i>.log``) are 0640 for the same reason.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from apt_model import errors
from apt_model.runtime.settings import Settings
from apt_model.store import write_json_atomic
from gateway.catalog import REPO_ROOT, CatalogEntry
from gateway.deploy.base import Deployer, check_serving, wait_serving

PLUGIN_UMASK = 0o027  # store files 0640, folders 0750: the owner's group may read, nobody else
_PORT_LINE = re.compile(r"listening on port (\d+)")
_IMPORT_PROBE = (
    "import importlib, json, sys\n"
    "missing = []\n"
    "for m in sys.argv[1:]:\n"
    "    try:\n"
    "        importlib.import_module(m)\n"
    "    except ImportError as e:\n"
    "        missing.append(f'{m} ({e})')\n"
    "print(json.dumps(missing))\n"
)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child counts as dead
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


class LocalDeployer(Deployer):
    name = "local"

    def __init__(self, settings: Settings, python: str | None = None):
        self.settings = settings
        self.python = python or os.environ.get("APT_PLUGIN_PYTHON") or sys.executable
        self.state_dir = Path(settings.home) / "gateway" / "local"
        self.log_dir = Path(settings.home) / "logs"
        self._children: list[subprocess.Popen] = []  # reaped by poll() to avoid zombies

    def _state_path(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _env(self, entry: CatalogEntry, env: dict[str, str]) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
        paths = [str(REPO_ROOT), str(entry.dir)]
        if base.get("PYTHONPATH"):
            paths.append(base["PYTHONPATH"])
        return {**base, **env, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1",
                "APT_LISTEN": "127.0.0.1:0", "APT_HOME": str(self.settings.home)}

    def check_dependencies(self, entry: CatalogEntry, env: dict[str, str]) -> None:
        if not entry.imports:
            return
        out = subprocess.run([self.python, "-c", _IMPORT_PROBE, *entry.imports], capture_output=True,
                             text=True, env=self._env(entry, env), timeout=300)
        missing = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else [out.stderr[-500:]]
        if missing:
            req = entry.dir / "requirements.txt"
            raise errors.FailedPrecondition(
                f"Plugin {entry.name!r} cannot start: missing Python modules: {'; '.join(missing)}. "
                f"Install its dependencies with: {self.python} -m pip install -r {req}"
            )

    def deploy(self, entry: CatalogEntry, replicas: int, env: dict[str, str]) -> list[str]:
        self.check_dependencies(entry, env)
        for folder in (self.log_dir, self.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
            os.chmod(folder, 0o750)  # also when an older version made it world-readable
        started: list[dict] = []
        try:
            for i in range(replicas):
                started.append(self._start_one(entry, i, env))
        except BaseException:
            for rec in started:
                _terminate(rec["pid"], grace=2.0)
            raise
        write_json_atomic(self._state_path(entry.name), {"replicas": started})
        return [f"127.0.0.1:{r['port']}" for r in started]

    def _start_one(self, entry: CatalogEntry, index: int, env: dict[str, str]) -> dict:
        log_path = self.log_dir / f"{entry.name}-{index}.log"
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        os.fchmod(fd, 0o640)  # a log left by an older version may be world-readable
        with os.fdopen(fd, "wb") as log_file:
            proc = subprocess.Popen(
                [self.python, "-m", entry.module], cwd=str(entry.dir), env=self._env(entry, env),
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                umask=PLUGIN_UMASK,
            )
        self._children.append(proc)
        deadline = time.monotonic() + self.settings.install_timeout
        port = None
        while time.monotonic() < deadline and port is None:
            if proc.poll() is not None:
                raise errors.Unavailable(
                    f"Plugin {entry.name!r} exited with code {proc.returncode} while starting. "
                    f"Last lines of {log_path}:\n{_tail(log_path)}"
                )
            match = _PORT_LINE.search(log_path.read_text(errors="replace"))
            port = int(match.group(1)) if match else None
            if port is None:
                time.sleep(0.05)
        remaining = deadline - time.monotonic()
        if port is None or not wait_serving(f"127.0.0.1:{port}", remaining, lambda: proc.poll() is None):
            _terminate(proc.pid, grace=1.0)
            raise errors.Unavailable(
                f"Plugin {entry.name!r} did not reach SERVING within {self.settings.install_timeout:.0f}s "
                f"(APT_INSTALL_TIMEOUT). Last lines of {log_path}:\n{_tail(log_path)}"
            )
        return {"pid": proc.pid, "port": port, "log": str(log_path)}

    def remove(self, name: str) -> None:
        path = self._state_path(name)
        if not path.exists():
            return
        for rec in json.loads(path.read_text()).get("replicas", []):
            _terminate(rec["pid"], grace=self.settings.grace_seconds)
        path.unlink()
        for proc in self._children:
            proc.poll()

    def discover(self, entry: CatalogEntry) -> list[str]:
        path = self._state_path(entry.name)
        if not path.exists():
            return []
        records = json.loads(path.read_text()).get("replicas", [])
        return [f"127.0.0.1:{r['port']}" for r in records
                if _alive(r["pid"]) and check_serving(f"127.0.0.1:{r['port']}")]

    def log_tail(self, name: str) -> str:
        path = self._state_path(name)
        if not path.exists():
            return ""
        return "\n".join(_tail(Path(r["log"]), 10) for r in json.loads(path.read_text()).get("replicas", []))


def _terminate(pid: int, grace: float) -> None:
    """SIGTERM the replica's process group, then SIGKILL after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
