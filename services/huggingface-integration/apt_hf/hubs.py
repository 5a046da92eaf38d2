"""Model hubs behind one interface, so a new hub needs no change in the servicer.

A hub downloads a repo snapshot (a subset chosen by glob patterns) into a local folder and
uploads a folder as one commit. The clients are apt_model.hubs' (shared with cloud-storage):
they turn their client library's errors into ``apt_model.errors`` with a sentence that names
the next step, so nothing above this module sees a huggingface_hub or modelscope exception.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from apt_model import errors
from apt_model.hubs import ProgressFn, PushResult, Snapshot, valid_repo_id

from apt_hf.settings import HubSettings

__all__ = ["HUBS", "ModelHub", "ProgressFn", "PushResult", "Snapshot", "check_repo_id", "get_hub"]

# What the import suggests when a hub cannot be reached: the HF cache may hold the repo.
OFFLINE_HINT = "Set HF_HUB_OFFLINE=1 to import from the local cache."


class ModelHub(Protocol):
    """What the import, push and dataset operations need from a hub."""

    name: str

    def download(self, repo_id: str, revision: str, patterns: list[str], progress: ProgressFn,
                 *, repo_type: str = "model") -> Snapshot:
        """Fetch the files matching ``patterns`` (all when empty) and return their folder."""
        ...

    def upload(self, folder: Path, repo_id: str, *, private: bool, commit_message: str,
               revision: str, progress: ProgressFn) -> PushResult:
        """Create the repo when missing and commit the folder's files to ``revision``."""
        ...


HUBS = ("huggingface", "modelscope")


def get_hub(name: str, settings: HubSettings) -> ModelHub:
    """The hub called ``name`` ("" means huggingface)."""
    name = (name or "huggingface").strip().lower()
    if name in ("huggingface", "hf"):
        from apt_model.hubs.hf import HfClient

        return HfClient(settings.hf_endpoint, settings.hf_token, cache_dir=settings.hf_cache,
                        offline=settings.offline, timeout_s=settings.timeout_s, retry_hint=OFFLINE_HINT)
    if name in ("modelscope", "ms"):
        from apt_model.hubs.modelscope import ModelScopeClient

        return ModelScopeClient(settings.modelscope_endpoint, settings.modelscope_token,
                                cache_dir=settings.modelscope_cache, offline=settings.offline,
                                retry_hint=OFFLINE_HINT)
    raise errors.InvalidArgument(f"Unknown hub {name!r}; choose one of: {', '.join(HUBS)}.")


def check_repo_id(repo_id: str) -> str:
    """Accept 'name' or 'org/name' made of letters, digits, '-', '_', '.'."""
    if not valid_repo_id(repo_id):
        raise errors.InvalidArgument(
            f"{repo_id!r} is neither an existing local folder nor a valid repo id; "
            "give 'org/name' (letters, digits, '-', '_', '.') or the path of a Hugging Face model folder."
        )
    return repo_id
