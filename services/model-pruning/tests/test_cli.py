"""`apt-model prune` as a user runs it: a CLI process, a real in-process gateway, and the real
model-pruning plugin process the gateway installs."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from apt_model.modeling.io import read_config
from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def home(seeded_home, tmp_path_factory):
    """One store copy for the module: starting a gateway and the plugin process is the slow part."""
    dst = tmp_path_factory.mktemp("cli") / "home"
    shutil.copytree(seeded_home, dst)
    return dst


@pytest.fixture(scope="module")
def gw(home):
    gw = start_gateway(home)
    try:
        gw.app.registry.install("model-pruning")
        yield gw
    finally:
        stop_gateway(gw)


run_cli = functools.partial(run_cli, timeout=240)


def test_structured_prune_with_hidden_ratio_through_the_gateway(gw, home):
    out = run_cli(gw, "prune", "tiny", "--strategy", "structured", "--ratio", "0.5", "--hidden-ratio", "0.25",
                  "--output", "cli-w", "--seq-len", "32", "--batch-size", "4",
                  "--eval-file", str(home / "corpus.txt"), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    result = job["result"]
    assert result["structured"]["hidden"]["hidden_size"] == [64, 48]
    assert result["structured"]["heads"]["kv_heads"] == [2, 1]
    assert result["reload"]["finite"]
    cfg = read_config(Store(home).model("cli-w").path)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]) == (48, 88, 16)


def test_keep_width_and_human_output(gw, home):
    out = run_cli(gw, "prune", "tiny", "--strategy", "structured", "--ratio", "0.5", "--keep-width",
                  "--output", "cli-k", "--seq-len", "32", "--batch-size", "4", "--eval-file", str(home / "corpus.txt"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert "cli-k: structured (speedup" in out.stdout
    assert read_config(Store(home).model("cli-k").path)["hidden_size"] == 64


@pytest.mark.parametrize("args, code, text", [
    (["--strategy", "structured", "--ratio", "1.5"], 3, "between 0 and 1"),
    (["--strategy", "magnitude", "--ratio", "0.5", "--hidden-ratio", "0.3"], 3, "structured strategy only"),
    (["--strategy", "structured", "--ratio", "0.5", "--hidden-only", "--keep-width"], 2, "not allowed with"),
])
def test_bad_flags_fail_with_a_reason_and_no_job(gw, home, args, code, text):
    jobs_before = _jobs(gw)
    out = run_cli(gw, "prune", "tiny", *args, "--eval-file", str(home / "corpus.txt"))
    assert out.returncode == code, (out.returncode, out.stderr)
    assert text in out.stderr and "Traceback" not in out.stderr
    assert _jobs(gw) == jobs_before


def _jobs(gw) -> list[str]:
    out = run_cli(gw, "job", "list", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(j["id"] for j in json.loads(out.stdout))


@pytest.mark.parametrize("strategy", ["magnitude", "structured"])
def test_a_strategy_that_needs_no_text_prunes_without_text(gw, home, strategy):
    """#24 item 4: magnitude (and structured with magnitude importance) need no text; the report
    says perplexity was not measured and how to measure it, instead of refusing the job."""
    out = run_cli(gw, "prune", "tiny", "--strategy", strategy, "--ratio", "0.5", "--output", f"notext-{strategy}",
                  "--seq-len", "32")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Perplexity was not measured: no text was given" in out.stdout and "--eval-file" in out.stdout
    entry = Store(home).model(f"notext-{strategy}")
    report = json.loads((entry.path / "prune_report.json").read_text())
    assert report["before"]["perplexity"] is None and "perplexity_ratio" not in report
    assert "perplexity" not in entry.meta["metrics"] and entry.meta["metrics"]["parameters"] > 0


@pytest.mark.parametrize("strategy, needs", [("taylor", "calibration text"), ("lottery", "training text")])
def test_strategies_that_learn_from_text_still_say_they_need_it(gw, strategy, needs):
    out = run_cli(gw, "prune", "tiny", "--strategy", strategy, "--ratio", "0.5", "--output", "never")
    assert out.returncode == 3, out.stderr  # INVALID_ARGUMENT
    assert needs in out.stderr.lower()


def test_prune_through_the_generic_cli(gw, home, tmp_path):
    """The same job from the command the proto makes (`apt-model model-pruning prune`): flags are
    the request's fields in kebab case, the job is followed to its end."""
    out = run_cli(gw, "model-pruning", "prune", "--name", "tiny", "--strategy", "magnitude", "--ratio", "0.5",
                  "--output-name", "generic-m50", "--seq-len", "32", "--batch-size", "4", "--json",
                  env_extra={"XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED" and job["result"]["output"] == "generic-m50"
    assert Store(home).model("generic-m50").path.is_dir()
    out = run_cli(gw, "model-pruning", "prune", "--name", "tiny", "--strategy", "magnitude", "--ratio", "1.5",
                  env_extra={"XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 3 and "ratio must be strictly between 0 and 1" in out.stderr
    assert "[fields: ratio]" in out.stderr
