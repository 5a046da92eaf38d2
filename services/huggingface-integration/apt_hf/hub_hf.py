"""The Hugging Face Hub, through huggingface_hub (download, create repo, commit)."""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path
from typing import Iterator

from apt_model import errors

from apt_hf.hubs import ProgressFn, PushResult, Snapshot, check_repo_id
from apt_hf.settings import HubSettings

log = logging.getLogger(__name__)

# huggingface_hub names the bar that counts bytes written to disk by a snapshot download.
_BYTES_BAR = "huggingface_hub.snapshot_download"


def _is_commit_sha(revision: str) -> bool:
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


class HuggingFaceHub:
    name = "huggingface"

    def __init__(self, settings: HubSettings):
        self.settings = settings

    def _api(self):
        from huggingface_hub import HfApi

        return HfApi(endpoint=self.settings.hf_endpoint, token=self.settings.hf_token or False)

    def download(self, repo_id: str, revision: str, patterns: list[str], progress: ProgressFn,
                 *, repo_type: str = "model") -> Snapshot:
        from huggingface_hub import snapshot_download

        check_repo_id(repo_id)
        if not self.settings.offline and not _is_commit_sha(revision):
            self._ask_hub_first(repo_id, revision, repo_type)
        with self._errors(repo_id, revision, repo_type):
            folder = snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=revision,
                cache_dir=self.settings.hf_cache,
                endpoint=self.settings.hf_endpoint,
                token=self.settings.hf_token or False,
                local_files_only=self.settings.offline,
                allow_patterns=patterns or None,
                tqdm_class=_bar_class(progress),
                etag_timeout=self.settings.timeout_s,
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
            with self._errors(repo_id, revision, repo_type):
                self._api().repo_info(repo_id, revision=revision, repo_type=repo_type, timeout=self.settings.timeout_s)
        except errors.Unavailable as exc:
            cached = self._cached_commit(repo_id, revision, repo_type)
            if cached is None:
                raise
            raise errors.Unavailable(
                f"The Hub at {self.settings.hf_endpoint} cannot be reached or is down, so {revision!r} of "
                f"{repo_id!r} cannot be resolved. "
                f"The local cache holds commit {cached} for it: set HF_HUB_OFFLINE=1 to import that copy, "
                "or check the network and HF_ENDPOINT."
            ) from exc

    def _cached_commit(self, repo_id: str, revision: str, repo_type: str) -> str | None:
        """The commit the HF cache recorded for ``revision`` (refs/<revision>), if any."""
        from huggingface_hub import constants
        from huggingface_hub.file_download import repo_folder_name

        cache = Path(self.settings.hf_cache or constants.HF_HUB_CACHE)
        ref = cache / repo_folder_name(repo_id=repo_id, repo_type=repo_type) / "refs" / revision
        try:
            sha = ref.read_text().strip()
        except OSError:
            return None
        return sha if _is_commit_sha(sha) else None

    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        from huggingface_hub import CommitOperationAdd

        check_repo_id(repo_id)
        if self.settings.offline:
            raise errors.FailedPrecondition("HF_HUB_OFFLINE is set, so nothing can be pushed; unset it to push.")
        if not self.settings.hf_token:
            raise errors.PermissionDenied(
                f"Pushing to {repo_id!r} needs a token with write access: set HF_TOKEN in the service's environment."
            )
        api = self._api()
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)
        with self._errors(repo_id, revision, "model", writing=True):
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
            info = api.create_commit(repo_id, operations=ops, commit_message=commit_message,
                                     revision=revision)
        return PushResult(hub=self.name, repo_id=repo_id, revision=revision, commit_sha=info.oid,
                          commit_url=str(info.commit_url), files=len(files), bytes=total)

    @contextlib.contextmanager
    def _errors(self, repo_id: str, revision: str, repo_type: str, writing: bool = False) -> Iterator[None]:
        """Turn huggingface_hub and HTTP errors into platform errors with a next step."""
        import httpx2
        from huggingface_hub import errors as hf

        where = self.settings.hf_endpoint
        token_hint = ("HF_TOKEN is set but was refused: check that it is valid and has "
                      f"{'write' if writing else 'read'} access to {repo_id!r}"
                      if self.settings.hf_token else
                      f"set HF_TOKEN to a token with {'write' if writing else 'read'} access to {repo_id!r}")
        try:
            yield
        except hf.GatedRepoError as exc:
            raise errors.PermissionDenied(
                f"{repo_type} repo {repo_id!r} on {where} is gated: accept its terms on the Hub, then {token_hint}."
            ) from exc
        except hf.RevisionNotFoundError as exc:
            raise errors.NotFound(
                f"{repo_type} repo {repo_id!r} has no revision {revision!r} on {where}; "
                "give an existing branch, tag or commit."
            ) from exc
        except hf.RepositoryNotFoundError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                # the Hub answers anonymous callers 401 for private and for missing repos alike
                raise errors.PermissionDenied(
                    f"{repo_type} repo {repo_id!r} on {where} is private, gated or does not exist "
                    f"(HTTP {status}, the Hub does not say which without a token): check the repo id, "
                    f"and {token_hint}."
                ) from exc
            raise errors.NotFound(
                f"No {repo_type} repo {repo_id!r} on {where}; check the repo id (format 'org/name')."
            ) from exc
        except hf.RemoteEntryNotFoundError as exc:
            raise errors.NotFound(f"A file of {repo_id!r} at {revision!r} is missing on {where}: {exc}") from exc
        except hf.LocalEntryNotFoundError as exc:
            if self.settings.offline:
                raise errors.FailedPrecondition(
                    f"HF_HUB_OFFLINE is set and {repo_id!r} at {revision!r} is not (completely) in the cache "
                    f"{self.settings.hf_cache or '(default)'}; unset HF_HUB_OFFLINE to download it."
                ) from exc
            raise errors.Unavailable(
                f"Cannot reach the Hub at {where} to fetch {repo_id!r}, and it is not in the local cache. "
                "Check the network and HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to import from the cache only."
            ) from exc
        except hf.HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if status in (401, 403):
                raise errors.PermissionDenied(f"The Hub at {where} refused the request (HTTP {status}): {token_hint}.") from exc
            if status == 429 or status >= 500:
                raise errors.Unavailable(
                    f"The Hub at {where} is unavailable (HTTP {status}); retry later, or set HF_HUB_OFFLINE=1 "
                    "to import from the cache."
                ) from exc
            raise errors.FailedPrecondition(f"The Hub at {where} rejected the request: {str(exc)[:300]}") from exc
        except (httpx2.TransportError, ConnectionError) as exc:
            raise errors.Unavailable(
                f"Cannot reach the Hub at {where} ({type(exc).__name__}). Check the network and HF_ENDPOINT, "
                "or set HF_HUB_OFFLINE=1 to import from the local cache."
            ) from exc
        except hf.HFValidationError as exc:
            raise errors.InvalidArgument(f"Invalid repo id or revision: {exc}") from exc
