"""A plugin folder's Kubernetes Deployment and Service, made from its plugin.yaml alone.

The one renderer of a plugin's pod: the kubernetes deployer sends these objects when a plugin is
installed (any folder of the catalogue: services/, APT_PLUGIN_PATH), and tools/gen_deploy.py
writes the same objects into k8s/base/plugins/ for `kubectl apply -k k8s/base`. What differs
between plugins comes from plugin.yaml: ``resources`` (requests and the memory limit), ``egress``
(the pod label ``apt.egress: internet`` that k8s/base/networkpolicy.yaml lets out of the
cluster), ``settings`` (its keys of the apt-plugin-settings ConfigMap), ``wants_gpu`` (the
Deployment label ``apt.gpu: wanted`` that k8s/overlays/gpu patches), ``base`` (how long the
startup probe waits) and ``multi_node`` (its own service account, allowed Kubeflow PyTorchJobs in
the namespace and nothing else: ``training_rbac``). Everything else is the same for every plugin
and written once, here. The docker deployer reads the same plugin.yaml fields
(gateway/deploy/docker.py), so compose, docker and Kubernetes agree by construction.
"""

from __future__ import annotations

from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.pytorchjob import SERVICE_UID as PLUGIN_UID  # the training pods' too
from apt_model.runtime.pytorchjob import STORE_MOUNT, TOKEN_DIR

PLUGIN_PORT = 50051  # APT_LISTEN inside every plugin container and pod
# The ConfigMap holding plugins' own settings (k8s/base/kustomization.yaml). Each pod takes only
# the keys its plugin.yaml declares (settings:), never the whole map: the map is shared by every
# plugin, and a plugin's service refuses an APT_* variable that is neither shared nor its own.
PLUGIN_SETTINGS = "apt-plugin-settings"
# Startup probe failures allowed, every 2 s: torch plugins import torch and transformers' model
# modules before they serve (about 10 s, far more on a loaded node); slim ones serve in a second.
STARTUP_FAILURES = {"torch": 60, "slim": 30}
GPU_LABEL = {"apt.gpu": "wanted"}  # k8s/overlays/gpu gives the Deployments carrying it a GPU
MULTI_NODE_LABEL = {"apt.multi-node": "true"}  # a pod that submits PyTorchJobs: it talks to the API server


def object_name(plugin: str) -> str:
    """Name of the plugin's Deployment and Service."""
    return f"apt-{plugin}"


def labels(m: PluginManifest) -> dict[str, str]:
    """Labels of both objects; ``apt.plugin`` selects the pods."""
    return {"app.kubernetes.io/name": m.name, "app.kubernetes.io/part-of": "apt",
            "app.kubernetes.io/component": "plugin", "apt.plugin": m.name}


def deployment(m: PluginManifest, image: str, replicas: int = 1, port: int = PLUGIN_PORT) -> dict:
    """The plugin's Deployment: locked down (uid 10001, read-only root, no capabilities), native
    gRPC probes, the store PVC at /data, only the internal token mounted, and the plugin's declared
    settings from the apt-plugin-settings ConfigMap (a key left out there: the setting's default).
    Its environment says where it runs (APT_DEPLOYER, APT_K8S_NAMESPACE from the downward API,
    APT_IMAGE: its own image, which its multi-node jobs' pods run); only a ``multi_node`` plugin's
    pod holds a service-account token, that of ``training_rbac``'s account."""
    probe = {"grpc": {"port": port}}
    pod_labels = {**labels(m), **({"apt.egress": "internet"} if m.egress == "internet" else {}),
                  **(MULTI_NODE_LABEL if m.multi_node else {})}  # k8s/components/multi-node-api-egress selects it
    container = {
        "name": "plugin", "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "grpc", "containerPort": port, "protocol": "TCP"}],
        # the operator's trust settings (k8s/base/kustomization.yaml apt-settings)
        "envFrom": [{"configMapRef": {"name": "apt-settings"}}],
        "env": [{"name": "APT_HOME", "value": STORE_MOUNT},
                {"name": "APT_DEPLOYER", "value": "kubernetes"},
                {"name": "APT_K8S_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "APT_IMAGE", "value": image},
                {"name": "APT_LISTEN", "value": f"0.0.0.0:{port}"},
                {"name": "HOME", "value": "/tmp"},  # libraries' caches: the root filesystem is read-only
                {"name": "APT_INTERNAL_TOKEN_FILE", "value": f"{TOKEN_DIR}/internal_token"},
                *({"name": spec.name, "valueFrom": {"configMapKeyRef": {"name": PLUGIN_SETTINGS, "key": spec.name,
                                                                        "optional": True}}}
                  for spec in m.settings)],
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": STARTUP_FAILURES[m.base]},
        "readinessProbe": {**probe, "periodSeconds": 5},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 3},
        "resources": {"requests": {"cpu": m.resources.cpu, "memory": m.resources.memory},
                      "limits": {"memory": m.resources.memory_limit}},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "store", "mountPath": STORE_MOUNT}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "tokens", "mountPath": TOKEN_DIR, "readOnly": True}],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": object_name(m.name), "labels": {**labels(m), **(GPU_LABEL if m.wants_gpu else {})}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"apt.plugin": m.name}},
            "template": {
                "metadata": {"labels": pod_labels},
                "spec": {
                    **_account(m),
                    "securityContext": {"runAsNonRoot": True, "runAsUser": PLUGIN_UID, "runAsGroup": PLUGIN_UID,
                                        "fsGroup": PLUGIN_UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "store", "persistentVolumeClaim": {"claimName": "apt-store"}},
                        {"name": "tmp", "emptyDir": {}},
                        # the internal token only: a plugin never holds the user or admin token;
                        # 0440 root:10001 (fsGroup), so uid 10001 reads it and nobody else
                        {"name": "tokens", "secret": {"secretName": "apt-tokens", "defaultMode": 0o440,
                                                      "items": [{"key": "internal-token", "path": "internal_token"}]}},
                    ],
                },
            },
        },
    }


def _account(m: PluginManifest) -> dict:
    """A plugin never talks to the Kubernetes API, except a multi_node one about its PyTorchJobs."""
    if not m.multi_node:
        return {"automountServiceAccountToken": False}
    return {"serviceAccountName": object_name(m.name), "automountServiceAccountToken": True}


def training_rbac(m: PluginManifest) -> list[dict]:
    """A ``multi_node`` plugin's ServiceAccount, and its Role and RoleBinding: create, get, list,
    watch and delete Kubeflow PyTorchJobs in the namespace, nothing more (the operator creates the
    job's pods and services; k8s/base/gateway/rbac-training.yaml is the gateway's own). None for
    the others."""
    if not m.multi_node:
        return []
    name, meta = object_name(m.name), {"name": object_name(m.name), "labels": labels(m)}
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": f"{rbac}/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": ["kubeflow.org"], "resources": ["pytorchjobs"],
                    "verbs": ["create", "get", "list", "watch", "delete"]}]},
        {"apiVersion": f"{rbac}/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
         "subjects": [{"kind": "ServiceAccount", "name": name}]},
    ]


def service(m: PluginManifest, port: int = PLUGIN_PORT) -> dict:
    """The plugin's in-cluster address; ClusterIP only: the NetworkPolicy admits just the gateway."""
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": object_name(m.name), "labels": labels(m)},
        "spec": {"type": "ClusterIP", "selector": {"apt.plugin": m.name},
                 "ports": [{"name": "grpc", "port": port, "targetPort": "grpc", "protocol": "TCP",
                            "appProtocol": "grpc"}]},
    }
