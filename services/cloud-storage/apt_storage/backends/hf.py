"""Hugging Face Hub model repositories through apt_model.hubs.hf.HfClient (``huggingface_hub.HfApi``).

A backup's files go up in one commit (large files through LFS/Xet as the Hub decides), the
manifest in a later one. Resume: files already in the repo with the same content (LFS
sha256, or git blob sha1 for small files) are left out of the commit, and LFS objects
uploaded before an interruption are skipped by the Hub's batch endpoint.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from huggingface_hub import CommitOperationAdd
from huggingface_hub import errors as hx

from apt_model import errors
from apt_model.hubs.hf import HfClient
from apt_storage.backends.base import ObjectInfo, UploadItem
from apt_storage.backends.hub import RESUME_HINT, HubBackend
from apt_storage.progress import TransferProgress


def git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class HfBackend(HubBackend):
    scheme = "hf"
    token_var = "HF_TOKEN"
    repo_type = "model"

    def client(self, endpoint: str, token: str | None) -> HfClient:
        return HfClient(endpoint, token, retry_hint=RESUME_HINT)

    def check(self) -> None:
        self._call(lambda: self.api.repo_info(self.repo_id, repo_type=self.repo_type), f"open {self.repo_id}")

    def _tree(self, prefix: str) -> list:
        try:
            return [f for f in self.api.list_repo_tree(self.repo_id, path_in_repo=prefix or None, recursive=True,
                                                       repo_type=self.repo_type) if hasattr(f, "size")]
        except hx.EntryNotFoundError:
            return []

    def list(self, prefix: str) -> list[ObjectInfo]:
        files = self._call(lambda: self._tree(prefix), f"list {self.repo_id}")
        return [ObjectInfo(f.path, int(f.size), "") for f in files]

    def read_bytes(self, key: str) -> bytes | None:
        with tempfile.TemporaryDirectory(prefix="apt-hf-") as tmp:
            def run() -> bytes | None:
                try:
                    return Path(self.api.hf_hub_download(self.repo_id, key, repo_type=self.repo_type,
                                                         local_dir=tmp)).read_bytes()
                except hx.EntryNotFoundError:
                    return None
            return self._call(run, f"read {key}")

    def write_bytes(self, key: str, data: bytes) -> None:
        self._call(lambda: self.api.upload_file(path_or_fileobj=data, path_in_repo=key, repo_id=self.repo_id,
                                                repo_type=self.repo_type,
                                                commit_message=self.options.commit_message or f"Add {key}"),
                   f"write {key}", writing=True)

    def upload(self, items: list[UploadItem], progress: TransferProgress, replace: bool = False) -> None:
        prefix = _common_prefix([i.key for i in items])
        remote = {f.path: f for f in self._call(lambda: self._tree(prefix), f"list {self.repo_id}")}
        todo = []
        for item in items:
            have = remote.get(item.key)
            if have is not None and int(have.size) == item.size and (
                    (have.lfs is not None and have.lfs.sha256 == item.sha256)
                    or (have.lfs is None and have.blob_id == git_blob_sha1(item.path))):
                progress.add_skipped(item.size)
            else:
                todo.append(item)
        if not todo:
            return
        progress.check_cancelled()
        ops = [CommitOperationAdd(path_in_repo=i.key, path_or_fileobj=str(i.path)) for i in todo]
        for op, item in zip(ops, todo):  # the add operation hashed the file as it is now
            if op.upload_info.sha256.hex() != item.sha256:
                raise errors.DataLoss(f"{item.path.name} changed since the store recorded it; run "
                                      "'apt-model verify' and recreate the entry before uploading it.")
        message = self.options.commit_message or f"Upload {len(todo)} files under {prefix or '/'}"
        self._call(lambda: self.api.create_commit(self.repo_id, operations=ops, commit_message=message,
                                                  repo_type=self.repo_type), f"commit to {self.repo_id}",
                   writing=True)
        progress.add_sent(sum(i.size for i in todo))

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        with tempfile.TemporaryDirectory(prefix="apt-hf-", dir=target.parent) as tmp:
            def run() -> None:
                try:
                    got = self.api.hf_hub_download(self.repo_id, key, repo_type=self.repo_type, local_dir=tmp)
                except hx.EntryNotFoundError as exc:
                    raise errors.NotFound(f"{key} is missing from {self.describe()}.") from exc
                shutil.move(got, target)
            self._call(run, f"download {key}")
        progress.add_sent(target.stat().st_size)


def _common_prefix(keys: list[str]) -> str:
    parts = [k.split("/")[:-1] for k in keys]
    common = []
    for level in zip(*parts):
        if len(set(level)) != 1:
            break
        common.append(level[0])
    return "/".join(common)
