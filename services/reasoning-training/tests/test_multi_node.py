"""--nodes N (#18): under the kubernetes deployer CoT, verifier and RL training with nodes > 1 run
as a Kubeflow PyTorchJob of this plugin's own image, submitted, followed and (on cancel) deleted by
the plugin's service, so the gateway and the CLI see an ordinary job; other deployers refuse it at
Start. The cluster is LocalKubeApiServer with the operator's part played by
tests/deploy/training_operator.py, whose "pods" run the manifest's own command as two torchrun
nodes on loopback."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2 as pb
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_model.testing import JobRecorder, assert_same_curve

from apt_reason import cot

pytest.importorskip("kubernetes.client", reason="multi-node training submits through the kubernetes client")
pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from tests.deploy.training_operator import JOBS, Operator, kube_cluster, validate_job  # noqa: E402

PLUGIN_DIR = Path(__file__).resolve().parents[1]
IMAGE = "registry.example/apt/reasoning-training:0.3"
BASE = dict(model="lm", dataset="probs", device="cpu", seed=3, nodes=2, workers=1)


def cot_request(**kw) -> pb.CotTrainingRequest:
    return pb.CotTrainingRequest(**{**BASE, "output_name": "two", "max_steps": 10, "batch_size": 4,
                                    "eval_questions": 2, "max_new_tokens": 8, "checkpoint_every": 1000, **kw})


# the three operations, each as (Start method, a small two-node request, the checkpoint kind)
OPERATIONS = {
    "cot": ("StartCotTraining", cot_request, "reasoning-cot"),
    "verifier": ("StartVerifierTraining", lambda **kw: pb.VerifierTrainingRequest(
        **{**BASE, "output_name": "two", "max_steps": 2, "kind": "outcome", "batch_size": 4, "eval_examples": 4,
           **kw}), "reasoning-verifier"),
    "rl": ("StartRLTraining", lambda **kw: pb.RLTrainingRequest(
        **{**BASE, "output_name": "two", "max_steps": 2, "questions_per_step": 2, "group": 2, "max_new_tokens": 8,
           "eval_questions": 2, **kw}), "reasoning-grpo"),
}


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_IMAGE", IMAGE)  # what gateway/deploy/render.py sets in the plugin's pod
    with kube_cluster(tmp_path, monkeypatch) as api:
        yield api


def serve(home, deployer: str):
    return serve_plugin(PLUGIN_DIR, home, deployer=deployer)


def start(channel, operation: str, **kw) -> job_pb2.Job:
    method, request, _ = OPERATIONS[operation]
    return getattr(reasoning_pb2_grpc.ReasoningStub(channel), method)(request(**kw))


def watch(channel, job_id: str, timeout: float = 300.0) -> tuple[job_pb2.Job, list[job_pb2.Job]]:
    snaps = []
    for snap in plugin_pb2_grpc.JobsStub(channel).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=timeout):
        snaps.append(snap)
        if snap.state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED):
            return snap, snaps
    raise AssertionError("the watch ended before the job did")


@pytest.mark.parametrize("deployer", ["local", "docker"])
@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_other_deployers_refuse_nodes_at_start(home, operation, deployer):
    with serve(home, deployer) as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            start(channel, operation)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the kubernetes deployer" in info.value.details() and "--workers N" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_NEEDS_KUBERNETES"


def test_two_nodes_train_cot_as_a_pytorchjob_through_the_ordinary_job(home, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        last, snaps = watch(channel, start(channel, "cot").id)
    assert last.state == job_pb2.JOB_STATE_SUCCEEDED, last.error.message
    validate_job(operator.job)  # the vendored CRD schema, and the Kubernetes API's for its pods
    specs = operator.job["spec"]["pytorchReplicaSpecs"]
    assert operator.job["metadata"]["name"] == "apt-reasoning-cot-two" and specs["Worker"]["replicas"] == 1
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE  # the plugin's own image, in worker mode
    assert container["command"][-3:] == ["-m", "apt_reason.ranks", "/data/.runs/reasoning-cot-two"]
    assert "resources" not in container  # device cpu: no GPU asked for
    # the PyTorchJob's states and rank 0's progress reached the ordinary WatchJob stream (which sends
    # the latest snapshot at each read: a state is seen unless the next report came before the read)
    messages = [s.message for s in snaps if s.message.startswith("PyTorchJob")]
    assert {"PyTorchJob apt-reasoning-cot-two: Running",
            "PyTorchJob apt-reasoning-cot-two: Succeeded"} <= set(messages), messages
    assert max(s.metrics.get("step", 0) for s in snaps) == 10
    one = Store(home)
    cot.run_cot(one, cot.CotSpec.from_request(cot_request(output_name="one", nodes=1)), JobRecorder())
    assert_same_curve(trainlog.read(one.model("two").path), trainlog.read(one.model("one").path), 10)
    assert ("pytorchjobs", "apt-test", "apt-reasoning-cot-two") in cluster.objects  # kept for `kubectl logs`


@pytest.mark.parametrize("operation", ["verifier", "rl"])
def test_two_nodes_train_a_verifier_and_grpo_as_a_pytorchjob(home, cluster, operation):
    """The same submission for the other two operations, two steps each: the manifest passes the
    schemas, both pods run the operation's ranks, and rank 0 stores the model."""
    kind = OPERATIONS[operation][2]
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        last, _ = watch(channel, start(channel, operation).id)
    assert last.state == job_pb2.JOB_STATE_SUCCEEDED, last.error.message
    validate_job(operator.job)
    assert operator.job["metadata"]["name"] == f"apt-{kind}-two"
    assert operator.job["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1
    assert [r["step"] for r in trainlog.read(Store(home).model("two").path)] == [1, 2]
    assert RunCheckpoint(Store(home), kind, "two").step() is None  # removed once the model is stored


def test_cancel_deletes_the_pytorchjob_after_the_ranks_checkpoint(home, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        job = start(channel, "cot", output_name="cut", max_steps=5000)
        jobs = plugin_pb2_grpc.JobsStub(channel)
        deadline = time.monotonic() + 240
        while jobs.GetJob(job_pb2.GetJobRequest(id=job.id)).metrics.get("step", 0) < 3:
            assert time.monotonic() < deadline, "rank 0's progress never reached the job"
            time.sleep(0.1)
        jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
        last, _ = watch(channel, job.id)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert ("DELETE", f"{JOBS}/apt-reasoning-cot-cut") in [(m, p) for m, p, _ in cluster.requests]
    assert ("pytorchjobs", "apt-test", "apt-reasoning-cot-cut") not in cluster.objects
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    reached = RunCheckpoint(Store(home), "reasoning-cot", "cut").step()
    assert reached is not None and 3 <= reached < 5000 and not Store(home).exists("models", "cut")
