"""`apt-model model-pruning prune` as a user runs it: a CLI process, a real in-process gateway,
and the real model-pruning plugin process the gateway installs. The command is the generic one
the proto makes (flags = the request's fields in kebab case); a text file on the caller's
machine given to a path field is pushed as a store dataset first (local_files_dataset)."""

from __future__ import annotations

import functools
import hashlib
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


@pytest.fixture(scope="module")
def cli(gw, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cli-cache"))
    return functools.partial(run_cli, gw, timeout=240, env_extra={"XDG_CACHE_HOME": cache})


PRUNE = ("model-pruning", "prune", "--name", "tiny")


def test_structured_prune_with_hidden_ratio_through_the_gateway(cli, home):
    out = cli(*PRUNE, "--strategy", "structured", "--ratio", "0.5", "--hidden-ratio", "0.25",
              "--output-name", "cli-w", "--seq-len", "32", "--batch-size", "4",
              "--eval-path", str(home / "corpus.txt"), "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED"
    result = job["result"]
    assert result["structured"]["hidden"]["hidden_size"] == [64, 48]
    assert result["structured"]["heads"]["kv_heads"] == [2, 1]
    assert result["reload"]["finite"]
    cfg = read_config(Store(home).model("cli-w").path)
    assert (cfg["hidden_size"], cfg["intermediate_size"], cfg["head_dim"]) == (48, 88, 16)
    # the local eval file went in as a store dataset named by its content, not as a path
    dataset = "corpus-" + hashlib.sha256((home / "corpus.txt").read_bytes()).hexdigest()[:12]
    assert Store(home).dataset(dataset).path.is_dir()
    assert job["result"]["eval_text"] == dataset, job["result"]


def test_heads_and_mlp_keep_the_width_and_print_the_result(cli, home):
    out = cli(*PRUNE, "--strategy", "structured", "--ratio", "0.5", "--prune-heads", "--prune-mlp",
              "--output-name", "cli-k", "--seq-len", "32", "--batch-size", "4", "--eval-path", str(home / "corpus.txt"))
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["output"] == "cli-k"
    assert read_config(Store(home).model("cli-k").path)["hidden_size"] == 64


@pytest.mark.parametrize("args, code, text", [
    (["--strategy", "structured", "--ratio", "1.5"], 3, "between 0 and 1"),
    (["--strategy", "magnitude", "--ratio", "0.5", "--hidden-ratio", "0.3"], 3, "structured strategy only"),
    (["--strategy", "structured", "--ratio", "0.5", "--scope", "Layer"], 2, "invalid choice"),
    (["--strategy", "structured", "--ratio", "0.5", "--eval-dataset", "other"], 2, "not both"),
])
def test_bad_flags_fail_with_a_reason_and_no_job(cli, home, args, code, text):
    jobs_before = _jobs(cli)
    out = cli(*PRUNE, *args, "--eval-path", str(home / "corpus.txt"))
    assert out.returncode == code, (out.returncode, out.stderr)
    assert text in out.stderr and "Traceback" not in out.stderr
    assert _jobs(cli) == jobs_before


def _jobs(cli) -> list[str]:
    out = cli("job", "list", "--json")
    assert out.returncode == 0, out.stderr
    return sorted(j["id"] for j in json.loads(out.stdout))


@pytest.mark.parametrize("strategy", ["magnitude", "structured"])
def test_a_strategy_that_needs_no_text_prunes_without_text(cli, home, strategy):
    """#24 item 4: magnitude (and structured with magnitude importance) need no text; the report
    says perplexity was not measured and how to measure it, instead of refusing the job."""
    out = cli(*PRUNE, "--strategy", strategy, "--ratio", "0.5", "--output-name", f"notext-{strategy}", "--seq-len", "32")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Perplexity was not measured: no text was given" in out.stdout and "--eval-path" in out.stdout
    entry = Store(home).model(f"notext-{strategy}")
    report = json.loads((entry.path / "prune_report.json").read_text())
    assert report["before"]["perplexity"] is None and "perplexity_ratio" not in report
    assert "perplexity" not in entry.meta["metrics"] and entry.meta["metrics"]["parameters"] > 0


@pytest.mark.parametrize("strategy, needs", [("taylor", "calibration text"), ("lottery", "training text")])
def test_strategies_that_learn_from_text_still_say_they_need_it(cli, strategy, needs):
    out = cli(*PRUNE, "--strategy", strategy, "--ratio", "0.5", "--output-name", "never")
    assert out.returncode == 3, out.stderr  # INVALID_ARGUMENT
    assert needs in out.stderr.lower()


def test_strategies_are_listed(cli):
    out = cli("model-pruning", "list-strategies")
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert {"magnitude", "taylor", "lottery", "structured"} <= set(listed["strategies"])


def test_a_rule_of_the_proto_refuses_before_any_job(cli):
    out = cli(*PRUNE, "--strategy", "magnitude", "--ratio", "1.5")
    assert out.returncode == 3 and "ratio must be strictly between 0 and 1" in out.stderr
    assert "[fields: ratio]" in out.stderr


def test_workers_is_a_flag_whose_layout_is_checked_before_any_job(cli):
    out = cli(*PRUNE, "--help")
    assert out.returncode == 0 and "--workers" in out.stdout and "--nodes" in out.stdout, out.stderr
    out = cli(*PRUNE, "--strategy", "magnitude", "--ratio", "0.5", "--batch-size", "6", "--workers", "4")
    assert out.returncode == 3 and "batch_size (6) must be a multiple of workers (4)" in out.stderr, out.stderr
    assert "[fields: batch_size]" in out.stderr
