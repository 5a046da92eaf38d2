"""What one StartProcess run does, checked before its job starts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from apt_model import errors
from apt_model.store import validate_name

from apt_data.clean import cleaner

EVAL_SUFFIX = "-eval"
MAX_WORKERS = 64  # the proto's rule; a pool larger than the machine's cores only adds start-up time


@dataclass(frozen=True)
class ProcessSpec:
    name: str                          # the store dataset written
    paths: tuple[str, ...] = ()        # host paths, already resolved inside APT_DATA_ROOTS
    dataset: str = ""                  # a store dataset read
    text_field: str = "text"
    cleaning: str = "basic"
    dedup: bool = False
    threshold: float = 0.8             # Jaccard of shingle sets
    num_perm: int = 128
    eval_fraction: float = 0.0         # of near-duplicate families, into <name>-eval
    quality_filters: bool = True
    tokenizer_model: str = ""
    seed: int = 0
    html_extractor: str = "main"
    overwrite: bool = False
    confirm: bool = True               # exact-Jaccard confirmation of MinHash candidates
    workers: int = 1                   # processes reading the shards (never changes what is written)

    @property
    def eval_name(self) -> str:
        return f"{self.name}{EVAL_SUFFIX}" if self.eval_fraction > 0 else ""

    @property
    def needs_families(self) -> bool:
        return self.dedup or self.eval_fraction > 0

    def lineage(self) -> dict:
        data = asdict(self)
        for key in ("name", "overwrite", "workers"):
            data.pop(key)
        data["paths"] = list(self.paths)
        return data

    @classmethod
    def from_request(cls, request) -> "ProcessSpec":
        """The request with the proto's defaults applied; InvalidArgument for what the rules cannot say."""
        spec = cls(name=validate_name(request.name, "dataset"), paths=tuple(request.paths),
                   dataset=request.dataset, text_field=request.text_field or "text",
                   cleaning=request.cleaning or "basic", dedup=request.dedup,
                   threshold=request.threshold or 0.8, num_perm=request.num_perm or 128,
                   eval_fraction=request.eval_fraction, quality_filters=not request.no_quality_filters,
                   tokenizer_model=request.tokenizer_model, seed=request.seed,
                   html_extractor=request.html_extractor or "main", overwrite=request.overwrite,
                   confirm=not request.no_confirm, workers=request.workers or 1)
        if not spec.paths and not spec.dataset:
            raise errors.InvalidArgument("Nothing to process: pass --paths FILE (repeatable) or --dataset NAME.")
        if spec.dataset:
            validate_name(spec.dataset, "dataset")
        if spec.eval_name:
            validate_name(spec.eval_name, "dataset")
        if not 1 <= spec.workers <= MAX_WORKERS:
            raise errors.InvalidArgument(f"workers must be between 1 and {MAX_WORKERS}; got {spec.workers}.",
                                         field="workers")
        cleaner(spec.cleaning)  # an unknown strategy is refused before the job starts
        return spec
