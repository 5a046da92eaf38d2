"""Benchmark: cloud-storage backup throughput and resume cost against one local S3 server.

One run, one S3-protocol server (moto in server mode, a separate process on loopback):
(a) baseline: ``boto3`` ``upload_file`` of the model's weight file, default TransferConfig;
(b) the plugin: ``StartBackup`` of the same model through the real gRPC service in this
process, followed to its end with WatchJob (manifest, checksums and job overhead included).
Each is repeated, the server is reset between runs, medians are reported. Target: plugin
throughput >= 0.8x baseline.

Resume: a backup is cancelled through CancelJob once it passed ~50%, then run again; the
bytes re-sent are what the second run sent beyond what was still missing on the server
after the interruption (parts that had landed but were sent again). Target: <= one part.

    .venv/bin/python bench/bench_storage.py [--quick] [--size-mib N] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "services" / "cloud-storage"), str(ROOT / "bench")]

import boto3  # noqa: E402
import requests  # noqa: E402

from apt_model.gen.apt.common.v1 import job_pb2  # noqa: E402
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc  # noqa: E402
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as pb  # noqa: E402
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc  # noqa: E402
from apt_model.runtime.testing import serve_plugin, wait_job  # noqa: E402
from apt_model.store import Store  # noqa: E402
from common import machine, median, save, verdict  # noqa: E402

MiB = 1 << 20
PART = 8 * MiB
KEY_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_moto() -> tuple[subprocess.Popen, str]:
    port = free_port()
    exe = Path(sys.executable).with_name("moto_server")
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            requests.get(f"{url}/moto-api/", timeout=1)
            return proc, url
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def reset(url: str, client) -> None:
    requests.post(f"{url}/moto-api/reset", timeout=60).raise_for_status()
    client.create_bucket(Bucket="bench")


def make_model(store: Store, size: int) -> Path:
    rng = random.Random(0)
    with store.create("models", "big", operation="bench") as folder:
        (folder / "config.json").write_text('{"model_type": "llama"}')
        with open(folder / "model.safetensors", "wb") as fh:
            for _ in range(size // MiB):
                fh.write(rng.randbytes(MiB))
    return store.model("big").path / "model.safetensors"


def run_plugin(stub, channel, url: str, name: str) -> tuple[float, job_pb2.Job]:
    t0 = time.perf_counter()
    job = stub.StartBackup(pb.BackupRequest(name="big", destination=f"s3://bench/{name}", endpoint_url=url,
                                            part_size=PART), timeout=30)  # default concurrency (4)
    done = wait_job(channel, job.id, timeout=1800)
    if done.state != job_pb2.JOB_STATE_SUCCEEDED:
        raise RuntimeError(done.error.message)
    return time.perf_counter() - t0, done


def interrupted_then_resumed(stub, channel, client, url: str, weights_size: int) -> dict:
    jobs = plugin_pb2_grpc.JobsStub(channel)
    job = stub.StartBackup(pb.BackupRequest(name="big", destination="s3://bench/resume", endpoint_url=url,
                                            part_size=PART), timeout=30)  # default concurrency (4)
    for snap in jobs.WatchJob(job_pb2.WatchJobRequest(id=job.id), timeout=1800):
        if snap.progress >= 0.5 and snap.state == job_pb2.JOB_STATE_RUNNING:
            jobs.CancelJob(job_pb2.CancelJobRequest(id=job.id), timeout=30)
            break
    final = wait_job(channel, job.id, timeout=600)
    landed = 0  # what the server holds after the interruption
    for u in client.list_multipart_uploads(Bucket="bench").get("Uploads", []):
        for p in client.list_parts(Bucket="bench", Key=u["Key"], UploadId=u["UploadId"]).get("Parts", []):
            landed += p["Size"]
    _, done = run_plugin(stub, channel, url, "resume")
    sent2 = int(done.result["bytes_sent"])
    missing = weights_size - landed  # config.json went up whole before the weights and is skipped
    return {"interrupted_state": job_pb2.JobState.Name(final.state), "landed_bytes": landed,
            "second_run_sent": sent2, "missing_after_interrupt": missing,
            "re_sent_bytes": sent2 - missing, "part_size": PART, "resumed": bool(done.result["resumed"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="256 MiB, 2 repeats")
    ap.add_argument("--size-mib", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    size = (args.size_mib or (256 if args.quick else 1024)) * MiB
    repeats = args.repeats or (2 if args.quick else 3)
    os.environ.update(KEY_ENV)
    tmp = Path(tempfile.mkdtemp(prefix="bench-storage-"))
    os.environ["CLOUD_STORAGE_SECRETS_DIR"] = str(tmp / "no-secrets")
    proc, url = start_moto()
    try:
        store = Store(tmp / "home")
        weights = make_model(store, size)
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        base_times, plugin_times = [], []
        with serve_plugin(ROOT / "services" / "cloud-storage", tmp / "home") as (channel, app):
            stub = cloud_storage_pb2_grpc.CloudStorageStub(channel)
            for i in range(repeats):
                reset(url, client)
                t0 = time.perf_counter()
                client.upload_file(str(weights), "bench", f"baseline/{i}/model.safetensors")
                base_times.append(time.perf_counter() - t0)
                reset(url, client)
                seconds, _ = run_plugin(stub, channel, url, f"plugin{i}")
                plugin_times.append(seconds)
                print(f"run {i + 1}/{repeats}: baseline {base_times[-1]:.2f}s, plugin {plugin_times[-1]:.2f}s",
                      flush=True)
            reset(url, client)
            resume = interrupted_then_resumed(stub, channel, client, url, size)
        reset(url, client)
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    base_rate = size / median(base_times) / MiB
    plugin_rate = size / median(plugin_times) / MiB  # config.json's 23 bytes left out
    ratio = plugin_rate / base_rate
    m = machine()
    print(f"\ncloud-storage backup vs boto3 upload_file, {size // MiB} MiB, {repeats} repeats, "
          f"{m['date']}, {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB")
    print(f"{'':28}{'median s':>10}{'MiB/s':>10}")
    print(f"{'boto3 upload_file':28}{median(base_times):>10.2f}{base_rate:>10.1f}")
    print(f"{'plugin StartBackup':28}{median(plugin_times):>10.2f}{plugin_rate:>10.1f}")
    print(f"throughput ratio {ratio:.2f}x (target >= 0.80x): {verdict(ratio, 0.8, True)}")
    print(f"resume after ~50% interruption: re-sent {resume['re_sent_bytes'] / MiB:.1f} MiB "
          f"(target <= one part, {PART // MiB} MiB): {verdict(resume['re_sent_bytes'], PART, False)}")
    path = save("storage", {"size_bytes": size, "repeats": repeats, "baseline_seconds": base_times,
                            "plugin_seconds": plugin_times, "baseline_mib_s": base_rate,
                            "plugin_mib_s": plugin_rate, "ratio": ratio, "target_ratio": 0.8,
                            "resume": resume})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
