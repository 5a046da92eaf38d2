"""The Debugging servicer: proto -> checked arguments -> a job (or, for the export, the call).
No logic of its own."""

from __future__ import annotations

from apt_model import errors
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2 as pb
from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2_grpc
from apt_model.modeling import limits
from apt_model.modeling.io import pick_device
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto
from apt_model.store import Store, validate_name

from apt_debug import activations, anomaly, gradflow, profile, replay, rerun
from apt_debug.detection import export_tensorboard, export_wandb, run_anomaly_detection
from apt_debug.source import SeriesSource
from apt_debug.probe import ProbeSpec

_SERVICE = "/apt.plugins.advanced_debugging.v1.Debugging"


class DebuggingServicer(debugging_pb2_grpc.DebuggingServicer):
    def __init__(self, app):
        self.jobs, self.store, self.paths = app.jobs, app.store, app.paths
        self.max_params = app.settings.max_model_params

    def StartGradientFlow(self, request, context):
        spec = self._probe_spec(request, gradflow.OPERATION)
        return self._start("StartGradientFlow", lambda ctx: gradflow.run_gradient_flow(self.store, spec, ctx), spec)

    def StartActivationAnalysis(self, request, context):
        spec = self._probe_spec(request, activations.OPERATION)
        return self._start("StartActivationAnalysis",
                           lambda ctx: activations.run_activation_analysis(self.store, spec, ctx), spec)

    def StartProfile(self, request, context):
        spec = self._probe_spec(request, profile.OPERATION)
        return self._start("StartProfile", lambda ctx: profile.run_profile(self.store, spec, ctx), spec)

    def StartAnomalyDetection(self, request, context):
        source = self._source(request.name, request.metrics_path, request.metrics_dataset, request.job_id)
        output = output_name(self.store, request.output_name or f"{source.stem()}-anomalies", request.overwrite)
        settings = anomaly.Settings(spike_z=request.spike_z or 8.0, window=request.window or 20)
        snap = self.jobs.start(f"{_SERVICE}/StartAnomalyDetection",
                               lambda ctx: run_anomaly_detection(self.store, source, output, settings,
                                                                 request.overwrite, ctx),
                               labels={"source": source.stem(), "output": output},
                               reads=entries("models", source.model) + entries("datasets", source.dataset),
                               writes=entries("datasets", output))
        return job_to_proto(snap)

    def StartReplay(self, request, context):
        params = replay.training_settings(self.store, request.name)
        replay.check_step(self.store, request.name, request.step)
        paths, warnings = replay.check_corpus(self.store, params, lambda p: str(self.paths.resolve(p, "corpus path")))
        spec = replay.ReplaySpec(model=request.name, step=request.step, top=request.top or 10,
                                 output_name=output_name(self.store, request.output_name
                                                         or f"{request.name}-replay-{request.step}", request.overwrite),
                                 device=pick_device(request.device or "auto"), overwrite=request.overwrite)
        snap = self.jobs.start(f"{_SERVICE}/StartReplay",
                               lambda ctx: replay.run_replay(self.store, spec, params, paths, warnings, ctx),
                               labels={"model": spec.model, "output": spec.output_name},
                               reads=entries("models", spec.model) + entries("datasets", params.get("dataset", "")),
                               writes=entries("datasets", spec.output_name))
        return job_to_proto(snap)

    def StartProbe(self, request, context):
        _, step, settings = rerun.kept_checkpoint(self.store, request.run)
        paths, warnings = replay.check_corpus(self.store, settings, lambda p: str(self.paths.resolve(p, "corpus path")))
        spec = rerun.RerunSpec(run=request.run, steps=request.steps or 10, device=pick_device(request.device or "auto"),
                               output_name=output_name(self.store, request.output_name
                                                       or f"{request.run}-probe-{step}", request.overwrite),
                               overwrite=request.overwrite, max_params=self.max_params)
        snap = self.jobs.start(f"{_SERVICE}/StartProbe",
                               lambda ctx: rerun.run_probe(self.store, spec, paths, warnings, ctx),
                               labels={"run": spec.run, "output": spec.output_name},
                               reads=entries("datasets", settings.get("dataset", "")),
                               writes=entries("datasets", spec.output_name))
        return job_to_proto(snap)

    def ExportToTracker(self, request, context):
        if request.log_dir:
            raise errors.InvalidArgument(
                "--log-dir is refused: the service never writes to a caller-chosen path. The event files go "
                "into store dataset --output-name; fetch them with 'apt-model data pull NAME'.")
        tracker = request.tracker or "tensorboard"
        source = self._source(request.name, request.metrics_path, request.metrics_dataset, request.job_id)
        output = output_name(self.store, request.output_name or f"{source.stem()}-{tracker}", request.overwrite)
        export = export_wandb if tracker == "wandb" else export_tensorboard
        return pb.ExportToTrackerResponse(**export(self.store, source, output, request.overwrite))

    def _source(self, model: str, path: str, dataset: str, job: str = "") -> SeriesSource:
        source = SeriesSource.checked(model, self.paths.resolve_optional(path, "metrics path"), dataset, job)
        source.check_exists(self.store)
        return source

    def _probe_spec(self, request, operation: str) -> ProbeSpec:
        if not request.name:
            raise errors.InvalidArgument("--name (the store model to probe) is required.")
        if not (request.data_path or request.dataset):
            raise errors.InvalidArgument("Give the probe text: --data-path (a .txt/.jsonl file) or --dataset.")
        limits.check_loadable(self.store, request.name, self.max_params)
        if request.dataset:
            self.store.dataset(request.dataset)
        output = output_name(self.store, request.output_name or f"{request.name}-{operation}", request.overwrite)
        return ProbeSpec(model=request.name, output_name=output, batches=request.batches or 3,
                         seq_len=request.seq_len or 64, batch_size=request.batch_size or 4, seed=request.seed,
                         dataset=request.dataset,
                         data_paths=self.paths.resolve_all([request.data_path] if request.data_path else [],
                                                           "data path"),
                         learning_rate=request.learning_rate or 1e-3, device=pick_device(request.device or "auto"),
                         overwrite=request.overwrite)

    def _start(self, method: str, work, spec: ProbeSpec):
        snap = self.jobs.start(f"{_SERVICE}/{method}", work, labels={"model": spec.model, "output": spec.output_name},
                               reads=entries("models", spec.model) + entries("datasets", spec.dataset),
                               writes=entries("datasets", spec.output_name))
        return job_to_proto(snap)


def output_name(store: Store, name: str, overwrite: bool) -> str:
    """The report's dataset name, refused before any work when it is taken (and no --overwrite)."""
    validate_name(name, "dataset")
    if store.exists("datasets", name) and not overwrite:
        raise errors.AlreadyExists(
            f"Dataset {name!r} already exists in the store; choose another --output-name or pass --overwrite.")
    return name
