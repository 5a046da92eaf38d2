"""--nodes N (#18): under the kubernetes deployer an HF Trainer fine-tune with nodes > 1 is a
Kubeflow PyTorchJob of this plugin's own image, submitted, followed and (on cancel) deleted by the
plugin's service, so the gateway and the CLI see an ordinary job; other deployers refuse it at
Start. The cluster is LocalKubeApiServer with the operator's part played by
tests/deploy/training_operator.py, whose "pods" run the manifest's own command as two torchrun
nodes on loopback. Model and dataset are store entries, which the pods mount: the train request
names no file of the service's host, so there is no host path to refuse."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as pb
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc as pb_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.testing import JobRecorder, assert_same_curve

from apt_hf.trainer import TrainSpec, run_train

pytest.importorskip("kubernetes.client", reason="multi-node training submits through the kubernetes client")
pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from tests.deploy.training_operator import (  # noqa: E402
    Operator, assert_deleted, assert_ran_as_pytorchjob, cancel_at_step, kube_cluster, watch)

PLUGIN_DIR = Path(__file__).resolve().parents[1]
IMAGE = "registry.example/apt/huggingface-integration:1.2"


def request(**kw) -> pb.TrainRequest:
    base = dict(model="base", dataset="corpus", output_name="two", seq_len=32, learning_rate=3e-3, batch_size=4,
                max_steps=8, seed=0, eval_fraction=0.2, device="cpu", nodes=2, workers=1)
    return pb.TrainRequest(**{**base, **kw})


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    with kube_cluster(tmp_path, monkeypatch, image=IMAGE) as api:  # a plugin pod's APT_IMAGE
        yield api


def serve(store, deployer: str):
    return serve_plugin(PLUGIN_DIR, store.root, deployer=deployer)


@pytest.mark.parametrize("deployer", ["local", "docker"])
def test_other_deployers_refuse_nodes_at_start(model_and_data, deployer):
    with serve(model_and_data, deployer) as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            pb_grpc.HuggingFaceStub(channel).StartTrain(request())
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the kubernetes deployer" in info.value.details() and "--workers N" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_NEEDS_KUBERNETES"


def test_two_nodes_train_as_a_pytorchjob_through_the_ordinary_job(model_and_data, cluster):
    store = model_and_data
    with serve(store, "kubernetes") as (channel, _), \
            Operator(cluster, store.root, python_path=(PLUGIN_DIR,)) as operator:
        job = pb_grpc.HuggingFaceStub(channel).StartTrain(request())
        last, snaps = watch(channel, job.id)
    assert last.state == job_pb2.JOB_STATE_SUCCEEDED, last.error.message
    assert operator.job["metadata"]["name"] == "apt-hf-train-two"
    assert_ran_as_pytorchjob(operator.job, snaps, "apt_hf.train_rank", ".runs/hf-train-two", IMAGE, 8, states=("Succeeded",))
    one = run_train(store, TrainSpec.from_request(request(output_name="one", nodes=1)), JobRecorder())
    assert last.result["steps"] == one["steps"] == 8
    assert_same_curve(trainlog.read(store.model("two").path), trainlog.read(store.model("one").path), 8)
    assert ("pytorchjobs", "apt-test", "apt-hf-train-two") in cluster.objects  # kept for `kubectl logs`


def test_cancel_deletes_the_pytorchjob_and_stores_nothing(model_and_data, cluster):
    store = model_and_data
    with serve(store, "kubernetes") as (channel, _), \
            Operator(cluster, store.root, python_path=(PLUGIN_DIR,)) as operator:
        job = pb_grpc.HuggingFaceStub(channel).StartTrain(request(output_name="cut", max_steps=5000))
        last = cancel_at_step(channel, job.id, 2)
        cancelled_at = time.monotonic()
        while any(p.poll() is None for p in operator.procs) and time.monotonic() < cancelled_at + 30:
            time.sleep(0.1)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert_deleted(cluster, "apt-hf-train-cut")
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    assert not store.exists("models", "cut")  # no partial model
