"""The real service in-process on a loopback port: status codes, jobs, cancel, resume, custom loss."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2 as pb
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]


def corpus(home) -> str:
    """corpus.txt copied beside the store, into the test's data root (the store itself is no root)."""
    return str(shutil.copy(home / "corpus.txt", home.parent / "corpus.txt"))


@pytest.fixture
def service(home):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, app):
        yield distillation_pb2_grpc.DistillationStub(channel), plugin_pb2_grpc.JobsStub(channel), channel


def request(home, **kw) -> pb.DistillRequest:
    base = dict(teacher="tiny-t", output_name="stu", student_layers=1, strategies=["response"],
                corpus_paths=[corpus(home)], seq_len=32, batch_size=4, max_steps=12,
                learning_rate=3e-3, eval_every=6, device="cpu")
    base.update(kw)
    return pb.DistillRequest(**base)


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


@pytest.mark.parametrize("kw,needle", [
    (dict(temperature=0.0), "temperature"),
    (dict(temperature=-2.0), "temperature"),
    (dict(alpha=1.01), "alpha"),
    (dict(alpha=-0.5), "alpha"),
    (dict(strategies=["feature"], layer_map={0: 9}), "Unknown layer mapping 0:9"),
    (dict(strategies=["feature"], layer_map={4: 0}), "Unknown layer mapping 4:0"),
])
def test_bad_input_is_invalid_argument_on_the_start_call(service, home, kw, needle):
    stub, jobs, _ = service
    code, details = code_of(lambda: stub.StartDistill(request(home, **kw)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and needle in details
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


def test_vocabulary_mismatch_is_failed_precondition_saying_what_differs(service, home):
    stub, _, _ = service
    code, details = code_of(lambda: stub.StartDistill(request(home, student="other-tok", student_layers=0)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "384 tokens" in details and "320" in details and "feature and/or relation" in details


def test_unknown_teacher_is_not_found(service, home):
    stub, _, _ = service
    code, _ = code_of(lambda: stub.StartDistill(request(home, teacher="nobody")))
    assert code == grpc.StatusCode.NOT_FOUND


def test_a_run_streams_losses_and_lands_in_the_store(service, home):
    stub, jobs, _ = service
    job = stub.StartDistill(request(home, strategies=["response", "feature"]))
    assert (list(job.reads), list(job.writes)) == (["models/tiny-t"], ["models/stu"])  # the teacher is kept
    seen = set()
    for snap in jobs.WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=120):
        seen |= set(snap.metrics)
        if snap.state in (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED):
            break
    assert snap.state == job_pb2.JOB_STATE_SUCCEEDED, snap.error.message
    assert {"kd_loss", "ce_loss", "feature_loss", "eval_ppl", "teacher_eval_ppl"} <= seen
    assert job_result(snap)["model"] == "stu"
    typed = typed_result(snap)  # Job.response: the declared DistillResult, integers as integers
    assert isinstance(typed, pb.DistillResult) and typed.model == "stu"
    assert (typed.steps, typed.tokens_seen) == (12, 12 * 4 * 32) and typed.student_params > 0
    assert typed.kd_loss > 0 and typed.feature_loss > 0 and not typed.HasField("relation_loss")
    assert typed.eval_ppl == job_result(snap)["eval_ppl"]  # the Struct view is the same message
    assert Store(home).model("stu").meta["lineage"]["parameters"]["strategies"] == ["response", "feature"]
    code, _ = code_of(lambda: stub.StartDistill(request(home)))
    assert code == grpc.StatusCode.ALREADY_EXISTS


def wait_for_step(jobs, job_id: str, step: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = jobs.GetJob(job_pb2.GetJobRequest(id=job_id))
        if snap.metrics.get("step", 0) >= step:
            return
        assert snap.state in (job_pb2.JOB_STATE_QUEUED, job_pb2.JOB_STATE_RUNNING), snap.error.message
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not reach step {step}")


def test_cancel_leaves_no_half_student_and_resume_matches_an_uninterrupted_run(service, home):
    stub, jobs, channel = service
    store = Store(home)
    long = dict(max_steps=40, eval_every=40, checkpoint_every=1000)
    job = stub.StartDistill(request(home, output_name="cut", **long))
    wait_for_step(jobs, job.id, 3)
    jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id))
    final = wait_job(channel, job.id)
    assert final.state == job_pb2.JOB_STATE_CANCELLED
    assert not store.exists("models", "cut")
    assert not [p for p in (home / "models").iterdir() if p.name.startswith(".tmp-")]
    # the checkpoint saved at cancel time is there, and a plain restart is refused
    code, details = code_of(lambda: stub.StartDistill(request(home, output_name="cut", **long)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "--resume" in details
    resumed = wait_job(channel, stub.StartDistill(request(home, output_name="cut", resume=True, **long)).id)
    assert resumed.state == job_pb2.JOB_STATE_SUCCEEDED, resumed.error.message
    straight = wait_job(channel, stub.StartDistill(request(home, output_name="whole", **long)).id)
    assert straight.state == job_pb2.JOB_STATE_SUCCEEDED
    # same data order, same optimiser state: the resumed student is the uninterrupted one
    assert job_result(resumed)["eval_ppl"] == pytest.approx(job_result(straight)["eval_ppl"], rel=1e-4)
    # training_log.jsonl: every step of both runs, the interrupted part kept across the resume
    from apt_model.modeling import trainlog

    cut, whole = trainlog.read(store.model("cut").path), trainlog.read(store.model("whole").path)
    assert [r["step"] for r in cut] == [r["step"] for r in whole] == list(range(1, 41))
    assert [r["loss"] for r in cut] == pytest.approx([r["loss"] for r in whole], rel=1e-4)
    assert all(r["grad_norm"] > 0 for r in cut) and [r["step"] for r in cut if "eval_ppl" in r] == [40]
    assert trainlog.summary(cut)["validation_points"] == 1  # eval_ppl is a validation point too
    assert not (home / "checkpoints" / "distill" / "cut").exists()


@pytest.fixture
def custom_loss_distribution(tmp_path, monkeypatch):
    """A real installed distribution (a .dist-info with entry_points.txt) on sys.path."""
    site = tmp_path / "site"
    pkg = site / "apt_test_losses"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent('''
        import torch

        def logit_l2(inputs):
            """Mean squared distance between student and teacher logits at the valid positions."""
            diff = (inputs.student_logits - inputs.teacher_logits).pow(2).mean(-1)
            m = inputs.mask.to(diff.dtype)
            return (diff * m).sum() / m.sum()
    '''))
    info = site / "apt_test_losses-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: apt-test-losses\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[apt.distillation.loss]\nlogit_l2 = apt_test_losses:logit_l2\n")
    monkeypatch.syspath_prepend(str(site))
    yield
    sys.modules.pop("apt_test_losses", None)


def test_custom_loss_registered_by_entry_point(service, home, custom_loss_distribution):
    stub, jobs, channel = service
    job = stub.StartDistill(request(home, strategies=["logit_l2"], loss_weights={"logit_l2": 0.5}))
    final = wait_job(channel, job.id)
    assert final.state == job_pb2.JOB_STATE_SUCCEEDED, final.error.message
    assert job_result(final)["custom_losses"]["logit_l2_loss"] > 0
    typed = typed_result(final)  # a registered loss's term is in the map, not a field of its own
    assert typed.custom_losses["logit_l2_loss"] > 0 and typed.HasField("ce_loss") and not typed.HasField("kd_loss")
    assert Store(home).model("stu").meta["lineage"]["parameters"]["loss_weights"] == {"logit_l2": 0.5}


def test_unregistered_custom_loss_is_invalid(service, home):
    stub, _, _ = service
    code, details = code_of(lambda: stub.StartDistill(request(home, strategies=["logit_l2"])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "apt.distillation.loss" in details


def test_describe_lists_the_operation(service):
    _, _, channel = service
    desc = plugin_pb2_grpc.PluginStub(channel).Describe(plugin_pb2.DescribeRequest())
    assert desc.name == "model-distillation" and desc.wants_gpu
    op = {o.name: o for o in desc.operations}["StartDistill"]
    assert op.long_running and {"teacher", "temperature", "alpha"} <= {a.name for a in op.arguments}
