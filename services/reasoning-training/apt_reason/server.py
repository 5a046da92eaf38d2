"""Wiring of the reasoning-training service (``python -m apt_reason.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.reasoning_training.v1 import reasoning_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_reason.service import ReasoningServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(reasoning_pb2_grpc.add_ReasoningServicer_to_server, ReasoningServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
