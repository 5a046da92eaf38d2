"""`apt-model data-processors process` as a user runs it: a CLI process, a real in-process gateway and
the real plugin process it installs. A local CSV given to --paths is pushed as a store dataset first
(local_files_dataset), so the service never sees the caller's file system."""

from __future__ import annotations

import functools
import json

import pytest

from apt_model.corpus import load_corpus
from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("cli") / "home")
    try:
        gw.app.registry.install("data-processors")
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def cli(gw, tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("cli-cache"))
    return functools.partial(run_cli, gw, timeout=240, env_extra={"XDG_CACHE_HOME": cache})


def test_process_a_local_csv_through_the_gateway(cli, gw, sample_files):
    out = cli("data-processors", "process", "--paths", str(sample_files["csv"]), "--name", "from-cli",
              "--dedup", "--eval-fraction", "0.2", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    result = job["result"]
    assert result["exact_duplicates"] > 0 and result["near_duplicates"] > 0 and result["cross_split_pairs"] == 0
    store = Store(gw.settings.home)
    assert store.dataset("from-cli").parent.startswith("corpus-")  # the pushed CSV, not a host path
    assert len(load_corpus([], store, "from-cli").documents) == result["documents_kept"]


def test_clean_text_through_the_gateway(cli):
    out = cli("data-processors", "clean-text", "--texts", "The cafÃ©  is open.", "--strategy", "basic", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout)["texts"] == ["The café is open."]


def test_a_local_workbook_is_pushed_and_read(cli, gw, sample_files):
    out = cli("data-processors", "process", "--paths", str(sample_files["xlsx"]), "--name", "from-xlsx", "--json")
    assert out.returncode == 0, out.stderr[-3000:]
    job = json.loads(out.stdout)
    assert job["state"] == "JOB_STATE_SUCCEEDED", job
    assert job["result"]["documents_read"] == 200
