"""Forwards every ``/apt.plugins.<x>.v1.*/*`` call to an endpoint of the plugin, as raw bytes.

Messages are never re-serialised: handlers have no (de)serialisers on either side. The call
kind comes from the generated descriptors the gateway has imported (so unary calls take the
fast unary path); a method not known to the gateway is forwarded as bidi streaming, which
carries every kind. Deadlines, cancellation and metadata propagate both ways.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import threading

import grpc
from google.protobuf import descriptor_pool

from apt_model import errors
from apt_model.client import channel_options
from apt_model.runtime.interceptors import DETAILS_KEY
from apt_model.runtime.logs import request_id
from gateway.catalog import Catalog
from gateway.registry import Registry

log = logging.getLogger(__name__)

DESCRIBE_METHOD = "/apt.plugin.v1.Plugin/Describe"
_HOP_BY_HOP = {"authorization", ":authority", "user-agent", "te", "content-type", "grpc-timeout",
               "grpc-accept-encoding", "grpc-encoding", "accept-encoding"}


def load_plugin_descriptors() -> None:
    """Import every generated plugin module so their services are in the descriptor pool."""
    import apt_model.gen.apt.plugins as plugins

    for info in pkgutil.walk_packages(plugins.__path__, plugins.__name__ + "."):
        if info.name.endswith("_pb2"):
            importlib.import_module(info.name)


def remaining(context: grpc.ServicerContext) -> float | None:
    """The caller's deadline as a timeout for the upstream call (None when it set none)."""
    left = context.time_remaining()
    return None if left is None or left > 1e7 else max(left, 0.001)


def _relayable(metadata) -> list[tuple[str, str | bytes]]:
    """Metadata to pass on: not the transport's own ``grpc-*`` keys, but the error details
    (``grpc-status-details-bin``), which belong to the answer like its message."""
    return [(k, v) for k, v in (metadata or ())
            if k not in _HOP_BY_HOP and (k == DETAILS_KEY or not k.startswith("grpc-"))]


async def _relay_initial(call, context) -> None:
    # an explicit send costs a separate write (~0.15 ms here): only when there is something to relay
    initial = _relayable(await call.initial_metadata())
    if initial:
        await context.send_initial_metadata(initial)


class Router(grpc.GenericRpcHandler):
    """The gateway's generic handler; its handlers are coroutines on the asyncio server."""

    def __init__(self, catalog: Catalog, registry: Registry, internal_token: str, max_message_bytes: int):
        self.catalog = catalog
        self.registry = registry
        self.auth = ("authorization", f"Bearer {internal_token}")
        self.options = channel_options(max_message_bytes)
        self._aio_channels: dict[str, grpc.aio.Channel] = {}  # used on the server's event loop only
        self._channels: dict[str, grpc.Channel] = {}  # blocking channels for sync servicers
        self._lock = threading.Lock()
        self._pool = descriptor_pool.Default()

    def aio_channel(self, endpoint: str) -> grpc.aio.Channel:
        ch = self._aio_channels.get(endpoint)
        if ch is None:
            ch = self._aio_channels[endpoint] = grpc.aio.insecure_channel(endpoint, options=self.options)
        return ch

    def channel(self, endpoint: str) -> grpc.Channel:
        with self._lock:
            ch = self._channels.get(endpoint)
            if ch is None:
                ch = self._channels[endpoint] = grpc.insecure_channel(endpoint, options=self.options)
            return ch

    def forget(self, endpoints: list[str]) -> None:
        with self._lock:
            for e in endpoints:
                ch = self._channels.pop(e, None)
                if ch is not None:
                    ch.close()
                self._aio_channels.pop(e, None)  # closed with the loop; dropping it stops its reuse

    def _kind(self, service: str, method: str) -> tuple[bool, bool]:
        try:
            m = self._pool.FindServiceByName(service).methods_by_name[method]
            return m.client_streaming, m.server_streaming
        except KeyError:
            return True, True

    def service(self, details: grpc.HandlerCallDetails):
        full = details.method
        service, _, method = full[1:].rpartition("/")
        if full == DESCRIBE_METHOD:
            # Describe is served by every plugin: the caller names the plugin in metadata
            plugin = dict(details.invocation_metadata or ()).get("x-apt-plugin")
            kind = (False, False)
        elif full.startswith("/apt.plugins."):
            plugin = self.catalog.plugin_for_service(service)
            kind = self._kind(service, method)
        else:
            return None
        if plugin is None:
            return None  # grpc answers UNIMPLEMENTED
        call = _Forward(self, plugin, full, details.invocation_metadata)
        client_streaming, server_streaming = kind
        if not client_streaming and not server_streaming:
            return grpc.unary_unary_rpc_method_handler(call.unary_unary)
        if not client_streaming:
            return grpc.unary_stream_rpc_method_handler(call.unary_stream)
        if not server_streaming:
            return grpc.stream_unary_rpc_method_handler(call.stream_unary)
        return grpc.stream_stream_rpc_method_handler(call.stream_stream)


class _Forward:
    """One forwarded call (coroutines: cancelling the caller's task cancels the upstream call)."""

    def __init__(self, router: Router, plugin: str, method: str, metadata):
        self.router = router
        self.plugin = plugin
        self.method = method
        self.client_metadata = metadata
        self.endpoint = ""

    def _metadata(self) -> list[tuple[str, str | bytes]]:
        # built at call time: the interceptor has set this call's request id by then
        md = [*_relayable(self.client_metadata), self.router.auth]
        if not any(k == "x-request-id" for k, _ in md):
            md.append(("x-request-id", request_id.get()))
        return md

    def _channel(self) -> grpc.aio.Channel:
        self.endpoint = self.router.registry.endpoint_for(self.plugin)
        return self.router.aio_channel(self.endpoint)

    async def _fail(self, exc: grpc.aio.AioRpcError, context) -> None:
        context.set_trailing_metadata(_relayable(exc.trailing_metadata()))
        if exc.code() == grpc.StatusCode.UNAVAILABLE:
            self.router.registry.mark_unhealthy(self.plugin, self.endpoint)
            log.warning("plugin %s at %s stopped answering: %s", self.plugin, self.endpoint, exc.details())
            raise errors.Unavailable(
                f"Plugin {self.plugin!r} stopped answering ({exc.code().name}). "
                "It is marked unhealthy; see 'apt-model plugin list' and its log."
            ) from exc
        await context.abort(exc.code(), exc.details() or "")

    async def _unary_response(self, call, context):
        try:
            response = await call
            await _relay_initial(call, context)
            context.set_trailing_metadata(_relayable(await call.trailing_metadata()))
        except grpc.aio.AioRpcError as exc:
            await self._fail(exc, context)
            return None
        return response

    async def _stream_response(self, call, context):
        try:
            await _relay_initial(call, context)
            async for message in call:
                yield message
            context.set_trailing_metadata(_relayable(await call.trailing_metadata()))
        except grpc.aio.AioRpcError as exc:
            await self._fail(exc, context)

    def _call(self, kind: str, request, context):
        multicallable = getattr(self._channel(), kind)(self.method)
        return multicallable(request, timeout=remaining(context), metadata=self._metadata())

    async def unary_unary(self, request: bytes, context):
        return await self._unary_response(self._call("unary_unary", request, context), context)

    async def stream_unary(self, request_iterator, context):
        return await self._unary_response(self._call("stream_unary", request_iterator, context), context)

    async def unary_stream(self, request: bytes, context):
        async for message in self._stream_response(self._call("unary_stream", request, context), context):
            yield message

    async def stream_stream(self, request_iterator, context):
        async for message in self._stream_response(self._call("stream_stream", request_iterator, context), context):
            yield message
