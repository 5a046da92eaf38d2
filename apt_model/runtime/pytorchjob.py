"""Multi-node training on Kubernetes: a training job with ``nodes`` > 1 runs as a Kubeflow
training-operator ``PyTorchJob`` (``kubeflow.org/v1``), submitted and followed by the service
that owns the job under APT_DEPLOYER=kubernetes: the gateway for core ``train``, a plugin's service
for its own training operations (distill, prune, multimodal train, CoT/verifier/RL training, HF train).

The job's pods run the service's own image in worker mode: ``python -m torch.distributed.run -m
<rank module> <run folder>`` (torchrun reads the operator's PET_NNODES, PET_NPROC_PER_NODE,
PET_NODE_RANK, PET_MASTER_ADDR and PET_MASTER_PORT), one Master pod and ``nodes - 1`` Worker pods
of ``workers`` ranks each, with the store PVC mounted at /data (ReadWriteMany: the run folder with
the job's payload is on it) and the internal token from the apt-tokens Secret. Rank 0 writes its
progress and result into the run folder, as under the local torchrun launcher
(apt_model.modeling.distributed), and the owner relays them to the job; the PyTorchJob's
conditions (Created, Running, Restarting, Succeeded, Failed) become the job's stages and its end.
A cancel leaves the ``cancel`` file (the ranks checkpoint and stop together), then deletes the
PyTorchJob. The RBAC this needs is k8s/base/gateway/rbac-training.yaml: pytorchjobs in the
namespace, nothing more; a plugin's is rendered from its plugin.yaml's ``multi_node: true``
(gateway/deploy/render.py). Installing the operator: docs/scaling.md.

apt_model, not the gateway: every service image carries it, and a plugin submits its own jobs.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apt_model import errors
from apt_model.modeling import distributed

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
STORE_MOUNT = "/data"         # the store PVC in every pod (render.deployment mounts it there too)
POLL_SECONDS = 1.0
CANCEL_GRACE_SECONDS = 30.0   # after a cancel, how long the ranks get to checkpoint before the job is deleted
STATES = ("Created", "Running", "Restarting", "Succeeded", "Failed")  # the operator's condition types
TOKEN_DIR = "/run/secrets/apt"  # the apt-tokens Secret (internal token only) in a service's pod
SERVICE_UID = 10001             # the unprivileged user of every service image (docker/base.Dockerfile)


@dataclass(frozen=True)
class Cluster:
    """Where a service submits its PyTorchJobs: its namespace and its own image, from the
    environment the kubernetes deployer gives its pod (gateway/deploy/render.py)."""

    namespace: str  # APT_K8S_NAMESPACE (a plugin pod's: the downward API's metadata.namespace)
    image: str      # APT_IMAGE: the service's own image, which the job's pods run in worker mode

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Cluster":
        env = dict(os.environ if env is None else env)
        missing = [k for k in ("APT_K8S_NAMESPACE", "APT_IMAGE") if not env.get(k)]
        if missing:
            raise errors.FailedPrecondition(
                f"Multi-node training needs {' and '.join(missing)} in this service's environment, which "
                "k8s/base sets in the gateway's pod and the kubernetes deployer in every plugin pod: deploy with "
                "`kubectl apply -k k8s/base` or `apt-model plugin install`, or set them where the service runs "
                "(APT_IMAGE: the service's own image, which the job's pods run).")
        return cls(env["APT_K8S_NAMESPACE"], env["APT_IMAGE"])


@dataclass(frozen=True)
class JobShape:
    """What one PyTorchJob runs and where."""

    name: str          # the object's name (a DNS label)
    module: str        # the rank module, run by torchrun in each pod (gateway.core.train_rank, apt_distill.distill_rank)
    run_folder: str    # the run folder's path relative to the store root (".runs/train-NAME")
    nodes: int         # pods: one Master and nodes - 1 Workers
    workers: int       # ranks per pod (nprocPerNode)
    gpu: bool          # each pod asks for ``workers`` GPUs (nvidia.com/gpu)
    image: str         # the owning service's own image
    namespace: str
    threads: int = 1   # torch CPU threads per rank


def object_name(kind: str, name: str) -> str:
    """A DNS-1035 label for the PyTorchJob of a run (``apt-train-<model>``), at most 63 characters."""
    clean = "".join(c if c.isascii() and c.isalnum() else "-" for c in f"apt-{kind}-{name}".lower())
    return clean[:63].rstrip("-")


def manifest(shape: JobShape) -> dict:
    """The PyTorchJob: Master (1) and Worker (nodes - 1) replica specs of the same pod."""
    replica = {"restartPolicy": "Never", "template": _pod_template(shape)}  # a failed rank fails the job
    specs = {"Master": {"replicas": 1, **replica}}
    if shape.nodes > 1:
        specs["Worker"] = {"replicas": shape.nodes - 1, **replica}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": shape.name, "namespace": shape.namespace,
                     "labels": {"app.kubernetes.io/part-of": "apt", "app.kubernetes.io/component": "training"}},
        "spec": {"nprocPerNode": str(shape.workers), "pytorchReplicaSpecs": specs,
                 # no retries: a rank's error is the job's; the pods stay for `kubectl logs` until deleted
                 "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"}},
    }


def _pod_template(shape: JobShape) -> dict:
    """One node's pod: the service image's torchrun over the rank module, locked down as the
    plugin pods are (gateway/deploy/render.py), the store PVC and only the internal token mounted
    (no service-account token: the ranks never talk to the Kubernetes API, only their owner does)."""
    folder = f"{STORE_MOUNT}/{shape.run_folder}"
    container = {
        "name": "pytorch",  # the operator finds the training container by this name
        "image": shape.image, "imagePullPolicy": "IfNotPresent",
        "command": ["python", "-m", "torch.distributed.run", "--max-restarts=0", "--monitor-interval=0.5",
                    "-m", shape.module, folder],
        "env": [{"name": "APT_HOME", "value": STORE_MOUNT}, {"name": "HOME", "value": "/tmp"},
                {"name": "OMP_NUM_THREADS", "value": str(max(shape.threads, 1))},
                {"name": "TORCHELASTIC_ERROR_FILE", "value": f"{folder}/torchrun-error.json"},
                {"name": "APT_INTERNAL_TOKEN_FILE", "value": f"{TOKEN_DIR}/internal_token"}],
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "store", "mountPath": STORE_MOUNT}, {"name": "tmp", "mountPath": "/tmp"},
                         {"name": "shm", "mountPath": "/dev/shm"},
                         {"name": "tokens", "mountPath": TOKEN_DIR, "readOnly": True}],
    }
    if shape.gpu:
        container["resources"] = {"limits": {"nvidia.com/gpu": shape.workers}}
    uid = SERVICE_UID
    return {
        "metadata": {"labels": {"app.kubernetes.io/part-of": "apt", "app.kubernetes.io/component": "training",
                                "apt.training-job": shape.name}},
        "spec": {
            "automountServiceAccountToken": False,  # ranks never talk to the Kubernetes API
            "securityContext": {"runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid, "fsGroup": uid,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container],
            "volumes": [
                {"name": "store", "persistentVolumeClaim": {"claimName": "apt-store"}},
                {"name": "tmp", "emptyDir": {}},
                {"name": "shm", "emptyDir": {"medium": "Memory"}},  # NCCL's and gloo's shared memory
                {"name": "tokens", "secret": {"secretName": "apt-tokens", "defaultMode": 0o440,
                                              "items": [{"key": "internal-token", "path": "internal_token"}]}},
            ],
        },
    }


def state_of(obj: dict) -> str:
    """The job's state: the type of its last condition whose status is True ("" before any)."""
    conditions = [c for c in (obj.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True" and c.get("type") in STATES]
    return conditions[-1]["type"] if conditions else ""


def cluster_client(who: str, account: str = "apt-gateway"):
    """A client of the cluster this service runs in (its pod's service account ``account``), else
    the kubeconfig's (``$KUBECONFIG`` as set now, not at import). ``who`` starts the
    FAILED_PRECONDITION that says what needed the cluster when there are no credentials."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    try:
        k8s_config.load_incluster_config()
    except ConfigException:
        try:
            k8s_config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
        except (ConfigException, FileNotFoundError) as exc:
            raise errors.FailedPrecondition(
                f"{who} but no cluster credentials were found: run the service in the cluster (service account "
                f"{account}) or provide a kubeconfig ({exc}).") from exc
    return k8s.ApiClient()


def api_client(account: str = "apt-gateway"):
    """A client for submitting PyTorchJobs, as the service account ``account`` in the cluster."""
    return cluster_client("Multi-node training (nodes > 1) submits a Kubeflow PyTorchJob,", account)


def refuse_host_paths(nodes: int, store_root: Path | None = None, **paths) -> None:
    """A multi-node job's pods mount the store volume and nothing else of the service's host, so a
    file a request names (``paths``: request field -> a path or paths) outside ``store_root`` cannot
    be read there: FAILED_PRECONDITION naming the field and the way out, before any job starts."""
    if nodes <= 1:
        return
    root = Path(store_root).resolve() if store_root else None
    for field, value in paths.items():
        for path in [value] if isinstance(value, (str, Path)) else value or ():
            if path and not (root and Path(path).resolve().is_relative_to(root)):
                raise errors.FailedPrecondition(
                    f"{field} names {path}, a file on this service's host, which the pods of a multi-node job "
                    "(nodes > 1) do not see: they mount only the store volume. Add the file to the store "
                    "(`apt-model data add`) and name the dataset instead, or run on one node.",
                    reason="MULTI_NODE_HOST_PATH")


def run_spec(module: str, operation: str, spec, kind: str, name: str, home: Path, ctx, cluster: Cluster,
             account: str, client=None) -> dict[str, Any]:
    """A plugin's multi-node job: ``spec`` (a dataclass with ``nodes``, ``workers`` and, where the
    operation has one, ``device``: "cuda" asks each pod for ``workers`` GPUs) as the PyTorchJob ``apt-<kind>-<name>`` of ``cluster.image``, whose pods run ``module``
    (``distributed.spec_rank_main``: ``operation`` names the work) over the run folder
    ``home/.runs/<kind>-<name>``; followed as ``ctx``, as ``distributed.launch_spec`` is locally."""
    run_folder = f".runs/{kind}-{name}"
    shape = JobShape(object_name(kind, name), module, run_folder, spec.nodes, spec.workers,
                     gpu=getattr(spec, "device", "") == "cuda", image=cluster.image, namespace=cluster.namespace,
                     threads=getattr(spec, "threads", 0) or 1)
    runner = PyTorchJobRunner(client or api_client(account), cluster.namespace)
    return runner.run(shape, {"operation": operation, "spec": dataclasses.asdict(spec)}, Path(home) / run_folder, ctx)


class PyTorchJobRunner:
    """Submits one run's PyTorchJob and follows it as the job ``ctx``."""

    def __init__(self, client, namespace: str, poll_seconds: float = POLL_SECONDS,
                 cancel_grace: float = CANCEL_GRACE_SECONDS):
        from kubernetes import client as k8s

        self.api, self.namespace = k8s.CustomObjectsApi(client), namespace
        self.poll, self.grace = poll_seconds, cancel_grace

    def run(self, shape: JobShape, payload: dict[str, Any], folder: Path, ctx) -> dict[str, Any]:
        """Write the payload into ``folder`` (the run folder on the store), create the PyTorchJob
        and follow it; returns rank 0's result or raises the job's error (``errors.Cancelled``)."""
        # no owner_pid: the owner is in another pod; it cancels through the folder and the API instead.
        # No home either: each pod's is its APT_HOME (the store PVC's mount point)
        distributed.write_payload(folder, {**{k: v for k, v in payload.items() if k != "home"},
                                           "job_id": distributed.logging_job(ctx)})
        self._create(manifest(shape))
        ctx.report(stage="scheduling", message=f"PyTorchJob {shape.name}: {shape.nodes} pods of {shape.workers} "
                                               f"ranks submitted")
        return self._follow(shape, folder, ctx)

    def _create(self, body: dict) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, body)
        except ApiException as exc:
            name = body["metadata"]["name"]
            if exc.status == 409:
                raise errors.FailedPrecondition(
                    f"A PyTorchJob named {name} already exists in namespace {self.namespace}: a run of this name is "
                    f"going on or was left behind; cancel it, or `kubectl delete pytorchjob {name}`.") from exc
            if exc.status == 404:
                raise errors.FailedPrecondition(
                    "The cluster has no kubeflow.org/v1 PyTorchJob resource: install the Kubeflow training "
                    "operator (docs/scaling.md) for multi-node training.") from exc
            raise errors.Unavailable(f"The Kubernetes API refused PyTorchJob {name}: {exc.status} {exc.reason}: "
                                     f"{(exc.body or '')[:300]}") from exc

    def _follow(self, shape: JobShape, folder: Path, ctx) -> dict[str, Any]:
        relay, seen, cancelled_at = distributed._Relay(folder / distributed.EVENTS, ctx), "", None
        while True:
            relay.pump()
            if cancelled_at is None and ctx.cancelled:
                (folder / distributed.CANCEL).touch()  # the ranks checkpoint and stop at the same step
                cancelled_at = time.monotonic()
            if cancelled_at is not None and (self._ranks_stopped(folder, shape)
                                             or time.monotonic() - cancelled_at > self.grace):
                self.delete(shape.name)
                raise errors.Cancelled("The job was cancelled.")
            for obj in self._watch(shape.name):  # the changes of the next ``poll`` seconds
                state = state_of(obj)
                if state != seen:
                    seen = state
                    ctx.report(stage="train" if state == "Running" else "scheduling",
                               message=f"PyTorchJob {shape.name}: {state}")
                if state == "Succeeded":
                    relay.pump()
                    return json.loads((folder / distributed.RESULT).read_text())
                if state == "Failed":
                    relay.pump()
                    if cancelled_at is not None:  # the ranks stopped on the cancel before the next look
                        self.delete(shape.name)
                    raise self._failure(shape, folder, cancelled_at is not None, obj)

    def _watch(self, name: str):
        """The PyTorchJob's versions over one short watch (``poll`` seconds, at least 1: the API's
        unit): the current one, then each change; the job fails if the object is gone."""
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        found = False
        try:
            for event in watch.Watch().stream(self.api.list_namespaced_custom_object, GROUP, VERSION,
                                              self.namespace, PLURAL, field_selector=f"metadata.name={name}",
                                              timeout_seconds=max(1, round(self.poll))):
                if event["type"] == "DELETED":
                    break
                found = True
                yield event["object"]
        except ApiException as exc:
            raise errors.Unavailable(f"The Kubernetes API failed watching PyTorchJob {name}: {exc.status} "
                                     f"{exc.reason}") from exc
        if not found:
            raise errors.AptError(f"PyTorchJob {name} was deleted while the job ran (not by a cancel).",
                                  reason="TRAINING_JOB_DELETED")

    def _ranks_stopped(self, folder: Path, shape: JobShape) -> bool:
        """Every rank has ended after the cancel (each leaves its error file on the way out)."""
        return len(list(folder.glob("error-*.json"))) >= shape.nodes * shape.workers

    def _failure(self, shape: JobShape, folder: Path, cancelled: bool, obj: dict) -> errors.AptError:
        """A rank's own error (the first raised), else the operator's account of the failure."""
        own = {int(p.stem.split("-")[1]): json.loads(p.read_text()) for p in folder.glob("error-*.json")}
        failed = {rank: err for rank, err in own.items() if err["type"] != "Cancelled"}
        if failed:
            rank = min(failed, key=lambda r: (failed[r].get("time", 0.0), r))
            cls = getattr(errors, failed[rank]["type"], errors.AptError)
            return cls(f"rank {rank} of {shape.nodes * shape.workers}: {failed[rank]['message']}",
                       reason=failed[rank]["reason"])
        if cancelled or own:
            return errors.Cancelled("The job was cancelled.")
        [last] = [c for c in obj["status"]["conditions"] if c.get("type") == "Failed"][-1:] or [{}]
        return errors.AptError(f"PyTorchJob {shape.name} failed: {last.get('reason', '')}: "
                               f"{last.get('message', 'no message')}; `kubectl logs -l apt.training-job={shape.name}` "
                               "has the ranks' output.", reason="RANK_FAILED")

    def delete(self, name: str) -> None:
        """Delete the PyTorchJob (and, through the operator, its pods); already gone is fine."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, name,
                                                     propagation_policy="Foreground")
        except ApiException as exc:
            if exc.status != 404:
                raise errors.Unavailable(f"Kubernetes refused to delete PyTorchJob {name}: {exc.status} "
                                         f"{exc.reason}") from exc

