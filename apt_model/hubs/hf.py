"""The Hugging Face Hub through huggingface_hub: snapshot download, folder push, and the
configured ``HfApi`` for everything else, with every error mapped by ``apt_model.hubs.errors``.

The endpoint, token, cache and offline flag are passed to every call explicitly (huggingface_hub
otherwise reads its own environment at import time), so a service and a test that build the
client by hand behave the same way.
"""

from __future__ import annotations

import functools
import logging
import re
from pathlib import Path

from apt_model import errors
from apt_model.hubs import ProgressFn, PushResult, Snapshot, check_repo_id
from apt_model.hubs.errors import HubCall, hf_error

log = logging.getLogger(__name__)

# huggingface_hub names the bar that counts bytes written to disk by a snapshot download.
_BYTES_BAR = "huggingface_hub.snapshot_download"


def is_commit_sha(revision: str) -> bool:
    return re.fullmatch(r"[0-9a-f]{40}", revision or "") is not None


def _bar_class(progress: ProgressFn):
    """A tqdm class for snapshot_download that forwards its byte counter to ``progress``.

    ``tqdm_class`` is huggingface_hub's documented hook for download progress; the files bar
    and the network-transfer bar it also creates are left alone.
    """
    from huggingface_hub.utils import tqdm as hf_tqdm

    class JobBytesBar(hf_tqdm):
        def __init__(self, *args, **kwargs):
            self._forward = kwargs.get("name") == _BYTES_BAR
            self._done = 0
            super().__init__(*args, **kwargs)

        def update(self, n=1):
            if self._forward and n:
                self._done += int(n)
                progress(self._done, int(self.total) if self.total else None)
            return super().update(n)

    return JobBytesBar


class HfClient:
    """One Hub endpoint with one token (or none)."""

    name = "huggingface"

    def __init__(self, endpoint: str = "https://huggingface.co", token: str | None = None, *,
                 cache_dir: Path | None = None, offline: bool = False, timeout_s: float = 30.0,
                 retry_hint: str = ""):
        self.endpoint = endpoint.rstrip("/")
        self.token = token or None  # sent as a bearer token; never logged or returned
        self.cache_dir = cache_dir  # None = huggingface_hub's default cache
        self.offline = offline  # HF_HUB_OFFLINE: downloads come from the cache only
        self.timeout_s = timeout_s  # per metadata request; downloads stream without limit
        self.retry_hint = retry_hint  # the caller's next step when the Hub is unreachable or down

    @functools.cached_property
    def api(self):
        """huggingface_hub's HfApi for this endpoint and token."""
        from huggingface_hub import HfApi

        # False, not None: with None huggingface_hub would read HF_TOKEN itself, and send it to
        # an endpoint the token was not meant for
        return HfApi(endpoint=self.endpoint, token=self.token or False)

    def call(self, repo_id: str, *, repo_type: str = "model", revision: str = "", writing: bool = False,
             action: str = "") -> HubCall:
        return HubCall(hub="The Hub", endpoint=self.endpoint, endpoint_var="HF_ENDPOINT", token_var="HF_TOKEN",
                       token=self.token, repo_id=repo_id, repo_type=repo_type, revision=revision, writing=writing,
                       action=action, retry_hint=self.retry_hint, offline=self.offline,
                       cache=str(self.cache_dir or ""))

    def errors(self, repo_id: str, **call):
        """``with client.errors(repo_id, action=...):`` raises platform errors for the Hub's."""
        return self.call(repo_id, **call).errors(hf_error)

    # -- download --------------------------------------------------------------------------------
    def download(self, repo_id: str, revision: str, patterns: list[str], progress: ProgressFn,
                 *, repo_type: str = "model") -> Snapshot:
        """The files of ``revision`` matching ``patterns`` (all when empty), in the HF cache."""
        from huggingface_hub import snapshot_download

        check_repo_id(repo_id)
        if not self.offline and not is_commit_sha(revision):
            self._ask_hub_first(repo_id, revision, repo_type)
        with self.errors(repo_id, revision=revision, repo_type=repo_type):
            folder = snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                cache_dir=self.cache_dir,
                endpoint=self.endpoint,
                token=self.token or False,
                local_files_only=self.offline,
                allow_patterns=patterns or None,
                tqdm_class=_bar_class(progress),
                etag_timeout=self.timeout_s,
            )
        folder = Path(folder)
        # The cache keeps one folder per commit, so its name is the resolved commit sha.
        sha = folder.name if folder.parent.name == "snapshots" else ""
        return Snapshot(hub=self.name, repo_id=repo_id, revision=revision, commit_sha=sha, folder=folder)

    def _ask_hub_first(self, repo_id: str, revision: str, repo_type: str) -> None:
        """Resolve a branch or tag on the Hub before downloading.

        snapshot_download serves a cached copy when the Hub cannot be reached, which would turn
        an outage into a silent import of whatever commit the cache last saw. Online, the Hub
        decides what a branch points to; the cache is used only when HF_HUB_OFFLINE says so.
        """
        try:
            with self.errors(repo_id, revision=revision, repo_type=repo_type):
                self.api.repo_info(repo_id, revision=revision, repo_type=repo_type, timeout=self.timeout_s)
        except errors.Unavailable as exc:
            cached = self.cached_commit(repo_id, revision, repo_type)
            if cached is None:
                raise
            raise errors.Unavailable(
                f"The Hub at {self.endpoint} cannot be reached or is down, so {revision!r} of "
                f"{repo_id!r} cannot be resolved. "
                f"The local cache holds commit {cached} for it: set HF_HUB_OFFLINE=1 to import that copy, "
                "or check the network and HF_ENDPOINT."
            ) from exc

    def cached_commit(self, repo_id: str, revision: str, repo_type: str = "model") -> str | None:
        """The commit the HF cache recorded for ``revision`` (refs/<revision>), if any."""
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        cache = Path(self.cache_dir or constants.HF_HUB_CACHE)
        ref = cache / repo_folder_name(repo_id=repo_id, repo_type=repo_type) / "refs" / revision
        try:
            sha = ref.read_text().strip()
        except OSError:
            return None
        return sha if is_commit_sha(sha) else None

    # -- push ------------------------------------------------------------------------------------
    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        """Create the model repo (and branch) when missing and commit ``folder``'s files to it."""
        from huggingface_hub import CommitOperationAdd

        check_repo_id(repo_id)
        if self.offline:
            raise errors.FailedPrecondition("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it to push.")
        if not self.token:
            raise errors.PermissionDenied(
                f"Pushing to {repo_id!r} needs a token with write access: set HF_TOKEN in the service's environment."
            )
        api = self.api
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)
        with self.errors(repo_id, revision=revision, writing=True):
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision != "main":
                api.create_branch(repo_id, branch=revision, exist_ok=True)
            ops = [CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
                   for p in files]
            done = 0
            progress(0, total)
            # One file per pre-upload call so progress moves file by file. Large files go
            # through LFS, whose batch call skips objects the Hub already holds: a push that
            # was interrupted resumes without sending finished files again.
            for op, path in zip(ops, files):
                api.preupload_lfs_files(repo_id, [op], revision=revision)
                done += path.stat().st_size
                progress(done, total)
            info = api.create_commit(repo_id, operations=ops, commit_message=commit_message, revision=revision)
        return PushResult(hub=self.name, repo_id=repo_id, revision=revision, commit_sha=info.oid,
                          commit_url=str(info.commit_url), files=len(files), bytes=total)
