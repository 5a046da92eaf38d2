"""What each service image is made of, the build context that makes it, and its wheels.

Every image is built from a tar stream holding only the repository files its Dockerfile copies.
Its wheels, the ones its requirements resolve to in the host wheelhouse, are served to the build
over HTTP on the host's loopback (``WheelServer``; builds run with ``--network host``) rather
than copied in: a wheel in the context would be written into a layer and copied again, which on
storage drivers without native diffs (fuse-overlayfs) multiplies the time of the 4 GB torch
layer. Two bases come from docker/base.Dockerfile: ``apt/torch-base`` (requirements/torch.txt)
and ``apt/slim-base`` (requirements/runtime.txt). The gateway and every plugin whose plugin.yaml
says ``base: torch`` build FROM the first, ``base: slim`` plugins FROM the second, and each is
served only the wheels its base lacks, so the torch layer exists once on the host. Every plugin
image is docker/plugin.Dockerfile with the plugin folder as a build argument, unless the folder
carries a Dockerfile of its own.

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


ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python docker/images.py`: the repo's own package is beside it
    sys.path.insert(0, str(ROOT))

from apt_model.errors import AptError  # noqa: E402
from apt_model.runtime.manifest import PluginManifest  # noqa: E402
from apt_model.runtime.manifest import requirement_files as manifest_requirement_files  # noqa: E402

LOCAL_BASE = "apt/python-base:3.11-bookworm"   # made by docker/build_base.sh
PUBLIC_BASE = "python:3.11-slim"
BASE_DOCKERFILE = "docker/base.Dockerfile"
PLUGIN_DOCKERFILE = "docker/plugin.Dockerfile"
# The apt base images and what each installs; a plugin.yaml's base: torch|slim names one.
BASE_REQUIREMENTS = {"torch-base": "requirements/torch.txt", "slim-base": "requirements/runtime.txt"}
# Machine-level, like pip's cache: a fresh clone on the same machine reuses the 4 GB of wheels.
DEFAULT_WHEELHOUSE = Path(os.environ.get("APT_WHEELHOUSE") or
                          Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apt" / "wheelhouse")
# Never shipped: tests, caches and a plugin's tools (checks run from a checkout) stay out of every image.
_EXCLUDED_PARTS = {"__pycache__", ".pytest_cache", "tests", "tools", ".mypy_cache"}
_EXCLUDED_SUFFIXES = (".pyc", ".pyo")
# Test support is not shipped either: the testing library (apt_model/testing: fixtures, the local
# hub and object-store servers) and any plugin's own (apt_storage/testing, apt_hf_testing), and
# the gateway's attack drivers for the security tests, which import the testing library.
_EXCLUDED_FILES = {"gateway/hostile.py"}


def _is_test_support(rel: str) -> bool:
    """``rel`` (a context path) is test support: under a folder named testing or *_testing."""
    folders = rel.split("/")[:-1]
    return rel in _EXCLUDED_FILES or any(f == "testing" or f.endswith("_testing") for f in folders)


class BuildError(RuntimeError):
    """A build cannot proceed; the message says what to run or fix."""


@dataclass(frozen=True)
class ImageSpec:
    name: str                    # "torch-base", "slim-base", "gateway" or the plugin name
    dockerfile: str              # repo-relative path
    requirements: tuple[str, ...]  # repo-relative requirements files installed in the image
    files: tuple[str, ...]       # repo-relative files/folders copied into the context
    parent: str = ""             # the apt base it builds FROM (a BASE_REQUIREMENTS key); "" = ${BASE_IMAGE}
    build_args: tuple[tuple[str, str], ...] = ()  # besides WHEELS and the parent image
    plugin_dir: str = ""         # repo-relative plugin folder ("" for the gateway and the bases)
    module: str = ""             # `python -m` module of a plugin
    source: str = ""             # a plugin folder outside this repository: its absolute path, which
                                 # the context holds at plugin_dir (plugins/<name>)

    def arcname(self, path: Path) -> str:
        """Where a file of this image's inputs sits in the build context."""
        if self.source and path.is_relative_to(self.source):
            return f"{self.plugin_dir}/{path.relative_to(self.source).as_posix()}"
        return path.relative_to(ROOT).as_posix()

    def tag(self, prefix: str = "apt", version: str = "latest") -> str:
        return f"{prefix}/{self.name}:{version}"


def requirement_files(*req_files: str) -> tuple[str, ...]:
    """Repo-relative requirements files these read, following ``-r`` (plus the shared runtime).

    Contexts carry exactly these, not all of ``requirements/``: an edit to an unrelated pin (say
    dev.txt) must not invalidate the 7 GB torch layer and every image built on it.
    """
    files = {f for r in (*req_files, "requirements/runtime.txt") for f in manifest_requirement_files(ROOT / r)}
    return tuple(sorted(f.relative_to(ROOT).as_posix() for f in files))


# Every service image's entry point and health check (/app/run_plugin.py, /app/healthcheck.py).
ENTRY_FILES = ("docker/healthcheck.py", "docker/run_plugin.py")


def plugin_spec(plugin_dir: Path) -> ImageSpec | None:
    """The image of one plugin folder, or None when its plugin.yaml says ``available: false``."""
    try:
        manifest = PluginManifest.load(plugin_dir)
    except AptError as exc:
        raise BuildError(exc.message) from None
    if not manifest.available:
        return None
    parent = f"{manifest.base}-base"
    if not manifest.dir.is_relative_to(ROOT):
        return _outside_plugin_spec(manifest, parent)
    rel = manifest.dir.relative_to(ROOT).as_posix()
    own = manifest.dir / "Dockerfile"
    requirements = requirement_files(f"{rel}/requirements.txt")
    if not own.exists():
        # the template copies only the plugin's requirements.txt: its -r includes must be in the base
        missing = sorted(f for f in requirements
                         if not f.startswith(f"{rel}/") and f not in requirement_files(BASE_REQUIREMENTS[parent]))
        if missing:
            raise BuildError(f"{rel}/requirements.txt includes {', '.join(missing)}, which apt/{parent} does not "
                             f"hold (only {BASE_REQUIREMENTS[parent]} and what it includes): list those "
                             "requirements in the plugin's own requirements.txt.")
    return ImageSpec(
        name=manifest.name, dockerfile=(own.relative_to(ROOT).as_posix() if own.exists() else PLUGIN_DOCKERFILE),
        requirements=(f"{rel}/requirements.txt",), files=("apt_model", *requirements, rel), parent=parent,
        build_args=_plugin_build_args(manifest, rel), plugin_dir=rel, module=manifest.module,
    )


def _plugin_build_args(manifest: PluginManifest, rel: str) -> tuple[tuple[str, str], ...]:
    """The template's arguments: where the folder is, its name, and the Debian packages it installs."""
    args = (("PLUGIN_DIR", rel), ("PLUGIN_NAME", manifest.name))
    return (*args, ("SYSTEM_PACKAGES", " ".join(manifest.system_packages))) if manifest.system_packages else args


def _outside_plugin_spec(manifest: PluginManifest, parent: str) -> ImageSpec:
    """A plugin folder outside this repository (APT_PLUGIN_PATH, `apt-model plugin new`): the
    template builds it from the folder as it is, placed at plugins/<name> in the context."""
    req = manifest.dir / "requirements.txt"
    if (manifest.dir / "Dockerfile").exists():
        raise BuildError(f"{manifest.dir} has its own Dockerfile: a plugin outside {ROOT} is built with "
                         f"{PLUGIN_DOCKERFILE} only; remove its Dockerfile or build it yourself with docker build.")
    includes = [line for line in (req.read_text().splitlines() if req.exists() else []) if line.startswith("-")]
    if not req.exists() or includes:
        raise BuildError(f"{req}: a plugin outside {ROOT} needs a requirements.txt listing its own packages "
                         f"(no -r or other options; found {includes or 'no file'}).")
    rel = f"plugins/{manifest.name}"
    return ImageSpec(
        name=manifest.name, dockerfile=PLUGIN_DOCKERFILE, requirements=(str(req),),
        files=("apt_model", *requirement_files(), str(manifest.dir)), parent=parent,
        build_args=_plugin_build_args(manifest, rel), plugin_dir=rel, module=manifest.module,
        source=str(manifest.dir),
    )


def base_spec(name: str) -> ImageSpec:
    """apt/torch-base or apt/slim-base, both from docker/base.Dockerfile."""
    req = BASE_REQUIREMENTS[name]
    return ImageSpec(name=name, dockerfile=BASE_DOCKERFILE, requirements=(req,),
                     files=(*requirement_files(req), *ENTRY_FILES), build_args=(("REQUIREMENTS", req),))


# The gateway's data plane (router/, Rust), built on the host by `make router`: the images'
# Debian bookworm has the host's glibc, so the binary runs there as built.
ROUTER_BINARY = "router/target/release/apt-router"


def gateway_spec() -> ImageSpec:
    # The gateway's catalogue reads every plugin.yaml (+ requirements.txt) to list plugins.
    catalogue = tuple(f"services/{p.name}/{f}" for p in sorted((ROOT / "services").iterdir())
                      for f in ("plugin.yaml", "requirements.txt") if (p / f).exists())
    return ImageSpec(name="gateway", dockerfile="gateway/Dockerfile",
                     requirements=("gateway/requirements.txt", "gateway/deploy/requirements.txt"),
                     files=("apt_model", "gateway", *requirement_files("gateway/requirements.txt"),
                            ROUTER_BINARY, *catalogue),
                     parent="torch-base")


def all_specs() -> list[ImageSpec]:
    """The bases first, then the gateway, then every available plugin (build order)."""
    specs = [*(base_spec(name) for name in BASE_REQUIREMENTS), gateway_spec()]
    for plugin_dir in sorted((ROOT / "services").iterdir()):
        if (plugin_dir / "plugin.yaml").exists():
            spec = plugin_spec(plugin_dir)
            if spec is not None:
                specs.append(spec)
    return specs


# -- wheels ------------------------------------------------------------------------------------
def resolve_wheels(requirements: tuple[str, ...], wheelhouse: Path, python: str) -> dict[str, Path]:
    """{normalized project name: wheel path} that pip installs for these requirements, offline, on
    the images' interpreter ``python`` (e.g. "3.11.2", the base image's): a wheel that needs a newer
    one than the image has (Requires-Python) is passed over here instead of failing the build."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
               "--python-version", python, "--only-binary=:all:",
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


def wheels_for(spec: ImageSpec, wheelhouse: Path, parent_wheels: dict[str, Path] | None,
               python: str) -> list[Path]:
    """The wheels this image installs: all of them, or for images on an apt base the ones it lacks."""
    wheels = resolve_wheels(spec.requirements, wheelhouse, python)
    if not spec.parent:
        return sorted(wheels.values())
    assert parent_wheels is not None, f"images on apt/{spec.parent} need its wheel set"
    clash = [f"{n}: {wheels[n].name} vs {spec.parent} {parent_wheels[n].name}"
             for n in wheels.keys() & parent_wheels.keys() if wheels[n] != parent_wheels[n]]
    if clash:
        # pip would replace a package of the base inside the service layer: align the pins instead.
        raise BuildError(f"{spec.name} pins versions that differ from apt/{spec.parent} ({'; '.join(clash)}). "
                         f"Use the versions of {BASE_REQUIREMENTS[spec.parent]}.")
    return sorted(p for n, p in wheels.items() if n not in parent_wheels)


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
            if parts & _EXCLUDED_PARTS or p.suffix in _EXCLUDED_SUFFIXES or _is_test_support(spec.arcname(p)):
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
            h.update(self.spec.arcname(p).encode())
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
                add(p, self.spec.arcname(p))


def make_context(spec: ImageSpec, wheelhouse: Path, parent_wheels: dict[str, Path] | None,
                 python: str) -> Context:
    return Context(spec, _context_files(spec), wheels_for(spec, wheelhouse, parent_wheels, python))


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
