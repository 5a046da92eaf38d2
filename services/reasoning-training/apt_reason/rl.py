"""GRPO with verifiable rewards: the StartRLTraining job.

Each step samples ``group`` completions per question (the prompt encoded once, its KV cache
shared by the group), rewards each by exact match of its parsed answer, and drops the groups
whose rewards are all equal (dynamic sampling: they carry no signal; ``frac_reward_zero_std``
logs their share). When no group has signal for ``patience`` steps in a row, or completions
degenerate (nearly all the same text), training stops with a diagnosis and the weights of the
last step that learned something are stored. No signal from the very start is refused with
sample completions (FAILED_PRECONDITION): the model cannot solve any question yet or solves
all of them, and RL has nothing to compare.

With ``workers`` or ``nodes`` > 1 each rank (``apt_reason.launch``) samples its share of a step's
groups, each group from its own generator (a function of seed, step and group), and the ranks
exchange every group's texts and rewards: advantages, dynamic sampling, the stop rules and the
logged rewards are the step's, as in one process; each rank's loss is its part of the global
normalisation (sequences, or tokens for ``dapo``), so the mean gradient is one process's. Under
``sharding`` fsdp (FSDP2) the policy and the KL reference are sharded over the ranks; the
rollouts run on the policy's weights gathered whole for the step's sampling (``_whole``), and the
loss takes one forward a rank, so the ranks' collectives match whatever each one holds.
"""

from __future__ import annotations

import contextlib
import copy
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

from apt_reason import data, grpo, launch
from apt_reason.cot import exact_match
from apt_reason.prompts import Chat
from apt_reason.scorer import Verifier
from apt_reason.search import decode
from apt_reason.tasks import is_correct, parse_answer

OPERATION = "reasoning-grpo"
KIND = "reasoning-grpo"
# 2 ranks' checkpoint (on 1 or 2 nodes) resumes on 1, a DDP run's under FSDP or back (checkpoints are
# whole either way)
FREE_FIELDS = ("device", "checkpoint_every", "resume", "overwrite", "eval_questions", "workers", "nodes",
               "sharding")
DEGENERATE_DISTINCT = 0.1  # fewer distinct completions than this share of a step's: degenerate


class _Stop(Exception):
    """Raised inside a step to end training early; ``reason`` is the diagnosis."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class RLSpec:
    model: str
    dataset: str
    output_name: str
    max_steps: int = 50
    questions_per_step: int = 4
    group: int = 8
    loss_type: str = "grpo"
    beta: float = 0.0
    epsilon_low: float = 0.2
    epsilon_high: float = 0.2
    learning_rate: float = 1e-5
    temperature: float = 1.0
    max_new_tokens: int = 96
    patience: int = 5
    eval_questions: int = 100
    seed: int = 0
    device: str = "auto"
    overwrite: bool = False
    checkpoint_every: int = 10
    resume: bool = False
    format_weight: float = 0.0
    verifier: str = ""
    verifier_weight: float = 0.5  # used with a verifier only
    workers: int = 1              # data-parallel ranks per node; questions_per_step (groups) is the global batch
    nodes: int = 1                # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"         # with workers > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)

    @classmethod
    def from_request(cls, r) -> "RLSpec":
        # nodes > 1 needs the kubernetes deployer: the servicer checks it (distributed.refuse_multi_node)
        workers, nodes = launch.check_layout(r.questions_per_step or 4, r.workers, r.nodes, "questions_per_step")
        spec = cls(model=r.model, dataset=r.dataset, output_name=r.output_name, max_steps=r.max_steps or 50,
                   questions_per_step=r.questions_per_step or 4, group=r.group or 8, loss_type=r.loss_type or "grpo",
                   beta=r.beta, epsilon_low=r.epsilon_low or 0.2,
                   epsilon_high=r.epsilon_high or (0.28 if (r.loss_type or "grpo") == "dapo" else 0.2),
                   learning_rate=r.learning_rate or 1e-5, temperature=r.temperature or 1.0,
                   max_new_tokens=r.max_new_tokens or 96, patience=r.patience or 5,
                   eval_questions=r.eval_questions or 100, seed=r.seed, device=r.device or "auto",
                   overwrite=r.overwrite, checkpoint_every=r.checkpoint_every or 10, resume=r.resume,
                   format_weight=r.format_weight, verifier=r.verifier,
                   verifier_weight=r.verifier_weight if r.HasField("verifier_weight") else 0.5,
                   workers=workers, nodes=nodes, sharding=distributed.require_sharding(r.sharding))
        if r.HasField("verifier_weight") and not r.verifier:
            raise errors.InvalidArgument("--verifier-weight weighs the --verifier reward; pass --verifier too.",
                                         field="verifier_weight")
        if spec.group < 2:
            raise errors.InvalidArgument("--group must be at least 2: advantages compare completions of one "
                                         "question with each other.", field="group")
        return spec

    def settings(self) -> dict:
        """What a resume must repeat."""
        return {k: v for k, v in asdict(self).items() if k not in FREE_FIELDS}

    def loss_config(self) -> grpo.LossConfig:
        return grpo.LossConfig(self.loss_type, self.beta, self.epsilon_low, self.epsilon_high, self.max_new_tokens)


def run_rl(store: Store, spec: RLSpec, ctx: JobContext, ranks: Ranks | None = None) -> dict[str, Any]:
    """The job; with ``workers`` or ``nodes`` > 1 it runs the ranks (``launch.run_ranks``), each
    calling this with its ``ranks``; rank 0 evaluates and stores."""
    if ranks is None and (spec.workers > 1 or spec.nodes > 1):
        return launch.run_ranks("rl", KIND, store, spec, ctx)
    ranks = ranks or Ranks()
    train = data.read_split(store, spec.dataset, "train", need_reasoning=False)
    evals = data.read_split(store, spec.dataset, "eval", need_reasoning=False)[:spec.eval_questions]
    device = pick_device(spec.device)
    ranks.init(device)
    path = store.model(spec.model).path
    tok = load_tokenizer(path)
    chat = Chat.of(tok)
    torch.manual_seed(spec.seed)
    model = load_model(path, device=device).train()
    state = {"silent": 0, "good": None, "good_step": 0, "samples": [],
             "verifier": Verifier.load(store.model(spec.verifier).path, spec.verifier, device) if spec.verifier else None}
    ckpt = RunCheckpoint(store, KIND, spec.output_name)
    policy, par, start, log = _prepare(model, spec, state, ckpt, device, ctx, ranks)

    def forward(step: int, micro: int) -> dict:
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)
        picked = torch.randint(len(train), (spec.questions_per_step,), generator=gen).tolist()
        return grpo_step(model, policy, chat, [train[i] for i in picked], spec, state, step, ranks)

    def remember(step: int) -> None:
        if step == 1 and state["silent"]:
            ctx.warn("Step 1: every group's answers got equal rewards, so it taught nothing; training stops "
                     f"if that lasts {spec.patience} steps.")
        if state["silent"] == 0:  # this step learned: its weights are the last good ones
            state["good"], state["good_step"] = _snapshot(model), step

    def save(step: int) -> None:
        # FSDP: every rank gathers its shards (the last good weights' too); DDP: every rank holds the
        # same state. Rank 0 writes it
        states = distributed.whole_states({"model": model}, par.optimizer, ranks, par.sharded)
        good = {k: distributed.full_tensor(v) for k, v in state["good"].items()}
        if states is not None:
            parts, optimizer_state = states
            ckpt.save(step, {**parts, "optimizer": optimizer_state, "good": good, "good_step": state["good_step"],
                             "silent": state["silent"]}, spec.settings(), loop.log)

    loop = Loop(ctx, model, par.optimizer, lambda s: spec.learning_rate * warmup_cosine(s, 0, spec.max_steps, 1.0),
                spec.max_steps, 0, device=device, stage="grpo", progress=(0.0, 0.9), on_step=remember,
                nonfinite_hint="lower --learning-rate or raise --beta", checkpoint_every=spec.checkpoint_every,
                checkpoint=save, log=log, ranks=ranks)
    stopped = _train_until_stopped(loop, start, forward, model, state, ckpt, ctx, ranks)
    if par.sharded is not None:  # rank 0 scores and stores a plain policy, whole
        model = distributed.gather_model(par.sharded, model, "model", ranks)
    if not ranks.main:
        return {}
    ctx.check_cancelled()
    steps = state["good_step"] if stopped else spec.max_steps
    return _evaluate_and_store(store, spec, ctx, model.to(device), tok, chat, evals, loop.log[:steps], steps, stopped,
                               ckpt)


def _prepare(model, spec: RLSpec, state: dict, ckpt: RunCheckpoint, device: str, ctx: JobContext,
             ranks: Ranks) -> tuple[Any, distributed.Parallel, int, list]:
    """(the policy loss over the ranks, its ``Parallel``, the first step, the log so far), a
    checkpoint's weights loaded when resuming. DDP wraps the loss module. FSDP2 shards the policy's
    blocks, then the policy itself (the root, which the rollouts call), and the KL reference the
    same way: each rank holds 1/world of both. ``state["good"]``, the last good weights, is laid out
    as the policy is (each rank's shards under FSDP)."""
    reference = copy.deepcopy(model).eval().requires_grad_(False) if spec.beta else None  # the starting model
    start, log, optimizer_state = _resume(ckpt, spec, model, state, ctx, ranks)
    loss = _PolicyLoss(model, reference, spec.loss_config())
    fsdp = spec.sharding == "fsdp" and ranks.world > 1

    def make_optimizer():
        return torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)

    par = distributed.parallelize(ranks, model if fsdp else loss, device, make_optimizer(), make_optimizer,
                                  sharding=spec.sharding, blocks=trainlog.transformer_blocks(model),
                                  optimizer_state=optimizer_state)
    if fsdp and reference is not None:
        ranks.wrap(reference, device, sharding="fsdp", blocks=trainlog.transformer_blocks(reference))
    state["good"] = _snapshot(model) if state["good"] is None else _laid_out_as(model, state["good"])
    return (loss if fsdp else par.loss), par, start, log


def _snapshot(model) -> dict:
    """A copy of the policy's weights (under FSDP, this rank's shards)."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _laid_out_as(model, whole: dict) -> dict:
    """A checkpoint's whole ``state_dict`` laid out as ``model`` holds its own: under FSDP this
    rank's shard of each (a collective: every rank calls it), else the tensors themselves."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    return {k: distribute_tensor(whole[k].to(v.to_local().device), v.device_mesh, v.placements)
            if isinstance(v, DTensor) else whole[k] for k, v in model.state_dict().items()}


@contextlib.contextmanager
def _whole(model):
    """Under FSDP, the policy's weights whole on every rank while the block runs (its rollouts):
    one all-gather, after which each rank samples its groups' completions, however long, with no
    collective per token (a sharded forward all-gathers each block, so the ranks would have to
    run the same number of forwards); resharded after. Nothing otherwise."""
    from torch.distributed.fsdp import FSDPModule

    sharded = [m for m in model.modules() if isinstance(m, FSDPModule)]  # the root (model) first
    if not sharded:
        yield
        return
    for module in sharded:
        module.unshard()
    model.set_reshard_after_forward(False)  # the blocks keep their weights between the forwards
    try:
        yield
    finally:
        for block in sharded[1:]:
            block.set_reshard_after_forward(True, recurse=False)
        for module in sharded:
            module.reshard()


def _evaluate_and_store(store: Store, spec: RLSpec, ctx: JobContext, model, tok, chat, evals: list, log: list,
                        steps: int, stopped: str, ckpt: RunCheckpoint) -> dict[str, Any]:
    """Exact match on the held-out questions, then the policy stored with its log (the checkpoint
    goes once the model is in the store)."""
    ctx.report(progress=0.9, stage="eval", message=f"exact match on {len(evals)} held-out questions")
    scored = exact_match(model, chat, evals, spec.max_new_tokens, ctx)
    metrics = {"eval_exact_match": scored["exact_match"], "eval_unparseable": scored["unparseable"], "steps": steps}
    with store.create("models", spec.output_name, operation=OPERATION, parent=spec.model, parameters=asdict(spec),
                      metrics=metrics, overwrite=spec.overwrite) as folder:
        save_model(model.eval(), tok, folder)
        trainlog.write(folder, log)
    ckpt.remove()
    last = log[-1] if log else {}
    return {"model": spec.output_name, **metrics, "eval_questions": len(evals), "stopped": stopped,
            **{k: float(last[k]) for k in ("reward_mean", "frac_reward_zero_std", "entropy", "kl",
                                            "completion_length") if k in last}}


def _train_until_stopped(loop: Loop, start: int, forward, model, state: dict, ckpt: RunCheckpoint, ctx: JobContext,
                         ranks: Ranks) -> str:
    """Run the loop; '' when it ran to the end, else why the stop rules ended it, the last good
    step's weights restored. FAILED_PRECONDITION (NO_REWARD_SIGNAL) when no step ever learned."""
    try:
        loop.run(start, forward)
        return ""
    except _Stop as stop:  # every rank stops at the same step: the stop rules read the whole step
        if state["good_step"] == 0:
            if ranks.main:
                ckpt.remove()
            raise errors.FailedPrecondition(
                f"No learning signal: {stop.reason} Sample completions: "
                + " | ".join(repr(s[:80]) for s in state["samples"][:3])
                + ". Train the model first with StartCotTraining so some answers are right, or use easier "
                "problems.", reason="NO_REWARD_SIGNAL") from None
        ctx.warn(f"Stopped after step {state['good_step']}: {stop.reason} The weights of that step are kept.")
        model.load_state_dict(state["good"])
        return stop.reason


def _resume(ckpt: RunCheckpoint, spec: RLSpec, model, state: dict, ctx: JobContext,
            ranks: Ranks) -> tuple[int, list, dict | None]:
    """(first step, log so far, optimizer state): the checkpoint's when resuming, the policy's
    weights loaded and the last good weights (whole) and the stop counters into ``state``; the
    optimizer state is loaded once the parameters are final (FSDP's shards). Else (0, [], None), a
    stale checkpoint dropped on --overwrite. The KL reference stays the starting model (built before this)."""
    if not (spec.resume and ckpt.step() is not None):
        if spec.overwrite and ranks.main:
            ckpt.remove()
        return 0, [], None
    step, states, log = ckpt.load(spec.settings())
    model.load_state_dict(states["model"])
    state.update(good=states["good"], good_step=int(states["good_step"]), silent=int(states["silent"]))
    ctx.report(message=f"resumed from step {step}")
    return step, log, states["optimizer"]


def rewards_of(texts: list[str], row: dict, spec: RLSpec, verifier: Verifier | None) -> tuple[torch.Tensor, dict]:
    """Each completion's reward: exact match (1/0), plus ``format_weight`` when it has a parseable
    answer line, plus ``verifier_weight`` x the verifier's P(correct); and each part's mean."""
    answers = [parse_answer(t) for t in texts]
    exact = torch.tensor([float(is_correct(row, a)) for a in answers])
    fmt = torch.tensor([float(a is not None) for a in answers])
    total, parts = exact + spec.format_weight * fmt, {"reward_exact": exact.mean(), "reward_format": fmt.mean()}
    if verifier is not None:
        score = torch.tensor(verifier.score(row["question"], [(t.splitlines(keepends=True) or [""], True)
                                                              for t in texts]))
        total, parts["reward_verifier"] = total + spec.verifier_weight * score, score.mean()
    return total, parts


def group_seed(seed: int, step: int, group: int) -> int:
    """The seed of one group's sampling: a function of (seed, step, group index), so a group's
    completions do not depend on which rank samples it."""
    return ((seed * 1_000_003 + step) * 10_007 + group) % 2**63


def grpo_step(model, policy, chat: Chat, rows: list[dict], spec: RLSpec, state: dict, step: int,
              ranks: Ranks = Ranks()) -> dict:
    """One step's rollouts (this rank's share of the groups), rewards and loss terms; raises
    _Stop when the signal is gone. ``policy``: ``_PolicyLoss`` over ``model`` (DDP-wrapped, or over
    the FSDP-sharded ``model``)."""
    was = model.training
    model.eval()
    mine = ranks.shard(list(range(len(rows))))  # this rank's groups (one question each)
    local, seen = {}, []  # group -> (prompt, completion ids); per group: texts, rewards, parts, lengths
    with _whole(model):
        for g in mine:
            prompt = chat.prompt_ids(rows[g]["question"])
            out = decode(model, prompt, spec.group, spec.max_new_tokens, chat.stop_ids, temperature=spec.temperature,
                         generator=torch.Generator().manual_seed(group_seed(spec.seed, step, g)))  # KV cache shared
            done = [ids + [chat.stop_ids[0]] if len(ids) < spec.max_new_tokens else ids for ids in out.ids]
            decoded = [chat.decode(ids) for ids in out.ids]
            total, kinds = rewards_of(decoded, rows[g], spec, state["verifier"])
            local[g] = (prompt, done)
            seen.append((decoded, total.tolist(), {k: float(v) for k, v in kinds.items()}, [len(c) for c in done]))
    model.train(was)
    seen = ranks.gather(seen)  # every group of the step, in group order, on every rank
    texts = [t for s in seen for t in s[0]]
    rewards = torch.tensor([r for s in seen for r in s[1]])
    advantages, zero_std = grpo.group_advantages(rewards, spec.group, scale=spec.loss_type != "dr_grpo")
    frac_zero = float(zero_std.float().mean())
    state["samples"] = texts
    distinct = len(set(texts)) / len(texts)
    if distinct < DEGENERATE_DISTINCT and len(texts) >= 10:
        raise _Stop(f"completions degenerated: {len(set(texts))} distinct texts out of {len(texts)} at step {step + 1}.")
    keep = [g for g in range(len(rows)) if not bool(zero_std[g * spec.group])]
    state["silent"] = 0 if keep else state["silent"] + 1
    if state["silent"] >= spec.patience:
        what = "every sampled answer was wrong" if rewards.sum() == 0 else "every group's answers got equal rewards"
        raise _Stop(f"for {spec.patience} steps in a row no group had differing rewards ({what}).")
    terms = {"reward_mean": rewards.mean(), "frac_reward_zero_std": torch.tensor(frac_zero),
             **{k: torch.tensor([s[2][k] for s in seen]).mean() for k in seen[0][2]},
             "completion_length": torch.tensor(sum(n for s in seen for n in s[3]) / len(rewards))}
    # dynamic sampling: only groups with differing rewards train (none: a step with no gradient); a
    # rank that kept none runs one it dropped, idle, through the same forwards as the others
    mine_kept = [g for g in keep if g in local]
    groups = mine_kept or mine[:1]
    out = policy([local[g] for g in groups], torch.cat([advantages[g * spec.group:(g + 1) * spec.group]
                                                       for g in groups]), idle=not mine_kept)
    # the loss is normalised over the step's kept sequences (dapo: tokens), whichever rank holds them
    tokens = [sum(seen[g][3]) for g in keep]
    own = sum(sum(seen[g][3]) for g in mine_kept)
    by = (own, sum(tokens)) if spec.loss_type == "dapo" else (len(mine_kept) * spec.group, len(keep) * spec.group)
    return {"loss": ranks.part_of_mean(out["loss"], *by), "tokens": sum(tokens) / ranks.world,  # Loop: x world
            **{k: ranks.part_of_mean(out[k], own, sum(tokens)) for k in ("entropy", "kl", "clip_ratio")}, **terms}


class _PolicyLoss(torch.nn.Module):
    """The GRPO loss of a rank's kept groups as one module over the policy, so that DDP's forward
    wraps the step's policy forward; the frozen KL reference is held outside its parameters. Every
    completion of the kept groups goes through one forward of the policy (and of the reference), so
    every rank runs the same forwards whatever it holds, as FSDP's collectives need."""

    def __init__(self, model, reference, cfg: grpo.LossConfig):
        super().__init__()
        self.model, self._reference, self.cfg = model, [reference], cfg

    def forward(self, groups: list[tuple[list[int], list[list[int]]]], advantages: torch.Tensor,
                idle: bool = False) -> dict:
        """``groups``: (prompt ids, completion ids) of each kept group; ``advantages``: theirs, (B,).
        The loss and the token means (entropy, KL, clip ratio) over these completions. ``idle``: the
        rank kept no group and ``groups`` is one it dropped, every token masked out: a zero loss whose
        backward still reaches every parameter (DDP's reduction and FSDP's expect them all)."""
        reference = self._reference[0]
        ids, attention, targets, mask, starts = _rows(groups, next(self.model.parameters()).device)
        if idle:
            mask = torch.zeros_like(mask)
        logits = _completion_logits(self.model(input_ids=ids, attention_mask=attention, use_cache=False).logits,
                                    starts, targets.size(1))
        lp, ent = grpo.token_logps_and_entropy(logits, targets)
        ref = None
        if reference is not None:
            with torch.no_grad():
                ref, _ = grpo.token_logps_and_entropy(_completion_logits(
                    reference(input_ids=ids, attention_mask=attention, use_cache=False).logits, starts,
                    targets.size(1)), targets)
        out = grpo.policy_loss(lp, lp.detach(), advantages.to(lp.device), mask, self.cfg, ref)
        return {**out, "entropy": ((ent.detach() * mask).sum() / mask.sum().clamp(min=1)).detach()}


def _rows(groups: list[tuple[list[int], list[list[int]]]], device) -> tuple[torch.Tensor, ...]:
    """Every completion of ``groups`` as one right-padded batch of N rows, each its prompt then its
    completion: ids and attention mask (N, L), the completion's tokens and mask (N, W), and where
    the logits predicting each row's first completion token are (N,)."""
    rows = [(prompt, c) for prompt, completions in groups for c in completions]
    length, width = max(len(p) + len(c) for p, c in rows), max(len(c) for _, c in rows)
    ids, attention = (torch.zeros((len(rows), length), dtype=torch.long) for _ in range(2))
    targets, mask = torch.zeros((len(rows), width), dtype=torch.long), torch.zeros((len(rows), width))
    for i, (p, c) in enumerate(rows):
        ids[i, :len(p) + len(c)] = torch.tensor(p + c)
        attention[i, :len(p) + len(c)] = 1
        targets[i, :len(c)] = torch.tensor(c)
        mask[i, :len(c)] = 1
    starts = torch.tensor([len(p) - 1 for p, _ in rows])
    return ids.to(device), attention.to(device), targets.to(device), mask.to(device), starts.to(device)


def _completion_logits(logits: torch.Tensor, starts: torch.Tensor, width: int) -> torch.Tensor:
    """(N, W, V): the logits (N, L, V) at each row's ``width`` positions from its start (past the
    row's end: its padding, masked out of the loss)."""
    at = (starts[:, None] + torch.arange(width, device=logits.device)[None]).clamp(max=logits.size(1) - 1)
    return logits.gather(1, at[..., None].expand(-1, -1, logits.size(-1)))
