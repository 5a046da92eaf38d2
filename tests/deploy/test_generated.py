"""The deployment files generated from the plugin folders (tools/gen_deploy.py, `make deploy-files`)
are what the tool renders now, the tool notices every change to a plugin.yaml or a new plugin
folder, and a plugin folder outside the repository renders for Kubernetes and Docker without any
file of the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from apt_model.runtime.manifest import PluginManifest
from gateway.catalog import Catalog
from gateway.deploy.docker import PIDS_LIMIT, PLUGIN_USER, DockerConfig, container_kwargs
from gateway.deploy.kubernetes import KubernetesConfig, render

from .conftest import ECHO_DIR, ROOT

TOOL = ROOT / "tools" / "gen_deploy.py"
GENERATED = ("k8s/base/plugins", "k8s/base/kustomization.yaml", "docker-compose.yml", "docker-compose.gpu.yml")


def _tool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True, timeout=120)


def test_committed_files_are_what_the_plugin_folders_render():
    done = _tool("--check")
    assert done.returncode == 0, f"run `make deploy-files` and commit the result:\n{done.stderr}"


@pytest.fixture
def scratch(tmp_path) -> Path:
    """The plugin folders' manifests and requirements and the generated files, in a scratch root."""
    root = tmp_path / "repo"
    for plugin_yaml in (ROOT / "services").glob("*/plugin.yaml"):
        folder = root / "services" / plugin_yaml.parent.name
        folder.mkdir(parents=True)
        for name in ("plugin.yaml", "requirements.txt"):
            shutil.copy(plugin_yaml.parent / name, folder / name)
    shutil.copytree(ROOT / "requirements", root / "requirements")
    shutil.copytree(ROOT / "k8s/base/plugins", root / "k8s/base/plugins")
    shutil.copy(ROOT / "k8s/base/kustomization.yaml", root / "k8s/base/kustomization.yaml")
    for name in ("docker-compose.yml", "docker-compose.gpu.yml"):
        shutil.copy(ROOT / name, root / name)
    assert _tool("--check", "--root", str(root)).returncode == 0
    return root


def _check(root: Path) -> tuple[int, set[str]]:
    done = _tool("--check", "--root", str(root))
    named = {line.split()[0] for line in done.stderr.splitlines() if line.startswith(("k8s/", "docker-"))}
    return done.returncode, named


def test_a_changed_plugin_yaml_is_noticed_and_rendered(scratch):
    path = scratch / "services/cloud-storage/plugin.yaml"
    path.write_text(path.read_text().replace("memory_limit: 1Gi", "memory_limit: 3Gi"))
    assert _check(scratch) == (1, {"k8s/base/plugins/cloud-storage.yaml", "docker-compose.yml"})
    assert _tool("--root", str(scratch)).returncode == 0
    assert _check(scratch) == (0, set())
    [deployment, _] = yaml.safe_load_all((scratch / "k8s/base/plugins/cloud-storage.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"] == {"memory": "3Gi"}
    compose = yaml.safe_load((scratch / "docker-compose.yml").read_text())
    assert compose["services"]["cloud-storage"]["mem_limit"] == "3g"


def test_a_new_setting_reaches_the_gateway_and_the_kubernetes_settings_map(scratch):
    """The gateway hands each plugin it installs its declared settings from its own environment
    (compose) or the apt-plugin-settings ConfigMap (Kubernetes): both lists follow plugin.yaml."""
    path = scratch / "services/cloud-storage/plugin.yaml"
    spec = yaml.safe_load(path.read_text())
    spec["settings"] = [{"name": "APT_STORAGE_PART_MB", "type": "int", "default": 8, "help": "Part size (MiB)."}]
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _check(scratch) == (1, {"k8s/base/kustomization.yaml", "k8s/base/plugins/cloud-storage.yaml",
                                   "docker-compose.yml"})  # the pod takes its key from the map
    assert _tool("--root", str(scratch)).returncode == 0
    compose = yaml.safe_load((scratch / "docker-compose.yml").read_text())
    assert compose["services"]["gateway"]["environment"]["APT_STORAGE_PART_MB"] == "${APT_STORAGE_PART_MB:-}"
    assert compose["services"]["cloud-storage"]["environment"]["APT_STORAGE_PART_MB"] == "${APT_STORAGE_PART_MB:-}"
    kustomization = yaml.safe_load((scratch / "k8s/base/kustomization.yaml").read_text())
    [settings_map] = [g for g in kustomization["configMapGenerator"] if g["name"] == "apt-plugin-settings"]
    assert "APT_STORAGE_PART_MB=" in settings_map["literals"]
    assert "APT_OLLAMA_URL=" in settings_map["literals"]  # the other plugins' keys stay

    spec.pop("settings")  # declared no more: gone from both lists
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _tool("--root", str(scratch)).returncode == 0
    assert "APT_STORAGE_PART_MB" not in (scratch / "docker-compose.yml").read_text()
    assert "APT_STORAGE_PART_MB" not in (scratch / "k8s/base/kustomization.yaml").read_text()


def test_a_file_without_its_markers_is_refused_with_the_markers_named(scratch):
    path = scratch / "k8s/base/kustomization.yaml"
    path.write_text(path.read_text().replace("# -- end of the generated plugin settings --", ""))
    done = _tool("--root", str(scratch))
    assert done.returncode == 1 and "k8s/base/kustomization.yaml" in done.stderr
    assert "end of the generated plugin settings" in done.stderr and "Traceback" not in done.stderr


def test_adding_a_plugin_folder_is_all_it_takes(scratch):
    folder = scratch / "services" / "text-stats"
    shutil.copytree(ECHO_DIR, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "requirements.txt").write_text("-r ../../requirements/torch.txt\n")
    spec = yaml.safe_load((folder / "plugin.yaml").read_text())
    spec.update(name="text-stats", base="torch", wants_gpu=True, egress="internet")
    (folder / "plugin.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    assert _check(scratch) == (1, {"k8s/base/plugins/text-stats.yaml", "k8s/base/plugins/kustomization.yaml",
                                   "docker-compose.yml", "docker-compose.gpu.yml"})
    assert _tool("--root", str(scratch)).returncode == 0
    kustomization = yaml.safe_load((scratch / "k8s/base/plugins/kustomization.yaml").read_text())
    assert "text-stats.yaml" in kustomization["resources"]
    compose = yaml.safe_load((scratch / "docker-compose.yml").read_text())
    assert compose["services"]["text-stats"]["networks"] == ["apt", "apt-egress"]
    assert compose["services"]["text-stats"]["container_name"] == "apt-text-stats-0"
    assert "text-stats" in yaml.safe_load((scratch / "docker-compose.gpu.yml").read_text())["services"]

    # made unavailable again: its generated file is a leftover the check names and the tool removes
    (folder / "plugin.yaml").write_text(yaml.safe_dump({**spec, "available": False}, sort_keys=False))
    code, named = _check(scratch)
    assert code == 1 and "k8s/base/plugins/text-stats.yaml" in named
    assert _tool("--root", str(scratch)).returncode == 0
    assert not (scratch / "k8s/base/plugins/text-stats.yaml").exists()
    assert _check(scratch) == (0, set())


def test_a_broken_plugin_yaml_stops_the_tool_with_the_file_named(scratch):
    path = scratch / "services/model-pruning/plugin.yaml"
    path.write_text(path.read_text().replace("egress: none", "egress: everywhere"))
    done = _tool("--root", str(scratch))
    assert done.returncode == 1 and "model-pruning/plugin.yaml" in done.stderr and "egress" in done.stderr
    assert "Traceback" not in done.stderr


def _repository_state() -> str:
    if shutil.which("git") is None:
        pytest.skip("git is not installed: cannot tell that no repository file changed")
    return subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", "."], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout


def test_a_plugin_folder_outside_the_repository_renders_for_kubernetes_and_docker(tmp_path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    before = _repository_state()
    folder = tmp_path / "my-plugins" / "text-stats"  # a folder on APT_PLUGIN_PATH
    folder.mkdir(parents=True)
    (folder / "requirements.txt").write_text("grpcio\n")
    (folder / "plugin.yaml").write_text(yaml.safe_dump({
        "name": "text-stats", "version": "0.2.0", "description": "counts words (test only)", "available": True,
        "module": "apt_text_stats.server", "services": [], "wants_gpu": True, "base": "slim",
        "egress": "internet", "resources": {"cpu": "250m", "memory": "256Mi", "memory_limit": "3Gi"}}))
    entry = Catalog(extra_dirs=(str(tmp_path / "my-plugins"),)).get("text-stats")

    objs = render(entry, 2, {"APT_LOG_LEVEL": "DEBUG"}, KubernetesConfig(namespace="apt"))
    for obj in (objs.deployment, objs.service):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
        assert obj["metadata"]["name"] == "apt-text-stats" and obj["metadata"]["namespace"] == "apt"
    assert objs.deployment["metadata"]["labels"]["apt.gpu"] == "wanted"  # k8s/overlays/gpu selects it
    pod = objs.deployment["spec"]["template"]
    assert pod["metadata"]["labels"]["apt.egress"] == "internet"  # the internet NetworkPolicy selects it
    [container] = pod["spec"]["containers"]
    assert container["image"] == "apt/text-stats:latest"
    assert container["resources"] == {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "3Gi"}}
    assert container["startupProbe"]["failureThreshold"] == 30  # slim: serves within a minute
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}}
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001 and pod["spec"]["automountServiceAccountToken"] is False
    assert {"name": "APT_LOG_LEVEL", "value": "DEBUG"} in container["env"]

    config = DockerConfig(network="apt", store_volume="apt-store")
    kwargs = container_kwargs(entry, 1, {"APT_INTERNAL_TOKEN": "t"}, config, gpu=True)
    assert kwargs["name"] == "apt-text-stats-1" and kwargs["network"] == "apt"
    assert kwargs["mem_limit"] == 3 << 30 and kwargs["pids_limit"] == PIDS_LIMIT
    assert kwargs["read_only"] is True and kwargs["cap_drop"] == ["ALL"] and kwargs["user"] == PLUGIN_USER
    assert kwargs["security_opt"] == ["no-new-privileges:true"]
    assert len(kwargs["device_requests"]) == 1
    assert config.egress(entry) == "apt-egress"
    assert "device_requests" not in container_kwargs(entry, 0, {}, config, gpu=False)

    assert _repository_state() == before


def test_every_plugin_folder_renders_with_what_its_plugin_yaml_says():
    for folder in [*sorted(p.parent for p in (ROOT / "services").glob("*/plugin.yaml")), ECHO_DIR]:
        m = PluginManifest.load(folder)
        objs = render(m, 1, {}, KubernetesConfig())
        labels = objs.deployment["spec"]["template"]["metadata"]["labels"]
        assert (labels.get("apt.egress") == "internet") == (m.egress == "internet"), m.name
        assert ("apt.gpu" in objs.deployment["metadata"]["labels"]) == m.wants_gpu, m.name
        spec = container_kwargs(m, 0, {}, DockerConfig(network="apt", store_volume="v"), gpu=False)
        assert spec["mem_limit"] == m.resources.memory_limit_bytes, m.name
