"""One distillation run: the work function of a StartDistill job.

Loads the frozen teacher and builds the student on one device, trains the student on
the objective of ``apt_distill.objective`` with AdamW (linear warm-up, cosine decay,
gradient clipping at 1.0), streams the losses and validation perplexity, checkpoints for
resume, and finally writes the student into the store (atomically) with its lineage.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import lm, trainlog
from apt_model.modeling.io import pick_device, save_model
from apt_model.modeling import distributed
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime import pytorchjob
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_distill import checkpoint
from apt_distill.data import Batch, Corpus, read_texts
from apt_distill.models import build_student, check_spec_against_models, load_teacher, parameter_count
from apt_distill.objective import BUILTIN_TERMS, LossInputs, Objective, gather_teacher
from apt_distill.spec import DistillSpec

OPERATION = "distill"
SERVICE_ACCOUNT = "apt-model-distillation"  # its pod's, which may submit PyTorchJobs (plugin.yaml multi_node)
MAX_EVAL_BATCHES = 16


class _DistillLoss(torch.nn.Module):
    """The objective's terms as one module over the student and the learned projections, so
    DDP's forward (or FSDP's, as the root) wraps all of it; the frozen teacher is held outside
    the module's parameters."""

    def __init__(self, student, objective: Objective, teacher, spec: DistillSpec, same_vocabulary: bool):
        super().__init__()
        self.student, self.objective = student, objective
        self._teacher, self._spec, self._same = [teacher], spec, same_vocabulary

    def forward(self, batch: Batch | None = None, **student_inputs):
        """The objective's terms on ``batch``; without one, the student's output on ``student_inputs``
        (an FSDP run evaluates through its root, which gathers the student's sharded weights)."""
        if batch is None:
            return self.student(**student_inputs)
        return loss_terms(self.student, self._teacher[0], self.objective, batch, self._spec, self._same)


@dataclass
class _Run:
    """What a run trains with: the frozen teacher, the student and its objective, the text."""
    teacher: Any
    student: Any
    student_tokenizer: Any
    corpus: Corpus
    objective: Objective
    optimizer: torch.optim.Optimizer
    same_vocabulary: bool


def run_distill(store: Store, spec: DistillSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict[str, Any]:
    """The job. With ``workers`` or ``nodes`` > 1 it runs the ranks (``_launch``) and follows them."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return _launch(store, spec, ctx)
    ranks = ranks or Ranks()
    device = pick_device(spec.device)
    run = _prepare(store, spec, ctx, ranks, device)
    ckpt = checkpoint.of(store, spec)
    # log: training_log.jsonl's rows, every step
    step, log, optimizer_state = ckpt.resume_or_start(
        spec.resume, spec.overwrite, checkpoint.settings(spec), {"student": run.student, "objective": run.objective},
        main=ranks.main, report=ctx.report)

    teacher_ppl = float("nan")
    if ranks.main:  # rank 0 evaluates; the others wait for it at the first step
        ctx.report(stage="eval", message="teacher validation perplexity")
        teacher_ppl = evaluate(run.teacher, run.corpus, device, align_teacher=True)
        ctx.report(teacher_eval_ppl=teacher_ppl, student_params=parameter_count(run.student),
                   teacher_params=parameter_count(run.teacher))
    loss, sharded = _parallel(run, spec, ranks, device, optimizer_state)

    def forward(step: int, micro: int) -> dict:
        # every rank draws the same global batch and trains its share of the rows
        return loss(ranks.shard(run.corpus.train_batch(step)).to(device))

    def save(step: int) -> None:
        # FSDP: every rank gathers its shards; DDP: every rank holds the same state. Rank 0 writes it
        states = distributed.whole_states({"student": run.student, "objective": run.objective}, run.optimizer,
                                          ranks, sharded)
        if states is not None:
            parts, optimizer_sd = states
            ckpt.save(step, {**parts, "optimizer": optimizer_sd}, checkpoint.settings(spec), loop.log)

    def evaluate_student() -> dict:
        if sharded is not None:  # every rank runs the sharded student: its weights are gathered as it runs
            return {"eval_ppl": evaluate(loss, run.corpus, device)}
        return {"eval_ppl": evaluate(run.student, run.corpus, device)} if ranks.main else {}

    loop = Loop(ctx, run.student, run.optimizer, functools.partial(_lr_at, spec), spec.max_steps,
                spec.batch_size * spec.seq_len // ranks.world, device=device, eval_every=spec.eval_every,
                evaluate=evaluate_student, checkpoint_every=spec.checkpoint_every, checkpoint=save,
                nonfinite_hint="lower --learning-rate or --temperature, or the custom loss weights", log=log,
                ranks=ranks, no_sync=getattr(loss, "no_sync", None))
    step = loop.run(step, forward)
    if sharded is not None:  # rank 0 stores a plain student, whole
        run.student = distributed.gather_model(sharded, run.student, "student", ranks)
    if not ranks.main:
        return {}
    result = _store_student(store, spec, ctx, run, step, loop.last, teacher_ppl, log)
    ckpt.remove()
    return result


def _launch(store: Store, spec: DistillSpec, ctx: JobContext) -> dict[str, Any]:
    """The ranks (``apt_distill.distill_rank``, each calling ``run_distill`` with its ``ranks``):
    ``workers`` of them under torchrun here, or, with ``nodes`` > 1 (kubernetes deployer, checked
    at Start), ``workers`` in each pod of a Kubeflow PyTorchJob of this plugin's own image, which
    this service submits, follows into the job, and deletes on a cancel."""
    if spec.nodes > 1:
        return pytorchjob.run_spec("apt_distill.distill_rank", OPERATION, spec, checkpoint.KIND, spec.output_name,
                                   store.root, ctx, pytorchjob.Cluster.from_env(), SERVICE_ACCOUNT)
    return distributed.launch_spec("apt_distill.distill_rank", OPERATION, store.root, spec, ctx,
                                   f"{checkpoint.KIND}-{spec.output_name}")


def _prepare(store: Store, spec: DistillSpec, ctx: JobContext, ranks: Ranks, device: str) -> _Run:
    """Teacher, student, text and objective, checked against the store again (it may have
    changed since Start)."""
    ctx.report(progress=0.0, stage="load", message=f"loading teacher {spec.teacher!r}")
    shapes = check_spec_against_models(store, spec)
    ranks.init(device)
    torch.manual_seed(spec.seed)
    teacher, t_tok = load_teacher(store, spec.teacher, device)
    student, s_tok = build_student(store, spec, teacher, t_tok, device)
    texts = read_texts(store, spec.dataset, spec.corpus_paths)
    if not texts:
        raise errors.FailedPrecondition("The training text is empty.")
    corpus = Corpus(texts, s_tok, t_tok, seq_len=spec.seq_len, batch_size=spec.batch_size,
                    same_tokenizer=shapes.same_vocabulary,
                    teacher_max_positions=getattr(teacher.config, "max_position_embeddings", 4096), seed=spec.seed)
    if not shapes.same_vocabulary:
        ctx.warn("Teacher and student tokenizers differ: teacher states are aligned to student tokens "
                 "by character offsets (" + "; ".join(shapes.vocabulary_differences[:2]) + ").")
    objective = Objective(spec, shapes).to(device)
    return _Run(teacher, student, s_tok, corpus, objective, _optimizer(student, objective, spec),
                shapes.same_vocabulary)


def _optimizer(student, objective: Objective, spec: DistillSpec) -> torch.optim.Optimizer:
    """AdamW over the student and the learned projections, in that order (a checkpoint's moments
    are numbered so, whatever the sharding)."""
    params = [p for p in [*student.parameters(), *objective.parameters()] if p.requires_grad]
    return torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))


def _parallel(run: _Run, spec: DistillSpec, ranks: Ranks, device: str, optimizer_state: dict | None):
    """The loss module of the run's ranks and its FSDP root (None unless sharded), through
    ``distributed.parallelize`` (FSDP2: each student block, then the whole loss module); the run's
    optimizer is the one that steps it."""
    par = distributed.parallelize(
        ranks, _DistillLoss(run.student, run.objective, run.teacher, spec, run.same_vocabulary), device,
        run.optimizer, functools.partial(_optimizer, run.student, run.objective, spec), sharding=spec.sharding,
        blocks=trainlog.transformer_blocks(run.student), optimizer_state=optimizer_state, find_unused=True)
    run.optimizer = par.optimizer
    return par.loss, par.sharded


def _store_student(store: Store, spec: DistillSpec, ctx: JobContext, run: _Run, step: int, last: dict,
                   teacher_ppl: float, log: list) -> dict[str, Any]:
    """The trained student as a store model (atomically, with lineage and training log); the job's result."""
    ctx.check_cancelled()
    ctx.report(progress=1.0, stage="save", message=f"saving {spec.output_name!r}")
    metrics = {"eval_ppl": last.get("eval_ppl", float("nan")), "teacher_eval_ppl": teacher_ppl, "steps": step,
               "tokens_seen": step * spec.batch_size * spec.seq_len,
               "student_params": parameter_count(run.student), "teacher_params": parameter_count(run.teacher),
               **{k: v for k, v in last.items() if k.endswith("_loss") or k == "loss"}}
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.teacher,
                      parameters=spec.lineage(), metrics=metrics, overwrite=spec.overwrite) as tmp:
        save_model(run.student, run.student_tokenizer, tmp)
        trainlog.write(tmp, log)
    custom = {k: v for k, v in metrics.items() if k.endswith("_loss") and k not in BUILTIN_TERMS}
    return {"model": spec.output_name, **{k: v for k, v in metrics.items() if k not in custom},
            "custom_losses": custom}


def _lr_at(spec: DistillSpec, step: int) -> float:
    """Linear warm-up to the peak, then cosine down to a tenth of it at ``max_steps``."""
    return spec.learning_rate * warmup_cosine(step, spec.warmup_steps, spec.max_steps, 0.1)


def loss_terms(student, teacher, objective: Objective, batch: Batch, spec: DistillSpec,
               same_vocabulary: bool) -> dict[str, torch.Tensor]:
    """The objective's terms on one batch (``loss`` is their weighted sum); the teacher is frozen."""
    hidden = objective.needs_hidden
    with torch.no_grad():  # not inference_mode: its tensors cannot be saved for the student's backward
        t_out = teacher(input_ids=batch.teacher_ids, attention_mask=batch.teacher_mask,
                        output_hidden_states=hidden, use_cache=False)
    s_out = student(input_ids=batch.input_ids, output_hidden_states=hidden, use_cache=False)
    inputs = LossInputs(
        student_logits=s_out.logits,
        teacher_logits=gather_teacher(t_out.logits, batch.align),
        student_hidden=tuple(s_out.hidden_states[1:]) if hidden else (),
        teacher_hidden=tuple(gather_teacher(h, batch.align) for h in t_out.hidden_states[1:]) if hidden else (),
        mask=batch.mask, input_ids=batch.input_ids, temperature=spec.temperature,
        same_vocabulary=same_vocabulary,
    )
    return objective(inputs)


@torch.no_grad()
def evaluate(model, corpus: Corpus, device: str, align_teacher: bool = False) -> float:
    """Validation perplexity: exp of the mean next-token CE over the held-out blocks.

    ``align_teacher`` reads the teacher's own tokenization when the tokenizers differ
    (its perplexity is then per teacher token, which is noted in the README).
    """
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for batch in corpus.val_batches()[:MAX_EVAL_BATCHES]:
        batch = batch.to(device)
        ids, mask = (batch.teacher_ids, batch.teacher_mask) if align_teacher else (batch.input_ids, batch.mask)
        nll, n = lm.window_nll(model, ids, mask)  # the platform's one estimator
        total += nll
        count += n
    model.train(was_training)
    return math.exp(total / max(count, 1))


