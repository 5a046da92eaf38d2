"""The kubernetes deployer through the official client, against LocalKubeApiServer: the objects
it sends are checked against the Kubernetes schema, and the pod addresses it returns are real echo
plugin servers on loopback (127.0.0.1 and 127.0.0.2)."""

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


def _echo_manifests(tmp_path: Path, port: int) -> Path:
    """k8s/base/plugins/cloud-storage renamed to echo, its gRPC port moved to ``port``."""
    folder = tmp_path / "manifests" / "plugins" / "echo"
    shutil.copytree(ROOT / "k8s/base/plugins/cloud-storage", folder)
    for f in ("deployment.yaml", "service.yaml"):
        text = (folder / f).read_text().replace("cloud-storage", "echo").replace("50051", str(port))
        (folder / f).write_text(text)
    return tmp_path / "manifests"


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


def _deployer(api: LocalKubeApiServer, manifests: Path, tmp_path: Path, timeout: float = 20):
    from gateway.deploy.kubernetes import KubernetesConfig, KubernetesDeployer

    cfg = k8s.Configuration()
    cfg.host = api.url
    return KubernetesDeployer(Settings(home=tmp_path, install_timeout=timeout),
                              KubernetesConfig(namespace="apt-test", manifests=manifests, image_tag="1.0"),
                              api_client=k8s.ApiClient(cfg))


def _sent(api: LocalKubeApiServer, method: str, fragment: str) -> list[dict]:
    return [body for m, path, body in api.requests if m == method and fragment in path]


def test_deploy_discover_replace_remove(tmp_path, echo_servers):
    port, token = echo_servers
    entry = PluginManifest.load(ECHO_DIR)
    with LocalKubeApiServer(["127.0.0.1", "127.0.0.2"]) as api:
        dep = _deployer(api, _echo_manifests(tmp_path, port), tmp_path)
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
        dep = _deployer(api, _echo_manifests(tmp_path, _free_port()), tmp_path, timeout=2)
        with pytest.raises(errors.Unavailable, match="does not answer gRPC health"):
            dep.deploy(entry, 1, {})


def test_plugin_without_manifests_is_failed_precondition(tmp_path):
    with LocalKubeApiServer(["127.0.0.1"]) as api:
        dep = _deployer(api, tmp_path / "empty", tmp_path)
        with pytest.raises(errors.FailedPrecondition, match="No Kubernetes manifests"):
            dep.deploy(PluginManifest.load(ECHO_DIR), 1, {})
        assert api.requests == []


def test_rendered_objects_of_every_plugin_folder_validate(tmp_path):
    from gateway.deploy.kubernetes import KubernetesConfig, render

    for folder in sorted((ROOT / "k8s/base/plugins").iterdir()):
        manifest = yaml.safe_load((ROOT / "services" / folder.name / "plugin.yaml").read_text())
        entry = PluginManifest.load(ROOT / "services" / folder.name)
        objs = render(entry, 3, {"APT_LOG_LEVEL": "INFO"}, KubernetesConfig())
        for obj in (objs.deployment, objs.service):
            kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        assert objs.deployment["spec"]["replicas"] == 3 and objs.port == 50051, manifest["name"]
