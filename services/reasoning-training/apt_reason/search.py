"""Decoding under one generated-token budget per question: greedy and self-consistency.

Every branch of a question continues the same prompt, so the prompt is encoded once and its
KV cache is repeated for the branches (``share_prefix``); re-encoding the prompt per branch
is kept as the baseline the benchmark compares against. Each question's search is returned
as a tree (JSON-ready dicts): the prompt at the root, one child per branch with its text,
parsed answer, tokens and vote.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from apt_reason.prompts import Chat
from apt_reason.tasks import parse_answer


@dataclass
class Branches:
    """The generated ids of ``n`` branches and how many tokens each used."""

    ids: list[list[int]]
    tokens: int  # generated tokens, all branches (what the budget counts)


@torch.no_grad()
def decode(model, prompt: list[int], n: int, max_new_tokens: int, stop_ids: tuple[int, ...], *,
           temperature: float = 0.0, generator: torch.Generator | None = None,
           share_prefix: bool = True, keep_ids: tuple[int, ...] = ()) -> Branches:
    """``n`` continuations of ``prompt``: greedy when ``temperature`` is 0, else sampled.

    With ``share_prefix`` the prompt runs through the model once and its cache is repeated
    ``n`` times; without, the prompt is encoded ``n`` times as a batch (the baseline). A branch
    ends at a token of ``stop_ids`` (dropped) or of ``keep_ids`` (kept: a step's line end).
    """
    device = next(model.parameters()).device
    head = torch.tensor([prompt], device=device)
    if share_prefix:
        out = model(input_ids=head, use_cache=True)
        cache = out.past_key_values
        cache.batch_repeat_interleave(n)
        logits = out.logits[:, -1].expand(n, -1)
    else:
        out = model(input_ids=head.expand(n, -1), use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
    done = torch.zeros(n, dtype=torch.bool, device=device)
    stops = torch.tensor(stop_ids, device=device)
    ends = torch.tensor(tuple(stop_ids) + tuple(keep_ids), device=device)
    generated: list[torch.Tensor] = []
    tokens = 0
    for _ in range(max_new_tokens):
        nxt = _choose(logits, temperature, generator)
        nxt = torch.where(done, stops[0], nxt)  # finished branches idle on a stop token
        tokens += int((~done).sum())
        generated.append(nxt)
        done |= torch.isin(nxt, ends)
        if bool(done.all()):
            break
        out = model(input_ids=nxt[:, None], past_key_values=cache, use_cache=True)
        cache, logits = out.past_key_values, out.logits[:, -1]
    rows = torch.stack(generated, 1).tolist() if generated else [[] for _ in range(n)]
    return Branches([_until_stop(r, stop_ids, keep_ids) for r in rows], tokens)


def _choose(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).squeeze(1).to(logits.device)


def _until_stop(row: list[int], stop_ids: tuple[int, ...], keep_ids: tuple[int, ...] = ()) -> list[int]:
    for i, t in enumerate(row):
        if t in stop_ids:
            return row[:i]
        if t in keep_ids:
            return row[:i + 1]
    return row


@dataclass
class Searched:
    """One question's outcome: the chosen answer (None: nothing parseable), tokens, its tree."""

    answer: str | None
    tokens: int
    tree: dict = field(default_factory=dict)


def search(model, chat: Chat, question: str, strategy: str, budget: int, max_new_tokens: int, *,
           branches: int = 0, temperature: float = 0.8, generator: torch.Generator | None = None) -> Searched:
    """Answer ``question`` with ``strategy`` spending at most ``budget`` generated tokens."""
    prompt = chat.prompt_ids(question)
    if strategy == "greedy":
        n, temp = 1, 0.0
    else:  # self_consistency: as many branches as asked, each may use max_new_tokens
        n, temp = branches or max(1, budget // max_new_tokens), temperature
    per_branch = max(1, min(max_new_tokens, budget // n))
    out = decode(model, prompt, n, per_branch, chat.stop_ids, temperature=temp, generator=generator)
    texts = [chat.decode(ids) for ids in out.ids]
    answers = [parse_answer(t) for t in texts]
    votes = Counter(a for a in answers if a is not None)
    chosen = votes.most_common(1)[0][0] if votes else None
    tree = {"strategy": strategy, "question": question, "prompt_tokens": len(prompt), "budget": budget,
            "tokens": out.tokens, "answer": chosen, "votes": dict(votes),
            "children": [{"id": i, "text": t, "answer": a, "tokens": len(ids), "chosen": a is not None and a == chosen}
                         for i, (t, a, ids) in enumerate(zip(texts, answers, out.ids))]}
    return Searched(chosen, out.tokens, tree)


def kv_cache_bytes(config, tokens: int, dtype_bytes: int = 4) -> int:
    """Bytes of the KV cache holding ``tokens`` positions (keys and values of every layer)."""
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * heads * head_dim * dtype_bytes * tokens
