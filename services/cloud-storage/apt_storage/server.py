"""Wiring of the cloud-storage service (``python -m apt_storage.server``)."""

from pathlib import Path

from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc
from apt_model.runtime.app import PluginApp

from apt_storage.config import StorageConfig
from apt_storage.service import CloudStorageServicer


def build(app: PluginApp) -> None:
    config = StorageConfig.from_env(app.store.root)  # credentials, APT_DATA_ROOTS, APT_ALLOWED_ENDPOINTS: once
    app.add_servicer(cloud_storage_pb2_grpc.add_CloudStorageServicer_to_server,
                     CloudStorageServicer(app, config))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
