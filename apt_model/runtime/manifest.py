"""A plugin's catalogue entry, read from ``services/<plugin>/plugin.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import yaml

from apt_model import errors

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_KEYS = {"name", "version", "description", "available", "module", "services", "wants_gpu",
         "imports", "optional_requirements"}
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-\[\]]*)\s*(.*?)\s*(#.*)?$")


def validate_plugin_name(name: str) -> str:
    if not isinstance(name, str) or not PLUGIN_NAME_RE.match(name):
        raise errors.InvalidArgument(
            f"Invalid plugin name {name!r}: use lower-case letters, digits and '-' "
            "(run 'apt-model plugin list' for the catalogue)."
        )
    return name


def _walk(path: Path, seen: set[Path]) -> Iterator[tuple[Path, str]]:
    """(file, requirement line) in reading order, ``-r`` includes expanded in place, each file once."""
    path = path.resolve()
    if path in seen or not path.exists():
        return
    seen.add(path)
    yield path, ""
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            yield from _walk(path.parent / line[3:].strip(), seen)
        elif line:
            yield path, line


def requirement_files(path: Path) -> list[Path]:
    """``path`` and every requirements file it reads through ``-r`` (missing ones left out)."""
    return [file for file, line in _walk(Path(path), set()) if not line]


def read_requirements(path: Path) -> list[tuple[str, str]]:
    """(name, specifier) of every requirement in a requirements file, following ``-r``."""
    matches = (_REQ_RE.match(line) for _, line in _walk(Path(path), set()) if line and not line.startswith("-"))
    return [m.group(1, 2) for m in matches if m]


@dataclass(frozen=True)
class PluginManifest:
    name: str
    version: str
    description: str
    available: bool
    module: str
    services: tuple[str, ...]
    wants_gpu: bool
    imports: tuple[str, ...]
    dir: Path
    requirements: tuple[tuple[str, str], ...] = field(default=())
    optional_requirements: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def load(cls, plugin_dir: Path | str) -> "PluginManifest":
        plugin_dir = Path(plugin_dir).resolve()
        path = plugin_dir / "plugin.yaml"
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError as exc:
            raise errors.NotFound(f"{path} is missing: not a plugin folder.") from exc
        except yaml.YAMLError as exc:
            raise errors.FailedPrecondition(f"{path} is not valid YAML: {exc}") from exc
        if "operations" in data:
            raise errors.FailedPrecondition(
                f"{path}: 'operations' is no longer read: a plugin's operations, their help and their "
                "arguments come from its proto (comments and (apt.options.v1.rules)); remove the key.")
        unknown = set(data) - _KEYS
        if unknown:
            raise errors.FailedPrecondition(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_KEYS)}.")
        name = validate_plugin_name(data.get("name", ""))
        if name != plugin_dir.name:
            raise errors.FailedPrecondition(f"{path}: name {name!r} differs from its folder {plugin_dir.name!r}.")
        optional = tuple((n, s) for n, s in (_REQ_RE.match(r).group(1, 2) for r in data.get("optional_requirements", [])))
        return cls(
            name=name,
            version=str(data.get("version", "0.0.0")),
            description=str(data.get("description", "")),
            available=bool(data.get("available", False)),
            module=str(data.get("module", "")),
            services=tuple(data.get("services", [])),
            wants_gpu=bool(data.get("wants_gpu", False)),
            imports=tuple(data.get("imports", [])),
            dir=plugin_dir,
            requirements=tuple(read_requirements(plugin_dir / "requirements.txt")),
            optional_requirements=optional,
        )

    @property
    def requirement_lines(self) -> list[str]:
        return [f"{n}{s}" for n, s in self.requirements]
