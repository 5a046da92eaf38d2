"""Wiring of the advanced-visualization service (``python -m apt_viz.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.advanced_visualization.v1 import visualization_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_viz.service import VisualizationServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(visualization_pb2_grpc.add_VisualizationServicer_to_server, VisualizationServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
