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
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2 as pb
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc as pb_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.testing import JobRecorder, assert_same_curve

from apt_hf.trainer import TrainSpec, run_train

pytest.importorskip("kubernetes.client", reason="multi-node training submits through the kubernetes client")
pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from tests.deploy.training_operator import JOBS, Operator, kube_cluster, validate_job  # noqa: E402

PLUGIN_DIR = Path(__file__).resolve().parents[1]
IMAGE = "registry.example/apt/huggingface-integration:1.2"
FINAL = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED)


def request(**kw) -> pb.TrainRequest:
    base = dict(model="base", dataset="corpus", output_name="two", seq_len=32, learning_rate=3e-3, batch_size=4,
                max_steps=8, seed=0, eval_fraction=0.2, device="cpu", nodes=2, workers=1)
    return pb.TrainRequest(**{**base, **kw})


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_IMAGE", IMAGE)  # what gateway/deploy/render.py sets in the plugin's pod
    with kube_cluster(tmp_path, monkeypatch) as api:
        yield api


def serve(store, deployer: str):
    return serve_plugin(PLUGIN_DIR, store.root, deployer=deployer)


def watch(channel, job_id: str, timeout: float = 300.0) -> tuple[job_pb2.Job, list[job_pb2.Job]]:
    snaps = []
    for snap in plugin_pb2_grpc.JobsStub(channel).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=timeout):
        snaps.append(snap)
        if snap.state in FINAL:
            return snap, snaps
    raise AssertionError("the watch ended before the job did")


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
    validate_job(operator.job)  # the vendored CRD schema, and the Kubernetes API's for its pods
    specs = operator.job["spec"]["pytorchReplicaSpecs"]
    assert operator.job["metadata"]["name"] == "apt-hf-train-two" and specs["Worker"]["replicas"] == 1
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE  # the plugin's own image, in worker mode
    assert container["command"][-3:] == ["-m", "apt_hf.train_rank", "/data/.runs/hf-train-two"]
    assert "resources" not in container  # device cpu: no GPU asked for
    # the PyTorchJob's states and rank 0's progress reached the ordinary WatchJob stream (which sends
    # the latest snapshot at each read: a state is seen unless the next report came before the read)
    messages = [s.message for s in snaps if s.message.startswith("PyTorchJob")]
    assert "PyTorchJob apt-hf-train-two: Succeeded" in messages, messages
    assert max(s.metrics.get("step", 0) for s in snaps) == 8
    one = run_train(store, TrainSpec.from_request(request(output_name="one", nodes=1)), JobRecorder())
    assert last.result["steps"] == one["steps"] == 8
    assert_same_curve(trainlog.read(store.model("two").path), trainlog.read(store.model("one").path), 8)
    assert ("pytorchjobs", "apt-test", "apt-hf-train-two") in cluster.objects  # kept for `kubectl logs`


def test_cancel_deletes_the_pytorchjob_and_stores_nothing(model_and_data, cluster):
    store = model_and_data
    with serve(store, "kubernetes") as (channel, _), \
            Operator(cluster, store.root, python_path=(PLUGIN_DIR,)) as operator:
        job = pb_grpc.HuggingFaceStub(channel).StartTrain(request(output_name="cut", max_steps=5000))
        jobs = plugin_pb2_grpc.JobsStub(channel)
        deadline = time.monotonic() + 240
        while jobs.GetJob(job_pb2.GetJobRequest(id=job.id)).metrics.get("step", 0) < 2:
            assert time.monotonic() < deadline, "rank 0's progress never reached the job"
            time.sleep(0.1)
        jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
        last, _ = watch(channel, job.id)
        cancelled_at = time.monotonic()
        while any(p.poll() is None for p in operator.procs) and time.monotonic() < cancelled_at + 30:
            time.sleep(0.1)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert ("DELETE", f"{JOBS}/apt-hf-train-cut") in [(m, p) for m, p, _ in cluster.requests]
    assert ("pytorchjobs", "apt-test", "apt-hf-train-cut") not in cluster.objects
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    assert not store.exists("models", "cut")  # no partial model
