"""Hugging Face Hub model repositories through ``huggingface_hub.HfApi``.

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

import httpx2
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub import errors as hx

from apt_model import errors
from apt_storage.backends import configured_endpoint
from apt_storage.backends.base import Backend, ObjectInfo, UploadItem
from apt_storage.progress import TransferProgress



def git_blob_sha1(path: Path) -> str:
    digest = hashlib.sha1(b"blob %d\0" % path.stat().st_size)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class HfBackend(Backend):
    repo_type = "model"
    token_var = "HF_TOKEN"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repo_id = self.dest.container
        self.endpoint = (self.options.endpoint_url or configured_endpoint("hf", self.source)).rstrip("/")
        # False, not None: with None huggingface_hub would read HF_TOKEN itself, and send it to
        # an endpoint the credentials were withheld from (apt_storage.backends.open_backend)
        self.api = HfApi(endpoint=self.endpoint, token=self.creds.get(self.token_var) or False)

    def describe(self) -> str:
        return f"hf://{self.repo_id} at {self.endpoint}"

    def _map(self, exc: Exception, action: str) -> errors.AptError:
        where = self.describe()
        if isinstance(exc, hx.RepositoryNotFoundError):
            return errors.NotFound(
                f"Repository {self.repo_id!r} does not exist at {self.endpoint}, or {self.token_var} "
                "cannot see it; create it (e.g. 'hf repo create') or fix the URI.")
        if isinstance(exc, hx.HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status in (401, 403):
                return errors.PermissionDenied(
                    f"Cannot {action}: {where} refused the token ({status}). Check {self.token_var} "
                    "(its value is not shown) and that it may write to the repository.")
            if status >= 500 or status == 429:
                return errors.Unavailable(f"Cannot {action}: {where} answered {status}; try again later.")
            return errors.FailedPrecondition(self.creds.redact(f"Cannot {action} at {where}: {exc}"))
        if isinstance(exc, (httpx2.TransportError, ConnectionError)):
            return errors.Unavailable(
                f"Cannot {action}: {where} is unreachable ({type(exc).__name__}). Check the endpoint "
                "and the network, then run the command again; backups resume.")
        return errors.Unavailable(self.creds.redact(f"Cannot {action} at {where}: {exc}"))

    def _call(self, fn, action: str):
        try:
            return fn()
        except errors.AptError:
            raise
        except (hx.HfHubHTTPError, httpx2.HTTPError, OSError) as exc:
            raise self._map(exc, action) from exc

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
                   f"write {key}")

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
                                                  repo_type=self.repo_type), f"commit to {self.repo_id}")
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
