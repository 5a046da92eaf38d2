"""Client side: channels that carry the bearer token, to the gateway or to a plugin."""

from __future__ import annotations

import collections
from pathlib import Path

import grpc

MiB = 1 << 20


class _CallDetails(
    collections.namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                            "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


class _TokenInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                        grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call that does not carry one."""

    def __init__(self, token: str):
        self.header = ("authorization", f"Bearer {token}")

    def _details(self, d):
        metadata = list(d.metadata or [])
        if not any(k == "authorization" for k, _ in metadata):
            metadata.append(self.header)
        return _CallDetails(d.method, d.timeout, metadata, d.credentials,
                            getattr(d, "wait_for_ready", None), getattr(d, "compression", None))

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._details(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._details(details), request_iterator)


def channel_options(max_message_bytes: int = 64 * MiB) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes)]


def connect(address: str, token: str = "", *, ca_cert: str = "", max_message_bytes: int = 64 * MiB
            ) -> grpc.Channel:
    """A channel to ``address`` (TLS when ``ca_cert`` is given) sending ``token`` on every call."""
    options = channel_options(max_message_bytes)
    if ca_cert:
        creds = grpc.ssl_channel_credentials(root_certificates=Path(ca_cert).read_bytes())
        channel = grpc.secure_channel(address, creds, options=options)
    else:
        channel = grpc.insecure_channel(address, options=options)
    return grpc.intercept_channel(channel, _TokenInterceptor(token)) if token else channel
