"""The distillation losses: response (logits), feature (hidden states) and relation.

Every function takes tensors already aligned position by position (``mask`` marks the
positions that count) and returns a scalar. Shapes: B batch, S positions, V vocabulary,
D width. Teacher tensors never carry gradients; the student's and the projections' do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from apt_model.modeling.distributed import global_masked_mean


def response_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *,
                temperature: float, direction: str = "forward", top_k: int = 0) -> torch.Tensor:
    """KL between temperature-softened distributions, scaled by T² (Hinton et al. 2015).

    The T² factor keeps the gradient size of the soft term comparable to the hard-label
    term as T changes, so ``alpha`` means the same thing at every temperature.
    ``direction`` "forward" is KL(teacher || student) (mean-seeking), "reverse" is
    KL(student || teacher) (mode-seeking, as in MiniLLM). ``top_k`` > 0 restricts both
    distributions to the teacher's k most likely tokens at each position, renormalised,
    so the (B, S, V) soft targets shrink to (B, S, k).
    """
    s = student_logits.float() / temperature  # (B, S, V)
    t = teacher_logits.float() / temperature
    if top_k > 0 and top_k < t.shape[-1]:
        t, idx = t.topk(top_k, dim=-1)  # (B, S, k)
        s = s.gather(-1, idx)
    s_logp = F.log_softmax(s, dim=-1)
    t_logp = F.log_softmax(t, dim=-1)
    if direction == "forward":
        per_pos = (t_logp.exp() * (t_logp - s_logp)).sum(-1)  # (B, S)
    elif direction == "reverse":
        per_pos = (s_logp.exp() * (s_logp - t_logp)).sum(-1)
    else:
        raise ValueError(f"unknown KL direction {direction!r}")
    return masked_mean(per_pos, mask) * temperature**2


def feature_loss(student_h: torch.Tensor, teacher_h: torch.Tensor, mask: torch.Tensor, kind: str) -> torch.Tensor:
    """Match (already projected) student states to teacher states at the masked positions.

    "mse" is divided by the teacher states' mean square, so it is scale-free (1.0 is what
    predicting zeros costs); without that, deep Llama layers whose states grow to norms in
    the hundreds would drown the other terms. "cosine" is 1 - cos, direction only.
    """
    s, t = student_h.float(), teacher_h.float()  # (B, S, D_teacher)
    if kind == "mse":
        # over the global batch, so that 2 ranks of 4 rows scale as 1 rank of 8 does
        scale = global_masked_mean(t.pow(2).mean(-1), mask).clamp_min(1e-8)
        return masked_mean((s - t).pow(2).mean(-1), mask) / scale
    if kind == "cosine":
        return masked_mean(1.0 - F.cosine_similarity(s, t, dim=-1, eps=1e-8), mask)
    raise ValueError(f"unknown feature loss {kind!r}")


def pooled(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the states over the valid positions of each sample: (B, S, D) -> (B, D)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def rkd_distance(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD distance term (Park et al. 2019): pairwise distances, each normalised by its mean."""
    def normalised_distances(x: torch.Tensor) -> torch.Tensor:
        d = torch.cdist(x.float(), x.float())  # (B, B)
        off = ~torch.eye(d.shape[0], dtype=torch.bool, device=d.device)
        return d / d[off].mean().clamp_min(1e-8)

    return F.smooth_l1_loss(normalised_distances(student), normalised_distances(teacher))


def rkd_angle(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """RKD angle term: cosines of the angles formed by every triplet of samples."""
    def angles(x: torch.Tensor) -> torch.Tensor:
        e = F.normalize(x.float().unsqueeze(0) - x.float().unsqueeze(1), p=2, dim=2)  # (B, B, D)
        return torch.bmm(e, e.transpose(1, 2)).flatten()  # (B*B*B,)

    return F.smooth_l1_loss(angles(student), angles(teacher))


def sample_relation(student_h: torch.Tensor, teacher_h: torch.Tensor, s_mask: torch.Tensor,
                    t_mask: torch.Tensor) -> torch.Tensor:
    """RKD on the pooled representation of each sample; widths may differ (no projection)."""
    ps, pt = pooled(student_h, s_mask), pooled(teacher_h, t_mask)
    return rkd_distance(ps, pt) + 2.0 * rkd_angle(ps, pt)  # the paper's weights (1 and 2)


def token_relation(student_h: torch.Tensor, teacher_h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Match the token-to-token cosine-similarity matrices of each sample, (B, S, S).

    Each model's matrix lives in its own width, so no projection is needed; only pairs of
    valid positions count.
    """
    def similarity(x: torch.Tensor) -> torch.Tensor:
        x = F.normalize(x.float(), dim=-1)
        return x @ x.transpose(1, 2)

    pair = mask.unsqueeze(1) & mask.unsqueeze(2)  # (B, S, S)
    diff = (similarity(student_h) - similarity(teacher_h)).pow(2)
    return masked_mean(diff, pair)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)
