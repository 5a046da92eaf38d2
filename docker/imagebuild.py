"""What each service image is made of, the build context that makes it, and its wheels.

Every image is built from a tar stream holding only the repository files its Dockerfile copies.
Its wheels, the ones its requirements resolve to in the host wheelhouse, are served to the build
over HTTP on the host's loopback (``WheelServer``; builds run with ``--network host``) rather
than copied in: a wheel in the context would be written into a layer and copied again, which on
storage drivers without native diffs (fuse-overlayfs) multiplies the time of the 4 GB torch
layer. Images whose requirements include ``requirements/torch.txt`` build FROM
``apt/torch-base`` and are served only the wheels that image lacks, so the torch layer exists
once on the host.

Imported by ``docker/images.py`` (the CLI behind ``make images``) and by the deployment tests.
This folder has no ``__init__.py`` on purpose: as a package it would shadow the ``docker`` SDK.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python docker/images.py`: the repo's own package is beside it
    sys.path.insert(0, str(ROOT))

from apt_model.runtime.manifest import requirement_files as manifest_requirement_files  # noqa: E402
LOCAL_BASE = "apt/python-base:3.11-bookworm"   # made by docker/build_base.sh
PUBLIC_BASE = "python:3.11-slim"
TORCH_REQUIREMENTS = "requirements/torch.txt"
# Machine-level, like pip's cache: a fresh clone on the same machine reuses the 4 GB of wheels.
DEFAULT_WHEELHOUSE = Path(os.environ.get("APT_WHEELHOUSE") or
                          Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apt" / "wheelhouse")
# Never shipped: tests and caches stay out of every image.
_EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", "tests", ".mypy_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")


class BuildError(RuntimeError):
    """A build cannot proceed; the message says what to run or fix."""


@dataclass(frozen=True)
class ImageSpec:
    name: str                    # "torch-base", "gateway" or the plugin name
    dockerfile: str              # repo-relative path
    requirements: tuple[str, ...]  # repo-relative requirements files installed in the image
    files: tuple[str, ...]       # repo-relative files/folders copied into the context
    torch: bool                  # builds FROM apt/torch-base
    plugin_dir: str = ""         # repo-relative plugin folder ("" for gateway / torch-base)
    module: str = ""             # `python -m` module of a plugin

    def tag(self, prefix: str = "apt", version: str = "latest") -> str:
        return f"{prefix}/{self.name}:{version}"


def requires_torch(req_file: Path, _seen: set[Path] | None = None) -> bool:
    """True when a requirements file (following ``-r``) pulls in torch."""
    seen = _seen if _seen is not None else set()
    req_file = req_file.resolve()
    if req_file in seen or not req_file.exists():
        return False
    seen.add(req_file)
    for line in req_file.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            if requires_torch(req_file.parent / line[3:].strip(), seen):
                return True
        elif line.split("=")[0].split("<")[0].split(">")[0].strip().lower() == "torch":
            return True
    return False


def requirement_files(*req_files: str) -> tuple[str, ...]:
    """Repo-relative requirements files these read, following ``-r`` (plus the shared runtime).

    Contexts carry exactly these, not all of ``requirements/``: an edit to an unrelated pin (say
    dev.txt) must not invalidate the 7 GB torch layer and every image built on it.
    """
    files = {f for r in (*req_files, "requirements/runtime.txt") for f in manifest_requirement_files(ROOT / r)}
    return tuple(sorted(f.relative_to(ROOT).as_posix() for f in files))


# Every service image's entry point and health check (/app/run_plugin.py, /app/healthcheck.py).
ENTRY_FILES = ("docker/healthcheck.py", "docker/run_plugin.py")


def plugin_spec(plugin_dir: Path, dockerfile: Path | None = None) -> ImageSpec | None:
    """The image of one plugin folder, or None when its plugin.yaml says ``available: false``."""
    manifest = yaml.safe_load((plugin_dir / "plugin.yaml").read_text())
    if not manifest.get("available", False):
        return None
    rel = plugin_dir.resolve().relative_to(ROOT).as_posix()
    torch = requires_torch(plugin_dir / "requirements.txt")  # torch images get ENTRY_FILES from torch-base
    dockerfile = dockerfile or plugin_dir / "Dockerfile"
    if not dockerfile.exists():
        raise BuildError(f"{dockerfile} is missing: plugin {manifest['name']!r} is available but has no Dockerfile.")
    return ImageSpec(
        name=manifest["name"], dockerfile=dockerfile.resolve().relative_to(ROOT).as_posix(),
        requirements=(f"{rel}/requirements.txt",),
        files=("apt_model", *requirement_files(f"{rel}/requirements.txt"), rel, *([] if torch else ENTRY_FILES)),
        torch=torch, plugin_dir=rel, module=manifest["module"],
    )


def torch_base_spec() -> ImageSpec:
    return ImageSpec(name="torch-base", dockerfile="docker/torch-base.Dockerfile", requirements=(TORCH_REQUIREMENTS,),
                     files=(*requirement_files(TORCH_REQUIREMENTS), *ENTRY_FILES), torch=False)


# The gateway's data plane (router/, Rust), built on the host by `make router`: the images'
# Debian bookworm has the host's glibc, so the binary runs there as built.
ROUTER_BINARY = "router/target/release/apt-router"


def gateway_spec() -> ImageSpec:
    # The gateway's catalogue reads every plugin.yaml (+ requirements.txt) to list plugins.
    catalogue = tuple(f"services/{p.name}/{f}" for p in sorted((ROOT / "services").iterdir())
                      for f in ("plugin.yaml", "requirements.txt") if (p / f).exists())
    return ImageSpec(name="gateway", dockerfile="gateway/Dockerfile",
                     requirements=("gateway/requirements.txt", "gateway/deploy/requirements.txt"),
                     # k8s/base/plugins only: the deployers read a plugin's manifests from there, and
                     # k8s/base/secrets (make k8s-secrets) must never end up in an image
                     files=("apt_model", "gateway", *requirement_files("gateway/requirements.txt"),
                            "k8s/base/plugins", ROUTER_BINARY, *catalogue),
                     torch=requires_torch(ROOT / "gateway/requirements.txt"))


def all_specs() -> list[ImageSpec]:
    """torch-base first, then the gateway, then every available plugin (build order)."""
    specs = [torch_base_spec(), gateway_spec()]
    for plugin_dir in sorted((ROOT / "services").iterdir()):
        if (plugin_dir / "plugin.yaml").exists():
            spec = plugin_spec(plugin_dir)
            if spec is not None:
                specs.append(spec)
    return specs


# -- wheels ------------------------------------------------------------------------------------
def resolve_wheels(requirements: tuple[str, ...], wheelhouse: Path) -> dict[str, Path]:
    """{normalized project name: wheel path} that pip installs for these requirements, offline."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--no-index", "--find-links", str(wheelhouse), "--report", str(report)]
        for req in requirements:
            cmd += ["-r", str(ROOT / req)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"The wheelhouse {wheelhouse} cannot satisfy {', '.join(requirements)}; "
                             f"run `make wheelhouse` first.\n{done.stderr[-1500:]}")
        items = json.loads(report.read_text())["install"]
    wheels: dict[str, Path] = {}
    for item in items:
        url = item["download_info"]["url"]
        if not url.startswith("file://") or not url.endswith(".whl"):
            raise BuildError(f"{item['metadata']['name']} resolved to {url}, not a wheel in {wheelhouse}; "
                             "run `make wheelhouse` so every dependency is a prebuilt wheel.")
        wheels[item["metadata"]["name"].lower().replace("_", "-")] = Path(url[len("file://"):])
    return wheels


def wheels_for(spec: ImageSpec, wheelhouse: Path, torch_wheels: dict[str, Path] | None) -> list[Path]:
    """The wheels this image installs: all of them, or for torch images the ones torch-base lacks."""
    wheels = resolve_wheels(spec.requirements, wheelhouse)
    if not spec.torch:
        return sorted(wheels.values())
    assert torch_wheels is not None, "torch images need the torch-base wheel set"
    clash = [f"{n}: {wheels[n].name} vs torch-base {torch_wheels[n].name}"
             for n in wheels.keys() & torch_wheels.keys() if wheels[n] != torch_wheels[n]]
    if clash:
        # pip would replace a torch-base package inside the service layer: align the pins instead.
        raise BuildError(f"{spec.name} pins versions that differ from apt/torch-base ({'; '.join(clash)}). "
                         f"Use the versions of {TORCH_REQUIREMENTS}.")
    return sorted(p for n, p in wheels.items() if n not in torch_wheels)


# -- context -----------------------------------------------------------------------------------
def _context_files(spec: ImageSpec) -> list[Path]:
    out: list[Path] = [ROOT / spec.dockerfile]
    for rel in spec.files:
        path = ROOT / rel
        if not path.exists():
            raise BuildError(f"{rel} is missing; image {spec.name} needs it.")
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        for p in candidates:
            parts = set(p.relative_to(path).parts) if p != path else set()
            if parts & _EXCLUDED_PARTS or p.suffix in _EXCLUDED_SUFFIXES:
                continue
            out.append(p)
    for req in spec.requirements:  # -r includes are under requirements/, listed in files
        out.append(ROOT / req)
    return sorted(set(out))


@dataclass
class Context:
    spec: ImageSpec
    files: list[Path]
    wheels: list[Path]
    digest: str = field(default="")

    def compute_digest(self, parent_ids: list[str]) -> str:
        """Content digest of everything the build reads: skips rebuilds whose inputs did not change."""
        h = hashlib.sha256()
        for pid in parent_ids:
            h.update(pid.encode())
        for p in self.files:
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(hashlib.sha256(p.read_bytes()).digest())
        for w in self.wheels:  # wheel file names carry name+version+tags; content is immutable
            h.update(f"{w.name}:{w.stat().st_size}".encode())
        self.digest = h.hexdigest()[:32]
        return self.digest

    def write_tar(self, fileobj: io.RawIOBase) -> None:
        """Stream the context as a tar of repo-relative files (the wheels are served, see WheelServer)."""
        def add(path: Path, arcname: str) -> None:
            info = tarfile.TarInfo(arcname)
            info.size = path.stat().st_size
            info.mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            info.mtime = 0  # stable headers: identical inputs hit the builder cache
            with open(path, "rb") as fh:
                tar.addfile(info, fh)

        with tarfile.open(fileobj=fileobj, mode="w|") as tar:
            for p in self.files:
                add(p, p.relative_to(ROOT).as_posix())


def make_context(spec: ImageSpec, wheelhouse: Path, torch_wheels: dict[str, Path] | None) -> Context:
    return Context(spec, _context_files(spec), wheels_for(spec, wheelhouse, torch_wheels))


# A fixed port keeps the WHEELS build argument, and so Docker's layer cache, the same from one
# build to the next; another free port is used (and the layers after the ARG rebuilt) when taken.
WHEEL_PORT = int(os.environ.get("APT_WHEEL_PORT", "38619"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # pip's own output says what it fetched
        pass


class WheelServer:
    """``with WheelServer(wheels) as url``: exactly these wheels, listed at ``url`` for pip's
    ``--find-links`` and served from 127.0.0.1 until the block ends."""

    def __init__(self, wheels: list[Path]):
        self._dir = tempfile.TemporaryDirectory(prefix="apt-wheels-")
        for w in wheels:
            os.symlink(w.resolve(), Path(self._dir.name) / w.name)
        handler = functools.partial(_QuietHandler, directory=self._dir.name)
        try:
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", WHEEL_PORT), handler)
        except OSError as exc:
            print(f">> port {WHEEL_PORT} is taken ({exc.strerror}); serving wheels on another port, "
                  "so Docker's cache of the pip layers is not reused this time (set APT_WHEEL_PORT)")
            self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self._thread.start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._dir.cleanup()
