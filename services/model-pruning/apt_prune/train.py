"""A short training loop for recovery fine-tunes and lottery rounds.

AdamW with linear warm-up and cosine decay, gradient clipping at 1.0, on the platform's
training loop (``apt_model.modeling.loop``), data-parallel over the ranks of a run with
``workers`` > 1 (``apt_model.modeling.distributed``). Pruned weights stay
pruned: unstructured masks live in ``torch.nn.utils.prune`` forward hooks while training,
and structured pruning removed the weights outright.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterator

import torch

from apt_model import errors
from apt_model.modeling import distributed, trainlog
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext

WARMUP_FRACTION = 0.1
MIN_LR_FRACTION = 0.1


def train_steps(model, batches: Iterator[torch.Tensor], steps: int, lr: float, ctx: JobContext, *,
                stage: str, progress: tuple[float, float],
                on_step: Callable[[int], None] | None = None, log: list[dict] | None = None,
                ranks: Ranks = Ranks(), sharding: str = "ddp") -> list[float]:
    """Train ``model`` for ``steps`` optimiser steps on the platform's loop
    (``apt_model.modeling.loop``); returns the loss of each step.

    ``progress`` is the (start, end) share of the job this phase covers; ``on_step(n)`` is
    called after step n (1-based), e.g. to take the lottery's rewind checkpoint. ``log``
    collects training_log.jsonl's rows, numbered on from the rows already in it, so the
    lottery's rounds and the recovery make one log. ``ranks``: this process's place in a
    data-parallel run; every rank draws the same global batches and trains its share of the rows.
    ``sharding="fsdp"`` (more than one rank): FSDP2 over a copy of ``model`` while ``model`` itself
    waits weightless (meta device); afterwards rank 0's ``model`` holds the trained weights, whole
    (pruning masks and all), and the other ranks' stays weightless: only rank 0 goes on with it.
    """
    if steps <= 0:
        return []
    warmup = max(1, int(steps * WARMUP_FRACTION))
    rows = log if log is not None else []
    first = len(rows)
    sharded = sharding == "fsdp" and ranks.world > 1
    trained = _weightless_original(model) if sharded else model

    def make_optimizer():
        params = [p for p in trained.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)

    # DDP: the gradients are averaged over the ranks in backward; FSDP: the copy itself is the root
    par = distributed.parallelize(ranks, trained, "cpu", make_optimizer(), make_optimizer, sharding=sharding,
                                  blocks=trainlog.transformer_blocks(trained))

    def forward(step: int, micro: int) -> dict:
        ids = ranks.shard(next(batches))  # (batch_size / world, S): this rank's rows of the global batch
        return {"loss": par.loss(input_ids=ids, labels=ids, use_cache=False).loss, "tokens": ids.numel()}

    loop = Loop(ctx, trained, par.optimizer, lambda step: lr * warmup_cosine(step, warmup, steps, MIN_LR_FRACTION),
                steps, 0, stage=stage, progress=progress, on_step=on_step, log=rows, log_extra={"phase": stage},
                ranks=ranks)
    loop.run(0, forward)
    if sharded:
        state, _ = distributed.full_state(par.sharded)  # a collective; whole on rank 0 only
        if ranks.main:
            _restore(model, state)
    model.eval()
    return [r["loss"] for r in rows[first:]]


def _weightless_original(model):
    """A copy of ``model`` (for FSDP to shard), with ``model`` moved to the meta device meanwhile;
    its non-persistent buffers (rotary frequencies), which no state_dict holds, kept aside."""
    for module in model.modules():  # a pruning hook's masked weight, computed again at the next forward
        for name in [k for k, v in vars(module).items() if isinstance(v, torch.Tensor) and not v.is_leaf]:
            delattr(module, name)
    trained = copy.deepcopy(model)
    persistent = set(model.state_dict())
    model._apt_kept_buffers = {n: b.clone() for n, b in model.named_buffers() if n not in persistent}
    model.to("meta")
    return trained


def _restore(model, state: dict) -> None:
    """``model`` (weightless, ``_weightless_original``) given ``state`` and its kept buffers again."""
    model.to_empty(device="cpu")
    model.load_state_dict(state)
    for name, value in model.__dict__.pop("_apt_kept_buffers").items():
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner).register_buffer(leaf, value, persistent=False)


def mean_gradients(model, blocks: torch.Tensor, batch_size: int, params: dict[str, torch.nn.Parameter],
                   ctx: JobContext) -> dict[str, torch.Tensor]:
    """The gradient of the LM loss for each named parameter, averaged over calibration blocks."""
    if len(blocks) == 0:
        raise errors.InvalidArgument("Gradient-based importance needs calibration text; none was given.")
    model.eval()  # no dropout in the estimate
    model.zero_grad(set_to_none=True)
    n_batches = 0
    for i in range(0, len(blocks), batch_size):
        ctx.check_cancelled()
        ids = blocks[i:i + batch_size]
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
        n_batches += 1
    grads = {name: p.grad.detach() / n_batches for name, p in params.items() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads
