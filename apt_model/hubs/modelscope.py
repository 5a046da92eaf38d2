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


# ModelScope's default branch; "main", the default our callers send, means it.
DEFAULT_BRANCH = "master"


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
        revision = DEFAULT_BRANCH if revision in ("", "main") else revision
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

    # -- push ------------------------------------------------------------------------------------
    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        """Create the model repo when missing and commit ``folder``'s files to its default branch."""
        check_repo_id(repo_id)
        if "/" not in repo_id:
            raise errors.InvalidArgument(f"{repo_id!r} has no owner; ModelScope repo ids are 'owner/name'.")
        if revision not in ("", "main", DEFAULT_BRANCH):
            # the SDK has no call that creates a branch from master, as the Hub push does from main
            raise errors.InvalidArgument(
                f"ModelScope pushes go to the default branch {DEFAULT_BRANCH!r}; drop --revision {revision!r} "
                "(the modelscope SDK cannot create branches).")
        if self.offline:
            raise errors.FailedPrecondition("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it to push.")
        if not self.token:
            raise errors.PermissionDenied(
                f"Pushing to {repo_id!r} needs a token with write access: set MODELSCOPE_API_TOKEN in the "
                "service's environment.")
        api = self.api
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)

        # The SDK logs and swallows what its callback raises, so a cancel is honoured before the
        # upload starts, not during it.
        def on_batch(event: dict) -> None:
            if event.get("event") == "batch_committed":
                progress(int(event.get("committed_bytes") or 0), total)

        with self.errors(repo_id, writing=True):
            missing = not api.repo_exists(repo_id, "model")
        if missing:
            # upload_folder would create a missing repo itself, public and with every error
            # swallowed; creating it here first keeps the private flag and a refusal's status.
            try:
                with self.errors(repo_id, writing=True, action=f"create the model repo {repo_id!r}"):
                    api.create_repo(repo_id, "model", visibility="private" if private else "public")
            except errors.PermissionDenied as exc:
                raise errors.PermissionDenied(
                    f"{exc.message} The token cannot create repos under {repo_id.split('/')[0]!r}: push under "
                    f"your own user or an organization you may create repos in, or create {repo_id!r} on "
                    "ModelScope first.") from exc
        with self.errors(repo_id, revision=DEFAULT_BRANCH, writing=True):
            progress(0, total)
            # Large files go up as LFS blobs, which ModelScope deduplicates by sha256: a push
            # that was interrupted resends only the blobs the hub does not hold yet.
            commits = api.upload_folder(repo_id, "model", folder, commit_message=commit_message,
                                        revision=DEFAULT_BRANCH, use_cache=False, disable_tqdm=True,
                                        progress_callback=on_batch)
        # one dict per commit (the SDK splits big folders into batches); None when nothing changed
        last = (commits[-1] if isinstance(commits, list) and commits else commits) or {}
        sha = str(last.get("CommitId") or last.get("commit_id") or "") if isinstance(last, dict) else ""
        return PushResult(hub=self.name, repo_id=repo_id, revision=DEFAULT_BRANCH, commit_sha=sha,
                          commit_url=f"{self.endpoint}/models/{repo_id}/files", files=len(files), bytes=total)
