"""Probe: rerun the steps after a kept checkpoint of a core ``train`` run with per-block statistics.

Core train keeps one checkpoint per unfinished run (``APT_HOME/checkpoints/train/<name>/``:
weights, AdamW state, the settings that shape the loss curve, the log so far, its tokenizer)
and deletes it when the run finishes. So the runs that can be probed are the unfinished ones:
a running job (its last periodic checkpoint), a cancelled one, or one that failed on a
non-finite loss (its last periodic checkpoint, before the failure: "after a spike, roll back
and rerun with per-layer norms", Megatron-DeepSpeed#149).

The rerun is the run itself: the checkpointed state, the same batches (a function of seed and
step), the same loss (``apt_model.modeling.loss.batch_loss``), the same loop
(``apt_model.modeling.loop.Loop``: learning rate, clipping, AdamW). What it adds, per step and
transformer block: the gradient norm, the weight norm, the update/weight ratio, and the RMS
and abs-max of the block's output, with the first block whose output went non-finite. Nothing
is written back: the checkpoint and the run are untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.corpus import load_corpus
from apt_model.modeling import limits, lm
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.heldout import split_tokens
from apt_model.modeling.loop import Loop
from apt_model.modeling.loss import batch_loss
from apt_model.modeling.optim import decay_groups
from apt_model.modeling.preset import create_model
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_debug.probe import block_list, dump_json, finite_only, write_report

OPERATION = "probe"
CHECKPOINT_KIND = "train"  # core train's checkpoints (gateway.core.train.CHECKPOINT_KIND)
SETTINGS = ("seed", "batch_size", "seq_len", "grad_accum", "eval_fraction", "learning_rate", "max_steps",
            "min_lr_ratio", "warmup_steps", "grad_clip")


@dataclass(frozen=True)
class RerunSpec:
    run: str               # the core train run (the model name it trains into)
    steps: int             # steps rerun after the checkpoint
    output_name: str
    device: str = "cpu"
    overwrite: bool = False
    max_params: int = 0    # this service's model-size limit (APT_MAX_MODEL_PARAMS)


def kept_checkpoint(store: Store, run: str) -> tuple[RunCheckpoint, int, dict[str, Any]]:
    """The run's checkpoint, its step and settings; NotFound when the run keeps none."""
    ckpt = RunCheckpoint(store, CHECKPOINT_KIND, run)
    step = ckpt.step()
    if step is None:
        raise errors.NotFound(
            f"Core train run {run!r} has no kept checkpoint: one exists while a run is unfinished (running with "
            "--checkpoint-every, cancelled, or failed on a non-finite loss) and is deleted when it finishes.")
    settings = ckpt.meta()["settings"]
    missing = [k for k in SETTINGS if k not in settings]
    if missing:
        raise errors.FailedPrecondition(f"The checkpoint of {run!r} lacks {', '.join(missing)}: it was not written "
                                        "by core train; its steps cannot be rerun.")
    return ckpt, step, settings


def restore(states: dict[str, Any], settings: dict[str, Any], device: str, max_params: int):
    """The checkpointed model and AdamW, as core train built them (decay on >= 2-D weights);
    a config beyond this service's model-size limit is refused before a model is built."""
    config, _ = limits.checked_config(dict(states["config"]), max_params, "the checkpoint's model config")
    model = create_model(config, seed=int(settings["seed"]))
    model.load_state_dict(states["model"])
    model.to(device)
    decay, no_decay = decay_groups(model)
    saved = [len(g["params"]) for g in states["optimizer"]["param_groups"]]
    if saved != [len(decay), len(no_decay)]:
        raise errors.FailedPrecondition(
            f"The checkpoint's optimizer groups ({saved} parameters) are not core train's ({len(decay)} with weight "
            f"decay, {len(no_decay)} without); its steps cannot be rerun.")
    optimizer = torch.optim.AdamW([{"params": decay}, {"params": no_decay}], fused=True)
    optimizer.load_state_dict(states["optimizer"])
    return model, optimizer


def training_stream(store: Store, settings: dict[str, Any], paths: list[str], tokenizer) -> torch.Tensor:
    """The run's training token stream (its corpus, tokenizer and held-out split)."""
    documents = load_corpus(paths, store, settings.get("dataset", ""), settings.get("text_field", "text")).documents
    ids = lm.tokenize_documents(tokenizer, documents)
    return split_tokens(ids, float(settings["eval_fraction"]), int(settings["seq_len"]))[0]


class BlockStats:
    """Per transformer block, per step: the gradient norm before clipping (accumulated over the
    step's micro-batches), the weight norm and update/weight ratio (weights before and after the
    optimiser step), the output's RMS and abs-max (the step's last forward) and whether it held a
    NaN/Inf. Hooks only: the loop itself is core train's."""

    def __init__(self, blocks: torch.nn.ModuleList):
        self.blocks = list(blocks)
        self.grads: dict[int, float] = {}  # id(parameter) -> its gradient's norm
        self.outputs: dict[int, tuple[float, float, bool]] = {}
        self.before: list[list[torch.Tensor]] = []
        self.handles = [b.register_forward_hook(self._output(i)) for i, b in enumerate(self.blocks)]
        self.handles += [p.register_post_accumulate_grad_hook(self._grad)
                         for b in self.blocks for p in b.parameters() if p.requires_grad]

    def _output(self, index: int):
        def hook(module, inputs, output):
            out = (output[0] if isinstance(output, tuple) else output).detach().float()
            clean = torch.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
            self.outputs[index] = (float(clean.pow(2).mean().sqrt()), float(clean.abs().max()),
                                   not bool(torch.isfinite(out).all()))
        return hook

    def _grad(self, param: torch.Tensor) -> None:
        self.grads[id(param)] = float(param.grad.detach().float().norm())

    def start_step(self) -> None:
        """Before a step's first forward: the weights it starts from."""
        self.grads.clear()
        self.outputs.clear()
        self.before = [[p.detach().clone() for p in b.parameters()] for b in self.blocks]

    def row(self, stepped: bool) -> list[dict[str, Any]]:
        """The blocks' statistics of the step just run (``stepped``: the optimiser stepped)."""
        out = []
        for i, block in enumerate(self.blocks):
            params = list(block.parameters())
            weight = _norm([p.detach().float().norm() for p in params])
            update = _norm([(p.detach() - b).float().norm() for p, b in zip(params, self.before[i])])
            grads = [self.grads[id(p)] for p in params if id(p) in self.grads]
            rms, abs_max, nonfinite = self.outputs.get(i, (math.nan, math.nan, False))
            out.append({"block": i, "grad_norm": math.sqrt(sum(g * g for g in grads)) if grads else math.nan,
                        "weight_norm": weight, "update_ratio": update / weight if stepped and weight else math.nan,
                        "output_rms": rms, "output_abs_max": abs_max, "nonfinite": nonfinite})
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


def _norm(parts: list[torch.Tensor]) -> float:
    return float(torch.linalg.vector_norm(torch.stack(parts))) if parts else 0.0


def lr_schedule(settings: dict[str, Any]):
    """Core train's learning rate of a (0-based) step: warm-up then cosine (warmup_steps -1 is
    5 % of max_steps, as gateway.core.train.TrainSpec.warmup)."""
    max_steps = int(settings["max_steps"])
    warmup = int(settings["warmup_steps"])
    warmup = warmup if warmup >= 0 else max(1, max_steps // 20)
    peak, floor = float(settings["learning_rate"]), float(settings["min_lr_ratio"])
    return lambda step: peak * warmup_cosine(step, warmup, max_steps, floor)


def run_probe(store: Store, spec: RerunSpec, paths: list[str], warnings: list[str], ctx: JobContext
              ) -> dict[str, Any]:
    ckpt, start, settings = kept_checkpoint(store, spec.run)
    end = min(start + spec.steps, int(settings["max_steps"]))
    if end <= start:
        raise errors.FailedPrecondition(f"The checkpoint of {spec.run!r} is at its last step ({start}); there is "
                                        "no step after it to rerun.")
    ctx.report(progress=0.0, stage="restore", message=f"checkpoint of {spec.run!r} at step {start}")
    state = ckpt.read()
    model, optimizer = restore(state["states"], settings, spec.device, spec.max_params)
    train_ids = training_stream(store, settings, paths, ckpt.load_tokenizer())
    stats = BlockStats(block_list(model)[1] or [])
    bs, seq, seed, accum = (int(settings[k]) for k in ("batch_size", "seq_len", "seed", "grad_accum"))
    blocks_by_step: list[list[dict[str, Any]]] = []

    def forward(step: int, micro: int) -> dict:
        if micro == 0:
            stats.start_step()
        return {"loss": batch_loss(model, lm.random_windows(train_ids, bs, seq, seed, step * accum + micro),
                                   spec.device)}

    loop = Loop(ctx, model, optimizer, lr_schedule(settings), end, bs * seq * accum, grad_accum=accum,
                grad_clip=float(settings["grad_clip"]), device=spec.device, stage=OPERATION,
                log=list(state["log"])[:start], on_step=lambda step: blocks_by_step.append(stats.row(True)))
    stopped = ""
    try:
        loop.run(start, forward)
    except errors.FailedPrecondition as exc:  # the loss went non-finite: that step's forward is the finding
        stopped = exc.message
        blocks_by_step.append(stats.row(False))
    finally:
        stats.remove()
    report = _report(spec, start, loop.log[start:], blocks_by_step, stopped, warnings)
    write_report(store, spec.output_name, operation=OPERATION, parent="", overwrite=spec.overwrite,
                 parameters={"run": spec.run, "checkpoint_step": start, "steps": spec.steps},
                 files=lambda folder: dump_json(folder / "probe.json", report))
    ctx.report(progress=1.0, stage="done", message=f"steps {start + 1}-{start + len(blocks_by_step)} rerun")
    return finite_only(report)


def _report(spec: RerunSpec, start: int, rows: list[dict[str, Any]], blocks: list[list[dict[str, Any]]],
            stopped: str, warnings: list[str]) -> dict[str, Any]:
    steps = []
    for i, per_block in enumerate(blocks):
        row = rows[i] if i < len(rows) else {"loss": math.nan, "lr": math.nan, "grad_norm": math.nan}
        steps.append({"step": start + 1 + i, "loss": row["loss"], "lr": row["lr"], "grad_norm": row["grad_norm"],
                      "blocks": per_block})
    first = next(((s["step"], b["block"]) for s in steps for b in s["blocks"] if b["nonfinite"]), None)
    return {"run": spec.run, "output": spec.output_name, "checkpoint_step": start, "steps": steps,
            "stopped": stopped, "first_nonfinite_step": first[0] if first else 0,
            "first_nonfinite_block": first[1] if first else -1, "warnings": warnings}
