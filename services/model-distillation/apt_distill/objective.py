"""The training objective: hard-label CE plus the chosen distillation terms.

    total = (1 - alpha) * CE + alpha * KD          when "response" is chosen, else CE
          + w_feature * feature + w_relation * relation + sum(w_custom * custom)

The learned projections of feature distillation live here (a ``nn.Module`` trained with
the student and checkpointed with it, but not saved into the student).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from apt_model import errors

from apt_distill import losses
from apt_distill.custom import load_loss
from apt_distill.models import Shapes, default_layer_map
from apt_distill.spec import DistillSpec


@dataclass(frozen=True)
class LossInputs:
    """What every loss term sees; teacher tensors are already gathered to student positions."""

    student_logits: torch.Tensor            # (B, S, V_student)
    teacher_logits: torch.Tensor            # (B, S, V_teacher), no gradient
    student_hidden: tuple[torch.Tensor, ...]  # per block output, (B, S, D_student); [-1] is final-normed
    teacher_hidden: tuple[torch.Tensor, ...]  # per block output, (B, S, D_teacher)
    mask: torch.Tensor                      # (B, S) bool: positions that count
    input_ids: torch.Tensor                 # (B, S) student ids (labels, before shifting)
    temperature: float
    same_vocabulary: bool


# The loss terms Objective.forward names itself; a registered loss adds "<name>_loss".
BUILTIN_TERMS = ("loss", "ce_loss", "kd_loss", "feature_loss", "relation_loss")


class Objective(nn.Module):
    def __init__(self, spec: DistillSpec, shapes: Shapes):
        super().__init__()
        self.spec = spec
        self.layer_map = spec.layer_map or default_layer_map(shapes.student_layers, shapes.teacher_layers)
        self.projections = nn.ModuleDict()
        if "feature" in spec.uses and shapes.student_width != shapes.teacher_width:
            for s, t in self.layer_map:
                # a fresh linear map per pair: the student's width D_s -> the teacher's D_t
                self.projections[f"{s}_{t}"] = nn.Linear(shapes.student_width, shapes.teacher_width, bias=False)
        self.custom: dict[str, Callable] = {name: load_loss(name) for name in spec.custom_losses}

    @property
    def needs_hidden(self) -> bool:
        return bool({"feature", "relation"} & self.spec.uses or self.custom)

    def forward(self, x: LossInputs) -> dict[str, torch.Tensor]:
        spec = self.spec
        terms: dict[str, torch.Tensor] = {}
        # next-token CE: position i predicts id i+1
        ce = F.cross_entropy(x.student_logits[:, :-1].flatten(0, 1).float(), x.input_ids[:, 1:].flatten())
        terms["ce_loss"] = ce
        total = ce
        if "response" in spec.uses:
            kd = losses.response_kl(x.student_logits, x.teacher_logits, x.mask, temperature=spec.temperature,
                                    direction=spec.kl_direction, top_k=spec.top_k)
            terms["kd_loss"] = kd
            total = (1.0 - spec.alpha) * ce + spec.alpha * kd
        if "feature" in spec.uses:
            parts = []
            for s, t in self.layer_map:
                h_s = x.student_hidden[s]
                key = f"{s}_{t}"
                if key in self.projections:
                    h_s = self.projections[key](h_s)
                parts.append(losses.feature_loss(h_s, x.teacher_hidden[t], x.mask, spec.feature_loss))
            terms["feature_loss"] = torch.stack(parts).mean()
            total = total + spec.weight("feature") * terms["feature_loss"]
        if "relation" in spec.uses:
            if spec.relation == "sample":
                rel = losses.sample_relation(x.student_hidden[-1], x.teacher_hidden[-1], x.mask, x.mask)
            else:
                rel = losses.token_relation(x.student_hidden[-1], x.teacher_hidden[-1], x.mask)
            terms["relation_loss"] = rel
            total = total + spec.weight("relation") * rel
        for name, fn in self.custom.items():
            value = fn(x)
            if not isinstance(value, torch.Tensor) or value.dim() != 0:
                raise errors.FailedPrecondition(
                    f"The registered loss {name!r} returned {type(value).__name__} "
                    f"{tuple(getattr(value, 'shape', ()))}; it must return a scalar tensor.")
            terms[f"{name}_loss"] = value
            total = total + spec.weight(name) * value
        terms["loss"] = total
        return terms


def gather_teacher(hidden: torch.Tensor, align: torch.Tensor | None) -> torch.Tensor:
    """Teacher (B, St, D) -> (B, S, D) at the student's positions; identity with one tokenizer."""
    if align is None:
        return hidden
    return hidden.gather(1, align.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))
