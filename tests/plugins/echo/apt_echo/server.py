"""Wiring of the echo test plugin."""

from pathlib import Path

from apt_model.gen.apt.plugins.echo.v1 import echo_pb2_grpc
from apt_model.runtime.app import PluginApp
from apt_echo.service import EchoServicer


def build(app: PluginApp) -> None:
    app.add_servicer(echo_pb2_grpc.add_EchoServicer_to_server, EchoServicer(app.jobs))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
