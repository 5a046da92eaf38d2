"""GRPO with verifiable rewards: the StartRLTraining job.

Each step samples ``group`` completions per question (the prompt encoded once, its KV cache
shared by the group), rewards each by exact match of its parsed answer, and drops the groups
whose rewards are all equal (dynamic sampling: they carry no signal; ``frac_reward_zero_std``
logs their share). When no group has signal for ``patience`` steps in a row, or completions
degenerate (nearly all the same text), training stops with a diagnosis and the weights of the
last step that learned something are stored. No signal from the very start is refused with
sample completions (FAILED_PRECONDITION): the model cannot solve any question yet or solves
all of them, and RL has nothing to compare.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch

from apt_model import errors
from apt_model.modeling import trainlog
from apt_model.modeling.checkpoint import RunCheckpoint
from apt_model.modeling.io import load_model, load_tokenizer, pick_device, save_model
from apt_model.modeling.loop import Loop
from apt_model.modeling.schedule import warmup_cosine
from apt_model.runtime.jobs import JobContext
from apt_model.store import Store

from apt_reason import data, grpo
from apt_reason.cot import exact_match
from apt_reason.prompts import Chat
from apt_reason.scorer import Verifier
from apt_reason.search import decode
from apt_reason.tasks import is_correct, parse_answer

OPERATION = "reasoning-grpo"
KIND = "reasoning-grpo"
FREE_FIELDS = ("device", "checkpoint_every", "resume", "overwrite", "eval_questions")
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

    @classmethod
    def from_request(cls, r) -> "RLSpec":
        spec = cls(model=r.model, dataset=r.dataset, output_name=r.output_name, max_steps=r.max_steps or 50,
                   questions_per_step=r.questions_per_step or 4, group=r.group or 8, loss_type=r.loss_type or "grpo",
                   beta=r.beta, epsilon_low=r.epsilon_low or 0.2,
                   epsilon_high=r.epsilon_high or (0.28 if (r.loss_type or "grpo") == "dapo" else 0.2),
                   learning_rate=r.learning_rate or 1e-5, temperature=r.temperature or 1.0,
                   max_new_tokens=r.max_new_tokens or 96, patience=r.patience or 5,
                   eval_questions=r.eval_questions or 100, seed=r.seed, device=r.device or "auto",
                   overwrite=r.overwrite, checkpoint_every=r.checkpoint_every or 10, resume=r.resume,
                   format_weight=r.format_weight, verifier=r.verifier,
                   verifier_weight=r.verifier_weight if r.HasField("verifier_weight") else 0.5)
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


def run_rl(store: Store, spec: RLSpec, ctx: JobContext) -> dict[str, Any]:
    train = data.read_split(store, spec.dataset, "train", need_reasoning=False)
    evals = data.read_split(store, spec.dataset, "eval", need_reasoning=False)[:spec.eval_questions]
    device = pick_device(spec.device)
    path = store.model(spec.model).path
    tok = load_tokenizer(path)
    chat = Chat.of(tok)
    torch.manual_seed(spec.seed)
    model = load_model(path, device=device).train()
    reference = copy.deepcopy(model).eval().requires_grad_(False) if spec.beta else None
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=0.0)
    state = {"silent": 0, "good": copy.deepcopy(model.state_dict()), "good_step": 0, "samples": [],
             "verifier": Verifier.load(store.model(spec.verifier).path, spec.verifier, device) if spec.verifier else None}
    ckpt = RunCheckpoint(store, KIND, spec.output_name)
    start, log = _resume(ckpt, spec, model, optimizer, state, ctx)

    def forward(step: int, micro: int) -> dict:
        gen = torch.Generator().manual_seed(spec.seed * 1_000_003 + step)
        picked = torch.randint(len(train), (spec.questions_per_step,), generator=gen).tolist()
        return grpo_step(model, reference, chat, [train[i] for i in picked], spec, gen, state, step)

    def remember(step: int) -> None:
        if step == 1 and state["silent"]:
            ctx.warn("Step 1: every group's answers got equal rewards, so it taught nothing; training stops "
                     f"if that lasts {spec.patience} steps.")
        if state["silent"] == 0:  # this step learned: its weights are the last good ones
            state["good"], state["good_step"] = copy.deepcopy(model.state_dict()), step

    def save(step: int) -> None:
        ckpt.save(step, {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "good": state["good"],
                         "good_step": state["good_step"], "silent": state["silent"]}, spec.settings(), loop.log)

    loop = Loop(ctx, model, optimizer, lambda s: spec.learning_rate * warmup_cosine(s, 0, spec.max_steps, 1.0),
                spec.max_steps, 0, device=device, stage="grpo", progress=(0.0, 0.9), on_step=remember,
                nonfinite_hint="lower --learning-rate or raise --beta", checkpoint_every=spec.checkpoint_every,
                checkpoint=save, log=log)
    stopped = ""
    try:
        loop.run(start, forward)
    except _Stop as stop:
        stopped = stop.reason
        if state["good_step"] == 0:
            ckpt.remove()
            raise errors.FailedPrecondition(
                f"No learning signal: {stop.reason} Sample completions: "
                + " | ".join(repr(s[:80]) for s in state["samples"][:3])
                + ". Train the model first with StartCotTraining so some answers are right, or use easier "
                "problems.", reason="NO_REWARD_SIGNAL") from None
        ctx.warn(f"Stopped after step {state['good_step']}: {stop.reason} The weights of that step are kept.")
        model.load_state_dict(state["good"])
    ctx.check_cancelled()
    steps = state["good_step"] if stopped else spec.max_steps
    return _evaluate_and_store(store, spec, ctx, model, tok, chat, evals, loop.log[:steps], steps, stopped, ckpt)


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


def _resume(ckpt: RunCheckpoint, spec: RLSpec, model, optimizer, state: dict, ctx: JobContext) -> tuple[int, list]:
    """(first step, log so far): the checkpoint's, with the policy, optimiser and the last good
    weights restored, when resuming; else (0, []), a stale checkpoint dropped on --overwrite.
    The KL reference stays the starting model (built before this)."""
    if not (spec.resume and ckpt.step() is not None):
        if spec.overwrite:
            ckpt.remove()
        return 0, []
    step, states, log = ckpt.load(spec.settings())
    model.load_state_dict(states["model"])
    optimizer.load_state_dict(states["optimizer"])
    state.update(good=states["good"], good_step=int(states["good_step"]), silent=int(states["silent"]))
    ctx.report(message=f"resumed from step {step}")
    return step, log


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


def grpo_step(model, reference, chat: Chat, rows: list[dict], spec: RLSpec, gen: torch.Generator,
              state: dict, step: int) -> dict:
    """One step's rollouts, rewards and loss terms; raises _Stop when the signal is gone."""
    was = model.training
    model.eval()
    groups = []  # (prompt ids, completion ids of the group, rewards)
    texts, parts = [], []
    for row in rows:
        prompt = chat.prompt_ids(row["question"])
        out = decode(model, prompt, spec.group, spec.max_new_tokens, chat.stop_ids,
                     temperature=spec.temperature, generator=gen)  # the prompt's KV cache shared by the group
        done = [ids + [chat.stop_ids[0]] if len(ids) < spec.max_new_tokens else ids for ids in out.ids]
        decoded = [chat.decode(ids) for ids in out.ids]
        texts += decoded
        total, kinds = rewards_of(decoded, row, spec, state["verifier"])
        groups.append((prompt, done, total))
        parts.append(kinds)
    model.train(was)
    rewards = torch.cat([g[2] for g in groups])
    advantages, zero_std = grpo.group_advantages(rewards, spec.group, scale=spec.loss_type != "dr_grpo")
    frac_zero = float(zero_std.float().mean())
    state["samples"] = texts
    distinct = len(set(texts)) / len(texts)
    if distinct < DEGENERATE_DISTINCT and len(texts) >= 10:
        raise _Stop(f"completions degenerated: {len(set(texts))} distinct texts out of {len(texts)} at step {step + 1}.")
    keep = [i for i in range(len(groups)) if not bool(zero_std[i * spec.group])]
    state["silent"] = 0 if keep else state["silent"] + 1
    if state["silent"] >= spec.patience:
        what = "every sampled answer was wrong" if rewards.sum() == 0 else "every group's answers got equal rewards"
        raise _Stop(f"for {spec.patience} steps in a row no group had differing rewards ({what}).")
    terms = {"reward_mean": rewards.mean(), "frac_reward_zero_std": torch.tensor(frac_zero),
             **{k: torch.stack([p[k] for p in parts]).mean() for k in parts[0]},
             "completion_length": torch.tensor(sum(len(c) for g in groups for c in g[1]) / len(rewards))}
    if not keep:  # dynamic sampling dropped every group: a step with no gradient
        zero = sum(p.sum() for p in model.parameters()) * 0.0
        return {"loss": zero, "entropy": torch.tensor(0.0), "kl": torch.tensor(0.0), "tokens": 0, **terms}
    logps, old, ref, mask, ent = [], [], [], [], []
    for i in keep:
        lp, en, m, rlp = _completion_logps(model, reference, *groups[i][:2])
        logps.append(lp), ent.append(en), mask.append(m), ref.append(rlp)
    width = max(x.size(1) for x in logps)
    pad = lambda xs: torch.cat([torch.nn.functional.pad(x, (0, width - x.size(1))) for x in xs])  # noqa: E731
    lp, m, en = pad(logps), pad(mask), pad(ent)
    adv = torch.cat([advantages[i * spec.group:(i + 1) * spec.group] for i in keep]).to(lp.device)
    out = grpo.policy_loss(lp, lp.detach(), adv, m, spec.loss_config(), pad(ref) if reference is not None else None)
    entropy = (en * m).sum() / m.sum().clamp(min=1)
    return {**out, "entropy": entropy.detach(), "tokens": int(m.sum()), **terms}


def _completion_logps(model, reference, prompt: list[int], completions: list[list[int]]):
    """Per-token log-probs (G, T), entropies, mask, and the reference's log-probs (or None)."""
    device = next(model.parameters()).device
    width = max(len(c) for c in completions)
    comp = torch.zeros((len(completions), width), dtype=torch.long)
    mask = torch.zeros((len(completions), width))
    for i, c in enumerate(completions):
        comp[i, :len(c)] = torch.tensor(c)
        mask[i, :len(c)] = 1
    head = torch.tensor([prompt]).expand(len(completions), -1)
    ids = torch.cat([head, comp], 1).to(device)
    attention = torch.cat([torch.ones_like(head), mask.long()], 1).to(device)
    comp, mask = comp.to(device), mask.to(device)
    span = slice(len(prompt) - 1, len(prompt) - 1 + width)  # logits that predict the completion tokens
    logits = model(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, span]
    lp, ent = grpo.token_logps_and_entropy(logits, comp)
    ref = None
    if reference is not None:
        with torch.no_grad():
            ref, _ = grpo.token_logps_and_entropy(
                reference(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, span], comp)
    return lp, ent.detach(), mask, ref
