"""``apt.plugin.v1.Jobs`` at the gateway: its own jobs, and every plugin's, routed by id prefix."""

from __future__ import annotations

import asyncio
import logging

import grpc

from apt_model import errors
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.jobs import JobManager
from apt_model.runtime.jobs_grpc import JobsServicer, job_to_proto
from gateway.registry import Registry
from gateway.router import Router, remaining

log = logging.getLogger(__name__)
WATCH_POLL = 0.1  # s between looks at a watched gateway job's snapshot
REPLICA_SECONDS = 10.0  # the longest a job call waits for one replica (one that accepts and never answers)


def service_of(job_id: str) -> str:
    service, sep, _ = job_id.partition(":")
    if not sep or not service:
        raise errors.InvalidArgument(
            f"{job_id!r} is not a job id (expected '<service>:<hex>', as printed by 'apt-model job list')."
        )
    return service


class GatewayJobsServicer(plugin_pb2_grpc.JobsServicer):
    def __init__(self, jobs: JobManager, registry: Registry, router: Router):
        self.local = JobsServicer(jobs)
        self.jobs = jobs
        self.registry = registry
        self.router = router

    def _endpoints(self, plugin: str) -> list[str]:
        inst = self.registry.installed(plugin)
        if inst is None:
            raise errors.NotFound(
                f"Job service {plugin!r} is not an installed plugin; run 'apt-model plugin list'.")
        return inst.healthy_endpoints() or inst.endpoints

    def _stubs(self, plugin: str):
        for endpoint in self._endpoints(plugin):
            yield endpoint, plugin_pb2_grpc.JobsStub(self.router.channel(endpoint))

    def _on_replica(self, job_id: str, call):
        """Try each replica of the plugin until one knows the job."""
        last = None
        for endpoint, stub in self._stubs(service_of(job_id)):
            try:
                return call(stub)
            except grpc.RpcError as exc:
                if exc.code() != grpc.StatusCode.NOT_FOUND:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        self.registry.mark_unhealthy(service_of(job_id), endpoint)
                    raise
                last = exc
        if last is not None:
            raise last
        raise errors.NotFound(f"No job {job_id!r}.")

    def _md(self):
        return [self.router.auth]

    def _upstream(self) -> dict:
        """A job call's options towards one replica: the gateway's credentials, and a deadline
        (a replica that accepts and never answers, e.g. a stopped process, must not hold the call)."""
        return {"timeout": REPLICA_SECONDS, "metadata": self._md()}

    def GetJob(self, request, context):
        if service_of(request.id) == self.jobs.service:
            return self.local.GetJob(request, context)
        return self._on_replica(request.id, lambda s: s.GetJob(request, **self._upstream()))

    def CancelJob(self, request, context):
        if service_of(request.id) == self.jobs.service:
            return self.local.CancelJob(request, context)
        return self._on_replica(request.id, lambda s: s.CancelJob(request, **self._upstream()))

    def ListJobs(self, request, context):
        jobs = list(self.local.ListJobs(request, context).jobs) if request.service in ("", self.jobs.service) else []
        for inst in self.registry.all_installed():
            if request.service and request.service != inst.name:
                continue
            for endpoint, stub in self._stubs(inst.name):
                try:
                    jobs += stub.ListJobs(request, **self._upstream()).jobs
                except grpc.RpcError as exc:
                    log.warning("cannot list jobs of %s at %s: %s", inst.name, endpoint, exc.details())
        jobs.sort(key=lambda j: j.create_time.ToNanoseconds(), reverse=True)
        return job_pb2.ListJobsResponse(jobs=jobs)

    async def WatchJob(self, request, context):
        """An async generator, as CoreServicer._download is: a sync one holds a pool thread in
        its last write when the caller goes (seen: a CLI stopped with Ctrl-C), for good once the
        server stops, and the interpreter joins that thread at exit. A gateway job is followed
        by looking at its snapshot every WATCH_POLL s on the event loop: waiting for a change
        on a thread would hold one per watcher for as long as the job is quiet, and a handful
        of watchers would take every thread of the loop's default executor (which downloads
        read files on)."""
        if service_of(request.id) == self.jobs.service:
            last = None
            while not context.done():
                snap = self.jobs.get(request.id)
                if snap is not last:
                    last = snap
                    yield job_to_proto(snap)
                    if snap.state.done:
                        return
                await asyncio.sleep(WATCH_POLL)
            return
        # find the replica holding the job, then follow its stream
        for endpoint in self._endpoints(service_of(request.id)):
            stub = plugin_pb2_grpc.JobsStub(self.router.aio_channel(endpoint))
            try:
                await stub.GetJob(job_pb2.GetJobRequest(id=request.id), **self._upstream())
            except grpc.RpcError:
                continue
            stream = stub.WatchJob(request, timeout=remaining(context), metadata=self._md())
            try:
                async for job in stream:
                    yield job
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAVAILABLE:
                    self.registry.mark_unhealthy(service_of(request.id), endpoint)
                    raise errors.Unavailable(
                        f"Plugin {service_of(request.id)!r} stopped answering while job {request.id} "
                        "was running; the job is lost with it. See 'apt-model plugin list'.") from exc
                raise
            finally:
                stream.cancel()  # the caller left: stop following upstream too
            return
        raise errors.NotFound(f"No job {request.id!r}; run 'apt-model job list' to see the jobs.")
