"""Hostile callers against a live gateway, for the attack tests and bench/bench_hostile.py.

Every attacker holds only the user token and its own connections: streams opened and never
read, uploads that never send, watchers of a job that reports nothing. ``Callers`` are the
other users whose latency must not suffer meanwhile.
"""

from __future__ import annotations

import threading
import time

import grpc

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.testing import ECHO_JOB
from gateway.testing import Gateway

MiB = 1 << 20
MODEL = "big"            # the model the attacker downloads and never reads
ATTACK_STREAMS = 5       # of each kind: DownloadModel and Echo.Artifact
CALLERS = 16
ROUNDS = 25              # per caller and phase: one GetStatus and one Echo each
CALL_TIMEOUT = 3.0       # s, each victim call's deadline
PHASE_BUDGET = 20.0      # s, a phase stops early past this (an unfixed gateway hangs calls)


def own_channel(gw: Gateway, *options) -> grpc.Channel:
    """A channel with its own TCP connection (grpc shares connections between equal channels)."""
    return grpc.insecure_channel(gw.address, options=[("grpc.use_local_subchannel_pool", 1), *options])


def auth(token: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {token}")] if token else []


class Attacker:
    """Opens server streams and never reads them. Its channel advertises small receive windows
    (no BDP probing, no read-ahead), so the data it does not read backs up into apt-router."""

    def __init__(self, gw: Gateway, downloads: int = ATTACK_STREAMS, artifacts: int = ATTACK_STREAMS):
        self.channel = own_channel(gw, ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 0),
                                    ("grpc.max_receive_message_length", 64 * MiB))
        md = auth(gw.settings.token)
        core = gateway_pb2_grpc.CoreStub(self.channel)
        echo = echo_pb2_grpc.EchoStub(self.channel)
        self.downloads = [core.DownloadModel(gateway_pb2.DownloadModelRequest(name=MODEL), metadata=md, timeout=60)
                          for _ in range(downloads)]
        self.artifacts = [echo.Artifact(echo_pb2.ArtifactRequest(total_bytes=256 * MiB, chunk_bytes=MiB),
                                        metadata=md, timeout=60) for _ in range(artifacts)]
        for call in self.calls:
            call.initial_metadata()  # every stream is running (headers are not messages)
        time.sleep(1.5)  # their first messages fill every window between the servers and the attacker

    @property
    def calls(self) -> list:
        return [*self.downloads, *self.artifacts]

    def leave(self) -> None:
        """Cancel every stream: a cancelled download ends in the gateway too (its handler holds
        no thread while the caller does not read; see CoreServicer._download)."""
        for call in self.calls:
            call.cancel()
        self.channel.close()


class Callers:
    """``count`` other users, each on its own connection, timing GetStatus (control plane) and
    Echo (relayed to the plugin), ``rounds`` of each per phase."""

    def __init__(self, gw: Gateway, count: int = CALLERS, rounds: int = ROUNDS):
        md = auth(gw.settings.token)
        self.rounds = rounds
        self.channels = [own_channel(gw) for _ in range(count)]
        self.calls = []
        for ch in self.channels:
            core, echo = gateway_pb2_grpc.CoreStub(ch), echo_pb2_grpc.EchoStub(ch)
            self.calls.append({
                "GetStatus": lambda core=core: core.GetStatus(gateway_pb2.GetStatusRequest(), metadata=md,
                                                              timeout=CALL_TIMEOUT),
                "Echo": lambda echo=echo: echo.Echo(echo_pb2.EchoRequest(text="hi"), metadata=md,
                                                    timeout=CALL_TIMEOUT)})
        for calls in self.calls:  # connect (and warm up) outside the timed phases
            for call in calls.values():
                call()

    def measure(self) -> tuple[dict[str, list[float]], list[str]]:
        """Every caller makes its rounds at once; the latencies (s) by method, and the errors."""
        latencies: dict[str, list[float]] = {"GetStatus": [], "Echo": []}
        failures: list[str] = []
        lock = threading.Lock()
        stop_at = time.monotonic() + PHASE_BUDGET

        def caller(calls):
            for _ in range(self.rounds):
                for name, call in calls.items():
                    if time.monotonic() > stop_at:
                        return
                    t0 = time.perf_counter()
                    try:
                        call()
                    except grpc.RpcError as exc:
                        with lock:
                            failures.append(f"{name}: {exc.code().name} {exc.details()}")
                        continue
                    with lock:
                        latencies[name].append(time.perf_counter() - t0)

        threads = [threading.Thread(target=caller, args=(calls,), name=f"caller-{i}")
                   for i, calls in enumerate(self.calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(PHASE_BUDGET + CALL_TIMEOUT + 5)
        return latencies, failures

    def close(self) -> None:
        for ch in self.channels:
            ch.close()


def p99(samples: list[float]) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(0.99 * len(s)))]


class StalledUploads:
    """``count`` uploads over ``connections`` connections that never send a message."""

    def __init__(self, gw: Gateway, count: int = 150, connections: int = 3):
        self.release = threading.Event()
        self.channels = [own_channel(gw) for _ in range(connections)]
        md = auth(gw.settings.token)

        def silent():
            self.release.wait()
            yield from ()

        self.calls = [gateway_pb2_grpc.CoreStub(self.channels[i % connections]).UploadDataset.future(
            silent(), metadata=md, timeout=120) for i in range(count)]
        time.sleep(1.0)  # every call is open at the gateway

    def leave(self) -> None:
        self.release.set()
        for call in self.calls:
            call.cancel()
        for ch in self.channels:
            ch.close()


class QuietWatchers:
    """``count`` WatchJob streams on a gateway job that reports nothing until ``leave``."""

    def __init__(self, gw: Gateway, count: int = 20):
        self.go = threading.Event()
        job = gw.app.jobs.start(ECHO_JOB, lambda ctx: self.go.wait(300) and {})
        self.channel = own_channel(gw)
        jobs = plugin_pb2_grpc.JobsStub(self.channel)
        self.calls = [jobs.WatchJob(job_pb2.WatchJobRequest(id=job.id), metadata=auth(gw.settings.token),
                                    timeout=300) for _ in range(count)]
        for call in self.calls:
            next(call)  # the first snapshot: the watch is open and waiting

    def leave(self) -> None:
        self.go.set()
        for call in self.calls:
            call.cancel()
        self.channel.close()
