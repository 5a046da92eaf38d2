"""The plugin catalogue: every ``services/<name>/plugin.yaml``, the plugin folders that installed
packages register under the ``apt.plugins`` entry-point group, and folders on APT_PLUGIN_PATH."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from pathlib import Path

from apt_model import errors
from apt_model.runtime.manifest import PluginManifest, validate_plugin_name
from apt_model.sdk.package import ENTRY_POINT_GROUP

CatalogEntry = PluginManifest
log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = REPO_ROOT / "services"


def entry_point_folders() -> tuple[dict[str, Path], dict[str, str]]:
    """Plugin name -> folder for each ``apt.plugins`` entry point of the installed packages, and
    name -> why for those that name no plugin folder. An entry point ``word-stats =
    apt_plugin_word_stats`` names a top-level package that carries the plugin folder as
    ``apt_plugin_word_stats/word-stats/`` (what `apt-model plugin package` builds). The package
    is located, never imported: no code of it runs in the gateway."""
    found, broken = {}, {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {ep.name} = {ep.value}" + (f" of {ep.dist.name}" if ep.dist else "")
        try:
            validate_plugin_name(ep.name)  # it becomes a folder name below: no '/', no '..'
        except errors.AptError as exc:
            broken[ep.name] = f"{where}: {exc.message}"
            continue
        if not ep.value.isidentifier():
            broken[ep.name] = f"{where}: the value must be a top-level package name (the package carrying the folder)."
            continue
        spec = importlib.util.find_spec(ep.value)
        locations = list(spec.submodule_search_locations or []) if spec else []
        folder = next((Path(loc) / ep.name for loc in locations if (Path(loc) / ep.name / "plugin.yaml").exists()), None)
        if folder is None:
            broken[ep.name] = f"{where}: no folder {ep.name}/ with a plugin.yaml in that package."
            continue
        found[ep.name] = folder
    return found, broken


class Catalog:
    def __init__(self, extra_dirs: tuple[str, ...] = ()):
        self.entries: dict[str, CatalogEntry] = {}
        packaged, broken = entry_point_folders()
        self.broken: dict[str, str] = broken  # plugin (folder) name -> why it was rejected
        for name, why in self.broken.items():
            log.error("plugin %s is skipped: %s", name, why)
        # later roots win a name: built-in, then installed packages, then the operator's own folders
        roots = [SERVICES_DIR, *packaged.values(), *(Path(d) for d in extra_dirs)]
        for root in roots:
            if (root / "plugin.yaml").exists():
                candidates = [root]
            elif root.is_dir():
                candidates = sorted(p for p in root.iterdir() if (p / "plugin.yaml").exists())
            else:
                candidates = []
            for folder in candidates:
                try:
                    entry = PluginManifest.load(folder)
                except errors.AptError as exc:
                    # one broken manifest must not take the gateway down: report it loudly
                    log.error("plugin folder %s is skipped: %s", folder, exc.message)
                    self.broken[folder.name] = exc.message
                    continue
                if entry.name in self.entries:
                    log.warning("plugin %s from %s replaces the one from %s", entry.name, folder,
                                self.entries[entry.name].dir)
                self.entries[entry.name] = entry
        self._by_service = {svc: e.name for e in self.entries.values() for svc in e.services}

    def get(self, name: str) -> CatalogEntry:
        validate_plugin_name(name)
        if name in self.broken:
            raise errors.FailedPrecondition(f"Plugin {name!r} cannot be loaded: {self.broken[name]}")
        try:
            return self.entries[name]
        except KeyError:
            raise errors.NotFound(
                f"No plugin named {name!r}. Known plugins: {', '.join(sorted(self.entries))}."
            ) from None

    def services(self) -> dict[str, str]:
        """Every full proto service name in the catalogue -> its plugin."""
        return dict(self._by_service)

    def plugin_for_service(self, service: str) -> str | None:
        """The plugin serving a full proto service name, e.g. apt.plugins.model_pruning.v1.Pruning."""
        name = self._by_service.get(service)
        if name is None and service.startswith("apt.plugins."):
            # apt.plugins.<pkg>.v1.X: a service not listed in plugin.yaml still maps by package
            pkg = service.split(".")[2].replace("_", "-")
            name = pkg if pkg in self.entries else None
        return name
