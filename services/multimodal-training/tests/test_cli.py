"""`apt-model multimodal-training ...` as a user runs it: a CLI process, a real in-process
gateway and the real plugin process the gateway installs (the generic commands of the proto)."""

from __future__ import annotations

import functools
import json
import shutil

import pytest

from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def home(seeded_home, tmp_path_factory):
    """One store copy for the module (starting a gateway and the plugin is the slow part); the
    data folder sits beside it and is the gateway's data root."""
    root = tmp_path_factory.mktemp("cli")
    shutil.copytree(seeded_home.parent / "data", root / "data")
    dst = root / "home"
    shutil.copytree(seeded_home, dst)
    return dst


@pytest.fixture(scope="module")
def cli(home, tmp_path_factory):
    gw = start_gateway(home, data_roots=(str(home.parent / "data"),))
    try:
        gw.app.registry.install("multimodal-training")
        cache = str(tmp_path_factory.mktemp("cli-cache"))
        yield functools.partial(run_cli, gw, timeout=240, env_extra={"XDG_CACHE_HOME": cache})
    finally:
        stop_gateway(gw)


def run_json(cli, *args) -> dict:
    out = cli("multimodal-training", *args, "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    return job["result"]


def test_create_train_evaluate_through_the_gateway(cli, home):
    manifest = home.parent / "data" / "digits" / "manifest.jsonl"
    assert run_json(cli, "create-dataset", "--name", "digits", "--manifest-path", str(manifest),
                    "--image-size", "16")["rows"] == 24
    result = run_json(cli, "train", "--model", "lm", "--dataset", "digits", "--output-name", "mm",
                      "--max-steps", "3", "--batch-size", "4", "--encoder-width", "32", "--encoder-layers", "1",
                      "--device", "cpu")
    assert result["steps"] == 3 and Store(home).exists("models", "mm")
    result = run_json(cli, "evaluate", "--model", "mm", "--dataset", "digits", "--max-rows", "3", "--device", "cpu")
    assert result["rows"] == 3 and "text_only_accuracy" in result
