"""Deployment hardening (issue #15, items 2 and 7): what the gateway refuses at start, how the
docker deployer, docker-compose.yml and the Kubernetes manifests lock plugins down, and that what
plugins write locally is not world-readable.

Most checks read the real files or run the real gateway in a subprocess and need no Docker;
``test_real_container_is_locked_down`` inspects a container the docker deployer started on the
engine (``docker`` marker, the echo image of tests/deploy).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml
from docker.errors import NotFound

from apt_model import errors
from apt_model.runtime.manifest import PluginManifest
from apt_model.runtime.settings import Settings
from gateway.deploy import render
from gateway.deploy.docker import PIDS_LIMIT, PLUGIN_USER, DockerConfig, DockerDeployer
from gateway.server import refuse_unsafe

from .conftest import env_without_apt

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
# Plugins that call out of the platform: hubs (huggingface-integration), buckets and hubs
# (cloud-storage), an Ollama server (ollama-export). No other plugin may leave the cluster/host.
INTERNET = {"huggingface-integration", "cloud-storage", "ollama-export"}
PLUGINS = [PluginManifest.load(p) for p in sorted((ROOT / "services").iterdir()) if (p / "plugin.yaml").exists()]


# -- the gateway refuses to start ---------------------------------------------------------------
def _serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None, wait_for_port: bool = False):
    """`python -m apt_model gateway serve ARGS` with a fresh APT_HOME: (returncode, output). With
    ``wait_for_port`` it waits until the gateway says it serves, then stops it with SIGTERM."""
    full_env = {**env_without_apt(), "APT_HOME": str(tmp_path / "home"), "APT_ROUTER": "python",
                "APT_LOG_JSON": "0", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "apt_model", "gateway", "serve", *args], cwd=ROOT,
                            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if not wait_for_port:
        try:
            out, _ = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # it started instead of refusing
            proc.kill()
            out, _ = proc.communicate()
        return proc.returncode, out
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "listening on port" in line:  # printed once the gateway serves
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    serving.wait(timeout=180)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    reader.join(timeout=10)
    return code, "".join(lines)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "[::]:0", ":0"])
def test_plaintext_beyond_loopback_is_refused(tmp_path, listen):
    code, out = _serve(tmp_path, "--listen", listen)
    assert code == 7, out  # FAILED_PRECONDITION
    assert "not a loopback address" in out and "APT_TLS_CERT" in out and "APT_ALLOW_PLAINTEXT=1" in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize("listen, env", [("0.0.0.0:0", {"APT_ALLOW_PLAINTEXT": "1"}), ("127.0.0.1:0", {})])
def test_gateway_serves_on_loopback_or_when_plaintext_is_allowed(tmp_path, listen, env):
    code, out = _serve(tmp_path, "--listen", listen, env=env, wait_for_port=True)
    assert "gateway listening on port" in out, out
    assert code == 0, out  # drained on SIGTERM


@pytest.mark.parametrize("listen, refused", [
    ("127.0.0.1:50051", False), ("127.0.0.2:1", False), ("localhost:50051", False), ("[::1]:50051", False),
    ("0.0.0.0:50051", True), ("10.1.2.3:50051", True), ("gateway.example:50051", True), ("[::]:50051", True),
])
def test_loopback_rule(listen, refused):
    settings = Settings(listen=listen)
    if refused:
        with pytest.raises(errors.FailedPrecondition, match="APT_ALLOW_PLAINTEXT"):
            refuse_unsafe(settings)
        refuse_unsafe(settings.replace(allow_plaintext=True))
        refuse_unsafe(settings.replace(tls_cert="c.pem", tls_key="k.pem"))
    else:
        refuse_unsafe(settings)


@pytest.mark.parametrize("deployer", ["docker", "kubernetes"])
def test_container_deployers_demand_tokens_and_generate_none(tmp_path, deployer):
    code, out = _serve(tmp_path, env={"APT_DEPLOYER": deployer, "APT_TOKEN": "user-token"})
    assert code == 7, out
    assert f"APT_DEPLOYER={deployer} needs APT_ADMIN_TOKEN, APT_INTERNAL_TOKEN" in out, out
    assert "Traceback" not in out
    # nothing generated: not in the store volume, not beside it
    assert not [p for p in tmp_path.rglob("*") if "secret" in p.name or p.name.endswith("token")]


def test_tokens_from_mounted_files_pass_the_check(tmp_path):
    folder = tmp_path / "run-secrets"
    folder.mkdir()
    env = {}
    for name in ("token", "admin_token", "internal_token"):
        (folder / name).write_text(f"{name}-value\n")
        env[f"APT_{name.upper()}_FILE"] = str(folder / name)
    code, out = _serve(tmp_path, env={"APT_DEPLOYER": "docker", **env})
    # past the token check, the docker deployer's own configuration is what stops it
    assert code == 3 and "APT_STORE_VOLUME" in out, out
    assert "_TOKEN" not in out
    assert not (tmp_path / ".home-secrets").exists()  # no token folder made beside the volume either


# -- the docker deployer's containers -----------------------------------------------------------
class _FakeContainer:
    def __init__(self, name: str):
        self.name, self.started, self.removed = name, False, False

    def start(self):
        self.started = True

    def remove(self, force=False):
        self.removed = True


class _FakeDocker:
    """The Docker SDK client at the deployer's boundary: records what would reach the engine."""

    def __init__(self, networks=("apt", "apt-egress")):
        self.created: list[tuple[str, dict]] = []
        self.connected: list[tuple[str, str]] = []
        outer = self

        class Networks:
            def get(self, name):
                if name not in networks:
                    raise NotFound(f"network {name} not found")
                net = type("Net", (), {})()
                net.connect = lambda container: outer.connected.append((name, container.name))
                return net

        class Containers:
            def create(self, image, **kwargs):
                outer.created.append((image, kwargs))
                return _FakeContainer(kwargs["name"])

        self.networks, self.containers = Networks(), Containers()

    def ping(self):
        return True

    def info(self):
        return {"Runtimes": {"runc": {}}}


def _deployer(client=None, **config) -> DockerDeployer:
    config = {"store_volume": "apt-store", "network": "apt", **config}
    return DockerDeployer(Settings(), DockerConfig(**config), client=client or _FakeDocker())


def _entry(name: str) -> PluginManifest:
    return PluginManifest.load(ROOT / "services" / name)


def assert_locked_down(spec: dict, where: str) -> None:
    """The SDK arguments (or compose keys, same names) every plugin container must carry."""
    assert spec["read_only"] is True, where
    assert "/tmp" in spec["tmpfs"], where
    assert spec["cap_drop"] == ["ALL"], where
    assert "no-new-privileges:true" in spec["security_opt"], where
    user = str(spec["user"]).split(":")
    assert user[0] not in ("", "0", "root") and user[1:] != ["0"], where
    assert spec["user"] == PLUGIN_USER, where
    assert spec["pids_limit"] == PIDS_LIMIT, where
    assert spec["mem_limit"], where


@pytest.mark.parametrize("plugin", ["model-pruning", "cloud-storage"])
def test_docker_deployer_container_spec_is_locked_down(plugin):
    spec = _deployer().container_spec(_entry(plugin), 0, {"APT_INTERNAL_TOKEN": "t"})
    assert_locked_down(spec, plugin)
    assert spec["mem_limit"] == {"model-pruning": 16 << 30, "cloud-storage": 1 << 30}[plugin]
    assert spec["environment"]["HOME"] == "/tmp"  # the root filesystem is read-only
    assert spec["network"] == "apt" and "ports" not in spec


def test_docker_deployer_attaches_only_internet_plugins_to_egress():
    client = _FakeDocker()
    dep = _deployer(client)
    for plugin in ("cloud-storage", "model-pruning", "huggingface-integration"):
        container = dep._run(_entry(plugin), f"apt/{plugin}:latest", 0, {"APT_INTERNAL_TOKEN": "t"})
        assert container.started
    assert client.connected == [("apt-egress", "apt-cloud-storage-0"), ("apt-egress", "apt-huggingface-integration-0")]
    assert all(kwargs["network"] == "apt" for _, kwargs in client.created)


def test_internet_plugin_without_egress_network_is_failed_precondition():
    client = _FakeDocker(networks=("apt",))
    with pytest.raises(errors.FailedPrecondition, match="apt-egress"):
        _deployer(client)._run(_entry("cloud-storage"), "apt/cloud-storage:latest", 0, {})
    assert client.created == []
    _deployer(client)._run(_entry("model-pruning"), "apt/model-pruning:latest", 0, {})  # needs none


# -- docker-compose.yml ------------------------------------------------------------------------
def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, with ``env`` as the environment."""
    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(3) if m.group(2) == ":-" else ""
        return env.get(name) or default
    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", sub, text)


def _compose_plugins() -> dict[str, dict]:
    return {s["labels"]["apt.plugin"]: s for s in COMPOSE["services"].values() if "apt.plugin" in s.get("labels", {})}


def test_only_the_plugins_that_call_out_declare_internet_egress():
    assert {m.name for m in PLUGINS if m.egress == "internet"} == INTERNET


def test_compose_plugins_match_the_docker_deployer():
    plugins = _compose_plugins()
    assert set(plugins) == {m.name for m in PLUGINS if m.available}
    dep = _deployer()
    for name, service in plugins.items():
        assert_locked_down(service, f"docker-compose.yml {name}")
        spec = dep.container_spec(_entry(name), 0, {})
        for key in ("read_only", "cap_drop", "security_opt", "user", "pids_limit", "init"):
            assert service[key] == spec[key], (name, key)
        assert service["restart"] == spec["restart_policy"]["Name"], name
        assert _bytes(service["mem_limit"]) == spec["mem_limit"], name
        assert service["container_name"] == spec["name"], name
        assert service["labels"] == {k: spec["labels"][k] for k in ("apt.plugin", "apt.replica", "apt.deployment")}
        for var in ("HOME", "APT_HOME", "APT_LISTEN", "APT_DEPLOYER"):
            assert service["environment"][var] == spec["environment"][var], (name, var)
        assert spec["environment"]["APT_DEPLOYER"] == "docker"  # what refuses --nodes > 1 names
        # the internal network always; the egress one for the plugins that call out, only
        want = {"apt", "apt-egress"} if name in INTERNET else {"apt"}
        assert set(service["networks"]) == want, name
        assert "ports" not in service, name
    assert COMPOSE["networks"]["apt"]["internal"] is True
    assert COMPOSE["networks"]["apt"]["name"] == DockerConfig(network="apt").network
    assert COMPOSE["networks"]["apt-egress"]["name"] == DockerConfig(network="apt").egress_network


def _bytes(value: str | int) -> int:
    """Compose's byte values: a number or a number with k, m or g (binary)."""
    text = str(value)
    return int(text[:-1]) << {"k": 10, "m": 20, "g": 30}[text[-1]] if text[-1] in "kmg" else int(text)


def test_compose_gateway_publishes_on_loopback_and_is_locked_down():
    gateway = COMPOSE["services"]["gateway"]
    for key in ("read_only", "cap_drop", "security_opt", "user", "pids_limit", "mem_limit"):
        assert gateway.get(key), key
    [port] = gateway["ports"]
    host, host_port, container_port = _interpolate(port, {}).split(":")
    assert host == "127.0.0.1" and (host_port, container_port) == ("50051", "50051")
    assert _interpolate(port, {"APT_GATEWAY_PORT": "6000"}).startswith("127.0.0.1:6000:")
    # plaintext inside, allowed by the gateway itself only because of that loopback binding
    env = gateway["environment"]
    assert _interpolate(env["APT_PUBLISH_ADDR"], {}) == "127.0.0.1"
    assert _interpolate(env["APT_ALLOW_PLAINTEXT"], {}) == "0"
    published = Settings.from_env({"APT_PUBLISH_ADDR": _interpolate(env["APT_PUBLISH_ADDR"], {}),
                                   "APT_LISTEN": env["APT_LISTEN"], "APT_ALLOW_PLAINTEXT": "0"})
    refuse_unsafe(published)  # the compose default starts
    with pytest.raises(errors.FailedPrecondition, match="APT_PUBLISH_ADDR"):  # `docker compose up` on 0.0.0.0
        refuse_unsafe(published.replace(publish_addr="0.0.0.0"))
    # tokens from the environment, never generated onto the store volume
    for var in ("APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN"):
        assert gateway["environment"][var].startswith(f"${{{var}:?"), var


def test_make_up_refuses_a_plaintext_publish_beyond_loopback():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = {**os.environ, "APT_PUBLISH_ADDR": "0.0.0.0"}
    env.pop("APT_ALLOW_PLAINTEXT", None)
    done = subprocess.run(["make", "-s", "publish-check"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "APT_ALLOW_PLAINTEXT=1" in done.stderr, done.stderr
    env["APT_PUBLISH_ADDR"] = "127.0.0.1"
    assert subprocess.run(["make", "-s", "publish-check"], cwd=ROOT, env=env).returncode == 0


def test_make_secrets_writes_private_tokens_once(tmp_path):
    folder = tmp_path / "secrets"
    run = lambda: subprocess.run([str(ROOT / "docker/secrets.sh"), str(folder)], capture_output=True, text=True)
    assert run().returncode == 0
    first = {p.name: p.read_text() for p in folder.iterdir()}
    assert set(first) == {"token", "admin_token", "internal_token"}
    assert len(set(first.values())) == 3 and all(re.fullmatch(r"[0-9a-f]{64}", v) for v in first.values())
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in folder.iterdir())
    assert run().returncode == 0
    assert {p.name: p.read_text() for p in folder.iterdir()} == first  # never overwritten
    # what Settings reads back from such files (APT_*_TOKEN_FILE)
    s = Settings.from_env({f"APT_{n.upper()}_FILE": str(folder / n) for n in first})
    assert (s.token, s.admin_token, s.internal_token) == (first["token"], first["admin_token"], first["internal_token"])


# -- Kubernetes ---------------------------------------------------------------------------------
def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _leaves_cluster(rule: dict) -> bool:
    """An egress rule reaching beyond the cluster: no ``to`` (anywhere) or an ipBlock peer."""
    return not rule.get("to") or any("ipBlock" in peer for peer in rule["to"])


def _plugin_deployments() -> dict[str, dict]:
    """Every plugin's Deployment as the kubernetes deployer sends it (k8s/base/plugins/ holds the
    available ones, generated by the same renderer: tests/deploy/test_generated.py)."""
    return {m.name: render.deployment(m, f"apt/{m.name}:latest") for m in PLUGINS}


def test_every_plugin_has_egress_policy_and_only_internet_plugins_leave_the_cluster():
    policies = [d for d in _docs(K8S / "base/networkpolicy.yaml")
                if d["kind"] == "NetworkPolicy" and "Egress" in d["spec"].get("policyTypes", [])]
    for name, deployment in _plugin_deployments().items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if _matches(p["spec"]["podSelector"], labels)]
        assert mine, f"{name}: no egress NetworkPolicy selects its pods (default allow)"
        rules = [r for p in mine for r in p["spec"].get("egress", [])]
        assert any(_leaves_cluster(r) for r in rules) == (name in INTERNET), name
        # DNS and the gateway stay reachable for every plugin
        assert any({"port": 53, "protocol": "UDP"} in r.get("ports", []) for r in rules), name
        for rule in (r for r in rules if _leaves_cluster(r)):  # never the cloud metadata service
            for peer in rule["to"]:
                block = peer["ipBlock"]
                if ipaddress.ip_network(block["cidr"]).version == 4:
                    metadata = ipaddress.ip_address("169.254.169.254")
                    assert any(metadata in ipaddress.ip_network(e) for e in block.get("except", [])), name


def test_no_secret_is_committed_and_tokens_are_mounted_files():
    for path in K8S.rglob("*.yaml"):
        if "secrets" in path.relative_to(K8S).parts[:-1]:
            continue
        kinds = [d.get("kind") for d in _docs(path) if isinstance(d, dict)]  # patches are lists
        assert "Secret" not in kinds, f"{path}: Secrets are generated (make k8s-secrets), never committed"
    generator = yaml.safe_load((K8S / "base/kustomization.yaml").read_text())["secretGenerator"]
    [tokens] = [g for g in generator if g["name"] == "apt-tokens"]
    assert {f.split("=")[1] for f in tokens["files"]} == {"secrets/token", "secrets/admin_token",
                                                          "secrets/internal_token"}
    if shutil.which("git"):
        for path in ("k8s/base/secrets/token", ".apt-secrets/token"):
            ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
            assert ignored.returncode == 0, f"{path}: the generated token folders must be gitignored"
    for name, deployment in _plugin_deployments().items():
        pod = deployment["spec"]["template"]["spec"]
        env = {e["name"]: e for e in pod["containers"][0]["env"]}
        assert env["APT_INTERNAL_TOKEN_FILE"]["value"].startswith("/run/secrets/apt/"), name
        assert not {"APT_TOKEN", "APT_ADMIN_TOKEN", "APT_TOKEN_FILE", "APT_ADMIN_TOKEN_FILE"} & set(env), name
        [volume] = [v for v in pod["volumes"] if "secret" in v]
        assert [i["key"] for i in volume["secret"]["items"]] == ["internal-token"], name


def _render(k8s_copy: Path, folder: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "kustomize", str(k8s_copy / folder)], capture_output=True, text=True,
                          timeout=60)


def test_kustomize_builds_only_with_generated_tokens(tmp_path):
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed: kustomize rendering not checked")
    k8s_copy = tmp_path / "k8s"
    shutil.copytree(K8S, k8s_copy, ignore=shutil.ignore_patterns("secrets"))
    refused = _render(k8s_copy, "base")
    assert refused.returncode != 0 and "secrets/token" in refused.stderr  # never an empty Secret
    assert subprocess.run([str(ROOT / "docker/secrets.sh"), str(k8s_copy / "base/secrets")],
                          capture_output=True).returncode == 0
    for folder in ("base", "overlays/gpu", "overlays/tls"):
        done = _render(k8s_copy, folder)
        assert done.returncode == 0, done.stderr
        docs = [d for d in yaml.safe_load_all(done.stdout) if d]
        [secret] = [d for d in docs if d["kind"] == "Secret"]
        assert secret["metadata"]["name"] == "apt-tokens"
        assert set(secret["data"]) == {"token", "admin-token", "internal-token"} and all(secret["data"].values())
        [gateway] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "apt-gateway"]
        env = {e["name"]: e.get("value") for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]}
        [service] = [d for d in docs if d["kind"] == "Service" and d["metadata"]["name"] == "apt-gateway"]
        if folder == "overlays/tls":  # exposed: TLS, and plaintext no longer allowed
            assert service["spec"]["type"] == "LoadBalancer"
            assert env["APT_TLS_CERT"] and env["APT_TLS_KEY"] and "APT_ALLOW_PLAINTEXT" not in env
        else:  # plaintext: reachable inside the cluster only
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
            assert env["APT_ALLOW_PLAINTEXT"] == "1" and "APT_TLS_CERT" not in env


# -- what plugins write locally -------------------------------------------------------------------
WRITER_SERVER = '''
from pathlib import Path

from apt_model.runtime.app import PluginApp


def build(app):
    with app.store.create("datasets", "written-by-plugin", operation="test") as folder:
        (folder / "data.txt").write_text("private")
        (folder / "sub").mkdir()
        (folder / "sub" / "more.txt").write_text("private")


if __name__ == "__main__":
    PluginApp.main(Path(__file__).resolve().parents[1], build)
'''


def test_local_plugin_logs_and_store_entries_are_not_world_readable(tmp_path):
    from gateway.deploy.local import LocalDeployer

    plugin = tmp_path / "plugins" / "writer"
    (plugin / "apt_writer").mkdir(parents=True)
    (plugin / "apt_writer" / "__init__.py").write_text("")
    (plugin / "apt_writer" / "server.py").write_text(WRITER_SERVER)
    (plugin / "requirements.txt").write_text("")
    (plugin / "plugin.yaml").write_text(yaml.safe_dump({
        "name": "writer", "version": "0.1.0", "description": "writes one store entry at start (test only)",
        "available": True, "module": "apt_writer.server", "services": [], "imports": []}))
    home = tmp_path / "home"
    old_umask = os.umask(0o022)  # what a user's shell usually has: the deployer must not rely on it
    try:
        deployer = LocalDeployer(Settings(home=home, install_timeout=120, grace_seconds=2))
        deployer.deploy(PluginManifest.load(plugin), 1, {"APT_INTERNAL_TOKEN": "t", "APT_LOG_JSON": "0"})
    finally:
        os.umask(old_umask)
    try:
        entry = home / "datasets" / "written-by-plugin"
        assert (entry / "data.txt").read_text() == "private"
        written = [entry, *entry.rglob("*")]
        logs = [home / "logs", *(home / "logs").glob("*.log")]
        assert len(logs) == 2
        for path in written + logs:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode & 0o007 == 0, f"{path.relative_to(home)} is {oct(mode)}: readable by every user"
    finally:
        deployer.remove("writer")


# -- a real container -----------------------------------------------------------------------------
UMASK_OF_PLUGIN = """
import glob
for status in glob.glob('/proc/[0-9]*/status'):
    try:
        argv = open(status.replace('status', 'cmdline'), 'rb').read().split(b'\\0')
        if argv[0].startswith(b'python') and argv[1].endswith(b'/run_plugin.py'):
            print(open(status).read().split('Umask:')[1].split()[0])
    except (OSError, IndexError):
        pass
"""


@pytest.mark.docker
@pytest.mark.timeout(3600)  # the echo image is built on demand (about 2 min, longer on a fresh machine)
def test_real_container_is_locked_down(tmp_path):
    from tests.deploy.conftest import ECHO_DIR, _engine, build_images

    client = _engine()
    if isinstance(client, Exception):
        pytest.skip(f"no Docker engine answers ({client}); container test skipped")
    build_images("echo", plugin=ECHO_DIR)
    volume = client.volumes.create(f"apt-test-hardening-{os.getpid()}")
    dep = DockerDeployer(Settings(home=tmp_path, install_timeout=60, grace_seconds=2),
                         DockerConfig(store_volume=volume.name, host_ports=True), client=client)
    try:
        [endpoint] = dep.deploy(PluginManifest.load(ECHO_DIR), 1, {"APT_INTERNAL_TOKEN": "t"})  # it serves
        [container] = client.containers.list(filters={"label": ["apt.plugin=echo", "apt.deployment=host"]})
        host = container.attrs["HostConfig"]
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges:true" in host["SecurityOpt"]
        assert container.attrs["Config"]["User"] == PLUGIN_USER
        assert host["Memory"] == PluginManifest.load(ECHO_DIR).resources.memory_limit_bytes > 0
        assert host["PidsLimit"] == PIDS_LIMIT
        assert "/tmp" in host["Tmpfs"]
        assert endpoint.startswith("127.0.0.1:")
        # the process really runs unprivileged, with no capability, and cannot write outside /data, /tmp
        probe = container.exec_run(["python3", "-c", "import os; print(os.getuid(), open('/proc/self/status')"
                                    ".read().split('CapEff:')[1].split()[0], flush=True); open('/app/x', 'w')"],
                                   demux=True)  # stdout and stderr apart: their order in one stream is a race
        out, err = probe.output
        assert probe.exit_code != 0 and b"Read-only file system" in err, probe.output
        assert out.split() == [b"10001", b"0000000000000000"], probe.output
        # the plugin process (docker/run_plugin.py) writes into the store with umask 027
        umask = container.exec_run(["python3", "-c", UMASK_OF_PLUGIN])
        assert umask.output.split() == [b"0027"], umask.output
    finally:
        dep.remove("echo")
        volume.remove(force=True)
