"""--nodes N (#18): under the kubernetes deployer a distillation with nodes > 1 is a Kubeflow
PyTorchJob of this plugin's own image, submitted, followed and (on cancel) deleted by the plugin's
service, so the gateway and the CLI see an ordinary job; other deployers refuse it at Start. The
cluster is LocalKubeApiServer with the operator's part played by tests/deploy/training_operator.py,
whose "pods" run the manifest's own command as two torchrun nodes on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_model.testing import JobRecorder, assert_same_curve

from apt_distill.distill import run_distill
from apt_distill.spec import DistillSpec

pytest.importorskip("kubernetes.client", reason="multi-node distillation submits through the kubernetes client")
pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from tests.deploy.training_operator import (  # noqa: E402
    Operator, assert_deleted, assert_ran_as_pytorchjob, cancel_at_step, kube_cluster, watch)

PLUGIN_DIR = Path(__file__).resolve().parents[1]
IMAGE = "registry.example/apt/model-distillation:1.2"


def request(corpus: str, **kw) -> pb.DistillRequest:
    base = dict(teacher="tiny-t", output_name="two", student_layers=1, strategies=["response"],
                dataset=corpus, seq_len=32, batch_size=4, max_steps=20, learning_rate=3e-3,
                eval_every=10, checkpoint_every=1000, device="cpu", nodes=2, workers=1)
    return pb.DistillRequest(**{**base, **kw})


@pytest.fixture
def corpus(home) -> str:
    """A store dataset: a multi-node job's pods mount the store and nothing else of the host."""
    with Store(home).create("datasets", "corp", operation="test-corpus") as folder:
        shutil.copy(home / "corpus.txt", folder / "corpus.txt")
    return "corp"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    with kube_cluster(tmp_path, monkeypatch, image=IMAGE) as api:  # a plugin pod's APT_IMAGE
        yield api


def serve(home, deployer: str):
    return serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),), deployer=deployer)


@pytest.mark.parametrize("deployer", ["local", "docker"])
def test_other_deployers_refuse_nodes_at_start(home, corpus, deployer):
    with serve(home, deployer) as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            distillation_pb2_grpc.DistillationStub(channel).StartDistill(request(corpus))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the kubernetes deployer" in info.value.details() and "--workers N" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_NEEDS_KUBERNETES"


def test_a_host_file_is_refused_before_a_pytorchjob_is_submitted(home, cluster):
    """The pods would not see the service's data roots: the caller hears which field and what to do."""
    host_file = str(shutil.copy(home / "corpus.txt", home.parent / "corpus.txt"))
    with serve(home, "kubernetes") as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            distillation_pb2_grpc.DistillationStub(channel).StartDistill(
                request("", dataset="", corpus_paths=[host_file]))
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details().startswith(f"corpus_paths names {host_file}, a file on this service's host")
    assert "apt-model data add" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_HOST_PATH"
    assert not [r for r in cluster.requests if r[0] == "POST"]  # nothing was submitted


def test_two_nodes_distil_as_a_pytorchjob_through_the_ordinary_job(home, corpus, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        job = distillation_pb2_grpc.DistillationStub(channel).StartDistill(request(corpus))
        last, snaps = watch(channel, job.id)
    assert last.state == job_pb2.JOB_STATE_SUCCEEDED, last.error.message
    assert operator.job["metadata"]["name"] == "apt-distill-two"
    assert_ran_as_pytorchjob(operator.job, snaps, "apt_distill.distill_rank", ".runs/distill-two", IMAGE, 20)
    one = Store(home)
    run_distill(one, DistillSpec.from_request(request(corpus, output_name="one", nodes=1)), JobRecorder())
    assert_same_curve(trainlog.read(one.model("two").path), trainlog.read(one.model("one").path), 20)
    assert ("pytorchjobs", "apt-test", "apt-distill-two") in cluster.objects  # kept for `kubectl logs`


def test_cancel_deletes_the_pytorchjob_after_the_ranks_checkpoint(home, corpus, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        job = distillation_pb2_grpc.DistillationStub(channel).StartDistill(
            request(corpus, output_name="cut", max_steps=5000, eval_every=5000))
        last = cancel_at_step(channel, job.id, 3)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert_deleted(cluster, "apt-distill-cut")
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    reached = RunCheckpoint(Store(home), "distill", "cut").step()
    assert reached is not None and 3 <= reached < 5000 and not Store(home).exists("models", "cut")
