"""Container figures: image size, cold start (container start -> grpc SERVING), idle RSS.

.venv/bin/python bench/bench_containers.py [--quick]   (needs a Docker engine and built images)
Targets: non-torch plugin image <= 350 MB; cold start <= 3 s (non-torch) / <= 15 s (torch);
idle RSS <= 150 MB (non-torch). Scaling 1 vs 2 replicas through the gateway is not measured
here yet (it needs the gateway image; see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import docker
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gateway.deploy.base import check_serving  # noqa: E402

TARGETS = {"size_mb": 350.0, "cold_start_s": 3.0, "cold_start_torch_s": 15.0, "rss_mb": 150.0}


def measure(client, image: str, repeats: int) -> dict:
    starts, rss = [], []
    for _ in range(repeats):
        t0 = time.monotonic()
        c = client.containers.run(image, detach=True, environment={"APT_INTERNAL_TOKEN": "bench"},
                                  ports={"50051/tcp": ("127.0.0.1", None)})
        try:
            c.reload()
            port = c.attrs["NetworkSettings"]["Ports"]["50051/tcp"][0]["HostPort"]
            while not check_serving(f"127.0.0.1:{port}", timeout=0.5):
                if time.monotonic() - t0 > 120:
                    raise RuntimeError(f"{image} did not serve in 120 s: {c.logs(tail=10).decode()}")
                time.sleep(0.05)
            starts.append(time.monotonic() - t0)
            time.sleep(3)  # idle
            rss.append(c.stats(stream=False)["memory_stats"]["usage"] / 2**20)
        finally:
            c.remove(force=True)
    return {"cold_start_s": statistics.median(starts), "rss_mb": statistics.median(rss)}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one start per image instead of three")
    args = parser.parse_args()
    client = docker.from_env()
    images = sorted(t for i in client.images.list() for t in i.tags if t.startswith("apt/") and "python-base" not in t)
    torch_base = next((client.images.get(t) for t in images if t.startswith("apt/torch-base")), None)
    torch_layers = set(torch_base.attrs["RootFS"]["Layers"]) if torch_base else set()
    rows = []
    for tag in images:
        img = client.images.get(tag)
        uses_torch = bool(torch_layers) and torch_layers <= set(img.attrs["RootFS"]["Layers"])
        row = {"image": tag, "size_mb": img.attrs["Size"] / 1e6, "torch": uses_torch}
        if tag.startswith("apt/torch-base"):
            rows.append(row)
            continue
        row.update(measure(client, tag, 1 if args.quick else 3))
        rows.append(row)
    print(f"{dt.date.today()}  {platform.processor() or platform.machine()}  {os.cpu_count()} cores  "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB RAM")
    print(f"{'image':40} {'size MB':>8} {'/target':>8} {'start s':>8} {'/target':>8} {'RSS MB':>7} {'/target':>8}")
    for r in rows:
        start_target = TARGETS["cold_start_torch_s"] if r["torch"] else TARGETS["cold_start_s"]
        size = f"{r['size_mb']:8.0f} {r['size_mb'] / TARGETS['size_mb']:8.2f}"
        if "cold_start_s" in r:
            print(f"{r['image']:40} {size} {r['cold_start_s']:8.2f} {r['cold_start_s'] / start_target:8.2f} "
                  f"{r['rss_mb']:7.0f} {r['rss_mb'] / TARGETS['rss_mb']:8.2f}")
        else:
            print(f"{r['image']:40} {size}")
    out = Path(__file__).resolve().parent / "results" / "containers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"date": str(dt.date.today()), "machine": platform.processor(), "cores": os.cpu_count(),
                               "targets": TARGETS, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
