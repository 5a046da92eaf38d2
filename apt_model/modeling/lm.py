"""Language-model helpers every service can reuse: perplexity, timed generation, batches.

``perplexity`` scores the same tokens with the same one-position shift as transformers'
reference computation (the "Perplexity of fixed-length models" recipe: windows of
``max_length`` tokens moved by ``stride``; each token is scored once, by the first window
that holds it with the most context), but counts the scored tokens exactly and sums the
negative log-likelihood in float64 so long texts add no rounding drift.

``text_perplexity`` is the perplexity of a *text* every service reports (``test``, ``compare``,
the pruning report): its documents as one token stream (``tokenize_documents``, what training
reads), cut at ``MAX_EVAL_TOKENS``, in disjoint windows of the model's context — so the same
model and text give the same number wherever it is printed.
"""

from __future__ import annotations

import array
import time
from dataclasses import dataclass, field

import torch

from apt_model import errors


MAX_WINDOW = 2048  # default perplexity window cap, tokens
MAX_EVAL_TOKENS = 16384  # a text's perplexity scores at most this many tokens (the rest is cut)


@dataclass(frozen=True)
class PerplexityResult:
    perplexity: float
    nll: float  # mean negative log-likelihood per scored token, nats
    tokens_scored: int
    windows: int
    seconds: float


def context_length(model) -> int:
    return context_length_of_config(model.config)


def context_length_of_config(cfg) -> int:
    """The longest sequence a config's model takes (1024 when the config does not say)."""
    for attr in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        value = getattr(cfg, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1024


@torch.no_grad()
def perplexity(model, ids: torch.Tensor, *, max_length: int | None = None,
               stride: int | None = None) -> PerplexityResult:
    """Perplexity of ``model`` on the 1-D token tensor ``ids``.

    ``max_length`` is the window (default: the model's context, at most ``MAX_WINDOW`` so
    long-context models do not need (T, V) logits of their full context); ``stride`` how far each
    window moves (default: ``max_length``, i.e. disjoint windows). A smaller stride gives
    each scored token more context and costs more forward passes.
    """
    if ids.dim() != 1:
        raise errors.InvalidArgument(f"perplexity expects a 1-D tensor of token ids, got shape {tuple(ids.shape)}.")
    n = ids.numel()
    if n < 2:
        raise errors.InvalidArgument("The evaluation text has fewer than 2 tokens: nothing to score.")
    max_length = min(max_length or MAX_WINDOW, context_length(model))
    stride = stride or max_length
    if not 0 < stride <= max_length:
        raise errors.InvalidArgument(f"stride must be in 1..{max_length} (the window), got {stride}.")
    device = next(model.parameters()).device
    model.eval()
    start = time.perf_counter()
    nll_sum, scored, windows, prev_end = 0.0, 0, 0, 0
    for begin in range(0, n, stride):
        end = min(begin + max_length, n)
        # Targets are window[1:]; only the tokens not yet scored by an earlier window count.
        first_new = max(prev_end - begin, 1)  # index in the window of the first new target
        nll, count = window_nll(model, ids[begin:end].unsqueeze(0).to(device), first=first_new)
        nll_sum += nll
        scored += count
        windows += 1
        prev_end = end
        if end == n:
            break
    return _result(nll_sum, scored, windows, start)


def tokenize_documents(tokenizer, documents: list[str], batch: int = 256) -> torch.Tensor:
    """The platform's token stream of a text: one int64 tensor, each document's tokens (no
    other special tokens) followed by the eos token."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise errors.FailedPrecondition("The tokenizer has no eos token to separate documents; add one.")
    out = array.array("q")  # 8 bytes a token, not a Python int object each
    for i in range(0, len(documents), batch):
        for ids in tokenizer(documents[i:i + batch], add_special_tokens=False).input_ids:
            out.extend(ids)
            out.append(eos)
    return torch.frombuffer(out, dtype=torch.long).clone() if out else torch.empty(0, dtype=torch.long)


def text_perplexity(model, tokenizer, documents: list[str], *, max_tokens: int = MAX_EVAL_TOKENS,
                    stride: int | None = None) -> PerplexityResult:
    """Perplexity of a text (its documents), the one way every service measures it: the token
    stream of ``tokenize_documents`` cut at ``max_tokens``, scored by ``perplexity`` in windows
    of the model's context (at most ``MAX_WINDOW``)."""
    ids = tokenize_documents(tokenizer, documents)[:max_tokens]
    if ids.numel() and int(ids.max()) >= model.get_input_embeddings().num_embeddings:
        raise errors.FailedPrecondition(
            "The tokenizer produces ids beyond the model's embedding table; run 'apt-model debug' on the model.")
    return perplexity(model, ids, stride=stride)


@torch.no_grad()
def block_perplexity(model, blocks: torch.Tensor, batch_size: int = 8,
                     mask: torch.Tensor | None = None) -> PerplexityResult:
    """Perplexity over (N, S) blocks scored independently (each block's targets are its tokens
    1..S-1), ``batch_size`` blocks per forward pass; ``mask`` (N, S) marks padding with 0.
    The same estimator as ``perplexity``: for a text cut into disjoint windows of S tokens the
    two give the same number."""
    if blocks.dim() != 2 or blocks.shape[1] < 2:
        raise errors.InvalidArgument(f"block_perplexity expects (N, S >= 2) token blocks, got {tuple(blocks.shape)}.")
    device = next(model.parameters()).device
    model.eval()
    start = time.perf_counter()
    nll_sum, scored = 0.0, 0
    for i in range(0, len(blocks), batch_size):
        part = None if mask is None else mask[i:i + batch_size].to(device)
        nll, count = window_nll(model, blocks[i:i + batch_size].to(device), part)
        nll_sum += nll
        scored += count
    return _result(nll_sum, scored, len(blocks), start)


def window_nll(model, ids: torch.Tensor, mask: torch.Tensor | None = None, first: int = 1) -> tuple[float, int]:
    """The one next-token scorer behind every perplexity the platform reports: the summed
    negative log-likelihood (nats, float64) of the targets ``ids[:, first:]`` of a (B, T) batch,
    each predicted from the positions before it, and how many targets were scored. Targets at
    positions where ``mask`` is 0 (padding) do not count."""
    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, first - 1:-1].float()
    log_probs = torch.log_softmax(logits, dim=-1)
    targets = ids[:, first:]
    nll = -log_probs.gather(2, targets.unsqueeze(2)).squeeze(2).double()
    if mask is not None:
        nll = nll[mask[:, first:].bool()]
    return float(nll.sum()), int(nll.numel())


def _result(nll_sum: float, scored: int, windows: int, start: float) -> PerplexityResult:
    if scored == 0:
        raise errors.InvalidArgument("The evaluation text has no token to score.")
    mean = nll_sum / scored
    return PerplexityResult(perplexity=float(torch.tensor(mean, dtype=torch.float64).exp()), nll=mean,
                            tokens_scored=scored, windows=windows, seconds=time.perf_counter() - start)


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 32
    do_sample: bool = False  # False: greedy
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1: no nucleus cut
    seed: int = 0

    def validate(self) -> "GenerationParams":
        if not 1 <= self.max_new_tokens <= 4096:
            raise errors.InvalidArgument(f"max_new_tokens must be in 1..4096, got {self.max_new_tokens}.")
        if self.do_sample and self.temperature <= 0:
            raise errors.InvalidArgument(f"temperature must be > 0 when sampling, got {self.temperature}.")
        if self.top_k < 0:
            raise errors.InvalidArgument(f"top_k must be >= 0, got {self.top_k}.")
        if not 0 < self.top_p <= 1:
            raise errors.InvalidArgument(f"top_p must be in (0, 1], got {self.top_p}.")
        return self


@dataclass
class Generation:
    prompt: str
    text: str  # the new text only
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_seconds: float
    token_ids: list[int] = field(default_factory=list)

    @property
    def prefill_tokens_per_s(self) -> float:
        return self.prompt_tokens / self.prefill_seconds if self.prefill_seconds > 0 else 0.0

    @property
    def decode_tokens_per_s(self) -> float:
        # The first new token comes from the prefill logits; decode steps make the rest.
        steps = max(self.new_tokens - 1, 0)
        return steps / self.decode_seconds if self.decode_seconds > 0 else 0.0


def _pick_next(logits: torch.Tensor, p: GenerationParams, gen: torch.Generator) -> int:
    """Next token id from the last position's logits (V,)."""
    if not p.do_sample:
        return int(torch.argmax(logits))
    logits = logits.float() / p.temperature
    if p.top_k:
        kth = torch.topk(logits, min(p.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if p.top_p < 1:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= p.top_p  # keep the first past p
        logits[order[drop]] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs.cpu(), 1, generator=gen))


@torch.no_grad()
def generate(model, tokenizer, prompt: str, params: GenerationParams) -> Generation:
    """Generate with a KV cache, timing the prefill (prompt) and decode (new tokens) apart."""
    params.validate()
    device = next(model.parameters()).device
    ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False).input_ids
    if tokenizer.bos_token_id is not None and (ids.numel() == 0 or int(ids[0, 0]) != tokenizer.bos_token_id):
        ids = torch.cat([torch.tensor([[tokenizer.bos_token_id]]), ids], dim=1)
    limit = context_length(model)
    if ids.shape[1] + params.max_new_tokens > limit:
        raise errors.InvalidArgument(
            f"The prompt ({ids.shape[1]} tokens) plus max_new_tokens ({params.max_new_tokens}) exceeds the "
            f"model's context of {limit} tokens; shorten the prompt or ask for fewer tokens.")
    gen = torch.Generator().manual_seed(params.seed)
    eos = tokenizer.eos_token_id
    model.eval()
    t0 = time.perf_counter()
    out = model(ids.to(device), use_cache=True)
    next_id = _pick_next(out.logits[0, -1], params, gen)
    t1 = time.perf_counter()
    past, new = out.past_key_values, [next_id]
    while len(new) < params.max_new_tokens and next_id != eos:
        out = model(torch.tensor([[next_id]], device=device), past_key_values=past, use_cache=True)
        past = out.past_key_values
        next_id = _pick_next(out.logits[0, -1], params, gen)
        new.append(next_id)
    t2 = time.perf_counter()
    text_ids = new[:-1] if new and new[-1] == eos else new
    return Generation(prompt=prompt, text=tokenizer.decode(text_ids, skip_special_tokens=True),
                      prompt_tokens=int(ids.shape[1]), new_tokens=len(new), prefill_seconds=t1 - t0,
                      decode_seconds=t2 - t1, token_ids=new)


def random_windows(ids: torch.Tensor, batch_size: int, seq_len: int, seed: int, step: int) -> torch.Tensor:
    """A (batch_size, seq_len + 1) batch of windows drawn from ``ids`` for one training step.

    The draw depends only on (seed, step), so a run resumed at step k sees exactly the
    batches the uninterrupted run would have seen.
    """
    span = ids.numel() - seq_len - 1
    if span < 0:
        raise errors.InvalidArgument(f"{ids.numel()} tokens are fewer than one sequence of {seq_len + 1}.")
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, span + 1, (batch_size,), generator=gen)
    return torch.stack([ids[s:s + seq_len + 1] for s in starts.tolist()])


def sequential_windows(ids: torch.Tensor, batch_size: int, seq_len: int, max_batches: int | None = None):
    """Disjoint (B, seq_len + 1) windows covering ``ids`` in order (for validation loss)."""
    n = (ids.numel() - 1) // seq_len
    rows = [ids[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)]
    for b, i in enumerate(range(0, len(rows), batch_size)):
        if max_batches is not None and b >= max_batches:
            return
        yield torch.stack(rows[i:i + batch_size])


def count_parameters(model) -> tuple[int, int]:
    """(total, trainable) parameters; tied weights counted once."""
    seen, total, trainable = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return total, trainable
