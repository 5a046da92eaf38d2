"""The one training-loop skeleton every training service runs: core ``train``, pruning's
recovery and lottery rounds, distillation, and the coming plugins.

A service gives the loop what differs — how a micro-batch's loss terms are computed
(``forward(step, micro)``), its evaluation and its checkpoint — and the loop does the rest
the same way everywhere: the learning rate of each step, gradient accumulation, bf16
autocast on CUDA, the non-finite-loss guard, per-block and total gradient norms, clipping,
one ``training_log.jsonl`` row per step, progress reports (throttled), evaluation and
checkpoints every N steps, a wall-clock limit, and cancel (a checkpoint of the work done,
then ``errors.Cancelled`` goes up).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.modeling.distributed import Ranks, full_tensor
from apt_model.runtime.joblog import JobLog
from apt_model.runtime.jobs import JobContext

REPORT_SECONDS = 0.5  # progress updates at most this often (evaluations and the last step always)

# "loss" (what is minimised) and any named parts of it; optionally "tokens" (an int): what the
# micro-batch trained on, when it is not ``Loop.tokens_per_step / grad_accum`` (a short last batch)
Terms = dict[str, "torch.Tensor | int"]


@dataclass
class Loop:
    """One run of optimiser steps ``step .. max_steps`` (0-based, continued from a checkpoint).

    ``lr_at(step)`` gives each step's learning rate (written into every parameter group);
    ``forward(step, micro)`` returns the loss terms of micro-batch ``micro`` of ``step``;
    ``evaluate()`` returns validation values (merged into that step's log row and report);
    ``checkpoint(step)`` saves the state after ``step`` optimiser steps.
    """

    ctx: JobContext
    model: torch.nn.Module           # whose per-block gradient norms are logged
    optimizer: torch.optim.Optimizer
    lr_at: Callable[[int], float]
    max_steps: int
    tokens_per_step: int
    grad_accum: int = 1
    grad_clip: float = 1.0           # max global gradient norm; 0 = no clipping (the norm is still logged)
    device: str = "cpu"              # "cuda" turns on bf16 autocast around ``forward``
    stage: str = "train"
    progress: tuple[float, float] = (0.0, 1.0)  # the share of the job this loop covers
    eval_every: int = 0              # 0: no evaluation inside the loop
    evaluate: Callable[[], dict[str, float]] | None = None
    checkpoint_every: int = 0        # 0: a checkpoint only on cancel
    checkpoint: Callable[[int], None] | None = None
    max_seconds: float = math.inf    # stop after this wall time (``stopped_early``)
    nonfinite_hint: str = "lower the learning rate and retry"
    on_step: Callable[[int], None] | None = None  # after each step (1-based), e.g. a rewind point
    log: list[dict[str, Any]] = field(default_factory=list)  # training_log.jsonl rows, numbered on
    log_extra: dict[str, Any] = field(default_factory=dict)  # fields every row of this loop carries
    ranks: Ranks = field(default_factory=Ranks)  # a data-parallel run: terms averaged, stops agreed
    no_sync: Callable[[], Any] | None = None     # DDP's no_sync: skip the all-reduce of all but the last micro-batch
    job_log: JobLog | None = None  # the job's running log (rank 0's); None: the context's (JobContext.running_log)
    stopped_early: bool = False
    last: dict[str, float] = field(default_factory=dict)     # the last step's terms and evaluation

    def __post_init__(self) -> None:
        if self.job_log is None:  # every training job of every service keeps a running log
            self.job_log = getattr(self.ctx, "running_log", None)

    def run(self, step: int, forward: Callable[[int, int], Terms]) -> int:
        """Train from ``step`` to ``max_steps``; returns the step reached."""
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        deadline = time.monotonic() + self.max_seconds
        first, started, last_report, trained = step, time.monotonic(), 0.0, 0
        self.model.train()
        if self.job_log is not None and self.ranks.main:
            self.job_log.start(self.log)
        try:
            while step < self.max_steps:
                if self.ranks.world == 1:  # ranks agree on a cancel after each step (below)
                    self.ctx.check_cancelled()
                t0 = time.perf_counter()
                lr = self.lr_at(step)
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                terms, tokens = self._backward(step, forward)
                # one small all-reduce: the global batch's terms, and whether any rank must stop
                terms, stop = self.ranks.agree(terms, {
                    "cancel": self.ranks.world > 1 and self.ctx.cancelled,
                    "deadline": time.monotonic() >= deadline})
                tokens *= self.ranks.world
                blocks = trainlog.block_grad_norms(self.model) if trainlog.wants_block_norms(
                    len(self.log) + 1) else None
                # the total norm before clipping, for the log (an infinite limit clips nothing; FSDP's: whole)
                grad_norm = float(full_tensor(torch.nn.utils.clip_grad_norm_(params, self.grad_clip or math.inf)))
                self.optimizer.step()
                self.optimizer.zero_grad(set_to_none=True)
                step += 1
                trained += tokens
                seconds = time.perf_counter() - t0
                self.last = dict(terms)
                row = trainlog.row(len(self.log) + 1, terms["loss"], lr, grad_norm, seconds, tokens,
                                   blocks, **self.log_extra, **{k: v for k, v in terms.items() if k != "loss"})
                evaluated = self.evaluate is not None and self.eval_every > 0 and (
                    step % self.eval_every == 0 or step == self.max_steps)
                if evaluated:
                    values = self.evaluate()
                    row.update(values)
                    self.last.update(values)
                self._keep(row)
                if self.checkpoint is not None and self.checkpoint_every and step % self.checkpoint_every == 0 \
                        and step < self.max_steps:
                    self.checkpoint(step)
                if self.on_step is not None:
                    self.on_step(step)
                now = time.monotonic()
                if now - last_report >= REPORT_SECONDS or step == self.max_steps or evaluated:
                    self._report(step, first, now - started, lr, trained)
                    last_report = now
                if stop["cancel"]:
                    raise errors.Cancelled("The job was cancelled.")
                if stop["deadline"] and step < self.max_steps:
                    self.stopped_early = True
                    break
        except errors.Cancelled:
            if step > first and self.checkpoint is not None:  # keep the work done; resume picks it up
                self.checkpoint(step)
            raise
        return step

    def _keep(self, row: dict[str, Any]) -> None:
        """A finished step's row: into the log, and the job's running log when there is one."""
        self.log.append(row)
        if self.job_log is not None and self.ranks.main:
            self.job_log.append(row)

    def _backward(self, step: int, forward: Callable[[int, int], Terms]) -> tuple[dict[str, float], int]:
        """The gradients of one optimiser step, accumulated over its micro-batches; the mean
        terms and the tokens trained on."""
        sums: dict[str, float] = {}
        tokens = 0
        for micro in range(self.grad_accum):
            last = micro == self.grad_accum - 1
            with self.no_sync() if self.no_sync is not None and not last else contextlib.nullcontext():
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device == "cuda"):
                    terms = dict(forward(step, micro))
                tokens += int(terms.pop("tokens", self.tokens_per_step // self.grad_accum))
                loss = terms["loss"]
                if not torch.isfinite(loss):
                    parts = ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items() if k != "loss")
                    raise errors.FailedPrecondition(
                        f"{self.stage}: the loss became {float(loss)} at step {step + 1}"
                        + (f" ({parts})" if parts else "") + f"; {self.nonfinite_hint}.")
                (loss / self.grad_accum).backward()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / self.grad_accum
        return sums, tokens

    def _report(self, step: int, first: int, elapsed: float, lr: float, trained: int) -> None:
        """A progress report: share done, ETA, tokens/s since this loop started, the last terms."""
        lo, hi = self.progress
        per_step = elapsed / max(step - first, 1)
        self.ctx.report(progress=lo + (hi - lo) * step / self.max_steps, stage=self.stage,
                        message=f"{self.stage} step {step}/{self.max_steps} loss {self.last['loss']:.4f}",
                        eta_seconds=per_step * (self.max_steps - step), step=step, lr=lr,
                        tokens_per_s=trained / elapsed if elapsed > 0 else 0.0, **self.last)
