"""`apt-model plugin new`: a plugin written outside the repository, end to end (issue 16).

The folder `plugin new` writes in a temporary directory passes its own tests, is installed from
APT_PLUGIN_PATH by the local deployer, is called through the generic CLI and through raw gRPC
via the gateway, and is uninstalled, with no file of the repository changed.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.runtime.testing import wait_job
from apt_model.store import Store
from gateway.testing import run_cli, start_gateway, stop_gateway

ROOT = Path(__file__).resolve().parents[2]


def _repo_state() -> str:
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def _new(parent: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apt_model", "plugin", "new", name, "--dir", str(parent), *extra],
                          capture_output=True, text=True, timeout=120, cwd=parent)


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    parent = tmp_path_factory.mktemp("outside")
    before = _repo_state()
    out = _new(parent, "word-stats")
    assert out.returncode == 0, out.stderr
    yield parent / "word-stats"
    assert _repo_state() == before, "plugin new or the plugin's use changed files of the repository"


def test_the_new_plugin_passes_its_own_tests(plugin):
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=plugin,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert "5 passed" in out.stdout


def test_installed_from_the_plugin_path_and_called_by_cli_and_raw_grpc(plugin, tmp_path):
    gw = start_gateway(tmp_path / "home", extra_plugins=(str(plugin.parent),))
    cli = functools.partial(run_cli, gw, env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=180)
    try:
        with Store(gw.settings.home).create("datasets", "corpus", operation="test") as folder:
            (folder / "a.txt").write_text("one two two three three three\n")
        out = cli("plugin", "install", "word-stats")
        assert out.returncode == 0, out.stderr
        out = cli("word-stats", "count-words", "--dataset", "corpus", "--top", "1", "--json")
        assert out.returncode == 0, out.stderr
        job = json.loads(out.stdout)
        assert job["state"] == "JOB_STATE_SUCCEEDED", job
        assert job["result"]["words"] == 6 and job["result"]["top_words"] == [{"word": "three", "count": 3}]
        out = cli("word-stats", "count-words", "--dataset", "corpus", "--top", "5000")
        assert out.returncode == 3 and "top must be between 1 and 1000" in out.stderr, out.stderr

        # raw gRPC through the gateway, with the plugin's own generated module
        sys.path.insert(0, str(plugin))
        try:
            from apt_word_stats.gen.apt.plugins.word_stats.v1 import word_stats_pb2, word_stats_pb2_grpc
        finally:
            sys.path.remove(str(plugin))
        stub = word_stats_pb2_grpc.WordStatsStub(gw.channel())
        started = stub.StartCountWords(word_stats_pb2.CountWordsRequest(dataset="corpus", top=2))
        done = wait_job(gw.channel(), started.id)
        assert done.state == job_pb2.JOB_STATE_SUCCEEDED and done.result["characters"] == 30
        with pytest.raises(grpc.RpcError) as exc:
            stub.StartCountWords(word_stats_pb2.CountWordsRequest(dataset="missing"))
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND

        out = cli("plugin", "uninstall", "word-stats")
        assert out.returncode == 0, out.stderr
        out = cli("word-stats", "count-words", "--dataset", "corpus")
        assert out.returncode == 7 and "apt-model plugin install word-stats" in out.stderr
    finally:
        stop_gateway(gw)


def test_packaged_as_a_wheel_and_found_through_its_entry_point(plugin, tmp_path, monkeypatch):
    """`plugin package` makes a wheel; pip-installed, its apt.plugins entry point puts the plugin in
    the catalogue with no APT_PLUGIN_PATH, located but never imported by the gateway."""
    out = subprocess.run([sys.executable, "-m", "apt_model", "plugin", "package", str(plugin), "--out",
                          str(tmp_path / "dist"), "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    wheel = Path(json.loads(out.stdout)["wheel"])
    assert wheel.name == "apt_plugin_word_stats-0.1.0-py3-none-any.whl"
    site = tmp_path / "site"
    out = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                          str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    monkeypatch.syspath_prepend(str(site))  # what `pip install` into the gateway's environment does
    gw = start_gateway(tmp_path / "home")
    cli = functools.partial(run_cli, gw, env_extra={"XDG_CACHE_HOME": str(tmp_path / "cache")}, timeout=180)
    try:
        entry = gw.app.catalog.get("word-stats")
        assert entry.dir == site / "apt_plugin_word_stats" / "word-stats"
        assert "apt_plugin_word_stats" not in sys.modules  # no code of the package ran in the gateway
        with Store(gw.settings.home).create("datasets", "corpus", operation="test") as folder:
            (folder / "a.txt").write_text("one two two\n")
        out = cli("plugin", "install", "word-stats")
        assert out.returncode == 0, out.stderr
        out = cli("word-stats", "count-words", "--dataset", "corpus", "--json")
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["result"]["words"] == 3
        assert cli("plugin", "uninstall", "word-stats").returncode == 0
    finally:
        stop_gateway(gw)


def test_an_entry_point_without_a_plugin_folder_is_reported_not_fatal(tmp_path, monkeypatch):
    from gateway.catalog import Catalog

    dist = tmp_path / "site" / "odd_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: odd-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[apt.plugins]\nghost = json\ndotted = os.path\n../up = json\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    catalog = Catalog()
    assert "model-pruning" in catalog.entries  # the rest of the catalogue is there
    assert "Invalid plugin name" in catalog.broken["../up"]  # never used as a path
    for name, text in (("ghost", "no folder ghost/ with a plugin.yaml"), ("dotted", "top-level package name")):
        with pytest.raises(Exception) as exc:
            catalog.get(name)
        assert type(exc.value).__name__ == "FailedPrecondition" and text in str(exc.value), exc.value


def test_torch_variant_asks_for_torch(tmp_path):
    out = _new(tmp_path, "torch-thing", "--torch")
    assert out.returncode == 0, out.stderr
    spec = (tmp_path / "torch-thing" / "plugin.yaml").read_text()
    assert "imports: [torch]" in spec and "wants_gpu: true" in spec
    assert "torch==" in (tmp_path / "torch-thing" / "requirements.txt").read_text()


@pytest.mark.parametrize("name, code, text", [
    ("Bad_Name", 3, "Invalid plugin name"),
    ("a--b", 3, "joined by single '-'"),
    ("word-frequency", 3, "template's messages already use"),
])
def test_bad_names_are_refused(tmp_path, name, code, text):
    out = _new(tmp_path, name)
    assert out.returncode == code and text in out.stderr, out.stderr
    assert not any(tmp_path.iterdir())


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "word-stats").mkdir()
    (tmp_path / "word-stats" / "keep.txt").write_text("mine")
    out = _new(tmp_path, "word-stats")
    assert out.returncode == 4 and "already exists" in out.stderr
    assert [p.name for p in (tmp_path / "word-stats").iterdir()] == ["keep.txt"]


def test_packaging_a_folder_that_is_no_plugin_says_so(tmp_path):
    out = subprocess.run([sys.executable, "-m", "apt_model", "plugin", "package", str(tmp_path), "--out",
                          str(tmp_path / "dist")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 4 and "plugin.yaml is missing: not a plugin folder" in out.stderr, out.stderr
    assert not (tmp_path / "dist").exists()
