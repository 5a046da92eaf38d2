"""Job snapshots <-> protobuf, and the ``apt.plugin.v1.Jobs`` servicer over a JobManager."""

from __future__ import annotations

import threading
from typing import Callable

import grpc
from google.protobuf import json_format, timestamp_pb2

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2_grpc
from apt_model.runtime.jobs import JobManager, JobSnapshot, JobState

_STATE = {
    JobState.QUEUED: job_pb2.JOB_STATE_QUEUED,
    JobState.RUNNING: job_pb2.JOB_STATE_RUNNING,
    JobState.SUCCEEDED: job_pb2.JOB_STATE_SUCCEEDED,
    JobState.FAILED: job_pb2.JOB_STATE_FAILED,
    JobState.CANCELLED: job_pb2.JOB_STATE_CANCELLED,
}
FINAL_STATES = (job_pb2.JOB_STATE_SUCCEEDED, job_pb2.JOB_STATE_FAILED, job_pb2.JOB_STATE_CANCELLED)


def _ts(seconds: float) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


def job_to_proto(snap: JobSnapshot) -> job_pb2.Job:
    job = job_pb2.Job(
        id=snap.id, operation=snap.operation, state=_STATE[snap.state], progress=snap.progress,
        stage=snap.stage, message=snap.message, metrics=snap.metrics,
        create_time=_ts(snap.created), update_time=_ts(snap.updated),
        eta_seconds=snap.eta_seconds, labels=snap.labels, reads=snap.reads, writes=snap.writes,
    )
    if snap.response is not None:
        job.response.Pack(snap.response)
    if snap.result is not None:
        job.result.SetInParent()  # set even when empty
        json_format.ParseDict(snap.result, job.result)
    if snap.error_code:
        job.error.code = snap.error_code
        job.error.message = snap.error_message
    return job


def still_active(context) -> Callable[[], bool]:
    """A check for "the caller is still there" on both server kinds.

    The asyncio server's context for sync handlers has no ``is_active``; its
    ``add_callback`` fires when the call ends, which is all a watch needs.
    """
    if hasattr(context, "is_active"):
        return context.is_active
    ended = threading.Event()
    context.add_callback(ended.set)
    return lambda: not ended.is_set()


def job_result(job: job_pb2.Job) -> dict:
    """The Struct view of a job's result (numbers are floats); ``results.typed_result`` for the message."""
    return json_format.MessageToDict(job.result) if job.HasField("result") else {}


class JobsServicer(plugin_pb2_grpc.JobsServicer):
    """Serves GetJob/ListJobs/CancelJob/WatchJob for one service's JobManager."""

    def __init__(self, jobs: JobManager):
        self.jobs = jobs

    def GetJob(self, request, context):
        return job_to_proto(self.jobs.get(request.id))

    def ListJobs(self, request, context):
        snaps = self.jobs.list()
        if request.active_only:
            snaps = [s for s in snaps if not s.state.done]
        if request.service and request.service != self.jobs.service:
            snaps = []
        return job_pb2.ListJobsResponse(jobs=[job_to_proto(s) for s in snaps])

    def CancelJob(self, request, context):
        return job_to_proto(self.jobs.cancel(request.id))

    def WatchJob(self, request, context: grpc.ServicerContext):
        for snap in self.jobs.watch(request.id, is_active=still_active(context)):
            yield job_to_proto(snap)
