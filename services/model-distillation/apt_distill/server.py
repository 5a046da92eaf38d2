"""Wiring of the model-distillation service (``python -m apt_distill.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.model_distillation.v1 import distillation_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_distill.service import DistillationServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(distillation_pb2_grpc.add_DistillationServicer_to_server, DistillationServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
