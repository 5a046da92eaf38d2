"""`apt-model cloud-storage <operation>` as a user runs it: the commands made from the proto, a CLI
process, a real gateway and the real cloud-storage plugin process, a file:// destination inside
the operator's APT_DATA_ROOTS."""

from __future__ import annotations

import functools
import json

import pytest

from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    root = tmp_path_factory.mktemp("generic")
    dest = root / "buckets"
    dest.mkdir()
    gw = start_gateway(root / "home", data_roots=(str(dest),))
    try:
        with Store(root / "home").create("datasets", "corpus", operation="test") as folder:
            (folder / "a.txt").write_text("some text to keep\n")
        gw.app.registry.install("cloud-storage")
        gw.dest = dest
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture
def cli(gw, tmp_path):
    return functools.partial(run_cli, gw, env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=180)


def test_backup_then_list_backups(gw, cli):
    url = f"file://{gw.dest}/backups"
    out = cli("cloud-storage", "backup", "--name", "corpus", "--kind", "dataset", "--destination", url,
              "--tag", "v1", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    out = cli("cloud-storage", "list-backups", "--destination", url, "--json")
    assert out.returncode == 0, out.stderr
    (backup,) = json.loads(out.stdout)["backups"]
    assert (backup["name"], backup["tag"], backup["complete"]) == ("corpus", "v1", True)


def test_upload_is_the_original_spelling(gw, cli):
    """`apt-model cloud-storage upload ...` of the original design, made from StartUpload."""
    out = cli("cloud-storage", "upload", "--paths", "datasets/corpus", "--destination", f"file://{gw.dest}/up",
              "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["state"] == "JOB_STATE_SUCCEEDED"
    assert any(p.name == "a.txt" for p in (gw.dest / "up").rglob("*"))


def test_rules_refuse_before_the_service_runs(cli):
    out = cli("cloud-storage", "backup", "--name", "corpus", "--destination", "file:///x", "--concurrency", "100")
    assert out.returncode == 3, out.stderr
    assert "concurrency must be between 1 and 64, got 100" in out.stderr and "[fields: concurrency]" in out.stderr
    out = cli("cloud-storage", "backup", "--name", "corpus", "--destination", "file:///x", "--kind", "models")
    assert out.returncode == 2 and "invalid choice: 'models'" in out.stderr


def test_an_unsupported_scheme_is_invalid_argument(gw, cli):
    out = cli("cloud-storage", "backup", "--name", "corpus", "--kind", "dataset", "--destination", "gs://x/y")
    assert out.returncode == 3, out.stderr  # INVALID_ARGUMENT
    assert "supported" in out.stderr and "Traceback" not in out.stderr
