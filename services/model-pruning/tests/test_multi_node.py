"""--nodes N (#18): under the kubernetes deployer a prune with nodes > 1 is a Kubeflow PyTorchJob of
this plugin's own image, submitted, followed and (on cancel) deleted by the plugin's service, so the
gateway and the CLI see an ordinary job; other deployers refuse it at Start. The cluster is
LocalKubeApiServer with the operator's part played by tests/deploy/training_operator.py, whose
"pods" run the manifest's own command as two torchrun nodes on loopback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2 as pb
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc
from apt_model.modeling import trainlog
from apt_model.runtime.testing import serve_plugin
from apt_model.store import Store
from apt_model.testing import JobRecorder, assert_same_curve

from apt_prune.prune import REPORT_FILE, run_prune
from apt_prune.spec import PruneSpec

pytest.importorskip("kubernetes.client", reason="multi-node pruning submits through the kubernetes client")
pytest.importorskip("kubernetes_validate")
pytest.importorskip("jsonschema")

from tests.deploy.training_operator import (  # noqa: E402
    Operator, assert_deleted, assert_ran_as_pytorchjob, cancel_at_step, kube_cluster)

PLUGIN_DIR = Path(__file__).resolve().parents[1]
IMAGE = "registry.example/apt/model-pruning:1.2"


def request(**kw) -> pb.PruneRequest:
    """Magnitude pruning and 20 recovery steps on a store dataset (the pods mount only the store);
    the held-out tenth of it measures the perplexity."""
    base = dict(name="tiny", output_name="two", strategy="magnitude", ratio=0.5, seq_len=32, batch_size=4, seed=3,
                recovery_steps=20, recovery_dataset="corp", device="cpu", nodes=2, workers=1)
    return pb.PruneRequest(**{**base, **kw})


@pytest.fixture
def corpus(home) -> Path:
    """The store dataset 'corp', and the same text as a file in the service's data root."""
    with Store(home).create("datasets", "corp", operation="test-corpus") as folder:
        shutil.copy(home / "corpus.txt", folder / "corpus.txt")
    return Path(shutil.copy(home / "corpus.txt", home.parent / "corpus.txt"))


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    with kube_cluster(tmp_path, monkeypatch, image=IMAGE) as api:  # a plugin pod's APT_IMAGE
        yield api


def serve(home, deployer: str):
    return serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),), deployer=deployer)


def start(channel, req: pb.PruneRequest) -> job_pb2.Job:
    return pruning_pb2_grpc.PruningStub(channel).StartPrune(req)


def snapshots(channel, job_id: str) -> list[job_pb2.Job]:
    """Every state of the job that WatchJob sent, up to its end (the stream closes after it)."""
    return list(plugin_pb2_grpc.JobsStub(channel).WatchJob(job_pb2.WatchJobRequest(id=job_id), timeout=300))


@pytest.mark.parametrize("deployer", ["local", "docker"])
def test_other_deployers_refuse_nodes_at_start(home, corpus, deployer):
    with serve(home, deployer) as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            start(channel, request())
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "needs the kubernetes deployer" in info.value.details() and "prune on one machine" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_NEEDS_KUBERNETES"


@pytest.mark.parametrize("field", ["calibration_path", "recovery_path", "eval_path"])
def test_a_host_file_is_refused_before_a_pytorchjob_is_submitted(home, corpus, cluster, field):
    """The pods would not see the service's data roots: the caller hears which field and what to do."""
    req = request(strategy="taylor", **{field: str(corpus)})
    with serve(home, "kubernetes") as (channel, _):
        with pytest.raises(grpc.RpcError) as info:
            start(channel, req)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details().startswith(f"{field} names {corpus}, a file on this service's host")
    assert "apt-model data add" in info.value.details()
    assert dict(info.value.trailing_metadata())["apt-error-reason"] == "MULTI_NODE_HOST_PATH"
    assert not [r for r in cluster.requests if r[0] == "POST"]  # nothing was submitted


def test_two_nodes_prune_as_a_pytorchjob_through_the_ordinary_job(home, corpus, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        snaps = snapshots(channel, start(channel, request()).id)
    last = snaps[-1]
    assert last.state == job_pb2.JOB_STATE_SUCCEEDED, last.error.message
    assert operator.job["metadata"]["name"] == "apt-prune-two"
    assert_ran_as_pytorchjob(operator.job, snaps, "apt_prune.prune_rank", ".runs/prune-two", IMAGE, 20)
    store = Store(home)
    one = run_prune(store, PruneSpec.from_request(request(output_name="one", nodes=1)), JobRecorder())
    assert_same_curve(trainlog.read(store.model("two").path), trainlog.read(store.model("one").path), 20)
    two = json.loads((store.model("two").path / REPORT_FILE).read_text())  # rank 0's result, stored
    assert two["ratio_achieved"] == one["ratio_achieved"]
    assert two["after"]["perplexity"] == pytest.approx(one["after"]["perplexity"], rel=1e-4)
    assert two["recovery_loss_last"] == pytest.approx(one["recovery_loss_last"], rel=1e-4)
    assert ("pytorchjobs", "apt-test", "apt-prune-two") in cluster.objects  # kept for `kubectl logs`


def test_cancel_deletes_the_pytorchjob_and_stores_nothing(home, corpus, cluster):
    with serve(home, "kubernetes") as (channel, _), Operator(cluster, home, python_path=(PLUGIN_DIR,)) as operator:
        job = start(channel, request(output_name="cut", recovery_steps=100000))
        last = cancel_at_step(channel, job.id, 3)
    assert last.state == job_pb2.JOB_STATE_CANCELLED, last.error.message
    assert_deleted(cluster, "apt-prune-cut")
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves
    assert not Store(home).exists("models", "cut")  # no partial model
