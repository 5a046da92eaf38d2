"""The Reasoning servicer: proto -> checked spec -> job. No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling import distributed, limits
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_reason import cot, data, rl, scorer, treesearch, verifier

_SERVICE = "/apt.plugins.reasoning_training.v1.Reasoning"


class ReasoningServicer(reasoning_pb2_grpc.ReasoningServicer):
    def __init__(self, app):
        self.jobs, self.store = app.jobs, app.store
        self.max_params, self.deployer = app.settings.max_model_params, app.settings.deployer

    def StartGenerateTasks(self, request, context):
        spec = data.GenerateSpec.from_request(request)
        if self.store.exists("datasets", spec.output_name) and not spec.overwrite:
            raise errors.AlreadyExists(f"Dataset {spec.output_name!r} already exists; choose another "
                                       "--output-name or pass --overwrite.")
        snap = self.jobs.start(f"{_SERVICE}/StartGenerateTasks", lambda ctx: data.generate_dataset(self.store, spec, ctx),
                               labels={"dataset": spec.output_name}, writes=entries("datasets", spec.output_name))
        return job_to_proto(snap)

    def StartCotTraining(self, request, context):
        spec = cot.CotSpec.from_request(request)
        distributed.refuse_multi_node(spec.nodes, "cot-training", deployer=self.deployer)  # a PyTorchJob: kubernetes only
        limits.check_loadable(self.store, spec.model, self.max_params)
        for split in data.SPLITS:  # refuse uncheckable rows before a job starts
            data.read_split(self.store, spec.dataset, split, need_reasoning=split == "train" and (
                spec.target == "cot" or spec.ablation))
        cot.check_outputs_free(self.store, spec)
        snap = self.jobs.start(f"{_SERVICE}/StartCotTraining", lambda ctx: cot.run_cot(self.store, spec, ctx),
                               labels={"model": spec.output_name}, reads=entries("models", spec.model)
                               + entries("datasets", spec.dataset), writes=entries("models", *cot.outputs(spec)))
        return job_to_proto(snap)

    def StartTreeSearch(self, request, context):
        spec = treesearch.SearchSpec.from_request(request)
        limits.check_loadable(self.store, spec.model, self.max_params)
        if spec.dataset:
            data.read_split(self.store, spec.dataset, "eval", need_reasoning=False)
        if self.store.exists("datasets", spec.output_name) and not spec.overwrite:
            raise errors.AlreadyExists(f"Dataset {spec.output_name!r} already exists; choose another "
                                       "--output-name or pass --overwrite.")
        treesearch.check_verifier(self.store, spec)
        treesearch.check_budget(self.store, spec)
        snap = self.jobs.start(f"{_SERVICE}/StartTreeSearch", lambda ctx: treesearch.run_search(self.store, spec, ctx),
                               labels={"model": spec.model}, reads=entries("models", spec.model, spec.verifier)
                               + entries("datasets", spec.dataset), writes=entries("datasets", spec.output_name))
        return job_to_proto(snap)

    def StartRLTraining(self, request, context):
        spec = rl.RLSpec.from_request(request)
        distributed.refuse_multi_node(spec.nodes, "rl-training", deployer=self.deployer)  # a PyTorchJob: kubernetes only
        limits.check_loadable(self.store, spec.model, self.max_params)
        for split in data.SPLITS:
            data.read_split(self.store, spec.dataset, split, need_reasoning=False)
        if self.store.exists("models", spec.output_name) and not spec.overwrite:
            raise errors.AlreadyExists(f"{spec.output_name!r} already exists in the store; choose another "
                                       "--output-name or pass --overwrite.")
        if spec.verifier:  # NOT_FOUND, or FAILED_PRECONDITION for a model that is not a verifier
            scorer.verifier_kind(self.store, spec.verifier)
        RunCheckpoint(self.store, rl.KIND, spec.output_name).check_start(resume=spec.resume, overwrite=spec.overwrite)
        snap = self.jobs.start(f"{_SERVICE}/StartRLTraining", lambda ctx: rl.run_rl(self.store, spec, ctx),
                               labels={"model": spec.output_name}, reads=entries("models", spec.model, spec.verifier)
                               + entries("datasets", spec.dataset), writes=entries("models", spec.output_name))
        return job_to_proto(snap)

    def StartVerifierTraining(self, request, context):
        spec = verifier.VerifierSpec.from_request(request)
        distributed.refuse_multi_node(spec.nodes, "verifier-training", deployer=self.deployer)  # a PyTorchJob: kubernetes only
        limits.check_loadable(self.store, spec.model, self.max_params)
        verifier.check_start(self.store, spec)
        snap = self.jobs.start(f"{_SERVICE}/StartVerifierTraining",
                               lambda ctx: verifier.run_verifier(self.store, spec, ctx),
                               labels={"model": spec.output_name}, reads=entries("models", spec.model)
                               + entries("datasets", spec.dataset), writes=entries("models", spec.output_name))
        return job_to_proto(snap)
