"""Hub settings, read once from the environment at the service's entry point.

huggingface_hub reads its own environment at import time; the values here are passed to
every call explicitly (endpoint, token, cache, offline), so a service started with a
given environment and a test building ``HubSettings(...)`` by hand behave the same way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


@dataclass(frozen=True)
class HubSettings:
    hf_endpoint: str = "https://huggingface.co"  # HF_ENDPOINT: the Hub (or a mirror) to talk to
    hf_token: str | None = None  # HF_TOKEN: sent as a bearer token; never logged or returned
    hf_cache: Path | None = None  # HF_HUB_CACHE / HF_HOME/hub; None = huggingface_hub's default
    offline: bool = False  # HF_HUB_OFFLINE: serve imports from the cache only, never the network
    modelscope_endpoint: str = "https://www.modelscope.cn"  # MODELSCOPE_ENDPOINT
    modelscope_token: str | None = None  # MODELSCOPE_API_TOKEN
    modelscope_cache: Path | None = None  # MODELSCOPE_CACHE; None = the SDK's default
    timeout_s: float = 30.0  # per HTTP request (metadata calls); downloads stream without limit

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "HubSettings":
        env = dict(os.environ if env is None else env)
        cache = env.get("HF_HUB_CACHE") or (
            str(Path(env["HF_HOME"]) / "hub") if env.get("HF_HOME") else None
        )
        return cls(
            hf_endpoint=(env.get("HF_ENDPOINT") or cls.hf_endpoint).rstrip("/"),
            hf_token=env.get("HF_TOKEN") or None,
            hf_cache=Path(cache) if cache else None,
            offline=_flag(env.get("HF_HUB_OFFLINE")) or _flag(env.get("TRANSFORMERS_OFFLINE")),
            modelscope_endpoint=(env.get("MODELSCOPE_ENDPOINT") or cls.modelscope_endpoint).rstrip("/"),
            modelscope_token=env.get("MODELSCOPE_API_TOKEN") or None,
            modelscope_cache=Path(env["MODELSCOPE_CACHE"]) if env.get("MODELSCOPE_CACHE") else None,
        )
