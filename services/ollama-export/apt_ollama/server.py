"""Wiring of the ollama-export service (``python -m apt_ollama.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.ollama_export.v1 import ollama_export_pb2_grpc
from apt_model.runtime.app import PluginApp

from apt_ollama.service import OllamaExportServicer


def build(app: PluginApp) -> None:
    # APT_OLLAMA_URL (plugin.yaml settings): the Ollama server an export creates models on when the
    # request names none
    servicer = OllamaExportServicer(app, default_ollama_url=app.plugin_settings["APT_OLLAMA_URL"])
    app.add_servicer(ollama_export_pb2_grpc.add_OllamaExportServicer_to_server, servicer)


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
