"""The plugin registry's rules one by one, with instances that are real gRPC servers in this
process (each answers grpc.health.v1, which is all the registry asks of an instance) behind a
deployer that records what it was asked: installing (refusals, idempotence, adopting running
instances, replacing them), the state file, restoring it, health rounds, rediscovery, the round
robin, and what listings say. ``test_registry.py`` covers the same paths with plugin processes
and a gateway; this file is where a rule that is off by one shows (written from a ``make
mutate`` run of gateway-registry, docs/mutation.md).
"""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from apt_model import errors
from apt_model.runtime.settings import Settings
from gateway.catalog import Catalog, CatalogEntry
from gateway.deploy.base import Deployer
from gateway.registry import REDISCOVER_AFTER, Installed, Registry
from gateway.testing import TEST_PLUGINS, unbuilt_plugin


# each test here takes under 2 s: a change that makes one hang (make mutate) fails it in 30 s
pytestmark = pytest.mark.timeout(30)


class Instance:
    """One plugin instance: a gRPC server on a free loopback port with a health service."""

    def __init__(self):
        self.server = grpc.server(ThreadPoolExecutor(2))
        self.health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.endpoint = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()
        self.serving(True)

    def serving(self, yes: bool) -> None:
        self.health.set("", health_pb2.HealthCheckResponse.SERVING if yes else health_pb2.HealthCheckResponse.NOT_SERVING)

    def stop(self) -> None:
        self.server.stop(0).wait(5)


class RecordingDeployer(Deployer):
    """Starts real instances in this process and records every call. ``found`` overrides what
    discover answers (instances started elsewhere); ``fail`` makes deploy or discover refuse."""

    name = "recording"

    def __init__(self):
        self.instances: dict[str, list[Instance]] = {}
        self.calls: list[tuple] = []
        self.found: dict[str, list[str]] = {}
        self.fail: set[str] = set()
        self.envs: dict[str, dict[str, str]] = {}  # the environment each plugin was last deployed with

    def deploy(self, entry: CatalogEntry, replicas: int, env: dict[str, str]) -> list[str]:
        self.calls.append(("deploy", entry.name, replicas))
        self.envs[entry.name] = dict(env)
        if "deploy" in self.fail:
            raise errors.Unavailable(f"{entry.name} crashed at start")
        self.instances[entry.name] = [Instance() for _ in range(replicas)]
        return [i.endpoint for i in self.instances[entry.name]]

    def remove(self, name: str) -> None:
        self.calls.append(("remove", name))
        for instance in self.instances.pop(name, []):
            instance.stop()

    def discover(self, entry: CatalogEntry) -> list[str]:
        self.calls.append(("discover", entry.name))
        if "discover" in self.fail:
            raise errors.Unavailable("the cluster does not answer")
        if entry.name in self.found:
            return list(self.found[entry.name])
        return [i.endpoint for i in self.instances.get(entry.name, [])]

    def stop_all(self) -> None:
        for name in list(self.instances):
            self.remove(name)


@pytest.fixture
def deployer():
    d = RecordingDeployer()
    yield d
    d.stop_all()


@pytest.fixture
def catalog():
    return Catalog(extra_dirs=(str(TEST_PLUGINS),))


def _registry(tmp_path: Path, catalog: Catalog, deployer: Deployer, **settings) -> tuple[Registry, list[int]]:
    registry = Registry(Settings(home=tmp_path / "home", **settings), catalog, deployer)
    changes: list[int] = []
    registry.subscribe(lambda: changes.append(1))
    return registry, changes


def _logged(caplog) -> list[str]:
    """The registry's own log lines, in order."""
    return [r.getMessage() for r in caplog.records if r.name == "gateway.registry"]


def _state(registry: Registry) -> dict:
    return json.loads(registry.state_path.read_text())


def test_install_refuses_what_cannot_be_installed_by_sentence(tmp_path, catalog, deployer):
    folder = unbuilt_plugin(tmp_path)
    registry, _ = _registry(tmp_path, Catalog(extra_dirs=(str(TEST_PLUGINS), str(folder.parent))), deployer)
    with pytest.raises(errors.FailedPrecondition) as caught:
        registry.install("not-built-yet")
    assert str(caught.value) == ("Plugin 'not-built-yet' is not available yet: its operations are not built. "
                                 "Run 'apt-model plugin list' to see the plugins that can be installed.")
    assert registry.status_of(registry.catalog.get("not-built-yet")) == (
        "NOT_AVAILABLE_YET", "not available yet: its operations are not built")
    for bad in (0, 33):
        with pytest.raises(errors.InvalidArgument) as caught:
            registry.install("echo", replicas=bad)
        assert str(caught.value) == f"replicas must be between 1 and 32, got {bad}."
    with pytest.raises(errors.FailedPrecondition) as caught:
        registry.uninstall("echo")
    assert str(caught.value) == "Plugin 'echo' is not installed."
    assert deployer.calls == [] and not registry.state_path.exists()


def test_install_deploys_saves_and_is_idempotent_then_replaces_on_a_new_replica_count(tmp_path, catalog, deployer):
    # a setting of another plugin's in the gateway's environment: echo's env is worked out, without it
    registry, changes = _registry(tmp_path, catalog, deployer, plugin_env={"APT_OLLAMA_URL": "http://ollama:11434"})
    inst = registry.install("echo", replicas=2)
    assert deployer.calls == [("discover", "echo"), ("deploy", "echo", 2)]
    assert (inst.name, inst.replicas, inst.deployer) == ("echo", 2, "recording")
    assert inst.healthy == {e: True for e in inst.endpoints} and len(inst.endpoints) == 2
    assert registry.state_path == tmp_path / "home" / "gateway" / "plugins.json"  # APT_HOME/gateway/plugins.json
    assert _state(registry) == {"echo": {"endpoints": inst.endpoints, "replicas": 2, "deployer": "recording",
                                         "installed_at": inst.installed_at}}
    assert inst.installed_at.endswith("+00:00") and "." not in inst.installed_at  # UTC, whole seconds
    assert deployer.envs["echo"] == registry.plugin_env(catalog.get("echo"))  # its token and settings
    assert changes == [1]

    assert registry.install("echo", replicas=2) is inst  # as asked already: nothing is done
    assert len(deployer.calls) == 2 and changes == [1]

    bigger = registry.install("echo", replicas=3)
    assert deployer.calls[2:] == [("remove", "echo"), ("deploy", "echo", 3)]  # no discover: it is ours
    assert len(bigger.endpoints) == 3 and _state(registry)["echo"]["replicas"] == 3
    assert registry.installed("echo") is bigger and registry.all_installed() == [bigger]

    registry.uninstall("echo")
    assert deployer.calls[-1] == ("remove", "echo") and _state(registry) == {}
    assert registry.installed("echo") is None and registry.all_installed() == []
    assert len(changes) == 3


def test_an_installed_plugin_with_a_dead_replica_is_deployed_again(tmp_path, catalog, deployer):
    registry, _ = _registry(tmp_path, catalog, deployer)
    inst = registry.install("echo", replicas=2)
    inst.healthy[inst.endpoints[0]] = False
    again = registry.install("echo", replicas=2)
    assert again is not inst and deployer.calls[-2:] == [("remove", "echo"), ("deploy", "echo", 2)]
    # a replacement that cannot start leaves no entry routing to the instances just removed
    deployer.fail.add("deploy")
    with pytest.raises(errors.Unavailable, match="echo crashed at start"):
        registry.install("echo", replicas=3)
    assert registry.installed("echo") is None and deployer.instances == {}


def test_install_adopts_exactly_as_many_running_instances_as_asked_and_replaces_others(tmp_path, catalog, deployer,
                                                                                      caplog):
    outside = [Instance(), Instance()]
    try:
        registry, _ = _registry(tmp_path, catalog, deployer)
        deployer.found["echo"] = [i.endpoint for i in outside]
        with caplog.at_level(logging.INFO, logger="gateway.registry"):
            adopted = registry.install("echo", replicas=2)
        assert adopted.endpoints == deployer.found["echo"] and deployer.calls == [("discover", "echo")]
        assert _logged(caplog) == ["plugin echo: adopting 2 running instance(s)"]
        registry.uninstall("echo")

        deployer.found["echo"] = [f"127.0.0.1:{port}" for port in range(1, 33)]  # 32 replicas: the most
        assert registry.install("echo", replicas=32).endpoints == deployer.found["echo"]
        registry.uninstall("echo")

        deployer.calls.clear()
        deployer.found["echo"] = [outside[0].endpoint]  # one running, three asked for
        replaced = registry.install("echo", replicas=3)
        assert deployer.calls == [("discover", "echo"), ("remove", "echo"), ("deploy", "echo", 3)]
        assert outside[0].endpoint not in replaced.endpoints
    finally:
        for i in outside:
            i.stop()


def test_endpoints_are_handed_out_round_robin_over_the_healthy_ones(tmp_path, catalog, deployer):
    registry, _ = _registry(tmp_path, catalog, deployer)
    with pytest.raises(errors.Unavailable) as caught:
        registry.endpoint_for("echo")
    assert str(caught.value) == "Plugin 'echo' is not installed. Install it with: apt-model plugin install echo"
    inst = registry.install("echo", replicas=3)
    a, b, c = inst.endpoints
    assert [registry.endpoint_for("echo") for _ in range(6)] == [a, b, c, a, b, c]
    inst.healthy[b] = False
    assert [registry.endpoint_for("echo") for _ in range(4)] == [a, c, a, c]
    inst.healthy[a] = inst.healthy[c] = False
    with pytest.raises(errors.Unavailable) as caught:
        registry.endpoint_for("echo")
    assert str(caught.value) == ("Plugin 'echo' is installed but not answering health checks. Check its log, or "
                                 "reinstall it with: apt-model plugin install echo")
    assert Installed("x", [], 1, "d", "").next_endpoint() is None
    fresh = Installed("x", ["p", "q"], 2, "d", "")
    assert [fresh.next_endpoint() for _ in range(3)] == ["p", "q", "p"]


def test_health_rounds_flip_endpoints_and_rediscover_a_plugin_that_moved(tmp_path, catalog, deployer, caplog):
    registry, changes = _registry(tmp_path, catalog, deployer)
    inst = registry.install("echo", replicas=2)
    first, second = deployer.instances["echo"]
    changes.clear()
    registry.refresh_health()
    assert changes == [] and inst.unhealthy_rounds == 0  # nothing flipped, nobody told

    first.serving(False)
    caplog.set_level(logging.INFO, logger="gateway.registry")
    registry.refresh_health()
    assert inst.healthy == {first.endpoint: False, second.endpoint: True} and changes == [1]
    assert _logged(caplog) == [f"plugin echo at {first.endpoint} is now unhealthy"]
    assert registry.route_table()["endpoints"] == {"echo": [second.endpoint]}
    assert registry.status_of(catalog.get("echo")) == ("INSTALLED", "1/2 replicas healthy")
    first.serving(True)
    registry.refresh_health()
    assert inst.healthy_endpoints() == inst.endpoints and changes == [1, 1]
    assert _logged(caplog)[-1] == f"plugin echo at {first.endpoint} is now healthy"

    # every endpoint down: after REDISCOVER_AFTER rounds the deployer is asked where it runs now
    first.serving(False)
    second.serving(False)
    moved = Instance()
    try:
        deployer.found["echo"] = [moved.endpoint]
        discovered = len([c for c in deployer.calls if c[0] == "discover"])
        for round_ in range(1, REDISCOVER_AFTER):
            registry.refresh_health()
            assert inst.unhealthy_rounds == round_
        assert len([c for c in deployer.calls if c[0] == "discover"]) == discovered
        assert registry.status_of(catalog.get("echo")) == ("UNHEALTHY", "installed, not answering health checks")
        assert "echo" not in registry.route_table()["endpoints"]
        before = list(inst.endpoints)
        registry.refresh_health()
        assert inst.endpoints == [moved.endpoint] and inst.healthy == {moved.endpoint: True}
        assert _logged(caplog)[-1] == f"plugin echo moved: {before} -> {[moved.endpoint]}"
        assert inst.unhealthy_rounds == 0 and _state(registry)["echo"]["endpoints"] == [moved.endpoint]
        assert registry.endpoint_for("echo") == moved.endpoint
    finally:
        moved.stop()


def test_rediscovery_that_fails_or_finds_the_same_endpoints_changes_nothing(tmp_path, catalog, deployer, caplog):
    registry, changes = _registry(tmp_path, catalog, deployer)
    inst = registry.install("echo")
    endpoints = list(inst.endpoints)
    deployer.instances["echo"][0].serving(False)
    deployer.fail.add("discover")
    for _ in range(REDISCOVER_AFTER):
        registry.refresh_health()
    assert inst.endpoints == endpoints and inst.unhealthy_rounds == REDISCOVER_AFTER
    assert _logged(caplog)[-1] == "cannot rediscover echo: the cluster does not answer"
    deployer.fail.clear()
    changes.clear()
    inst.unhealthy_rounds = REDISCOVER_AFTER - 1
    registry.refresh_health()  # found where it was: still down, nothing to tell
    assert inst.endpoints == endpoints and inst.healthy == {endpoints[0]: False} and changes == []


def test_a_call_that_failed_marks_a_healthy_endpoint_once(tmp_path, catalog, deployer):
    registry, changes = _registry(tmp_path, catalog, deployer)
    inst = registry.install("echo", replicas=2)
    changes.clear()
    registry.mark_unhealthy("echo", inst.endpoints[0])
    registry.mark_unhealthy("echo", inst.endpoints[0])
    registry.mark_unhealthy("echo", "127.0.0.1:1")  # not one of its endpoints
    registry.mark_unhealthy("nothing", inst.endpoints[1])
    assert inst.healthy == {inst.endpoints[0]: False, inst.endpoints[1]: True} and changes == [1]


def test_an_endpoint_with_no_health_recorded_yet_counts_as_healthy(tmp_path, catalog, deployer, caplog):
    """A health round or a failed call compares against "healthy" for an endpoint it has no
    record of (one written into the state file by hand, say): serving, it is not news; failing
    a call, it is marked."""
    registry, changes = _registry(tmp_path, catalog, deployer)
    inst = registry.install("echo", replicas=2)
    changes.clear()
    inst.healthy = {}
    with caplog.at_level(logging.INFO, logger="gateway.registry"):
        registry.refresh_health()
    assert inst.healthy == {e: True for e in inst.endpoints} and changes == [] and _logged(caplog) == []
    inst.healthy = {}
    registry.mark_unhealthy("echo", inst.endpoints[1])
    assert inst.healthy == {inst.endpoints[1]: False} and changes == [1]


def test_a_restart_reattaches_redeploys_and_forgets_what_it_must(tmp_path, catalog, deployer, caplog):
    registry, _ = _registry(tmp_path, catalog, deployer)
    registry.install("echo", replicas=2)
    running = list(registry.installed("echo").endpoints)
    # the plugin no longer in the catalogue comes first: forgetting it skips only it
    state = {"gone-from-the-catalogue": {"endpoints": [], "replicas": 1, "deployer": "recording",
                                         "installed_at": ""}, **_state(registry)}
    state["cloud-storage"] = {"endpoints": ["127.0.0.1:1"], "replicas": 1, "deployer": "recording",
                              "installed_at": "2026-01-01T00:00:00+00:00"}
    registry.state_path.write_text(json.dumps(state))
    deployer.instances["echo"][1].serving(False)

    deployer.calls.clear()
    deployer.fail.add("deploy")  # cloud-storage cannot be started again
    restored, changes = _registry(tmp_path, catalog, deployer)
    with caplog.at_level(logging.INFO, logger="gateway.registry"):
        restored.restore()
    echo, storage = restored.installed("echo"), restored.installed("cloud-storage")
    assert echo.endpoints == running and echo.healthy == {running[0]: True, running[1]: False}
    assert echo.installed_at == state["echo"]["installed_at"] and echo.replicas == 2
    assert storage.endpoints == ["127.0.0.1:1"] and storage.healthy == {"127.0.0.1:1": False}
    assert ("deploy", "cloud-storage", 1) in deployer.calls and ("deploy", "echo", 2) not in deployer.calls
    assert restored.installed("gone-from-the-catalogue") is None
    assert sorted(_state(restored)) == ["cloud-storage", "echo"] and changes == [1]
    assert _logged(caplog) == ["installed plugin gone-from-the-catalogue is no longer in the catalogue; forgetting it",
                               "plugin cloud-storage is not running any more; redeploying",
                               "cannot redeploy cloud-storage: cloud-storage crashed at start"]

    deployer.fail.clear()
    deployer.remove("echo")
    deployer.calls.clear()
    again, _ = _registry(tmp_path, catalog, deployer)
    again.restore()
    # neither runs now: both deployed as recorded (the state file lists them by name)
    assert deployer.calls == [("discover", "cloud-storage"), ("deploy", "cloud-storage", 1),
                              ("discover", "echo"), ("deploy", "echo", 2)]
    assert len(again.installed("echo").endpoints) == 2

    # records that say only where the plugin ran, or nothing: one replica, installed at an unknown time
    deployer.stop_all()
    deployer.fail.add("deploy")
    again.state_path.write_text(json.dumps({"echo": {"endpoints": ["127.0.0.1:1"]}, "cloud-storage": {}}))
    bare, _ = _registry(tmp_path, catalog, deployer, plugin_env={"APT_OLLAMA_URL": "http://ollama:11434"})
    bare.restore()
    echo, storage = bare.installed("echo"), bare.installed("cloud-storage")
    assert (echo.name, echo.endpoints, echo.replicas, echo.deployer, echo.installed_at) == (
        "echo", ["127.0.0.1:1"], 1, "recording", "")
    assert storage.endpoints == [] and storage.replicas == 1 and storage.healthy == {}
    deploys = [c for c in deployer.calls if c[0] == "deploy"]
    assert deploys[-2:] == [("deploy", "echo", 1), ("deploy", "cloud-storage", 1)]  # one replica each
    assert deployer.envs["cloud-storage"] == bare.plugin_env(catalog.get("cloud-storage"))
    deployer.fail.clear()

    nothing, changes = _registry(tmp_path / "other", catalog, deployer)
    nothing.restore()  # no state file: nothing to do, nobody told
    assert nothing.all_installed() == [] and changes == [] and not nothing.state_path.exists()


def test_listings_and_the_route_table(tmp_path, catalog, deployer):
    registry, _ = _registry(tmp_path, catalog, deployer)
    entry = catalog.get("echo")
    assert registry.status_of(entry) == ("AVAILABLE", "not installed; install with: apt-model plugin install echo")
    inst = registry.install("echo", replicas=2)
    assert registry.status_of(entry) == ("INSTALLED", "2/2 replicas healthy")
    table = registry.route_table()
    assert table == {"services": catalog.services(), "plugins": sorted(catalog.entries),
                     "endpoints": {"echo": inst.endpoints}}
    assert table["plugins"] == sorted(table["plugins"]) and "echo" in table["plugins"]


def test_the_monitor_runs_health_rounds_until_stopped(tmp_path, catalog, deployer):
    import time

    registry, changes = _registry(tmp_path, catalog, deployer, health_interval=0.05)
    inst = registry.install("echo")
    registry.start_monitor()
    # named in a thread dump, and never what keeps a stopping gateway alive
    assert (registry._monitor.name, registry._monitor.daemon) == ("plugin-health", True)
    try:
        deployer.instances["echo"][0].serving(False)
        deadline = time.monotonic() + 10
        while inst.healthy_endpoints():
            assert time.monotonic() < deadline, "no health round marked the endpoint"
            time.sleep(0.02)
    finally:
        registry.stop()
        registry._monitor.join(5)
    assert not registry._monitor.is_alive()


def test_a_plugin_gets_the_operators_trust_settings_and_only_its_own_variables(tmp_path, catalog, deployer):
    registry, _ = _registry(
        tmp_path, catalog, deployer, internal_token="int", log_level="DEBUG", max_message_bytes=123,
        data_roots=("/a", "/b"), allowed_endpoints=("http://x", "http://y"), max_model_params=7,
        max_queued_jobs=3, store_quota=99, secrets_dir=tmp_path / "secrets",
        plugin_env={"APT_OLLAMA_URL": "http://ollama:11434", "APT_TOKEN": "user-token", "APT_OTHER": "x"})
    expected = {"APT_INTERNAL_TOKEN": "int", "APT_LOG_LEVEL": "DEBUG", "APT_MAX_MESSAGE_BYTES": "123",
                "APT_DATA_ROOTS": "/a:/b", "APT_ALLOWED_ENDPOINTS": "http://x,http://y",
                "APT_MAX_MODEL_PARAMS": "7", "APT_MAX_QUEUED_JOBS": "3", "APT_STORE_QUOTA": "99",
                "APT_SECRETS_DIR": str(tmp_path / "secrets")}
    assert registry.plugin_env(catalog.get("ollama-export")) == {**expected, "APT_OLLAMA_URL": "http://ollama:11434"}
    assert registry.plugin_env(catalog.get("echo")) == expected
    plain, _ = _registry(tmp_path, catalog, deployer)
    assert "APT_SECRETS_DIR" not in plain.plugin_env(catalog.get("echo"))
