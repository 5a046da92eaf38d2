"""The real service in-process on a loopback port: jobs end to end, status codes, path attacks."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2 as pb
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2_grpc
from apt_model.runtime.results import typed_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(home, data):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(data),)) as (channel, app):
        yield debugging_pb2_grpc.DebuggingStub(channel), plugin_pb2_grpc.JobsStub(channel), channel


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def finished(channel, job) -> job_pb2.Job:
    done = wait_job(channel, job.id, timeout=180)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    return done


def probe(data, **kw) -> pb.AnalysisRequest:
    base = dict(name="tiny", data_path=str(data / "corpus.txt"), batches=2, seq_len=32, batch_size=2, device="cpu")
    base.update(kw)
    return pb.AnalysisRequest(**base)


def test_gradient_flow_of_a_healthy_model_writes_png_and_json(service, home, data):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartGradientFlow(probe(data, output_name="gf"))))
    blocks = {b.name: b for b in result.blocks}
    assert {"block 0", "block 1", "embed_tokens", "lm_head"} <= set(blocks)
    assert blocks["block 0"].verdict == blocks["block 1"].verdict == "healthy"
    assert all(b.grad_norm > 0 and 0 < b.update_weight_ratio < 1 for b in result.blocks)
    assert {g.name for g in blocks["block 0"].groups} >= {"self_attn", "mlp"}
    assert result.verdict == "healthy" and result.first_loss > 0 and result.last_loss > 0
    folder = Store(home).dataset("gf").path
    assert (folder / "gradient_flow.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((folder / "gradient_flow.json").read_text())["verdict"] == "healthy"
    assert Store(home).dataset("gf").meta["lineage"]["parent"] == "tiny"


@pytest.mark.parametrize("model,verdict", [("zero-block", "dead"), ("hot-block", "exploding")])
def test_gradient_flow_locates_the_planted_block(service, data, model, verdict):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartGradientFlow(probe(data, name=model))))
    blocks = {b.name: b.verdict for b in result.blocks}
    assert blocks["block 1"] == verdict, blocks
    assert result.verdict == verdict


def test_activation_guard_names_the_module_that_produces_the_nan(service, home, data):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartActivationAnalysis(probe(data, name="nan-block"))))
    assert result.first_nonfinite_module == "model.layers.1.mlp.up_proj"
    assert result.nonfinite_modules > 1  # it flowed on; only the producer is named
    assert Store(home).exists("datasets", "nan-block-activation-analysis")


def test_activation_statistics_of_a_healthy_model(service, data):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartActivationAnalysis(probe(data))))
    assert result.first_nonfinite_module == "" and result.nonfinite_modules == 0
    mods = {m.name: m for m in result.modules}
    assert mods["model.layers.0.mlp.down_proj"].std > 0 and mods["model.layers.0.mlp.down_proj"].abs_max > 0


def test_anomaly_detection_on_a_store_models_training_log(service, home, lr_fault_steps):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartAnomalyDetection(pb.AnalysisRequest(name="logged"))))
    lr = [f for f in result.findings if f.kind == "lr_off_schedule"]
    assert [(f.step, f.end_step) for f in lr] == [(lr_fault_steps[0], lr_fault_steps[-1])]
    assert lr[0].action and lr[0].severity == "warning"
    assert result.steps == 40 and "loss" in result.metrics
    folder = Store(home).dataset("logged-anomalies").path
    assert json.loads((folder / "anomalies.json").read_text())["counts"]["lr_off_schedule"] == 1
    assert (folder / "anomalies.png").is_file()


def test_anomaly_detection_on_a_csv_with_nan_strings_and_a_resumed_run(service, data):
    stub, _, channel = service
    lines = ["step,loss,lr"] + [f"{s},{2.0 - s * 0.01:.3f},0.001" for s in range(1, 31)]
    lines[16] = "16,NaN,0.001"
    lines += [f"{s},{1.9:.3f},0.001" for s in range(20, 26)]  # resumed from step 19: logged again
    (data / "run.csv").write_text("\n".join(lines) + "\n")
    result = typed_result(finished(channel, stub.StartAnomalyDetection(
        pb.AnalysisRequest(metrics_path=str(data / "run.csv")))))
    assert [(f.kind, f.step) for f in result.findings if f.kind == "nonfinite"] == [("nonfinite", 16)]
    assert result.repeated_steps == 6 and result.steps == 30
    assert any("last occurrence" in w for w in result.warnings)


def test_export_to_tensorboard_round_trips_every_scalar(service, home):
    stub, _, _ = service
    out = stub.ExportToTracker(pb.ExportToTrackerRequest(name="logged", tracker="tensorboard"))
    assert out.location == "logged-tensorboard" and out.steps == 40
    assert {"loss", "lr", "grad_norm"} <= set(out.tags)
    folder = Store(home).dataset("logged-tensorboard").path / "tensorboard"
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    acc.Reload()
    assert len(acc.Scalars("loss")) == 40
    assert acc.Tags()["histograms"] == ["block_grad_norms"] and out.histograms == 5  # steps 1, 10, 20, 30, 40


def test_export_of_a_core_train_model_carries_its_settings_as_hparams(service, home):
    stub, _, _ = service
    out = stub.ExportToTracker(pb.ExportToTrackerRequest(name="core"))
    assert out.hparams > 5 and out.steps == 40
    assert (Store(home).dataset("core-tensorboard").path / "tensorboard" / "hparams").is_dir()


def test_anomaly_detection_on_the_exported_tensorboard_folder(service, lr_fault_steps):
    stub, _, channel = service
    stub.ExportToTracker(pb.ExportToTrackerRequest(name="logged", output_name="tb"))
    result = typed_result(finished(channel, stub.StartAnomalyDetection(pb.AnalysisRequest(metrics_dataset="tb"))))
    assert [f.step for f in result.findings if f.kind == "lr_off_schedule"] == [lr_fault_steps[0]]


def test_export_to_wandb_offline_holds_every_value(service, home, data):
    stub, _, channel = service
    lines = ["step,loss,lr"] + [f"{s},{1.0 / s!r},0.001" for s in range(1, 51)]
    lines[7] = "7,NaN,0.001"
    (data / "run.csv").write_text("\n".join(lines) + "\n")
    out = stub.ExportToTracker(pb.ExportToTrackerRequest(metrics_path=str(data / "run.csv"), tracker="wandb"))
    assert out.location == "run-wandb" and out.steps == 50 and out.scalars == 100
    assert "wandb sync run-wandb/wandb/offline-run-" in out.next_step
    from apt_debug.series import from_rows
    from apt_debug.wandb_offline import check_offline_run, records

    folder = Store(home).dataset("run-wandb").path
    (log,) = folder.glob("wandb/offline-run-*/run-*.wandb")
    series = from_rows([{"step": s, "loss": 1.0 / s if s != 7 else float("nan"), "lr": 0.001} for s in range(1, 51)], "t")
    assert check_offline_run(series, log) == []
    series.values["loss"][3] = 0.3  # the check sees a value that differs
    assert check_offline_run(series, log) == ["loss at step 3: wrote 0.3, the log holds 0.3333333333333333"]
    assert sum(r.WhichOneof("record_type") == "history" for r in records(log)) == 50
    # and the offline run is itself a source for anomaly detection
    job = stub.StartAnomalyDetection(pb.AnalysisRequest(metrics_dataset="run-wandb"))
    result = typed_result(finished(channel, job))
    assert result.steps == 50 and [f.step for f in result.findings if f.kind == "nonfinite"] == [7]


def test_a_missing_tracker_package_is_failed_precondition(service, monkeypatch):
    stub, _, _ = service
    import builtins

    real_import = builtins.__import__

    def no_wandb(name, *args, **kwargs):
        if name == "wandb" or name.startswith("wandb."):
            raise ImportError("No module named 'wandb'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_wandb)
    code, details = code_of(lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(name="logged", tracker="wandb")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "requirements.txt" in details


# --- bad input -------------------------------------------------------------------------------------

def test_unknown_model_is_not_found(service, data):
    stub, jobs, _ = service
    for call in (lambda: stub.StartGradientFlow(probe(data, name="nobody")),
                 lambda: stub.StartActivationAnalysis(probe(data, name="nobody")),
                 lambda: stub.StartProfile(probe(data, name="nobody")),
                 lambda: stub.StartAnomalyDetection(pb.AnalysisRequest(name="nobody")),
                 lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(name="nobody"))):
        assert code_of(call)[0] == grpc.StatusCode.NOT_FOUND
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


@pytest.mark.parametrize("field", ["data_path", "metrics_path"])
def test_a_path_outside_the_data_roots_is_permission_denied(service, field):
    stub, jobs, _ = service
    kw = {"name": "tiny", "data_path": "/etc/hostname"} if field == "data_path" else {"metrics_path": "/etc/passwd"}
    start = stub.StartGradientFlow if field == "data_path" else stub.StartAnomalyDetection
    code, details = code_of(lambda: start(pb.AnalysisRequest(**kw)))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "APT_DATA_ROOTS" in details
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


def test_export_metrics_path_outside_the_roots_is_permission_denied(service):
    stub, _, _ = service
    code, _ = code_of(lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(metrics_path="/etc/hostname")))
    assert code == grpc.StatusCode.PERMISSION_DENIED


def test_an_empty_series_is_invalid_argument(service, data):
    stub, _, channel = service
    (data / "empty.jsonl").write_text("")
    job = wait_job(channel, stub.StartAnomalyDetection(pb.AnalysisRequest(metrics_path=str(data / "empty.jsonl"))).id)
    assert job.state == job_pb2.JOB_STATE_FAILED and job.error.code == "INVALID_ARGUMENT"
    assert "no numeric metric series" in job.error.message


def test_a_model_without_a_training_log_is_invalid_argument(service):
    stub, _, channel = service
    job = wait_job(channel, stub.StartAnomalyDetection(pb.AnalysisRequest(name="tiny")).id)
    assert job.state == job_pb2.JOB_STATE_FAILED and "training_log.jsonl" in job.error.message


def test_an_existing_output_is_refused_before_any_work(service, home, data):
    stub, jobs, channel = service
    finished(channel, stub.StartAnomalyDetection(pb.AnalysisRequest(name="logged", output_name="rep")))
    before = (Store(home).dataset("rep").path / "anomalies.json").read_text()
    code, details = code_of(lambda: stub.StartAnomalyDetection(pb.AnalysisRequest(name="logged", output_name="rep")))
    assert code == grpc.StatusCode.ALREADY_EXISTS and "--overwrite" in details
    assert len(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == 1
    assert (Store(home).dataset("rep").path / "anomalies.json").read_text() == before


@pytest.mark.parametrize("kw,code,needle", [
    (dict(name="logged", log_dir="/tmp/x"), grpc.StatusCode.INVALID_ARGUMENT, "caller-chosen path"),
    (dict(job_id="j-1"), grpc.StatusCode.INVALID_ARGUMENT, "not a job id"),
    (dict(name="logged", metrics_dataset="x"), grpc.StatusCode.INVALID_ARGUMENT, "exactly one"),
])
def test_export_refusals(service, kw, code, needle):
    stub, _, _ = service
    got, details = code_of(lambda: stub.ExportToTracker(pb.ExportToTrackerRequest(**kw)))
    assert got == code and needle in details


def test_probe_without_text_is_invalid_argument(service):
    stub, _, _ = service
    code, details = code_of(lambda: stub.StartGradientFlow(pb.AnalysisRequest(name="tiny")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "--data-path" in details


def test_profile_lists_top_operators_and_writes_a_chrome_trace(service, home, data):
    stub, _, channel = service
    result = typed_result(finished(channel, stub.StartProfile(probe(data, batches=2))))
    names = [op.name for op in result.top_operators]
    assert result.steps == 2 and result.device == "cpu" and len(names) > 3
    assert any("mm" in n or "linear" in n for n in names), names
    assert all(op.calls > 0 and op.self_cpu_ms >= 0 for op in result.top_operators)
    trace = json.loads((Store(home).dataset("tiny-profile").path / "trace.json").read_text())
    assert trace["traceEvents"]


def test_replay_ranks_the_garbage_document_of_a_step_first(service, home, garbage_doc):
    from apt_debug import replay
    from apt_model.modeling.io import load_tokenizer

    store = Store(home)
    params = replay.training_settings(store, "core")
    tokenizer = load_tokenizer(store.model("core").path)
    steps_with_garbage = []
    for step in range(1, 41):  # which steps of the run drew a window over the garbage document
        batches, _, starts = replay.rebuild(store, params, [], tokenizer, step)
        covered = {d for _, offsets in batches for o in offsets for d in replay.documents_in(starts, o, o + 33)}
        if garbage_doc in covered:
            steps_with_garbage.append(step)
    assert steps_with_garbage, "the fixture's run never drew the garbage document"
    stub, _, channel = service
    step = steps_with_garbage[0]
    result = typed_result(finished(channel, stub.StartReplay(pb.ReplayRequest(name="core", step=step, device="cpu"))))
    assert result.documents[0].index == garbage_doc, [(d.index, d.loss) for d in result.documents]
    assert result.step == step and len(result.windows) == 4 and result.micro_batches == 1
    assert Store(home).exists("datasets", f"core-replay-{step}")


def test_replay_refuses_a_corpus_that_changed_since_training(service, home):
    stub, jobs, _ = service
    corpus = Store(home).dataset("corp").path / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace("Note 3.", "Note three."))
    code, details = code_of(lambda: stub.StartReplay(pb.ReplayRequest(name="core", step=5)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "Replay refused" in details
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


def test_replay_of_a_model_not_made_by_core_train_or_past_its_log(service):
    stub, _, _ = service
    code, details = code_of(lambda: stub.StartReplay(pb.ReplayRequest(name="tiny", step=1)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "core 'train'" in details
    code, details = code_of(lambda: stub.StartReplay(pb.ReplayRequest(name="core", step=41)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "outside the 40 steps" in details
    assert code_of(lambda: stub.StartReplay(pb.ReplayRequest(name="nobody", step=1)))[0] == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("kw,code", [
    (dict(output_name="../escape"), grpc.StatusCode.INVALID_ARGUMENT),
    (dict(device="cuda"), grpc.StatusCode.FAILED_PRECONDITION),
])
def test_bad_output_name_or_missing_gpu_refused_at_start(service, data, kw, code):
    import torch

    if kw.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    stub, jobs, _ = service
    assert code_of(lambda: stub.StartGradientFlow(probe(data, **kw)))[0] == code
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []
