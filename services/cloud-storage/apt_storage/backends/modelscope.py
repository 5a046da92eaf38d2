"""ModelScope model repositories through apt_model.hubs.modelscope.ModelScopeClient
(``modelscope_hub.HubApi``, the hub package of modelscope).

Files go up one commit each (large ones as LFS blobs, which the hub deduplicates by sha256);
files already in the repository with the same sha256 are skipped, so an interrupted
backup resumes file by file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from modelscope_hub import errors as mx

from apt_model import errors
from apt_model.hubs.modelscope import ModelScopeClient
from apt_model.store import sha256_file
from apt_storage.backends.base import ObjectInfo, UploadItem
from apt_storage.backends.hub import RESUME_HINT, HubBackend
from apt_storage.progress import TransferProgress

REPO_TYPE = "model"


class ModelScopeBackend(HubBackend):
    scheme = "modelscope"
    token_var = "MODELSCOPE_API_TOKEN"

    def client(self, endpoint: str, token: str | None) -> ModelScopeClient:
        return ModelScopeClient(endpoint, token, retry_hint=RESUME_HINT)

    def check(self) -> None:
        self._call(lambda: self.api.get_repo(self.repo_id, REPO_TYPE), f"open {self.repo_id}")

    def _files(self, prefix: str) -> list:
        files = self.api.list_repo_files(self.repo_id, REPO_TYPE)
        want = prefix.rstrip("/") + "/" if prefix else ""
        return [f for f in files if f.type != "tree" and f.path.startswith(want)]

    def list(self, prefix: str) -> list[ObjectInfo]:
        files = self._call(lambda: self._files(prefix), f"list {self.repo_id}")
        return [ObjectInfo(f.path, int(f.size), str(f.last_modified or "")) for f in files]

    def _fetch(self, key: str, folder: str) -> Path:
        try:
            return Path(self.api.download_file(self.repo_id, REPO_TYPE, key, local_dir=folder))
        except mx.NotExistError as exc:
            raise errors.NotFound(f"{key} is missing from {self.describe()}.") from exc

    def read_bytes(self, key: str) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="apt-ms-") as tmp:
            try:
                return self._call(lambda: self._fetch(key, tmp).read_bytes(), f"read {key}")
            except errors.NotFound:
                return None

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(lambda: self.api.upload_file(self.repo_id, REPO_TYPE, data, key,
                                                commit_message=self.options.commit_message or f"Add {key}",
                                                disable_tqdm=True), f"write {key}", writing=True)

    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        remote = {f.path: f for f in self._call(lambda: self._files(""), f"list {self.repo_id}")}
        for item in items:
            progress.check_cancelled()
            have = remote.get(item.key)
            if have is not None and int(have.size) == item.size and have.sha256 == item.sha256:
                progress.add_skipped(item.size)
                continue
            if sha256_file(item.path) != item.sha256:
                raise errors.DataLoss(f"{item.path.name} changed since the store recorded it; run "
                                      "'apt-model verify' and recreate the entry before uploading it.")
            message = self.options.commit_message or f"Upload {item.key}"
            self._call(lambda: self.api.upload_file(self.repo_id, REPO_TYPE, str(item.path), item.key,
                                                    commit_message=message, disable_tqdm=True),
                       f"upload {item.key}", writing=True)
            progress.add_sent(item.size)

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        with tempfile.TemporaryDirectory(prefix="apt-ms-", dir=target.parent) as tmp:
            got = self._call(lambda: self._fetch(key, tmp), f"download {key}")
            shutil.move(got, target)
        progress.add_sent(target.stat().st_size)
