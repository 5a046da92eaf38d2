"""The domain description of a pruning run, validated before any job starts.

``PruneSpec.from_request`` checks every field that needs no model; the structured plan
(``apt_prune.structured.plan_structured``) checks the ratio against the model's head groups.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass

from apt_model import errors
from apt_model.modeling import distributed
from apt_model.store import validate_name
from apt_model.trust import PathPolicy

from apt_prune.importance import BUILTIN_IMPORTANCES, registered_importances

UNSTRUCTURED = ("magnitude", "taylor")
DEVICES = ("auto", "cpu", "cuda")
STRATEGIES = ("magnitude", "taylor", "lottery", "structured")
SCOPES = ("global", "layer")


@dataclass(frozen=True)
class PruneSpec:
    name: str                         # the store model to prune (read only)
    output_name: str                  # the new store model
    strategy: str                     # one of STRATEGIES or a registered importance (unstructured)
    ratio: float                      # fraction removed, 0 < ratio < 1
    scope: str = "global"             # unstructured ranking: over all layers, or per layer
    semi_structured_2_4: bool = False
    importance: str = "magnitude"     # the score used to rank weights / heads / channels
    calibration_dataset: str = ""
    calibration_path: str = ""
    lottery_rounds: int = 3
    lottery_round_ratio: float = 0.0  # 0 = derived so that `rounds` rounds reach `ratio`
    lottery_steps: int = 50           # training steps per round
    rewind_step: int = 5              # surviving weights rewind to the weights after this many steps
    recovery_steps: int = 0
    recovery_dataset: str = ""
    recovery_path: str = ""
    eval_dataset: str = ""
    eval_path: str = ""
    prune_heads: bool = True
    prune_mlp: bool = True
    prune_hidden: bool = True         # structured: narrow the residual stream (hidden_size) too
    hidden_ratio: float = 0.0         # share of residual channels removed; 0 = what makes the model `ratio` smaller
    learning_rate: float = 3e-4
    batch_size: int = 8
    seq_len: int = 128                # tokens per sequence
    seed: int = 0
    overwrite: bool = False
    workers: int = 1                  # data-parallel ranks of lottery and recovery training (per node)
    nodes: int = 1                    # machines of ``workers`` ranks each: > 1 is a Kubeflow PyTorchJob
    sharding: str = "ddp"             # training with workers x nodes > 1: ddp (whole copies) or fsdp (FSDP2 fully_shard)
    device: str = "auto"              # where lottery and recovery train: cuda, or the CPU (cpu, auto)

    @property
    def unstructured(self) -> bool:
        return self.strategy != "structured"

    @property
    def needs_training_text(self) -> bool:
        return self.strategy == "lottery" or self.recovery_steps > 0

    @property
    def round_ratio(self) -> float:
        """Fraction of the surviving weights each lottery round removes."""
        if self.lottery_round_ratio:
            return self.lottery_round_ratio
        return 1.0 - (1.0 - self.ratio) ** (1.0 / self.lottery_rounds)

    @property
    def rounds(self) -> int:
        """Lottery rounds: as given, or as many as `round_ratio` needs to reach `ratio`."""
        if self.lottery_round_ratio:
            return max(1, math.ceil(math.log(1.0 - self.ratio) / math.log(1.0 - self.lottery_round_ratio) - 1e-9))
        return self.lottery_rounds

    def lineage(self) -> dict:
        data = asdict(self)
        for key in ("overwrite", "output_name", "name"):
            data.pop(key)
        return data

    @classmethod
    def from_request(cls, r) -> "PruneSpec":
        name = validate_name(r.name, "model")
        custom = registered_importances()
        strategy, ratio = _strategy_and_ratio(r, custom)
        output = r.output_name or f"{name}-{strategy}{round(ratio * 100)}"
        validate_name(output, "model")
        if output == name:
            raise errors.InvalidArgument("output_name must differ from the pruned model's name; the input is never modified.")
        scope = r.scope.strip().lower() or "global"
        if scope not in SCOPES:
            raise errors.InvalidArgument(f"Unknown scope {r.scope!r}; use global or layer.")
        importance = _importance(r, strategy, custom)
        if r.semi_structured_2_4:
            if strategy == "structured":
                raise errors.InvalidArgument("The 2:4 pattern is unstructured sparsity; it does not combine with structured.")
            if abs(ratio - 0.5) > 1e-9:
                raise errors.InvalidArgument(f"The 2:4 pattern removes exactly half the weights; use ratio 0.5, not {ratio}.")
        parts = _structured_parts(r, strategy)
        # the ranges of lottery_rounds, lottery_steps, rewind_step, recovery_steps, batch_size and
        # seq_len are rules on PruneRequest's fields (pruning.proto), checked before this runs
        round_ratio = _lottery_round_ratio(r, ratio)
        batch_size = r.batch_size or 8
        lr = float(r.learning_rate) or 3e-4
        if not (0.0 < lr < 1.0):
            raise errors.InvalidArgument(f"learning_rate must be in (0, 1), got {r.learning_rate}.")
        spec = cls(
            name=name, output_name=output, strategy=strategy, ratio=ratio, scope=scope,
            semi_structured_2_4=bool(r.semi_structured_2_4), importance=importance,
            calibration_dataset=_dataset(r.calibration_dataset), calibration_path=r.calibration_path,
            lottery_rounds=r.lottery_rounds or 3, lottery_round_ratio=round_ratio,
            lottery_steps=r.lottery_steps or 50, rewind_step=r.rewind_step if r.rewind_step else 5,
            recovery_steps=r.recovery_steps, recovery_dataset=_dataset(r.recovery_dataset),
            recovery_path=r.recovery_path, eval_dataset=_dataset(r.eval_dataset), eval_path=r.eval_path,
            **parts, learning_rate=lr, batch_size=batch_size,
            seq_len=r.seq_len or 128, seed=int(r.seed), overwrite=bool(r.overwrite),
            **_layout(r, batch_size), sharding=distributed.require_sharding(r.sharding), device=_device(r.device),
        )
        spec.check_text_sources()
        for field_name, value in (("workers", spec.workers), ("nodes", spec.nodes)):
            if value > 1 and not spec.needs_training_text:
                raise errors.InvalidArgument(
                    f"{field_name} ({value}) splits lottery and recovery training over ranks, and this run trains "
                    f"nothing; drop --{field_name}, or give --recovery-steps N (or the lottery strategy).",
                    violations=[(field_name, "this run trains nothing")])
        return spec

    def with_host_paths(self, paths: PathPolicy) -> "PruneSpec":
        """The text file fields resolved inside what callers may name (apt_model.trust)."""
        return dataclasses.replace(
            self, calibration_path=paths.resolve_optional(self.calibration_path, "calibration_path"),
            recovery_path=paths.resolve_optional(self.recovery_path, "recovery_path"),
            eval_path=paths.resolve_optional(self.eval_path, "eval_path"))

    def check_text_sources(self) -> None:
        train = self.recovery_dataset or self.recovery_path
        calib = self.calibration_dataset or self.calibration_path
        if self.needs_training_text and not train:
            what = "lottery training" if self.strategy == "lottery" else "the recovery fine-tune"
            raise errors.InvalidArgument(
                f"Give training text for {what}: recovery_dataset (a store dataset) or recovery_path (a file).")
        if self.importance == "taylor" and not (calib or train):
            raise errors.InvalidArgument(
                "Taylor importance needs calibration text for its gradients: give calibration_dataset or "
                "calibration_path (or recovery text, which is then used).")
        if self.strategy == "lottery" and self.rewind_step >= self.lottery_steps:
            raise errors.InvalidArgument(
                f"rewind_step ({self.rewind_step}) must come before the end of a round ({self.lottery_steps} steps).")



def _strategy_and_ratio(r, custom) -> tuple[str, float]:
    """A known strategy (built-in or a registered importance) and the share of weights it removes."""
    strategy = r.strategy.strip().lower()
    if not strategy:
        raise errors.InvalidArgument("Give a strategy: magnitude, taylor, lottery or structured.")
    if strategy not in STRATEGIES and strategy not in custom:
        known = ", ".join(STRATEGIES + tuple(sorted(custom)))
        raise errors.InvalidArgument(f"Unknown strategy {strategy!r}; choose one of: {known}.")
    ratio = float(r.ratio)
    if not (0.0 < ratio < 1.0) or math.isnan(ratio):
        raise errors.InvalidArgument(
            f"ratio must be a fraction strictly between 0 and 1 (the share removed), got {r.ratio}; "
            "e.g. 0.5 removes half.")
    return strategy, ratio


def _importance(r, strategy: str, custom) -> str:
    """The score that ranks weights: the strategy's own for unstructured and lottery pruning; for
    structured pruning the one the request names (magnitude by default)."""
    importance = r.importance.strip().lower()
    if strategy in UNSTRUCTURED or strategy in custom:
        if importance and importance != strategy:
            raise errors.InvalidArgument(
                f"importance applies to the structured strategy; strategy {strategy!r} already names its score.")
        return strategy
    if strategy == "lottery":
        if importance and importance != "magnitude":
            raise errors.InvalidArgument("The lottery strategy ranks by magnitude; leave importance empty.")
        return "magnitude"
    importance = importance or "magnitude"
    if importance not in BUILTIN_IMPORTANCES and importance not in custom:
        known = ", ".join(tuple(BUILTIN_IMPORTANCES) + tuple(sorted(custom)))
        raise errors.InvalidArgument(f"Unknown importance {importance!r}; choose one of: {known}.")
    return importance


def _structured_parts(r, strategy: str) -> dict:
    """Which parts structured pruning cuts (all three when none is named) and the width's own ratio."""
    heads, mlp, hidden = bool(r.prune_heads), bool(r.prune_mlp), bool(r.prune_hidden)
    if not (heads or mlp or hidden):
        heads = mlp = hidden = True  # none named: prune all three, as the docs say
    hidden_ratio = float(r.hidden_ratio)
    if hidden_ratio:
        if strategy != "structured":
            raise errors.InvalidArgument("hidden_ratio applies to the structured strategy only.")
        if not hidden:
            raise errors.InvalidArgument(
                "hidden_ratio is set but the width is not pruned: set prune_hidden too (or leave all of "
                "prune_heads, prune_mlp and prune_hidden unset to prune all three).")
        if not (0.0 < hidden_ratio < 1.0) or math.isnan(hidden_ratio):
            raise errors.InvalidArgument(
                f"hidden_ratio must be a fraction strictly between 0 and 1, got {r.hidden_ratio}; "
                "leave it 0 to use ratio.")
    return {"prune_heads": heads, "prune_mlp": mlp, "prune_hidden": hidden, "hidden_ratio": hidden_ratio}


def _lottery_round_ratio(r, ratio: float) -> float:
    """The share each lottery round removes; 0 = derived from lottery_rounds."""
    round_ratio = float(r.lottery_round_ratio)
    if round_ratio and not (0.0 < round_ratio < 1.0):
        raise errors.InvalidArgument(f"lottery_round_ratio must be in (0, 1), got {round_ratio}.")
    if round_ratio and r.lottery_rounds:
        raise errors.InvalidArgument("Give lottery_rounds or lottery_round_ratio, not both: one sets the other.")
    if round_ratio and round_ratio > ratio:
        raise errors.InvalidArgument(
            f"lottery_round_ratio {round_ratio} exceeds the final ratio {ratio}; the first round would overshoot.")
    return round_ratio

def _layout(r, batch_size: int) -> dict:
    """The data-parallel ranks per machine and the machines (each of the workers x nodes ranks trains
    an equal share of the global batch). nodes > 1 needs the kubernetes deployer: the service checks
    it (distributed.refuse_multi_node)."""
    workers, nodes = r.workers or 1, r.nodes or 1
    for field_name, why in distributed.check_layout(batch_size, workers, nodes):
        raise errors.InvalidArgument(why + ".", violations=[(field_name, why)])
    return {"workers": workers, "nodes": nodes}


def _device(device: str) -> str:
    device = device or "auto"
    if device not in DEVICES:
        raise errors.InvalidArgument(f"Unknown device {device!r}; use auto, cpu or cuda.",
                                     violations=[("device", "not one of auto, cpu, cuda")])
    return device


def _dataset(name: str) -> str:
    return validate_name(name, "dataset") if name else ""
