from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class PruneRequest(_message.Message):
    __slots__ = ("name", "output_name", "strategy", "ratio", "scope", "semi_structured_2_4", "importance", "calibration_dataset", "calibration_path", "lottery_rounds", "lottery_steps", "rewind_step", "recovery_steps", "recovery_dataset", "recovery_path", "eval_path", "prune_heads", "prune_mlp", "prune_hidden", "hidden_ratio", "seed", "overwrite", "eval_dataset", "lottery_round_ratio", "learning_rate", "batch_size", "seq_len")
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
    def __init__(self, name: _Optional[str] = ..., output_name: _Optional[str] = ..., strategy: _Optional[str] = ..., ratio: _Optional[float] = ..., scope: _Optional[str] = ..., semi_structured_2_4: _Optional[bool] = ..., importance: _Optional[str] = ..., calibration_dataset: _Optional[str] = ..., calibration_path: _Optional[str] = ..., lottery_rounds: _Optional[int] = ..., lottery_steps: _Optional[int] = ..., rewind_step: _Optional[int] = ..., recovery_steps: _Optional[int] = ..., recovery_dataset: _Optional[str] = ..., recovery_path: _Optional[str] = ..., eval_path: _Optional[str] = ..., prune_heads: _Optional[bool] = ..., prune_mlp: _Optional[bool] = ..., prune_hidden: _Optional[bool] = ..., hidden_ratio: _Optional[float] = ..., seed: _Optional[int] = ..., overwrite: _Optional[bool] = ..., eval_dataset: _Optional[str] = ..., lottery_round_ratio: _Optional[float] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., seq_len: _Optional[int] = ...) -> None: ...

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
