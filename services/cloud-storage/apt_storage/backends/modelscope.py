"""ModelScope model repositories through ``modelscope_hub.HubApi`` (the hub package of modelscope).

Files go up one commit each (large ones as LFS blobs, which the hub deduplicates by sha256);
files already in the repository with the same sha256 are skipped, so an interrupted
backup resumes file by file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import requests
from modelscope_hub import HubApi
from modelscope_hub import errors as mx

from apt_model import errors
from apt_model.store import sha256_file
from apt_storage.backends import configured_endpoint
from apt_storage.backends.base import Backend, ObjectInfo, UploadItem
from apt_storage.progress import TransferProgress

REPO_TYPE = "model"


class ModelScopeBackend(Backend):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repo_id = self.dest.container
        self.endpoint = (self.options.endpoint_url or configured_endpoint("modelscope", self.source)).rstrip("/")
        # "" and not None: with None the SDK takes MODELSCOPE_API_TOKEN or a saved login itself,
        # and would send it to an endpoint the credentials were withheld from (open_backend)
        self.api = HubApi(endpoint=self.endpoint, token=self.creds.get("MODELSCOPE_API_TOKEN") or "")

    def describe(self) -> str:
        return f"modelscope://{self.repo_id} at {self.endpoint}"

    def _map(self, exc: Exception, action: str) -> errors.AptError:
        where = self.describe()
        if isinstance(exc, (mx.AuthenticationError, mx.PermissionDeniedError)):
            return errors.PermissionDenied(
                f"Cannot {action}: {where} refused the token. Check MODELSCOPE_API_TOKEN (its value "
                "is not shown) and that it may write to the repository.")
        if isinstance(exc, mx.NotExistError):
            return errors.NotFound(
                f"Repository {self.repo_id!r} does not exist at {self.endpoint}, or the token cannot "
                "see it; create it on ModelScope or fix the URI.")
        if isinstance(exc, (mx.NetworkError, requests.ConnectionError, requests.Timeout)):
            return errors.Unavailable(
                f"Cannot {action}: {where} is unreachable. Check the endpoint and the network, then "
                "run the command again; backups resume.")
        if isinstance(exc, (mx.ServerError, mx.RateLimitError)):
            return errors.Unavailable(f"Cannot {action}: {where} is failing; try again later.")
        return errors.FailedPrecondition(self.creds.redact(f"Cannot {action} at {where}: {exc}"))

    def _call(self, fn, action: str):
        try:
            return fn()
        except errors.AptError:
            raise
        except (mx.HubError, requests.RequestException, OSError) as exc:
            raise self._map(exc, action) from exc

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
                                                disable_tqdm=True), f"write {key}")

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
                       f"upload {item.key}")
            progress.add_sent(item.size)

    def download(self, key: str, target: Path, progress: TransferProgress) -> None:
        with tempfile.TemporaryDirectory(prefix="apt-ms-", dir=target.parent) as tmp:
            got = self._call(lambda: self._fetch(key, tmp), f"download {key}")
            shutil.move(got, target)
        progress.add_sent(target.stat().st_size)
