"""Test helpers: jobs run by a real JobManager, store checks."""

from __future__ import annotations

import time
from pathlib import Path

from apt_model.gen.apt.plugins.huggingface_integration.v1 import huggingface_pb2
from apt_model.runtime.jobs import JobManager, JobSnapshot
from apt_model.store import Store

READ_TOKEN, WRITE_TOKEN = "hf_read_alice", "hf_write_alice"
# LocalHfHubServer's tokens in the tests: alice may read with one and write with the other
HUB_TOKENS = {READ_TOKEN: ("alice", False), WRITE_TOKEN: ("alice", True)}
# LocalModelScopeServer's token in the tests: alice's, which may create repos under "alice" only
MS_TOKEN = "ms-alice-write-7f3a9c"
MS_NAMESPACES = {MS_TOKEN: {"alice"}}


def save_non_causal_model(folder: Path) -> Path:
    """A tiny BertForSequenceClassification checkpoint: a model the import must refuse."""
    from transformers import BertConfig, BertForSequenceClassification

    BertForSequenceClassification(BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=32)).save_pretrained(folder)
    return folder


SERVICE = huggingface_pb2.DESCRIPTOR.services_by_name["HuggingFace"].full_name


class JobRun:
    """A job run by a real JobManager as the HuggingFace ``method`` it does the work of (so its
    result must fit that method's declared message), with every published snapshot kept."""

    def __init__(self, method: str, work, timeout: float = 120.0):
        self.manager = JobManager("test", max_workers=1)
        first = self.manager.start(f"/{SERVICE}/{method}", work)
        self.snapshots: list[JobSnapshot] = list(self.manager.watch(first.id, poll=0.05))
        self.final = self.snapshots[-1]
        self.manager.shutdown(cancel_running=False)

    @property
    def ok(self) -> bool:
        return self.final.state.value == "SUCCEEDED"

    def metric_values(self, key: str) -> list[float]:
        return [s.metrics[key] for s in self.snapshots if key in s.metrics]


def store_is_clean(store: Store) -> bool:
    """No entries and no leftovers of a failed build in the store."""
    leftovers = [p for kind in ("models", "datasets") if (store.root / kind).is_dir()
                 for p in (store.root / kind).iterdir()]
    return not leftovers


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
