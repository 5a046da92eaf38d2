"""GRPO's pieces as plain tensor functions: group-relative advantages and the clipped policy
loss with TRL's three normalisations (``grpo``, ``dr_grpo``, ``dapo``), so a test can hold the
loss to TRL's ``GRPOTrainer`` on the same batch.

Shapes: ``B`` completions (groups of ``G`` consecutive rows share a prompt), ``T`` completion
tokens (right-padded, ``mask`` 1 on real tokens).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")


def group_advantages(rewards: torch.Tensor, group: int, scale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages (B,), zero_std (B,) bool): each reward minus its group's mean, divided by the
    group's (unbiased) standard deviation + 1e-4 when ``scale`` (Dr. GRPO leaves it unscaled).
    A group whose rewards are all equal has zero advantages: it carries no learning signal."""
    grouped = rewards.view(-1, group)                                     # (B/G, G)
    mean = grouped.mean(1).repeat_interleave(group)
    std = grouped.std(1).repeat_interleave(group) if group > 1 else torch.zeros_like(rewards)
    advantages = rewards - mean
    if scale:
        advantages = advantages / (std + 1e-4)
    return advantages, torch.isclose(std, torch.zeros_like(std))


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "grpo"
    beta: float = 0.0                  # weight of the k3 KL to the reference model
    epsilon_low: float = 0.2           # ratio clipped to [1 - low, 1 + high]
    epsilon_high: float = 0.2          # DAPO's clip-higher raises this one (e.g. 0.28)
    max_completion_length: int = 256   # Dr. GRPO's constant normaliser
    kl_ratio_correction: bool = True   # weigh the KL by the probability ratio (TRL's use_bias_correction_kl)


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                cfg: LossConfig, ref_logps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The clipped surrogate (per token, (B, T)) reduced as ``cfg.loss_type`` says; returns
    ``loss`` and, detached, ``kl`` (masked mean) and ``clip_ratio`` (share of tokens clipped)."""
    mask = mask.to(logps.dtype)
    adv = advantages.unsqueeze(1)                                          # (B, 1)
    ratio = torch.exp(logps - old_logps)                                   # (B, T)
    clipped = torch.clamp(ratio, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high)
    per_token = -torch.min(ratio * adv, clipped * adv)
    kl = torch.zeros_like(per_token)
    if cfg.beta != 0.0:
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1                                  # k3 estimator, >= 0
        if cfg.kl_ratio_correction:  # the rollouts came from old_logps' policy
            kl = kl * ratio
        per_token = per_token + cfg.beta * kl
    if cfg.loss_type == "grpo":  # each sequence's token mean, then the mean over sequences
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif cfg.loss_type == "dr_grpo":  # a constant normaliser: no length bias
        loss = (per_token * mask).sum() / (per_token.size(0) * cfg.max_completion_length)
    elif cfg.loss_type == "dapo":  # every token of the batch weighs the same
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    else:
        raise ValueError(f"unknown loss type {cfg.loss_type!r}; one of {LOSS_TYPES}")
    was_clipped = ((ratio < 1 - cfg.epsilon_low) & (adv < 0)) | ((ratio > 1 + cfg.epsilon_high) & (adv > 0))
    tokens = mask.sum().clamp(min=1.0)
    return {"loss": loss, "kl": ((kl * mask).sum() / tokens).detach(),
            "clip_ratio": ((was_clipped.to(mask.dtype) * mask).sum() / tokens).detach()}


def token_logps_and_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of ``targets`` (B, T) under ``logits`` (B, T, V), and each position's entropy."""
    logp = torch.log_softmax(logits.float(), -1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy
