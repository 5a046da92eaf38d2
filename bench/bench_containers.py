"""Container figures: image sizes, cold start (container start -> grpc SERVING), idle RSS, and
throughput of a CPU-bound plugin operation through the gateway with 1 and 2 replicas.

.venv/bin/python bench/bench_containers.py [--quick] [--skip-scaling]
(needs a Docker engine and the images: `make images`)

Targets (issue 4): non-torch plugin image <= 350 MB, the torch layer shared (apt/torch-base
counted once); cold start <= 3 s (non-torch) / <= 15 s (torch); idle RSS <= 150 MB (non-torch);
2 replicas >= 1.6x the throughput of 1.

Scaling: the gateway image runs with APT_DEPLOYER=docker (as in docker-compose.yml), installs
model-pruning with 1 then 2 replicas, and each replica is capped at one CPU (`docker update
--cpus 1`, what a Kubernetes `limits: cpu: 1` gives a pod): the question is whether the router
spreads jobs so that a second replica's CPU is used. The operation is a magnitude prune of a tiny
model followed by recovery fine-tuning (pure torch compute), several jobs started at once.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import docker
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from apt_model.client import connect  # noqa: E402
from apt_model.gen.apt.common.v1 import job_pb2  # noqa: E402
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc  # noqa: E402
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2, pruning_pb2_grpc  # noqa: E402
from apt_model.runtime.jobs_grpc import FINAL_STATES  # noqa: E402
from apt_model.store import Store  # noqa: E402
from apt_model.testing import make_tiny_model  # noqa: E402
from gateway.deploy.base import check_serving  # noqa: E402
from gateway.testing import wait_answering  # noqa: E402

TARGETS = {"size_mb": 350.0, "cold_start_s": 3.0, "cold_start_torch_s": 15.0, "rss_mb": 150.0, "scaling_x": 1.6}
SERVICE_UID = 10001
TEXT = ("The quick brown fox jumps over the lazy dog. 敏捷的棕色狐狸跳过了懒狗。 " * 40 + "\n") * 8


# -- sizes -------------------------------------------------------------------------------------
def image_rows(client) -> list[dict]:
    tags = sorted(t for i in client.images.list() for t in i.tags
                  if t.startswith("apt/") and t.endswith(":latest") and "echo" not in t)
    torch_base = client.images.get("apt/torch-base:latest") if "apt/torch-base:latest" in tags else None
    torch_layers = set(torch_base.attrs["RootFS"]["Layers"]) if torch_base else set()
    rows = []
    for tag in tags:
        img = client.images.get(tag)
        size = img.attrs["Size"] / 1e6
        on_torch = bool(torch_layers) and tag != "apt/torch-base:latest" and \
            torch_layers <= set(img.attrs["RootFS"]["Layers"])
        own = size - torch_base.attrs["Size"] / 1e6 if on_torch else size
        rows.append({"image": tag, "size_mb": round(size, 1), "own_mb": round(own, 1), "on_torch_base": on_torch})
    return rows


# -- cold start and idle RSS -------------------------------------------------------------------
def _tree_rss_mb(pid: int) -> float:
    proc = psutil.Process(pid)
    return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2**20


def start_and_idle(client, image: str, repeats: int) -> dict:
    starts, rss = [], []
    # the port is published on 127.0.0.1 only: plaintext inside the container is allowed
    env = {"APT_INTERNAL_TOKEN": "bench", "APT_TOKEN": "bench", "APT_ADMIN_TOKEN": "bench-admin",
           "APT_ALLOW_PLAINTEXT": "1"}
    for _ in range(repeats):
        t0 = time.monotonic()
        c = client.containers.run(image, detach=True, environment=env, ports={"50051/tcp": ("127.0.0.1", None)})
        try:
            c.reload()
            port = c.attrs["NetworkSettings"]["Ports"]["50051/tcp"][0]["HostPort"]
            while not check_serving(f"127.0.0.1:{port}", timeout=0.5):
                c.reload()
                if c.status == "exited" or time.monotonic() - t0 > 180:
                    raise RuntimeError(f"{image} did not serve: {c.logs(tail=10).decode()}")
                time.sleep(0.05)
            starts.append(time.monotonic() - t0)
            time.sleep(5)  # idle: past start-up allocations
            rss.append(_tree_rss_mb(c.attrs["State"]["Pid"]))
        finally:
            c.remove(force=True)
    return {"cold_start_s": round(statistics.median(starts), 2), "rss_mb": round(statistics.median(rss), 1),
            "cold_starts_s": [round(s, 2) for s in starts]}


# -- scaling through the gateway ---------------------------------------------------------------
def _store(root: Path, models: int) -> None:
    # one source model per concurrent job: a prune job locks its source model
    store = Store(root)
    for i in range(models):
        make_tiny_model(store, f"tiny-{i}", texts=[TEXT])
    with store.create("datasets", "corpus", operation="bench-fixture") as folder:
        (folder / "corpus.txt").write_text(TEXT)
    for path in [root, *root.rglob("*")]:
        os.chown(path, SERVICE_UID, SERVICE_UID)


def _wait(address: str, token: str, timeout: float = 120) -> None:
    if not wait_answering(address, token, timeout):
        raise RuntimeError(f"gateway at {address} did not answer within {timeout}s")


def _run_jobs(address: str, token: str, n: int, steps: int, tag: str) -> float:
    """Start n prune jobs at once through the gateway, wait for all; return the wall time."""
    def one(i: int) -> None:
        with connect(address, token) as ch:
            job = pruning_pb2_grpc.PruningStub(ch).StartPrune(pruning_pb2.PruneRequest(
                name=f"tiny-{i}", output_name=f"tiny-{tag}-{i}", strategy="magnitude", ratio=0.5, recovery_steps=steps,
                recovery_dataset="corpus", batch_size=4, seq_len=64, overwrite=True), timeout=60)
            for update in plugin_pb2_grpc.JobsStub(ch).WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=900):
                if update.state in FINAL_STATES:
                    if update.state != job_pb2.JOB_STATE_SUCCEEDED:
                        raise RuntimeError(f"job {job.id} ended {update.state}: {update.error.message}")
                    return

    t0 = time.monotonic()
    with cf.ThreadPoolExecutor(n) as pool:
        list(pool.map(one, range(n)))
    return time.monotonic() - t0


def scaling(client, jobs: int, steps: int) -> dict:
    network = client.networks.create(f"apt-bench-{uuid.uuid4().hex[:8]}")
    tokens = {k: secrets.token_hex(16) for k in ("APT_TOKEN", "APT_ADMIN_TOKEN", "APT_INTERNAL_TOKEN")}
    with tempfile.TemporaryDirectory(prefix="apt-bench-store-") as tmp:
        root = Path(tmp)
        _store(root, jobs)
        gw = client.containers.run(
            "apt/gateway:latest", detach=True, name=f"{network.name}-gateway", network=network.name,
            ports={"50051/tcp": ("127.0.0.1", None)}, group_add=[str(os.stat("/var/run/docker.sock").st_gid)],
            volumes={str(root): {"bind": "/data", "mode": "rw"},
                     "/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"}},
            environment={**tokens, "APT_ALLOW_PLAINTEXT": "1", "APT_DEPLOYER": "docker", "APT_DOCKER_NETWORK": network.name,
                         "APT_STORE_VOLUME": str(root), "APT_INSTALL_TIMEOUT": "180"})
        try:
            gw.reload()
            address = f"127.0.0.1:{gw.attrs['NetworkSettings']['Ports']['50051/tcp'][0]['HostPort']}"
            _wait(address, tokens["APT_TOKEN"])
            result = {"jobs": jobs, "recovery_steps": steps, "cpus_per_replica": 1.0}
            for replicas in (1, 2):
                with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
                    reg = gateway_pb2_grpc.PluginRegistryStub(ch)
                    reg.InstallPlugin(gateway_pb2.InstallPluginRequest(name="model-pruning", replicas=replicas),
                                      timeout=300)
                containers = client.containers.list(filters={"label": [f"apt.deployment={network.name}",
                                                                       "apt.plugin=model-pruning"]})
                assert len(containers) == replicas, [c.name for c in containers]
                for c in containers:
                    c.update(cpu_period=100_000, cpu_quota=100_000)  # one CPU each
                # one short job per replica first: the first job's lazy imports are not measured, and
                # two first jobs at once in a fresh replica can hit an ImportError (see docs/deployment.md)
                _run_jobs(address, tokens["APT_TOKEN"], replicas, 2, f"warm{replicas}")
                wall = _run_jobs(address, tokens["APT_TOKEN"], jobs, steps, f"r{replicas}")
                result[f"wall_s_{replicas}"] = round(wall, 2)
                result[f"jobs_per_min_{replicas}"] = round(60 * jobs / wall, 2)
                with connect(address, tokens["APT_ADMIN_TOKEN"]) as ch:
                    gateway_pb2_grpc.PluginRegistryStub(ch).UninstallPlugin(
                        gateway_pb2.UninstallPluginRequest(name="model-pruning"), timeout=120)
            result["speedup_x"] = round(result["wall_s_1"] / result["wall_s_2"], 2)
            return result
        finally:
            for c in client.containers.list(all=True, filters={"label": f"apt.deployment={network.name}"}):
                c.remove(force=True)
            gw.remove(force=True)
            network.remove()


# -- report ------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one start per image (default 3), fewer jobs")
    parser.add_argument("--skip-scaling", action="store_true", help="sizes, cold start and RSS only")
    args = parser.parse_args()
    client = docker.from_env(timeout=300)
    rows = image_rows(client)
    for row in rows:
        if row["image"] not in ("apt/torch-base:latest", "apt/python-base:3.11-bookworm"):
            row.update(start_and_idle(client, row["image"], 1 if args.quick else 3))
    scale = None if args.skip_scaling else scaling(client, jobs=4, steps=30 if args.quick else 60)

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
               f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Docker {client.version()['Version']}")
    print(f"{dt.datetime.now():%Y-%m-%d %H:%M}  {machine}  (load avg {os.getloadavg()[0]:.1f}: shared machine)")
    print(f"{'image':38} {'total MB':>9} {'own MB':>8} {'size/tgt':>9} {'start s':>8} {'/tgt':>6} {'RSS MB':>7} {'/tgt':>6}")
    for r in rows:
        torch = r["on_torch_base"] or r["image"] == "apt/torch-base:latest"
        size_ratio = "" if torch or r["image"].startswith(("apt/gateway", "apt/python-base")) \
            else f"{r['size_mb'] / TARGETS['size_mb']:9.2f}"
        line = f"{r['image']:38} {r['size_mb']:9.0f} {r['own_mb']:8.0f} {size_ratio:>9}"
        if "cold_start_s" in r:
            st = TARGETS["cold_start_torch_s"] if torch else TARGETS["cold_start_s"]
            rss_ratio = "" if torch else f"{r['rss_mb'] / TARGETS['rss_mb']:6.2f}"
            line += f" {r['cold_start_s']:8.2f} {r['cold_start_s'] / st:6.2f} {r['rss_mb']:7.0f} {rss_ratio:>6}"
        print(line)
    print("own MB of images on apt/torch-base excludes the shared torch layer (counted once, in apt/torch-base)")
    if scale:
        print(f"scaling (model-pruning, {scale['jobs']} jobs x {scale['recovery_steps']} recovery steps, 1 CPU per "
              f"replica): 1 replica {scale['wall_s_1']:.1f} s, 2 replicas {scale['wall_s_2']:.1f} s -> "
              f"{scale['speedup_x']:.2f}x (target {TARGETS['scaling_x']}x, ratio {scale['speedup_x'] / TARGETS['scaling_x']:.2f})")
    out = ROOT / "bench" / "results" / "containers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": dt.datetime.now().isoformat(timespec="minutes"), "machine": machine,
                               "load_avg_1m": os.getloadavg()[0], "targets": TARGETS, "images": rows,
                               "scaling": scale}, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
