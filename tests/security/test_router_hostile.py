"""Attack: hurt other callers through apt-router, the gateway's public port, holding only the
user token (issue 15, item 4).

* Streams opened and never read (DownloadModel through the control plane, Echo.Artifact
  straight to a plugin) must not slow anyone else down: 16 other callers' p99 latency stays
  within 1.5x of their p99 measured without the attacker in the same test.
* A `:path` that is not `/<package>.<Service>/<Method>` gets UNIMPLEMENTED, and apt-router
  keeps serving.
* SIGTERM ends apt-router within its grace period even while such streams are open.

Everything runs as real processes on 127.0.0.1: a gateway in this process with its apt-router
child and the echo test plugin as another child.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import grpc
import pytest

from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from gateway.hostile import ATTACK_STREAMS, CALLERS, MODEL, ROUNDS, Attacker, Callers, MiB, auth, own_channel, p99
from gateway.testing import start_gateway, stop_gateway

MODEL_BYTES = 16 * MiB   # per stream, more than apt-router's 8 MiB upstream stream window before the fix
GRACE = 2.0              # s, APT_GRACE_SECONDS of the gateway under test
# A 2-core machine shared with other jobs: a p99 is allowed 1.5x its unloaded value or
# +50 ms, whichever is larger, so that scheduling noise alone does not fail the test. The
# failure this guards against is calls hanging until their deadline (CALL_TIMEOUT).
RATIO, FLOOR = 1.5, 0.050


def _gateway(home, with_model: bool):
    gw = start_gateway(home, grace_seconds=GRACE)
    try:
        gw.app.registry.install("echo")
        if with_model:
            with gw.app.store.create("models", MODEL, operation="test") as folder:
                (folder / "weights.bin").write_bytes(os.urandom(MODEL_BYTES))
    except BaseException:
        stop_gateway(gw)
        raise
    return gw


@pytest.fixture(scope="module")
def hostile_gateway(tmp_path_factory):
    """A gateway (native router) with the echo plugin and a 16 MiB model to download."""
    gw = _gateway(tmp_path_factory.mktemp("hostile") / "home", with_model=True)
    yield gw
    stop_gateway(gw)


@pytest.fixture
def echo_gateway(tmp_path):
    """A gateway of its own with the echo plugin (for a test that ends its router)."""
    gw = _gateway(tmp_path / "home", with_model=False)
    yield gw
    stop_gateway(gw)


def test_unread_streams_do_not_slow_other_callers(hostile_gateway):
    gw = hostile_gateway
    callers = Callers(gw)
    try:
        base, failures = callers.measure()
        assert not failures, f"calls failed before any attack: {failures[:3]}"
        attacker = Attacker(gw)
        try:
            loaded, failures = callers.measure()
            assert all(not c.done() for c in attacker.calls), "the attacker's streams ended: nothing was held"
        finally:
            attacker.leave()
    finally:
        callers.close()
    assert _threads_waiting_on_a_write(seconds=5) == 0, "cancelled downloads left gateway threads blocked"

    report = {m: (round(p99(base[m]) * 1000, 1), round(p99(loaded[m]) * 1000, 1) if loaded[m] else None)
              for m in base}
    print(f"p99 ms (unloaded, with {2 * ATTACK_STREAMS} unread streams open): {report}")
    assert not failures, f"{len(failures)} calls failed while the attacker held its streams: {failures[:3]}"
    for method, samples in loaded.items():
        assert len(samples) == CALLERS * ROUNDS, f"{method}: only {len(samples)} calls finished in time"
        limit = max(RATIO * p99(base[method]), p99(base[method]) + FLOOR)
        assert p99(samples) <= limit, (
            f"{method} p99 {p99(samples) * 1000:.1f} ms with unread streams open, over {limit * 1000:.1f} ms "
            f"(unloaded p99 {p99(base[method]) * 1000:.1f} ms)")


def _threads_waiting_on_a_write(seconds: float) -> int:
    """Threads of this process (the gateway runs in it) still parked in a future's result():
    how grpc.aio leaves a sync streaming handler whose caller stopped reading. Polled for up
    to ``seconds`` while cancelled calls wind down."""
    deadline = time.monotonic() + seconds
    while True:
        parked = sum(1 for frame in sys._current_frames().values()
                     if frame.f_code.co_name in ("wait", "acquire") and _in_future_result(frame))
        if parked == 0 or time.monotonic() > deadline:
            return parked
        time.sleep(0.2)


def _in_future_result(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "result" and frame.f_code.co_filename.endswith("concurrent/futures/_base.py"):
            return True
        frame = frame.f_back
    return False


MALFORMED_PATHS = ["/apt.plugins.x", "/apt.plugins.", "/", "//", "/apt.plugins.echo.v1.Echo",
                   "/apt.plugins.echo.v1.Echo/", "/apt.plugins.echo.v1.Echo/Echo/extra",
                   "/apt.plugins..v1.Echo/Echo", "/apt.plugins.echo.v1.Echo/Echo%2F", "/apt.plugins.\u00e9cho.v1.Echo/Echo"]
# Not URIs at all (a space, bytes that are not UTF-8): apt-router's HTTP/2 layer (h2) refuses them
# before its code sees the call, with a stream reset or, for a header that is not UTF-8, by
# closing that connection (GOAWAY); either way the caller gets no gRPC status.
NOT_URIS = [b"/not a path", b"/apt.plugins.\xff\xfe/\x80"]


@pytest.mark.parametrize("with_token", [True, False], ids=["user-token", "no-token"])
def test_malformed_paths_are_unimplemented_and_the_router_keeps_serving(hostile_gateway, with_token):
    gw = hostile_gateway
    router = gw.app.dataplane._proc
    md = auth(gw.settings.token if with_token else "")
    with own_channel(gw) as ch:
        for path in MALFORMED_PATHS:
            with pytest.raises(grpc.RpcError) as err:
                ch.unary_unary(path)(b"", metadata=md, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED, (path, err.value.code(), err.value.details())
    for path in NOT_URIS:
        assert _raw_request(gw.app.port, path) in (RST_STREAM, GOAWAY), path
    assert router.poll() is None and gw.app.dataplane._proc is router, "apt-router died"
    with own_channel(gw) as ch:
        reply = echo_pb2_grpc.EchoStub(ch).Echo(echo_pb2.EchoRequest(text="still here"),
                                                metadata=auth(gw.settings.token), timeout=10)
    assert reply.text == "still here"


HEADERS, RST_STREAM, GOAWAY = 0x1, 0x3, 0x7


def _raw_request(port: int, path: bytes) -> int:
    """Send one HTTP/2 request with the given raw `:path` (grpc clients only send valid ones)
    and return the type of the frame that answers it: HEADERS, RST_STREAM or GOAWAY."""

    def frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload

    def field(name: bytes, value: bytes) -> bytes:  # HPACK literal, not indexed, no Huffman
        assert len(name) < 127 and len(value) < 127
        return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value

    block = b"".join(field(n, v) for n, v in [(b":method", b"POST"), (b":scheme", b"http"), (b":path", path),
                                                  (b":authority", b"127.0.0.1"),
                                                  (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(0x4, 0, 0, b"")
                  + frame(HEADERS, 0x4 | 0x1, 1, block))  # END_HEADERS | END_STREAM
        buf = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                size, kind, stream = int.from_bytes(buf[:3], "big"), buf[3], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                buf = buf[9 + size:]
                if kind == GOAWAY or (stream == 1 and kind in (HEADERS, RST_STREAM)):
                    return kind
            data = s.recv(65536)
            if not data:
                break
            buf += data
    raise AssertionError("apt-router neither answered nor refused the request")


def test_sigterm_ends_the_router_within_grace_while_streams_are_unread(echo_gateway):
    gw = echo_gateway
    plane = gw.app.dataplane
    router = plane._proc
    attacker = Attacker(gw, downloads=0)  # plugin streams: the router's own shutdown
    try:
        plane._stopping.set()  # the gateway must not restart it: this exit is on purpose
        t0 = time.monotonic()
        router.send_signal(signal.SIGTERM)
        try:
            code = router.wait(GRACE + 5)
        except subprocess.TimeoutExpired:
            router.kill()
            raise AssertionError(f"apt-router still running {GRACE + 5:.0f} s after SIGTERM (grace {GRACE} s)")
        took = time.monotonic() - t0
    finally:
        for call in attacker.calls:
            call.cancel()
        attacker.channel.close()
    assert code == 0
    assert took <= GRACE + 1.5, f"apt-router took {took:.1f} s to exit after SIGTERM (grace {GRACE} s)"


def test_sigterm_ends_the_gateway_process_within_grace_while_downloads_are_unread(tmp_path):
    """The whole gateway (control plane, apt-router, a plugin) as a user runs it: SIGTERM with
    callers that opened downloads and never read them ends it within the grace period. (Before,
    each unread DownloadModel kept a control-plane thread blocked for good and the process
    never exited.)"""
    from apt_model.runtime.settings import read_local_token
    from apt_model.store import Store
    from gateway.testing import wait_answering

    home = tmp_path / "home"
    with Store(home).create("models", MODEL, operation="test") as folder:
        (folder / "weights.bin").write_bytes(os.urandom(MODEL_BYTES))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("APT_")}
    env.update(APT_HOME=str(home), APT_GRACE_SECONDS=str(GRACE), APT_LOG_JSON="0")
    proc = subprocess.Popen([sys.executable, "-m", "apt_model", "gateway", "serve", "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not read_local_token(home) and time.monotonic() < deadline:
            time.sleep(0.1)
        token = read_local_token(home)
        assert wait_answering(f"127.0.0.1:{port}", token, timeout=60), "the gateway did not start"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 0), ("grpc.max_receive_message_length", 64 * MiB)])
        core = gateway_pb2_grpc.CoreStub(channel)
        calls = [core.DownloadModel(gateway_pb2.DownloadModelRequest(name=MODEL), metadata=auth(token), timeout=60)
                 for _ in range(ATTACK_STREAMS)]
        for call in calls:
            call.initial_metadata()
        time.sleep(1.5)  # every window between the gateway and this caller is full
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(GRACE + 10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the gateway still runs {GRACE + 10:.0f} s after SIGTERM (grace {GRACE} s)")
        took = time.monotonic() - t0
        channel.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    # the grace, then apt-router and the plugin stopping: 4.2 s once on a 2-core machine while the
    # images built beside the tests (a +2 s bound failed there); unread streams held it for good
    assert took <= GRACE + 4.0, f"the gateway took {took:.1f} s to exit after SIGTERM (grace {GRACE} s)"
