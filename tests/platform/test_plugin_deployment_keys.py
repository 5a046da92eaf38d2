"""plugin.yaml's deployment keys (base, egress, resources, wants_gpu): what every deployer renders
from. Bad values are refused where the manifest is read, naming the file and the fix; missing
ones take the defaults of the plugin's base."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apt_model import errors
from apt_model.runtime.manifest import DEFAULT_RESOURCES, PluginManifest, memory_bytes

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = [*sorted(p.parent for p in (ROOT / "services").glob("*/plugin.yaml")), ROOT / "tests/plugins/echo"]


def _plugin(tmp_path: Path, requirements: str = "grpcio\n", **keys) -> Path:
    folder = tmp_path / "demo-plugin"
    folder.mkdir(exist_ok=True)
    (folder / "requirements.txt").write_text(requirements)
    (folder / "plugin.yaml").write_text(yaml.safe_dump({"name": "demo-plugin", "version": "0.1.0", **keys}))
    return folder


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: p.name)
def test_every_plugin_states_its_deployment(folder):
    data = yaml.safe_load((folder / "plugin.yaml").read_text())
    assert {"base", "egress", "resources", "wants_gpu"} <= set(data), f"{folder}/plugin.yaml"
    m = PluginManifest.load(folder)
    assert m.base == ("torch" if any(n == "torch" for n, _ in m.requirements) else "slim"), m.name


def test_defaults_follow_the_base(tmp_path):
    slim = PluginManifest.load(_plugin(tmp_path))
    assert (slim.base, slim.egress, slim.wants_gpu, slim.resources) == ("slim", "none", False, DEFAULT_RESOURCES["slim"])
    torch = PluginManifest.load(_plugin(tmp_path, "torch==2.9.1\n"))
    assert torch.base == "torch" and torch.resources == DEFAULT_RESOURCES["torch"]
    partial = PluginManifest.load(_plugin(tmp_path, resources={"memory_limit": "2Gi"}))
    assert (partial.resources.cpu, partial.resources.memory_limit) == ("100m", "2Gi")
    assert partial.resources.memory_limit_bytes == 2 << 30


@pytest.mark.parametrize("keys, message", [
    ({"base": "alpine"}, "base 'alpine' is not one of torch, slim"),
    ({"egress": "open"}, "egress 'open' is not one of none, internet"),
    ({"wants_gpu": "yes"}, "wants_gpu must be true or false"),
    ({"resources": "16Gi"}, "resources must be a mapping"),
    ({"resources": {"gpu": 1}}, "unknown resources keys ['gpu']"),
    ({"resources": {"cpu": "half"}}, "resources.cpu 'half' is not a CPU quantity"),
    ({"resources": {"cpu": "0m"}}, "resources.cpu '0m' is not a CPU quantity"),
    ({"resources": {"memory_limit": "16GB"}}, "'16GB' is not a memory quantity such as 512Mi or 16Gi"),
    ({"resources": {"memory": "2Gi", "memory_limit": "1Gi"}}, "resources.memory 2Gi must be above 0 and at most"),
    ({"deploy": {}}, "unknown keys ['deploy']"),
])
def test_bad_values_are_refused_with_the_file_and_the_fix(tmp_path, keys, message):
    folder = _plugin(tmp_path, **keys)
    with pytest.raises(errors.FailedPrecondition) as info:
        PluginManifest.load(folder)
    assert message in info.value.message and str(folder / "plugin.yaml") in info.value.message


def test_slim_base_with_torch_in_the_requirements_is_refused(tmp_path):
    folder = _plugin(tmp_path, "-r more.txt\n", base="slim")
    (folder / "more.txt").write_text("torch==2.9.1\n")
    with pytest.raises(errors.FailedPrecondition, match="set base: torch"):
        PluginManifest.load(folder)


@pytest.mark.parametrize("quantity, expected", [("512Mi", 512 << 20), ("16Gi", 16 << 30), ("1G", 10**9),
                                                ("1000", 1000), ("2Ti", 2 << 40)])
def test_memory_quantities(quantity, expected):
    assert memory_bytes(quantity) == expected


def test_system_packages_are_debian_package_names(tmp_path):
    assert PluginManifest.load(_plugin(tmp_path, system_packages=["chromium", "libsndfile1"])).system_packages == (
        "chromium", "libsndfile1")
    assert PluginManifest.load(_plugin(tmp_path)).system_packages == ()
    for bad in ("chromium; rm -rf /", ["chromium; rm -rf /"], ["Chromium"], [""], [7]):
        with pytest.raises(errors.FailedPrecondition, match="system_packages must be a list of Debian package names"):
            PluginManifest.load(_plugin(tmp_path, system_packages=bad))
