"""The control plane's read path under load: GetModelInfo/ListModels vs an echo call (issue 24, item 8).

The gateway runs as its own process (as deployed, apt-router in front, default logging); the
load comes from a client process of its own. At 64 concurrent callers (and 8), each alternating
GetModelInfo and ListModels on a store of 10 models for a fixed time, against the same callers
making Echo calls through the same gateway to the echo plugin, in the same run. Then ListModels
on 1,000 models against the same call on 10. Targets (issue 24): info/list calls/s >= 0.7x the
echo calls/s at 64 callers, their p99 <= 50 ms, ListModels(1,000) <= 2x ListModels(10).
Medians of the repeats.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import machine, median, percentile, save, stop_local_plugins, verdict  # noqa: E402

import grpc  # noqa: E402

from apt_model.client import channel_options, connect  # noqa: E402
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402
from apt_model.runtime.settings import read_local_token  # noqa: E402
from apt_model.store import Store  # noqa: E402
from apt_model.testing import make_tiny_model  # noqa: E402
from gateway.deploy.base import wait_serving  # noqa: E402


def caller_calls(channel, kind: str, i: int, **options) -> list:
    """The calls caller ``i`` makes in turn on ``channel`` (sync or grpc.aio: the stubs are the
    same): GetModelInfo and ListModels for ``control``, Echo for ``echo``."""
    core, echo = gateway_pb2_grpc.CoreStub(channel), echo_pb2_grpc.EchoStub(channel)
    if kind == "control":
        return [lambda: core.GetModelInfo(gateway_pb2.GetModelInfoRequest(name=f"m{i % 10}"), timeout=30, **options),
                lambda: core.ListModels(gateway_pb2.ListModelsRequest(), timeout=30, **options)]
    return [lambda: echo.Echo(echo_pb2.EchoRequest(text="hello"), timeout=30, **options)]


def summary(latencies: list[float], errors: int, took: float) -> dict:
    return {"calls_per_s": len(latencies) / took, "p50_ms": percentile(latencies, 0.5) * 1e3,
            "p99_ms": percentile(latencies, 0.99) * 1e3, "errors": errors}


def client_aio(address: str, token: str, kind: str, callers: int, seconds: float) -> dict:
    """Run in the client process: ``callers`` coroutines on one event loop, each on its own
    channel, for ``seconds``. One thread drives every call, so the client's own cost per call is
    grpc.aio's, not 64 threads' turns at the GIL (which the ``threads`` engine measures too)."""
    import asyncio

    async def one(i: int, stop: float, latencies: list[float], errors: list[str]) -> None:
        async with grpc.aio.insecure_channel(address, options=channel_options()) as channel:
            calls = caller_calls(channel, kind, i, metadata=(("authorization", f"Bearer {token}"),))
            n = 0
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                try:
                    await calls[n % len(calls)]()
                except grpc.aio.AioRpcError as exc:  # counted and reported: a benchmark measures them
                    errors.append(exc.code().name)
                latencies.append(time.perf_counter() - t0)
                n += 1

    async def run() -> dict:
        latencies: list[float] = []
        errors: list[str] = []
        start = time.perf_counter()
        await asyncio.gather(*(one(i, start + seconds, latencies, errors) for i in range(callers)))
        return summary(latencies, len(errors), time.perf_counter() - start)

    return asyncio.run(run())


def client(address: str, token: str, kind: str, callers: int, seconds: float) -> dict:
    """Run in the client process: ``callers`` threads, each on its own channel, for ``seconds``."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def one(i: int) -> None:
        channel = connect(address, token)
        calls = caller_calls(channel, kind, i)
        n, mine = 0, []
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            try:
                calls[n % len(calls)]()
            except Exception as exc:  # counted and reported, not raised: a benchmark measures them
                with lock:
                    errors.append(type(exc).__name__)
            mine.append(time.perf_counter() - t0)
            n += 1
        with lock:
            latencies.extend(mine)
        channel.close()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(latencies, len(errors), time.perf_counter() - start)


ENGINES = {"aio": client_aio, "threads": client}


def run_client(engine: str, address: str, token: str, kind: str, callers: int, seconds: float) -> dict:
    out = subprocess.run([sys.executable, __file__, "--engine", engine,
                          "--client", address, token, kind, str(callers), str(seconds)],
                         capture_output=True, text=True, timeout=seconds + 120)
    if out.returncode != 0:
        raise SystemExit(f"client failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def start_gateway(home: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APT_")},
           "APT_HOME": str(home), "APT_PLUGIN_PATH": str(ROOT / "tests" / "plugins")}
    proc = subprocess.Popen([sys.executable, "-m", "apt_model", "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(home.parent / "gateway.log", "wb"))
    if not wait_serving(f"127.0.0.1:{port}", 60):
        raise SystemExit(f"gateway did not start; see {home.parent / 'gateway.log'}")
    return proc, f"127.0.0.1:{port}"


def fill(store: Store, count: int) -> None:
    """``count`` models m0..m{count-1}: one tiny model made, the rest copies of its files."""
    if not store.exists("models", "m0"):
        make_tiny_model(store, "m0", vocab_size=320)
    source = store.model("m0").path
    for i in range(1, count):
        if store.exists("models", f"m{i}"):
            continue
        with store.create("models", f"m{i}", operation="bench", parent="m0") as tmp:
            for f in source.iterdir():
                if f.name != "apt.json":
                    shutil.copy(f, tmp / f.name)


def list_ms(core, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        core.ListModels(gateway_pb2.ListModelsRequest(), timeout=60)
        times.append(time.perf_counter() - t0)
    return median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=10.0, help="per load phase")
    ap.add_argument("--engine", choices=sorted(ENGINES), default="aio",
                    help="the load client: aio (one event loop, default) or threads (a thread per caller)")
    ap.add_argument("--client", nargs=5, metavar=("ADDRESS", "TOKEN", "KIND", "CALLERS", "SECONDS"))
    args = ap.parse_args()
    if args.client:
        address, token, kind, callers, seconds = args.client
        print(json.dumps(ENGINES[args.engine](address, token, kind, int(callers), float(seconds))))
        return

    tmp = Path(tempfile.mkdtemp(prefix="apt-bench-control-"))
    home = tmp / "home"
    store = Store(home)
    fill(store, 10)
    proc, address = start_gateway(home)
    try:
        admin = connect(address, read_local_token(home, "admin_token"))
        gateway_pb2_grpc.PluginRegistryStub(admin).InstallPlugin(gateway_pb2.InstallPluginRequest(name="echo"))
        token = read_local_token(home, "token")
        core = gateway_pb2_grpc.CoreStub(connect(address, token))
        run_client(args.engine, address, token, "control", 8, 2)  # warm up: imports, pools, caches of both paths
        run_client(args.engine, address, token, "echo", 8, 2)
        load = {}
        for callers in (8, 64):
            for kind in ("echo", "control"):
                runs = [run_client(args.engine, address, token, kind, callers, args.seconds)
                        for _ in range(args.repeats)]
                load[f"{kind}_{callers}"] = {k: median([r[k] for r in runs]) for k in runs[0]}
                load[f"{kind}_{callers}"]["per_repeat_calls_per_s"] = [round(r["calls_per_s"]) for r in runs]
        small = list_ms(core, 20)
        fill(store, 1000)
        core.ListModels(gateway_pb2.ListModelsRequest(), timeout=120)  # the first look at the new entries
        large = list_ms(core, 20)
    finally:
        proc.terminate()
        proc.wait(30)
        stop_local_plugins(home)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {machine()}; load client: {args.engine}")
    print(f"{'callers':>7} {'path':>8} {'calls/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for key, r in load.items():
        kind, callers = key.rsplit("_", 1)
        print(f"{callers:>7} {kind:>8} {r['calls_per_s']:9.0f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f} {r['errors']:6.0f}"
              f"   per repeat {r['per_repeat_calls_per_s']}")
    ratio = load["control_64"]["calls_per_s"] / load["echo_64"]["calls_per_s"]
    p99 = load["control_64"]["p99_ms"]
    scale = large / small
    print(f"info/list vs echo calls/s at 64 callers: {ratio:.2f}x (target >= 0.7x) {verdict(ratio, 0.7, True)}")
    print(f"info/list p99 at 64 callers: {p99:.1f} ms (target <= 50 ms) {verdict(p99, 50, False)}")
    print(f"ListModels on 1,000 models {large:.1f} ms vs on 10 {small:.1f} ms: {scale:.2f}x (target <= 2x) "
          f"{verdict(scale, 2, False)}")
    print(f"written {save('control', {'load': load, 'list_ms': {'10': small, '1000': large}, 'ratios': {'calls_per_s_64': ratio, 'list_1000_vs_10': scale}, 'repeats': args.repeats, 'seconds': args.seconds, 'engine': args.engine})}")


if __name__ == "__main__":
    main()
