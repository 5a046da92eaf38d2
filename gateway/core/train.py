"""``train``: a causal LM from scratch on a text corpus, as a resumable job.

A plain PyTorch loop: AdamW, linear warmup then cosine decay, gradient clipping and
accumulation, bf16 autocast on CUDA. The batch of step ``s`` and its learning rate depend
only on (seed, s), so a run resumed from a checkpoint continues the same loss curve.
"""

from __future__ import annotations

import ctypes
import functools
import json
import math
import sys
from dataclasses import asdict, dataclass, field

import torch

from apt_model import errors
from apt_model.modeling import limits, lm
from apt_model.modeling.io import pick_device, save_model
from apt_model.modeling.loss import batch_loss
from apt_model.modeling.optim import decay_groups
from apt_model.modeling.memory import fused_loss_applies, training_estimate
from apt_model.modeling.preset import SIZES, create_model, preset_config
from apt_model.modeling import trainlog
from apt_model.modeling import distributed
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.modeling.tokenizer import train_tokenizer
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.runtime.settings import Settings
from apt_model.store import Store, validate_name
from apt_model.corpus import load_corpus
from gateway.core.data import split_tokens, tokenize_documents

EVAL_BATCHES = 16  # validation loss averages at most this many held-out batches
OPERATION_KEY = "train"    # what a rank's payload names the work (gateway.core.train_rank)
CHECKPOINT_KIND = "train"  # APT_HOME/checkpoints/train/<name>/ (apt_model.modeling.checkpoint)

# Fields that may change between a run and its resume without changing the loss curve.
RESUMABLE_CHANGES = {"resume", "device", "overwrite", "threads", "max_minutes", "checkpoint_every", "eval_every",
                     "workers", "nodes", "sharding"}  # a checkpoint of 2 ranks (DDP or FSDP) resumes on 1


@dataclass(frozen=True)
class TrainSpec:
    name: str  # the new store model
    preset: str = "apt"  # used when config_json is empty
    size: str = "tiny"  # apt preset size
    config_json: str = ""  # a full HF config (JSON) instead of a preset
    corpus_paths: tuple[str, ...] = ()  # .txt / .jsonl files on the gateway's machine
    dataset: str = ""  # or a store dataset
    text_field: str = "text"  # jsonl field holding the text
    vocab_size: int = 4096  # tokenizer vocabulary when a new one is trained
    tokenizer_from: str = ""  # reuse this store model's tokenizer instead
    seq_len: int = 128  # tokens per training sequence
    batch_size: int = 8  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 200  # optimizer steps
    learning_rate: float = 3e-3  # peak
    min_lr_ratio: float = 0.1  # final lr = peak * ratio (cosine floor)
    warmup_steps: int = -1  # -1: 5% of max_steps
    weight_decay: float = 0.1  # on matrices only, not norms/biases
    grad_clip: float = 1.0  # max global grad norm; 0 = off
    eval_every: int = 50  # steps between validation passes (and at the end)
    eval_fraction: float = 0.05  # share of tokens held out
    seed: int = 0
    checkpoint_every: int = 100  # steps between checkpoints (also on cancel); 0 = only on cancel
    resume: bool = False  # continue the checkpoint of an earlier run of this name
    device: str = "auto"  # auto, cpu, cuda
    overwrite: bool = False  # replace a store model of the same name
    threads: int = 0  # torch CPU threads; 0 = leave as set
    max_minutes: float = 0.0  # stop (and save) after this wall time; 0 = no limit
    workers: int = 1  # data-parallel ranks on this machine (torchrun; apt_model.modeling.distributed)
    nodes: int = 1  # machines; more than one needs the kubernetes deployer's training-operator jobs
    sharding: str = "ddp"  # with workers > 1: ddp (every rank a whole copy) or fsdp (FSDP2 fully_shard)

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps >= 0 else max(1, self.max_steps // 20)

    def validate(self, store: Store, max_params: int = Settings.max_model_params,
                 deployer: str = "local") -> "TrainSpec":
        """Checks before the job is queued; ``deployer``: the gateway's (nodes > 1 needs kubernetes)."""
        validate_name(self.name)
        bad: list[tuple[str, str]] = []   # (request field, what is wrong with it)
        for attr, low in (("seq_len", 2), ("batch_size", 1), ("grad_accum", 1), ("max_steps", 1),
                          ("eval_every", 1)):
            if getattr(self, attr) < low:
                bad.append((attr, f"{attr} must be >= {low}"))
        if not 0 < self.learning_rate < 1:
            bad.append(("learning_rate", "learning_rate must be in (0, 1)"))
        if not 0 <= self.min_lr_ratio <= 1:
            bad.append(("min_lr_ratio", "min_lr_ratio must be in [0, 1]"))
        if not 0 <= self.eval_fraction < 0.5:
            bad.append(("eval_fraction", "eval_fraction must be in [0, 0.5)"))
        for attr in ("weight_decay", "grad_clip", "max_minutes", "threads", "checkpoint_every"):
            if getattr(self, attr) < 0:
                bad.append((attr, f"{attr} must be >= 0"))
        if self.warmup >= self.max_steps:
            bad.append(("warmup_steps", f"warmup_steps ({self.warmup}) must be smaller than max_steps ({self.max_steps})"))
        if not 8 <= self.vocab_size <= limits.CEILINGS["vocab"][0]:
            bad.append(("vocab_size", f"vocab_size must be in 8..{limits.CEILINGS['vocab'][0]:,}"))
        if not self.config_json:
            if self.preset != "apt":
                bad.append(("preset", f"unknown preset {self.preset!r} (only 'apt'; or pass a config)"))
            elif self.size not in SIZES:
                bad.append(("size", f"unknown size {self.size!r}; choose one of {', '.join(SIZES)}"))
        bad += distributed.check_layout(self.batch_size, self.workers, self.nodes)
        bad += distributed.check_sharding(self.sharding)
        if bad:
            raise errors.InvalidArgument("Bad training settings: " + "; ".join(why for _, why in bad) + ".",
                                         violations=bad)
        distributed.refuse_multi_node(self.nodes, "train", deployer)
        pytorchjob.refuse_host_paths(self.nodes, store.root, corpus_paths=self.corpus_paths)  # pods see the store only
        check_bounds(self, max_params)  # before anything else is read, let alone built
        if not self.corpus_paths and not self.dataset:
            raise errors.InvalidArgument("No corpus: pass --corpus FILE (.txt/.jsonl) or --dataset NAME.")
        if self.dataset:
            store.dataset(self.dataset)
        if self.tokenizer_from:
            store.model(self.tokenizer_from)
        if store.exists("models", self.name) and not self.overwrite:
            raise errors.AlreadyExists(
                f"A model named {self.name!r} is already in the store; choose another name or pass --overwrite.")
        RunCheckpoint(store, CHECKPOINT_KIND, self.name).check_start(resume=self.resume, overwrite=self.overwrite)
        if self.nodes == 1:  # a multi-node run's device is its pods', not this machine's
            pick_device(self.device)
        return self

    def curve_fields(self) -> dict:
        """The settings that shape the loss curve, as plain JSON-able values (as checkpointed)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()
                if k not in RESUMABLE_CHANGES}


def model_config(spec: TrainSpec, tokenizer=None):
    """The HF config of the model to train (preset or the given JSON; its dimensions checked
    against ``apt_model.modeling.limits.CEILINGS``). Nothing is built."""
    vocab = len(tokenizer) if tokenizer is not None else spec.vocab_size
    if not spec.config_json:
        kw = {}
        if tokenizer is not None:
            kw = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
        config = preset_config(spec.size, vocab_size=vocab, **kw)
    else:
        try:
            data = json.loads(spec.config_json)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise errors.InvalidArgument(
                f"config_json is not valid JSON ({exc}); pass a Hugging Face config object with at least a "
                f"'model_type' such as 'llama', 'gpt2' or 'qwen2'.") from exc
        config = limits.hf_config(limits.check_dimensions(data, "config_json"), "config_json")
    if tokenizer is not None and getattr(config, "vocab_size", 0) < vocab:
        raise errors.InvalidArgument(
            f"The config's vocab_size ({config.vocab_size}) is smaller than the tokenizer's {vocab} tokens.")
    if lm.context_length_of_config(config) < spec.seq_len:
        raise errors.InvalidArgument(
            f"seq_len {spec.seq_len} exceeds the config's context length {lm.context_length_of_config(config)}.")
    return config


def check_bounds(spec: TrainSpec, max_params: int) -> None:
    """Refuse a run whose model is over ``max_params`` or whose training step does not fit in the
    memory free now (weights, gradients, AdamW moments and activations; gateway.core.size)."""
    config = model_config(spec)
    count = limits.check_count(config, max_params, "config_json" if spec.config_json else f"the {spec.size!r} preset")
    if spec.nodes > 1:  # the pods' memory, not this machine's: the count above is the check
        return
    need = training_estimate(config.to_dict(), count.total, spec.batch_size, spec.seq_len,
                             fused_loss_applies(config))
    limits.check_memory(
        sum(need.values()), pick_device(spec.device),
        f"Training {spec.name!r} ({count.total:,} parameters, batch_size {spec.batch_size}, seq_len {spec.seq_len})",
        "lower batch_size or seq_len, choose a smaller model, or wait for other jobs to finish")


def lr_at(spec: TrainSpec, step: int) -> float:
    """Linear warmup to the peak, then cosine down to peak * min_lr_ratio at max_steps."""
    return spec.learning_rate * warmup_cosine(step, spec.warmup, spec.max_steps, spec.min_lr_ratio)


def make_optimizer(model, spec: TrainSpec) -> torch.optim.AdamW:
    decay, no_decay = decay_groups(model)
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA, fp32 weights) does the whole update in one pass over memory.
    return torch.optim.AdamW(groups, lr=spec.learning_rate, betas=(0.9, 0.95), eps=1e-8, fused=True)


@torch.no_grad()
def validation_loss(model, ids: torch.Tensor, spec: TrainSpec, device: str, loss_of=None) -> float:
    """The mean loss of the held-out batches. ``loss_of(batch)``: how a batch's loss is computed
    when not by ``model`` itself (an FSDP run's sharded module, called by every rank)."""
    model.eval()
    loss_of = loss_of or (lambda b: batch_loss(model, b, device))
    losses = [float(loss_of(b)) for b in lm.sequential_windows(ids, spec.batch_size, spec.seq_len, EVAL_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


@dataclass
class _Run:
    """State of one training run that the loop mutates and checkpoints."""

    model: object
    optimizer: torch.optim.AdamW
    tokenizer: object
    step: int = 0
    log: list = field(default_factory=list)  # training_log.jsonl rows, one per step (apt_model.modeling.loop)
    optimizer_state: dict | None = None  # a resumed run's, until distributed.parallelize loads it
    sharded: object = None  # an FSDP run's root module (the model's loss), whose state is gathered to save it


def _checkpoints(store: Store, spec: TrainSpec) -> RunCheckpoint:
    return RunCheckpoint(store, CHECKPOINT_KIND, spec.name)


def _start_run(store: Store, spec: TrainSpec, ctx: JobContext, ranks: Ranks) -> tuple[_Run, list[str], dict]:
    """A new run (tokenizer trained by rank 0, model initialised) or the checkpointed one resumed.

    Returns the run, the corpus documents and extra lineage parameters.
    """
    corpus = load_corpus(list(spec.corpus_paths), store, spec.dataset, spec.text_field, ctx.warn)
    ckpt = _checkpoints(store, spec)
    if spec.resume:
        step, states, log = ckpt.load(spec.curve_fields())
        tokenizer = ckpt.load_tokenizer()
        from transformers import AutoConfig

        cfg = dict(states["config"])
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        model = create_model(config, seed=spec.seed)
        model.load_state_dict(states["model"])
        # on the training device before the optimizer state is loaded: load_state_dict puts each
        # moment tensor on its parameter's device, and fused AdamW needs them together
        model.to(pick_device(spec.device))
        # its moments are loaded once the ranks' optimizer is final (distributed.parallelize)
        run = _Run(model, make_optimizer(model, spec), tokenizer, step, log, states["optimizer"])
        ctx.report(message=f"resumed from the checkpoint at step {step}")
        return run, corpus.documents, {"corpus": corpus.sources}
    ctx.report(stage="tokenizer", message=f"{len(corpus.documents)} documents, {corpus.characters} characters")
    if ranks.main:
        if spec.tokenizer_from:
            from apt_model.modeling.io import load_tokenizer

            tokenizer = load_tokenizer(store.model(spec.tokenizer_from).path)
        else:
            tokenizer = train_tokenizer(corpus.documents, vocab_size=spec.vocab_size)
        ckpt.remove()  # --overwrite of an older unfinished run
        ckpt.save_tokenizer(tokenizer)
    ranks.barrier()
    if not ranks.main:  # the tokenizer rank 0 made, not one of its own
        tokenizer = ckpt.load_tokenizer()
    model = create_model(model_config(spec, tokenizer), seed=spec.seed)
    return _Run(model, make_optimizer(model, spec), tokenizer), corpus.documents, {"corpus": corpus.sources}


def _checkpoint(store: Store, spec: TrainSpec, run: _Run, step: int, ranks: Ranks) -> None:
    # FSDP: every rank gathers its shards; DDP: every rank holds the same state. Rank 0 writes it,
    # in the same unsharded form for both, so either resumes on any number of ranks
    states = distributed.whole_states({"model": run.model}, run.optimizer, ranks, run.sharded)
    if states is None:
        return
    parts, optimizer_sd = states
    _checkpoints(store, spec).save(step, {"model": parts["model"], "optimizer": optimizer_sd,
                                          "config": run.model.config.to_dict()}, spec.curve_fields(), run.log)


def _gather(run: _Run, spec: TrainSpec, ranks: Ranks) -> None:
    """An FSDP run's model, whole, on rank 0 (a plain module again) for storing; a collective."""
    if run.sharded is None:
        return
    model = distributed.gather_model(run.sharded, run.model, "model", ranks)  # _BatchLoss.model
    if ranks.main:
        run.model = model


def _return_freed_memory_to_os() -> None:
    """Have glibc serve allocations >= 1 MiB with mmap, so freed activations go back to the OS.

    By default glibc raises its mmap threshold after the first large free, and from then on
    serves activation-sized blocks from the heap, which fragments: a long-lived gateway's
    resident memory then creeps up step after step. A fixed threshold keeps it at what is live.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL("libc.so.6")
        except OSError:  # not glibc (e.g. musl): its allocator has no such setting
            return
        libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 1 << 20)  # M_TRIM_THRESHOLD


class _BatchLoss(torch.nn.Module):
    """The loss of a batch as a module, so DDP's forward wraps all of it (the fused loss reads the
    output projection's weight outside the model's own forward)."""

    def __init__(self, model, device: str):
        super().__init__()
        self.model, self.device = model, device

    def forward(self, batch):
        return batch_loss(self.model, batch, self.device)


def _parallel(run: _Run, spec: TrainSpec, ranks: Ranks, device: str, val_ids):
    """The run's ranks over ``_BatchLoss`` (``distributed.parallelize``: DDP or FSDP2; the plain
    module for one rank), the run's optimizer and sharded root set from it, and its evaluation:
    rank 0's under DDP (the others wait for it at the next step), every rank's under FSDP (the
    weights are gathered as the blocks run)."""
    par = distributed.parallelize(ranks, _BatchLoss(run.model, device), device, run.optimizer,
                                  functools.partial(make_optimizer, run.model, spec), sharding=spec.sharding,
                                  blocks=trainlog.transformer_blocks(run.model), optimizer_state=run.optimizer_state)
    run.optimizer, run.sharded, run.optimizer_state, loss = par.optimizer, par.sharded, None, par.loss

    def evaluate() -> dict:
        if run.sharded is not None:
            return {"val_loss": validation_loss(run.model, val_ids, spec, device, loss_of=loss)}
        return {"val_loss": validation_loss(run.model, val_ids, spec, device)} if ranks.main else {}

    return par, evaluate


def _run_on_kubernetes(store: Store, spec: TrainSpec, ctx: JobContext) -> dict:
    """nodes > 1: the ranks run as a Kubeflow PyTorchJob of the gateway's own image (one pod of
    ``workers`` ranks per node, GPUs when the run's device is cuda), followed from here
    (apt_model.runtime.pytorchjob); the gateway's namespace and image from its environment
    (APT_K8S_NAMESPACE, APT_IMAGE: k8s/base/gateway/deployment.yaml), as a plugin's are."""
    return pytorchjob.run_spec("gateway.core.train_rank", OPERATION_KEY, spec, CHECKPOINT_KIND, spec.name,
                               store.root, ctx, pytorchjob.Cluster.from_env(), "apt-gateway")


def run_train(store: Store, spec: TrainSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict:
    """The job: train, checkpoint, evaluate, then store the model with lineage and metrics.
    Every step's log row also goes to the job's running log (``apt_model.runtime.joblog``), which
    advanced-debugging reads by job id while the job runs and after.

    With ``workers`` > 1 the job runs ``spec.workers`` ranks under torchrun
    (``gateway.core.train_rank``, each calling this with its ``ranks``) and follows them."""
    if ranks is None and spec.nodes > 1:
        return _run_on_kubernetes(store, spec, ctx)
    if ranks is None and spec.workers > 1:
        return distributed.launch_spec("gateway.core.train_rank", OPERATION_KEY, store.root, spec, ctx,
                                       f"{CHECKPOINT_KIND}-{spec.name}")
    ranks = ranks or Ranks()
    _return_freed_memory_to_os()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = pick_device(spec.device)
    ranks.init(device)
    ctx.report(stage="data", progress=0.0)
    run, documents, lineage_extra = _start_run(store, spec, ctx, ranks)
    # On resume the token stream is rebuilt from the same corpus with the saved tokenizer.
    ids = tokenize_documents(run.tokenizer, documents)
    train_ids, val_ids = split_tokens(ids, spec.eval_fraction, spec.seq_len)
    model = run.model.to(device)
    ctx.report(stage="train", message=f"{train_ids.numel()} training tokens, {val_ids.numel()} held out, "
               f"{lm.count_parameters(model)[0]} parameters on {device}"
               + (f", {ranks.world} ranks" if ranks.world > 1 else ""))
    par, evaluate = _parallel(run, spec, ranks, device, val_ids)

    def forward(step: int, micro: int) -> dict:
        # every rank draws the same global batch and trains its share of the rows
        batch = lm.random_windows(train_ids, spec.batch_size, spec.seq_len, spec.seed, step * spec.grad_accum + micro)
        return {"loss": par.loss(ranks.shard(batch))}

    def checkpoint(step: int) -> None:
        run.step = step
        _checkpoint(store, spec, run, step, ranks)

    loop = Loop(ctx, model, run.optimizer, functools.partial(lr_at, spec), spec.max_steps,
                spec.batch_size * spec.seq_len * spec.grad_accum // ranks.world, grad_accum=spec.grad_accum,
                grad_clip=spec.grad_clip, device=device, eval_every=spec.eval_every if val_ids.numel() else 0,
                evaluate=evaluate, checkpoint_every=spec.checkpoint_every, checkpoint=checkpoint,
                max_seconds=spec.max_minutes * 60 if spec.max_minutes else math.inf,
                nonfinite_hint=f"lower the learning rate (now {spec.learning_rate}) or raise warmup_steps, "
                               f"then resume or start over", log=run.log, ranks=ranks,
                no_sync=par.no_sync)
    run.step = loop.run(run.step, forward)
    if loop.stopped_early:
        ctx.warn(f"Stopped at step {run.step} of {spec.max_steps}: the {spec.max_minutes} min limit was reached.")
    _gather(run, spec, ranks)
    if not ranks.main:
        return {}
    return _finish(store, spec, run, val_ids, device, loop.stopped_early, lineage_extra)


def _finish(store: Store, spec: TrainSpec, run: _Run, val_ids, device: str, stopped_early: bool,
            lineage_extra: dict) -> dict:
    model, log = run.model, run.log
    if val_ids.numel() and log and "val_loss" not in log[-1]:  # stopped early between evaluations
        log[-1]["val_loss"] = validation_loss(model, val_ids, spec, device)
    total, _ = lm.count_parameters(model)
    # Throughput over the steps after the first (which pays one-off allocation and warm-up costs).
    steady = [r["step_seconds"] for r in log[1:]] or [r["step_seconds"] for r in log]
    tokens_per_step = spec.batch_size * spec.seq_len * spec.grad_accum
    metrics = {
        "train_loss": log[-1]["loss"], "steps": run.step, "tokens_seen": run.step * tokens_per_step,
        "train_seconds": round(sum(r["step_seconds"] for r in log), 3),
        "tokens_per_s": tokens_per_step * len(steady) / sum(steady), "parameters": total,
    }
    val_curve = [{"step": r["step"], "loss": r["val_loss"]} for r in log if "val_loss" in r]
    if val_curve:  # none when --eval-fraction 0 holds nothing out
        val_loss = val_curve[-1]["loss"]
        metrics.update(val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50)))
    params = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()
              if k not in ("name", "overwrite", "resume")}
    params.update(lineage_extra)
    params["stopped_early"] = stopped_early
    parent = spec.tokenizer_from
    model.to("cpu")
    with store.create("models", spec.name, operation="train", parent=parent, parameters=params,
                      metrics=metrics, overwrite=spec.overwrite) as tmp:
        save_model(model, run.tokenizer, tmp)
        trainlog.write(tmp, log)
    _checkpoints(store, spec).remove()
    curve = [{k: r[k] for k in ("step", "loss", "lr", "step_seconds", "grad_norm")}
             for r in log[:: max(1, len(log) // 200)]]
    return {"model": spec.name, **metrics, "loss_curve": curve, "val_curve": val_curve}
