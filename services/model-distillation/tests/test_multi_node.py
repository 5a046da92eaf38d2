"""--nodes N (#18): under the kubernetes deployer a distillation with nodes > 1 is a Kubeflow
PyTorchJob of this plugin's own image, submitted, followed and (on cancel) deleted by the plugin's
service, so the gateway and the CLI see an ordinary job; other deployers refuse it at Start. The
cluster is LocalKubeApiServer with the operator's part played by tests/deploy/training_operator.py,
whose "pods" run the manifest's own command as two torchrun nodes on loopback."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
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

from tests.deploy.training_operator import JOBS, Operator, kube_cluster, validate_job  # noqa: E402

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
    monkeypatch.setenv("APT_IMAGE", IMAGE)  # what gateway/deploy/render.py sets in the plugin's pod
    with kube_cluster(tmp_path, monkeypatch) as api:
        yield api


def serve(home, deployer: str):
    return serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),), deployer=deployer)


def watch(channel, job_id: str, timeout: float = 300.0) -> tuple[job_pb2.Job, list[job_pb2.Job]]:
    snaps = []
    for snap in plugin_pb2_grpc.JobsStub(channel).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=timeout):
        snaps.append(snap)
        if snap.state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED):
            return snap, snaps
    raise AssertionError("the watch ended before the job did")


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
    validate_job(operator.job)  # the vendored CRD schema, and the Kubernetes API's for its pods
    specs = operator.job["spec"]["pytorchReplicaSpecs"]
    assert operator.job["metadata"]["name"] == "apt-distill-two" and specs["Worker"]["replicas"] == 1
    container = specs["Master"]["template"]["spec"]["containers"][0]
    assert container["image"] == IMAGE  # the plugin's own image, in worker mode
    assert container["command"][-3:] == ["-m", "apt_distill.distill_rank", "/data/.runs/distill-two"]
    assert "resources" not in container  # device cpu: no GPU asked for
    # the PyTorchJob's states and rank 0's progress reached the ordinary WatchJob stream (which sends
    # the latest snapshot at each read: a state is seen unless the next report came before the read)
    messages = [s.message for s in snaps if s.message.startswith("PyTorchJob")]
    assert {"PyTorchJob apt-distill-two: Running", "PyTorchJob apt-distill-two: Succeeded"} <= set(messages), messages
    assert max(s.metrics.get("step", 0) for s in snaps) == 20
    one = Store(home)
    run_distill(one, DistillSpec.from_request(request(corpus, output_name="one", nodes=1)), JobRecorder())
    assert_same_curve(trainlog.read(one.model("two").path), trainlog.read(one.model("one").path), 20)
    assert ("pytorchjobs", "apt-test", "apt-distill-two") in cluster.objects  # kept for `kubectl logs`


def test_cancel_deletes_the_pytorchjob_after_the_ranks_checkpoint(home, corpus, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        job = distillation_pb2_grpc.DistillationStub(channel).StartDistill(
            request(corpus, output_name="cut", max_steps=5000, eval_every=5000))
        jobs = plugin_pb2_grpc.JobsStub(channel)
        deadline = time.monotonic() + 240
        while jobs.GetJob(job_pb2.GetJobRequest(id=job.id)).metrics.get("step", 0) < 3:
            assert time.monotonic() < deadline, "rank 0's progress never reached the job"
            time.sleep(0.1)
        jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
        last, _ = watch(channel, job.id)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert ("DELETE", f"{JOBS}/apt-distill-cut") in [(m, p) for m, p, _ in cluster.requests]
    assert ("pytorchjobs", "apt-test", "apt-distill-cut") not in cluster.objects
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    reached = RunCheckpoint(Store(home), "distill", "cut").step()
    assert reached is not None and 3 <= reached < 5000 and not Store(home).exists("models", "cut")
