"""`apt-model reasoning-training ...` as a user runs it: a CLI process, a real gateway and the
real plugin process."""

from __future__ import annotations

import json

import pytest

from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture
def gw(home):
    gw = start_gateway(home)
    try:
        gw.app.registry.install("reasoning-training")
        yield gw
    finally:
        stop_gateway(gw)


def test_generate_then_search_through_the_cli(gw, home, tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = run_cli(gw, "reasoning-training", "generate-tasks", "--output-name", "cli-probs", "--train-size", "20",
                  "--eval-size", "5", "--languages", "en", "--json", env_extra=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["result"]["eval_rows"] == 5
    out = run_cli(gw, "reasoning-training", "tree-search", "--model", "lm", "--dataset", "cli-probs",
                  "--output-name", "cli-sc", "--token-budget", "24", "--max-new-tokens", "8", "--device", "cpu",
                  "--json", env_extra=env, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout)["result"]
    assert result["questions"] == 5 and Store(home).exists("datasets", "cli-sc")
