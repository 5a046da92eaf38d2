"""The Indexed Job of a large process job (k8s/components/data-processors-shards): one pod per
index running the shard command with the index Kubernetes gives it, as many indexes as the
command's --of, the store volume at APT_HOME; the merge Job runs the merge command on the same
request; the request is one the service accepts."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2 as pb

from apt_data.spec import ProcessSpec

REPO = Path(__file__).resolve().parents[3]
FOLDER = REPO / "k8s" / "components" / "data-processors-shards"


def documents(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((FOLDER / name).read_text(encoding="utf-8")) if d]


def container(job: dict) -> dict:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return only


def env(c: dict) -> dict:
    return {e["name"]: e for e in c["env"]}


def test_the_shard_job_is_indexed_one_pod_per_index():
    (job,) = documents("shard-job.yaml")
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed"
    assert 1 <= spec["parallelism"] <= spec["completions"]
    c = container(job)
    command = c["command"]
    assert command[1:4] == ["-m", "apt_data.shard", "--request"] and "--index" not in command
    assert int(command[command.index("--of") + 1]) == spec["completions"]
    index = env(c)["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert index == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert spec["template"]["spec"]["restartPolicy"] == "Never"


@pytest.mark.parametrize("name", ["shard-job.yaml", "merge-job.yaml"])
def test_both_jobs_share_the_store_volume_and_the_request(name):
    (job,) = documents(name)
    pod, c = job["spec"]["template"]["spec"], container(job)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert volumes["store"]["persistentVolumeClaim"]["claimName"] == "apt-store"
    assert mounts["store"] == env(c)["APT_HOME"]["value"] == "/data"
    assert volumes["request"]["configMap"]["name"] == "apt-data-shards-request"
    assert c["command"][c["command"].index("--request") + 1] == f"{mounts['request']}/request.json"
    assert {"name": "apt-settings"} in [e["configMapRef"] for e in c["envFrom"]]  # APT_DATA_ROOTS as the service's
    assert c["securityContext"]["readOnlyRootFilesystem"] and pod["securityContext"]["runAsNonRoot"]
    assert c["image"] == "apt/data-processors:latest"
    module = c["command"][2]
    assert callable(importlib.import_module(module).main)


def test_the_merge_runs_the_merge_command():
    (job,) = documents("merge-job.yaml")
    assert container(job)["command"][1:3] == ["-m", "apt_data.merge"] and "completionMode" not in job["spec"]


def test_the_request_is_one_the_service_accepts_and_the_kustomization_lists_the_files():
    (config,) = documents("request.yaml")
    request = json_format.Parse(config["data"]["request.json"], pb.ProcessRequest())
    spec = ProcessSpec.from_request(request)
    assert spec.dataset and spec.needs_families
    (kustomization,) = documents("kustomization.yaml")
    assert sorted(kustomization["resources"]) == ["request.yaml", "shard-job.yaml"]


def test_the_manifests_validate_against_the_kubernetes_schema():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    for name in ("request.yaml", "shard-job.yaml", "merge-job.yaml"):
        for obj in documents(name):
            kubernetes_validate.validate(json.loads(json.dumps(obj)), kubernetes_validate.latest_version(), strict=True)
