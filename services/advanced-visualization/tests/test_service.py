"""The real service in-process on a loopback port: the three operations end to end, and every guard."""

from __future__ import annotations

import json
import math
from pathlib import Path

import grpc
import numpy as np
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2 as pb
from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2_grpc
from apt_model.modeling import lm
from apt_model.modeling.io import load_model, load_tokenizer
from apt_model.runtime.jobs_grpc import job_result
from apt_model.runtime.testing import serve_plugin, wait_job
from apt_model.store import Store
from apt_model.corpus import load_eval_documents

PLUGIN_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture
def service(home):
    with serve_plugin(PLUGIN_DIR, home, data_roots=(str(home.parent),)) as (channel, app):
        yield visualization_pb2_grpc.VisualizationStub(channel), plugin_pb2_grpc.JobsStub(channel), channel


def run(channel, job) -> dict:
    done = wait_job(channel, job.id, timeout=240)
    assert done.state == job_pb2.JOB_STATE_SUCCEEDED, done.error
    return job_result(done)


def code_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


def html_of(home, name: str, file: str) -> str:
    return (Store(home).dataset(name).path / file).read_text(encoding="utf-8")


def test_dashboard_draws_curves_lineage_and_settings(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartDashboard(pb.DashboardRequest(
        models=["run-a", "run-b", "run-a-half"], output_name="dash")))
    assert result["models"] == 2 and result["points_in"] == 48  # two logs of 24 steps
    assert result["lineage_edges"] == 2  # run-a -> run-b (its tokenizer), run-a -> run-a-half (prune)
    assert any("run-a-half has no training_log.jsonl" in w for w in result["warnings"])
    page = html_of(home, "dash", "dashboard.html")
    assert page.count('Plotly.newPlot("') == 5  # 3 curve axes, lineage, settings
    assert page.count("get_plotlyjs") == 0 and page.count("plotly.js v") == 1  # embedded once
    assert '"prune<br>val_loss +0.25"' in page  # the prune edge with its metric deltas
    assert '"label": "learning_rate"' in page  # a parallel-coordinates axis
    entry = Store(home).dataset("dash")
    assert entry.meta["lineage"]["operation"] == "visualize-dashboard"


def test_comparison_report_numbers_are_lm_text_perplexity(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartComparisonReport(pb.ComparisonReportRequest(
        models=["run-a", "run-b"], eval_path=str(home.parent / "eval.txt"), output_name="cmp",
        bootstrap_samples=200, max_new_tokens=4)))
    docs = load_eval_documents(path=str(home.parent / "eval.txt"))
    for row in result["models"]:
        folder = Store(home).model(row["name"]).path
        expected = lm.text_perplexity(load_model(folder), load_tokenizer(folder), docs)
        assert math.isclose(row["perplexity"], expected.perplexity, rel_tol=1e-9)
        assert set(row["perplexity_by_language"]) == {"en", "zh"}
        assert row["bits_per_byte"] > 0
    assert result["same_tokenizer"] is True
    diffs = {d["metric"]: d for d in result["differences"]}
    assert set(diffs) == {"perplexity", "bits_per_byte"}
    p = diffs["perplexity"]
    assert p["low"] <= p["value"] <= p["high"]
    assert math.isclose(p["value"], result["models"][1]["perplexity"] - result["models"][0]["perplexity"],
                        rel_tol=1e-6)
    page = html_of(home, "cmp", "report.html")
    assert 'class="tok"' in page and page.count('Plotly.newPlot("') == 2


def test_different_tokenizers_turn_the_per_token_view_off_and_use_bits_per_byte(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartComparisonReport(pb.ComparisonReportRequest(
        models=["run-a", "other-tok"], eval_path=str(home.parent / "eval.txt"), output_name="cmp2",
        bootstrap_samples=100, max_new_tokens=2)))
    assert result["same_tokenizer"] is False and "tokenizers differ" in result["per_token_note"]
    assert not any("were scored" in w for w in result["warnings"])  # nothing was cut
    assert [d["metric"] for d in result["differences"]] == ["bits_per_byte"]
    assert 'class="tok"' not in html_of(home, "cmp2", "report.html")


def test_attention_map_is_gqa_aware_and_compact(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartAttentionMap(pb.AttentionMapRequest(
        name="run-a", text="Attention maps show tokens. 注意力图显示词。 Attention maps show tokens.",
        output_name="att")))
    assert result["layers"] == [0, 1] and result["heads"] == [0, 1, 2, 3] and result["kv_heads"] == 2
    assert [s["kv_head"] for s in result["head_stats"][:4]] == [0, 0, 1, 1]
    assert result["max_quantization_error"] <= 1e-3
    for s in result["head_stats"]:
        assert 0 <= s["sink_mass"] <= 1 and 0 <= s["previous_token"] <= 1 and s["entropy"] >= 0
    page = html_of(home, "att", "attention.html")
    assert "plotly.js v" not in page  # canvas only: no 4.8 MB of plotly.js
    tokens = json.loads(page.split("const ATT=", 1)[1].split(";// Canvas views", 1)[0])["tokens"]
    assert "力" in "".join(tokens) and "\ufffd" not in "".join(tokens)  # characters drawn whole


def test_over_long_text_is_cut_with_a_note(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartAttentionMap(pb.AttentionMapRequest(
        name="run-a", text="word " * 200, max_tokens=16, layers=[1], heads=[3], output_name="att-cut")))
    assert result["tokens"] == 16 and result["truncated"] is True
    assert any("the map shows the first 16" in w for w in result["warnings"])
    assert [(s["layer"], s["head"]) for s in result["head_stats"]] == [(1, 3)]


@pytest.mark.parametrize("call, code, needle", [
    (lambda s, h: s.StartDashboard(pb.DashboardRequest(models=["run-c"], output_name="x")),
     grpc.StatusCode.NOT_FOUND, "Did you mean 'run-b', 'run-a'"),
    (lambda s, h: s.StartAttentionMap(pb.AttentionMapRequest(name="run-a", text="hi", layers=[2], output_name="x")),
     grpc.StatusCode.INVALID_ARGUMENT, "valid indices are 0..1"),
    (lambda s, h: s.StartAttentionMap(pb.AttentionMapRequest(name="run-a", text="hi", heads=[4, -1], output_name="x")),
     grpc.StatusCode.INVALID_ARGUMENT, "valid indices are 0..3"),
    (lambda s, h: s.StartDashboard(pb.DashboardRequest(models=["run-a"], output_name="x", output_path="/tmp/x.html")),
     grpc.StatusCode.INVALID_ARGUMENT, "outputs are store datasets"),
    (lambda s, h: s.StartComparisonReport(pb.ComparisonReportRequest(models=["run-a", "run-a"], output_name="x",
                                                                     eval_dataset="d")),
     grpc.StatusCode.INVALID_ARGUMENT, "two or more different models"),
    (lambda s, h: s.StartComparisonReport(pb.ComparisonReportRequest(models=["run-a", "run-b"], output_name="x")),
     grpc.StatusCode.INVALID_ARGUMENT, "exactly one of --eval-path or --eval-dataset"),
    (lambda s, h: s.StartComparisonReport(pb.ComparisonReportRequest(models=["run-a", "run-b"], output_name="x",
                                                                     eval_path="/etc/passwd")),
     grpc.StatusCode.PERMISSION_DENIED, "outside the folders"),
    (lambda s, h: s.StartComparisonReport(pb.ComparisonReportRequest(models=["run-a", "run-b"], output_name="x",
                                                                     eval_dataset="nothing")),
     grpc.StatusCode.NOT_FOUND, "nothing"),
])
def test_bad_input_fails_the_start_call_and_starts_no_job(service, home, call, code, needle):
    stub, jobs, _ = service
    got, details = code_of(lambda: call(stub, home))
    assert got == code and needle in details, details
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


def test_an_existing_output_is_refused_without_overwrite(service, home):
    stub, jobs, channel = service
    request = pb.DashboardRequest(models=["run-a"], output_name="dash1")
    run(channel, stub.StartDashboard(request))
    before = (Store(home).dataset("dash1").path / "dashboard.html").read_bytes()
    got, details = code_of(lambda: stub.StartDashboard(request))
    assert got == grpc.StatusCode.ALREADY_EXISTS and "--overwrite" in details
    assert (Store(home).dataset("dash1").path / "dashboard.html").read_bytes() == before
    request.overwrite, request.max_points = True, 100
    assert run(channel, stub.StartDashboard(request))["output"] == "dash1"


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_png_export_draws_every_figure_with_debian_chromium(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartDashboard(pb.DashboardRequest(models=["run-a", "run-b"], output_name="dpng",
                                                                  png=True)))
    assert result["png_files"] == sorted(f"png/{k}.png" for k in
                                         ("curves-step", "curves-tokens", "curves-wall", "lineage", "settings"))
    for rel in result["png_files"]:
        data = (Store(home).dataset("dpng").path / rel).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs Debian's chromium")
def test_png_export_of_the_attention_map(service, home):
    from PIL import Image

    stub, _, channel = service
    result = run(channel, stub.StartAttentionMap(pb.AttentionMapRequest(
        name="run-a", text="Attention maps show tokens. 注意力图显示词。", output_name="apng", png=True)))
    assert result["png_files"] == ["png/head.png", "png/heads.png"]
    folder = Store(home).dataset("apng").path
    # 2 layers x 4 heads: 80 px of titles + 2 rows of 1040/4 px; the large map 900 px; 1100 wide
    for rel, size in (("png/heads.png", (1100, 600)), ("png/head.png", (1100, 900))):
        image = Image.open(folder / rel).convert("RGB")
        assert image.size == size, rel
        pixels = np.asarray(image, dtype=np.int32)
        inked = (pixels.sum(axis=2) < 750).mean()  # not white: the maps' lower triangles, text
        assert inked > 0.15, f"{rel}: {inked:.3f} of the pixels inked"
        assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50, f"{rel}: a flat image"
    assert "attention.html" in {p.name for p in folder.iterdir()}


@pytest.mark.parametrize("start", [
    lambda s: s.StartDashboard(pb.DashboardRequest(models=["run-a"], output_name="x", png=True)),
    lambda s: s.StartAttentionMap(pb.AttentionMapRequest(name="run-a", text="hi", output_name="x", png=True)),
])
def test_png_export_without_chromium_is_refused_before_a_job(service, home, monkeypatch, start):
    from apt_viz import png

    monkeypatch.setattr(png, "CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setattr(png.require_chromium, "__defaults__", ("/nonexistent/chromium",))
    stub, jobs, _ = service
    got, details = code_of(lambda: start(stub))
    assert got == grpc.StatusCode.FAILED_PRECONDITION and "apt-get install chromium" in details
    assert list(jobs.ListJobs(job_pb2.ListJobsRequest()).jobs) == []


def test_an_over_long_evaluation_text_is_cut_with_a_note(service, home):
    stub, _, channel = service
    result = run(channel, stub.StartComparisonReport(pb.ComparisonReportRequest(
        models=["run-a", "run-b"], eval_path=str(home.parent / "eval.txt"), output_name="cmp-cut",
        max_eval_tokens=40, bootstrap_samples=100, max_new_tokens=2)))
    assert any("the first 40 were scored" in w for w in result["warnings"])
    assert all(m["tokens_scored"] <= 39 for m in result["models"])
