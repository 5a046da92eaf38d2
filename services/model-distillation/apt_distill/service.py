"""The Distillation servicer: proto -> validated spec -> job. No logic of its own."""

from __future__ import annotations

import dataclasses

from apt_model import errors
from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc
from apt_model.modeling import distributed, limits
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import Store

from apt_distill import checkpoint
from apt_distill.custom import registered_losses
from apt_distill.distill import run_distill
from apt_distill.models import check_spec_against_models
from apt_distill.spec import DistillSpec

START_DISTILL = "/apt.plugins.model_distillation.v1.Distillation/StartDistill"


class DistillationServicer(distillation_pb2_grpc.DistillationServicer):
    def __init__(self, app):
        self.jobs, self.store, self.paths = app.jobs, app.store, app.paths
        self.max_params, self.deployer = app.settings.max_model_params, app.settings.deployer

    def StartDistill(self, request, context):
        spec = DistillSpec.from_request(request, registered_losses())
        distributed.refuse_multi_node(spec.nodes, "distil", deployer=self.deployer)  # a PyTorchJob: kubernetes only
        pytorchjob.refuse_host_paths(spec.nodes, self.store.root, corpus_paths=spec.corpus_paths)  # its pods see only the store
        spec = dataclasses.replace(spec, corpus_paths=self.paths.resolve_all(spec.corpus_paths, "corpus path"))
        for name in filter(None, (spec.teacher, spec.student)):  # before a job builds them
            limits.check_loadable(self.store, name, self.max_params)
        if spec.student:  # the student trains with the teacher's weights beside it
            limits.check_trainable(self.store, spec.student, self.max_params, spec.batch_size, spec.seq_len,
                                   spec.device, plus=limits.fp32_bytes(self.store, spec.teacher, self.max_params),
                                   plus_what=f", beside teacher {spec.teacher!r}'s weights")
        check_spec_against_models(self.store, spec)
        check_output_free(self.store, spec)
        snap = self.jobs.start(START_DISTILL, lambda ctx: run_distill(self.store, spec, ctx),
                               labels={"model": spec.output_name, "teacher": spec.teacher},
                               reads=entries("models", spec.teacher, spec.student) + entries("datasets", spec.dataset),
                               writes=entries("models", spec.output_name))
        return job_to_proto(snap)


def check_output_free(store: Store, spec: DistillSpec) -> None:
    """Refuse a run whose output or checkpoint would clash with what is already there."""
    if store.exists("models", spec.output_name) and not spec.overwrite:
        raise errors.AlreadyExists(
            f"{spec.output_name!r} already exists in the store; choose another --output or pass --overwrite.")
    checkpoint.of(store, spec).check_start(resume=spec.resume, overwrite=spec.overwrite)
