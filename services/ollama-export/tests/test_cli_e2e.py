"""End to end as a user runs it: CLI process -> real gateway -> ollama-export as a child process."""

from __future__ import annotations

import json
import shutil

import pytest

from gateway.server import build_settings
from gateway.testing import run_cli, start_gateway, stop_gateway


def _add_model(home, llama_model) -> None:
    """The trained tiny model as the store model "mini"."""
    shutil.copytree(llama_model, home / "models" / "mini")
    meta = json.loads((home / "models" / "mini" / "apt.json").read_text())
    meta["name"] = "mini"
    (home / "models" / "mini" / "apt.json").write_text(json.dumps(meta))


@pytest.fixture
def gateway_with_model(tmp_path, llama_model, ollama_server):
    # the operator allows the local Ollama server as a caller-picked endpoint
    gw = start_gateway(tmp_path / "home", allowed_endpoints=(ollama_server.url,))
    try:
        _add_model(tmp_path / "home", llama_model)
        gw.app.registry.install("ollama-export")
        yield gw
    finally:
        stop_gateway(gw)


def test_the_gateways_ollama_url_reaches_the_plugin(tmp_path, llama_model, ollama_server):
    """APT_OLLAMA_URL in the gateway's environment (the operator's own server, so not on
    APT_ALLOWED_ENDPOINTS) reaches the ollama-export process the local deployer starts: an export
    naming no URL creates the model there."""
    home = tmp_path / "home"
    settings = build_settings({"APT_HOME": str(home), "APT_OLLAMA_URL": ollama_server.url})
    gw = start_gateway(home, plugin_env=settings.plugin_env)
    try:
        _add_model(home, llama_model)
        gw.app.registry.install("ollama-export")
        out = run_cli(gw, "ollama-export", "export", "--name", "mini", "--outtype", "f16", "--skip-verify",
                      "--json", env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")})
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["result"]["ollama"]["statuses"][-1] == "success"
        assert [c["model"] for c in ollama_server.creates] == ["mini"]
    finally:
        stop_gateway(gw)


def test_cli_export_and_modelfile(gateway_with_model, ollama_server, tmp_path):
    """The commands made from the proto: `apt-model ollama-export export|create-modelfile`,
    map fields as KEY=VALUE, the job followed to its typed result."""
    gw = gateway_with_model
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = run_cli(gw, "ollama-export", "export", "--name", "mini", "--outtype", "f16", "--parameters", "temperature=0.6",
                  "--ollama-url", ollama_server.url, "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)["result"]
    assert result["verification"]["tokenization_mismatches"] == 0
    assert result["ollama"]["statuses"][-1] == "success"
    assert ollama_server.creates[-1]["parameters"]["temperature"] == 0.6

    out = run_cli(gw, "ollama-export", "create-modelfile", "--name", "mini", "--system", "Hi", env_extra=env)
    assert out.returncode == 0, out.stderr
    text = json.loads(out.stdout)["text"]
    assert text.startswith("FROM ./model.gguf") and 'SYSTEM """Hi"""' in text

    out = run_cli(gw, "ollama-export", "export", "--name", "mini", "--parameters", "temperature", env_extra=env)
    assert out.returncode == 2 and "KEY=VALUE" in out.stderr
    out = run_cli(gw, "ollama-export", "export", "--name", "nobody", env_extra=env)
    assert out.returncode != 0 and "nobody" in out.stderr


def test_generic_cli_export_with_a_map_flag(gateway_with_model, ollama_server, tmp_path):
    """Several map entries, a folder name of the caller's and a choice the proto refuses."""
    gw = gateway_with_model
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = run_cli(gw, "ollama-export", "export", "--name", "mini", "--outtype", "f16", "--skip-verify",
                  "--parameters", "temperature=0.4", "--parameters", "top_k=20", "--output-dir", "mini-generic",
                  "--json", env_extra=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    modelfile = (gw.settings.home / "exports" / "mini-generic" / "Modelfile").read_text()
    assert "PARAMETER temperature 0.4" in modelfile and "PARAMETER top_k 20" in modelfile
    out = run_cli(gw, "ollama-export", "create-modelfile", "--name", "mini", "--system", "Hi", "--json",
                  env_extra=env)
    assert out.returncode == 0, out.stderr
    assert 'SYSTEM """Hi"""' in json.loads(out.stdout)["text"]
    out = run_cli(gw, "ollama-export", "export", "--name", "mini", "--outtype", "q4", env_extra=env)
    assert out.returncode == 2 and "invalid choice: 'q4'" in out.stderr
