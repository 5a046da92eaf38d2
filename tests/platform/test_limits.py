"""Message size limits, settings validation, the job service and stale stubs."""

from __future__ import annotations

import filecmp
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.jobs import JobManager, JobState
from apt_model.runtime.settings import Settings
from apt_model.testing import ECHO_JOB

from gateway.testing import start_gateway, stop_gateway

ROOT = Path(__file__).resolve().parents[2]


def test_message_over_the_limit_is_resource_exhausted(tmp_path):
    gw = start_gateway(tmp_path / "home", max_message_bytes=1 << 20)
    try:
        gw.app.registry.install("echo")
        with pytest.raises(grpc.RpcError) as err:
            echo_pb2_grpc.EchoStub(gw.channel()).Echo(echo_pb2.EchoRequest(text="x" * (2 << 20)))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        stop_gateway(gw)


def test_unknown_setting_is_rejected():
    with pytest.raises(errors.InvalidArgument, match="APT_TOKNE"):
        Settings.from_env({"APT_TOKNE": "x"})


def test_bad_deployer_is_rejected():
    with pytest.raises(errors.InvalidArgument, match="local, docker or kubernetes"):
        Settings.from_env({"APT_DEPLOYER": "ssh"})


def test_job_manager_runs_reports_and_cancels():
    jobs = JobManager("unit", max_workers=1)

    def work(ctx):
        for i in range(200):
            ctx.check_cancelled()
            ctx.report(progress=i / 200, stage="loop", step=i)
            time.sleep(0.01)
        return {"text": "done"}

    snap = jobs.start(ECHO_JOB, work)
    assert snap.id.startswith("unit:")
    seen = []
    for s in jobs.watch(snap.id):
        seen.append(s)
        if s.metrics.get("step", 0) >= 5:
            jobs.cancel(snap.id)
    assert seen[-1].state is JobState.CANCELLED
    assert jobs.get(snap.id).error_code == "CANCELLED"
    ok = jobs.start(ECHO_JOB, lambda ctx: {"text": "answer", "length": 42})
    final = list(jobs.watch(ok.id))[-1]
    assert final.state is JobState.SUCCEEDED and final.progress == 1.0
    assert final.result == {"text": "answer", "steps": 0, "length": 42, "warnings": []}
    bad = jobs.start(ECHO_JOB, lambda ctx: (_ for _ in ()).throw(errors.InvalidArgument("ratio must be < 1")))
    final = list(jobs.watch(bad.id))[-1]
    assert (final.state, final.error_code, final.error_message) == (JobState.FAILED, "INVALID_ARGUMENT", "ratio must be < 1")
    jobs.shutdown()


def test_gateway_job_service_answers_for_unknown_and_malformed_ids(gateway):
    stub = plugin_pb2_grpc.JobsStub(gateway.channel())
    with pytest.raises(grpc.RpcError) as err:
        stub.GetJob(job_pb2.GetJobRequest(id="gateway:0000"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as err:
        stub.GetJob(job_pb2.GetJobRequest(id="nonsense"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert stub.ListJobs(job_pb2.ListJobsRequest()).jobs is not None


def test_generated_stubs_are_fresh(tmp_path):
    """Fails when proto/ changed without 'make proto'."""
    work = tmp_path / "repo"
    (work / "apt_model").mkdir(parents=True)
    (work / "tools").mkdir()
    subprocess.run(["cp", "-r", str(ROOT / "proto"), str(work / "proto")], check=True)
    subprocess.run(["cp", str(ROOT / "tools/gen_proto.sh"), str(work / "tools/")], check=True)
    import sys

    subprocess.run(["bash", str(work / "tools/gen_proto.sh")], check=True, env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"})
    cmp = filecmp.dircmp(ROOT / "apt_model/gen", work / "apt_model/gen", ignore=["__pycache__"])

    def diffs(c):
        out = [*(c.left_only), *(c.right_only), *(c.diff_files)]
        for sub in c.subdirs.values():
            out += diffs(sub)
        return out

    assert diffs(cmp) == [], "generated stubs are stale: run 'make proto' and commit apt_model/gen"
