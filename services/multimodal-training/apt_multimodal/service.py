"""The Multimodal servicer: proto -> checked spec -> job. No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2_grpc
from apt_model.modeling import distributed
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_multimodal.create import CreateSpec, all_modalities, create_dataset
from apt_multimodal.evaluate import EvaluateSpec, run_evaluate
from apt_multimodal.export import ExportSpec, run_export
from apt_multimodal.media import MediaSpec
from apt_multimodal.train import TrainSpec, checkpoint_of, run_train

_SERVICE = "/apt.plugins.multimodal_training.v1.Multimodal"


class MultimodalServicer(multimodal_pb2_grpc.MultimodalServicer):
    def __init__(self, app):
        self.jobs, self.store, self.paths, self.deployer = app.jobs, app.store, app.paths, app.settings.deployer

    def StartCreateDataset(self, request, context):
        manifest = self.paths.resolve(request.manifest_path, "manifest path")
        if self.store.exists("datasets", request.name) and not request.overwrite:
            raise errors.AlreadyExists(f"Dataset {request.name!r} already exists; choose another --name "
                                       f"or pass --overwrite.")
        d = MediaSpec()
        media = MediaSpec(image_size=request.image_size or d.image_size, sample_rate=request.sample_rate or d.sample_rate,
                          n_mels=request.n_mels or d.n_mels,
                          max_audio_seconds=request.max_audio_seconds or d.max_audio_seconds,
                          truncate_audio=request.truncate_audio)
        spec = CreateSpec(request.name, manifest, all_modalities(request.modalities), media, request.overwrite)
        snap = self.jobs.start(f"{_SERVICE}/StartCreateDataset", lambda ctx: create_dataset(self.store, spec, ctx),
                               labels={"dataset": spec.name}, writes=entries("datasets", spec.name))
        return job_to_proto(snap)

    def StartTrain(self, request, context):
        spec = TrainSpec.from_request(request)
        # a PyTorchJob: kubernetes only. Its pods see only the store, which is all a TrainRequest names
        # (a model and a dataset), so no host path to refuse (pytorchjob.refuse_host_paths)
        distributed.refuse_multi_node(spec.nodes, "train", deployer=self.deployer)
        self.store.model(spec.model)      # NOT_FOUND before a job starts
        self.store.dataset(spec.dataset)
        if self.store.exists("models", spec.output_name) and not spec.overwrite:
            raise errors.AlreadyExists(f"Model {spec.output_name!r} already exists; choose another --output-name "
                                       f"or pass --overwrite.")
        checkpoint_of(self.store, spec).check_start(resume=spec.resume, overwrite=spec.overwrite)
        snap = self.jobs.start(f"{_SERVICE}/StartTrain", lambda ctx: run_train(self.store, spec, ctx),
                               labels={"model": spec.output_name},
                               reads=entries("models", spec.model) + entries("datasets", spec.dataset),
                               writes=entries("models", spec.output_name))
        return job_to_proto(snap)

    def StartEvaluate(self, request, context):
        spec = EvaluateSpec(request.model, request.dataset, request.max_rows, request.device or "auto",
                            request.max_new_tokens or EvaluateSpec("", "").max_new_tokens)
        self.store.model(spec.model)
        self.store.dataset(spec.dataset)
        snap = self.jobs.start(f"{_SERVICE}/StartEvaluate", lambda ctx: run_evaluate(self.store, spec, ctx),
                               labels={"model": spec.model},
                               reads=entries("models", spec.model) + entries("datasets", spec.dataset))
        return job_to_proto(snap)

    def StartExportLlava(self, request, context):
        spec = ExportSpec(request.model, request.output_name, request.overwrite)
        self.store.model(spec.model)
        if self.store.exists("models", spec.output_name) and not spec.overwrite:
            raise errors.AlreadyExists(f"Model {spec.output_name!r} already exists; choose another --output-name "
                                       f"or pass --overwrite.")
        snap = self.jobs.start(f"{_SERVICE}/StartExportLlava", lambda ctx: run_export(self.store, spec, ctx),
                               labels={"model": spec.output_name}, reads=entries("models", spec.model),
                               writes=entries("models", spec.output_name))
        return job_to_proto(snap)
