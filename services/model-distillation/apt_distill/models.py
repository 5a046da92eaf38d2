"""Teacher and student: loading, building, the vocabulary guard and the layer mapping.

The student comes from the store, from an ``apt`` preset size (fresh weights, the
teacher's tokenizer) or is derived from the teacher: the same architecture with fewer
blocks, initialised from evenly spaced teacher blocks (DistilBERT-style), plus the
teacher's embeddings, final norm and head.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from apt_model import errors
from apt_model.modeling.io import load_model, load_tokenizer, read_config
from apt_model.modeling.preset import SIZES, create_model, preset_config
from apt_model.store import Store

from apt_distill.spec import DistillSpec


@dataclass(frozen=True)
class Shapes:
    """What the spec needs to know about both models before loading any weights."""

    teacher_layers: int
    teacher_width: int
    student_layers: int
    student_width: int
    same_vocabulary: bool
    vocabulary_differences: tuple[str, ...]


def check_spec_against_models(store: Store, spec: DistillSpec) -> Shapes:
    """Check the spec against the stored configs and tokenizers (cheap: no weights loaded).

    Raises NotFound for a missing model, InvalidArgument for an impossible layer count or
    mapping, FailedPrecondition when response distillation meets different vocabularies.
    """
    t_entry = store.model(spec.teacher)
    t_cfg = read_config(t_entry.path)
    t_layers, t_width = _depth_width(t_cfg, spec.teacher)
    differences: list[str] = []
    if spec.student:
        s_entry = store.model(spec.student)
        s_cfg = read_config(s_entry.path)
        s_layers, s_width = _depth_width(s_cfg, spec.student)
        differences = vocabulary_differences(
            load_tokenizer(t_entry.path), load_tokenizer(s_entry.path),
            t_cfg.get("vocab_size"), s_cfg.get("vocab_size"))
    elif spec.student_preset_size:
        size = SIZES[spec.student_preset_size]
        s_layers, s_width = size.num_hidden_layers, size.hidden_size
    else:
        if spec.student_layers > t_layers:
            raise errors.InvalidArgument(
                f"--student-layers {spec.student_layers} is more than the teacher's {t_layers} layers; "
                f"a derived student keeps a subset of them (1..{t_layers}).")
        s_layers, s_width = spec.student_layers, t_width

    if differences and "response" in spec.uses:
        raise errors.FailedPrecondition(
            f"Response distillation needs identical tokenizers, and {spec.student!r} differs from "
            f"teacher {spec.teacher!r}: " + "; ".join(differences) + ". Use a student with the teacher's "
            "tokenizer (--student-preset-size or --student-layers build one), or distil with feature and/or "
            "relation only, which align the two tokenizations by character offsets.",
            reason="VOCABULARY_MISMATCH")
    for s, t in spec.layer_map:
        if s >= s_layers or t >= t_layers:
            raise errors.InvalidArgument(
                f"Unknown layer mapping {s}:{t}: the student has blocks 0..{s_layers - 1} and the "
                f"teacher 0..{t_layers - 1}.")
    return Shapes(t_layers, t_width, s_layers, s_width, not differences, tuple(differences))


def default_layer_map(student_layers: int, teacher_layers: int) -> tuple[tuple[int, int], ...]:
    """Each student block to the teacher block at the same relative depth (last to last)."""
    return tuple((i, round((i + 1) * teacher_layers / student_layers) - 1) for i in range(student_layers))


def evenly_spaced_layers(keep: int, total: int) -> list[int]:
    """``keep`` indices out of ``total``, first and last included when keep > 1."""
    if keep == 1:
        return [total - 1]
    return sorted({round(i * (total - 1) / (keep - 1)) for i in range(keep)})


def vocabulary_differences(t_tok, s_tok, t_vocab_size: int | None = None,
                           s_vocab_size: int | None = None) -> list[str]:
    """Human-readable differences that make token ids mean different things in the two models."""
    out = []
    t_vocab, s_vocab = t_tok.get_vocab(), s_tok.get_vocab()
    if len(t_vocab) != len(s_vocab):
        out.append(f"the teacher's tokenizer has {len(t_vocab)} tokens and the student's {len(s_vocab)}")
    only_t = sorted(set(t_vocab) - set(s_vocab), key=t_vocab.get)
    only_s = sorted(set(s_vocab) - set(t_vocab), key=s_vocab.get)
    moved = sorted((tok for tok in set(t_vocab) & set(s_vocab) if t_vocab[tok] != s_vocab[tok]), key=t_vocab.get)
    if only_t:
        out.append(f"{len(only_t)} teacher tokens are missing from the student (e.g. {_examples(only_t)})")
    if only_s:
        out.append(f"{len(only_s)} student tokens are unknown to the teacher (e.g. {_examples(only_s)})")
    if moved:
        tok = moved[0]
        out.append(f"{len(moved)} tokens have different ids (e.g. {tok!r} is {t_vocab[tok]} in the teacher "
                   f"and {s_vocab[tok]} in the student)")
    for attr in ("bos_token", "eos_token", "pad_token", "unk_token"):
        a, b = getattr(t_tok, attr, None), getattr(s_tok, attr, None)
        if a != b:
            out.append(f"{attr} is {a!r} in the teacher and {b!r} in the student")
    if not out:
        t_model, s_model = _backend_model(t_tok), _backend_model(s_tok)
        if t_model != s_model:
            out.append("the vocabularies are equal but the merge rules differ, so the same text is split differently")
    if t_vocab_size and s_vocab_size and t_vocab_size != s_vocab_size:
        out.append(f"the teacher's head has {t_vocab_size} logits and the student's {s_vocab_size}")
    return out


def _examples(tokens: list[str], n: int = 3) -> str:
    return ", ".join(repr(t) for t in tokens[:n])


def _backend_model(tok) -> dict | None:
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        return None
    data = json.loads(backend.to_str())
    return {k: data.get(k) for k in ("model", "pre_tokenizer", "normalizer")}


def _depth_width(cfg: dict, name: str) -> tuple[int, int]:
    layers = cfg.get("num_hidden_layers") or cfg.get("n_layer")
    width = cfg.get("hidden_size") or cfg.get("n_embd")
    if not layers or not width:
        raise errors.FailedPrecondition(
            f"The config of {name!r} names no num_hidden_layers/hidden_size; feature and relation "
            "distillation need a decoder that reports its depth and width.")
    return int(layers), int(width)


def load_teacher(store: Store, name: str, device: str):
    """The teacher, frozen: eval mode (no dropout) and no parameter asks for a gradient."""
    path = store.model(name).path
    model = load_model(path, device=device)
    model.requires_grad_(False)
    return model.eval(), load_tokenizer(path)


def build_student(store: Store, spec: DistillSpec, teacher, teacher_tok, device: str):
    """(student model in train mode, its tokenizer)."""
    if spec.student:
        path = store.model(spec.student).path
        return load_model(path, device=device).train(), load_tokenizer(path)
    if spec.student_preset_size:
        config = preset_config(spec.student_preset_size, vocab_size=teacher.config.vocab_size,
                               bos_token_id=teacher_tok.bos_token_id, eos_token_id=teacher_tok.eos_token_id,
                               pad_token_id=teacher_tok.pad_token_id)
        return create_model(config, seed=spec.seed).to(device).train(), teacher_tok
    return derive_student(teacher, spec.student_layers, spec.seed).to(device).train(), teacher_tok


def derive_student(teacher, keep: int, seed: int = 0):
    """A copy of the teacher's architecture with ``keep`` of its blocks and their weights."""
    import torch

    path, blocks = _block_list(teacher)
    chosen = evenly_spaced_layers(keep, len(blocks))
    config = teacher.config.__class__.from_dict(teacher.config.to_dict())
    config.num_hidden_layers = len(chosen)
    if isinstance(getattr(config, "layer_types", None), list):  # per-layer attention kinds
        config.layer_types = [teacher.config.layer_types[i] for i in chosen]
    student = create_model(config, seed=seed)
    prefix = f"{path}."
    state = {}
    for key, value in teacher.state_dict().items():
        if key.startswith(prefix):
            index, rest = key[len(prefix):].split(".", 1)
            if int(index) not in chosen:
                continue
            key = f"{prefix}{chosen.index(int(index))}.{rest}"
        state[key] = value.detach().clone()
    with torch.no_grad():
        student.load_state_dict(state, strict=True)
    return student


def _block_list(model):
    """(dotted path, ModuleList) of the decoder blocks: the ModuleList as long as the depth."""
    import torch

    depth = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == depth:
            return name, module
    raise errors.InvalidArgument(
        f"Cannot find the decoder blocks of this {type(model).__name__}; derive the student another "
        "way (--student-preset-size or --student NAME).")


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())
