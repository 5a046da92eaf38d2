"""The StartVerifierTraining job: an outcome or process verifier trained on planted step errors.

Every training row gives one solution, untouched or with one planted wrong step (``planted``),
so the labels are exact. The verifier starts from the causal LM's body with a new 2-way head
and learns with the platform's ``Loop`` (cross-entropy on the solution's label, or on each
step's label at the step's last token). It is scored on held-out-template problems, half of
them planted: AUROC of the solution scores, and for a process verifier the share of planted
solutions whose first wrong step is the first step it scores below 0.5. With ``workers`` or ``nodes``
> 1 the ranks (``apt_reason.launch``) each train their share of every step's global batch.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import distributed, trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.io import load_tokenizer, pick_device, save_model
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import countdown, data, launch, planted, scorer
from apt_reason.prompts import Chat

KIND = "reasoning-verifier"
OPERATION = "reasoning-verifier"
# 2 ranks' checkpoint (on 1 or 2 nodes) resumes on 1, a DDP run's under FSDP or back (checkpoints are
# whole either way)
FREE_FIELDS = ("device", "checkpoint_every", "resume", "overwrite", "workers", "nodes", "sharding")


@dataclass(frozen=True)
class VerifierSpec:
    model: str
    dataset: str
    output_name: str
    max_steps: int = 200
    kind: str = "outcome"
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    corrupt_rate: float = 0.5
    eval_examples: int = 200
    checkpoint_every: int = 100
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    workers: int = 1                  # data-parallel ranks per node; batch_size is the global batch
    nodes: int = 1                    # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"             # with workers > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)

    @classmethod
    def from_request(cls, r) -> "VerifierSpec":
        # nodes > 1 needs the kubernetes deployer: the servicer checks it (distributed.refuse_multi_node)
        workers, nodes = launch.check_layout(r.batch_size or 16, r.workers, r.nodes)
        sharding = distributed.require_sharding(r.sharding)
        return cls(model=r.model, dataset=r.dataset, output_name=r.output_name, max_steps=r.max_steps or 200,
                   kind=r.kind or "outcome", batch_size=r.batch_size or 16, learning_rate=r.learning_rate or 1e-3,
                   seed=r.seed, corrupt_rate=r.corrupt_rate if r.HasField("corrupt_rate") else 0.5,
                   eval_examples=r.eval_examples or 200, checkpoint_every=r.checkpoint_every or 100,
                   resume=r.resume, overwrite=r.overwrite, device=r.device or "auto", workers=workers,
                   nodes=nodes, sharding=sharding)

    def settings(self) -> dict:
        """What a resume must repeat."""
        return {k: v for k, v in asdict(self).items() if k not in FREE_FIELDS}


def read_chains(store: Store, spec: VerifierSpec) -> dict[str, tuple[list[dict], list]]:
    """Both splits' rows and step chains; bad rows refused with their numbers."""
    out = {}
    for split in data.SPLITS:
        rows = [r for r in data.read_split(store, spec.dataset, split, need_reasoning=True)
                if not countdown.is_countdown(r)]  # a puzzle's steps are no chain to plant errors in
        if not rows:
            raise errors.FailedPrecondition(
                f"{split}.jsonl of dataset {spec.dataset!r} holds only countdown puzzles; verifiers train on the "
                "arithmetic problems' step chains: generate a dataset with --countdown-share below 1.")
        out[split] = (rows, planted.chains(rows, spec.dataset, split))
    return out


def check_start(store: Store, spec: VerifierSpec) -> None:
    """Refuse, before a job starts, bad rows, a taken output name or a checkpoint clash."""
    read_chains(store, spec)
    if store.exists("models", spec.output_name) and not spec.overwrite:
        raise errors.AlreadyExists(f"{spec.output_name!r} already exists in the store; choose another "
                                   "--output-name or pass --overwrite.")
    RunCheckpoint(store, KIND, spec.output_name).check_start(resume=spec.resume, overwrite=spec.overwrite)


def _examples(chat: Chat, sols: list[planted.Solution]) -> list[tuple[list[int], list[int], list[int]]]:
    """(ids, step ends, step labels) of each solution."""
    return [(*scorer.encode(chat, s.question, s.pieces(), True), s.step_labels()) for s in sols]


def _labelled(kind: str, rows: list[tuple[list[int], list[int], list[int]]], pad_id: int, max_len: int) -> dict:
    """A training batch: sequence labels (the answer line's) or per-token labels at step ends."""
    rows = [(ids[:max_len], [e for e in ends if e < max_len], labels) for ids, ends, labels in rows]
    ids, mask = scorer.batch([r[0] for r in rows], pad_id)
    if kind == "outcome":
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r[2][-1] for r in rows])}
    labels = torch.full_like(ids, -100)
    for i, (_, ends, step_labels) in enumerate(rows):
        labels[i, ends] = torch.tensor(step_labels[:len(ends)])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def run_verifier(store: Store, spec: VerifierSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict[str, Any]:
    """The job: plant, train, score on held-out templates, store the verifier. With ``workers`` or
    ``nodes`` > 1 it runs the ranks (``launch.run_ranks``), each calling this with its ``ranks``;
    rank 0 scores and stores."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return launch.run_ranks("verifier", KIND, store, spec, ctx)
    ranks = ranks or Ranks()
    chained = read_chains(store, spec)
    train = planted.solutions(*chained["train"], spec.corrupt_rate, spec.seed)
    evals = planted.balanced(*chained["eval"], spec.eval_examples, spec.seed)
    if spec.corrupt_rate in (0.0, 1.0):
        ctx.warn(f"--corrupt-rate {spec.corrupt_rate} gives the verifier one class only to learn from.")
    device = pick_device(spec.device)
    ranks.init(device)
    path = store.model(spec.model).path
    tok = load_tokenizer(path)
    chat = Chat.of(tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    model = scorer.build(path, spec.kind, pad_id, device, spec.seed).train()
    step, loop, model = _train(store, spec, model, _examples(chat, train), pad_id, device, ctx, ranks)
    if not ranks.main:
        return {}
    ctx.report(progress=0.9, stage="eval", message=f"scoring {len(evals)} held-out solutions")
    scores = evaluate(model, spec.kind, _examples(chat, evals), evals, pad_id)
    ctx.check_cancelled()
    metrics = {"steps": step, **scores, **({"loss": loop.last["loss"]} if "loss" in loop.last else {})}
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                      parameters=spec.settings(), metrics=metrics, extra={"verifier": spec.kind}) as folder:
        save_model(model.eval(), tok, folder)
        trainlog.write(folder, loop.log)
    RunCheckpoint(store, KIND, spec.output_name).remove()
    return {"model": spec.output_name, "kind": spec.kind, "eval_examples": len(evals), **metrics}


def _train(store: Store, spec: VerifierSpec, model, examples: list, pad_id: int, device: str,
           ctx: JobContext, ranks: Ranks) -> tuple[int, Loop, Any]:
    """The trained steps, the loop (its log) and the model: under FSDP a plain one, whole, on rank 0."""
    def make_optimizer():
        return torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))

    ckpt = RunCheckpoint(store, KIND, spec.output_name)
    step, log, optimizer_state = ckpt.resume_or_start(spec.resume and ckpt.step() is not None, spec.overwrite,
                                                      spec.settings(), {"model": model}, main=ranks.main,
                                                      report=ctx.report)
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    # FSDP: the model itself is the root (fully_shard on each block, then on it)
    par = distributed.parallelize(ranks, model, device, make_optimizer(), make_optimizer, sharding=spec.sharding,
                                  blocks=trainlog.transformer_blocks(model), optimizer_state=optimizer_state)
    optimizer, wrapped = par.optimizer, par.loss

    def forward(step: int, micro: int) -> dict:
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)  # the batch is f(seed, step)
        picked = ranks.shard(torch.randint(len(examples), (spec.batch_size,), generator=gen).tolist())
        batch = {k: v.to(device) for k, v in _labelled(spec.kind, [examples[i] for i in picked], pad_id,
                                                       max_len).items()}
        # a mean over the global batch's labels (a process verifier's: step ends), whichever rank holds them
        labelled = int((batch["labels"] != -100).sum())
        total, tokens = ranks.sums(labelled, int(batch["attention_mask"].sum()))
        # tokens: the Loop counts world x this, the global batch's
        return {"loss": ranks.part_of_mean(wrapped(**batch).loss, labelled, total), "tokens": tokens / ranks.world}

    def save(step: int) -> None:
        # FSDP: every rank gathers its shards; DDP: every rank holds the same state. Rank 0 writes it
        states = distributed.whole_states({"model": model}, optimizer, ranks, par.sharded)
        if states is not None:
            parts, optimizer_sd = states
            ckpt.save(step, {**parts, "optimizer": optimizer_sd}, spec.settings(), loop.log)

    warmup = max(1, spec.max_steps // 20)
    loop = Loop(ctx, model, optimizer, functools.partial(_lr_at, spec.learning_rate, warmup, spec.max_steps),
                spec.max_steps, spec.batch_size * 64 // ranks.world, device=device, stage=f"train {spec.kind} verifier",
                progress=(0.0, 0.9), checkpoint_every=spec.checkpoint_every, checkpoint=save,
                nonfinite_hint="lower --learning-rate", log=log, ranks=ranks)
    step = loop.run(step, forward)
    save(step)  # kept until the verifier is stored
    if par.sharded is not None:  # rank 0 scores and stores a plain verifier, whole
        return step, loop, distributed.gather_model(par.sharded, model, "model", ranks,
                                                    build=scorer.model_class(spec.kind).from_config)
    return step, loop, model


def _lr_at(peak: float, warmup: int, total: int, step: int) -> float:
    return peak * warmup_cosine(step, warmup, total, 0.1)


def evaluate(model, kind: str, examples: list, sols: list[planted.Solution], pad_id: int) -> dict[str, float]:
    """AUROC of solution scores (a process verifier's: its lowest step score); for a process
    verifier also the first wrong step located exactly and the step accuracy."""
    model.eval()
    probs = scorer.probabilities(model, kind, [(e[0], e[1]) for e in examples], pad_id)
    labels = [int(s.correct) for s in sols]
    out: dict[str, float] = {}
    if 0 < sum(labels) < len(labels):
        out["auroc"] = scorer.auroc([min(p) for p in probs], labels)
    if kind == "process":
        planted_ones = [(p, s) for p, s in zip(probs, sols) if not s.correct]
        out["first_wrong_step_accuracy"] = (sum(first_below(p[:-1]) == s.first_wrong for p, s in planted_ones)
                                            / max(len(planted_ones), 1))
        pairs = [(x >= 0.5, bool(y)) for p, s in zip(probs, sols) for x, y in zip(p, s.step_labels())]
        out["step_accuracy"] = sum(a == b for a, b in pairs) / max(len(pairs), 1)
    return out


def first_below(step_probs: list[float], threshold: float = 0.5) -> int | None:
    """The first step scored wrong (P(correct) below ``threshold``), or None."""
    return next((i for i, p in enumerate(step_probs) if p < threshold), None)
