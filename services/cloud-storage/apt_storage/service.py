"""The CloudStorage servicer: proto -> validated spec -> job (or a listing). No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2 as pb
from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc
from apt_model.runtime.jobs import JobManager, entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_storage.backends import open_backend
from apt_storage.backup import run_backup
from apt_storage.config import StorageConfig
from apt_storage.listing import BackupState, list_backups
from apt_storage.restore import run_restore
from apt_storage.specs import BackupSpec, RestoreSpec, UploadSpec, parse_kind, transfer_options
from apt_storage.upload import collect, run_upload
from apt_storage.uri import parse

_SERVICE = "/apt.plugins.cloud_storage.v1.CloudStorage"


def _claim(jobs: JobManager, label: str, value: str, what: str) -> None:
    """One job at a time per destination slot, so two runs never resume the same upload."""
    if jobs.busy_with(label, value):
        raise errors.FailedPrecondition(
            f"A job is already {what}; wait for it or cancel it ('apt-model job list').")


class CloudStorageServicer(cloud_storage_pb2_grpc.CloudStorageServicer):
    def __init__(self, app, config: StorageConfig):
        self.jobs, self.store = app.jobs, app.store
        self.config = config

    def StartBackup(self, request, context):
        spec = BackupSpec.from_request(request)
        self.config.check_local_destination(spec.destination)  # before anything says what exists
        self.config.check_endpoint(spec.destination, spec.options)
        self.store.get(spec.kind, spec.name)  # NOT_FOUND now, not as a failed job
        slot = f"{spec.destination}|{spec.kind}/{spec.name}"
        _claim(self.jobs, "backup", slot, f"backing up {spec.name} to {spec.destination}")
        snap = self.jobs.start(f"{_SERVICE}/StartBackup",
                               lambda ctx: run_backup(self.store, self.config, spec, ctx),
                               labels={"backup": slot, spec.kind[:-1]: spec.name},
                               reads=entries(spec.kind, spec.name))
        return job_to_proto(snap)

    def StartRestore(self, request, context):
        spec = RestoreSpec.from_request(request)
        self.config.check_local_destination(spec.source)
        self.config.check_endpoint(spec.source, spec.options)
        labels, writes = {"restore": str(spec.source)}, ()
        if spec.name:
            kind = spec.kind or "models"
            if self.store.exists(kind, spec.name) and not spec.overwrite:
                raise errors.AlreadyExists(
                    f"{spec.name!r} already exists in the store; pass --overwrite or choose another --name.")
            labels[kind[:-1]] = spec.name
            writes = entries(kind, spec.name)  # without a name, the backup's own: known once it is read
        snap = self.jobs.start(f"{_SERVICE}/StartRestore",
                               lambda ctx: run_restore(self.store, self.config, spec, ctx), labels=labels,
                               writes=writes)
        return job_to_proto(snap)

    def StartUpload(self, request, context):
        spec = UploadSpec.from_request(request)
        self.config.check_local_destination(spec.destination)
        self.config.check_endpoint(spec.destination, spec.options)
        collect(self.config, spec)  # PERMISSION_DENIED / NOT_FOUND now (every file), not as a failed job
        snap = self.jobs.start(f"{_SERVICE}/StartUpload", lambda ctx: run_upload(self.config, spec, ctx),
                               labels={"upload": str(spec.destination)})
        return job_to_proto(snap)

    def ListBackups(self, request, context):
        dest = parse(request.destination)
        self.config.check_local_destination(dest)
        kind = parse_kind(request.kind) if request.kind else ""
        backend = open_backend(dest, transfer_options(request.endpoint_url, request.region),
                               self.config.credentials)
        try:
            backend.check()
            states = list_backups(backend, dest)
        finally:
            backend.close()
        chosen = [s for s in states if (not kind or s.kind == kind) and (not request.name or s.name == request.name)]
        return pb.ListBackupsResponse(backups=[_backup_proto(s) for s in chosen])


def _backup_proto(state: BackupState) -> pb.Backup:
    m = state.manifest
    return pb.Backup(name=state.name, kind=state.kind[:-1], tag=state.tag, complete=state.complete,
                     size_bytes=m.size_bytes if m else 0, files=len(m.files) if m else 0,
                     created=m.created if m else "", stored_bytes=state.stored_bytes)
