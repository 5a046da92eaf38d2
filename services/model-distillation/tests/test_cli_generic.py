"""`apt-model model-distillation distill` as a user runs it: the command made from the proto (repeated
and map fields included), a CLI process, a real gateway and the real plugin process."""

from __future__ import annotations

import json

import pytest

from apt_model.store import Store
from apt_model.testing import SAMPLE_TEXT
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture
def gw(home, tmp_path):
    text = tmp_path / "data" / "corpus.txt"
    text.parent.mkdir()
    text.write_text("\n\n".join(SAMPLE_TEXT))
    gw = start_gateway(home, data_roots=(str(text.parent),))
    try:
        gw.app.registry.install("model-distillation")
        gw.corpus = text
        yield gw
    finally:
        stop_gateway(gw)


def test_distill_with_repeated_and_map_flags(gw, home, tmp_path):
    out = run_cli(gw, "model-distillation", "distill", "--teacher", "tiny-t", "--output-name", "stu-generic",
                  "--student-layers", "1", "--strategies", "response", "--strategies", "feature",
                  "--loss-weights", "feature=0.5", "--corpus-paths", str(gw.corpus), "--seq-len", "32",
                  "--batch-size", "4", "--max-steps", "6", "--eval-every", "3", "--device", "cpu", "--json",
                  env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    params = Store(home).model("stu-generic").meta["lineage"]["parameters"]
    assert params["strategies"] == ["response", "feature"] and params["loss_weights"] == {"feature": 0.5}
    out = run_cli(gw, "model-distillation", "distill", "--teacher", "tiny-t", "--output-name", "x",
                  "--strategies", "response", "--loss-weights", "feature", env_extra={"XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
    out = run_cli(gw, "model-distillation", "distill", "--help", env_extra={"XDG_CACHE_HOME": str(tmp_path)})
    assert out.returncode == 0 and "--sharding {ddp,fsdp}" in out.stdout and "--workers" in out.stdout, out.stdout
