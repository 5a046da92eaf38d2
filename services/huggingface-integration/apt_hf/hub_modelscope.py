"""ModelScope, through the modelscope SDK (endpoint from MODELSCOPE_ENDPOINT)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from apt_model import errors

from apt_hf.hubs import ProgressFn, PushResult, Snapshot, check_repo_id
from apt_hf.settings import HubSettings


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


class ModelScopeHub:
    name = "modelscope"

    def __init__(self, settings: HubSettings):
        self.settings = settings

    def download(self, repo_id: str, revision: str, patterns: list[str], progress: ProgressFn,
                 *, repo_type: str = "model") -> Snapshot:
        from modelscope.hub.snapshot_download import dataset_snapshot_download, snapshot_download

        check_repo_id(repo_id)
        # ModelScope's default branch is "master"; "main" is what our callers default to.
        revision = "master" if revision in ("", "main") else revision
        cache = str(self.settings.modelscope_cache) if self.settings.modelscope_cache else None
        with self._errors(repo_id, revision):
            if repo_type == "dataset":
                folder = dataset_snapshot_download(
                    repo_id, revision=revision, cache_dir=cache, allow_patterns=patterns or None,
                    token=self.settings.modelscope_token, endpoint=self.settings.modelscope_endpoint)
            else:
                folder = snapshot_download(
                    repo_id, revision=revision, cache_dir=cache, allow_patterns=patterns or None,
                    local_files_only=self.settings.offline, token=self.settings.modelscope_token,
                    endpoint=self.settings.modelscope_endpoint, progress_callbacks=[_callback_class(progress)])
        # The SDK names the snapshot folder by revision and does not report a commit id.
        return Snapshot(hub=self.name, repo_id=repo_id, revision=revision, commit_sha="", folder=Path(folder))

    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        raise errors.Unimplemented(
            "Pushing to ModelScope is not supported by this plugin yet; push to the Hugging Face Hub "
            "(hub=huggingface) or upload with 'modelscope upload'."
        )

    @contextlib.contextmanager
    def _errors(self, repo_id: str, revision: str) -> Iterator[None]:
        import requests
        from modelscope_hub import errors as ms

        where = self.settings.modelscope_endpoint
        token_hint = ("MODELSCOPE_API_TOKEN is set but was refused: check it has access to "
                      f"{repo_id!r}" if self.settings.modelscope_token else
                      f"set MODELSCOPE_API_TOKEN to a token with access to {repo_id!r}")
        try:
            yield
        except (ms.NetworkError, requests.ConnectionError) as exc:
            raise errors.Unavailable(
                f"Cannot reach ModelScope at {where} ({type(exc).__name__}). Check the network and "
                "MODELSCOPE_ENDPOINT, or set HF_HUB_OFFLINE=1 to import from the local cache only."
            ) from exc
        except (ms.APIError, requests.HTTPError) as exc:
            # the SDK's compat layer raises requests.HTTPError; its core raises APIError
            response = getattr(exc, "response", None)
            status = getattr(exc, "status_code", None) or (response.status_code if response is not None else 0)
            if status in (401, 403):
                raise errors.PermissionDenied(
                    f"ModelScope at {where} refused access to {repo_id!r} (HTTP {status}): {token_hint}."
                ) from exc
            if status == 404:
                raise errors.NotFound(
                    f"ModelScope at {where} has no model {repo_id!r} at revision {revision!r} "
                    f"; check the repo id and revision."
                ) from exc
            if status == 429 or status >= 500:
                raise errors.Unavailable(f"ModelScope at {where} is unavailable (HTTP {status}); retry later.") from exc
            raise errors.FailedPrecondition(f"ModelScope at {where} rejected the request: {str(exc)[:300]}") from exc
        except ms.HubError as exc:
            raise errors.FailedPrecondition(f"ModelScope download of {repo_id!r} failed: {exc}") from exc
