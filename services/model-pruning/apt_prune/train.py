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
                on_step: Callable[[int, Callable[[], dict]], None] | None = None, log: list[dict] | None = None,
                ranks: Ranks = Ranks(), sharding: str = "ddp", device: str = "cpu") -> list[float]:
    """Train ``model`` (on the CPU) for ``steps`` optimiser steps on ``device`` on the platform's
    loop (``apt_model.modeling.loop``); returns the loss of each step, ``model`` back on the CPU.

    ``progress`` is the (start, end) share of the job this phase covers; ``on_step(n, state)`` is
    called after step n (1-based) on every rank, ``state()`` giving the weights being trained, whole
    (under FSDP a collective: every rank calls it at the same step), e.g. for the lottery's rewind
    point. ``log`` collects training_log.jsonl's rows, numbered on from the rows already in it, so the
    lottery's rounds and the recovery make one log. ``ranks``: this process's place in a
    data-parallel run; every rank draws the same global batches and trains its share of the rows.
    ``sharding="fsdp"`` (more than one rank): FSDP2 over a copy of ``model`` while ``model`` itself
    waits weightless (meta device); afterwards every rank's ``model`` holds the trained weights
    again, whole (pruning masks and all), so every rank can prune them alike (lottery rounds).
    """
    if steps <= 0:
        return []
    warmup = max(1, int(steps * WARMUP_FRACTION))
    rows = log if log is not None else []
    first = len(rows)
    sharded = sharding == "fsdp" and ranks.world > 1
    trained = (_weightless_original(model) if sharded else model).to(device)

    def make_optimizer():
        params = [p for p in trained.parameters() if p.requires_grad]
        return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), weight_decay=0.0)

    # DDP: the gradients are averaged over the ranks in backward; FSDP: the copy itself is the root
    par = distributed.parallelize(ranks, trained, device, make_optimizer(), make_optimizer, sharding=sharding,
                                  blocks=trainlog.transformer_blocks(trained))

    def forward(step: int, micro: int) -> dict:
        ids = ranks.shard(next(batches)).to(device)  # (batch_size / world, S): this rank's rows
        return {"loss": par.loss(input_ids=ids, labels=ids, use_cache=False).loss, "tokens": ids.numel()}

    def state() -> dict:
        return whole_state(trained)

    def after_step(step: int) -> None:
        on_step(step, state)

    loop = Loop(ctx, trained, par.optimizer, lambda step: lr * warmup_cosine(step, warmup, steps, MIN_LR_FRACTION),
                steps, 0, stage=stage, progress=progress, on_step=after_step if on_step else None, log=rows,
                log_extra={"phase": stage, **({"sharding": "fsdp"} if sharded else {})}, ranks=ranks)
    loop.run(0, forward)
    if sharded:
        _restore(model, state())  # every rank's: a collective
    model.to("cpu").eval()
    return [r["loss"] for r in rows[first:]]


def whole_state(module) -> dict[str, torch.Tensor]:
    """``module``'s state on the CPU, whole on every rank: an FSDP2 module's shards (DTensors) are
    gathered (a collective: every rank calls it), anything else copied."""
    return {k: distributed.full_tensor(v).detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


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
