"""Router overhead: unary latency/QPS and a 256 MiB stream, direct to a plugin vs through the gateway.

Direct and the gateway hit the same echo plugin process in the same run; the gateway runs as
its own process (as deployed), with its default logging and its default data plane, apt-router
(APT_ROUTER=native). A second gateway with APT_ROUTER=python (the in-process router, with its
own echo plugin) is measured in the same run for comparison. Each repeat measures every path in
turn (direct, gateway, python), so that a change in the machine's load during the run falls on
all of them alike. Targets (issue 24): at 1 caller, p50 through the gateway <= 1.1x direct and
p99 <= 1.3x direct; stream throughput through the gateway >= 0.95x direct and not below the
Python router's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from common import machine, median, percentile, save, stop_local_plugins, verdict  # noqa: E402

from apt_model.client import connect  # noqa: E402
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc  # noqa: E402
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc  # noqa: E402
from apt_model.runtime.settings import read_local_token  # noqa: E402
from gateway.deploy.base import wait_serving  # noqa: E402


def start_gateway(home: Path, port: int, router: str, router_threads: int = 0, router_bin: str = "") -> subprocess.Popen:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("APT_")},
           "APT_HOME": str(home), "APT_PLUGIN_PATH": str(ROOT / "tests" / "plugins"), "APT_ROUTER": router}
    if router_threads:
        env["APT_ROUTER_THREADS"] = str(router_threads)
    if router_bin:
        env["APT_ROUTER_BIN"] = str(Path(router_bin).resolve())
    proc = subprocess.Popen([sys.executable, "-m", "apt_model", "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=open(home / "gateway.log", "wb"))
    if not wait_serving(f"127.0.0.1:{port}", 60):
        raise SystemExit(f"gateway did not start; see {home / 'gateway.log'}")
    return proc


def unary_round(stub, callers: int, calls_each: int) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    request = echo_pb2.EchoRequest(text="x" * 64)

    def worker():
        mine = []
        for _ in range(calls_each):
            t = time.perf_counter()
            stub.Echo(request)
            mine.append(time.perf_counter() - t)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(callers)]
    start = time.perf_counter()
    [t.start() for t in threads]
    [t.join() for t in threads]
    return latencies, len(latencies) / (time.perf_counter() - start)


def stream_round(stub, total: int) -> float:
    start = time.perf_counter()
    got = 0
    for chunk in stub.Artifact(echo_pb2.ArtifactRequest(total_bytes=total, chunk_bytes=1 << 20)):
        got += len(chunk.data)
    assert got == total
    return total / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer calls and a 64 MiB stream")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--router-threads", type=int, default=0,
                    help="APT_ROUTER_THREADS for apt-router (default: apt-router's own default)")
    ap.add_argument("--router-bin", default="",
                    help="the apt-router binary to measure (APT_ROUTER_BIN; default: the gateway's own choice, "
                         "router/target/release/apt-router): compare two builds in alternating runs")
    args = ap.parse_args()
    calls, total = (200, 64 << 20) if args.quick else (1000, 256 << 20)
    home, home_py = (Path(tempfile.mkdtemp(prefix=f"apt-bench-gw-{r}-")) for r in ("native", "python"))
    port = 50000 + os.getpid() % 10000
    procs = []
    try:
        procs = [start_gateway(home, port, "native", args.router_threads, args.router_bin), start_gateway(home_py, port + 1, "python")]
        endpoints = []
        for h, p in ((home, port), (home_py, port + 1)):
            admin = connect(f"127.0.0.1:{p}", read_local_token(h, "admin_token"))
            reg = gateway_pb2_grpc.PluginRegistryStub(admin)
            endpoints.append(reg.InstallPlugin(gateway_pb2.InstallPluginRequest(name="echo")).endpoints[0])
        paths = {
            "direct": echo_pb2_grpc.EchoStub(connect(endpoints[0], read_local_token(home, "internal_token"))),
            "gateway": echo_pb2_grpc.EchoStub(connect(f"127.0.0.1:{port}", read_local_token(home, "token"))),
            "python": echo_pb2_grpc.EchoStub(connect(f"127.0.0.1:{port + 1}", read_local_token(home_py, "token"))),
        }
        for stub in paths.values():  # warm up channels and thread pools
            unary_round(stub, 4, 50)
        rows = {}
        for callers in (1, 16):
            runs = {name: ([], [], []) for name in paths}   # p50s, p99s, qpss
            for _ in range(args.repeats):
                for name, stub in paths.items():
                    lat, qps = unary_round(stub, callers, max(10, calls // callers))
                    runs[name][0].append(percentile(lat, 0.5) * 1e3)
                    runs[name][1].append(percentile(lat, 0.99) * 1e3)
                    runs[name][2].append(qps)
            for name, (p50s, p99s, qpss) in runs.items():
                rows[(callers, name)] = {"p50_ms": median(p50s), "p99_ms": median(p99s), "qps": median(qpss)}
        rates = {name: [] for name in paths}
        for _ in range(args.repeats):
            for name, stub in paths.items():
                rates[name].append(stream_round(stub, total))
        streams = {name: median(r) / 2**20 for name, r in rates.items()}
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(30)
        for h in (home, home_py):
            stop_local_plugins(h)

    print(f"machine: {machine()}, load average {os.getloadavg()[0]:.2f}")
    print("paths: direct = to the plugin; gateway = through apt-router (default); python = APT_ROUTER=python")
    print(f"{'callers':>7} {'path':>8} {'p50 ms':>8} {'p99 ms':>8} {'QPS':>8}")
    for (callers, name), r in rows.items():
        print(f"{callers:>7} {name:>8} {r['p50_ms']:8.3f} {r['p99_ms']:8.3f} {r['qps']:8.0f}")
    result = {"unary": {f"{c}_{n}": r for (c, n), r in rows.items()}, "stream_mib_s": streams, "ratios": {},
              "load_average": os.getloadavg()[0], "router_threads": args.router_threads or "default"}
    targets = {("p50", 1): 1.1, ("p99", 1): 1.3}
    for callers in (1, 16):
        for q in ("p50", "p99"):
            ratio = rows[(callers, "gateway")][f"{q}_ms"] / rows[(callers, "direct")][f"{q}_ms"]
            py = rows[(callers, "python")][f"{q}_ms"] / rows[(callers, "direct")][f"{q}_ms"]
            result["ratios"][f"{q}_{callers}"] = ratio
            result["ratios"][f"{q}_{callers}_python_router"] = py
            target = targets.get((q, callers))
            goal = f"(target <= {target}x) {verdict(ratio, target, False)}" if target else "(no target)"
            print(f"{q} gateway/direct at {callers:>2} callers: {ratio:.2f}x {goal}   [python router: {py:.2f}x]")
    ratio = streams["gateway"] / streams["direct"]
    result["ratios"]["stream"] = ratio
    result["ratios"]["stream_python_router"] = streams["python"] / streams["direct"]
    ok = "PASS" if ratio >= 0.95 and streams["gateway"] >= streams["python"] else "MISS"
    print(f"{total >> 20} MiB stream: direct {streams['direct']:.0f} MiB/s, gateway {streams['gateway']:.0f} MiB/s, "
          f"ratio {ratio:.2f}x (target >= 0.95x and >= the python router) {ok}"
          f"   [python router: {streams['python']:.0f} MiB/s, {result['ratios']['stream_python_router']:.2f}x]")
    print(f"written {save('gateway', result)}")


if __name__ == "__main__":
    main()
