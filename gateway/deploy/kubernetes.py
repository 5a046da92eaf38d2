"""The kubernetes deployer: a plugin is a Deployment + Service rendered from its plugin.yaml.

The objects come from gateway/deploy/render.py, the renderer tools/gen_deploy.py also writes
k8s/base/plugins/ with, so an install sends what ``kubectl apply -k k8s/base`` would, with the
namespace, replicas, image and extra environment filled in; a plugin folder on APT_PLUGIN_PATH
installs the same way without any file of this repository. Endpoints are the ready pods'
addresses so the gateway's router balances calls over replicas (a ClusterIP would pin each gRPC
connection to one pod). Tokens stay in the ``apt-tokens`` Secret: a variable the pod already
defines, itself or as ``<name>_FILE`` (the internal token is a mounted Secret file,
APT_INTERNAL_TOKEN_FILE), is never set again with a plain value; nor is a plugin's own setting,
which its pod reads from the apt-plugin-settings ConfigMap (the one place to set it on Kubernetes,
for the plugins ``kubectl apply -k`` deploys and those the gateway installs alike).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from apt_model import errors
from apt_model.runtime.pytorchjob import cluster_client
from apt_model.runtime.settings import Settings
from gateway.catalog import CatalogEntry
from gateway.deploy import render as objects
from gateway.deploy.base import Deployer, check_serving, wait_serving

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KubernetesConfig:
    namespace: str = "apt"                               # APT_K8S_NAMESPACE
    image_prefix: str = "apt"                            # APT_IMAGE_PREFIX
    image_tag: str = "latest"                            # APT_IMAGE_TAG
    plugin_port: int = objects.PLUGIN_PORT               # gRPC port inside plugin pods (tests move it)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "KubernetesConfig":
        env = dict(os.environ if env is None else env)
        return cls(namespace=env.get("APT_K8S_NAMESPACE", "apt"),
                   image_prefix=env.get("APT_IMAGE_PREFIX", "apt"), image_tag=env.get("APT_IMAGE_TAG", "latest"))


@dataclass(frozen=True)
class PluginObjects:
    deployment: dict
    service: dict
    port: int  # the container's gRPC port


def render(entry: CatalogEntry, replicas: int, env: dict[str, str], config: KubernetesConfig) -> PluginObjects:
    """The Deployment and Service for ``entry`` (gateway/deploy/render.py) with deploy-time values set."""
    image = f"{config.image_prefix}/{entry.name}:{config.image_tag}"
    deployment = objects.deployment(entry, image, replicas, config.plugin_port)
    service = objects.service(entry, config.plugin_port)
    for obj in (deployment, service):
        obj["metadata"]["namespace"] = config.namespace
        obj["metadata"]["labels"]["apt.version"] = entry.version
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    defined = {e["name"] for e in container["env"]}
    container["env"].extend({"name": k, "value": v} for k, v in sorted(env.items())
                            if k not in defined and f"{k}_FILE" not in defined)
    return PluginObjects(deployment, service, config.plugin_port)


class KubernetesDeployer(Deployer):
    name = "kubernetes"

    def __init__(self, settings: Settings, config: KubernetesConfig | None = None,
                 api_client: k8s.ApiClient | None = None):
        self.settings = settings
        self.config = config or KubernetesConfig.from_env()
        if api_client is None:
            api_client = cluster_client("APT_DEPLOYER=kubernetes")  # the gateway pod's service account
        self.apps = k8s.AppsV1Api(api_client)
        self.core = k8s.CoreV1Api(api_client)

    def _name(self, plugin: str) -> str:
        return objects.object_name(plugin)

    # -- Deployer ----------------------------------------------------------------------------
    def deploy(self, entry: CatalogEntry, replicas: int, env: dict[str, str]) -> list[str]:
        objs = render(entry, replicas, env, self.config)
        ns, name = self.config.namespace, self._name(entry.name)
        try:
            self._apply(lambda: self.apps.create_namespaced_deployment(ns, objs.deployment),
                        lambda: self.apps.replace_namespaced_deployment(name, ns, objs.deployment))
            self._apply(lambda: self.core.create_namespaced_service(ns, objs.service),
                        lambda: self.core.replace_namespaced_service(name, ns, objs.service))
        except ApiException as exc:
            raise errors.Unavailable(f"The Kubernetes API refused plugin {entry.name!r}: {exc.status} {exc.reason}: "
                                     f"{(exc.body or '')[:300]}") from exc
        deadline = time.monotonic() + self.settings.install_timeout
        while time.monotonic() < deadline:
            endpoints = self._ready_endpoints(entry.name, objs.port)
            if len(endpoints) >= replicas:
                break
            time.sleep(1.0)
        else:
            raise errors.Unavailable(
                f"Plugin {entry.name!r}: {len(self._ready_endpoints(entry.name, objs.port))}/{replicas} pods ready "
                f"after {self.settings.install_timeout:.0f}s (APT_INSTALL_TIMEOUT). {self._pod_report(entry.name)}"
            )
        for endpoint in endpoints:
            if not wait_serving(endpoint, max(1.0, deadline - time.monotonic())):
                raise errors.Unavailable(f"Plugin {entry.name!r} pod at {endpoint} is ready in Kubernetes but does "
                                         f"not answer gRPC health from the gateway. {self._pod_report(entry.name)}")
        return endpoints

    def _apply(self, create, replace) -> None:
        try:
            create()
        except ApiException as exc:
            if exc.status != 409:
                raise
            replace()  # already there (installed before, or from `kubectl apply -k`): take it over

    def _ready_endpoints(self, plugin: str, port: int) -> list[str]:
        pods = self.core.list_namespaced_pod(self.config.namespace, label_selector=f"apt.plugin={plugin}").items
        out = []
        for pod in pods:
            ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
            if ready and pod.status.pod_ip and pod.metadata.deletion_timestamp is None:
                out.append(f"{pod.status.pod_ip}:{port}")
        return sorted(out)

    def _pod_report(self, plugin: str) -> str:
        """Why pods are not ready: container states and the last log lines of one pod."""
        lines = []
        pods = self.core.list_namespaced_pod(self.config.namespace, label_selector=f"apt.plugin={plugin}").items
        for pod in pods:
            for cs in pod.status.container_statuses or []:
                waiting = cs.state.waiting if cs.state else None
                if waiting is not None:
                    lines.append(f"{pod.metadata.name}: {waiting.reason} {waiting.message or ''}".strip())
        if pods:
            try:
                log_text = self.core.read_namespaced_pod_log(pods[0].metadata.name, self.config.namespace, tail_lines=20)
                lines.append(f"Last log lines of {pods[0].metadata.name}:\n{log_text}")
            except ApiException as exc:
                lines.append(f"(logs of {pods[0].metadata.name} unavailable: {exc.reason})")
        return "\n".join(lines) or "No pods were created: check `kubectl describe deployment` for quota or image errors."

    def remove(self, name: str) -> None:
        ns, obj = self.config.namespace, self._name(name)
        for delete in (lambda: self.apps.delete_namespaced_deployment(obj, ns, propagation_policy="Foreground"),
                       lambda: self.core.delete_namespaced_service(obj, ns)):
            try:
                delete()
            except ApiException as exc:
                if exc.status != 404:  # already gone is what we want
                    raise errors.Unavailable(f"Kubernetes refused to delete {obj}: {exc.status} {exc.reason}") from exc

    def discover(self, entry: CatalogEntry) -> list[str]:
        try:
            self.apps.read_namespaced_deployment(self._name(entry.name), self.config.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return []
            raise errors.Unavailable(f"Kubernetes API error reading {self._name(entry.name)}: {exc.reason}") from exc
        return [e for e in self._ready_endpoints(entry.name, self.config.plugin_port) if check_serving(e)]
