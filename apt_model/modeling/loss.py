"""Next-token cross-entropy fused with the output projection, computed in chunks of tokens.

The plain path materialises (B*T, V) logits, the log-softmax that cross-entropy keeps, and
both their gradients: four (B*T, V) fp32 tensors and a dozen passes over them. Here the
logits of ``chunk`` tokens at a time are made, turned into the loss and into the gradients of
the hidden states and of the projection weight at once (softmax - one-hot), and dropped: the
gradients are all that is kept for backward. Same loss and gradients as
``cross_entropy(hidden @ W.T, targets)`` up to float rounding; peak memory is one chunk of
logits, and the work stays in cache.
"""

from __future__ import annotations

import torch

# Architectures whose logits are exactly lm_head(final hidden state): no bias, scale or cap.
FUSABLE_MODEL_TYPES = {"llama", "mistral", "qwen2", "qwen3", "gpt2"}
DEFAULT_CHUNK = 1024  # tokens per chunk: 1024 x V fp32 logits (16 MiB at V = 4096)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk):  # hidden (N, d), weight (V, d), targets (N,)
        n = hidden.shape[0]
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        for start in range(0, n, chunk):
            h, t = hidden[start:start + chunk], targets[start:start + chunk]
            logits = h @ weight.T  # (c, V)
            target_logit = logits.gather(1, t.unsqueeze(1)).squeeze(1)  # before logits is overwritten
            top = logits.amax(dim=-1, keepdim=True)  # (c, 1), for a stable exp
            probs = logits.sub_(top).exp_()  # unnormalised softmax, in place: one exp pass, not two
            norm = probs.sum(dim=-1, keepdim=True)  # (c, 1)
            lse = norm.log().add_(top).squeeze(1)  # logsumexp of the logits
            total += (lse - target_logit).sum().double()
            probs.mul_(norm.reciprocal_().div_(n))  # softmax / n: the loss is a mean over n tokens
            probs[torch.arange(t.numel(), device=t.device), t] -= 1.0 / n  # d(loss)/d(logits)
            grad_hidden[start:start + chunk] = probs @ weight
            grad_weight.addmm_(probs.T, h)
        ctx.save_for_backward(grad_hidden, grad_weight)
        return (total / n).to(hidden.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        grad_hidden, grad_weight = ctx.saved_tensors
        return grad_hidden * grad_output, grad_weight * grad_output, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = DEFAULT_CHUNK) -> torch.Tensor:
    """Mean cross-entropy of ``hidden @ weight.T`` against ``targets``; hidden (N, d), targets (N,)."""
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk)


def can_fuse(model) -> bool:
    """True when the model's logits are exactly its output projection of the last hidden state."""
    head = model.get_output_embeddings()
    cfg = model.config
    return (cfg.model_type in FUSABLE_MODEL_TYPES and isinstance(head, torch.nn.Linear) and head.bias is None
            and not getattr(cfg, "final_logit_softcapping", None) and getattr(cfg, "logit_scale", None) is None)


def causal_lm_loss(model, inputs: torch.Tensor, targets: torch.Tensor, fused: bool) -> torch.Tensor:
    """Mean next-token loss of a (B, T) batch against (B, T) targets."""
    if fused:
        hidden = model.base_model(input_ids=inputs).last_hidden_state  # (B, T, d)
        weight = model.get_output_embeddings().weight  # (V, d)
        return linear_cross_entropy(hidden.flatten(0, 1), weight, targets.flatten())
    logits = model(inputs).logits  # (B, T, V)
    return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())


def batch_loss(model, batch: torch.Tensor, device: str) -> torch.Tensor:
    """Mean next-token cross-entropy of a (B, T + 1) batch: core ``train``'s loss, and the loss
    advanced-debugging's probe reruns a run's steps with.

    On CPU the loss is fused with the output projection where the architecture allows it
    (causal_lm_loss); under CUDA bf16 autocast the plain path is used.
    """
    batch = batch.to(device)
    inputs, targets = batch[:, :-1], batch[:, 1:]  # (B, T) each
    if device == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(inputs).logits  # (B, T, V)
        return torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
    return causal_lm_loss(model, inputs, targets, fused=model.training and can_fuse(model))
