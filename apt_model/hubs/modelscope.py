"""ModelScope through the modelscope SDK: snapshot download, and the configured
``modelscope_hub.HubApi`` (the hub package modelscope delegates to) for everything else, with
every error mapped by ``apt_model.hubs.errors``."""

from __future__ import annotations

import functools
import threading
from pathlib import Path

from apt_model import errors
from apt_model.hubs import ProgressFn, PushResult, Snapshot, check_repo_id
from apt_model.hubs.errors import HubCall, modelscope_error


def _callback_class(progress: ProgressFn):
    """A modelscope ProgressCallback (one instance per file) summing bytes over all files."""
    from modelscope.hub.callback import ProgressCallback

    lock = threading.Lock()
    totals = {"done": 0, "expected": 0}

    class JobBytes(ProgressCallback):
        def __init__(self, filename: str, file_size: int):
            with lock:
                totals["expected"] += int(file_size or 0)

        def update(self, size: int) -> None:
            with lock:
                totals["done"] += int(size)
                done, expected = totals["done"], totals["expected"]
            progress(done, expected or None)

        def end(self) -> None:
            return

    return JobBytes


class ModelScopeClient:
    """One ModelScope endpoint with one token (or none)."""

    name = "modelscope"

    def __init__(self, endpoint: str = "https://www.modelscope.cn", token: str | None = None, *,
                 cache_dir: Path | None = None, offline: bool = False, retry_hint: str = ""):
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None  # never logged or returned
        self.cache_dir = cache_dir  # None = the SDK's default (MODELSCOPE_CACHE)
        self.offline = offline  # downloads come from the cache only
        self.retry_hint = retry_hint  # the caller's next step when ModelScope is unreachable or down

    @property
    def _sdk_token(self) -> str:
        # "" and not None: with None the SDK takes MODELSCOPE_API_TOKEN or a saved login itself,
        # and would send it to an endpoint the token was not meant for
        return self.token or ""

    @functools.cached_property
    def api(self):
        """modelscope_hub's HubApi for this endpoint and token."""
        from modelscope_hub import HubApi

        return HubApi(endpoint=self.endpoint, token=self._sdk_token)

    def call(self, repo_id: str, *, repo_type: str = "model", revision: str = "", writing: bool = False,
             action: str = "") -> HubCall:
        return HubCall(hub="ModelScope", endpoint=self.endpoint, endpoint_var="MODELSCOPE_ENDPOINT",
                       token_var="MODELSCOPE_API_TOKEN", token=self.token, repo_id=repo_id, repo_type=repo_type,
                       revision=revision, writing=writing, action=action, retry_hint=self.retry_hint,
                       offline=self.offline, cache=str(self.cache_dir or ""))

    def errors(self, repo_id: str, **call):
        """``with client.errors(repo_id, action=...):`` raises platform errors for ModelScope's."""
        return self.call(repo_id, **call).errors(modelscope_error)

    def download(self, repo_id: str, revision: str, patterns: list[str], progress: ProgressFn,
                 *, repo_type: str = "model") -> Snapshot:
        """The files of ``revision`` matching ``patterns`` (all when empty), in the SDK's cache."""
        from modelscope.hub.snapshot_download import dataset_snapshot_download, snapshot_download

        check_repo_id(repo_id)
        # ModelScope's default branch is "master"; "main" is what our callers default to.
        revision = "master" if revision in ("", "main") else revision
        cache = str(self.cache_dir) if self.cache_dir else None
        with self.errors(repo_id, revision=revision, repo_type=repo_type):
            if repo_type == "dataset":
                folder = dataset_snapshot_download(
                    repo_id, revision=revision, cache_dir=cache, allow_patterns=patterns or None,
                    token=self._sdk_token, endpoint=self.endpoint)
            else:
                folder = snapshot_download(
                    repo_id, revision=revision, cache_dir=cache, allow_patterns=patterns or None,
                    local_files_only=self.offline, token=self._sdk_token, endpoint=self.endpoint,
                    progress_callbacks=[_callback_class(progress)])
        # The SDK names the snapshot folder by revision and does not report a commit id.
        return Snapshot(hub=self.name, repo_id=repo_id, revision=revision, commit_sha="", folder=Path(folder))

    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        raise errors.Unimplemented(
            "Pushing a model folder to ModelScope is not supported yet; push to the Hugging Face Hub "
            "(hub=huggingface) or upload with 'modelscope upload'."
        )
