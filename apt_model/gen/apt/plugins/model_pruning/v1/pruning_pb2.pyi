from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PruneRequest(_message.Message):
    __slots__ = ("name", "output_name", "strategy", "ratio", "scope", "semi_structured_2_4", "importance", "calibration_dataset", "calibration_path", "lottery_rounds", "lottery_steps", "rewind_step", "recovery_steps", "recovery_dataset", "recovery_path", "eval_path", "prune_heads", "prune_mlp", "prune_hidden", "hidden_ratio", "seed", "overwrite", "eval_dataset", "lottery_round_ratio", "learning_rate", "batch_size", "seq_len", "workers", "nodes", "sharding", "device")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    RATIO_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SEMI_STRUCTURED_2_4_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_DATASET_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_PATH_FIELD_NUMBER: _ClassVar[int]
    LOTTERY_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    LOTTERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    REWIND_STEP_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_DATASET_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_PATH_FIELD_NUMBER: _ClassVar[int]
    EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    PRUNE_HEADS_FIELD_NUMBER: _ClassVar[int]
    PRUNE_MLP_FIELD_NUMBER: _ClassVar[int]
    PRUNE_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_RATIO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_FIELD_NUMBER: _ClassVar[int]
    LOTTERY_ROUND_RATIO_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    output_name: str
    strategy: str
    ratio: float
    scope: str
    semi_structured_2_4: bool
    importance: str
    calibration_dataset: str
    calibration_path: str
    lottery_rounds: int
    lottery_steps: int
    rewind_step: int
    recovery_steps: int
    recovery_dataset: str
    recovery_path: str
    eval_path: str
    prune_heads: bool
    prune_mlp: bool
    prune_hidden: bool
    hidden_ratio: float
    seed: int
    overwrite: bool
    eval_dataset: str
    lottery_round_ratio: float
    learning_rate: float
    batch_size: int
    seq_len: int
    workers: int
    nodes: int
    sharding: str
    device: str
    def __init__(self, name: _Optional[str] = ..., output_name: _Optional[str] = ..., strategy: _Optional[str] = ..., ratio: _Optional[float] = ..., scope: _Optional[str] = ..., semi_structured_2_4: _Optional[bool] = ..., importance: _Optional[str] = ..., calibration_dataset: _Optional[str] = ..., calibration_path: _Optional[str] = ..., lottery_rounds: _Optional[int] = ..., lottery_steps: _Optional[int] = ..., rewind_step: _Optional[int] = ..., recovery_steps: _Optional[int] = ..., recovery_dataset: _Optional[str] = ..., recovery_path: _Optional[str] = ..., eval_path: _Optional[str] = ..., prune_heads: _Optional[bool] = ..., prune_mlp: _Optional[bool] = ..., prune_hidden: _Optional[bool] = ..., hidden_ratio: _Optional[float] = ..., seed: _Optional[int] = ..., overwrite: _Optional[bool] = ..., eval_dataset: _Optional[str] = ..., lottery_round_ratio: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., seq_len: _Optional[int] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class ListStrategiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListStrategiesResponse(_message.Message):
    __slots__ = ("strategies", "importances")
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCES_FIELD_NUMBER: _ClassVar[int]
    strategies: _containers.RepeatedScalarFieldContainer[str]
    importances: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, strategies: _Optional[_Iterable[str]] = ..., importances: _Optional[_Iterable[str]] = ...) -> None: ...

class PruneResult(_message.Message):
    __slots__ = ("model", "output", "strategy", "importance", "importance_source", "ratio_requested", "scope", "semi_structured_2_4", "before", "after", "sparsity_by_layer", "eval_text", "eval_blocks", "seq_len", "latency_batch", "torch_threads", "recovery_steps", "recovery_loss_last", "structured", "lottery", "note", "ratio_achieved", "speedup", "perplexity_ratio", "perplexity_note", "reload", "warnings", "eval_tokens")
    class SparsityByLayerEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: LayerSparsity
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[LayerSparsity, _Mapping]] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    RATIO_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    SEMI_STRUCTURED_2_4_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_BY_LAYER_FIELD_NUMBER: _ClassVar[int]
    EVAL_TEXT_FIELD_NUMBER: _ClassVar[int]
    EVAL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    LATENCY_BATCH_FIELD_NUMBER: _ClassVar[int]
    TORCH_THREADS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_STEPS_FIELD_NUMBER: _ClassVar[int]
    RECOVERY_LOSS_LAST_FIELD_NUMBER: _ClassVar[int]
    STRUCTURED_FIELD_NUMBER: _ClassVar[int]
    LOTTERY_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    RATIO_ACHIEVED_FIELD_NUMBER: _ClassVar[int]
    SPEEDUP_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_RATIO_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_NOTE_FIELD_NUMBER: _ClassVar[int]
    RELOAD_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EVAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    output: str
    strategy: str
    importance: str
    importance_source: str
    ratio_requested: float
    scope: str
    semi_structured_2_4: bool
    before: PruneMeasurement
    after: PruneMeasurement
    sparsity_by_layer: _containers.MessageMap[str, LayerSparsity]
    eval_text: str
    eval_blocks: int
    seq_len: int
    latency_batch: int
    torch_threads: int
    recovery_steps: int
    recovery_loss_last: float
    structured: StructuredReport
    lottery: LotteryReport
    note: str
    ratio_achieved: float
    speedup: float
    perplexity_ratio: float
    perplexity_note: str
    reload: ReloadCheck
    warnings: _containers.RepeatedScalarFieldContainer[str]
    eval_tokens: int
    def __init__(self, model: _Optional[str] = ..., output: _Optional[str] = ..., strategy: _Optional[str] = ..., importance: _Optional[str] = ..., importance_source: _Optional[str] = ..., ratio_requested: _Optional[float] = ..., scope: _Optional[str] = ..., semi_structured_2_4: _Optional[bool] = ..., before: _Optional[_Union[PruneMeasurement, _Mapping]] = ..., after: _Optional[_Union[PruneMeasurement, _Mapping]] = ..., sparsity_by_layer: _Optional[_Mapping[str, LayerSparsity]] = ..., eval_text: _Optional[str] = ..., eval_blocks: _Optional[int] = ..., seq_len: _Optional[int] = ..., latency_batch: _Optional[int] = ..., torch_threads: _Optional[int] = ..., recovery_steps: _Optional[int] = ..., recovery_loss_last: _Optional[float] = ..., structured: _Optional[_Union[StructuredReport, _Mapping]] = ..., lottery: _Optional[_Union[LotteryReport, _Mapping]] = ..., note: _Optional[str] = ..., ratio_achieved: _Optional[float] = ..., speedup: _Optional[float] = ..., perplexity_ratio: _Optional[float] = ..., perplexity_note: _Optional[str] = ..., reload: _Optional[_Union[ReloadCheck, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., eval_tokens: _Optional[int] = ...) -> None: ...

class PruneMeasurement(_message.Message):
    __slots__ = ("parameters", "prunable_sparsity", "latency_ms", "perplexity", "size_bytes")
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PRUNABLE_SPARSITY_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    parameters: ParameterCounts
    prunable_sparsity: float
    latency_ms: float
    perplexity: float
    size_bytes: int
    def __init__(self, parameters: _Optional[_Union[ParameterCounts, _Mapping]] = ..., prunable_sparsity: _Optional[float] = ..., latency_ms: _Optional[float] = ..., perplexity: _Optional[float] = ..., size_bytes: _Optional[int] = ...) -> None: ...

class ParameterCounts(_message.Message):
    __slots__ = ("total", "non_embedding", "nonzero")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    NON_EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    NONZERO_FIELD_NUMBER: _ClassVar[int]
    total: int
    non_embedding: int
    nonzero: int
    def __init__(self, total: _Optional[int] = ..., non_embedding: _Optional[int] = ..., nonzero: _Optional[int] = ...) -> None: ...

class LayerSparsity(_message.Message):
    __slots__ = ("shape", "sparsity")
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    shape: _containers.RepeatedScalarFieldContainer[int]
    sparsity: float
    def __init__(self, shape: _Optional[_Iterable[int]] = ..., sparsity: _Optional[float] = ...) -> None: ...

class StructuredReport(_message.Message):
    __slots__ = ("heads", "mlp", "hidden", "rounding")
    HEADS_FIELD_NUMBER: _ClassVar[int]
    MLP_FIELD_NUMBER: _ClassVar[int]
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    ROUNDING_FIELD_NUMBER: _ClassVar[int]
    heads: HeadPruning
    mlp: MlpPruning
    hidden: HiddenPruning
    rounding: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, heads: _Optional[_Union[HeadPruning, _Mapping]] = ..., mlp: _Optional[_Union[MlpPruning, _Mapping]] = ..., hidden: _Optional[_Union[HiddenPruning, _Mapping]] = ..., rounding: _Optional[_Iterable[str]] = ...) -> None: ...

class HeadPruning(_message.Message):
    __slots__ = ("unit", "query_heads", "kv_heads", "removed_fraction")
    UNIT_FIELD_NUMBER: _ClassVar[int]
    QUERY_HEADS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    unit: str
    query_heads: _containers.RepeatedScalarFieldContainer[int]
    kv_heads: _containers.RepeatedScalarFieldContainer[int]
    removed_fraction: float
    def __init__(self, unit: _Optional[str] = ..., query_heads: _Optional[_Iterable[int]] = ..., kv_heads: _Optional[_Iterable[int]] = ..., removed_fraction: _Optional[float] = ...) -> None: ...

class MlpPruning(_message.Message):
    __slots__ = ("intermediate_size", "removed_fraction")
    INTERMEDIATE_SIZE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    intermediate_size: _containers.RepeatedScalarFieldContainer[int]
    removed_fraction: float
    def __init__(self, intermediate_size: _Optional[_Iterable[int]] = ..., removed_fraction: _Optional[float] = ...) -> None: ...

class HiddenPruning(_message.Message):
    __slots__ = ("hidden_size", "removed_fraction", "channels_removed", "norm_gains", "norm_gain_source")
    class NormGainsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    HIDDEN_SIZE_FIELD_NUMBER: _ClassVar[int]
    REMOVED_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    NORM_GAINS_FIELD_NUMBER: _ClassVar[int]
    NORM_GAIN_SOURCE_FIELD_NUMBER: _ClassVar[int]
    hidden_size: _containers.RepeatedScalarFieldContainer[int]
    removed_fraction: float
    channels_removed: _containers.RepeatedScalarFieldContainer[int]
    norm_gains: _containers.ScalarMap[str, float]
    norm_gain_source: str
    def __init__(self, hidden_size: _Optional[_Iterable[int]] = ..., removed_fraction: _Optional[float] = ..., channels_removed: _Optional[_Iterable[int]] = ..., norm_gains: _Optional[_Mapping[str, float]] = ..., norm_gain_source: _Optional[str] = ...) -> None: ...

class LotteryReport(_message.Message):
    __slots__ = ("rounds", "round_ratio", "rewind_step", "schedule")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    ROUND_RATIO_FIELD_NUMBER: _ClassVar[int]
    REWIND_STEP_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    round_ratio: float
    rewind_step: int
    schedule: _containers.RepeatedCompositeFieldContainer[LotteryRound]
    def __init__(self, rounds: _Optional[int] = ..., round_ratio: _Optional[float] = ..., rewind_step: _Optional[int] = ..., schedule: _Optional[_Iterable[_Union[LotteryRound, _Mapping]]] = ...) -> None: ...

class LotteryRound(_message.Message):
    __slots__ = ("round", "sparsity", "train_steps")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    TRAIN_STEPS_FIELD_NUMBER: _ClassVar[int]
    round: int
    sparsity: float
    train_steps: int
    def __init__(self, round: _Optional[int] = ..., sparsity: _Optional[float] = ..., train_steps: _Optional[int] = ...) -> None: ...

class ReloadCheck(_message.Message):
    __slots__ = ("finite", "logits_shape", "parameters", "project_modules")
    FINITE_FIELD_NUMBER: _ClassVar[int]
    LOGITS_SHAPE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    PROJECT_MODULES_FIELD_NUMBER: _ClassVar[int]
    finite: bool
    logits_shape: _containers.RepeatedScalarFieldContainer[int]
    parameters: int
    project_modules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, finite: _Optional[bool] = ..., logits_shape: _Optional[_Iterable[int]] = ..., parameters: _Optional[int] = ..., project_modules: _Optional[_Iterable[str]] = ...) -> None: ...
