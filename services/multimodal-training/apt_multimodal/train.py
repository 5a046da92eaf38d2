"""The work of a StartTrain job: a store causal LM plus from-scratch encoders and projectors,
trained on a stored multimodal dataset on the platform's Loop, checkpointed for resume, and
written into the store (atomically) with its lineage and ``training_log.jsonl``. With ``workers``
> 1 the ranks (``apt_multimodal.train_rank``) each train their share of every step's global batch
under DDP, or FSDP2 with ``sharding="fsdp"`` (``apt_model.modeling.distributed``); with ``nodes`` > 1
(kubernetes deployer) they run in the pods of a Kubeflow PyTorchJob (``apt_model.runtime.pytorchjob``)."""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import distributed, trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.io import load_model, load_tokenizer, pick_device
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_multimodal import model as mm
from apt_multimodal import shards
from apt_multimodal.batches import IGNORE, make_batch

OPERATION = "multimodal-train"
KIND = "multimodal"
SERVICE_ACCOUNT = "apt-multimodal-training"  # its pod's, which may submit PyTorchJobs (plugin.yaml multi_node)
# may change between a run and its resume (2 ranks' checkpoint, on 1 or 2 nodes, resumes on 1, a DDP
# run's under FSDP or back: checkpoints are whole either way)
FREE_FIELDS = ("device", "checkpoint_every", "workers", "nodes", "sharding")


@dataclass(frozen=True)
class TrainSpec:
    model: str
    dataset: str
    output_name: str
    max_steps: int = 200
    learning_rate: float = 1e-3
    stage: str = "align"
    batch_size: int = 16
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    module_learning_rates: dict[str, float] = field(default_factory=dict)
    freeze: tuple[str, ...] = ()
    encoder_width: int = 64
    encoder_layers: int = 2
    patch_size: int = 8
    checkpoint_every: int = 100
    warmup_steps: int = 0
    workers: int = 1                  # data-parallel ranks (per node); batch_size is the global batch
    nodes: int = 1                    # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"             # with workers > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)

    @classmethod
    def from_request(cls, r) -> "TrainSpec":
        """A ``TrainRequest`` as a spec (0 = the default); INVALID_ARGUMENT naming a bad layout or sharding
        field. nodes > 1 needs the kubernetes deployer, which the service checks (distributed.refuse_multi_node)."""
        d = cls("", "", "")
        workers, nodes = r.workers or 1, r.nodes or 1
        for field_name, why in distributed.check_layout(r.batch_size or d.batch_size, workers, nodes):
            raise errors.InvalidArgument(why + ".", violations=[(field_name, why)])
        sharding = distributed.require_sharding(r.sharding)
        return cls(
            model=r.model, dataset=r.dataset, output_name=r.output_name, max_steps=r.max_steps or d.max_steps,
            learning_rate=r.learning_rate or d.learning_rate, stage=r.stage or d.stage,
            batch_size=r.batch_size or d.batch_size, seed=r.seed, resume=r.resume, overwrite=r.overwrite,
            device=r.device or d.device, module_learning_rates=dict(r.module_learning_rates), freeze=tuple(r.freeze),
            encoder_width=r.encoder_width or d.encoder_width, encoder_layers=r.encoder_layers or d.encoder_layers,
            patch_size=r.patch_size or d.patch_size, checkpoint_every=r.checkpoint_every or d.checkpoint_every,
            warmup_steps=r.warmup_steps, workers=workers, nodes=nodes, sharding=sharding)

    def lineage(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("resume", "overwrite")}

    def settings(self) -> dict[str, Any]:
        return {k: v for k, v in self.lineage().items() if k not in FREE_FIELDS}


class ScaledAdamW(torch.optim.AdamW):
    """AdamW whose parameter groups keep their own learning rate as a multiple (``lr_scale``) of
    the schedule's, which the Loop writes into every group each step."""

    def step(self, closure=None):
        base = [g["lr"] for g in self.param_groups]
        for g in self.param_groups:
            g["lr"] = g["lr"] * g.get("lr_scale", 1.0)
        try:
            return super().step(closure)
        finally:
            for g, lr in zip(self.param_groups, base):
                g["lr"] = lr


def checkpoint_of(store: Store, spec: TrainSpec) -> RunCheckpoint:
    return RunCheckpoint(store, KIND, spec.output_name)


def build(store: Store, spec: TrainSpec, data: shards.ShardSet, device: str, ctx: JobContext | None = None):
    """(model, tokenizer, added placeholder tokens): a stored multimodal model continued, or a
    store causal LM with new encoders and its placeholder tokens added (embeddings resized)."""
    folder = store.model(spec.model).path
    modalities = data.modalities()
    if mm.is_multimodal(folder):
        model, tok = mm.load(folder)
        missing = [m for m in modalities if m not in model.config.modalities()]
        if missing:
            raise errors.FailedPrecondition(
                f"Model {spec.model!r} has no {', '.join(missing)} encoder, which dataset {spec.dataset!r} needs.")
        return model.to(device), tok, []
    torch.manual_seed(spec.seed)
    lm, tok = load_model(folder), load_tokenizer(folder)
    added = [mm.PLACEHOLDERS[m] for m in modalities if mm.PLACEHOLDERS[m] not in tok.get_vocab()]
    if added:
        tok.add_tokens(added, special_tokens=True)
        lm.resize_token_embeddings(len(tok))
    token_ids = {m: tok.convert_tokens_to_ids(mm.PLACEHOLDERS[m]) for m in modalities}
    audio_frames = data.shards[0]["audios"].shape[-1] if "audio" in modalities else 0
    towers = mm.TowerSpec(spec.encoder_width, spec.encoder_layers, spec.patch_size)
    return mm.create(lm, token_ids, data.meta["media"], audio_frames, towers).to(device), tok, added


def optimizer_for(model: mm.MultimodalLM, spec: TrainSpec) -> ScaledAdamW:
    """One parameter group per trainable module, with its own learning rate; align freezes the LM."""
    frozen = set(spec.freeze) | ({"lm"} if spec.stage == "align" else set())
    for name in set(spec.freeze) | set(spec.module_learning_rates):
        mm.module(model, name)  # unknown names are InvalidArgument, listing the real ones
    model.requires_grad_(False)
    groups = []
    for name in mm.module_names(model):
        if name in frozen:
            continue
        params = list(mm.module(model, name).parameters())
        for p in params:
            p.requires_grad_(True)
        lr = spec.module_learning_rates.get(name, spec.learning_rate)
        groups.append({"params": params, "lr": lr, "lr_scale": lr / spec.learning_rate, "module": name})
    if not groups:
        raise errors.InvalidArgument("Every module is frozen: nothing would train. Unfreeze at least one.")
    return ScaledAdamW(groups, lr=spec.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))


class _CaptionLoss(torch.nn.Module):
    """The model's forward as the module DDP or FSDP2 wraps (the FSDP root, whose submodule
    ``model`` a checkpoint keeps)."""

    def __init__(self, model: mm.MultimodalLM):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask, labels, media, idle=None):
        """The captions' loss; ``idle``: stand-ins for the modalities this rank's rows lack (``MultimodalLM.embed``)."""
        return self.model(input_ids, attention_mask, labels, media, idle=idle).loss


def fsdp_blocks(model: mm.MultimodalLM) -> list[torch.nn.Module]:
    """FSDP2's units inside the root: the LM's transformer blocks and each encoder's (vision, audio)."""
    parts = [model.language_model, getattr(model, "vision_tower", None), getattr(model, "audio_tower", None)]
    return [block for part in parts if part is not None for block in trainlog.transformer_blocks(part)]


def _idle_towers(data: shards.ShardSet, device: str):
    """Under FSDP a tower runs on every rank or on none (a sharded block's gradients are
    reduce-scattered by all ranks): for a rank's media and the global batch's rows, a stand-in item
    (the dataset's first) of each modality the global batch has and this rank's rows lack, for
    ``_CaptionLoss``. None where no row has it: its gradients stay None, as in one process."""
    first = {}
    for modality in data.modalities():
        x = next((x for r in data.rows if (x := data.media(r, modality)) is not None), None)
        if x is not None:
            first[modality] = x[:1].to(device)

    def idle(media: dict, rows: list[shards.StoredRow]) -> dict:
        used = {m for r in rows for m, idx in r.media.items() if idx}
        return {m: x for m, x in first.items() if m in used and m not in media}
    return idle


def run_train(store: Store, spec: TrainSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict[str, Any]:
    """The job. With ``workers`` or ``nodes`` > 1 it runs the ranks (``_launch``) and follows them."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return _launch(store, spec, ctx)
    ranks = ranks or Ranks()
    ctx.report(progress=0.0, stage="load", message=f"loading {spec.model!r} and {spec.dataset!r}")
    device = pick_device(spec.device)
    ranks.init(device)
    data = shards.read(store.dataset(spec.dataset).path)
    model, tok, added = build(store, spec, data, device, ctx)
    if added:
        ctx.warn(f"Added placeholder token(s) {', '.join(added)} to {spec.model!r}'s vocabulary "
                 f"and resized its embeddings to {len(tok)}.")
    optimizer = optimizer_for(model, spec)
    ckpt = checkpoint_of(store, spec)
    step, log, optimizer_state = ckpt.resume_or_start(spec.resume, spec.overwrite, spec.settings(), {"model": model},
                                                      main=ranks.main, report=ctx.report)
    # DDP: a batch may lack a modality, its tower idles (find_unused); FSDP: every tower runs
    par = distributed.parallelize(ranks, _CaptionLoss(model), device, optimizer,
                                  functools.partial(optimizer_for, model, spec), sharding=spec.sharding,
                                  blocks=fsdp_blocks(model), optimizer_state=optimizer_state, find_unused=True)
    optimizer, idle_towers = par.optimizer, _idle_towers(data, device) if par.sharded is not None else None

    def rows_of(step: int) -> list[shards.StoredRow]:
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)  # a function of (seed, step)
        return [data.rows[i] for i in torch.randint(len(data.rows), (spec.batch_size,), generator=gen)]

    def forward(step: int, micro: int) -> dict:
        # every rank draws the same global batch and trains its share of the rows
        rows = rows_of(step)
        batch = make_batch(data, ranks.shard(rows), tok, model.config.token_ids(), model.tokens_per_item()).to(device)
        loss = par.loss(batch.input_ids, batch.attention_mask, batch.labels, batch.media,
                        idle_towers(batch.media, rows) if idle_towers else None)
        # the caption loss is a mean over the global batch's labelled tokens, whichever rank holds them
        labelled = int((batch.labels[:, 1:] != IGNORE).sum())  # the LM's shifted targets
        total, trained = ranks.sums(labelled, int(batch.attention_mask.sum()))
        # tokens: the Loop counts world x this, the global batch's
        return {"loss": ranks.part_of_mean(loss, labelled, total), "tokens": trained / ranks.world}

    def save(step: int) -> None:
        # FSDP: every rank gathers its shards; DDP: every rank holds the same state. Rank 0 writes it
        states = distributed.whole_states({"model": model}, optimizer, ranks, par.sharded)
        if states is not None:
            parts, optimizer_sd = states
            ckpt.save(step, {**parts, "optimizer": optimizer_sd}, spec.settings(), loop.log)

    loop = Loop(ctx, model, optimizer, functools.partial(_lr_at, spec), spec.max_steps,
                spec.batch_size * 32 // ranks.world, device=device, checkpoint_every=spec.checkpoint_every,
                checkpoint=save, nonfinite_hint="lower --learning-rate", log=log, ranks=ranks, no_sync=par.no_sync)
    step = loop.run(step, forward)
    trainable = sum(p.numel() for g in optimizer.param_groups for p in g["params"])  # FSDP: DTensors, whole sizes
    if par.sharded is not None:  # rank 0 stores a plain model, whole
        model = distributed.gather_model(par.sharded, model, "model", ranks)
    if not ranks.main:
        return {}
    metrics = {"loss": loop.last.get("loss", float("nan")), "first_loss": log[0]["loss"] if log else float("nan"),
               "steps": step, "tokens_seen": int(sum(r.get("tokens_per_s", 0) * r.get("step_seconds", 0) for r in log)),
               "trainable_params": trainable}
    return _store_model(store, spec, ctx, model, tok, added, log, metrics, ckpt)


def _launch(store: Store, spec: TrainSpec, ctx: JobContext) -> dict[str, Any]:
    """The ranks (``apt_multimodal.train_rank``, each calling ``run_train`` with its ``ranks``):
    ``workers`` of them under torchrun here, or, with ``nodes`` > 1 (kubernetes deployer, checked
    at Start), ``workers`` in each pod of a Kubeflow PyTorchJob of this plugin's own image, which
    this service submits, follows into the job, and deletes on a cancel. The pods read the model and
    the dataset's shards from the store PVC, as this process does."""
    if spec.nodes > 1:
        return pytorchjob.run_spec("apt_multimodal.train_rank", OPERATION, spec, KIND, spec.output_name,
                                   store.root, ctx, pytorchjob.Cluster.from_env(), SERVICE_ACCOUNT)
    return distributed.launch_spec("apt_multimodal.train_rank", OPERATION, store.root, spec, ctx,
                                   f"{KIND}-{spec.output_name}")


def _store_model(store: Store, spec: TrainSpec, ctx: JobContext, model, tok, added: list, log: list,
                 metrics: dict, ckpt) -> dict[str, Any]:
    """Rank 0: the trained model and its training log into the store, then the checkpoint removed."""
    ctx.check_cancelled()
    ctx.report(progress=1.0, stage="save", message=f"saving {spec.output_name!r}")
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.model,
                      parameters={**spec.lineage(), "dataset": spec.dataset, "added_tokens": added},
                      metrics=metrics, overwrite=spec.overwrite) as tmp:
        mm.save(model, tok, tmp)
        trainlog.write(tmp, log)
    ckpt.remove()
    return {"model": spec.output_name, **metrics, "added_tokens": added}


def _lr_at(spec: TrainSpec, step: int) -> float:
    warmup = spec.warmup_steps or max(1, spec.max_steps // 20)
    return spec.learning_rate * warmup_cosine(step, warmup, spec.max_steps, 0.1)
