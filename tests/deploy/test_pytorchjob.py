"""Multi-node core `train` (#18) as a Kubeflow PyTorchJob (apt_model/runtime/pytorchjob.py): the
manifest validated against the vendored CRD schema (k8s/crds/) and, for its pod, the Kubernetes
API's own schema; submitted through the official client to LocalKubeApiServer (standing in for
the API server and the training operator's conditions); its "pods" are real torchrun processes
running the manifest's own command, two nodes on loopback, over a store folder as the store PVC."""

from __future__ import annotations

import json
import threading
import time

import pytest

from apt_model import errors
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.testing import SAMPLE_TEXT, CancelAtStep, JobRecorder

from .training_operator import JOBS, NS, SCHEMA, Operator, kube_cluster, validate_job

k8s = pytest.importorskip("kubernetes.client", reason="the kubernetes client is in gateway/deploy/requirements.txt")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")


def _shape(**kw):
    from apt_model.runtime import pytorchjob

    base = dict(name="apt-train-big", module="gateway.core.train_rank", run_folder=".runs/train-big", nodes=3,
                workers=2, gpu=True, image="apt/gateway:1.0", namespace=NS)
    return pytorchjob.JobShape(**{**base, **kw})


def test_the_manifest_validates_against_the_operators_schema():
    from apt_model.runtime import pytorchjob

    job = pytorchjob.manifest(_shape())
    validate_job(job)
    specs = job["spec"]["pytorchReplicaSpecs"]
    assert (specs["Master"]["replicas"], specs["Worker"]["replicas"], job["spec"]["nprocPerNode"]) == (1, 2, "2")
    container = specs["Worker"]["template"]["spec"]["containers"][0]
    assert container["name"] == "pytorch" and container["image"] == "apt/gateway:1.0"
    assert container["command"][-3:] == ["-m", "gateway.core.train_rank", "/data/.runs/train-big"]
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 2}  # a GPU per rank of the pod
    volumes = {v["name"]: v for v in specs["Master"]["template"]["spec"]["volumes"]}
    assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "apt-store"
    assert volumes["tokens"]["secret"]["items"] == [{"key": "internal-token", "path": "internal_token"}]
    assert "resources" not in pytorchjob.manifest(_shape(gpu=False))["spec"]["pytorchReplicaSpecs"]["Master"][
        "template"]["spec"]["containers"][0]
    assert "Worker" not in pytorchjob.manifest(_shape(nodes=1))["spec"]["pytorchReplicaSpecs"]


def test_the_schema_check_can_fail():
    """The vendored schema catches what the operator would refuse (a guard of the test above)."""
    from apt_model.runtime import pytorchjob

    for breaks in (lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"].update(restartPolicy="Sometimes"),
                   lambda j: j["spec"].update(nprocPerNode=2),
                   lambda j: j["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas="two"),
                   lambda j: j["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"].update(containers=[]),
                   lambda j: j["spec"].pop("pytorchReplicaSpecs")):
        job = pytorchjob.manifest(_shape())
        breaks(job)
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(job, SCHEMA)


def test_object_names_are_dns_labels():
    from apt_model.runtime.pytorchjob import object_name

    assert object_name("train", "My_Model.v2") == "apt-train-my-model-v2"
    assert len(object_name("train", "x" * 200)) == 63


def test_other_deployers_refuse_nodes_with_what_it_needs(store, tmp_path):
    from gateway.core.train import TrainSpec

    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SAMPLE_TEXT))
    for deployer in ("local", "docker"):
        with pytest.raises(errors.FailedPrecondition, match="needs the kubernetes deployer.*Kubeflow") as info:
            TrainSpec(name="m", corpus_paths=(str(corpus),), nodes=2, batch_size=8).validate(store, deployer=deployer)
        assert info.value.reason == "MULTI_NODE_NEEDS_KUBERNETES"
    with pytest.raises(errors.FailedPrecondition, match=r"corpus_paths names .*c.txt.*only the store volume.*data add") as bad:
        TrainSpec(name="m", corpus_paths=(str(corpus),), nodes=2, batch_size=8).validate(store, deployer="kubernetes")
    assert bad.value.reason == "MULTI_NODE_HOST_PATH"
    on_volume = store.root / "c.txt"  # the pods mount the store volume where the gateway does
    on_volume.parent.mkdir(parents=True, exist_ok=True)
    on_volume.write_text(corpus.read_text())
    TrainSpec(name="m", corpus_paths=(str(on_volume),), nodes=2, batch_size=8).validate(store, deployer="kubernetes")
    with pytest.raises(errors.InvalidArgument, match=r"multiple of workers x nodes \(6\)"):
        TrainSpec(name="m", corpus_paths=(str(corpus),), nodes=3, workers=2, batch_size=8).validate(
            store, deployer="kubernetes")


GATEWAY_IMAGE = "registry.example/apt/gateway:3"


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("APT_IMAGE", GATEWAY_IMAGE)  # what k8s/base/gateway/deployment.yaml sets
    with kube_cluster(tmp_path, monkeypatch) as api:
        yield api


def _spec(store, tmp_path, name, **kw):
    from gateway.core.train import TrainSpec

    corpus = store.root / "corpus" / "corpus.txt"  # on the store volume: the pods see it
    corpus.parent.mkdir(parents=True, exist_ok=True)
    corpus.write_text("\n".join(SAMPLE_TEXT))
    base = dict(vocab_size=300, seq_len=32, batch_size=4, max_steps=20, eval_every=10, checkpoint_every=0, threads=1,
                nodes=2, workers=1)
    return TrainSpec(name=name, corpus_paths=(str(corpus),), **{**base, **kw}).validate(store, deployer="kubernetes")


def test_two_nodes_train_as_a_pytorchjob_and_match_one_process(store, tmp_path, cluster):
    from gateway.core.train import run_train

    recorder = JobRecorder()
    with Operator(cluster, store.root) as operator:
        two = run_train(store, _spec(store, tmp_path, "two"), recorder)
    [container] = operator.job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]["containers"]
    assert container["image"] == GATEWAY_IMAGE  # the gateway's own image, as its pod says it
    one = run_train(store, _spec(store, tmp_path, "one", nodes=1), JobRecorder())
    for a, b in zip(one["loss_curve"], two["loss_curve"], strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
    assert store.exists("models", "two") and recorder.series("step")[-1] == 20  # rank 0's reports reached the job
    messages = [r["message"] for r in recorder.reports if "PyTorchJob" in (r["message"] or "")]
    assert messages[-2:] == ["PyTorchJob apt-train-two: Running", "PyTorchJob apt-train-two: Succeeded"], messages
    assert ("GET", JOBS) in [(m, p) for m, p, _ in cluster.requests]  # followed by watching the collection
    payload = json.loads((store.root / ".runs/train-two/job.json").read_text())
    assert "owner_pid" not in payload and "home" not in payload  # the pods have neither the pid nor the path


def test_cancel_checkpoints_and_deletes_the_pytorchjob(store, tmp_path, cluster):
    from gateway.core.train import run_train

    ctx = CancelAtStep(3)
    with Operator(cluster, store.root) as operator, pytest.raises(errors.Cancelled):
        run_train(store, _spec(store, tmp_path, "cut", max_steps=5000, eval_every=5000), ctx)
    assert ("DELETE", f"{JOBS}/apt-train-cut") in [(m, p) for m, p, _ in cluster.requests]
    assert ("pytorchjobs", NS, "apt-train-cut") not in cluster.objects
    assert all(p.poll() is not None for p in operator.procs)  # the ranks stopped by themselves, after a checkpoint
    reached = RunCheckpoint(store, "train", "cut").step()
    assert reached is not None and 3 <= reached < 5000 and not store.exists("models", "cut")


def test_a_failed_pytorchjob_fails_the_job_with_the_operators_account(store, tmp_path, cluster):
    from apt_model.runtime import pytorchjob

    runner = pytorchjob.PyTorchJobRunner(pytorchjob.api_client(), NS, poll_seconds=0.05)
    shape = _shape(nodes=2, workers=1, gpu=False)

    def fail_once_created():
        while ("pytorchjobs", NS, shape.name) not in cluster.objects:
            time.sleep(0.02)
        cluster.set_condition(NS, shape.name, "Failed", reason="PyTorchJobFailed",
                              message="pod apt-train-big-worker-0 was evicted")

    threading.Thread(target=fail_once_created, daemon=True).start()
    with pytest.raises(errors.AptError, match="PyTorchJob apt-train-big failed: PyTorchJobFailed: pod .* evicted") as info:
        runner.run(shape, {"spec": {}}, store.root / shape.run_folder, JobRecorder())
    assert info.value.reason == "RANK_FAILED"
    # a second run of the same name while the first object is still there: refused, not replaced
    with pytest.raises(errors.FailedPrecondition, match="already exists.*kubectl delete pytorchjob apt-train-big"):
        runner.run(shape, {"spec": {}}, store.root / shape.run_folder, JobRecorder())


def test_a_cancelled_pytorchjob_that_ends_failed_before_the_ranks_files_appear_is_still_deleted(store, cluster):
    """Ranks that stop on a cancel exit 1, so the operator may mark the PyTorchJob Failed before
    the follower has seen every rank's error file: the job is cancelled and its object deleted
    all the same, not left with its pods."""
    from apt_model.modeling import distributed
    from apt_model.runtime import pytorchjob

    runner = pytorchjob.PyTorchJobRunner(pytorchjob.api_client(), NS, poll_seconds=0.05)
    shape = _shape(nodes=2, workers=1, gpu=False)
    folder = store.root / shape.run_folder
    ctx = JobRecorder()

    def fail_once_the_ranks_were_told():
        while ("pytorchjobs", NS, shape.name) not in cluster.objects:
            time.sleep(0.02)
        cluster.set_condition(NS, shape.name, "Running")
        ctx.cancel()
        while not (folder / distributed.CANCEL).exists():
            time.sleep(0.02)
        cluster.set_condition(NS, shape.name, "Failed", reason="PyTorchJobFailed", message="worker-0 exited 1")

    threading.Thread(target=fail_once_the_ranks_were_told, daemon=True).start()
    with pytest.raises(errors.Cancelled):
        runner.run(shape, {"spec": {}}, folder, ctx)
    assert ("DELETE", f"{JOBS}/{shape.name}") in [(m, p) for m, p, _ in cluster.requests]


def test_a_pytorchjob_deleted_by_someone_else_fails_the_job(store, cluster):
    from apt_model.runtime import pytorchjob

    runner = pytorchjob.PyTorchJobRunner(pytorchjob.api_client(), NS)
    shape = _shape(nodes=2, workers=1, gpu=False)

    def delete_once_running():
        while ("pytorchjobs", NS, shape.name) not in cluster.objects:
            time.sleep(0.02)
        cluster.set_condition(NS, shape.name, "Running")
        time.sleep(0.5)
        with cluster._lock:  # as `kubectl delete pytorchjob` would
            cluster.dispatch("DELETE", f"{JOBS}/{shape.name}", {}, None)

    threading.Thread(target=delete_once_running, daemon=True).start()
    with pytest.raises(errors.AptError, match="PyTorchJob apt-train-big was deleted while the job ran") as info:
        runner.run(shape, {"spec": {}}, store.root / shape.run_folder, JobRecorder())
    assert info.value.reason == "TRAINING_JOB_DELETED"


def test_a_service_that_does_not_know_its_image_submits_nothing(store, tmp_path, cluster, monkeypatch):
    from gateway.core.train import run_train

    monkeypatch.delenv("APT_IMAGE")
    with pytest.raises(errors.FailedPrecondition, match="needs APT_IMAGE in this service's environment"):
        run_train(store, _spec(store, tmp_path, "lost"), JobRecorder())
    assert not [r for r in cluster.requests if r[0] == "POST"]


# ---- the manifest whole, and the small rules around it ----------------------------------------

# The pod every replica runs, spelled out: the contract with the training operator and with the
# cluster's admission (locked down as the plugin pods are; no service-account token; the store PVC
# and the internal token only). A change here is a change of what the cluster runs.
POD = {
    "metadata": {"labels": {"app.kubernetes.io/part-of": "apt", "app.kubernetes.io/component": "training",
                            "apt.training-job": "apt-train-big"}},
    "spec": {
        "automountServiceAccountToken": False,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{
            "name": "pytorch", "image": "apt/gateway:1.0", "imagePullPolicy": "IfNotPresent",
            "command": ["python", "-m", "torch.distributed.run", "--max-restarts=0", "--monitor-interval=0.5",
                        "-m", "gateway.core.train_rank", "/data/.runs/train-big"],
            "env": [{"name": "APT_HOME", "value": "/data"}, {"name": "HOME", "value": "/tmp"},
                    {"name": "OMP_NUM_THREADS", "value": "3"},
                    {"name": "TORCHELASTIC_ERROR_FILE", "value": "/data/.runs/train-big/torchrun-error.json"},
                    {"name": "APT_INTERNAL_TOKEN_FILE", "value": "/run/secrets/apt/internal_token"}],
            "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": [{"name": "store", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"},
                             {"name": "shm", "mountPath": "/dev/shm"},
                             {"name": "tokens", "mountPath": "/run/secrets/apt", "readOnly": True}],
            "resources": {"limits": {"nvidia.com/gpu": 2}}}],
        "volumes": [{"name": "store", "persistentVolumeClaim": {"claimName": "apt-store"}},
                    {"name": "tmp", "emptyDir": {}}, {"name": "shm", "emptyDir": {"medium": "Memory"}},
                    {"name": "tokens", "secret": {"secretName": "apt-tokens", "defaultMode": 0o440,
                                                  "items": [{"key": "internal-token", "path": "internal_token"}]}}],
    },
}


def test_the_whole_manifest_is_what_the_cluster_runs():
    from apt_model.runtime import pytorchjob

    assert pytorchjob.manifest(_shape(threads=3)) == {
        "apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
        "metadata": {"name": "apt-train-big", "namespace": NS,
                     "labels": {"app.kubernetes.io/part-of": "apt", "app.kubernetes.io/component": "training"}},
        "spec": {"nprocPerNode": "2",
                 "pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "Never", "template": POD},
                                         "Worker": {"replicas": 2, "restartPolicy": "Never", "template": POD}},
                 "runPolicy": {"backoffLimit": 0, "cleanPodPolicy": "None"}}}
    env = pytorchjob.manifest(_shape(threads=0))["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"][0]["env"]
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in env   # at least one thread per rank
    assert pytorchjob.manifest(_shape(nodes=2))["spec"]["pytorchReplicaSpecs"]["Worker"]["replicas"] == 1


def test_object_names_keep_letters_and_digits_and_never_end_in_a_dash():
    from apt_model.runtime.pytorchjob import object_name

    assert object_name("distill", "A b--") == "apt-distill-a-b"
    assert object_name("train", "x" * 52 + "-y") == "apt-train-" + "x" * 52   # cut at 63, then the dash goes
    assert object_name("train", "ü7") == "apt-train--7"   # a DNS label is ASCII: str.isalnum alone took "ü"


def test_the_state_is_the_last_true_condition_the_operator_knows():
    from apt_model.runtime.pytorchjob import state_of

    def obj(*conditions):
        return {"status": {"conditions": [{"type": t, "status": s} for t, s in conditions]}}

    assert state_of({}) == state_of({"status": None}) == state_of({"status": {"conditions": None}}) == ""
    assert state_of(obj(("Created", "True"), ("Running", "True"))) == "Running"
    assert state_of(obj(("Created", "True"), ("Running", "False"))) == "Created"
    assert state_of(obj(("Running", "True"), ("Suspended", "True"))) == "Running"   # not one of STATES
    assert state_of(obj(("Running", "True"), ("Failed", "True"))) == "Failed"


def test_a_service_without_its_namespace_or_image_cannot_submit():
    from apt_model.runtime.pytorchjob import Cluster

    assert Cluster.from_env({"APT_K8S_NAMESPACE": "apt", "APT_IMAGE": "img:1"}) == Cluster("apt", "img:1")
    for env, missing in (({}, "APT_K8S_NAMESPACE and APT_IMAGE"), ({"APT_IMAGE": "img:1"}, "APT_K8S_NAMESPACE"),
                         ({"APT_K8S_NAMESPACE": "apt", "APT_IMAGE": ""}, "APT_IMAGE")):
        with pytest.raises(errors.FailedPrecondition) as info:
            Cluster.from_env(env)
        assert info.value.message == (
            f"Multi-node training needs {missing} in this service's environment, which k8s/base sets in the "
            "gateway's pod and the kubernetes deployer in every plugin pod: deploy with `kubectl apply -k "
            "k8s/base` or `apt-model plugin install`, or set them where the service runs (APT_IMAGE: the "
            "service's own image, which the job's pods run).")


def test_host_paths_are_refused_only_for_more_than_one_node(tmp_path):
    from apt_model.runtime.pytorchjob import refuse_host_paths

    store = tmp_path / "store"
    (store / "d").mkdir(parents=True)
    outside = tmp_path / "x.txt"
    refuse_host_paths(1, store, corpus_paths=[str(outside)])            # one node: the service's own host
    refuse_host_paths(2, store, corpus_paths=[str(store / "d" / "a.txt")], eval_path="", extra=None)
    for field, value in (("eval_path", str(outside)), ("corpus_paths", [str(store / "d"), str(outside)]),
                         ("corpus_paths", [str(store / ".." / "x.txt")])):
        with pytest.raises(errors.FailedPrecondition) as info:
            refuse_host_paths(2, store, **{field: value})
        assert info.value.reason == "MULTI_NODE_HOST_PATH"
        assert info.value.message == (
            f"{field} names {outside if field == 'eval_path' else value[-1]}, a file on this service's host, which "
            "the pods of a multi-node job (nodes > 1) do not see: they mount only the store volume. Add the file "
            "to the store (`apt-model data add`) and name the dataset instead, or run on one node.")
    with pytest.raises(errors.FailedPrecondition):
        refuse_host_paths(2, None, eval_path=str(store / "d"))           # no store root: nothing is on the volume
