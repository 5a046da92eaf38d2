"""The one server interceptor: request ids, auth, access logs and exception -> status mapping.

Every handler of the server (typed servicers and the gateway's raw-bytes router alike) is
wrapped here. Auth is decided once per call, on the metadata, before the handler is chosen:
a refused call gets a handler of the same call kind that fails at once without reading or
parsing the request, so every kind (unary, server-, client- and bidi streaming) is refused the
same way. Only health is open; reflection needs a token like everything else.

Typed errors from ``apt_model.errors`` become their status code with their message and the
standard ``google.rpc.Status`` details (``ErrorInfo``, ``RequestInfo``, ``BadRequest``); an
upstream ``grpc.RpcError`` (a plugin's answer relayed by the gateway) keeps its code and
details; anything else is logged with its traceback on the server and reaches the client as
INTERNAL with the request id, never with the traceback.
"""

from __future__ import annotations

import asyncio
import contextvars
import hmac
import inspect
import logging
import time
import uuid
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2, status_pb2

from apt_model import errors
from apt_model.runtime import validation
from apt_model.runtime.logs import request_id

log = logging.getLogger("apt.access")

HEALTH_PREFIX = "/grpc.health.v1.Health/"
REASON_KEY = "apt-error-reason"
REQUEST_ID_KEY = "x-request-id"
DETAILS_KEY = "grpc-status-details-bin"   # google.rpc.Status, as grpcio-status and every gRPC library read it
ERROR_DOMAIN = "apt-platform"             # google.rpc.ErrorInfo.domain of every error the platform raises

# Set by the interceptor at the start of every call, before its handler runs.
_caller_is_admin: contextvars.ContextVar[bool] = contextvars.ContextVar("apt_caller_is_admin", default=False)


def caller_is_admin() -> bool:
    """Whether the current call carries an admin token (what a servicer may show depends on it).

    Read it in unary handlers: a sync streaming handler's later steps may run on another thread.
    """
    return _caller_is_admin.get()


@dataclass(frozen=True)
class AuthPolicy:
    """Which bearer token each method needs. Empty token sets disable that check."""

    user_tokens: tuple[str, ...] = ()       # any of these may call ordinary methods
    admin_tokens: tuple[str, ...] = ()      # these may call everything, incl. admin methods
    admin_methods: frozenset[str] = field(default_factory=frozenset)
    audience: str = "gateway"               # named in error messages

    def check(self, method: str, metadata: dict[str, str]) -> bool:
        """Raise UNAUTHENTICATED / PERMISSION_DENIED, or return whether the caller is an admin.

        Messages never repeat the token that was sent.
        """
        if method.startswith(HEALTH_PREFIX):  # probes (kubelet, the gateway's monitor) carry no token
            return False
        if not self.user_tokens and not self.admin_tokens:
            return True  # auth off: every caller may do everything
        header = metadata.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            raise errors.Unauthenticated(self._missing_message())
        is_admin = any(hmac.compare_digest(token, t) for t in self.admin_tokens)
        if method in self.admin_methods:
            if is_admin:
                return True
            if any(hmac.compare_digest(token, t) for t in self.user_tokens):
                raise errors.PermissionDenied(
                    "This call needs the admin token: set APT_ADMIN_TOKEN or pass --token with the "
                    "admin token (local runs: the file admin_token in APT_SECRETS_DIR, by default "
                    "the folder .<APT_HOME name>-secrets beside APT_HOME)."
                )
            raise errors.Unauthenticated("The token is not valid for this gateway.")
        if is_admin or any(hmac.compare_digest(token, t) for t in self.user_tokens):
            return is_admin
        raise errors.Unauthenticated(f"The token is not valid for this {self.audience}.")

    def _missing_message(self) -> str:
        if self.audience == "plugin":
            return "Plugins accept calls from the gateway only (missing internal token)."
        return ("No token: set APT_TOKEN or pass --token (local runs: the file token in APT_SECRETS_DIR, by "
                "default the folder .<APT_HOME name>-secrets beside APT_HOME).")


def status_with_details(code: grpc.StatusCode, message: str, reason: str, metadata: dict[str, str] | None = None,
                  violations=()) -> status_pb2.Status:
    """The ``google.rpc.Status`` of an error answer: ``ErrorInfo`` (reason, domain, metadata),
    ``RequestInfo`` (this call's request id) and, for fields at fault, ``BadRequest``."""
    status = status_pb2.Status(code=code.value[0], message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN,
                                                          metadata=metadata or {}))
    status.details.add().Pack(error_details_pb2.RequestInfo(request_id=request_id.get()))
    if violations:
        status.details.add().Pack(error_details_pb2.BadRequest(field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=why) for f, why in violations]))
    return status


def _set_error_trailers(context, status: status_pb2.Status, reason: str) -> None:
    context.set_trailing_metadata(((REASON_KEY, reason), (REQUEST_ID_KEY, request_id.get()),
                                   (DETAILS_KEY, status.SerializeToString())))


def _status_for(context, exc: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The status ``exc`` maps to; sets the trailing metadata (standard details and the two
    plain trailers) of typed and unknown errors, logs unknown ones."""
    if isinstance(exc, errors.AptError):
        status = status_with_details(exc.code, exc.message, exc.reason, exc.metadata, exc.violations)
        _set_error_trailers(context, status, exc.reason)
        return exc.code, exc.message
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code(), exc.details() or ""
    log.error("unhandled error in %s", method, exc_info=exc, extra={"method": method})
    message = f"Internal error ({type(exc).__name__}). Request id {request_id.get()}; the service log has the details."
    _set_error_trailers(context, status_with_details(grpc.StatusCode.INTERNAL, message, "INTERNAL"), "INTERNAL")
    return grpc.StatusCode.INTERNAL, message


def _is_abort(exc: BaseException, context) -> bool:
    # context.abort() raises (a bare Exception in the sync server, AbortError in asyncio)
    # after recording the status: let it through untouched.
    if isinstance(exc, grpc.aio.AbortError):
        return True
    code = context.code() if hasattr(context, "code") else None
    return type(exc) is Exception and code not in (None, grpc.StatusCode.OK)


class _CallScope:
    """What every call gets around its behaviour, sync or async: request id and caller role
    (set on entry), the access log line (on exit) and the one mapping point of its errors.

    ``passes`` are the exceptions that end a call without being an error of it: a stream the
    caller closed (GeneratorExit), a cancelled coroutine (CancelledError).
    """

    def __init__(self, method: str, metadata: dict[str, str], admin: bool, context,
                 passes: tuple[type[BaseException], ...]):
        self._method, self._metadata, self._admin, self._context = method, metadata, admin, context
        self._passes = passes

    def __enter__(self) -> None:
        self._token, self._start = _begin(self._metadata, self._admin)

    async def __aenter__(self) -> None:
        self.__enter__()

    def _maps(self, exc: BaseException | None) -> bool:
        return exc is not None and not isinstance(exc, self._passes) and not _is_abort(exc, self._context)

    def _code(self, exc: BaseException | None) -> grpc.StatusCode | None:
        """The status for the access log when the call's context cannot tell it (the asyncio
        server's context of a sync handler has no ``code()``): a pass is the caller leaving."""
        return grpc.StatusCode.CANCELLED if isinstance(exc, self._passes) else None

    def __exit__(self, _type, exc: BaseException | None, _tb) -> None:
        code = self._code(exc)
        try:
            if self._maps(exc):
                code, message = _status_for(self._context, exc, self._method)
                self._context.abort(code, message)  # raises
        finally:
            _end(self._token, self._method, self._context, self._start, code)

    async def __aexit__(self, _type, exc: BaseException | None, _tb) -> None:
        code = self._code(exc)
        try:
            if self._maps(exc):
                code, message = _status_for(self._context, exc, self._method)
                await self._context.abort(code, message)  # raises
        finally:
            _end(self._token, self._method, self._context, self._start, code)


def wrap_handler(handler, method: str, metadata: dict[str, str], admin: bool):
    """The same handler with request id, caller role, access log and error mapping around it
    (auth is decided before, in ``_intercept``; the request's field rules are checked first).

    Works for sync behaviours (sync server, or asyncio server's migration thread pool) and
    for async ones (coroutines and async generators on the asyncio server): the four shapes
    differ only in how they call the behaviour; ``_CallScope`` does the rest.
    """

    def scope(context, *passes: type[BaseException]) -> _CallScope:
        return _CallScope(method, metadata, admin, context, passes)

    def wrap(call, streaming: bool):
        if inspect.isasyncgenfunction(call):
            async def behaviour(request, context):
                async with scope(context, asyncio.CancelledError, GeneratorExit):
                    validation.check(request)
                    async for item in call(request, context):
                        yield item
        elif inspect.iscoroutinefunction(call):
            async def behaviour(request, context):
                async with scope(context, asyncio.CancelledError):
                    validation.check(request)
                    return await call(request, context)
        elif streaming:
            def behaviour(request, context):
                with scope(context, GeneratorExit):
                    validation.check(request)
                    yield from call(request, context)
        else:
            def behaviour(request, context):
                with scope(context):
                    validation.check(request)
                    return call(request, context)
        return behaviour

    des, ser = handler.request_deserializer, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(wrap(handler.unary_unary, False), des, ser)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(wrap(handler.unary_stream, True), des, ser)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(wrap(handler.stream_unary, False), des, ser)
    return grpc.stream_stream_rpc_method_handler(wrap(handler.stream_stream, True), des, ser)


def _refusal(handler, exc: errors.AptError, asynchronous: bool):
    """A handler of ``handler``'s call kind that fails with ``exc`` before reading the request:
    no deserialiser, so a refused caller's bytes are never parsed."""
    if asynchronous:  # on the asyncio server's event loop, not its thread pool
        async def refuse(request, context):
            raise exc

        async def refuse_stream(request, context):
            raise exc
            yield  # unreachable: makes this an async generator, as a streaming handler is
    else:
        def refuse(request, context):
            raise exc

        def refuse_stream(request, context):
            raise exc
            yield  # unreachable: makes this a generator, as a streaming handler is
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse_stream)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse)
    return grpc.stream_stream_rpc_method_handler(refuse_stream)


def _intercept(handler, details: grpc.HandlerCallDetails, policy: AuthPolicy, asynchronous: bool):
    """Auth for one call, on its metadata alone, for every call kind alike."""
    if handler is None:
        return None  # grpc answers UNIMPLEMENTED
    metadata = _metadata_of(details)
    try:
        admin = policy.check(details.method, metadata)
    except errors.AptError as exc:
        return wrap_handler(_refusal(handler, exc, asynchronous), details.method, metadata, False)
    return wrap_handler(handler, details.method, metadata, admin)


def _begin(metadata: dict[str, str], admin: bool):
    _caller_is_admin.set(admin)
    return request_id.set(metadata.get(REQUEST_ID_KEY) or uuid.uuid4().hex[:12]), time.perf_counter()


def _end(token, method: str, context, start: float, code: grpc.StatusCode | None = None) -> None:
    """The access log line; ``code`` is the status the call ended with when its scope knows it
    (an error it mapped, a caller that left), else the context's."""
    if code is None:
        try:
            code = context.code() if hasattr(context, "code") else None
        except (AttributeError, NotImplementedError):
            code = None
    name = getattr(code or grpc.StatusCode.OK, "name", str(code))
    log.info("%s %s", method, name,
             extra={"method": method, "code": name, "duration_ms": round((time.perf_counter() - start) * 1000, 2)})
    try:
        request_id.reset(token)
    except ValueError:  # reset from another context (generator resumed elsewhere)
        pass


def _metadata_of(details) -> dict[str, str]:
    return {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}


class ServiceInterceptor(grpc.ServerInterceptor):
    """For the thread-pool server (plugins)."""

    def __init__(self, policy: AuthPolicy):
        self.policy = policy

    def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        return _intercept(continuation(details), details, self.policy, asynchronous=False)


class AsyncServiceInterceptor(grpc.aio.ServerInterceptor):
    """For the asyncio server (the gateway); sync servicers still run in its thread pool."""

    def __init__(self, policy: AuthPolicy):
        self.policy = policy

    async def intercept_service(self, continuation, details: grpc.HandlerCallDetails):
        return _intercept(await continuation(details), details, self.policy, asynchronous=True)
