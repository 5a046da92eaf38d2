"""The Visualization servicer: proto -> checked spec -> job. No logic of its own."""

from __future__ import annotations

from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2_grpc
from apt_model.runtime.jobs import entries
from apt_model.runtime.jobs_grpc import job_to_proto

from apt_viz import checks
from apt_viz.attention import AttentionSpec, build_attention_map
from apt_viz.compare import CompareSpec, build_comparison_report
from apt_viz.dashboard import DashboardSpec, build_dashboard
from apt_viz.png import require_chromium

_SERVICE = "/apt.plugins.advanced_visualization.v1.Visualization"


class VisualizationServicer(visualization_pb2_grpc.VisualizationServicer):
    def __init__(self, app):
        self.jobs, self.store, self.paths = app.jobs, app.store, app.paths

    def StartDashboard(self, request, context):
        spec = DashboardSpec(models=tuple(request.models), output_name=request.output_name,
                             overwrite=request.overwrite, max_points=request.max_points or 2000, png=request.png)
        checks.check_models(self.store, list(spec.models))
        checks.check_output(self.store, spec.output_name, spec.overwrite, request.output_path)
        if spec.png:
            require_chromium()
        return self._start("StartDashboard", lambda ctx: build_dashboard(self.store, spec, ctx),
                           spec.models, spec.output_name)

    def StartAttentionMap(self, request, context):
        spec = AttentionSpec(name=request.name, text=request.text, layers=tuple(request.layers),
                             heads=tuple(request.heads), output_name=request.output_name,
                             overwrite=request.overwrite, max_tokens=request.max_tokens or 256, png=request.png)
        checks.check_models(self.store, [spec.name])
        checks.check_output(self.store, spec.output_name, spec.overwrite, request.output_path)
        spec.check_indices(self.store)
        if spec.png:
            require_chromium()
        return self._start("StartAttentionMap", lambda ctx: build_attention_map(self.store, spec, ctx),
                           (spec.name,), spec.output_name)

    def StartComparisonReport(self, request, context):
        spec = CompareSpec.from_request(request)
        checks.check_models(self.store, list(spec.models))
        checks.check_output(self.store, spec.output_name, spec.overwrite, request.output_path)
        eval_path = str(self.paths.resolve(request.eval_path, "evaluation text")) if request.eval_path else ""
        if spec.eval_dataset:
            self.store.dataset(spec.eval_dataset)
        if spec.png:
            require_chromium()
        return self._start("StartComparisonReport",
                           lambda ctx: build_comparison_report(self.store, spec, eval_path, ctx),
                           spec.models, spec.output_name, datasets=(spec.eval_dataset,))

    def _start(self, method: str, work, models, output: str, datasets=()):
        snap = self.jobs.start(f"{_SERVICE}/{method}", work, labels={"output": output},
                               reads=entries("models", *models) + entries("datasets", *filter(None, datasets)),
                               writes=entries("datasets", output))
        return job_to_proto(snap)
