"""A second-language client: clients/rust (tonic, built from proto/ alone by `make client`)
drives a live gateway over TLS with a CA-signed leaf certificate (issue 16, item 6): lists the
plugins, trains a model, prunes it through the model-pruning plugin, follows both jobs with
WatchJob through the gateway's job routing, reads the results (the pruning job's typed one,
Job.response, unpacked into the generated PruneResult), and decodes the standard error details
of a failed call."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from apt_model.store import Store
from gateway.testing import ROOT, start_gateway, stop_gateway, tls_files

BIN = ROOT / "clients" / "rust" / "target" / "release" / "apt-client"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    assert BIN.is_file(), f"{BIN} is missing: `make client` builds it (make test does)"
    folder = tmp_path_factory.mktemp("rust-client")
    ca, cert, key = tls_files(folder)
    gw = start_gateway(folder / "home", tls_cert=cert, tls_key=key)
    try:
        gw.app.registry.install("model-pruning")
        with Store(gw.settings.home).create("datasets", "words", operation="test") as tmp:
            (tmp / "words.txt").write_text("the quick brown fox jumps over the lazy dog\n" * 400)
        yield gw, ca
    finally:
        stop_gateway(gw)


def _client(world, *command: str, token: str | None = None) -> tuple[int, dict]:
    gw, ca = world
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APT_")},
           "APT_TOKEN": gw.settings.token if token is None else token}
    out = subprocess.run([str(BIN), "--gateway", f"https://{gw.address}", "--ca", ca, *command],
                         capture_output=True, text=True, env=env, timeout=600)
    assert out.stdout.strip(), out.stderr
    return out.returncode, json.loads(out.stdout.strip().splitlines()[-1])


def test_lists_trains_prunes_and_reads_results(world):
    code, plugins = _client(world, "plugins")
    assert code == 0
    assert {"name": "model-pruning", "status": "PLUGIN_STATUS_INSTALLED"} in plugins["plugins"]

    code, trained = _client(world, "train", "rusty", "words")
    assert code == 0 and trained["state"] == "JOB_STATE_SUCCEEDED", trained
    assert trained["job"].startswith("gateway:") and trained["result"], trained

    code, pruned = _client(world, "prune", "rusty", "rusty-pruned")
    assert code == 0 and pruned["state"] == "JOB_STATE_SUCCEEDED", pruned
    assert pruned["job"].startswith("model-pruning:") and pruned["result"], pruned  # routed by the id's prefix
    # Job.response unpacked into the generated PruneResult: the same values, integers as integers
    typed, view = pruned["typed"], pruned["result"]
    assert typed["output"] == "rusty-pruned" and typed["reload_finite"] is True, typed
    assert type(typed["parameters_before"]) is int
    assert typed["parameters_before"] == view["before"]["parameters"]["total"]
    assert typed["parameters_after"] == typed["parameters_before"] > typed["nonzero_after"] > 0  # magnitude: zeros
    assert typed["nonzero_after"] == view["after"]["parameters"]["nonzero"]
    assert typed["ratio_achieved"] == pytest.approx(view["ratio_achieved"]) and typed["layers"] == len(
        view["sparsity_by_layer"]) > 0

    code, info = _client(world, "info", "rusty-pruned")
    assert code == 0 and info["name"] == "rusty-pruned" and info["parameters"] > 0


def test_errors_come_with_their_standard_details(world):
    code, err = _client(world, "info", "no-such-model")
    assert code == 1
    assert (err["error"], err["reason"], err["domain"]) == ("NotFound", "NOT_FOUND", "apt-platform"), err
    assert err["request_id"], err

    code, err = _client(world, "plugins", token="wrong")
    assert code == 1 and (err["error"], err["reason"]) == ("Unauthenticated", "UNAUTHENTICATED"), err


def test_a_certificate_from_another_ca_is_refused(tmp_path):
    """The client verifies the gateway: a leaf signed by a CA it was not given fails the connection."""
    _, cert, key = tls_files(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca, _, _ = tls_files(tmp_path / "other")
    gw = start_gateway(tmp_path / "home", tls_cert=cert, tls_key=key)
    try:
        out = subprocess.run([str(BIN), "--gateway", f"https://{gw.address}", "--ca", other_ca, "plugins"],
                             capture_output=True, text=True, env={"APT_TOKEN": gw.settings.token}, timeout=60)
        assert out.returncode == 5 and "cannot reach" in out.stderr, out.stderr
    finally:
        stop_gateway(gw)
