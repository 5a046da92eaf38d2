"""Fine-tune a store model on a store dataset with the Hugging Face Trainer.

Documents are tokenized, joined with EOS and packed into full ``seq_len`` blocks (no
padding). The eval split is taken from whole documents before packing, so no document
is in both splits. Loss, learning rate and progress stream to the job; the result is a
new store model whose lineage names the parent and the dataset.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from apt_model import errors
from apt_model.modeling import distributed
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store, validate_name

from apt_hf.datasets_io import open_store_dataset, pick_text_field

OPERATION = "train"
RUN_KIND = "hf-train"  # run folders .runs/hf-train-<output>, PyTorchJobs apt-hf-train-<output>
SERVICE_ACCOUNT = "apt-huggingface-integration"  # its pod's, which may submit PyTorchJobs (plugin.yaml multi_node)
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainSpec:
    model: str  # store model to start from
    dataset: str  # store dataset (data.parquet)
    output_name: str
    text_field: str = ""  # "" = "text" when present, else the first string column
    seq_len: int = 128  # tokens per packed block
    learning_rate: float = 5e-4
    epochs: float = 1.0
    batch_size: int = 8  # blocks per device step
    grad_accum: int = 1  # steps per optimizer update
    seed: int = 0
    eval_fraction: float = 0.1  # of documents, held out before packing
    max_steps: int = 0  # > 0 overrides epochs
    overwrite: bool = False
    workers: int = 1  # data-parallel ranks per node (torchrun; apt_model.modeling.distributed)
    nodes: int = 1  # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob (kubernetes deployer)
    sharding: str = "ddp"  # with more than one rank: ddp (whole copies) or fsdp (the Trainer's FSDP2)
    device: str = "auto"  # auto (CUDA when visible, else the CPU), cpu or cuda

    @classmethod
    def from_request(cls, req) -> "TrainSpec":
        d = cls.__dataclass_fields__
        spec = cls(
            model=validate_name(req.model.strip(), "model"),
            dataset=validate_name(req.dataset.strip(), "dataset"),
            output_name=validate_name(req.output_name.strip(), "model"),
            text_field=req.text_field.strip(),
            seq_len=req.seq_len or d["seq_len"].default,
            learning_rate=req.learning_rate or d["learning_rate"].default,
            epochs=req.epochs or d["epochs"].default,
            batch_size=req.batch_size or d["batch_size"].default,
            grad_accum=req.grad_accum or d["grad_accum"].default,
            seed=req.seed,
            eval_fraction=req.eval_fraction or d["eval_fraction"].default,
            max_steps=req.max_steps,
            overwrite=req.overwrite,
            workers=req.workers or 1,
            nodes=req.nodes or 1,
            sharding=req.sharding or "ddp",
            device=req.device or "auto",
        )
        if spec.output_name == spec.model:
            raise errors.InvalidArgument("output_name must differ from model: training writes a new model.")
        checks = [
            (8 <= spec.seq_len <= 32768, "seq_len must be between 8 and 32768"),
            (0 < spec.learning_rate < 1, "learning_rate must be in (0, 1)"),
            (0 < spec.epochs <= 1000, "epochs must be in (0, 1000]"),
            (1 <= spec.batch_size <= 4096, "batch_size must be between 1 and 4096"),
            (1 <= spec.grad_accum <= 1024, "grad_accum must be between 1 and 1024"),
            (0 < spec.eval_fraction < 0.5, "eval_fraction must be in (0, 0.5)"),
            (spec.max_steps >= 0, "max_steps must be >= 0"),
            (spec.seed >= 0, "seed must be >= 0"),
            (spec.device in DEVICES, f"device {spec.device!r} is not one of: {', '.join(DEVICES)}"),
        ] + [(False, why) for _, why in distributed.check_layout(spec.batch_size, spec.workers, spec.nodes)
             + distributed.check_sharding(spec.sharding)]
        for ok, message in checks:
            if not ok:
                raise errors.InvalidArgument(message + ".")
        return spec


def pack(texts: list[str], tokenizer, seq_len: int) -> list[list[int]]:
    """Token blocks of exactly ``seq_len`` from documents joined by EOS; the tail is dropped."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise errors.FailedPrecondition("The tokenizer has no EOS token, so documents cannot be packed.")
    stream: list[int] = []
    texts = [t or "" for t in texts]  # datasets returns a Column; empty cells come back as None
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        stream.extend(ids)
        stream.append(eos)
    return [stream[i:i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]


class _BlockDataset:
    """Packed blocks as a torch-style dataset (labels = inputs; the model shifts them)."""

    def __init__(self, blocks: list[list[int]]):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> dict:
        import torch

        ids = torch.tensor(self.blocks[i], dtype=torch.long)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.clone()}


def _job_callback(ctx: JobContext, started: float):
    from transformers import TrainerCallback

    class JobCallback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            ctx.check_cancelled()  # raises Cancelled out of trainer.train(); nothing is stored

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            frac = state.global_step / max(state.max_steps, 1)
            elapsed = time.monotonic() - started
            metrics = {k: float(v) for k, v in logs.items() if isinstance(v, (int, float)) and k in
                       ("loss", "learning_rate", "grad_norm", "eval_loss", "epoch")}
            if "eval_loss" in metrics and state.global_step == 0:  # the evaluation on start (_fit)
                metrics["eval_loss_before"] = metrics.pop("eval_loss")
            ctx.report(progress=0.05 + 0.85 * frac, stage="train",
                       message=f"step {state.global_step}/{state.max_steps}"
                               + (f" loss {logs['loss']:.4f}" if "loss" in logs else ""),
                       eta_seconds=elapsed / frac - elapsed if frac > 0 else -1, step=state.global_step,
                       **metrics)

    return JobCallback()


def _log_callback(rows: list[dict], tokens_per_step: int):
    """training_log.jsonl's rows (apt_model.modeling.trainlog), one per optimiser step, from the
    Trainer's own per-step logs (logging_steps=1: the step's loss, learning rate and gradient
    norm before clipping) plus the per-block gradient norms, read just before the optimiser
    steps; the evaluation after training is the last row's val_loss."""
    from transformers import TrainerCallback

    from apt_model.modeling import trainlog

    class LogCallback(TrainerCallback):
        def __init__(self):
            self.step_started = time.perf_counter()
            self.blocks: list[float] | None = None

        def on_step_begin(self, args, state, control, **kwargs):
            self.step_started = time.perf_counter()

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            step = state.global_step + 1
            self.blocks = trainlog.block_grad_norms(model) if trainlog.wants_block_norms(step) else None

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "eval_loss" in logs and rows:
                rows[-1]["val_loss"] = float(logs["eval_loss"])
            if "loss" not in logs or "train_runtime" in logs or (rows and rows[-1]["step"] == state.global_step):
                return
            rows.append(trainlog.row(state.global_step, float(logs["loss"]), float(logs.get("learning_rate", 0.0)),
                                     logs.get("grad_norm"), time.perf_counter() - self.step_started,
                                     tokens_per_step, self.blocks))
            self.blocks = None

    return LogCallback()


def run_train(store: Store, spec: TrainSpec, ctx: JobContext, ranks=None) -> dict:
    """The job. With ``workers`` or ``nodes`` > 1 it runs the ranks (``_launch``); the Trainer
    finds them from torchrun's environment and runs DDP or FSDP2 itself (each rank
    ``batch_size / (workers x nodes)`` blocks a step); rank 0 stores the model."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return _launch(store, spec, ctx)
    ranks = ranks or distributed.Ranks()
    started = time.monotonic()
    if not spec.overwrite and store.exists("models", spec.output_name):
        raise errors.AlreadyExists(f"Model {spec.output_name!r} already exists; pass overwrite or choose another name.")
    parent = store.model(spec.model)
    store.dataset(spec.dataset)
    scratch = store.root / ".scratch"
    scratch.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=scratch, prefix=f"train-{spec.output_name}-") as work:
        ctx.report(progress=0.0, stage="prepare", message="tokenizing and packing")
        tokenizer, train_blocks, eval_blocks = _packed_splits(store, spec, parent.path, Path(work))
        log: list[dict] = []
        trainer, bf16 = _trainer(spec, ranks, Path(work), parent.path, train_blocks, eval_blocks,
                                 callbacks=[_job_callback(ctx, started),
                                            _log_callback(log, spec.batch_size * spec.grad_accum * spec.seq_len)])
        metrics = _fit(trainer, ctx)
        metrics.update(train_blocks=len(train_blocks), eval_blocks=len(eval_blocks),
                       train_tokens=len(train_blocks) * spec.seq_len, bf16=bf16,
                       sharding="fsdp" if _sharded(trainer) else "ddp", rank_parameters=_held(trainer.model))
        model = _whole_model(trainer, parent.path, ranks)
        if not ranks.main:  # rank 0 stores the model
            return {}
        _store_trained(store, spec, model, tokenizer, metrics, log)
    return {"name": spec.output_name, "parent": spec.model, "dataset": spec.dataset, **metrics,
            "seconds": round(time.monotonic() - started, 3)}


def _launch(store: Store, spec: TrainSpec, ctx: JobContext) -> dict:
    """The ranks (``apt_hf.train_rank``, each calling ``run_train`` with its ``ranks``): ``workers``
    of them under torchrun here, or, with ``nodes`` > 1 (kubernetes deployer, checked at Start),
    ``workers`` in each pod of a Kubeflow PyTorchJob of this plugin's own image, which this service
    submits, follows into the job, and deletes on a cancel."""
    if spec.nodes > 1:
        return pytorchjob.run_spec("apt_hf.train_rank", OPERATION, spec, RUN_KIND, spec.output_name, store.root,
                                   ctx, pytorchjob.Cluster.from_env(), SERVICE_ACCOUNT)
    return distributed.launch_spec("apt_hf.train_rank", OPERATION, store.root, spec, ctx,
                                   f"{RUN_KIND}-{spec.output_name}")


def _packed_splits(store: Store, spec: TrainSpec, parent: Path, work: Path):
    """(tokenizer, training blocks, eval blocks): whole documents are split before packing."""
    from apt_model.modeling.io import load_tokenizer

    ds = open_store_dataset(store, spec.dataset, work / "cache")
    field = pick_text_field(ds, spec.text_field)
    split = ds.train_test_split(test_size=spec.eval_fraction, seed=spec.seed, shuffle=True)
    tokenizer = load_tokenizer(parent)
    train_blocks = pack(split["train"][field], tokenizer, spec.seq_len)
    eval_blocks = pack(split["test"][field], tokenizer, spec.seq_len)
    if not train_blocks or not eval_blocks:
        raise errors.InvalidArgument(
            f"Dataset {spec.dataset!r} is too small for seq_len {spec.seq_len}: it gives "
            f"{len(train_blocks)} training and {len(eval_blocks)} eval blocks; lower seq_len or "
            "eval_fraction, or use more text."
        )
    return tokenizer, train_blocks, eval_blocks


def _trainer(spec: TrainSpec, ranks, work: Path, parent: Path, train_blocks: list[list[int]],
             eval_blocks: list[list[int]], callbacks: list):
    """A Trainer over the parent model, and whether it trains in bf16 (on CUDA when the GPU has it)."""
    import torch
    from transformers import PrinterCallback, TrainingArguments, default_data_collator

    from apt_model.modeling.io import load_model, pick_device

    cuda = pick_device(spec.device) == "cuda"
    model = load_model(parent, device="cpu")
    model.train()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    args = TrainingArguments(
        output_dir=str(work / "out"), learning_rate=spec.learning_rate,
        num_train_epochs=spec.epochs, max_steps=spec.max_steps or -1,
        per_device_train_batch_size=spec.batch_size // ranks.world, per_device_eval_batch_size=spec.batch_size,
        gradient_accumulation_steps=spec.grad_accum, seed=spec.seed, data_seed=spec.seed,
        lr_scheduler_type="cosine", warmup_steps=0, weight_decay=0.0, max_grad_norm=1.0,
        logging_strategy="steps", logging_steps=1, eval_strategy="no", eval_on_start=True, save_strategy="no",
        report_to=[], disable_tqdm=True, bf16=bf16, use_cpu=not cuda,
        # full batches only (an epoch's last, partial one dropped): the ranks split each step's evenly,
        # where accelerate would pad a short one with repeated blocks that one process does not train on
        dataloader_drop_last=True, dataloader_num_workers=0, dataloader_pin_memory=cuda,
        **({"ddp_backend": "nccl" if cuda else "gloo"} if ranks.world > 1 else {}),
    )
    if ranks.world > 1 and spec.sharding == "fsdp":
        model = _shard(model, args, ranks, "cuda" if cuda else "cpu")
    trainer = _whole_norm_trainer(model=model, args=args, train_dataset=_BlockDataset(train_blocks),
                                  eval_dataset=_BlockDataset(eval_blocks), data_collator=default_data_collator,
                                  callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # logs go to the job's metrics, not the service's stdout
    return trainer, bf16


def _whole_norm_trainer(**kwargs):
    """transformers' Trainer, whose logged gradient norm is the whole model's under FSDP2 too: there
    the norm it clips with is a DTensor still to be summed over the ranks (the clipping itself is
    right), and its ``.item()`` would log this rank's part."""
    from transformers import Trainer

    class WholeNormTrainer(Trainer):
        def _get_grad_norm(self, model, grad_norm=None):
            return distributed.full_tensor(super()._get_grad_norm(model, grad_norm))

    return WholeNormTrainer(**kwargs)


def _shard(model, args, ranks, device: str):
    """FSDP2 under the Trainer. accelerate 1.15 (the version pinned here) turns its FSDP plugin on
    only for accelerator devices: on CPU (MULTI_CPU, gloo) TrainingArguments(fsdp=...) falls back to
    DDP without a word. So the ranks shard the model themselves, as every other training operation
    does (``Ranks.wrap``, what ``distributed.parallelize`` runs: ``fully_shard`` on each block, then
    on the model), once the arguments have joined the process group; the Trainer takes it as a model
    sharded at load time (``is_distributed_loading_by_transformers``: no DDP around it, its own
    optimizer built on the shards, each rank's moments 1/ranks of the whole)."""
    from apt_model.modeling.trainlog import transformer_blocks

    _ = args.device  # the property sets up accelerate's state, the process group the shards use
    sharded = ranks.wrap(model, device, sharding="fsdp", blocks=transformer_blocks(model))
    sharded._is_distributed_loading_by_transformers = True  # what from_pretrained(distributed_config=...) sets
    return sharded


def _fit(trainer, ctx: JobContext) -> dict:
    """Train, which evaluates first (``eval_on_start``), and evaluate again; the losses and step
    count for the result. Not ``evaluate()`` before ``train()``: that prepares the model for
    evaluation only, and ``train()`` then keeps it so, without DDP: each rank would train alone
    on its share of the batch."""
    out = trainer.train()
    ctx.check_cancelled()
    before = next(h["eval_loss"] for h in trainer.state.log_history if "eval_loss" in h)
    after = trainer.evaluate()["eval_loss"]
    ctx.report(progress=0.92, stage="save", message=f"eval loss after {after:.4f}", eval_loss=after)
    return {"eval_loss_before": round(before, 6), "eval_loss": round(after, 6),
            "eval_perplexity": round(math.exp(min(after, 50.0)), 4), "train_loss": round(out.training_loss, 6),
            "steps": out.global_step}


def _held(model) -> int:
    """The parameters this rank holds: its shards of them under FSDP2 (DTensors), else all."""
    if hasattr(model, "reshard"):  # FSDP2 leaves the root's parameters gathered after the last forward
        model.reshard()
    return sum((p.to_local() if hasattr(p, "to_local") else p).numel() for p in model.parameters())


def _sharded(trainer) -> bool:
    return getattr(trainer.model, "is_distributed_loading_by_transformers", False)  # _shard's FSDP2


def _whole_model(trainer, parent: Path, ranks):
    """The trained model, whole, on rank 0 (None on the others under FSDP2). DDP and one process:
    the Trainer's own model (every rank holds the same weights). FSDP2: every rank's shards
    gathered (``distributed.gather_model``, a collective every rank calls) into a plain copy of
    the parent."""
    if not _sharded(trainer):
        return trainer.model
    from apt_model.modeling.io import load_model

    return distributed.gather_model(trainer.model, trainer.model, "", ranks,
                                    build=lambda config: load_model(parent, device="cpu"))


def _store_trained(store: Store, spec: TrainSpec, model, tokenizer, metrics: dict, log: list[dict]) -> None:
    """The trained weights (fp32, on CPU) and their training log as the new store model."""
    from apt_model.modeling import trainlog
    from apt_model.modeling.io import save_model

    trained = model.to("cpu").float().eval()
    with store.create("models", spec.output_name, operation="hf-train", parent=spec.model,
                      overwrite=spec.overwrite, metrics=metrics,
                      parameters={**asdict(spec), "dataset": spec.dataset}) as tmp:
        save_model(trained, tokenizer, tmp)
        trainlog.write(tmp, log)
