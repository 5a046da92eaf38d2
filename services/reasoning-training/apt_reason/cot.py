"""Chain-of-thought SFT: the StartCotTraining job.

The model learns the assistant turn (reasoning lines and the answer line, or the answer line
alone) of each training question, the question masked out of the loss, with the platform's
``Loop``. With ``ablation`` the other target trains from the same starting weights at equal
steps, so the exact-match gap on the held-out-template eval split measures what the reasoning
adds. Both models are written at the end, together, or neither is. With ``workers`` or ``nodes``
> 1 the ranks (``apt_reason.launch``) each train their share of every step's global batch.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import distributed, trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.distributed import Ranks
from apt_model.modeling.io import load_model, load_tokenizer, pick_device, save_model
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import data, launch
from apt_reason.prompts import Chat, training_batch
from apt_reason.search import decode
from apt_reason.tasks import completion, is_correct, parse_answer

KIND = "reasoning-cot"
OPERATION = "reasoning-cot"
# 2 ranks' checkpoint (on 1 or 2 nodes) resumes on 1, a DDP run's under FSDP or back (checkpoints are
# whole either way)
FREE_FIELDS = ("device", "eval_every", "checkpoint_every", "resume", "overwrite", "workers", "nodes", "sharding")
EVAL_BATCH = 16


@dataclass(frozen=True)
class CotSpec:
    model: str
    dataset: str
    output_name: str
    max_steps: int = 200
    target: str = "cot"
    ablation: bool = False
    batch_size: int = 16
    learning_rate: float = 1e-3
    seed: int = 0
    eval_questions: int = 100
    max_new_tokens: int = 96
    eval_every: int = 0
    checkpoint_every: int = 100
    resume: bool = False
    overwrite: bool = False
    device: str = "auto"
    warmup_steps: int = 0
    workers: int = 1                  # data-parallel ranks per node; batch_size is the global batch
    nodes: int = 1                    # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"             # with workers > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)

    @classmethod
    def from_request(cls, r) -> "CotSpec":
        # nodes > 1 needs the kubernetes deployer: the servicer checks it (distributed.refuse_multi_node)
        workers, nodes = launch.check_layout(r.batch_size or 16, r.workers, r.nodes)
        sharding = distributed.require_sharding(r.sharding)
        return cls(model=r.model, dataset=r.dataset, output_name=r.output_name, max_steps=r.max_steps or 200,
                   target=r.target or "cot", ablation=r.ablation, batch_size=r.batch_size or 16,
                   learning_rate=r.learning_rate or 1e-3, seed=r.seed, eval_questions=r.eval_questions or 100,
                   max_new_tokens=r.max_new_tokens or 96, eval_every=r.eval_every,
                   checkpoint_every=r.checkpoint_every or 100, resume=r.resume, overwrite=r.overwrite,
                   device=r.device or "auto", warmup_steps=r.warmup_steps, workers=workers, nodes=nodes,
                   sharding=sharding)

    @property
    def ablation_name(self) -> str:
        return f"{self.output_name}-ablation"

    @property
    def ablation_target(self) -> str:
        return "answer_only" if self.target == "cot" else "cot"

    def settings(self) -> dict:
        """What a resume must repeat."""
        return {k: v for k, v in asdict(self).items() if k not in FREE_FIELDS}


def outputs(spec: CotSpec) -> list[str]:
    return [spec.output_name] + ([spec.ablation_name] if spec.ablation else [])


def check_outputs_free(store: Store, spec: CotSpec) -> None:
    """Refuse a start whose outputs or checkpoint would clash with what is already there."""
    for name in outputs(spec):
        if store.exists("models", name) and not spec.overwrite:
            raise errors.AlreadyExists(f"{name!r} already exists in the store; choose another --output-name "
                                       "or pass --overwrite.")
    RunCheckpoint(store, KIND, spec.output_name).check_start(resume=spec.resume, overwrite=spec.overwrite)


def run_cot(store: Store, spec: CotSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict[str, Any]:
    """The job: train the target (and the ablation), score both, store both. With ``workers`` or
    ``nodes`` > 1 it runs the ranks (``launch.run_ranks``), each calling this with its ``ranks``;
    rank 0 scores and stores."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return launch.run_ranks("cot", KIND, store, spec, ctx)
    ranks = ranks or Ranks()
    need_reasoning = spec.target == "cot" or spec.ablation
    train = data.read_split(store, spec.dataset, "train", need_reasoning=need_reasoning)
    evals = data.read_split(store, spec.dataset, "eval", need_reasoning=False)[:spec.eval_questions]
    device = pick_device(spec.device)
    ranks.init(device)
    tok = load_tokenizer(store.model(spec.model).path)
    chat = Chat.of(tok)
    runs = [(spec.output_name, spec.target)] + ([(spec.ablation_name, spec.ablation_target)] if spec.ablation else [])
    share = 1.0 / len(runs)
    trained = []
    for i, (name, target) in enumerate(runs):
        trained.append(train_one(store, spec, name, target, train, evals, chat, device, ctx,
                                 progress=(i * share, (i + 0.9) * share), ranks=ranks))
    if not ranks.main:
        return {}
    ctx.check_cancelled()
    ctx.report(progress=0.95, stage="save", message=f"saving {', '.join(outputs(spec))}")
    with contextlib.ExitStack() as stack:  # all outputs appear together, or none does
        for run in trained:
            folder = stack.enter_context(store.create(
                "models", run["name"], operation=OPERATION, parent=spec.model, overwrite=spec.overwrite,
                parameters={**spec.settings(), "target": run["target"]},
                metrics={k: run[k] for k in ("eval_exact_match", "eval_unparseable", "steps", "loss")
                         if run.get(k) is not None}))
            save_model(run["model"], tok, folder)
            trainlog.write(folder, run["log"])
    for name in outputs(spec):
        RunCheckpoint(store, KIND, name).remove()
    main = trained[0]
    result = {"model": spec.output_name, "target": spec.target, "steps": main["steps"],
              "eval_exact_match": main["eval_exact_match"], "eval_questions": len(evals),
              "eval_unparseable": main["eval_unparseable"], "tokens_seen": main["tokens_seen"]}
    if main.get("loss") is not None:
        result["loss"] = main["loss"]
    if spec.ablation:
        other = trained[1]
        result.update(ablation_model=spec.ablation_name, ablation_exact_match=other["eval_exact_match"],
                      ablation_unparseable=other["eval_unparseable"])
    return result


def train_one(store: Store, spec: CotSpec, name: str, target: str, train: list[dict], evals: list[dict],
              chat: Chat, device: str, ctx: JobContext, progress: tuple[float, float],
              ranks: Ranks = Ranks()) -> dict:
    """One model from the starting weights: masked SFT on ``target``, then exact match on ``evals``
    (rank 0's; the other ranks return after training). Its checkpoint (kind reasoning-cot, name
    ``name``) is resumed when there is one."""
    torch.manual_seed(spec.seed)
    model = load_model(store.model(spec.model).path, device=device).train()
    max_len = getattr(model.config, "max_position_embeddings", 2048)
    pairs = [(chat.prompt_ids(r["question"]), chat.completion_ids(completion(r["reasoning"], r["answer"], target)))
             for r in train]
    make_optimizer = functools.partial(_optimizer, model, spec.learning_rate)
    ckpt = RunCheckpoint(store, KIND, name)
    settings = {**spec.settings(), "target": target}
    step, log, optimizer_state = ckpt.resume_or_start(spec.resume and ckpt.step() is not None, spec.overwrite,
                                                      settings, {"model": model}, main=ranks.main,
                                                      report=ctx.report, label=f"{name}: ")
    # FSDP: the model itself is the root (fully_shard on each block, then on it)
    par = distributed.parallelize(ranks, model, device, make_optimizer(), make_optimizer, sharding=spec.sharding,
                                  blocks=trainlog.transformer_blocks(model), optimizer_state=optimizer_state)
    optimizer, wrapped = par.optimizer, par.loss

    def forward(step: int, micro: int) -> dict:
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)  # the batch is f(seed, step)
        picked = ranks.shard(torch.randint(len(pairs), (spec.batch_size,), generator=gen).tolist())
        batch = {k: v.to(device) for k, v in training_batch([pairs[i] for i in picked], chat.tokenizer.pad_token_id
                                                            or 0, max_len).items()}
        out = wrapped(**batch, use_cache=False)
        # a mean over the global batch's completion tokens, whichever rank holds them
        labelled = int((batch["labels"][:, 1:] != -100).sum())  # the LM's shifted targets
        total, = ranks.sums(labelled)
        # tokens: the Loop counts world x this, the global batch's
        return {"loss": ranks.part_of_mean(out.loss, labelled, total), "tokens": total / ranks.world}

    def save(step: int) -> None:
        # FSDP: every rank gathers its shards; DDP: every rank holds the same state. Rank 0 writes it
        states = distributed.whole_states({"model": model}, optimizer, ranks, par.sharded)
        if states is not None:
            parts, optimizer_sd = states
            ckpt.save(step, {**parts, "optimizer": optimizer_sd}, settings, loop.log)

    def evaluate() -> dict:
        if par.sharded is None and not ranks.main:  # DDP: rank 0 scores; the others wait for it at the next step
            return {}
        # FSDP: every rank decodes the same greedy answers in step (each forward gathers the blocks)
        scored = exact_match(model, chat, evals, spec.max_new_tokens)["exact_match"]
        return {"eval_exact_match": scored} if ranks.main else {}

    warmup = spec.warmup_steps or max(1, spec.max_steps // 20)
    loop = Loop(ctx, model, optimizer, functools.partial(_lr_at, spec.learning_rate, warmup, spec.max_steps),
                spec.max_steps, spec.batch_size * 64 // ranks.world, device=device, stage=f"train {target}", progress=progress,
                eval_every=spec.eval_every, evaluate=evaluate if spec.eval_every else None,
                checkpoint_every=spec.checkpoint_every, checkpoint=save,
                nonfinite_hint="lower --learning-rate", log=log, ranks=ranks)
    step = loop.run(step, forward)
    save(step)  # a finished run keeps its weights until every output is stored
    if par.sharded is not None:  # rank 0 scores and stores a plain model, whole
        model = distributed.gather_model(par.sharded, model, "model", ranks)
    return _scored(spec, name, target, model, chat, evals, loop, step, ctx) if ranks.main else {}


def _scored(spec: CotSpec, name: str, target: str, model, chat: Chat, evals: list[dict], loop: Loop, step: int,
            ctx: JobContext) -> dict:
    """Rank 0's result of one trained model: its exact match on the held-out questions and its run."""
    ctx.report(stage=f"eval {target}", message=f"{name}: exact match on {len(evals)} held-out questions")
    scored = exact_match(model, chat, evals, spec.max_new_tokens, ctx)
    return {"name": name, "target": target, "model": model.eval(), "log": loop.log, "steps": step,
            "loss": loop.last.get("loss"), "eval_exact_match": scored["exact_match"],
            "eval_unparseable": scored["unparseable"],
            "tokens_seen": int(round(sum(r["tokens_per_s"] * r["step_seconds"] for r in loop.log)))}


def _optimizer(model, lr: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))


def _lr_at(peak: float, warmup: int, total: int, step: int) -> float:
    return peak * warmup_cosine(step, warmup, total, 0.1)


@torch.no_grad()
def exact_match(model, chat: Chat, rows: list[dict], max_new_tokens: int, ctx: JobContext | None = None) -> dict:
    """Greedy answers to ``rows``: the share whose parsed answer solves the row (``is_correct``),
    and how many could not be parsed (they count as wrong)."""
    was = model.training
    model.eval()
    right = unparseable = 0
    for row in rows:
        if ctx is not None:
            ctx.check_cancelled()
        out = decode(model, chat.prompt_ids(row["question"]), 1, max_new_tokens, chat.stop_ids)
        answer = parse_answer(chat.decode(out.ids[0]))
        unparseable += answer is None
        right += is_correct(row, answer)
    model.train(was)
    return {"exact_match": right / max(len(rows), 1), "unparseable": unparseable}
