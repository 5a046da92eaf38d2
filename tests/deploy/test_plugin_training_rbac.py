"""What a plugin pod needs to run its own multi-node jobs (#18), as rendered (gateway/deploy/render.py,
the kubernetes deployer and `kubectl kustomize k8s/base`): where it runs in its environment, and,
only for a plugin.yaml with ``multi_node: true``, a service account allowed PyTorchJobs and nothing else."""

from __future__ import annotations

import pytest

from apt_model import errors
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings
from gateway.deploy import render

from .test_k8s_manifests import AVAILABLE, _render, k8s_with_tokens  # noqa: F401 - the fixture

PYTORCHJOBS_ONLY = [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"],
                     "verbs": ["create", "get", "list", "watch", "delete"]}]
MULTI_NODE = {m.name for m in AVAILABLE if m.multi_node}


def _env(container: dict) -> dict:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_every_plugin_pod_knows_its_deployer_namespace_and_image():
    for m in AVAILABLE:
        dep = render.deployment(m, f"reg.example/{m.name}:7")
        env = _env(dep["spec"]["template"]["spec"]["containers"][0])
        assert env["APT_DEPLOYER"] == "kubernetes" and env["APT_IMAGE"] == f"reg.example/{m.name}:7", m.name
        assert env["APT_K8S_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}  # the downward API
        # and its service starts with them: none is an unknown APT_* setting
        Settings.from_env({k: v for k, v in env.items() if isinstance(v, str) and not k.endswith("_FILE")}
                          | {"APT_K8S_NAMESPACE": "apt"})


def test_only_multi_node_plugins_get_an_account_and_it_may_only_handle_pytorchjobs():
    assert "model-distillation" in MULTI_NODE and set(m.name for m in AVAILABLE) - MULTI_NODE  # both kinds checked
    for m in AVAILABLE:
        pod = render.deployment(m, "apt/x:latest")["spec"]["template"]["spec"]
        rbac = {o["kind"]: o for o in render.training_rbac(m)}
        if m.name not in MULTI_NODE:
            assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod, m.name
            assert rbac == {}
            continue
        assert pod["serviceAccountName"] == f"apt-{m.name}" and pod["automountServiceAccountToken"] is True
        assert set(rbac) == {"ServiceAccount", "Role", "RoleBinding"}
        assert rbac["Role"]["rules"] == PYTORCHJOBS_ONLY
        assert rbac["RoleBinding"]["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                  "name": f"apt-{m.name}"}
        assert rbac["RoleBinding"]["subjects"] == [{"kind": "ServiceAccount", "name": f"apt-{m.name}"}]


def test_the_deployed_stack_grants_plugins_pytorchjobs_only(k8s_with_tokens):  # noqa: F811
    docs = _render(k8s_with_tokens, "base")
    roles = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Role"}
    plugin_roles = {n for n, r in roles.items() if r["metadata"]["labels"].get("app.kubernetes.io/component") == "plugin"}
    assert plugin_roles == {f"apt-{name}" for name in MULTI_NODE}
    assert all(roles[n]["rules"] == PYTORCHJOBS_ONLY for n in plugin_roles)
    accounts = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"}
    for dep in (d for d in docs if d["kind"] == "Deployment" and "apt.plugin" in d["metadata"]["labels"]):
        pod = dep["spec"]["template"]["spec"]
        if dep["metadata"]["labels"]["apt.plugin"] in MULTI_NODE:
            assert pod["serviceAccountName"] in accounts and pod["automountServiceAccountToken"] is True
        else:
            assert pod["automountServiceAccountToken"] is False


def test_the_kubernetes_deployer_sets_the_image_it_installs():
    from gateway.deploy.kubernetes import KubernetesConfig, render as deploy_render

    [m] = [m for m in AVAILABLE if m.name == "model-distillation"]
    objs = deploy_render(m, 1, {"APT_LOG_LEVEL": "INFO"}, KubernetesConfig(namespace="ns", image_prefix="reg", image_tag="9"))
    container = objs.deployment["spec"]["template"]["spec"]["containers"][0]
    assert _env(container)["APT_IMAGE"] == container["image"] == "reg/model-distillation:9"


@pytest.mark.parametrize("value", ["maybe", 1])
def test_multi_node_must_be_a_boolean(tmp_path, value):
    folder = tmp_path / "p-x"
    folder.mkdir()
    (folder / "plugin.yaml").write_text(f"name: p-x\nmulti_node: {value}\n")
    with pytest.raises(errors.FailedPrecondition, match="multi_node must be true or false"):
        PluginManifest.load(folder)
