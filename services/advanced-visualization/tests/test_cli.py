"""`apt-model advanced-visualization ...` as a user runs it: a CLI process, a real in-process
gateway and the plugin process it installs; a local evaluation file is pushed as a dataset, and
the output is downloaded with 'data pull'."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def home(seeded_home, tmp_path_factory):
    dst = tmp_path_factory.mktemp("cli") / "home"
    shutil.copytree(seeded_home, dst)
    shutil.copy(seeded_home.parent / "viz-eval.txt", dst.parent / "eval.txt")
    return dst


@pytest.fixture(scope="module")
def cli(home, tmp_path_factory):
    gw = start_gateway(home)
    try:
        gw.app.registry.install("advanced-visualization")
        cache = str(tmp_path_factory.mktemp("cli-cache"))
        yield functools.partial(run_cli, gw, timeout=240, env_extra={"XDG_CACHE_HOME": cache})
    finally:
        stop_gateway(gw)


def test_report_from_a_local_file_then_pull_it(cli, home, tmp_path):
    out = cli("advanced-visualization", "comparison-report", "--models", "run-a", "--models", "run-b",
              "--eval-path", str(home.parent / "eval.txt"), "--output-name", "cli-cmp",
              "--bootstrap-samples", "100", "--max-new-tokens", "4", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    assert [m["name"] for m in job["result"]["models"]] == ["run-a", "run-b"]
    assert Store(home).dataset("cli-cmp").meta["lineage"]["operation"] == "visualize-compare"
    pulled = cli("data", "pull", "cli-cmp", "--output", str(tmp_path / "got"))
    assert pulled.returncode == 0, pulled.stderr[-2000:]
    assert any(p.name == "report.html" for p in (tmp_path / "got").rglob("*"))


def test_dashboard_and_a_bad_model_name(cli):
    out = cli("advanced-visualization", "dashboard", "--models", "run-a", "--output-name", "cli-dash", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["result"]["models"] == 1
    bad = cli("advanced-visualization", "dashboard", "--models", "run-z", "--output-name", "cli-dash2")
    assert bad.returncode != 0 and "Did you mean" in bad.stderr and "Traceback" not in bad.stderr
