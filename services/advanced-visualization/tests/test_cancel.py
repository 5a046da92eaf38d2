"""Cancelling each operation mid-job through the job API (CancelJob) ends it CANCELLED and leaves
no output dataset, finished or half-written, in the store.

The job is held at one of its own progress reports (the stage named) until the cancel has been
sent, so the cancel lands at a known point of the real job: mid-computation, and after the page is
built but before the dataset is written."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2 as pb
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2_grpc
from apt_model.runtime.jobs import JobContext
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]

STARTS = {
    "dashboard": lambda s, h: s.StartDashboard(pb.DashboardRequest(models=["run-a", "run-b"], output_name="out")),
    "attention": lambda s, h: s.StartAttentionMap(pb.AttentionMapRequest(
        name="run-a", text="Attention maps show tokens. 注意力图显示词。", output_name="out")),
    "report": lambda s, h: s.StartComparisonReport(pb.ComparisonReportRequest(
        models=["run-a", "run-b"], eval_path=str(h.parent / "eval.txt"), output_name="out",
        bootstrap_samples=100, max_new_tokens=2)),
}


@pytest.fixture
def held(monkeypatch):
    """Hold the job at its first progress report of stage ``held.stage`` until ``held.release`` is set."""
    state = type("Held", (), {})()
    state.stage, state.reached, state.release = None, threading.Event(), threading.Event()
    report = JobContext.report

    def holding(self, *args, **kw):
        report(self, *args, **kw)
        if kw.get("stage") == state.stage and not state.reached.is_set():
            state.reached.set()
            assert state.release.wait(60), "the test never released the job"

    monkeypatch.setattr(JobContext, "report", holding)
    return state


@pytest.mark.parametrize("operation, stage", [
    ("dashboard", "read"), ("dashboard", "write"),
    ("attention", "forward"), ("attention", "write"),
    ("report", "model"), ("report", "write"),
])
def test_cancel_mid_job_leaves_no_output(home, held, operation, stage):
    held.stage = stage
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, _):
        jobs = plugin_pb2_grpc.JobsStub(channel)
        job = STARTS[operation](visualization_pb2_grpc.VisualizationStub(channel), home)
        assert held.reached.wait(120), f"the job never reached its {stage!r} stage"
        jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
        held.release.set()
        final = wait_job(channel, job.id, timeout=120)
    assert final.state == job_pb2.JOB_STATE_CANCELLED, (final.state, final.error.message)
    store = Store(home)
    assert not store.exists("datasets", "out")
    folder = home / "datasets"
    assert not folder.exists() or [p.name for p in folder.iterdir() if "out" in p.name] == []  # no .tmp-out-*
