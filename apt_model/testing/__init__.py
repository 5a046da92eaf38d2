"""The testing library, for tests and benchmarks only (never in a service image: see
docker/imagebuild.py): tiny real models built from a config, real text, the tests' job context;
``apt_model.testing.fixtures``, the pytest plugin of the fixtures every service's tests share;
``apt_model.testing.hubs``, local servers speaking the Hugging Face Hub and ModelScope HTTP APIs;
``apt_model.testing.http_server``, the base of every local API server.

Nothing here is a stand-in: the models are real transformers models with random or
briefly trained weights, the tokenizer is really trained on the given text, and the real
client libraries talk HTTP to the local servers.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from apt_model import errors
from apt_model.gen.apt.plugins.echo.v1 import echo_pb2  # noqa: F401 - ECHO_JOB's contract, in the pool
from apt_model.runtime.jobs import JobContext, JobManager, JobState
from apt_model.store import Store

# A real long-running operation for tests that need *a* job but not a particular one: the echo
# test plugin's StartEcho, whose result message (apt.plugins.echo.v1.EchoResult) {} fits.
ECHO_JOB = "/apt.plugins.echo.v1.Echo/StartEcho"

# Mixed text for tokenizer training in tests: English, Chinese, code, emoji, digits.
SAMPLE_TEXT = [
    "The quick brown fox jumps over the lazy dog. It's 2026, and we're testing 12345 tokens.",
    "机器学习是人工智能的一个分支。我们在这里测试中文分词和字节级编码。",
    "def add(a, b):\n\treturn a + b  # simple code\n\nclass Foo:\n    pass\n",
    "Emoji test 😀🚀✨ and mixed 中文 English 123 text with   multiple   spaces.",
    "Language models predict the next token. Small models can still learn patterns.",
] * 20


def write_sample_jsonl(path: Path) -> Path:
    """SAMPLE_TEXT as a JSON-lines corpus, one ``{"text": ...}`` per line (UTF-8)."""
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in SAMPLE_TEXT),
                    encoding="utf-8")
    return path


def make_tiny_model(store: Store, name: str, *, size: str = "tiny", vocab_size: int = 384,
                    texts: list[str] | None = None, seed: int = 0, tokenizer=None,
                    operation: str = "test-fixture") -> Path:
    """Train a tokenizer on ``texts`` and store a randomly initialised ``apt`` preset model."""
    from apt_model.modeling.io import save_model
    from apt_model.modeling.preset import create_model, preset_config
    from apt_model.modeling.tokenizer import train_tokenizer

    tok = tokenizer or train_tokenizer(texts or SAMPLE_TEXT, vocab_size=vocab_size)
    config = preset_config(size, vocab_size=len(tok), bos_token_id=tok.bos_token_id,
                           eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = create_model(config, seed=seed)
    with store.create("models", name, operation=operation, parameters={"size": size, "seed": seed}) as tmp:
        save_model(model, tok, tmp)
    return store.model(name).path


def pretrain(store: Store, name: str, texts: list[str], steps: int, *, seq_len: int = 32, batch_size: int = 8,
             lr: float = 3e-3, seed: int = 0) -> None:
    """Give store model ``name`` real structure: ``steps`` of next-token training on random
    ``seq_len`` blocks of ``texts`` (seeded), stored back in place (operation ``test-pretrain``)."""
    import torch

    from apt_model.modeling.io import load_model, load_tokenizer, save_model

    path = store.model(name).path
    model, tok = load_model(path).train(), load_tokenizer(path)
    ids = torch.tensor(tok("\n\n".join(texts))["input_ids"])
    blocks = ids[: len(ids) // seq_len * seq_len].view(-1, seq_len)
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (batch_size,), generator=gen)]
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with store.create("models", name, operation="test-pretrain", overwrite=True) as tmp:
        save_model(model.eval(), tok, tmp)


def wait_for_state(manager: JobManager, job_id: str, state: JobState, timeout: float = 10) -> None:
    """Until job ``job_id`` of ``manager`` is in ``state``; fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while manager.get(job_id).state is not state:
        assert time.monotonic() < deadline, manager.get(job_id)
        time.sleep(0.01)


class JobRecorder(JobContext):
    """The tests' one job context: a real JobContext (of a manager that holds no job) that keeps
    every report, and ends the job the way a user's CancelJob lands between two units of work:
    once a report carries step ``cancel_at_step``, after ``cancel_after`` cancellation checks,
    or at the first check where ``stop_when()`` is true."""

    def __init__(self, *, cancel_at_step: int | None = None, cancel_after: int | None = None,
                 stop_when: Callable[[], bool] | None = None):
        super().__init__(JobManager("test"), "test:job")
        self.reports: list[dict[str, Any]] = []  # progress, stage, message and metrics of each report
        self.history: list[dict[str, float]] = []  # the metrics of the reports that had some
        self.cancel_at_step, self.cancel_after, self.stop_when = cancel_at_step, cancel_after, stop_when
        self.checks = 0

    def report(self, progress=None, stage=None, message=None, eta_seconds=None, **metrics):
        self.reports.append({"progress": progress, "stage": stage, "message": message, **metrics})
        if metrics:
            self.history.append(dict(metrics))
        super().report(progress, stage, message, eta_seconds, **metrics)
        if self.cancel_at_step is not None and metrics.get("step") == self.cancel_at_step:
            self.cancel()

    def check_cancelled(self) -> None:
        self.checks += 1
        if (self.cancel_after is not None and self.checks > self.cancel_after) or (
                self.stop_when is not None and self.stop_when()):
            raise errors.Cancelled("cancelled by the test")
        super().check_cancelled()

    def cancel(self) -> None:
        """Cancel the job now, as a user's CancelJob does (from any thread)."""
        self._cancel.set()

    def series(self, key: str) -> list[float]:
        """The values of one metric, report by report (a loss curve)."""
        return [m[key] for m in self.history if key in m]


class CancelAtStep(JobRecorder):
    """Cancels the job (as CancelJob does) once a report reaches ``step`` — or passes it: the ranks
    of a data-parallel run report at most twice a second, not every step. ``cancelled_at``: when
    (``time.monotonic()``), for how long the job then takes to end."""

    def __init__(self, step: int):
        super().__init__()
        self.at, self.cancelled_at = step, None

    def report(self, progress=None, stage=None, message=None, eta_seconds=None, **metrics):
        super().report(progress, stage, message, eta_seconds, **metrics)
        if metrics.get("step", 0) >= self.at and self.cancelled_at is None:
            self.cancelled_at = time.monotonic()
            self.cancel()


def rank_pids(folder: Path) -> dict[int, int]:
    """{rank: pid} of the rank processes of the data-parallel run in ``folder``
    (``apt_model.modeling.distributed.launch``; not torchrun's agent), from ``/proc``."""
    pids = {}
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            env = dict(v.split(b"=", 1) for v in (proc / "environ").read_bytes().split(b"\0") if b"=" in v)
        except (OSError, ValueError):
            continue
        if str(folder).encode() in cmd and b"torch.distributed.run" not in cmd:
            pids[int(env.get(b"RANK", b"-1"))] = int(proc.name)
    return pids


def assert_same_curve(rows: list[dict], expected: list[dict], steps: int, rel: float = 1e-4,
                      grad_rel: float = 1e-3) -> None:
    """A data-parallel run's training-log ``rows`` are those of ``expected`` (one process's at the
    same global batch and seed): ``steps`` steps, each loss within ``rel`` (relative), each gradient
    norm within ``grad_rel`` (the ranks sum gradients in another order)."""
    import pytest

    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    for a, b in zip(expected, rows):
        assert b["loss"] == pytest.approx(a["loss"], rel=rel), f"step {b['step']}"
        assert b["grad_norm"] == pytest.approx(a["grad_norm"], rel=grad_rel), f"step {b['step']}"
