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


@pytest.fixture(scope="module")
def trained(cli, home):
    """Dataset 'digits' and model 'mm' made through the CLI, once for the module."""
    manifest = home.parent / "data" / "digits" / "manifest.jsonl"
    created = run_json(cli, "create-dataset", "--name", "digits", "--manifest-path", str(manifest),
                       "--image-size", "16")
    trained = run_json(cli, "train", "--model", "lm", "--dataset", "digits", "--output-name", "mm",
                       "--max-steps", "3", "--batch-size", "4", "--encoder-width", "32", "--encoder-layers", "1",
                       "--device", "cpu")
    return created, trained


def test_create_train_evaluate_through_the_gateway(cli, home, trained):
    created, result = trained
    assert created["rows"] == 24 and result["steps"] == 3 and Store(home).exists("models", "mm")
    result = run_json(cli, "evaluate", "--model", "mm", "--dataset", "digits", "--max-rows", "3", "--device", "cpu",
                      "--max-new-tokens", "4")
    assert result["rows"] == 3 and "text_only_accuracy" in result and 0 <= result.get("exact_match", 0) <= 1


def test_the_core_info_size_and_test_read_the_model_as_its_own_model_type(cli, home, trained):
    out = cli("info", "mm", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout)
    assert info["model_type"] == "apt_multimodal"
    assert info["architecture"] == "AptMultimodalForConditionalGeneration"
    out = cli("size", "mm", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    size = json.loads(out.stdout)
    # the count built from the config (towers included) equals the stored tensors' count
    assert int(size["total_parameters"]) == int(info["parameters"]) > 0 and int(size["training_bytes"]) > 0
    out = cli("test", "mm", "--prompt", "a handwritten", "--max-new-tokens", "3",
              "--eval-text", "a handwritten seven. a handwritten one. 手写数字七.", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job


def test_export_llava_through_the_gateway(cli, home, trained):
    result = run_json(cli, "export-llava", "--model", "mm", "--output-name", "mm-llava")
    assert result["architecture"] == "LlavaForConditionalGeneration" and result["model"] == "mm-llava"
    out = cli("info", "mm-llava", "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["model_type"] == "llava"
