"""Attack: exhaust apt-router, the gateway's public port, through the limits it sets on each
caller connection (router/src/conn.rs), holding only the user token.

* Request headers over 16 KiB (SETTINGS_MAX_HEADER_LIST_SIZE) are answered HTTP 431 by
  apt-router itself (a gRPC client reports UNKNOWN); far larger ones end that connection
  (GOAWAY); the caller's next call and other callers are served.
* A connection opening more than 256 streams at once (SETTINGS_MAX_CONCURRENT_STREAMS, raw
  HTTP/2, since grpc clients queue instead) gets the extra one refused (RST_STREAM
  REFUSED_STREAM) while its 256 stay open; other connections are served, and a freed slot
  serves a call again.
* A TLS connection that never finishes its handshake is dropped after 10 s.

Not tested here: a plaintext connection that never sends the HTTP/2 preface is closed only by
the idle timeout (300 s, then 10 s after GOAWAY), which no setting or variable shortens.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import grpc
import pytest

from apt_model.client import connect
from apt_model.gen.apt.gateway.v1 import gateway_pb2 as pb
from apt_model.gen.apt.gateway.v1 import gateway_pb2_grpc
from gateway.testing import start_gateway, stop_gateway, tls_files

from .conftest import assert_no_leak

MAX_HEADER_LIST = 16 << 10
MAX_STREAMS = 256
HANDSHAKE_TIMEOUT = 10.0  # s

DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0x0, 0x1, 0x3, 0x4, 0x7
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1
SETTINGS_MAX_CONCURRENT_STREAMS, SETTINGS_MAX_HEADER_LIST_SIZE = 0x3, 0x6
REFUSED_STREAM, CANCEL = 0x7, 0x8
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _own_channel(gw) -> grpc.Channel:
    return grpc.insecure_channel(gw.address, options=[("grpc.use_local_subchannel_pool", 1)])


def _md(gw) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {gw.settings.token}")]


def _answers(gw, channel: grpc.Channel | None = None) -> bool:
    """GetStatus answers on ``channel`` (else on a new connection)."""
    with _own_channel(gw) if channel is None else contextlib.nullcontext(channel) as ch:
        gateway_pb2_grpc.CoreStub(ch).GetStatus(pb.GetStatusRequest(), metadata=_md(gw), timeout=10)
    return True


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("limits") / "home")
    yield gw
    stop_gateway(gw)


def test_oversized_request_headers_are_refused_and_the_router_keeps_serving(gw):
    router = gw.app.dataplane._proc
    channel = _own_channel(gw)
    core = gateway_pb2_grpc.CoreStub(channel)
    seen = []
    try:
        # under the limit, and under the control plane's own default of 8 KiB: served
        core.GetStatus(pb.GetStatusRequest(), metadata=[*_md(gw), ("x-pad", "a" * (6 << 10))], timeout=10)
        oversized = {"one-value": [("x-pad", "a" * (MAX_HEADER_LIST + 1024))],
                     "many-fields": [(f"x-pad-{i}", "v" * 100) for i in range(MAX_HEADER_LIST // 100)]}
        for what, extra in oversized.items():
            with pytest.raises(grpc.RpcError) as err:
                core.GetStatus(pb.GetStatusRequest(), metadata=[*_md(gw), *extra], timeout=10)
            assert err.value.code() == grpc.StatusCode.UNKNOWN and "431" in err.value.details(), (
                what, err.value.code(), err.value.details())
            seen.append(err.value.details())
            assert _answers(gw, channel), "the same connection no longer serves"
        # far past the limit: apt-router ends the connection instead of decoding on (ENHANCE_YOUR_CALM)
        with pytest.raises(grpc.RpcError) as err:
            core.GetStatus(pb.GetStatusRequest(), metadata=[*_md(gw), ("x-pad", "a" * (1 << 20))], timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE and "GOAWAY" in err.value.details(), (
            err.value.code(), err.value.details())
        seen.append(err.value.details())
        assert _answers(gw, channel), "the caller could not reconnect"
        assert _answers(gw)
    finally:
        channel.close()
    assert router.poll() is None and gw.app.dataplane._proc is router, "apt-router died"
    assert_no_leak(gw, *seen)


class _Conn:
    """A raw HTTP/2 connection: it opens streams without the limits a grpc client keeps to."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self.resets: list[int] = []  # streams apt-router reset, other than the one awaited
        self.sock.sendall(PREFACE + _frame(SETTINGS, 0, 0, b""))
        self.settings = {}
        deadline = time.monotonic() + 10
        while not self.settings:
            kind, flags, _, payload = self.next_frame(deadline)
            if kind == SETTINGS and not flags & ACK:
                self.settings = {int.from_bytes(payload[i:i + 2], "big"): int.from_bytes(payload[i + 2:i + 6], "big")
                                 for i in range(0, len(payload), 6)}
        self.sock.sendall(_frame(SETTINGS, ACK, 0, b""))

    def next_frame(self, deadline: float) -> tuple[int, int, int, bytes] | None:
        """The next frame, or None when none came before ``deadline`` (monotonic seconds)."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                return None
            assert data, "apt-router closed the connection"
            self.buf += data
        size = int.from_bytes(self.buf[:3], "big")
        kind, flags, stream = self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + size], self.buf[9 + size:]
        return kind, flags, stream, payload

    def request(self, stream: int, path: str, token: str, body: bytes | None) -> bytes:
        """HEADERS for a gRPC call; with ``body`` (one message) the request ends, else it stays open."""
        block = b"".join(_field(n, v) for n, v in [
            (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"), ("te", "trailers"), ("authorization", f"Bearer {token}")])
        out = _frame(HEADERS, END_HEADERS, stream, block)
        if body is not None:
            out += _frame(DATA, END_STREAM, stream, b"\0" + len(body).to_bytes(4, "big") + body)
        return out

    def answer(self, stream: int, seconds: float) -> tuple[int, bytes] | None:
        """The first HEADERS or RST_STREAM on ``stream`` (its type and payload); GOAWAY fails."""
        deadline = time.monotonic() + seconds
        while (f := self.next_frame(deadline)) is not None:
            kind, _, sid, payload = f
            assert kind != GOAWAY, f"apt-router sent GOAWAY: {payload[8:]!r}"
            if kind == RST_STREAM and sid != stream:
                self.resets.append(sid)
            if sid == stream and kind in (HEADERS, RST_STREAM):
                return kind, payload
        return None

    def close(self) -> None:
        self.sock.close()


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix (RFC 7541 5.1), Huffman bit clear."""
    if value < 127:
        return bytes([value])
    out, value = [127], value - 127
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    return bytes([*out, value])


def _field(name: str, value: str) -> bytes:
    """A literal header field without indexing, new name (RFC 7541 6.2.2)."""
    n, v = name.encode(), value.encode()
    return b"\x00" + _hpack_int(len(n)) + n + _hpack_int(len(v)) + v


UPLOAD = "/apt.gateway.v1.Core/UploadDataset"  # held open: the gateway waits for its header message
GET_STATUS = "/apt.gateway.v1.Core/GetStatus"


def test_streams_beyond_the_limit_on_one_connection_are_refused(gw):
    conn = _Conn(gw.app.port)
    token = gw.settings.token
    try:
        assert conn.settings.get(SETTINGS_MAX_CONCURRENT_STREAMS) == MAX_STREAMS, conn.settings
        assert conn.settings.get(SETTINGS_MAX_HEADER_LIST_SIZE) == MAX_HEADER_LIST, conn.settings
        held = [2 * i + 1 for i in range(MAX_STREAMS)]
        extra = held[-1] + 2
        conn.sock.sendall(b"".join(conn.request(s, UPLOAD, token, None) for s in held)
                          + conn.request(extra, GET_STATUS, token, b""))
        answer = conn.answer(extra, seconds=10)
        assert answer is not None, "the stream past the limit was neither answered nor refused"
        kind, payload = answer
        assert kind == RST_STREAM and int.from_bytes(payload, "big") == REFUSED_STREAM, (kind, payload)
        assert conn.answer(0, seconds=1) is None and not set(conn.resets) & set(held), conn.resets
        assert _answers(gw), "another connection was not served while this one held its streams"

        conn.sock.sendall(_frame(RST_STREAM, 0, held[0], CANCEL.to_bytes(4, "big")))
        stream, deadline = extra + 2, time.monotonic() + 10
        while True:  # the slot frees once apt-router has dropped the cancelled call
            conn.sock.sendall(conn.request(stream, GET_STATUS, token, b""))
            answer = conn.answer(stream, seconds=5)
            assert answer is not None, f"stream {stream} was neither answered nor refused"
            if answer[0] == HEADERS:
                break
            assert time.monotonic() < deadline, "a freed slot did not serve a new call"
            time.sleep(0.1)
            stream += 2
        assert not set(conn.resets) & set(held[1:]), f"held streams were reset: {conn.resets}"
    finally:
        conn.close()
    assert _answers(gw)


@pytest.fixture(scope="module")
def tls_gw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca, cert, key = tls_files(folder)
    gw = start_gateway(folder / "home", tls_cert=cert, tls_key=key)
    gw.ca = ca
    yield gw
    stop_gateway(gw)


def test_a_tls_handshake_never_finished_is_dropped(tls_gw):
    """Two connections hold the TLS port, one silent and one that stops mid-ClientHello: both
    are closed after the handshake timeout while a real TLS caller is served."""
    gw = tls_gw
    closed: dict[str, float] = {}

    def hold(what: str, first: bytes) -> None:
        with socket.create_connection(("127.0.0.1", gw.app.port), timeout=HANDSHAKE_TIMEOUT + 5) as s:
            t0 = time.monotonic()
            s.sendall(first)
            try:
                while s.recv(4096):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                return
            closed[what] = time.monotonic() - t0

    partial_hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xFC, 0x03, 0x03])  # promises 512 bytes
    threads = [threading.Thread(target=hold, args=a) for a in (("silent", b""), ("partial-hello", partial_hello))]
    for t in threads:
        t.start()
    with connect(gw.address, gw.settings.token, ca_cert=gw.ca) as secure:
        gateway_pb2_grpc.CoreStub(secure).GetStatus(pb.GetStatusRequest(), timeout=10)
    for t in threads:
        t.join(HANDSHAKE_TIMEOUT + 10)
    assert set(closed) == {"silent", "partial-hello"}, f"still open after {HANDSHAKE_TIMEOUT + 5:.0f} s: {closed}"
    for what, took in closed.items():
        assert HANDSHAKE_TIMEOUT - 1 <= took <= HANDSHAKE_TIMEOUT + 3, f"{what}: closed after {took:.1f} s"
    assert gw.app.dataplane._proc.poll() is None
