"""Wiring of the advanced-debugging service (``python -m apt_debug.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.advanced_debugging.v1 import debugging_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_debug.service import DebuggingServicer


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    app.add_servicer(debugging_pb2_grpc.add_DebuggingServicer_to_server, DebuggingServicer(app))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
