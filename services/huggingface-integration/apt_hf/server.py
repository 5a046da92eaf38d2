"""Wiring of the huggingface-integration service (``python -m apt_hf.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2_grpc
from apt_model.modeling.io import preload_architectures
from apt_model.runtime.app import PluginApp

from apt_hf.service import HuggingFaceServicer
from apt_hf.settings import HubSettings


def build(app: PluginApp) -> None:
    preload_architectures()  # before any job thread races transformers' lazy imports
    # HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE, HF_HUB_CACHE, MODELSCOPE_* are read here, once
    app.add_servicer(huggingface_pb2_grpc.add_HuggingFaceServicer_to_server,
                     HuggingFaceServicer(app, HubSettings.from_env()))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
