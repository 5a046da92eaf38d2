"""Model hubs behind one interface, so a new hub needs no change in the servicer.

A hub downloads a repo snapshot (a subset chosen by glob patterns) into a local folder and
uploads a folder as one commit. Each implementation turns its client library's errors
into ``apt_model.errors`` with a sentence that names the next step; nothing above this
module sees a huggingface_hub or modelscope exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from apt_model import errors

from apt_hf.settings import HubSettings

# (bytes done, bytes expected or None when the hub does not say)
ProgressFn = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class Snapshot:
    """Files of one repo revision, on local disk."""

    hub: str
    repo_id: str
    revision: str  # what was asked for (branch, tag or commit)
    commit_sha: str  # what it resolved to; "" when the hub does not say
    folder: Path


@dataclass(frozen=True)
class PushResult:
    hub: str
    repo_id: str
    revision: str
    commit_sha: str
    commit_url: str
    files: int
    bytes: int  # size of the folder pushed; LFS objects the hub already held are not sent again


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
        from apt_hf.hub_hf import HuggingFaceHub

        return HuggingFaceHub(settings)
    if name in ("modelscope", "ms"):
        from apt_hf.hub_modelscope import ModelScopeHub

        return ModelScopeHub(settings)
    raise errors.InvalidArgument(f"Unknown hub {name!r}; choose one of: {', '.join(HUBS)}.")


def check_repo_id(repo_id: str) -> str:
    """Accept 'name' or 'org/name' made of letters, digits, '-', '_', '.'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?", repo_id or "") \
            or ".." in repo_id:
        raise errors.InvalidArgument(
            f"{repo_id!r} is neither an existing local folder nor a valid repo id; "
            "give 'org/name' (letters, digits, '-', '_', '.') or the path of a Hugging Face model folder."
        )
    return repo_id
