"""Wiring of the cloud-storage service (``python -m apt_storage.server``)."""

import os
from pathlib import Path

from apt_model.gen.apt.plugins.cloud_storage.v1 import cloud_storage_pb2_grpc
from apt_model.runtime.app import PluginApp

from apt_storage.config import StorageConfig
from apt_storage.credentials import CredentialSource
from apt_storage.service import CloudStorageServicer


def build(app: PluginApp) -> None:
    # APT_DATA_ROOTS and APT_ALLOWED_ENDPOINTS as the runtime parsed them (app.paths, app.endpoints);
    # credentials from the environment or mounted files, read by CredentialSource alone
    config = StorageConfig(app.store.root, app.paths, app.endpoints, CredentialSource(os.environ))
    app.add_servicer(cloud_storage_pb2_grpc.add_CloudStorageServicer_to_server,
                     CloudStorageServicer(app, config))


def main() -> None:
    PluginApp.main(Path(__file__).resolve().parents[1], build)


if __name__ == "__main__":
    main()
