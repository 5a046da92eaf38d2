"""The kubernetes deployer through the official client, against LocalKubeApiServer: the objects
it sends are checked against the Kubernetes schema, and the pod addresses it returns are real echo
plugin servers on loopback (127.0.0.1 and 127.0.0.2). The echo plugin is installed from a copy of
its folder outside the repository, as a folder on APT_PLUGIN_PATH would be: nothing in k8s/ is
needed for it."""

from __future__ import annotations

import json
import secrets
import shutil
import socket
from pathlib import Path

import pytest
import yaml

from apt_model import errors
from apt_model.client import connect
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.app import PluginApp
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings

from .conftest import ECHO_DIR, ROOT
from .kube_api import LocalKubeApiServer

k8s = pytest.importorskip("kubernetes.client", reason="the kubernetes client is in gateway/deploy/requirements.txt")
kubernetes_validate = pytest.importorskip("kubernetes_validate")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echo_outside(tmp_path: Path) -> PluginManifest:
    """The echo plugin from a copy of its folder in ``tmp_path``, outside the repository."""
    folder = tmp_path / "plugin-path" / "echo"
    shutil.copytree(ECHO_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "requirements.txt").write_text("grpcio\n")  # its -r into the repository would not resolve
    return PluginManifest.load(folder)


@pytest.fixture
def echo_servers(tmp_path):
    """Two real echo plugins, one per fake pod address, on the same port."""
    from apt_echo.server import build

    port, token = _free_port(), secrets.token_hex(16)
    apps = []
    for host in ("127.0.0.1", "127.0.0.2"):
        app = PluginApp(Settings(home=tmp_path / "store", listen=f"{host}:{port}", internal_token=token,
                                 log_json=False), PluginManifest.load(ECHO_DIR))
        build(app)
        app.start()
        apps.append(app)
    yield port, token
    for app in apps:
        app.stop(grace=0.5)


def _deployer(api: LocalKubeApiServer, port: int, tmp_path: Path, timeout: float = 20):
    from gateway.deploy.kubernetes import KubernetesConfig, KubernetesDeployer

    cfg = k8s.Configuration()
    cfg.host = api.url
    return KubernetesDeployer(Settings(home=tmp_path, install_timeout=timeout),
                              KubernetesConfig(namespace="apt-test", image_tag="1.0", plugin_port=port),
                              api_client=k8s.ApiClient(cfg))


def _sent(api: LocalKubeApiServer, method: str, fragment: str) -> list[dict]:
    return [body for m, path, body in api.requests if m == method and fragment in path]


def test_deploy_discover_replace_remove(tmp_path, echo_servers):
    port, token = echo_servers
    entry = _echo_outside(tmp_path)
    with LocalKubeApiServer(["127.0.0.1", "127.0.0.2"]) as api:
        dep = _deployer(api, port, tmp_path)
        endpoints = dep.deploy(entry, 2, {"APT_INTERNAL_TOKEN": token, "APT_LOG_LEVEL": "DEBUG"})
        assert endpoints == [f"127.0.0.1:{port}", f"127.0.0.2:{port}"]
        for endpoint in endpoints:  # the router dials these: both answer
            with connect(endpoint, token) as channel:
                assert echo_pb2_grpc.EchoStub(channel).Echo(echo_pb2.EchoRequest(text="k8s"), timeout=5).text == "k8s"

        [deployment] = _sent(api, "POST", "/deployments")
        [service] = _sent(api, "POST", "/services")
        for obj in (deployment, service):
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
            assert obj["metadata"]["namespace"] == "apt-test"
        assert deployment["spec"]["replicas"] == 2
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["image"] == "apt/echo:1.0"
        assert container["ports"] == [{"name": "grpc", "containerPort": port, "protocol": "TCP"}]
        assert container["resources"]["limits"] == {"memory": entry.resources.memory_limit}
        env = {e["name"]: e for e in container["env"]}
        assert env["APT_LOG_LEVEL"]["value"] == "DEBUG"
        # the token stays in the Secret, mounted as a file; never a plain value beside it
        assert env["APT_INTERNAL_TOKEN_FILE"]["value"] == "/run/secrets/apt/internal_token"
        assert "APT_INTERNAL_TOKEN" not in env
        [tokens] = [v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "tokens"]
        assert tokens["secret"]["secretName"] == "apt-tokens"
        assert token not in json.dumps(api.requests)

        assert dep.discover(entry) == endpoints
        # installing again replaces the objects in place
        assert dep.deploy(entry, 1, {}) == [f"127.0.0.1:{port}"]
        assert _sent(api, "PUT", "/deployments/apt-echo")[0]["spec"]["replicas"] == 1

        dep.remove("echo")
        assert {p for m, p, _ in api.requests if m == "DELETE"} == {
            "/apis/apps/v1/namespaces/apt-test/deployments/apt-echo", "/api/v1/namespaces/apt-test/services/apt-echo"}
        assert dep.discover(entry) == []
        dep.remove("echo")  # removing twice is fine


def test_pods_that_never_serve_are_unavailable(tmp_path):
    entry = PluginManifest.load(ECHO_DIR)
    with LocalKubeApiServer(["127.0.0.3"]) as api:  # nothing listens there
        dep = _deployer(api, _free_port(), tmp_path, timeout=2)
        with pytest.raises(errors.Unavailable, match="does not answer gRPC health"):
            dep.deploy(entry, 1, {})


def test_rendered_objects_of_every_plugin_folder_validate():
    from gateway.deploy.kubernetes import KubernetesConfig, render

    folders = sorted(p.parent for p in (ROOT / "services").glob("*/plugin.yaml"))
    assert len(folders) >= 10
    for folder in folders:
        entry = PluginManifest.load(folder)
        objs = render(entry, 3, {"APT_LOG_LEVEL": "INFO"}, KubernetesConfig())
        for obj in (objs.deployment, objs.service):
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        assert objs.deployment["spec"]["replicas"] == 3 and objs.port == 50051, entry.name


def test_install_sends_what_kubectl_apply_k8s_base_would():
    """The deployer's objects are k8s/base/plugins/<name>.yaml's, with the deploy-time values set."""
    from gateway.deploy import render as objects
    from gateway.deploy.kubernetes import KubernetesConfig, render

    for path in sorted((ROOT / "k8s/base/plugins").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        committed = [d for d in yaml.safe_load_all(path.read_text()) if d]
        entry = PluginManifest.load(ROOT / "services" / path.stem)
        objs = render(entry, 1, {}, KubernetesConfig(namespace="apt"))
        for obj in committed:  # kustomize sets the namespace; the deployer adds the version label
            obj["metadata"]["namespace"] = "apt"
            obj["metadata"]["labels"]["apt.version"] = entry.version
        assert committed[:2] == [objs.deployment, objs.service], path.name
        # a multi_node plugin's account, Role and RoleBinding come from `kubectl apply -k k8s/base` only:
        # the deployer sends no RBAC (the gateway may not grant what it holds)
        assert [d["kind"] for d in committed[2:]] == [o["kind"] for o in objects.training_rbac(entry)], path.name
