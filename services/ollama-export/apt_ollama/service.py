"""The OllamaExport servicer: proto -> validated spec -> job. No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2 as pb
from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc
from apt_model.modeling import limits
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_ollama.checkpoint import read_json
from apt_ollama.export_job import ExportSpec, check_export_folder, exports_root, make_modelfile, run_export

START_EXPORT = "/apt.plugins.ollama_export.v1.OllamaExport/StartExport"


class OllamaExportServicer(ollama_export_pb2_grpc.OllamaExportServicer):
    def __init__(self, app, default_ollama_url: str = ""):
        self.jobs, self.store, self.endpoints = app.jobs, app.store, app.endpoints
        self.default_ollama_url = default_ollama_url

    def StartExport(self, request, context):
        spec = ExportSpec.from_request(request, self.default_ollama_url, self.endpoints)
        # Everything a bad request can fail on is checked here, so it fails this call, not the job.
        # No model is built here (tensors are converted file by file), but the config's sizes are
        # checked before anything trusts them.
        config = read_json(self.store.model(spec.name).path / "config.json", "this is not a Hugging Face model folder")
        limits.check_dimensions(config, f"The config of model {spec.name!r}")
        make_modelfile(self.store, spec.name, system=spec.system, parameters=spec.parameters, num_ctx=spec.num_ctx)
        check_export_folder(exports_root(self.store) / spec.output_dir)  # again when the job claims it
        if self.jobs.busy_with("export_dir", spec.output_dir):
            raise errors.FailedPrecondition(
                f"An export into {spec.output_dir!r} is already running; wait for it or choose another output_dir.")
        snap = self.jobs.start(START_EXPORT, lambda ctx: run_export(self.store, spec, ctx),
                               labels={"model": spec.name, "export_dir": spec.output_dir},
                               reads=entries("models", spec.name))
        return job_to_proto(snap)

    def CreateModelfile(self, request, context):
        warnings: list[str] = []
        mf = make_modelfile(self.store, request.name, gguf_file=request.gguf_path or "./model.gguf",
                            system=request.system, parameters=dict(request.parameters),
                            num_ctx=request.num_ctx, warn=warnings.append)
        return pb.Modelfile(text=mf.text(), chat_format=mf.format_name, warnings=warnings)
