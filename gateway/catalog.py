"""The plugin catalogue: every ``services/<name>/plugin.yaml`` plus folders on APT_PLUGIN_PATH."""

from __future__ import annotations

import logging
from pathlib import Path

from apt_model import errors
from apt_model.runtime.manifest import PluginManifest, validate_plugin_name

CatalogEntry = PluginManifest
log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICES_DIR = REPO_ROOT / "services"


class Catalog:
    def __init__(self, extra_dirs: tuple[str, ...] = ()):
        self.entries: dict[str, CatalogEntry] = {}
        self.broken: dict[str, str] = {}  # folder name -> why its plugin.yaml was rejected
        roots = [SERVICES_DIR, *(Path(d) for d in extra_dirs)]
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
                self.entries[entry.name] = entry
        self._by_service = {svc: e.name for e in self.entries.values() for svc in e.services}

    def get(self, name: str) -> CatalogEntry:
        validate_plugin_name(name)
        if name in self.broken:
            raise errors.FailedPrecondition(f"Plugin {name!r} has a broken plugin.yaml: {self.broken[name]}")
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
