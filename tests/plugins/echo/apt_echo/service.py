"""The echo servicer: one method per gRPC call kind, plus failure injection for tests."""

from __future__ import annotations

import os
import time

from apt_model import errors
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2, echo_pb2_grpc
from apt_model.runtime.jobs import JobManager
from apt_model.runtime.jobs_grpc import job_to_proto

_PASSED_METADATA = ("x-request-id", "x-test", "x-test-bin")
START_ECHO = "/apt.plugins.echo.v1.Echo/StartEcho"


def _metadata(context) -> dict[str, str]:
    return {k: v for k, v in context.invocation_metadata() if k in _PASSED_METADATA and isinstance(v, str)}


def _sleep(seconds: float, context) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not context.is_active():
            raise errors.Cancelled("The caller went away.")
        time.sleep(0.01)


def echo_job(request, ctx) -> dict:
    """The StartEcho job: ``steps`` progress reports, then the text back."""
    for i in range(request.steps):
        ctx.check_cancelled()
        time.sleep(request.interval_seconds)
        ctx.report(progress=(i + 1) / request.steps, stage="echo", message=f"step {i + 1}", step=i + 1)
    if request.warning:
        ctx.warn(request.warning)
    result = {"text": request.text, "steps": request.steps, "length": len(request.text)}
    if request.undeclared_key:
        result[request.undeclared_key] = True
    return result


class EchoServicer(echo_pb2_grpc.EchoServicer):
    def __init__(self, jobs: JobManager):
        self.jobs = jobs
        self.cancelled_calls = 0

    def StartEcho(self, request, context):
        return job_to_proto(self.jobs.start(START_ECHO, lambda ctx: echo_job(request, ctx)))

    def Echo(self, request, context):
        if request.crash:
            os._exit(3)
        if request.sleep_seconds:
            try:
                _sleep(request.sleep_seconds, context)
            except errors.Cancelled:
                self.cancelled_calls += 1
                raise
        context.set_trailing_metadata((("x-echo-trailer", "yes"),))
        return echo_pb2.EchoResponse(text=request.text, metadata=_metadata(context))

    def Count(self, request, context):
        try:
            for i in range(request.n):
                if request.crash_after and i == request.crash_after:
                    os._exit(4)
                if request.interval_seconds:
                    _sleep(request.interval_seconds, context)
                yield echo_pb2.EchoResponse(text=str(i), index=i)
        except (errors.Cancelled, GeneratorExit):
            # cancelled while sleeping, or closed by the server while waiting at a yield (a busy
            # machine delays the next pull): either way this call saw its end
            self.cancelled_calls += 1
            raise

    def GetStats(self, request, context):
        return echo_pb2.Stats(cancelled_calls=self.cancelled_calls)

    def Collect(self, request_iterator, context):
        texts = [r.text for r in request_iterator]
        return echo_pb2.EchoResponse(text="".join(texts), index=len(texts), metadata=_metadata(context))

    def Chat(self, request_iterator, context):
        for i, request in enumerate(request_iterator):
            yield echo_pb2.EchoResponse(text=request.text.upper(), index=i)

    def Artifact(self, request, context):
        chunk = int(request.chunk_bytes or (1 << 20))
        block = os.urandom(min(chunk, 1 << 20)) * max(1, chunk // (1 << 20))
        block = block[:chunk]
        sent = 0
        while sent < request.total_bytes:
            n = min(chunk, request.total_bytes - sent)
            yield echo_pb2.ArtifactChunk(data=block[:n])
            sent += n

    def Fail(self, request, context):
        cls = getattr(errors, request.error, None)
        if isinstance(cls, type) and issubclass(cls, errors.AptError):
            raise cls(request.message)
        raise RuntimeError(request.message or "boom")
