"""Client side: channels that carry the bearer token, to the gateway or to a plugin."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

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


@dataclass(frozen=True)
class ErrorDetails:
    """What an error answer says beyond its code and message (``google.rpc.Status`` details)."""

    reason: str = ""                       # ErrorInfo.reason, e.g. "ENTRY_IN_USE"
    domain: str = ""                       # ErrorInfo.domain: "apt-platform" for the platform's own errors
    metadata: dict[str, str] = field(default_factory=dict)   # ErrorInfo.metadata
    request_id: str = ""                   # RequestInfo.request_id: the one the server logged
    fields: tuple[tuple[str, str], ...] = ()  # BadRequest: (field, description) per violation


def error_details(exc: grpc.RpcError) -> ErrorDetails:
    """Decode the standard details of a failed call (an empty ErrorDetails when it has none)."""
    try:
        status = rpc_status.from_call(exc)
    except ValueError:   # details whose code/message disagree with the call's: not ours to trust
        status = None
    out: dict = {}
    for any_ in status.details if status is not None else ():
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            out.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif any_.Is(error_details_pb2.RequestInfo.DESCRIPTOR):
            info = error_details_pb2.RequestInfo()
            any_.Unpack(info)
            out["request_id"] = info.request_id
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            info = error_details_pb2.BadRequest()
            any_.Unpack(info)
            out["fields"] = tuple((v.field, v.description) for v in info.field_violations)
    return ErrorDetails(**out)
