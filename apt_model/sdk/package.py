"""``apt-model plugin package FOLDER``: a plugin folder as a wheel that registers it with the gateway.

The wheel holds one package, ``apt_plugin_<snake>``, that carries the plugin folder unchanged as
``apt_plugin_<snake>/<name>/`` and an ``apt.plugins`` entry point ``<name> = apt_plugin_<snake>``.
``pip install`` it into the gateway's environment and the catalogue lists the plugin
(gateway/catalog.py finds the folder without importing anything from it); the deployers then use
the folder exactly as one on APT_PLUGIN_PATH. Its requirements.txt becomes the wheel's
dependencies, so pip installs them too. setuptools builds it (through ``pip wheel``, without
build isolation: no index is needed).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from apt_model import errors
from apt_model.runtime.manifest import PluginManifest, read_requirements

ENTRY_POINT_GROUP = "apt.plugins"
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".git", "*.egg-info", "build", "dist")


def carrier(name: str) -> str:
    """The package that carries plugin ``name``'s folder."""
    return "apt_plugin_" + name.replace("-", "_")


def pyproject(manifest: PluginManifest) -> str:
    pkg = carrier(manifest.name)
    deps = [f"{n}{s}" for n, s in manifest.requirements]
    q = json.dumps  # a JSON string is a valid TOML basic string
    return "\n".join([
        "[build-system]",
        'requires = ["setuptools>=68"]',
        'build-backend = "setuptools.build_meta"',
        "",
        "[project]",
        f"name = {q('apt-plugin-' + manifest.name)}",
        f"version = {q(manifest.version)}",
        f"description = {q(manifest.description)}",
        f"dependencies = {q(deps)}",
        "",
        f'[project.entry-points.{q(ENTRY_POINT_GROUP)}]',
        f"{q(manifest.name)} = {q(pkg)}",
        "",
        "[tool.setuptools]",
        f"packages = {q([pkg])}",
        "include-package-data = false",
        "",
        "[tool.setuptools.package-data]",
        f"{pkg} = {q([manifest.name + '/**/*'])}",
        "",
    ])


def build_wheel(folder: Path | str, out_dir: Path | str) -> Path:
    """Build the wheel of the plugin folder ``folder`` into ``out_dir``; its path."""
    manifest = PluginManifest.load(folder)  # refuses a folder that is no valid plugin
    out_dir = Path(out_dir).resolve()
    try:
        import setuptools  # noqa: F401  (pip runs it in this environment: no build isolation)
    except ImportError:
        raise errors.FailedPrecondition(
            f"Packaging a plugin needs setuptools in {sys.executable}'s environment: "
            f"{sys.executable} -m pip install setuptools") from None
    with tempfile.TemporaryDirectory(prefix="apt-plugin-package-") as tmp:
        src = Path(tmp) / "src"
        pkg = src / carrier(manifest.name)
        shutil.copytree(manifest.dir, pkg / manifest.name, ignore=_SKIP, symlinks=False)
        (pkg / "__init__.py").write_text(f'"""Carries the {manifest.name} plugin folder for the APT gateway '
                                         f'(entry point group {ENTRY_POINT_GROUP})."""\n')
        (src / "pyproject.toml").write_text(pyproject(manifest))
        built = Path(tmp) / "wheel"
        run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                              "--no-index", "-q", "-w", str(built), str(src)], capture_output=True, text=True)
        if run.returncode != 0:
            raise errors.FailedPrecondition(f"Building the wheel of {manifest.dir} failed:\n{(run.stdout + run.stderr)[-3000:]}")
        (wheel,) = built.glob("*.whl")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / wheel.name
        shutil.move(str(wheel), target)
    return target
