"""The core commands as a user runs them: a separate CLI process against a real gateway."""

from __future__ import annotations

import json

import pytest

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT, make_tiny_model
from gateway.testing import run_cli


@pytest.fixture(scope="module")
def gw(gateway):
    make_tiny_model(Store(gateway.settings.home), "cli-tiny", vocab_size=320)
    return gateway


def test_train_with_two_ranks_through_the_gateway(gw, tmp_path):
    """`--workers 2`: the gateway runs the job as two torchrun ranks and the CLI sees one job."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    common = ["--corpus", str(corpus), "--vocab-size", "300", "--seq-len", "32", "--batch-size", "4",
              "--max-steps", "6", "--eval-every", "3", "--threads", "1", "--json"]
    one = json.loads(run_cli(gw, "train", "ranks-1", *common).stdout)["result"]
    out = run_cli(gw, "train", "ranks-2", "--workers", "2", *common)
    assert out.returncode == 0, out.stderr
    two = json.loads(out.stdout)["result"]
    assert two["steps"] == 6 and two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
    out = run_cli(gw, "train", "ranks-3", "--workers", "3", *common)
    assert out.returncode == 3 and "must be a multiple of workers" in out.stderr  # INVALID_ARGUMENT


def test_info_list_size_debug(gw):
    out = run_cli(gw, "info", "cli-tiny", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["architecture"] == "LlamaForCausalLM"
    out = run_cli(gw, "info", "cli-tiny")
    assert out.returncode == 0 and "parameters" in out.stdout and "sha256" in out.stdout
    out = run_cli(gw, "list", "--json", "--filter", "cli-")
    assert [m["name"] for m in json.loads(out.stdout)] == ["cli-tiny"]
    out = run_cli(gw, "size", "cli-tiny", "--batch-size", "4", "--seq-len", "64")
    assert out.returncode == 0 and "training, AdamW, batch 4 x 64" in out.stdout
    out = run_cli(gw, "debug", "cli-tiny", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["healthy"] is True


def test_errors_have_exit_codes(gw):
    out = run_cli(gw, "info", "ghost")
    assert out.returncode == 4 and out.stderr.startswith("error: NOT_FOUND:") and "Traceback" not in out.stderr
    out = run_cli(gw, "info", "../x")
    assert out.returncode == 3


def test_push_pull_rm(gw, tmp_path):
    src = Store(gw.settings.home).model("cli-tiny").path
    folder = tmp_path / "hf"
    folder.mkdir()
    for f in src.iterdir():
        if f.name != "apt.json":
            (folder / f.name).write_bytes(f.read_bytes())
    out = run_cli(gw, "model", "push", str(folder), "--name", "cli-pushed")
    assert out.returncode == 0, out.stderr
    out = run_cli(gw, "model", "pull", "cli-pushed", "-o", str(tmp_path / "pulled"))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "pulled").iterdir()) == sorted(p.name for p in folder.iterdir())
    for p in folder.iterdir():
        assert (tmp_path / "pulled" / p.name).read_bytes() == p.read_bytes()
    out = run_cli(gw, "model", "pull", "cli-pushed", "-o", str(tmp_path / "pulled"))
    assert out.returncode == 4  # refuses to overwrite without --overwrite
    out = run_cli(gw, "model", "rm", "cli-pushed")
    assert out.returncode == 0 and not Store(gw.settings.home).exists("models", "cli-pushed")


def test_train_and_test_jobs(gw, tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(SAMPLE_TEXT), encoding="utf-8")
    out = run_cli(gw, "train", "cli-trained", "--corpus", str(corpus), "--vocab-size", "300", "--seq-len", "32",
                  "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--threads", "1")
    assert out.returncode == 0, out.stderr
    assert "trained cli-trained: 6 steps" in out.stdout
    out = run_cli(gw, "info", "cli-trained", "--log")
    assert out.returncode == 0, out.stderr
    assert "training log: 6 steps, loss " in out.stdout and "2 validation points" in out.stdout
    assert "gradient norm: largest" in out.stdout and "loss spikes: none" in out.stdout
    logged = json.loads(run_cli(gw, "info", "cli-trained", "--log", "--json").stdout)["training_log"]
    assert logged["steps"] == 6 and logged["max_grad_norm"] > 0
    out = run_cli(gw, "info", "cli-tiny", "--log")  # made by a test fixture, not trained here
    assert out.returncode == 0 and "training log: none" in out.stdout
    out = run_cli(gw, "test", "cli-trained", "--eval-file", str(corpus), "--prompt", "The", "--max-new-tokens", "5",
                  "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["perplexity"] > 1 and result["generations"][0]["prompt"] == "The"
    out = run_cli(gw, "compare", "cli-trained", "cli-tiny", "--eval-text", SAMPLE_TEXT[0], "--prompt", "Hi",
                  "--max-new-tokens", "4")
    assert out.returncode == 0, out.stderr
    assert "comparison" in out.stdout and "cli-trained" in out.stdout
