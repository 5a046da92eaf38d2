"""The hub clients every service uses: ``hf.HfClient`` (huggingface_hub) and
``modelscope.ModelScopeClient`` (the modelscope SDK), with their errors mapped in one place
(``errors``). The huggingface-integration plugin imports models and datasets and pushes with
them; cloud-storage backs up to hub repos with their ``api`` and ``errors()``.

Nothing here imports a hub library at import time: apt_model is in every image, and most
images do not install huggingface_hub or modelscope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from apt_model import errors

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


def valid_repo_id(repo_id: str) -> bool:
    """'name' or 'org/name' made of letters, digits, '-', '_', '.' (no '..'): safe in URLs and cache paths."""
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}(/[A-Za-z0-9][A-Za-z0-9._-]{0,95})?", repo_id or "") \
        is not None and ".." not in repo_id


def check_repo_id(repo_id: str) -> str:
    if not valid_repo_id(repo_id):
        raise errors.InvalidArgument(
            f"{repo_id!r} is not a valid repo id; give 'org/name' (letters, digits, '-', '_', '.').")
    return repo_id
