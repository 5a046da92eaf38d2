"""Every public exception of the platform, in one module.

Each class carries the gRPC status code it maps to; the one interceptor in
``apt_model.runtime.interceptors`` turns them into statuses. Messages are meant for
a person: say what happened and what to do next. Wrap third-party errors with
``raise SomeError(...) from exc`` so the cause stays in the server log.
"""

from __future__ import annotations

import errno
import os

import grpc


class AptError(Exception):
    """Base of all platform errors. ``reason`` is a machine-readable UPPER_SNAKE tag (the
    ``google.rpc.ErrorInfo`` reason clients see); ``metadata`` adds its machine-readable facts
    (``ErrorInfo.metadata``: string keys and values, e.g. the job id that holds an entry)."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL
    reason: str = "INTERNAL"
    violations: tuple[tuple[str, str], ...] | list[tuple[str, str]] = ()  # fields at fault (InvalidArgument sets them)

    def __init__(self, message: str, *, reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.metadata = dict(metadata or {})
        if reason is not None:
            self.reason = reason


class InvalidArgument(AptError, ValueError):
    """``field`` (or several ``violations``: (field, description) pairs) names the request
    fields at fault by their proto names, dotted for nested fields; they are sent as
    ``google.rpc.BadRequest`` field violations so that a client can point at its input."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "INVALID_ARGUMENT"

    def __init__(self, message: str, *, field: str = "", violations: list[tuple[str, str]] | tuple = (),
                 reason: str | None = None, metadata: dict[str, str] | None = None):
        super().__init__(message, reason=reason, metadata=metadata)
        self.violations = [(field, message)] if field else list(violations)


class NotFound(AptError, LookupError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NOT_FOUND"


class AlreadyExists(AptError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "ALREADY_EXISTS"


class FailedPrecondition(AptError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "FAILED_PRECONDITION"


class Unauthenticated(AptError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "UNAUTHENTICATED"


class PermissionDenied(AptError, PermissionError):
    code = grpc.StatusCode.PERMISSION_DENIED
    reason = "PERMISSION_DENIED"


class Unavailable(AptError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "UNAVAILABLE"


class ResourceExhausted(AptError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RESOURCE_EXHAUSTED"


class DataLoss(AptError):
    code = grpc.StatusCode.DATA_LOSS
    reason = "DATA_LOSS"


class Cancelled(AptError):
    code = grpc.StatusCode.CANCELLED
    reason = "CANCELLED"


class DeadlineExceeded(AptError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "DEADLINE_EXCEEDED"


class Unimplemented(AptError, NotImplementedError):
    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "UNIMPLEMENTED"


# The errnos that mean "the disk (or the quota, or the file size limit) is full".
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


def disk_full(exc: BaseException, need: str = "") -> ResourceExhausted | None:
    """RESOURCE_EXHAUSTED for an OSError that means the disk is full, else None. The message
    names the condition, not the path (a caller must not learn the service's folders); ``need``
    says how much room the operation wants, when the caller can act on it."""
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        need = f" ({need})" if need else ""
        return ResourceExhausted(f"{os.strerror(exc.errno)} on the service's disk; free space{need} (or give the "
                                 "service a larger volume) and run it again.", reason="DISK_FULL")
    return None
