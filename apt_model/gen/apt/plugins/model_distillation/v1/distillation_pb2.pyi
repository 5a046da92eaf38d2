from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class DistillRequest(_message.Message):
    __slots__ = ("teacher", "student", "student_preset_size", "student_layers", "output_name", "strategies", "temperature", "alpha", "kl_direction", "top_k", "layer_map", "feature_loss", "relation", "dataset", "corpus_paths", "seq_len", "batch_size", "max_steps", "learning_rate", "seed", "resume", "overwrite", "loss_weights", "device", "eval_every", "checkpoint_every", "warmup_steps", "workers", "nodes", "sharding")
    class LayerMapEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class LossWeightsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    TEACHER_FIELD_NUMBER: _ClassVar[int]
    STUDENT_FIELD_NUMBER: _ClassVar[int]
    STUDENT_PRESET_SIZE_FIELD_NUMBER: _ClassVar[int]
    STUDENT_LAYERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    TEMPERATURE_FIELD_NUMBER: _ClassVar[int]
    ALPHA_FIELD_NUMBER: _ClassVar[int]
    KL_DIRECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    LAYER_MAP_FIELD_NUMBER: _ClassVar[int]
    FEATURE_LOSS_FIELD_NUMBER: _ClassVar[int]
    RELATION_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    CORPUS_PATHS_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    LOSS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    EVAL_EVERY_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    teacher: str
    student: str
    student_preset_size: str
    student_layers: int
    output_name: str
    strategies: _containers.RepeatedScalarFieldContainer[str]
    temperature: float
    alpha: float
    kl_direction: str
    top_k: int
    layer_map: _containers.ScalarMap[int, int]
    feature_loss: str
    relation: str
    dataset: str
    corpus_paths: _containers.RepeatedScalarFieldContainer[str]
    seq_len: int
    batch_size: int
    max_steps: int
    learning_rate: float
    seed: int
    resume: bool
    overwrite: bool
    loss_weights: _containers.ScalarMap[str, float]
    device: str
    eval_every: int
    checkpoint_every: int
    warmup_steps: int
    workers: int
    nodes: int
    sharding: str
    def __init__(self, teacher: _Optional[str] = ..., student: _Optional[str] = ..., student_preset_size: _Optional[str] = ..., student_layers: _Optional[int] = ..., output_name: _Optional[str] = ..., strategies: _Optional[_Iterable[str]] = ..., temperature: _Optional[float] = ..., alpha: _Optional[float] = ..., kl_direction: _Optional[str] = ..., top_k: _Optional[int] = ..., layer_map: _Optional[_Mapping[int, int]] = ..., feature_loss: _Optional[str] = ..., relation: _Optional[str] = ..., dataset: _Optional[str] = ..., corpus_paths: _Optional[_Iterable[str]] = ..., seq_len: _Optional[int] = ..., batch_size: _Optional[int] = ..., max_steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., seed: _Optional[int] = ..., resume: _Optional[bool] = ..., overwrite: _Optional[bool] = ..., loss_weights: _Optional[_Mapping[str, float]] = ..., device: _Optional[str] = ..., eval_every: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., warmup_steps: _Optional[int] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class DistillResult(_message.Message):
    __slots__ = ("model", "eval_ppl", "teacher_eval_ppl", "steps", "tokens_seen", "student_params", "teacher_params", "loss", "ce_loss", "kd_loss", "feature_loss", "relation_loss", "custom_losses", "warnings")
    class CustomLossesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    EVAL_PPL_FIELD_NUMBER: _ClassVar[int]
    TEACHER_EVAL_PPL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SEEN_FIELD_NUMBER: _ClassVar[int]
    STUDENT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    TEACHER_PARAMS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    CE_LOSS_FIELD_NUMBER: _ClassVar[int]
    KD_LOSS_FIELD_NUMBER: _ClassVar[int]
    FEATURE_LOSS_FIELD_NUMBER: _ClassVar[int]
    RELATION_LOSS_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_LOSSES_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    model: str
    eval_ppl: float
    teacher_eval_ppl: float
    steps: int
    tokens_seen: int
    student_params: int
    teacher_params: int
    loss: float
    ce_loss: float
    kd_loss: float
    feature_loss: float
    relation_loss: float
    custom_losses: _containers.ScalarMap[str, float]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, model: _Optional[str] = ..., eval_ppl: _Optional[float] = ..., teacher_eval_ppl: _Optional[float] = ..., steps: _Optional[int] = ..., tokens_seen: _Optional[int] = ..., student_params: _Optional[int] = ..., teacher_params: _Optional[int] = ..., loss: _Optional[float] = ..., ce_loss: _Optional[float] = ..., kd_loss: _Optional[float] = ..., feature_loss: _Optional[float] = ..., relation_loss: _Optional[float] = ..., custom_losses: _Optional[_Mapping[str, float]] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
