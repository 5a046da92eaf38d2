"""A plugin's catalogue entry, read from ``services/<plugin>/plugin.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterator

import yaml

from apt_model import errors
from apt_model.runtime.plugin_settings import SettingSpec, declared_settings

PLUGIN_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{1,40}$")
_KEYS = {"name", "version", "description", "available", "module", "services", "wants_gpu",
         "imports", "optional_requirements", "base", "egress", "resources", "settings", "system_packages",
         "multi_node"}
_REQ_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-\[\]]*)\s*(.*?)\s*(#.*)?$")


# -- what a plugin's deployment needs: base image, network, resources ----------------------------
BASES = ("torch", "slim")  # apt/torch-base (the shared torch layer) or apt/slim-base (no torch)
EGRESS = ("none", "internet")  # internet: may reach public addresses (hubs, buckets, Ollama)
# Debian package names (policy 5.6.1): what an image installs with apt-get besides its pip packages.
_DEBIAN_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{1,62}$")
# Kubernetes quantities: cpu in cores or millicores, memory in bytes with an SI or binary suffix.
_CPU_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m?)$")
_MEMORY_RE = re.compile(r"^([0-9]+)(k|M|G|T|Ki|Mi|Gi|Ti)?$")
_MEMORY_UNIT = {None: 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}


@dataclass(frozen=True)
class Resources:
    """What one replica asks for (Kubernetes requests) and may use at most (its memory limit)."""
    cpu: str           # request, e.g. "500m"
    memory: str        # request, e.g. "2Gi"
    memory_limit: str  # limit, e.g. "16Gi": the pod's and the container's (docker, compose) memory limit

    @property
    def memory_limit_bytes(self) -> int:
        return memory_bytes(self.memory_limit)


# Used where plugin.yaml says nothing: what the plugins of each base need today.
DEFAULT_RESOURCES = {"torch": Resources(cpu="500m", memory="2Gi", memory_limit="16Gi"),
                     "slim": Resources(cpu="100m", memory="128Mi", memory_limit="1Gi")}


def memory_bytes(quantity: str) -> int:
    """Bytes of a Kubernetes memory quantity ("512Mi", "16Gi", "1000000"); ValueError otherwise."""
    m = _MEMORY_RE.fullmatch(str(quantity))
    if not m:
        raise ValueError(f"{quantity!r} is not a memory quantity such as 512Mi or 16Gi")
    return int(m.group(1)) * _MEMORY_UNIT[m.group(2)]


def _deployment_keys(data: dict, path: Path, requirements: list[tuple[str, str]]) -> dict[str, Any]:
    """base, egress, resources, wants_gpu and multi_node of a plugin.yaml, checked; defaults filled in."""
    def bad(message: str) -> errors.FailedPrecondition:
        return errors.FailedPrecondition(f"{path}: {message}")

    flags = {key: data.get(key, False) for key in ("wants_gpu", "multi_node")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise bad(f"{key} must be true or false, not {value!r}.")
    pulls_torch = any(n.lower() == "torch" for n, _ in requirements)
    base = data.get("base", "torch" if pulls_torch else "slim")
    if base not in BASES:
        raise bad(f"base {base!r} is not one of {', '.join(BASES)} (torch: built on apt/torch-base; "
                  "slim: apt/slim-base, no torch).")
    if base == "slim" and pulls_torch:
        raise bad("base is slim but requirements.txt installs torch: set base: torch, so the image builds "
                  "on apt/torch-base and shares its torch layer instead of carrying its own.")
    egress = data.get("egress", "none")
    if egress not in EGRESS:
        raise bad(f"egress {egress!r} is not one of {', '.join(EGRESS)} (internet: the plugin may reach "
                  "public addresses; none: only the gateway and DNS).")
    given = data.get("resources", {})
    if not isinstance(given, dict):
        raise bad(f"resources must be a mapping such as {{cpu: 500m, memory: 2Gi, memory_limit: 16Gi}}, "
                  f"not {given!r}.")
    unknown = set(given) - {"cpu", "memory", "memory_limit"}
    if unknown:
        raise bad(f"unknown resources keys {sorted(unknown)}; allowed: cpu, memory, memory_limit.")
    resources = replace(DEFAULT_RESOURCES[base], **{k: str(v) for k, v in given.items()})
    cpu = _CPU_RE.fullmatch(resources.cpu)
    if not cpu or float(cpu.group(1)) <= 0:
        raise bad(f"resources.cpu {resources.cpu!r} is not a CPU quantity such as 500m or 2.")
    try:
        request, limit = memory_bytes(resources.memory), memory_bytes(resources.memory_limit)
    except ValueError as exc:
        raise bad(f"resources: {exc}.") from None
    if not 0 < request <= limit:
        raise bad(f"resources.memory {resources.memory} must be above 0 and at most "
                  f"memory_limit {resources.memory_limit}.")
    packages = data.get("system_packages", [])
    if not isinstance(packages, list) or not all(isinstance(p, str) and _DEBIAN_PACKAGE_RE.fullmatch(p) for p in packages):
        raise bad(f"system_packages must be a list of Debian package names such as [chromium], not {packages!r}.")
    return {**flags, "base": base, "egress": egress, "resources": resources,
            "system_packages": tuple(packages)}


def validate_plugin_name(name: str) -> str:
    if not isinstance(name, str) or not PLUGIN_NAME_RE.fullmatch(name):
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
    base: str = "slim"           # the image it builds FROM: "torch" or "slim" (BASES)
    egress: str = "none"         # "internet": may reach public addresses (EGRESS)
    resources: Resources = DEFAULT_RESOURCES["slim"]
    settings: tuple[SettingSpec, ...] = ()  # the environment variables it reads (apt_model.runtime.plugin_settings)
    system_packages: tuple[str, ...] = ()  # Debian packages its image installs (chromium for PNG export, ...)
    # it submits Kubeflow PyTorchJobs for nodes > 1 (apt_model.runtime.pytorchjob): on Kubernetes its
    # pod gets a service account allowed pytorchjobs in its namespace, and nothing else (render.py)
    multi_node: bool = False

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
        requirements = read_requirements(plugin_dir / "requirements.txt")
        return cls(
            name=name,
            version=str(data.get("version", "0.0.0")),
            description=str(data.get("description", "")),
            available=bool(data.get("available", False)),
            module=str(data.get("module", "")),
            services=tuple(data.get("services", [])),
            imports=tuple(data.get("imports", [])),
            dir=plugin_dir,
            requirements=tuple(requirements),
            optional_requirements=optional,
            settings=declared_settings(data.get("settings"), path),
            **_deployment_keys(data, path, requirements),
        )

    @property
    def setting_names(self) -> frozenset[str]:
        return frozenset(s.name for s in self.settings)

    @property
    def requirement_lines(self) -> list[str]:
        return [f"{n}{s}" for n, s in self.requirements]
