"""Wiring of the data-processors service (``python -m apt_data.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.data_processors.v1 import data_processors_pb2_grpc
from apt_model.runtime.app import PluginApp

from apt_data.service import DataProcessorsServicer


def build(app: PluginApp) -> None:
    max_file_bytes = app.plugin_settings["APT_DATA_MAX_FILE_MB"] << 20
    app.add_servicer(data_processors_pb2_grpc.add_DataProcessorsServicer_to_server,
                     DataProcessorsServicer(app, max_file_bytes))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
