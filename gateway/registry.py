"""Installed plugins: deployment, persisted state, health and endpoint selection.

State lives in ``APT_HOME/gateway/plugins.json`` so a gateway restart loses nothing: on
start the registry asks the deployer for the instances still running and re-attaches to
them, or redeploys a plugin whose instances are gone.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from apt_model import errors
from apt_model.runtime.settings import SHARED_VARIABLES, Settings
from apt_model.store import write_json_atomic
from gateway.catalog import Catalog, CatalogEntry
from gateway.deploy.base import Deployer, check_serving

log = logging.getLogger(__name__)

REDISCOVER_AFTER = 2  # health rounds with every endpoint down before asking the deployer again


@dataclass
class Installed:
    name: str
    endpoints: list[str]
    replicas: int
    deployer: str
    installed_at: str
    healthy: dict[str, bool] = field(default_factory=dict)
    unhealthy_rounds: int = 0  # consecutive health rounds with no healthy endpoint
    _cycle: object = None

    def healthy_endpoints(self) -> list[str]:
        return [e for e in self.endpoints if self.healthy.get(e, True)]

    def next_endpoint(self) -> str | None:
        live = self.healthy_endpoints()
        if not live:
            return None
        if self._cycle is None or getattr(self._cycle, "members", None) != live:
            self._cycle = _Cycle(live)
        return self._cycle.next()


class _Cycle:
    def __init__(self, members: list[str]):
        self.members = list(members)
        self._it = itertools.cycle(self.members)
        self._lock = threading.Lock()

    def next(self) -> str:
        with self._lock:
            return next(self._it)


class Registry:
    def __init__(self, settings: Settings, catalog: Catalog, deployer: Deployer):
        self.settings = settings
        self.catalog = catalog
        self.deployer = deployer
        self.state_path = Path(settings.home) / "gateway" / "plugins.json"
        self._lock = threading.RLock()
        self._installed: dict[str, Installed] = {}
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._listeners: list[Callable[[], None]] = []

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` whenever the set of routable endpoints may have changed."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()

    def route_table(self) -> dict:
        """What the native data plane needs: service -> plugin, and healthy endpoints per plugin."""
        with self._lock:
            endpoints = {n: i.healthy_endpoints() for n, i in self._installed.items()}
        return {"services": self.catalog.services(), "plugins": sorted(self.catalog.entries),
                "endpoints": {n: e for n, e in endpoints.items() if e}}

    # -- lifecycle ---------------------------------------------------------------------------
    def plugin_env(self, entry: CatalogEntry) -> dict[str, str]:
        """What the gateway hands a plugin it deploys: its token, the operator's trust settings (so
        a plugin allows exactly the paths and endpoints the gateway does), and the plugin's own
        settings (its plugin.yaml ``settings:``) as set in the gateway's environment. Never one of
        the platform's own variables that way: a plugin.yaml cannot declare one
        (apt_model.runtime.plugin_settings), and none is taken here even if it did."""
        s = self.settings
        env = {"APT_INTERNAL_TOKEN": s.internal_token, "APT_LOG_LEVEL": s.log_level,
               "APT_MAX_MESSAGE_BYTES": str(s.max_message_bytes),
               "APT_DATA_ROOTS": os.pathsep.join(s.data_roots),
               "APT_ALLOWED_ENDPOINTS": ",".join(s.allowed_endpoints),
               "APT_MAX_MODEL_PARAMS": str(s.max_model_params),
               "APT_MAX_QUEUED_JOBS": str(s.max_queued_jobs), "APT_STORE_QUOTA": str(s.store_quota)}
        if s.secrets_dir is not None:
            env["APT_SECRETS_DIR"] = str(s.secrets_dir)
        own = {k: v for k, v in s.plugin_env.items() if k in entry.setting_names and k not in SHARED_VARIABLES}
        return {**env, **own}

    def restore(self) -> None:
        """Re-attach to the plugins recorded on disk (redeploying those no longer running)."""
        if not self.state_path.exists():
            return
        for name, rec in json.loads(self.state_path.read_text()).items():
            entry = self.catalog.entries.get(name)
            if entry is None:
                log.warning("installed plugin %s is no longer in the catalogue; forgetting it", name)
                continue
            endpoints = self.deployer.discover(entry)
            if not endpoints:
                log.info("plugin %s is not running any more; redeploying", name)
                try:
                    endpoints = self.deployer.deploy(entry, rec.get("replicas", 1), self.plugin_env(entry))
                except errors.AptError as exc:
                    log.error("cannot redeploy %s: %s", name, exc.message)
                    endpoints = rec.get("endpoints", [])
            inst = Installed(name, endpoints, rec.get("replicas", 1), self.deployer.name,
                             rec.get("installed_at", ""))
            inst.healthy = {e: check_serving(e) for e in endpoints}
            self._installed[name] = inst
        self._save()
        self._changed()

    def start_monitor(self) -> None:
        self._monitor = threading.Thread(target=self._watch_health, name="plugin-health", daemon=True)
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()

    def _watch_health(self) -> None:
        while not self._stop.wait(self.settings.health_interval):
            self.refresh_health()

    def refresh_health(self) -> None:
        with self._lock:
            items = [(i, list(i.endpoints)) for i in self._installed.values()]
        flipped = False
        for inst, endpoints in items:
            for endpoint in endpoints:
                ok = check_serving(endpoint)
                if inst.healthy.get(endpoint, True) != ok:
                    log.warning("plugin %s at %s is now %s", inst.name, endpoint, "healthy" if ok else "unhealthy")
                    flipped = True
                inst.healthy[endpoint] = ok
            inst.unhealthy_rounds = 0 if inst.healthy_endpoints() else inst.unhealthy_rounds + 1
            if inst.unhealthy_rounds == REDISCOVER_AFTER:
                self._rediscover(inst)
        if flipped:
            self._changed()

    def _rediscover(self, inst: Installed) -> None:
        """Endpoints can move (a restarted pod gets a new IP): ask the deployer where it runs now."""
        entry = self.catalog.entries.get(inst.name)
        if entry is None:
            return
        try:
            found = self.deployer.discover(entry)
        except errors.AptError as exc:
            log.warning("cannot rediscover %s: %s", inst.name, exc.message)
            return
        if found and set(found) != set(inst.endpoints):
            log.info("plugin %s moved: %s -> %s", inst.name, inst.endpoints, found)
            with self._lock:
                inst.endpoints = found
                inst.healthy = {e: True for e in found}
                inst.unhealthy_rounds = 0
                self._save()
            self._changed()

    def mark_unhealthy(self, name: str, endpoint: str) -> None:
        inst = self._installed.get(name)
        if inst is not None and endpoint in inst.endpoints and inst.healthy.get(endpoint, True):
            inst.healthy[endpoint] = False
            self._changed()

    def _save(self) -> None:
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        data = {n: {"endpoints": i.endpoints, "replicas": i.replicas, "deployer": i.deployer,
                    "installed_at": i.installed_at} for n, i in self._installed.items()}
        write_json_atomic(self.state_path, data)

    # -- operations --------------------------------------------------------------------------
    def install(self, name: str, replicas: int = 1) -> Installed:
        entry = self.catalog.get(name)
        if not entry.available:
            raise errors.FailedPrecondition(
                f"Plugin {name!r} is not available yet: its operations are not built. "
                "Run 'apt-model plugin list' to see the plugins that can be installed."
            )
        if not 1 <= replicas <= 32:
            raise errors.InvalidArgument(f"replicas must be between 1 and 32, got {replicas}.")
        with self._lock:
            current = self._installed.get(name)
            if current is not None and current.replicas == replicas and len(current.healthy_endpoints()) == replicas:
                return current  # already installed as asked: installing is idempotent
            found = [] if current is not None else self.deployer.discover(entry)
            if found and len(found) == replicas:
                # instances started outside the gateway (docker-compose, a previous gateway): adopt them
                endpoints = found
                log.info("plugin %s: adopting %d running instance(s)", name, len(found))
            else:
                if current is not None or found:
                    self.deployer.remove(name)
                    self._installed.pop(name, None)
                endpoints = self.deployer.deploy(entry, replicas, self.plugin_env(entry))
            inst = Installed(name, endpoints, replicas, self.deployer.name,
                             dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
            inst.healthy = {e: True for e in endpoints}
            self._installed[name] = inst
            self._save()
        self._changed()
        return inst

    def uninstall(self, name: str) -> None:
        self.catalog.get(name)
        with self._lock:
            if name not in self._installed:
                raise errors.FailedPrecondition(f"Plugin {name!r} is not installed.")
            self.deployer.remove(name)
            del self._installed[name]
            self._save()
        self._changed()

    def installed(self, name: str) -> Installed | None:
        return self._installed.get(name)

    def all_installed(self) -> list[Installed]:
        return list(self._installed.values())

    def endpoint_for(self, plugin: str) -> str:
        """A healthy endpoint of an installed plugin (round-robin), or UNAVAILABLE with the fix."""
        inst = self._installed.get(plugin)
        if inst is None:
            raise errors.Unavailable(
                f"Plugin {plugin!r} is not installed. Install it with: apt-model plugin install {plugin}"
            )
        endpoint = inst.next_endpoint()
        if endpoint is None:
            raise errors.Unavailable(
                f"Plugin {plugin!r} is installed but not answering health checks. Check its log, "
                f"or reinstall it with: apt-model plugin install {plugin}"
            )
        return endpoint

    def status_of(self, entry: CatalogEntry) -> tuple[str, str]:
        """(status, message) for plugin listings."""
        if not entry.available:
            return "NOT_AVAILABLE_YET", "not available yet: its operations are not built"
        inst = self._installed.get(entry.name)
        if inst is None:
            return "AVAILABLE", f"not installed; install with: apt-model plugin install {entry.name}"
        live = inst.healthy_endpoints()
        if not live:
            return "UNHEALTHY", "installed, not answering health checks"
        return "INSTALLED", f"{len(live)}/{len(inst.endpoints)} replicas healthy"
