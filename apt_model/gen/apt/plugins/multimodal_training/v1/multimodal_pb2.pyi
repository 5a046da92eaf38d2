from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateDatasetRequest(_message.Message):
    __slots__ = ("name", "manifest_path", "modalities", "image_size", "sample_rate", "n_mels", "max_audio_seconds", "truncate_audio", "overwrite")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_PATH_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    N_MELS_FIELD_NUMBER: _ClassVar[int]
    MAX_AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    name: str
    manifest_path: str
    modalities: _containers.RepeatedScalarFieldContainer[str]
    image_size: int
    sample_rate: int
    n_mels: int
    max_audio_seconds: float
    truncate_audio: bool
    overwrite: bool
    def __init__(self, name: _Optional[str] = ..., manifest_path: _Optional[str] = ..., modalities: _Optional[_Iterable[str]] = ..., image_size: _Optional[int] = ..., sample_rate: _Optional[int] = ..., n_mels: _Optional[int] = ..., max_audio_seconds: _Optional[float] = ..., truncate_audio: _Optional[bool] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps", "learning_rate", "stage", "batch_size", "seed", "resume", "overwrite", "device", "module_learning_rates", "freeze", "encoder_width", "encoder_layers", "patch_size", "checkpoint_every", "warmup_steps", "workers", "nodes", "sharding")
    class ModuleLearningRatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MODULE_LEARNING_RATES_FIELD_NUMBER: _ClassVar[int]
    FREEZE_FIELD_NUMBER: _ClassVar[int]
    ENCODER_WIDTH_FIELD_NUMBER: _ClassVar[int]
    ENCODER_LAYERS_FIELD_NUMBER: _ClassVar[int]
    PATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_EVERY_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    learning_rate: float
    stage: str
    batch_size: int
    seed: int
    resume: bool
    overwrite: bool
    device: str
    module_learning_rates: _containers.ScalarMap[str, float]
    freeze: _containers.RepeatedScalarFieldContainer[str]
    encoder_width: int
    encoder_layers: int
    patch_size: int
    checkpoint_every: int
    warmup_steps: int
    workers: int
    nodes: int
    sharding: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ..., learning_rate: _Optional[float] = ..., stage: _Optional[str] = ..., batch_size: _Optional[int] = ..., seed: _Optional[int] = ..., resume: _Optional[bool] = ..., overwrite: _Optional[bool] = ..., device: _Optional[str] = ..., module_learning_rates: _Optional[_Mapping[str, float]] = ..., freeze: _Optional[_Iterable[str]] = ..., encoder_width: _Optional[int] = ..., encoder_layers: _Optional[int] = ..., patch_size: _Optional[int] = ..., checkpoint_every: _Optional[int] = ..., warmup_steps: _Optional[int] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ...) -> None: ...

class EvaluateRequest(_message.Message):
    __slots__ = ("model", "dataset", "max_rows", "device", "max_new_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    MAX_ROWS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    max_rows: int
    device: str
    max_new_tokens: int
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., max_rows: _Optional[int] = ..., device: _Optional[str] = ..., max_new_tokens: _Optional[int] = ...) -> None: ...

class ExportLlavaRequest(_message.Message):
    __slots__ = ("model", "output_name", "overwrite")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    model: str
    output_name: str
    overwrite: bool
    def __init__(self, model: _Optional[str] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class CreateDatasetResult(_message.Message):
    __slots__ = ("warnings", "dataset", "rows", "rejected", "images", "audios", "resampled", "downmixed", "truncated", "audio_seconds", "bytes", "videos")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    AUDIOS_FIELD_NUMBER: _ClassVar[int]
    RESAMPLED_FIELD_NUMBER: _ClassVar[int]
    DOWNMIXED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    dataset: str
    rows: int
    rejected: int
    images: int
    audios: int
    resampled: int
    downmixed: int
    truncated: int
    audio_seconds: float
    bytes: int
    videos: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., dataset: _Optional[str] = ..., rows: _Optional[int] = ..., rejected: _Optional[int] = ..., images: _Optional[int] = ..., audios: _Optional[int] = ..., resampled: _Optional[int] = ..., downmixed: _Optional[int] = ..., truncated: _Optional[int] = ..., audio_seconds: _Optional[float] = ..., bytes: _Optional[int] = ..., videos: _Optional[int] = ...) -> None: ...

class TrainResult(_message.Message):
    __slots__ = ("warnings", "model", "steps", "loss", "first_loss", "tokens_seen", "trainable_params", "added_tokens")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    FIRST_LOSS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SEEN_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_PARAMS_FIELD_NUMBER: _ClassVar[int]
    ADDED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    steps: int
    loss: float
    first_loss: float
    tokens_seen: int
    trainable_params: int
    added_tokens: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., steps: _Optional[int] = ..., loss: _Optional[float] = ..., first_loss: _Optional[float] = ..., tokens_seen: _Optional[int] = ..., trainable_params: _Optional[int] = ..., added_tokens: _Optional[_Iterable[str]] = ...) -> None: ...

class EvaluateResult(_message.Message):
    __slots__ = ("warnings", "rows", "candidates", "retrieval_accuracy", "text_only_accuracy", "per_modality_accuracy", "exact_match", "per_modality_exact_match")
    class PerModalityAccuracyEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    class PerModalityExactMatchEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TEXT_ONLY_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    PER_MODALITY_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    PER_MODALITY_EXACT_MATCH_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    rows: int
    candidates: int
    retrieval_accuracy: float
    text_only_accuracy: float
    per_modality_accuracy: _containers.ScalarMap[str, float]
    exact_match: float
    per_modality_exact_match: _containers.ScalarMap[str, float]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., rows: _Optional[int] = ..., candidates: _Optional[int] = ..., retrieval_accuracy: _Optional[float] = ..., text_only_accuracy: _Optional[float] = ..., per_modality_accuracy: _Optional[_Mapping[str, float]] = ..., exact_match: _Optional[float] = ..., per_modality_exact_match: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ExportLlavaResult(_message.Message):
    __slots__ = ("warnings", "model", "architecture", "parameters", "dropped_towers")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TOWERS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    model: str
    architecture: str
    parameters: int
    dropped_towers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., model: _Optional[str] = ..., architecture: _Optional[str] = ..., parameters: _Optional[int] = ..., dropped_towers: _Optional[_Iterable[str]] = ...) -> None: ...
