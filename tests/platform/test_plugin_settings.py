"""A plugin's own settings (plugin.yaml ``settings:``): declared, validated, tolerated by exactly
the services that may see them, passed by every deployer from the gateway's environment, and
never a way for a plugin to receive one of the platform's own variables (tokens above all)."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import yaml

from apt_model import errors
from apt_model.runtime.app import PluginApp
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.plugin_settings import SettingSpec, plugin_settings
from apt_model.runtime.settings import SHARED_VARIABLES, Settings
from gateway.catalog import SERVICES_DIR, Catalog
from gateway.deploy import render
from gateway.deploy.docker import DockerConfig, container_kwargs
from gateway.deploy.kubernetes import KubernetesConfig
from gateway.deploy.kubernetes import render as k8s_render
from gateway.registry import Registry
from gateway.server import build_settings
from gateway.testing import ROOT, TEST_PLUGINS, start_gateway, stop_gateway

OLLAMA = PluginManifest.load(SERVICES_DIR / "ollama-export")
HF = PluginManifest.load(SERVICES_DIR / "huggingface-integration")
URL = "http://127.0.0.1:11434"
SECRETS = {"APT_TOKEN": "user-secret", "APT_ADMIN_TOKEN": "admin-secret", "APT_INTERNAL_TOKEN": "internal-secret"}


def _plugin(tmp_path: Path, settings: list[dict], name: str = "echo") -> Path:
    """A copy of the echo test plugin under ``tmp_path/plugins`` whose plugin.yaml declares ``settings``."""
    folder = tmp_path / "plugins" / name
    shutil.copytree(TEST_PLUGINS / "echo", folder)
    data = yaml.safe_load((folder / "plugin.yaml").read_text())
    (folder / "plugin.yaml").write_text(yaml.safe_dump({**data, "name": name, "settings": settings}))
    return folder


def _registry(settings: Settings) -> Registry:
    return Registry(settings, catalog=None, deployer=None)


# -- the declaration -------------------------------------------------------------------------------
def test_ollama_export_declares_its_url():
    [spec] = OLLAMA.settings
    assert (spec.name, spec.type, spec.default) == ("APT_OLLAMA_URL", "url", "")
    assert HF.settings == ()


@pytest.mark.parametrize("name", ["APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN", "APT_ADMIN_TOKEN_FILE",
                                  "APT_SECRETS_DIR", "APT_DATA_ROOTS", "APT_TLS_KEY", "APT_HOME"])
def test_attack_a_plugin_yaml_declaring_a_shared_or_secret_variable_is_refused(tmp_path, name):
    """Declaring a variable makes the gateway pass it: declaring APT_ADMIN_TOKEN must not hand a plugin
    the admin token. The manifest is refused, and the gateway's catalogue skips the plugin."""
    folder = _plugin(tmp_path, [{"name": name}], name="grabber")
    with pytest.raises(errors.FailedPrecondition, match=f"{name} is one of the platform's own variables"):
        PluginManifest.load(folder)
    catalog = Catalog((str(folder.parent),))
    assert "grabber" not in catalog.entries and "platform's own variables" in catalog.broken["grabber"]


def test_every_token_variable_is_shared():
    assert {"APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN", "APT_TOKEN_FILE", "APT_ADMIN_TOKEN_FILE",
            "APT_INTERNAL_TOKEN_FILE"} <= SHARED_VARIABLES


@pytest.mark.parametrize("settings, why", [
    ([{"name": "OLLAMA_URL"}], "not a name such as"),
    ([{"name": "APT_ollama_url"}], "not a name such as"),
    ([{"name": "APT_X__Y"}], "not a name such as"),
    ([{"name": "APT_ECHO_X"}, {"name": "APT_ECHO_X"}], "declared twice"),
    ([{"name": "APT_ECHO_X", "type": "list"}], "type 'list' is not one of"),
    ([{"name": "APT_ECHO_X", "type": "int", "default": "many"}], "APT_ECHO_X='many' is not a valid int"),
    ([{"name": "APT_ECHO_X", "secret": True}], "each entry is a mapping"),
    ({"APT_ECHO_X": "1"}, "must be a list"),
])
def test_bad_declarations_name_the_file_and_the_fix(tmp_path, settings, why):
    folder = _plugin(tmp_path, settings)
    with pytest.raises(errors.FailedPrecondition, match="plugin.yaml: settings: ") as err:
        PluginManifest.load(folder)
    assert why in err.value.message


def test_values_are_typed_and_a_bad_one_names_its_variable(tmp_path):
    folder = _plugin(tmp_path, [{"name": "APT_ECHO_N", "type": "int", "default": 2},
                                {"name": "APT_ECHO_ON", "type": "bool", "default": False},
                                {"name": "APT_ECHO_URL", "type": "url"}])
    m = PluginManifest.load(folder)
    assert plugin_settings(m, {}) == {"APT_ECHO_N": 2, "APT_ECHO_ON": False, "APT_ECHO_URL": ""}
    assert plugin_settings(m, {"APT_ECHO_N": "7", "APT_ECHO_ON": "yes", "APT_ECHO_URL": URL + "/"}) == {
        "APT_ECHO_N": 7, "APT_ECHO_ON": True, "APT_ECHO_URL": URL}
    assert plugin_settings(m, {"APT_ECHO_N": ""})["APT_ECHO_N"] == 2  # compose/ConfigMap write unset as empty
    for var, bad in (("APT_ECHO_N", "seven"), ("APT_ECHO_ON", "maybe"), ("APT_ECHO_URL", "file:///etc/passwd")):
        with pytest.raises(errors.InvalidArgument, match=f"^{var}="):
            plugin_settings(m, {var: bad})


# -- who tolerates what --------------------------------------------------------------------------
def test_a_service_tolerates_exactly_what_its_plugin_declares():
    with pytest.raises(errors.InvalidArgument, match="Unknown setting APT_OLLAMA_URL"):
        Settings.from_env({"APT_OLLAMA_URL": URL})  # not a shared variable any more
    s = Settings.from_env({"APT_OLLAMA_URL": URL}, declared=OLLAMA.setting_names)
    assert s.plugin_env == {"APT_OLLAMA_URL": URL}
    with pytest.raises(errors.InvalidArgument, match="Unknown setting APT_OLLAMA_URL"):
        Settings.from_env({"APT_OLLAMA_URL": URL}, declared=HF.setting_names)  # another plugin's
    with pytest.raises(errors.InvalidArgument, match="Unknown setting APT_OLLAMA_URLS"):
        Settings.from_env({"APT_OLLAMA_URLS": URL}, declared=OLLAMA.setting_names)  # a typo


def test_a_declared_name_never_captures_a_shared_variable():
    s = Settings.from_env({**SECRETS, "APT_OLLAMA_URL": URL}, declared={"APT_ADMIN_TOKEN", "APT_OLLAMA_URL"})
    assert s.admin_token == "admin-secret" and s.plugin_env == {"APT_OLLAMA_URL": URL}


def test_the_gateway_tolerates_its_catalogues_settings_only(tmp_path):
    env = {"APT_HOME": str(tmp_path / "home"), "APT_OLLAMA_URL": URL}
    assert build_settings(env).plugin_env == {"APT_OLLAMA_URL": URL}
    with pytest.raises(errors.InvalidArgument, match="Unknown setting APT_OLAMA_URL"):
        build_settings({**env, "APT_OLAMA_URL": URL})
    _plugin(tmp_path, [{"name": "APT_ECHO_N", "type": "int"}])  # an operator's plugin on APT_PLUGIN_PATH
    with pytest.raises(errors.InvalidArgument, match="Unknown setting APT_ECHO_N"):
        build_settings({**env, "APT_ECHO_N": "3"})
    s = build_settings({**env, "APT_ECHO_N": "3", "APT_PLUGIN_PATH": str(tmp_path / "plugins")})
    assert s.plugin_env == {"APT_ECHO_N": "3", "APT_OLLAMA_URL": URL}


def test_a_plugin_process_refuses_a_bad_value_before_serving(tmp_path):
    settings = Settings(home=tmp_path, internal_token="t", plugin_env={"APT_OLLAMA_URL": "ollama:11434"})
    with pytest.raises(errors.InvalidArgument, match="APT_OLLAMA_URL='ollama:11434' is not a valid url"):
        PluginApp(settings, OLLAMA)
    app = PluginApp(settings.replace(plugin_env={"APT_OLLAMA_URL": URL}), OLLAMA)
    assert app.plugin_settings == {"APT_OLLAMA_URL": URL}


# -- what each deployer passes -------------------------------------------------------------------
def _gateway_settings(tmp_path) -> Settings:
    return build_settings({"APT_HOME": str(tmp_path / "home"), "APT_OLLAMA_URL": URL, **SECRETS})


def test_the_registry_passes_a_plugin_its_own_settings_and_no_token_but_the_internal_one(tmp_path):
    settings = _gateway_settings(tmp_path)
    registry = _registry(settings)
    assert registry.plugin_env(OLLAMA)["APT_OLLAMA_URL"] == URL
    assert "APT_OLLAMA_URL" not in registry.plugin_env(HF)
    # even a manifest that slipped past validation, with the secrets among the settings the gateway
    # holds for plugins, cannot pull one through the declaration
    forged = dataclasses.replace(OLLAMA, settings=tuple(SettingSpec(n, "str", "", "") for n in SECRETS))
    registry = _registry(settings.replace(plugin_env={**settings.plugin_env, **SECRETS,
                                                      "APT_INTERNAL_TOKEN": "not-the-internal-token"}))
    for entry in (OLLAMA, HF, forged):
        env = registry.plugin_env(entry)
        assert env["APT_INTERNAL_TOKEN"] == "internal-secret"
        assert not {"APT_TOKEN", "APT_ADMIN_TOKEN"} & set(env)
        assert not {"user-secret", "admin-secret"} & set(env.values())


def test_docker_containers_get_the_setting(tmp_path):
    registry = _registry(_gateway_settings(tmp_path))
    config = DockerConfig(network="apt", store_volume="apt-store")
    ollama = container_kwargs(OLLAMA, 0, registry.plugin_env(OLLAMA), config, gpu=False)["environment"]
    hf = container_kwargs(HF, 0, registry.plugin_env(HF), config, gpu=False)["environment"]
    assert ollama["APT_OLLAMA_URL"] == URL and "APT_OLLAMA_URL" not in hf
    assert "APT_ADMIN_TOKEN" not in ollama and "APT_TOKEN" not in ollama


def _interpolate(value: str, env: dict[str, str]) -> str:
    name, _, default = value.removeprefix("${").removesuffix("}").partition(":-")
    return env.get(name) or default


def test_compose_passes_each_plugin_its_own_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    services = {s["labels"]["apt.plugin"]: s for s in compose.values() if "apt.plugin" in s.get("labels", {})}
    assert _interpolate(services["ollama-export"]["environment"]["APT_OLLAMA_URL"], {"APT_OLLAMA_URL": URL}) == URL
    assert _interpolate(services["ollama-export"]["environment"]["APT_OLLAMA_URL"], {}) == ""
    for name, service in services.items():
        declared = PluginManifest.load(SERVICES_DIR / name).setting_names
        own = {k for k in service["environment"] if k not in SHARED_VARIABLES and k != "HOME"}
        assert own == declared, name
        # the gateway holds them too, for the replicas its docker deployer starts (plugin install)
        assert declared <= set(compose["gateway"]["environment"]), f"docker-compose.yml gateway lacks {declared}"


def _configmap_refs(deployment: dict) -> dict[str, dict]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e["valueFrom"]["configMapKeyRef"] for e in container["env"]
            if "configMapKeyRef" in e.get("valueFrom", {})}  # not the downward API's fieldRef (APT_K8S_NAMESPACE)


def test_kubernetes_pods_take_their_own_keys_of_the_plugin_settings_configmap():
    ref = _configmap_refs(render.deployment(OLLAMA, "apt/ollama-export:latest"))["APT_OLLAMA_URL"]
    assert ref == {"name": "apt-plugin-settings", "key": "APT_OLLAMA_URL", "optional": True}
    assert _configmap_refs(render.deployment(HF, "apt/huggingface-integration:latest")) == {}
    # the shared maps reach every pod whole: no plugin setting may sit in apt-settings
    kustomization = yaml.safe_load((ROOT / "k8s/base/kustomization.yaml").read_text())
    maps = {g["name"]: {lit.split("=")[0] for lit in g["literals"]} for g in kustomization["configMapGenerator"]}
    assert "APT_OLLAMA_URL" in maps["apt-plugin-settings"]
    assert maps["apt-settings"] <= SHARED_VARIABLES
    # an install through the gateway's kubernetes deployer: the same reference, no second value
    objs = k8s_render(OLLAMA, 1, {"APT_OLLAMA_URL": "http://elsewhere:1"}, KubernetesConfig())
    env = objs.deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert [e for e in env if e["name"] == "APT_OLLAMA_URL"] == [
        {"name": "APT_OLLAMA_URL", "valueFrom": {"configMapKeyRef": ref}}]


# -- the local deployer: a real plugin process ---------------------------------------------------
def _process_env(gw, plugin: str) -> dict[str, str]:
    [replica] = json.loads((gw.settings.home / "gateway/local" / f"{plugin}.json").read_text())["replicas"]
    raw = Path(f"/proc/{replica['pid']}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def test_local_plugin_process_gets_its_setting_and_no_other_token(tmp_path):
    folder = _plugin(tmp_path, [{"name": "APT_ECHO_N", "type": "int", "default": 1}])
    declared = build_settings({"APT_HOME": str(tmp_path / "home"), "APT_ECHO_N": "3", "APT_OLLAMA_URL": URL,
                               "APT_PLUGIN_PATH": str(folder.parent)})
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(folder.parent),), router="python",
                       plugin_env=declared.plugin_env)
    try:
        gw.app.registry.install("echo")
        env = _process_env(gw, "echo")
        assert env["APT_ECHO_N"] == "3" and "APT_OLLAMA_URL" not in env  # its own, not ollama-export's
        assert env["APT_INTERNAL_TOKEN"] == gw.settings.internal_token
        assert "APT_TOKEN" not in env and "APT_ADMIN_TOKEN" not in env
        assert gw.settings.admin_token not in env.values() and gw.settings.token not in env.values()
    finally:
        stop_gateway(gw)


def test_local_plugin_process_with_a_bad_value_does_not_start_and_says_why(tmp_path):
    folder = _plugin(tmp_path, [{"name": "APT_ECHO_N", "type": "int"}])
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(folder.parent),), router="python",
                       plugin_env={"APT_ECHO_N": "three"})
    try:
        with pytest.raises(errors.Unavailable, match="APT_ECHO_N='three' is not a valid int"):
            gw.app.registry.install("echo")
    finally:
        stop_gateway(gw)
