"""The Pruning servicer: proto -> validated spec -> job. No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2, pruning_pb2_grpc
from apt_model.modeling import distributed, limits
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import Store

from apt_prune.importance import BUILTIN_IMPORTANCES, registered_importances
from apt_prune.prune import check_plan, run_prune
from apt_prune.spec import STRATEGIES, PruneSpec

START_PRUNE = "/apt.plugins.model_pruning.v1.Pruning/StartPrune"


class PruningServicer(pruning_pb2_grpc.PruningServicer):
    def __init__(self, app):
        self.jobs, self.store, self.paths = app.jobs, app.store, app.paths
        self.max_params, self.deployer = app.settings.max_model_params, app.settings.deployer

    def StartPrune(self, request, context):
        spec = PruneSpec.from_request(request)
        distributed.refuse_multi_node(spec.nodes, "prune", deployer=self.deployer)  # a PyTorchJob: kubernetes only
        pytorchjob.refuse_host_paths(spec.nodes, self.store.root, calibration_path=spec.calibration_path,
                                     recovery_path=spec.recovery_path, eval_path=spec.eval_path)  # pods see the store
        spec = spec.with_host_paths(self.paths)
        check_models(self.store, spec)
        if spec.needs_training_text:  # lottery rounds or recovery fine-tuning: a training step must fit
            limits.check_trainable(self.store, spec.name, self.max_params, spec.batch_size, spec.seq_len)
        else:  # before a job builds it
            limits.check_loadable(self.store, spec.name, self.max_params)
        check_plan(self.store, spec)
        snap = self.jobs.start(START_PRUNE, lambda ctx: run_prune(self.store, spec, ctx),
                               labels={"model": spec.name, "output": spec.output_name},
                               reads=entries("models", spec.name) + entries(
                                   "datasets", spec.calibration_dataset, spec.recovery_dataset, spec.eval_dataset),
                               writes=entries("models", spec.output_name))
        return job_to_proto(snap)

    def ListStrategies(self, request, context):
        custom = sorted(registered_importances())
        return pruning_pb2.ListStrategiesResponse(strategies=[*STRATEGIES, *custom],
                                                  importances=[*BUILTIN_IMPORTANCES, *custom])


def check_models(store: Store, spec: PruneSpec) -> None:
    """The input must exist; the output must be new (unless overwrite). Jobs using them are
    refused by JobManager.start, from the reads and writes the job declares."""
    store.model(spec.name)
    if store.exists("models", spec.output_name) and not spec.overwrite:
        raise errors.AlreadyExists(
            f"{spec.output_name!r} already exists in the store; choose another output name or pass --overwrite.")
