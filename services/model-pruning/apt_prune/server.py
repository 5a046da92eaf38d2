"""Wiring of the model-pruning service (``python -m apt_prune.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.model_pruning.v1 import pruning_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_prune.service import PruningServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(pruning_pb2_grpc.add_PruningServicer_to_server, PruningServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
