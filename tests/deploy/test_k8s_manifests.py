"""k8s/: every object validates against the current Kubernetes schema, kustomize renders the base
and the gpu overlay, and the security properties the design promises hold in what it renders.
k8s/base/plugins/ is generated from the plugin folders (tests/deploy/test_generated.py)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from apt_model.runtime.manifest import PluginManifest

from .conftest import ROOT

kubernetes_validate = pytest.importorskip("kubernetes_validate")
K8S = ROOT / "k8s"
NOT_OBJECTS = {"kustomization.yaml", "gpu-patch.yaml", "gateway-tls.yaml", "image-env.yaml"}  # patches, config
AVAILABLE = [m for m in (PluginManifest.load(p.parent) for p in sorted((ROOT / "services").glob("*/plugin.yaml")))
             if m.available]


def _validate(doc: dict, where: str) -> None:
    try:
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where}: {doc.get('kind')} {doc['metadata'].get('name')}: {exc.message} at {list(exc.path)}")


@pytest.fixture(scope="module")
def k8s_with_tokens(tmp_path_factory) -> Path:
    """A copy of k8s/ with tokens made by `make k8s-secrets`' script: k8s/base's secretGenerator
    needs them, and the checkout's own k8s/base/secrets/ is left alone."""
    copy = tmp_path_factory.mktemp("k8s") / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets"))
    subprocess.run([str(ROOT / "docker/secrets.sh"), str(copy / "base/secrets")], check=True, capture_output=True)
    return copy


def _render(k8s: Path, folder: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: kustomize rendering not checked")
    out = subprocess.run(["kubectl", "kustomize", str(k8s / folder)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_every_manifest_file_validates():
    files = [p for p in K8S.rglob("*.yaml") if p.name not in NOT_OBJECTS and "secrets" not in p.parts]
    assert {p.stem for p in files if p.parent.name == "plugins"} == {m.name for m in AVAILABLE}
    assert len(files) > 10
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            _validate(doc, str(path.relative_to(ROOT)))


@pytest.mark.parametrize("folder", ["base", "overlays/gpu", "overlays/tls"])
def test_rendered_stack_validates_and_is_locked_down(folder, k8s_with_tokens):
    docs = _render(k8s_with_tokens, folder)
    for doc in docs:
        _validate(doc, f"kubectl kustomize k8s/{folder}")
    services = [d for d in docs if d["kind"] == "Service"]
    exposed = [s["metadata"]["name"] for s in services if s["spec"].get("type", "ClusterIP") != "ClusterIP"]
    # only the gateway may be reachable from outside the cluster, and only with TLS
    assert exposed == (["apt-gateway"] if folder == "overlays/tls" else []), exposed
    for dep in (d for d in docs if d["kind"] == "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                # kubelet's gRPC probes speak plaintext: a TLS gateway is probed on its TCP port
                handler = c[probe]["tcpSocket" if "APT_TLS_CERT" in str(c["env"]) else "grpc"]
                assert handler["port"] == 50051, (dep["metadata"]["name"], probe)
            assert "memory" in c["resources"]["limits"]
    [policy] = [d for d in docs
                if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "apt-plugins-from-gateway-only"]
    assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/component": "plugin"}
    [rule] = policy["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"app.kubernetes.io/component": "gateway"}}}]
    assert {d["kind"] for d in docs} >= {"Namespace", "Secret", "PersistentVolumeClaim", "ServiceAccount", "Role"}


def test_gpu_overlay_requests_gpus_for_the_plugins_that_want_one_only(k8s_with_tokens):
    wants_gpu = {m.name for m in AVAILABLE if m.wants_gpu}
    docs = _render(k8s_with_tokens, "overlays/gpu")
    deployments = [d for d in docs if d["kind"] == "Deployment"]
    plugins = {d["metadata"]["labels"].get("apt.plugin") for d in deployments}
    assert wants_gpu and plugins - wants_gpu, "both kinds are checked: with and without a GPU"
    for dep in deployments:
        pod = dep["spec"]["template"]["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        plugin = dep["metadata"]["labels"].get("apt.plugin")
        if plugin in wants_gpu:
            assert limits["nvidia.com/gpu"] == 1 and pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
        else:
            assert "nvidia.com/gpu" not in limits
    [hpa] = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "apt-model-distillation"


def test_every_available_plugin_is_deployed_by_the_base(k8s_with_tokens):
    docs = _render(k8s_with_tokens, "base")
    deployed = {d["metadata"]["labels"]["apt.plugin"]: d for d in docs
                if d["kind"] == "Deployment" and "apt.plugin" in d["metadata"]["labels"]}
    assert set(deployed) == {m.name for m in AVAILABLE}
    for m in AVAILABLE:  # what plugin.yaml says reaches the pod
        container = deployed[m.name]["spec"]["template"]["spec"]["containers"][0]
        assert container["resources"] == {"requests": {"cpu": m.resources.cpu, "memory": m.resources.memory},
                                          "limits": {"memory": m.resources.memory_limit}}, m.name
        assert container["image"] == f"apt/{m.name}:latest"


def test_multi_node_component_opens_the_api_server_to_multi_node_plugins_only(k8s_with_tokens):
    """A multi_node plugin submits PyTorchJobs, so the component lets its pods, and no other
    plugin's, reach the API server's ports; nothing else leaves the closed base."""
    overlay = k8s_with_tokens / "overlays/multi-node-check"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": ["../../base"], "components": ["../../components/multi-node-api-egress"]}))
    docs = _render(k8s_with_tokens, "overlays/multi-node-check")
    for doc in docs:
        _validate(doc, "kubectl kustomize base + components/multi-node-api-egress")
    [policy] = [d for d in docs if d["metadata"]["name"] == "apt-multi-node-plugins-api-server"]
    assert policy["metadata"]["namespace"] == "apt" and policy["spec"]["policyTypes"] == ["Egress"]
    [rule] = policy["spec"]["egress"]
    assert sorted(p["port"] for p in rule["ports"]) == [443, 6443]
    assert all(not t["ipBlock"]["cidr"].endswith("/0") for t in rule["to"])  # never the whole internet
    selector = policy["spec"]["podSelector"]["matchLabels"]
    selected = {d["metadata"]["labels"]["apt.plugin"] for d in docs if d["kind"] == "Deployment"
                and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()}
    multi_node = {m.name for m in AVAILABLE if m.multi_node}
    assert multi_node and selected == multi_node
    for dep in (d for d in docs if d["kind"] == "Deployment" and d["metadata"]["labels"].get("apt.plugin") in selected):
        assert dep["spec"]["template"]["spec"]["automountServiceAccountToken"] is True  # the account it needs


def test_an_overlay_that_renames_images_renames_what_the_pods_say_they_run(k8s_with_tokens):
    """APT_IMAGE is the image a service's multi-node PyTorchJob pods run: kustomize `images:` must
    rename it with the container (k8s/base/image-env.yaml), or the jobs would pull the old name."""
    overlay = k8s_with_tokens / "overlays/rename-check"
    overlay.mkdir()
    names = ["gateway"] + [m.name for m in AVAILABLE]
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["../../base"],
        "images": [{"name": f"apt/{n}", "newName": f"registry.example/team/{n}", "newTag": "7"} for n in names]}))
    deployments = [d for d in _render(k8s_with_tokens, "overlays/rename-check") if d["kind"] == "Deployment"]
    assert len(deployments) == len(names)
    for dep in deployments:
        [container] = dep["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert container["image"].startswith("registry.example/team/") and container["image"].endswith(":7")
        assert env["APT_IMAGE"] == container["image"], dep["metadata"]["name"]
        assert env["APT_LISTEN"] == "0.0.0.0:50051"  # values that name no image are left alone
