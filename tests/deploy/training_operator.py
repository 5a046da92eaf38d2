"""The Kubeflow training operator's part in the PyTorchJob tests (#18), shared by core train's
(tests/deploy/test_pytorchjob.py) and the plugins' (services/*/tests/test_multi_node.py): the
vendored CRD schema check, a kubeconfig naming LocalKubeApiServer, and ``Operator``, which runs a
created PyTorchJob's pods as real torchrun processes on loopback over a store folder standing in
for the store PVC, and moves the job's conditions as the pods do."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from .kube_api import LocalKubeApiServer

ROOT = Path(__file__).resolve().parents[2]
NS = "apt-test"
JOBS = f"/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"
SCHEMA = yaml.safe_load((ROOT / "k8s/crds/kubeflow.org_pytorchjobs.schema.yaml").read_text())[
    "spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def validate_job(job: dict) -> None:
    """The PyTorchJob against the operator's schema, and each replica's pod against the Kubernetes API's."""
    import jsonschema
    import kubernetes_validate

    jsonschema.validate(job, SCHEMA)
    for spec in job["spec"]["pytorchReplicaSpecs"].values():  # the pod template: the core schema
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rank", **spec["template"]["metadata"]},
               "spec": {**spec["template"]["spec"], "restartPolicy": spec["restartPolicy"]}}
        kubernetes_validate.validate(pod, kubernetes_validate.latest_version(), strict=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def kube_cluster(tmp_path: Path, monkeypatch, image: str = ""):
    """LocalKubeApiServer as the cluster of a kubeconfig (what a service loads outside a pod), in
    namespace ``NS`` (the gateway's APT_K8S_NAMESPACE; a plugin pod's, from the downward API);
    ``image``: the service's own, as APT_IMAGE (what the kubernetes deployer sets in a plugin pod)."""
    if image:
        monkeypatch.setenv("APT_IMAGE", image)
    with LocalKubeApiServer(["127.0.0.1"]) as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "t",
            "clusters": [{"name": "t", "cluster": {"server": api.url}}],
            "contexts": [{"name": "t", "context": {"cluster": "t", "user": "t"}}], "users": [{"name": "t", "user": {}}]}))
        monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
        monkeypatch.setenv("APT_K8S_NAMESPACE", NS)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        yield api


class Operator:
    """Plays the training operator for one PyTorchJob: once the service created it, runs each
    replica's pod command (torchrun with the operator's PET_* variables, the store folder where the
    pod mounts the store PVC; ``python_path``: where the image has the service's packages) and moves
    the job's conditions as the pods do."""

    def __init__(self, api: LocalKubeApiServer, store_root: Path, python_path: tuple[Path, ...] = ()):
        self.api, self.root, self.procs, self.job = api, store_root, [], None
        self.python_path = os.pathsep.join(str(p) for p in (ROOT, *python_path))
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not any(m == "POST" and p == JOBS for m, p, _ in self.api.requests):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        self.job = [b for m, p, b in self.api.requests if m == "POST" and p == JOBS][0]
        try:
            validate_job(self.job)
        except Exception as exc:  # noqa: BLE001 - what the operator refuses fails the job, with why
            self.api.set_condition(NS, self.job["metadata"]["name"], "Failed", reason="InvalidSpec", message=str(exc)[:300])
            return
        specs, port = self.job["spec"]["pytorchReplicaSpecs"], _free_port()
        nodes = sum(s["replicas"] for s in specs.values())
        container = specs["Master"]["template"]["spec"]["containers"][0]
        command = [sys.executable if c == "python" else c.replace("/data", str(self.root))
                   for c in container["command"]]
        env = {**os.environ, "PYTHONPATH": self.python_path, "APT_HOME": str(self.root),
               **{e["name"]: e["value"].replace("/data", str(self.root)) for e in container["env"]
                  if e["name"] in ("OMP_NUM_THREADS", "TORCHELASTIC_ERROR_FILE")},
               "PET_NNODES": str(nodes), "PET_NPROC_PER_NODE": self.job["spec"]["nprocPerNode"],
               "PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)}
        self.procs = [subprocess.Popen(command, env={**env, "PET_NODE_RANK": str(i)}, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) for i in range(nodes)]
        name = self.job["metadata"]["name"]
        self.api.set_condition(NS, name, "Running")
        codes = [p.wait(300) for p in self.procs]
        if ("pytorchjobs", NS, name) in self.api.objects:  # not deleted by a cancel meanwhile
            self.api.set_condition(NS, name, "Succeeded" if not any(codes) else "Failed",
                                   message="" if not any(codes) else f"pods exited {codes}")

    def __enter__(self) -> "Operator":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        self.thread.join(10)


def watch(channel, job_id: str, timeout: float = 300.0):
    """(the job's last snapshot, every snapshot) of a service's WatchJob stream, up to its end."""
    from apt_model.gen.apt.common.v1 import job_pb2
    from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

    final = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED)
    snaps = []
    for snap in plugin_pb2_grpc.JobsStub(channel).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=timeout):
        snaps.append(snap)
        if snap.state in final:
            return snap, snaps
    raise AssertionError("the watch ended before the job did")


def wait_for_step(channel, job_id: str, step: int, timeout: float = 240.0) -> None:
    """Until rank 0's progress, relayed into the job, reaches ``step`` (the job still running)."""
    from apt_model.gen.apt.common.v1 import job_pb2
    from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

    jobs, deadline = plugin_pb2_grpc.JobsStub(channel), time.monotonic() + timeout
    while (snap := jobs.GetJob(job_pb2.GetJobRequest(id=job_id))).metrics.get("step", 0) < step:
        assert snap.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING), snap.error.message
        assert time.monotonic() < deadline, "rank 0's progress never reached the job"
        time.sleep(0.1)


def assert_ran_as_pytorchjob(job: dict, snaps, module: str, run_folder: str, image: str, steps: int,
                             states: tuple[str, ...] = ("Running", "Succeeded")) -> None:
    """A two-node PyTorchJob as a plugin submits it (the vendored CRD schema and the Kubernetes
    API's for its pods; one Master and one Worker running ``module`` over ``run_folder`` in the
    plugin's own ``image``, no GPU asked for), whose ``states`` and rank 0's ``steps`` reached the
    ordinary WatchJob stream ``snaps`` (which sends the latest snapshot at each read: a state is
    seen unless the next report came before the read)."""
    validate_job(job)
    name, specs = job["metadata"]["name"], job["spec"]["pytorchReplicaSpecs"]
    assert specs["Worker"]["replicas"] == 1
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["image"] == image  # the plugin's own image, in worker mode
    assert container["command"][-3:] == ["-m", module, f"/data/{run_folder}"]
    assert "resources" not in container  # device cpu: no GPU asked for
    messages = {s.message for s in snaps if s.message.startswith("PyTorchJob")}
    assert {f"PyTorchJob {name}: {state}" for state in states} <= messages, messages
    assert max(s.metrics.get("step", 0) for s in snaps) == steps


def cancel_at_step(channel, job_id: str, step: int, timeout: float = 240.0):
    """Cancel the job once rank 0 has reached ``step``; its last snapshot."""
    from apt_model.gen.apt.common.v1 import job_pb2
    from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc

    wait_for_step(channel, job_id, step, timeout)
    plugin_pb2_grpc.JobsStub(channel).CancelJob(job_pb2.CancelJobRequest(id=job_id))
    return watch(channel, job_id)[0]


def assert_deleted(api: LocalKubeApiServer, name: str) -> None:
    """The owning service deleted the PyTorchJob ``name`` (after a cancel)."""
    assert ("DELETE", f"{JOBS}/{name}") in [(m, p) for m, p, _ in api.requests]
    assert ("pytorchjobs", NS, name) not in api.objects
