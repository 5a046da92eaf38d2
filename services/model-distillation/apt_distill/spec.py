"""The domain description of a distillation run, validated before any job starts.

``DistillSpec.from_request`` turns the proto into a typed spec and checks every field
that can be checked without loading a model; ``apt_distill.models.check_spec_against_models``
checks the rest (layer indices, vocabularies) against the configs in the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from apt_model import errors
from apt_model.modeling import distributed
from apt_model.modeling.preset import SIZES
from apt_model.store import validate_name

BUILTIN_STRATEGIES = ("response", "feature", "relation")
KL_DIRECTIONS = ("forward", "reverse")
FEATURE_LOSSES = ("mse", "cosine")
RELATIONS = ("sample", "token")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DistillSpec:
    teacher: str                      # store model, frozen
    output_name: str                  # store name of the result
    strategies: tuple[str, ...]       # built-in and/or custom loss names, in the given order
    student: str = ""                 # store model, or
    student_preset_size: str = ""     # apt preset size, or
    student_layers: int = 0           # derive: this many teacher layers
    temperature: float = 1.0          # T > 0
    alpha: float = 0.5                # KD weight vs hard-label weight (1 - alpha)
    kl_direction: str = "forward"
    top_k: int = 0                    # 0 = full vocabulary
    layer_map: tuple[tuple[int, int], ...] = ()  # (student block, teacher block), 0-based
    feature_loss: str = "mse"
    relation: str = "sample"
    dataset: str = ""
    corpus_paths: tuple[str, ...] = ()
    seq_len: int = 128                # tokens per sample
    batch_size: int = 8
    max_steps: int = 200
    learning_rate: float = 1e-3
    warmup_steps: int = 10
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    loss_weights: tuple[tuple[str, float], ...] = ()  # extra-term name -> weight
    device: str = "auto"
    eval_every: int = 50
    checkpoint_every: int = 100
    custom_losses: tuple[str, ...] = field(default=())  # the strategies that are entry points
    workers: int = 1                  # data-parallel ranks (apt_model.modeling.distributed)
    nodes: int = 1                    # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"             # with workers > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)

    @property
    def student_source(self) -> str:
        if self.student:
            return f"store:{self.student}"
        if self.student_preset_size:
            return f"preset:{self.student_preset_size}"
        return f"derived:{self.student_layers}-layers"

    @property
    def uses(self) -> frozenset[str]:
        return frozenset(self.strategies)

    def weight(self, term: str) -> float:
        return dict(self.loss_weights).get(term, 1.0)

    def lineage(self) -> dict:
        """What apt.json records as the run's parameters (resume/overwrite are not part of it)."""
        data = asdict(self)
        for key in ("resume", "overwrite", "output_name", "custom_losses"):
            data.pop(key)
        data["layer_map"] = {str(s): t for s, t in self.layer_map}
        data["loss_weights"] = dict(self.loss_weights)
        data["strategies"] = list(self.strategies)
        data["corpus_paths"] = list(self.corpus_paths)
        data["student_source"] = self.student_source
        return data

    @classmethod
    def from_request(cls, req, registered_losses: frozenset[str] = frozenset()) -> "DistillSpec":
        """Validate a ``DistillRequest``; raises InvalidArgument naming the bad field."""
        validate_name(req.teacher, "teacher model")
        validate_name(req.output_name, "output model")
        student = _student(req)
        strategies = _strategies(req, registered_losses)
        losses = _losses(req, strategies)
        return cls(
            teacher=req.teacher, output_name=req.output_name, strategies=strategies,
            **student, **losses, **_training(req, strategies),
            seed=int(req.seed), resume=req.resume, overwrite=req.overwrite,
            custom_losses=tuple(s for s in strategies if s not in BUILTIN_STRATEGIES),
        )


def _student(req) -> dict:
    """Exactly one of a store model, a preset size or a layer count derived from the teacher."""
    if sum([bool(req.student), bool(req.student_preset_size), req.student_layers != 0]) != 1:
        raise errors.InvalidArgument(
            "Give exactly one student: --student NAME (a store model), --student-preset-size SIZE "
            f"(an apt preset: {', '.join(SIZES)}) or --student-layers N (derived from the teacher).")
    if req.student:
        validate_name(req.student, "student model")
        if req.student == req.teacher:
            raise errors.InvalidArgument("The student must differ from the teacher.")
    if req.student_preset_size and req.student_preset_size not in SIZES:
        raise errors.InvalidArgument(
            f"Unknown student preset size {req.student_preset_size!r}; choose one of {', '.join(SIZES)}.")
    if req.student_layers < 0:
        raise errors.InvalidArgument(f"student_layers must be positive, got {req.student_layers}.")
    return {"student": req.student, "student_preset_size": req.student_preset_size,
            "student_layers": req.student_layers}


def _strategies(req, registered_losses: frozenset[str]) -> tuple[str, ...]:
    """The strategies, de-duplicated in the given order: built-in ones and registered losses."""
    strategies = tuple(dict.fromkeys(req.strategies))
    if not strategies:
        raise errors.InvalidArgument(
            "Choose at least one strategy: response, feature, relation"
            + (f" or a registered loss ({', '.join(sorted(registered_losses))})." if registered_losses else "."))
    unknown = [s for s in strategies if s not in BUILTIN_STRATEGIES and s not in registered_losses]
    if unknown:
        known = [*BUILTIN_STRATEGIES, *sorted(registered_losses)]
        raise errors.InvalidArgument(
            f"Unknown strategy {unknown[0]!r}; choose from {', '.join(known)} (custom losses are "
            "registered in the 'apt.distillation.loss' entry-point group).")
    return strategies


def _losses(req, strategies: tuple[str, ...]) -> dict:
    """The loss settings: temperature, alpha, KL direction, top-k, feature and relation terms, weights."""
    temperature = req.temperature if req.HasField("temperature") else 1.0
    if not math.isfinite(temperature) or temperature <= 0:
        raise errors.InvalidArgument(f"temperature must be > 0, got {req.temperature}.")
    alpha = req.alpha if req.HasField("alpha") else 0.5
    if not math.isfinite(alpha) or not 0.0 <= alpha <= 1.0:
        raise errors.InvalidArgument(f"alpha must be in [0, 1], got {req.alpha}.")
    if req.top_k < 0:
        raise errors.InvalidArgument(f"top_k must be >= 0 (0 = the whole vocabulary), got {req.top_k}.")
    layer_map = tuple(sorted((int(s), int(t)) for s, t in req.layer_map.items()))
    if layer_map and "feature" not in strategies:
        raise errors.InvalidArgument("layer_map is only used by the 'feature' strategy; add it or drop the map.")
    bad = [(s, t) for s, t in layer_map if s < 0 or t < 0]
    if bad:
        raise errors.InvalidArgument(f"Unknown layer mapping {bad[0][0]}:{bad[0][1]}: layers are 0-based block indices.")
    return {"temperature": float(temperature), "alpha": float(alpha),
            "kl_direction": _choice("kl_direction", req.kl_direction or "forward", KL_DIRECTIONS),
            "top_k": req.top_k, "layer_map": layer_map,
            "feature_loss": _choice("feature_loss", req.feature_loss or "mse", FEATURE_LOSSES),
            "relation": _choice("relation", req.relation or "sample", RELATIONS),
            "loss_weights": _loss_weights(req, strategies)}


def _loss_weights(req, strategies: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
    """Weights of the extra terms (feature, relation, custom losses); the response term has alpha."""
    extra_terms = {"feature", "relation", *(s for s in strategies if s not in BUILTIN_STRATEGIES)}
    weights = tuple(sorted(req.loss_weights.items()))
    for name, w in weights:
        if name not in extra_terms:
            raise errors.InvalidArgument(
                f"loss_weights has {name!r}; weights apply to feature, relation and custom losses "
                "(the response term is weighted by alpha).")
        if not math.isfinite(w) or w < 0:
            raise errors.InvalidArgument(f"loss weight {name}={w} must be a finite number >= 0.")
    return weights


def _training(req, strategies: tuple[str, ...]) -> dict:
    """Data, batch, schedule, device and data-parallel layout."""
    if not req.dataset and not req.corpus_paths:
        raise errors.InvalidArgument("Give training text: --dataset NAME (a store dataset) or --corpus-paths FILE.")
    if req.dataset:
        validate_name(req.dataset, "dataset")
    seq_len = _positive("seq_len", req.seq_len, 128)
    if seq_len < 2:
        raise errors.InvalidArgument(f"seq_len must be at least 2 tokens, got {seq_len}.")
    batch_size = _positive("batch_size", req.batch_size, 8)
    if "relation" in strategies and (req.relation or "sample") == "sample" and batch_size < 3:
        raise errors.InvalidArgument(
            f"Sample relations (RKD) compare the samples of a batch: batch_size must be >= 3, got {batch_size}.")
    max_steps = _positive("max_steps", req.max_steps, 200)
    lr = req.learning_rate if req.learning_rate != 0 else 1e-3
    if not math.isfinite(lr) or lr <= 0:
        raise errors.InvalidArgument(f"learning_rate must be > 0, got {req.learning_rate}.")
    warmup = req.warmup_steps if req.warmup_steps > 0 else max(1, max_steps // 20)
    if req.warmup_steps < 0 or warmup >= max_steps and max_steps > 1:
        raise errors.InvalidArgument(f"warmup_steps must be in [0, max_steps), got {req.warmup_steps}.")
    workers, nodes = req.workers or 1, req.nodes or 1
    # nodes > 1 needs the kubernetes deployer: the service checks it (distributed.refuse_multi_node)
    for field_name, why in distributed.check_layout(batch_size, workers, nodes):
        raise errors.InvalidArgument(why + ".", violations=[(field_name, why)])
    sharding = distributed.require_sharding(req.sharding)
    return {"dataset": req.dataset, "corpus_paths": tuple(req.corpus_paths), "seq_len": seq_len,
            "batch_size": batch_size, "max_steps": max_steps, "learning_rate": float(lr), "warmup_steps": warmup,
            "device": _choice("device", req.device or "auto", DEVICES),
            "eval_every": _positive("eval_every", req.eval_every, 50),
            "checkpoint_every": _positive("checkpoint_every", req.checkpoint_every, 100), "workers": workers,
            "nodes": nodes,
            "sharding": sharding}


def _choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise errors.InvalidArgument(f"{name} {value!r} is not one of: {', '.join(choices)}.")
    return value


def _positive(name: str, value: int, default: int) -> int:
    if value < 0:
        raise errors.InvalidArgument(f"{name} must be > 0 (0 = default {default}), got {value}.")
    return value or default

