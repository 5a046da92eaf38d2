"""Local servers speaking the subset of the Hugging Face Hub and ModelScope HTTP APIs that the
hub plugins use, so the real client libraries run unmodified against them in tests and
benchmarks. They are not the hubs and do not stand in for any code of this project."""

from apt_model.testing.hubs.hf import LocalHfHubServer
from apt_model.testing.hubs.modelscope import LocalModelScopeServer

__all__ = ["LocalHfHubServer", "LocalModelScopeServer"]
