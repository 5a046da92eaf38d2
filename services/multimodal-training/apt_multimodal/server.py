"""Wiring of the multimodal-training service (``python -m apt_multimodal.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.multimodal_training.v1 import multimodal_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_multimodal.service import MultimodalServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(multimodal_pb2_grpc.add_MultimodalServicer_to_server, MultimodalServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
