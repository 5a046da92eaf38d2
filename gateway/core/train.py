"""``train``: a causal LM from scratch on a text corpus, as a resumable job.

A plain PyTorch loop: AdamW, linear warmup then cosine decay, gradient clipping and
accumulation, bf16 autocast on CUDA. The batch of step ``s`` and its learning rate depend
only on (seed, s), so a run resumed from a checkpoint continues the same loss curve.
"""

from __future__ import annotations

import ctypes
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

import torch

from apt_model import errors
from apt_model.modeling import limits, lm
from apt_model.modeling.io import pick_device, save_model
from apt_model.modeling.loss import can_fuse, causal_lm_loss
from apt_model.modeling.memory import fused_loss_applies, training_estimate
from apt_model.modeling.preset import SIZES, create_model, preset_config
from apt_model.modeling import trainlog
from apt_model.modeling.schedule import warmup_cosine
from apt_model.modeling.tokenizer import train_tokenizer
from apt_model.runtime.jobs import JobContext
from apt_model.runtime.settings import Settings
from apt_model.store import Store, validate_name
from gateway.core import checkpoint as ckpts
from apt_model.corpus import load_corpus
from gateway.core.data import split_tokens, tokenize_documents

EVAL_BATCHES = 16  # validation loss averages at most this many held-out batches
REPORT_SECONDS = 0.5  # progress updates at most this often

# Fields that may change between a run and its resume without changing the loss curve.
RESUMABLE_CHANGES = {"resume", "device", "overwrite", "threads", "max_minutes", "checkpoint_every", "eval_every"}


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

    @property
    def warmup(self) -> int:
        return self.warmup_steps if self.warmup_steps >= 0 else max(1, self.max_steps // 20)

    def validate(self, store: Store, max_params: int = Settings.max_model_params) -> "TrainSpec":
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
        if bad:
            raise errors.InvalidArgument("Bad training settings: " + "; ".join(why for _, why in bad) + ".",
                                         violations=bad)
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
        if self.resume and not ckpts.exists(store, self.name):
            raise errors.FailedPrecondition(
                f"There is no checkpoint of {self.name!r} to resume; start without --resume.")
        if not self.resume and ckpts.exists(store, self.name) and not self.overwrite:
            step = ckpts.load(store, self.name).step
            raise errors.FailedPrecondition(
                f"An unfinished run of {self.name!r} has a checkpoint at step {step}; pass --resume to continue "
                f"it, or --overwrite to start over.")
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
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": spec.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    # The fused kernel (CPU and CUDA, fp32 weights) does the whole update in one pass over memory.
    return torch.optim.AdamW(groups, lr=spec.learning_rate, betas=(0.9, 0.95), eps=1e-8, fused=True)


def batch_loss(model, batch: torch.Tensor, device: str) -> torch.Tensor:
    """Mean next-token cross-entropy of a (B, T + 1) batch.

    On CPU the loss is fused with the output projection where the architecture allows it
    (see apt_model.modeling.loss); under CUDA bf16 autocast the plain path is used.
    """
    batch = batch.to(device)
    inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, T) each
    if device == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(inputs).logits  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    return causal_lm_loss(model, inputs, targets, fused=model.training and can_fuse(model))


@torch.no_grad()
def validation_loss(model, ids: torch.Tensor, spec: TrainSpec, device: str) -> float:
    model.eval()
    losses = [float(batch_loss(model, b, device))
              for b in lm.sequential_windows(ids, spec.batch_size, spec.seq_len, EVAL_BATCHES)]
    model.train()
    return sum(losses) / len(losses)


@dataclass
class _Run:
    """State of one training run that the loop mutates and checkpoints."""

    model: object
    optimizer: torch.optim.AdamW
    tokenizer: object
    step: int = 0
    history: list = field(default_factory=list)
    val_history: list = field(default_factory=list)
    tokens_seen: int = 0
    elapsed: float = 0.0
    block_norms: list = field(default_factory=list)  # [step, [gradient norm of each block]]


def _start_run(store: Store, spec: TrainSpec, ctx: JobContext) -> tuple[_Run, list[str], dict]:
    """A new run (tokenizer trained, model initialised) or the checkpointed one resumed.

    Returns the run, the corpus documents and extra lineage parameters.
    """
    corpus = load_corpus(list(spec.corpus_paths), store, spec.dataset, spec.text_field, ctx.warn)
    if spec.resume:
        ck = ckpts.load(store, spec.name)
        changed = {k for k, v in spec.curve_fields().items() if ck.spec.get(k) != v}
        if changed:
            raise errors.FailedPrecondition(
                f"Cannot resume {spec.name!r}: these settings differ from the checkpointed run: "
                f"{', '.join(sorted(changed))}. Use the same settings, or start over with --overwrite.")
        tokenizer = ckpts.load_tokenizer(store, spec.name)
        from transformers import AutoConfig

        cfg = dict(ck.config)
        config = AutoConfig.for_model(cfg.pop("model_type"), **cfg)
        model = create_model(config, seed=spec.seed)
        model.load_state_dict(ck.model_state)
        # on the training device before the optimizer state is loaded: load_state_dict puts each
        # moment tensor on its parameter's device, and fused AdamW needs them together
        model.to(pick_device(spec.device))
        run = _Run(model, make_optimizer(model, spec), tokenizer, ck.step, ck.history, ck.val_history,
                   ck.tokens_seen, ck.elapsed_seconds, ck.block_norms)
        run.optimizer.load_state_dict(ck.optimizer_state)
        ctx.report(message=f"resumed from the checkpoint at step {ck.step}")
        return run, corpus.documents, {"corpus": corpus.sources}
    ctx.report(stage="tokenizer", message=f"{len(corpus.documents)} documents, {corpus.characters} characters")
    if spec.tokenizer_from:
        from apt_model.modeling.io import load_tokenizer

        tokenizer = load_tokenizer(store.model(spec.tokenizer_from).path)
    else:
        tokenizer = train_tokenizer(corpus.documents, vocab_size=spec.vocab_size)
    ckpts.remove(store, spec.name)  # --overwrite of an older unfinished run
    ckpts.save_tokenizer(store, spec.name, tokenizer)
    model = create_model(model_config(spec, tokenizer), seed=spec.seed)
    return _Run(model, make_optimizer(model, spec), tokenizer), corpus.documents, {"corpus": corpus.sources}


def _checkpoint(store: Store, spec: TrainSpec, run: _Run) -> None:
    spec_dict = spec.curve_fields()
    ckpts.save(store, spec.name, ckpts.Checkpoint(
        step=run.step, model_state=run.model.state_dict(), optimizer_state=run.optimizer.state_dict(),
        config=run.model.config.to_dict(), spec=spec_dict, history=run.history, val_history=run.val_history,
        tokens_seen=run.tokens_seen, elapsed_seconds=run.elapsed, block_norms=run.block_norms))


def _log_rows(run: _Run, tokens_per_step: int):
    """training_log.jsonl's rows: every step of the run, with its validation and block norms."""
    val = {int(step): loss for step, loss in run.val_history}
    blocks = {int(step): norms for step, norms in run.block_norms}
    for step, loss, lr, dt, *rest in run.history:
        step = int(step)
        yield trainlog.row(step, loss, lr, rest[0] if rest else None, dt, tokens_per_step, blocks.get(step),
                           **({"val_loss": val[step]} if step in val else {}))


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


def run_train(store: Store, spec: TrainSpec, ctx: JobContext) -> dict:
    """The job: train, checkpoint, evaluate, then store the model with lineage and metrics."""
    _return_freed_memory_to_os()
    if spec.threads:
        torch.set_num_threads(spec.threads)
    device = pick_device(spec.device)
    ctx.report(stage="data", progress=0.0)
    run, documents, lineage_extra = _start_run(store, spec, ctx)
    # On resume the token stream is rebuilt from the same corpus with the saved tokenizer.
    ids = tokenize_documents(run.tokenizer, documents)
    train_ids, val_ids = split_tokens(ids, spec.eval_fraction, spec.seq_len)
    model = run.model.to(device)
    model.train()
    tokens_per_step = spec.batch_size * spec.seq_len * spec.grad_accum
    deadline = time.monotonic() + spec.max_minutes * 60 if spec.max_minutes else math.inf
    stopped_early, last_report, start_step = False, 0.0, run.step
    ctx.report(stage="train", message=f"{train_ids.numel()} training tokens, {val_ids.numel()} held out, "
               f"{lm.count_parameters(model)[0]} parameters on {device}")
    try:
        while run.step < spec.max_steps:
            ctx.check_cancelled()
            t0 = time.perf_counter()
            lr = lr_at(spec, run.step)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            loss_sum = 0.0
            for micro in range(spec.grad_accum):
                batch = lm.random_windows(train_ids, spec.batch_size, spec.seq_len, spec.seed,
                                          run.step * spec.grad_accum + micro)
                loss = batch_loss(model, batch, device) / spec.grad_accum
                loss.backward()
                loss_sum += float(loss.detach())
            if not math.isfinite(loss_sum):
                raise errors.FailedPrecondition(
                    f"The training loss became {loss_sum} at step {run.step}; lower the learning rate "
                    f"(now {spec.learning_rate}) or raise warmup_steps, then resume or start over.")
            if trainlog.wants_block_norms(run.step + 1):
                run.block_norms.append([run.step + 1, trainlog.block_grad_norms(model)])
            # the total norm before clipping, for the log (an infinite limit clips nothing)
            grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip or math.inf))
            run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            run.step += 1
            run.elapsed += dt
            run.tokens_seen += tokens_per_step
            run.history.append([run.step, loss_sum, lr, dt, grad_norm])
            metrics = {"step": run.step, "loss": loss_sum, "lr": lr, "tokens_per_s": tokens_per_step / dt}
            if val_ids.numel() and (run.step % spec.eval_every == 0 or run.step == spec.max_steps):
                metrics["val_loss"] = validation_loss(model, val_ids, spec, device)
                run.val_history.append([run.step, metrics["val_loss"]])
            if spec.checkpoint_every and run.step % spec.checkpoint_every == 0 and run.step < spec.max_steps:
                _checkpoint(store, spec, run)
            now = time.monotonic()
            if now - last_report >= REPORT_SECONDS or "val_loss" in metrics or run.step == spec.max_steps:
                per_step = run.elapsed / max(1, run.step)
                ctx.report(progress=run.step / spec.max_steps, eta_seconds=per_step * (spec.max_steps - run.step),
                           message=f"step {run.step}/{spec.max_steps} loss {loss_sum:.4f}", **metrics)
                last_report = now
            if now >= deadline:
                stopped_early = True
                ctx.warn(f"Stopped at step {run.step} of {spec.max_steps}: the {spec.max_minutes} min limit was reached.")
                break
    except errors.Cancelled:
        if run.step > start_step:
            _checkpoint(store, spec, run)
        raise
    return _finish(store, spec, run, val_ids, device, stopped_early, lineage_extra)


def _finish(store: Store, spec: TrainSpec, run: _Run, val_ids, device: str, stopped_early: bool,
            lineage_extra: dict) -> dict:
    model = run.model
    if val_ids.numel() and (not run.val_history or run.val_history[-1][0] != run.step):
        run.val_history.append([run.step, validation_loss(model, val_ids, spec, device)])
    total, _ = lm.count_parameters(model)
    # Throughput over the steps after the first (which pays one-off allocation and warm-up costs).
    steady = [h[3] for h in run.history[1:]] or [h[3] for h in run.history]
    tokens_per_step = spec.batch_size * spec.seq_len * spec.grad_accum
    metrics = {
        "train_loss": run.history[-1][1], "steps": run.step, "tokens_seen": run.tokens_seen, "train_seconds": round(run.elapsed, 3),
        "tokens_per_s": tokens_per_step * len(steady) / sum(steady), "parameters": total,
    }
    if run.val_history:  # none when --eval-fraction 0 holds nothing out
        val_loss = run.val_history[-1][1]
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
        trainlog.write(tmp, _log_rows(run, tokens_per_step))
    ckpts.remove(store, spec.name)
    curve = [{"step": int(step), "loss": loss, "lr": lr, "step_seconds": dt, "grad_norm": rest[0] if rest else None}
             for step, loss, lr, dt, *rest in run.history[:: max(1, len(run.history) // 200)]]
    return {"model": spec.name, **metrics, "loss_curve": curve,
            "val_curve": [{"step": int(step), "loss": loss} for step, loss in run.val_history]}
