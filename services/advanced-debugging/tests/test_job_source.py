"""A training job as a source, by its id: the running log core train's loop keeps in the store
(apt_model.runtime.joblog.job_log_path) is read while the job still runs and after; ids that
are not job ids are refused before any path is built, an unknown job is NOT_FOUND."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
import torch

from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2 as pb
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2_grpc
from apt_model.runtime import joblog
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.modeling.loop import Loop
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store
from apt_model.testing import JobRecorder

PLUGIN_DIR = Path(__file__).resolve().parents[1]
JOB = "gateway:0123456789abcdef"


@pytest.fixture
def service(home, data):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data),)) as (channel, app):
        yield debugging_pb2_grpc.DebuggingStub(channel), plugin_pb2_grpc.JobsStub(channel), channel


def scan(stub, channel, **kw):
    job = stub.StartAnomalyDetection(pb.AnalysisRequest(job_id=JOB, overwrite=True, **kw))
    done = wait_job(channel, job.id, timeout=120)
    assert done.error.message == "", done.error
    return typed_result(done)


def train(home: Path, steps: int, during=None) -> list[dict]:
    """Store model 'tiny' trained by the platform's Loop as job JOB, keeping the job's running
    log as core train does; ``during(step)`` runs inside the forward of 0-based ``step``."""
    path = Store(home).model("tiny").path
    model, tok = load_model(path), load_tokenizer(path)
    ids = torch.tensor(tok("one two three four five six seven eight nine ten " * 20)["input_ids"])
    blocks = ids[: len(ids) // 16 * 16].view(-1, 16)

    def forward(step, micro):
        if during is not None:
            during(step)
        return {"loss": model(input_ids=blocks[:2], labels=blocks[:2]).loss}

    loop = Loop(JobRecorder(), model, torch.optim.AdamW(model.parameters(), lr=1e-3), lambda s: 1e-3, steps, 32,
                job_log=joblog.JobLog(joblog.job_log_path(home, JOB)))
    loop.run(0, forward)
    return loop.log


def test_a_running_jobs_log_is_scanned_by_job_id_and_again_when_it_is_done(service, home):
    stub, _, channel = service
    seen = {}

    def during(step):
        if step == 6:  # steps 1-6 are done, step 7 is running
            seen["running"] = scan(stub, channel)

    log = train(home, 12, during)
    assert seen["running"].steps == 6 and seen["running"].source == f"job {JOB}"
    path = joblog.job_log_path(home, JOB)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write('{"step": 13, "lo')  # a row still being written is not read
    done = scan(stub, channel)
    assert done.steps == 12 and "loss" in done.metrics
    assert [r["loss"] for r in joblog.read_job_log(path)] == [r["loss"] for r in log]
    assert Store(home).exists("datasets", "job-0123456789abcdef-anomalies")


def test_export_by_job_id_round_trips_every_step(service, home):
    stub, _, _ = service
    train(home, 5)
    got = stub.ExportToTracker(pb.ExportToTrackerRequest(job_id=JOB, output_name="job-tb"))
    assert got.steps == 5 and "loss" in got.tags and got.location == "job-tb"


def test_an_unknown_job_is_not_found(service):
    stub, _, _ = service
    for call in (lambda: stub.StartAnomalyDetection(pb.AnalysisRequest(job_id=JOB)),
                 lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(job_id=JOB))):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.NOT_FOUND and "apt-model job list" in info.value.details()


@pytest.mark.parametrize("job_id", ["gateway:../../etc/passwd", "../../x:abc", "gateway:abc/../../x", "/etc/passwd",
                                    "gateway:", "gateway:ABC", "a:b:c", "gateway:abc\n"])
def test_what_is_not_a_job_id_is_refused_before_any_path_is_built(service, home, job_id):
    stub, _, _ = service
    for call in (lambda: stub.StartAnomalyDetection(pb.AnalysisRequest(job_id=job_id)),
                 lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(job_id=job_id))):
        with pytest.raises(grpc.RpcError) as info:
            call()
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "not a job id" in info.value.details()
