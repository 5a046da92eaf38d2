"""--nodes N (#18): under the kubernetes deployer CoT, verifier and RL training with nodes > 1 run
as a Kubeflow PyTorchJob of this plugin's own image, submitted, followed and (on cancel) deleted by
the plugin's service, so the gateway and the CLI see an ordinary job; other deployers refuse it at
Start. The cluster is LocalKubeApiServer with the operator's part played by
tests/deploy/training_operator.py, whose "pods" run the manifest's own command as two torchrun
nodes on loopback."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
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

from tests.deploy.training_operator import (  # noqa: E402
    Operator, assert_deleted, assert_ran_as_pytorchjob, cancel_at_step, kube_cluster, validate_job, watch)

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
    with kube_cluster(tmp_path, monkeypatch, image=IMAGE) as api:  # a plugin pod's APT_IMAGE
        yield api


def serve(home, deployer: str):
    return serve_plugin(PLUGIN_DIR, home, deployer=deployer)


def start(channel, operation: str, **kw) -> job_pb2.Job:
    method, request, _ = OPERATIONS[operation]
    return getattr(reasoning_pb2_grpc.ReasoningStub(channel), method)(request(**kw))


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
    assert operator.job["metadata"]["name"] == "apt-reasoning-cot-two"
    assert_ran_as_pytorchjob(operator.job, snaps, "apt_reason.ranks", ".runs/reasoning-cot-two", IMAGE, 10)
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
        last = cancel_at_step(channel, job.id, 3)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert_deleted(cluster, "apt-reasoning-cot-cut")
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    reached = RunCheckpoint(Store(home), "reasoning-cot", "cut").step()
    assert reached is not None and 3 <= reached < 5000 and not Store(home).exists("models", "cut")
