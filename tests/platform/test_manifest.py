"""Reading a plugin.yaml (apt_model.runtime.manifest), rule by rule: every refusal's whole sentence,
every default, the requirements files it follows, and the edges of names, CPU and memory quantities
and Debian package names. tests/platform/test_plugin_deployment_keys.py checks the real plugins'
files; this one builds each case in a temporary folder. What `make mutate`'s runtime-manifest
target runs with it (under 2 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from apt_model import errors
from apt_model.runtime import manifest as mf
from apt_model.runtime.manifest import PluginManifest, Resources


def plugin(tmp_path: Path, requirements: str | None = "grpcio\n", name: str = "demo-plugin", raw: str | None = None,
           **keys) -> Path:
    folder = tmp_path / name
    folder.mkdir(exist_ok=True)
    if requirements is not None:
        (folder / "requirements.txt").write_text(requirements)
    (folder / "plugin.yaml").write_text(raw if raw is not None else yaml.safe_dump({"name": name, **keys}))
    return folder


def refusal(folder: Path, kind=errors.FailedPrecondition) -> str:
    with pytest.raises(kind) as info:
        PluginManifest.load(folder)
    return info.value.message


def test_a_minimal_plugin_yaml_gets_every_default(tmp_path):
    folder = plugin(tmp_path)
    m = PluginManifest.load(str(folder))
    assert m == PluginManifest(
        name="demo-plugin", version="0.0.0", description="", available=False, module="", services=(),
        wants_gpu=False, imports=(), dir=folder.resolve(), requirements=(("grpcio", ""),), optional_requirements=(),
        base="slim", egress="none", resources=Resources("100m", "128Mi", "1Gi"), settings=(), system_packages=(),
        multi_node=False)
    assert m.setting_names == frozenset() and m.requirement_lines == ["grpcio"]


def test_every_key_is_read(tmp_path):
    folder = plugin(tmp_path, "torch==2.9.1\nnumpy >=1.0  # why\n", version=1.5, description="Does things.",
                    available=True, module="apt_demo.server", services=["apt.demo.v1.Demo"], wants_gpu=True,
                    imports=["apt_demo"], optional_requirements=["wandb>=0.1", "rich"], base="torch",
                    egress="internet", resources={"cpu": 2, "memory": "1Gi", "memory_limit": "1Gi"},
                    settings=[{"name": "APT_DEMO_URL", "type": "url"}], system_packages=["espeak-ng"],
                    multi_node=True)
    m = PluginManifest.load(folder)
    assert (m.version, m.description, m.available, m.module, m.services, m.wants_gpu, m.imports) == (
        "1.5", "Does things.", True, "apt_demo.server", ("apt.demo.v1.Demo",), True, ("apt_demo",))
    assert m.requirements == (("torch", "==2.9.1"), ("numpy", ">=1.0"))
    assert m.requirement_lines == ["torch==2.9.1", "numpy>=1.0"]
    assert m.optional_requirements == (("wandb", ">=0.1"), ("rich", ""))
    assert (m.base, m.egress, m.resources, m.system_packages, m.multi_node) == (
        "torch", "internet", Resources("2", "1Gi", "1Gi"), ("espeak-ng",), True)
    assert m.setting_names == frozenset({"APT_DEMO_URL"})


def test_a_folder_without_plugin_yaml_is_not_found(tmp_path):
    (tmp_path / "empty").mkdir()
    path = (tmp_path / "empty").resolve() / "plugin.yaml"
    assert refusal(tmp_path / "empty", errors.NotFound) == f"{path} is missing: not a plugin folder."


def test_a_plugin_yaml_that_is_not_yaml_says_so(tmp_path):
    folder = plugin(tmp_path, raw="name: [unclosed\n")
    message = refusal(folder)
    assert message.startswith(f"{folder.resolve() / 'plugin.yaml'} is not valid YAML: ")


def test_unknown_keys_are_listed_with_the_allowed_ones(tmp_path):
    folder = plugin(tmp_path, deploy={}, extra=1)
    assert refusal(folder) == (f"{folder.resolve() / 'plugin.yaml'}: unknown keys ['deploy', 'extra']; allowed: "
                               f"{sorted(mf._KEYS)}.")


def test_the_old_operations_key_is_refused_with_where_operations_come_from(tmp_path):
    folder = plugin(tmp_path, operations=[])
    assert refusal(folder) == (
        f"{folder.resolve() / 'plugin.yaml'}: 'operations' is no longer read: a plugin's operations, their help and "
        "their arguments come from its proto (comments and (apt.options.v1.rules)); remove the key.")


def test_the_name_must_be_the_folders(tmp_path):
    folder = plugin(tmp_path, raw="name: other-name\n")
    assert refusal(folder) == (f"{folder.resolve() / 'plugin.yaml'}: name 'other-name' differs from its folder "
                               "'demo-plugin'.")


@pytest.mark.parametrize("name", ["ab", "a-1", "a" + "b" * 40])
def test_plugin_names_at_their_edges_are_allowed(name):
    assert mf.validate_plugin_name(name) == name


@pytest.mark.parametrize("name", ["", "a", "1ab", "-ab", "Ab", "a_b", "a.b", "a" + "b" * 41, None, 5, "ab\n"])
def test_other_plugin_names_are_refused_saying_what_a_name_is(name):
    with pytest.raises(errors.InvalidArgument) as info:
        mf.validate_plugin_name(name)
    assert info.value.message == (f"Invalid plugin name {name!r}: use lower-case letters, digits and '-' "
                                  "(run 'apt-model plugin list' for the catalogue).")


def test_a_missing_name_is_refused(tmp_path):
    folder = plugin(tmp_path, raw="version: 1\n")
    assert "Invalid plugin name ''" in refusal(folder, errors.InvalidArgument)


# ---- deployment keys: whole sentences ---------------------------------------------------------

def deployment_refusal(tmp_path, requirements="grpcio\n", **keys) -> str:
    folder = plugin(tmp_path, requirements, **keys)
    message = refusal(folder)
    prefix = f"{folder.resolve() / 'plugin.yaml'}: "
    assert message.startswith(prefix)
    return message[len(prefix):]


@pytest.mark.parametrize("key", ["wants_gpu", "multi_node"])
def test_flags_must_be_booleans(tmp_path, key):
    assert deployment_refusal(tmp_path, **{key: "yes"}) == f"{key} must be true or false, not 'yes'."
    assert deployment_refusal(tmp_path, **{key: 1}) == f"{key} must be true or false, not 1."


def test_each_deployment_refusal_is_whole(tmp_path):
    assert deployment_refusal(tmp_path, base="alpine") == (
        "base 'alpine' is not one of torch, slim (torch: built on apt/torch-base; slim: apt/slim-base, no torch).")
    assert deployment_refusal(tmp_path, "Torch>=2\n", base="slim") == (
        "base is slim but requirements.txt installs torch: set base: torch, so the image builds on apt/torch-base "
        "and shares its torch layer instead of carrying its own.")
    assert deployment_refusal(tmp_path, egress="open") == (
        "egress 'open' is not one of none, internet (internet: the plugin may reach public addresses; none: only "
        "the gateway and DNS).")
    assert deployment_refusal(tmp_path, resources=["1Gi"]) == (
        "resources must be a mapping such as {cpu: 500m, memory: 2Gi, memory_limit: 16Gi}, not ['1Gi'].")
    assert deployment_refusal(tmp_path, resources={"gpu": 1, "disk": 2}) == (
        "unknown resources keys ['disk', 'gpu']; allowed: cpu, memory, memory_limit.")
    assert deployment_refusal(tmp_path, resources={"memory": "1GB"}) == (
        "resources: '1GB' is not a memory quantity such as 512Mi or 16Gi.")
    assert deployment_refusal(tmp_path, resources={"memory_limit": "x"}) == (
        "resources: 'x' is not a memory quantity such as 512Mi or 16Gi.")
    assert deployment_refusal(tmp_path, resources={"memory": "0"}) == (
        "resources.memory 0 must be above 0 and at most memory_limit 1Gi.")
    assert deployment_refusal(tmp_path, resources={"memory": "2Gi"}) == (
        "resources.memory 2Gi must be above 0 and at most memory_limit 1Gi.")
    assert deployment_refusal(tmp_path, system_packages="chromium") == (
        "system_packages must be a list of Debian package names such as [chromium], not 'chromium'.")


def test_a_torch_requirement_in_any_case_makes_the_base_torch(tmp_path):
    m = PluginManifest.load(plugin(tmp_path, "TORCH\n"))
    assert (m.base, m.resources) == ("torch", Resources("500m", "2Gi", "16Gi"))
    assert PluginManifest.load(plugin(tmp_path, "torchvision\n")).base == "slim"


def test_memory_equal_to_its_limit_is_allowed(tmp_path):
    m = PluginManifest.load(plugin(tmp_path, resources={"memory": "1Gi", "memory_limit": "1Gi"}))
    assert m.resources.memory_limit_bytes == 1 << 30
    assert PluginManifest.load(plugin(tmp_path, resources={"memory": "1"})).resources.memory == "1"   # one byte


def test_a_bad_setting_declaration_names_the_plugin_yaml(tmp_path):
    folder = plugin(tmp_path, settings=[{"name": "apt_lower"}])
    assert refusal(folder) == (f"{folder.resolve() / 'plugin.yaml'}: settings: 'apt_lower' is not a name such as "
                               "APT_OLLAMA_URL (APT_ then upper-case words joined by _).")


@pytest.mark.parametrize("cpu, ok", [("1", True), ("0.5", True), ("250m", True), ("1m", True), ("0.001", True),
                                     ("0", False), ("0m", False), ("0.0", False), ("1.", False), (".5", False),
                                     ("1k", False), ("-1", False), ("1 ", False), ("1\n", False)])
def test_cpu_quantities(tmp_path, cpu, ok):
    folder = plugin(tmp_path, resources={"cpu": cpu})
    if ok:
        assert PluginManifest.load(folder).resources.cpu == cpu
    else:
        assert refusal(folder).endswith(f"resources.cpu {cpu!r} is not a CPU quantity such as 500m or 2.")


@pytest.mark.parametrize("quantity, expected", [("1", 1), ("1k", 1000), ("3M", 3 * 10**6), ("2T", 2 * 10**12),
                                                ("1Ki", 1024), ("5Mi", 5 << 20), (7, 7)])
def test_memory_quantity_units(quantity, expected):
    assert mf.memory_bytes(quantity) == expected


@pytest.mark.parametrize("quantity", ["", "1.5Gi", "1K", "1gi", "Gi", "-1", "1 Gi", "1Gi\n", "1E"])
def test_other_memory_quantities_are_refused(quantity):
    with pytest.raises(ValueError) as info:
        mf.memory_bytes(quantity)
    assert str(info.value) == f"{quantity!r} is not a memory quantity such as 512Mi or 16Gi"


@pytest.mark.parametrize("packages, ok", [
    (["ab"], True), (["libstdc++6", "g++", "python3.11", "a-b"], True), (["a" * 63], True),
    (["a"], False), (["a" * 64], False), (["Chromium"], False), (["-x"], False), (["a b"], False),
    ([5], False), (["ok", "bad pkg"], False), ({"chromium": 1}, False), (["chromium\n"], False),
])
def test_system_packages_at_their_edges(tmp_path, packages, ok):
    folder = plugin(tmp_path, system_packages=packages)
    if ok:
        assert PluginManifest.load(folder).system_packages == tuple(packages)
    else:
        assert refusal(folder).endswith(f"system_packages must be a list of Debian package names such as "
                                        f"[chromium], not {packages!r}.")


# ---- requirements files -----------------------------------------------------------------------

def test_requirements_follow_includes_once_in_reading_order(tmp_path):
    folder = tmp_path / "reqs"
    (folder / "sub").mkdir(parents=True)
    (folder / "requirements.txt").write_text(
        "# the plugin's own\nalpha==1  # pinned\n-r sub/common.txt  # shared # pins\n  \n--index-url http://x\nomega\n"
        "-r missing.txt\n-r requirements.txt\n")
    (folder / "sub" / "common.txt").write_text("beta[extra] >= 2 ; python_version > '3'\n-r ../requirements.txt\n"
                                               "-r  deeper.txt \n")
    (folder / "sub" / "deeper.txt").write_text("gamma.x_y-z<3\n")
    assert mf.read_requirements(folder / "requirements.txt") == [
        ("alpha", "==1"), ("beta[extra]", ">= 2 ; python_version > '3'"), ("gamma.x_y-z", "<3"), ("omega", "")]
    assert mf.requirement_files(folder / "requirements.txt") == [
        (folder / "requirements.txt").resolve(), (folder / "sub" / "common.txt").resolve(),
        (folder / "sub" / "deeper.txt").resolve()]


def test_a_missing_requirements_file_reads_as_none(tmp_path):
    assert mf.read_requirements(tmp_path / "nope.txt") == []
    assert mf.requirement_files(tmp_path / "nope.txt") == []
    m = PluginManifest.load(plugin(tmp_path, requirements=None))
    assert (m.requirements, m.base) == ((), "slim")
