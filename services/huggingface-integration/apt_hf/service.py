"""The HuggingFace servicer: proto -> validated spec -> job. No logic of its own.

Checks that need only a little I/O (names, paths, the repo's config and access rights)
run inside the Start call, so bad input is answered with a status code on that call;
downloads, copies and training run as jobs.
"""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc
from apt_model.modeling import distributed, limits
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_hf.datasets_io import DatasetSpec, run_load_dataset
from apt_hf.exporter import ExportSpec, PushSpec, run_export, run_push
from apt_hf.hubs import get_hub
from apt_hf.importer import ImportSpec, check_target_free, resolve_source, run_import
from apt_hf.settings import HubSettings
from apt_hf.trainer import TrainSpec, run_train

_SERVICE = "/apt.plugins.huggingface_integration.v1.HuggingFace/"


class HuggingFaceServicer(huggingface_pb2_grpc.HuggingFaceServicer):
    def __init__(self, app, settings: HubSettings):
        self.jobs, self.store, self.settings, self.paths = app.jobs, app.store, settings, app.paths
        self.max_params, self.deployer = app.settings.max_model_params, app.settings.deployer

    def StartImportModel(self, request, context):
        spec = ImportSpec.from_request(request, self.paths)
        check_target_free(self.store, spec)
        hub = None if spec.is_local else get_hub(spec.hub, self.settings)
        meta = resolve_source(spec, hub)
        snap = self.jobs.start(_SERVICE + "StartImportModel",
                               lambda ctx: run_import(self.store, hub, spec, ctx, meta),
                               labels={"model": spec.name, "source": spec.source}, writes=entries("models", spec.name))
        return job_to_proto(snap)

    def StartExportModel(self, request, context):
        spec = ExportSpec.from_request(request, self.paths)
        self.store.model(spec.name)
        snap = self.jobs.start(_SERVICE + "StartExportModel", lambda ctx: run_export(self.store, spec, ctx),
                               labels={"source_model": spec.name}, reads=entries("models", spec.name))
        return job_to_proto(snap)

    def StartPushModel(self, request, context):
        spec = PushSpec.from_request(request)
        self.store.model(spec.name)
        hub = get_hub(spec.hub, self.settings)
        snap = self.jobs.start(_SERVICE + "StartPushModel", lambda ctx: run_push(self.store, hub, spec, ctx),
                               labels={"source_model": spec.name, "repo": spec.repo_id},
                               reads=entries("models", spec.name))
        return job_to_proto(snap)

    def StartLoadDataset(self, request, context):
        spec = DatasetSpec.from_request(request, self.paths)
        if not spec.overwrite and self.store.exists("datasets", spec.name):
            raise errors.AlreadyExists(f"Dataset {spec.name!r} already exists; pass overwrite or choose another name.")
        if spec.tokenizer_from:
            self.store.model(spec.tokenizer_from)
        if spec.store_dataset:
            self.store.dataset(spec.store_dataset)
        hub = None if spec.is_local else get_hub(spec.hub, self.settings)
        snap = self.jobs.start(_SERVICE + "StartLoadDataset",
                               lambda ctx: run_load_dataset(self.store, hub, spec, ctx),
                               labels={"dataset": spec.name}, reads=entries("datasets", spec.store_dataset),
                               writes=entries("datasets", spec.name))
        return job_to_proto(snap)

    def StartTrain(self, request, context):
        spec = TrainSpec.from_request(request)
        # a PyTorchJob: kubernetes only. Its pods see only the store, and model and dataset are store entries
        distributed.refuse_multi_node(spec.nodes, "fine-tune", deployer=self.deployer)
        self.store.model(spec.model)
        self.store.dataset(spec.dataset)
        # before a job builds it: the model and one training step must fit
        limits.check_trainable(self.store, spec.model, self.max_params, spec.batch_size, spec.seq_len)
        if not spec.overwrite and self.store.exists("models", spec.output_name):
            raise errors.AlreadyExists(
                f"Model {spec.output_name!r} already exists; pass overwrite or choose another output name.")
        snap = self.jobs.start(_SERVICE + "StartTrain", lambda ctx: run_train(self.store, spec, ctx),
                               labels={"model": spec.output_name, "parent": spec.model},
                               reads=entries("models", spec.model) + entries("datasets", spec.dataset),
                               writes=entries("models", spec.output_name))
        return job_to_proto(snap)
