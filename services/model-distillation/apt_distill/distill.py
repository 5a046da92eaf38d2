"""One distillation run: the work function of a StartDistill job.

Loads the frozen teacher and builds the student on one device, trains the student on
the objective of ``apt_distill.objective`` with AdamW (linear warm-up, cosine decay,
gradient clipping at 1.0), streams the losses and validation perplexity, checkpoints for
resume, and finally writes the student into the store (atomically) with its lineage.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import lm, trainlog
from apt_model.modeling.io import pick_device, save_model
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_distill import checkpoint
from apt_distill.data import Batch, Corpus, read_texts
from apt_distill.models import build_student, check_spec_against_models, load_teacher, parameter_count
from apt_distill.objective import BUILTIN_TERMS, LossInputs, Objective, gather_teacher
from apt_distill.spec import DistillSpec

OPERATION = "distill"
MAX_EVAL_BATCHES = 16


def run_distill(store: Store, spec: DistillSpec, ctx: JobContext) -> dict[str, Any]:
    ctx.report(progress=0.0, stage="load", message=f"loading teacher {spec.teacher!r}")
    shapes = check_spec_against_models(store, spec)  # again: the store may have changed since Start
    device = pick_device(spec.device)
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
    params = [p for p in [*student.parameters(), *objective.parameters()] if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(warmup_cosine, warmup=spec.warmup_steps, total=spec.max_steps, floor=0.1))

    step, log = 0, []  # log: training_log.jsonl's rows, every step
    if spec.resume:
        step = checkpoint.load(store, spec, student, objective, optimizer, scheduler)
        log = checkpoint.load_log(store, spec.output_name)[:step]
        ctx.report(message=f"resumed from step {step}")
    elif spec.overwrite:
        checkpoint.remove(store, spec.output_name)

    ctx.report(stage="eval", message="teacher validation perplexity")
    teacher_ppl = evaluate(teacher, corpus, device, align_teacher=True)
    ctx.report(teacher_eval_ppl=teacher_ppl, student_params=parameter_count(student),
               teacher_params=parameter_count(teacher))

    last: dict[str, float] = {}
    eval_ppl = float("nan")
    started, first_step = time.monotonic(), step
    try:
        while step < spec.max_steps:
            ctx.check_cancelled()
            t0, lr = time.perf_counter(), scheduler.get_last_lr()[0]
            blocks = trainlog.wants_block_norms(step + 1)
            last = train_step(student, teacher, objective, corpus.train_batch(step).to(device), optimizer,
                              scheduler, spec, shapes.same_vocabulary, block_norms=blocks)
            step += 1
            row = trainlog.row(step, last["loss"], lr, last["grad_norm"], time.perf_counter() - t0,
                               spec.batch_size * spec.seq_len, last.pop("block_grad_norms", None),
                               **{k: v for k, v in last.items() if k.endswith("_loss") and k != "loss"})
            done_per_s = (step - first_step) / max(time.monotonic() - started, 1e-6)
            if step % spec.eval_every == 0 or step == spec.max_steps:
                eval_ppl = evaluate(student, corpus, device)
                last["eval_ppl"] = row["eval_ppl"] = eval_ppl
            log.append(row)
            ctx.report(progress=step / spec.max_steps, stage="train", message=f"step {step}/{spec.max_steps}",
                       eta_seconds=(spec.max_steps - step) / done_per_s, step=step, lr=scheduler.get_last_lr()[0],
                       tokens_per_s=done_per_s * spec.batch_size * spec.seq_len, **last)
            if step % spec.checkpoint_every == 0 and step < spec.max_steps:
                checkpoint.save(store, spec, step, student, objective, optimizer, scheduler, log)
    except errors.Cancelled:
        if step > first_step:  # keep the work done so far; --resume picks it up
            checkpoint.save(store, spec, step, student, objective, optimizer, scheduler, log)
        raise

    ctx.check_cancelled()
    ctx.report(progress=1.0, stage="save", message=f"saving {spec.output_name!r}")
    metrics = {"eval_ppl": eval_ppl, "teacher_eval_ppl": teacher_ppl, "steps": step,
               "tokens_seen": step * spec.batch_size * spec.seq_len,
               "student_params": parameter_count(student), "teacher_params": parameter_count(teacher),
               **{k: v for k, v in last.items() if k.endswith("_loss") or k == "loss"}}
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.teacher,
                      parameters=spec.lineage(), metrics=metrics, overwrite=spec.overwrite) as tmp:
        save_model(student, s_tok, tmp)
        trainlog.write(tmp, log)
    checkpoint.remove(store, spec.output_name)
    custom = {k: v for k, v in metrics.items() if k.endswith("_loss") and k not in BUILTIN_TERMS}
    return {"model": spec.output_name, **{k: v for k, v in metrics.items() if k not in custom},
            "custom_losses": custom}


def train_step(student, teacher, objective: Objective, batch: Batch, optimizer, scheduler, spec: DistillSpec,
               same_vocabulary: bool, block_norms: bool = False) -> dict:
    """One optimiser step; the loss terms, the total gradient norm before clipping and, when
    ``block_norms``, the student's per-block gradient norms (``block_grad_norms``)."""
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
    terms = objective(inputs)
    if not torch.isfinite(terms["loss"]):
        raise errors.FailedPrecondition(
            f"The loss became {terms['loss'].item()} (terms: "
            + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            + "); lower --learning-rate or --temperature, or the custom loss weights.")
    optimizer.zero_grad(set_to_none=True)
    terms["loss"].backward()
    blocks = trainlog.block_grad_norms(student) if block_norms else None
    grad_norm = torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
    optimizer.step()
    scheduler.step()
    out: dict = {k: float(v.detach()) for k, v in terms.items()}
    out["grad_norm"] = float(grad_norm)
    if blocks is not None:
        out["block_grad_norms"] = blocks
    return out


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


