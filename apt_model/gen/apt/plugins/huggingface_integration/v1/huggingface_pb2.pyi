from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportModelRequest(_message.Message):
    __slots__ = ("source", "hub", "revision", "name", "overwrite")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    source: str
    hub: str
    revision: str
    name: str
    overwrite: bool
    def __init__(self, source: _Optional[str] = ..., hub: _Optional[str] = ..., revision: _Optional[str] = ..., name: _Optional[str] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class ExportModelRequest(_message.Message):
    __slots__ = ("name", "output_dir")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    name: str
    output_dir: str
    def __init__(self, name: _Optional[str] = ..., output_dir: _Optional[str] = ...) -> None: ...

class PushModelRequest(_message.Message):
    __slots__ = ("name", "repo_id", "private", "commit_message", "revision", "hub")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    COMMIT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    name: str
    repo_id: str
    private: bool
    commit_message: str
    revision: str
    hub: str
    def __init__(self, name: _Optional[str] = ..., repo_id: _Optional[str] = ..., private: _Optional[bool] = ..., commit_message: _Optional[str] = ..., revision: _Optional[str] = ..., hub: _Optional[str] = ...) -> None: ...

class LoadDatasetRequest(_message.Message):
    __slots__ = ("source", "format", "split", "name", "tokenizer_from", "text_field", "preview_rows", "overwrite", "revision", "hub")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SPLIT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FROM_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_ROWS_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    source: str
    format: str
    split: str
    name: str
    tokenizer_from: str
    text_field: str
    preview_rows: int
    overwrite: bool
    revision: str
    hub: str
    def __init__(self, source: _Optional[str] = ..., format: _Optional[str] = ..., split: _Optional[str] = ..., name: _Optional[str] = ..., tokenizer_from: _Optional[str] = ..., text_field: _Optional[str] = ..., preview_rows: _Optional[int] = ..., overwrite: _Optional[bool] = ..., revision: _Optional[str] = ..., hub: _Optional[str] = ...) -> None: ...

class TrainRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "text_field", "seq_len", "learning_rate", "epochs", "batch_size", "grad_accum", "seed", "eval_fraction", "max_steps", "overwrite", "workers", "nodes", "sharding", "device")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRAD_ACCUM_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EVAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    text_field: str
    seq_len: int
    learning_rate: float
    epochs: float
    batch_size: int
    grad_accum: int
    seed: int
    eval_fraction: float
    max_steps: int
    overwrite: bool
    workers: int
    nodes: int
    sharding: str
    device: str
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., text_field: _Optional[str] = ..., seq_len: _Optional[int] = ..., learning_rate: _Optional[float] = ..., epochs: _Optional[float] = ..., batch_size: _Optional[int] = ..., grad_accum: _Optional[int] = ..., seed: _Optional[int] = ..., eval_fraction: _Optional[float] = ..., max_steps: _Optional[int] = ..., overwrite: _Optional[bool] = ..., workers: _Optional[int] = ..., nodes: _Optional[int] = ..., sharding: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class ImportModelResult(_message.Message):
    __slots__ = ("name", "hub", "repo_id", "revision", "commit_sha", "architecture", "model_type", "weights_format", "tensors", "parameters", "bytes", "seconds", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FORMAT_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    hub: str
    repo_id: str
    revision: str
    commit_sha: str
    architecture: str
    model_type: str
    weights_format: str
    tensors: int
    parameters: int
    bytes: int
    seconds: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., hub: _Optional[str] = ..., repo_id: _Optional[str] = ..., revision: _Optional[str] = ..., commit_sha: _Optional[str] = ..., architecture: _Optional[str] = ..., model_type: _Optional[str] = ..., weights_format: _Optional[str] = ..., tensors: _Optional[int] = ..., parameters: _Optional[int] = ..., bytes: _Optional[int] = ..., seconds: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportModelResult(_message.Message):
    __slots__ = ("name", "files", "bytes", "output_dir", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    files: int
    bytes: int
    output_dir: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ..., output_dir: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class PushModelResult(_message.Message):
    __slots__ = ("name", "hub", "repo_id", "revision", "commit_sha", "time", "commit_url", "files", "bytes", "private", "seconds", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HUB_FIELD_NUMBER: _ClassVar[int]
    REPO_ID_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    COMMIT_URL_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    hub: str
    repo_id: str
    revision: str
    commit_sha: str
    time: str
    commit_url: str
    files: int
    bytes: int
    private: bool
    seconds: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., hub: _Optional[str] = ..., repo_id: _Optional[str] = ..., revision: _Optional[str] = ..., commit_sha: _Optional[str] = ..., time: _Optional[str] = ..., commit_url: _Optional[str] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ..., private: _Optional[bool] = ..., seconds: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class LoadDatasetResult(_message.Message):
    __slots__ = ("name", "format", "files", "rows", "columns", "total_tokens", "features", "preview", "token_stats", "source_hub", "source_repo_id", "source_revision", "source_commit_sha", "seconds", "warnings")
    class FeaturesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    PREVIEW_FIELD_NUMBER: _ClassVar[int]
    TOKEN_STATS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_HUB_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REPO_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REVISION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COMMIT_SHA_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    format: str
    files: int
    rows: int
    columns: int
    total_tokens: int
    features: _containers.ScalarMap[str, str]
    preview: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    token_stats: TokenStats
    source_hub: str
    source_repo_id: str
    source_revision: str
    source_commit_sha: str
    seconds: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., format: _Optional[str] = ..., files: _Optional[int] = ..., rows: _Optional[int] = ..., columns: _Optional[int] = ..., total_tokens: _Optional[int] = ..., features: _Optional[_Mapping[str, str]] = ..., preview: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ..., token_stats: _Optional[_Union[TokenStats, _Mapping]] = ..., source_hub: _Optional[str] = ..., source_repo_id: _Optional[str] = ..., source_revision: _Optional[str] = ..., source_commit_sha: _Optional[str] = ..., seconds: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class TokenStats(_message.Message):
    __slots__ = ("field", "rows_counted", "sampled", "total_tokens", "mean", "min", "max", "p50", "p95")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    ROWS_COUNTED_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P95_FIELD_NUMBER: _ClassVar[int]
    field: str
    rows_counted: int
    sampled: bool
    total_tokens: int
    mean: float
    min: int
    max: int
    p50: int
    p95: int
    def __init__(self, field: _Optional[str] = ..., rows_counted: _Optional[int] = ..., sampled: _Optional[bool] = ..., total_tokens: _Optional[int] = ..., mean: _Optional[float] = ..., min: _Optional[int] = ..., max: _Optional[int] = ..., p50: _Optional[int] = ..., p95: _Optional[int] = ...) -> None: ...

class TrainResult(_message.Message):
    __slots__ = ("name", "parent", "dataset", "eval_loss_before", "eval_loss", "eval_perplexity", "train_loss", "steps", "train_blocks", "eval_blocks", "train_tokens", "bf16", "seconds", "warnings", "sharding", "rank_parameters")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    EVAL_LOSS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    EVAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    EVAL_PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    TRAIN_LOSS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    EVAL_BLOCKS_FIELD_NUMBER: _ClassVar[int]
    TRAIN_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BF16_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    SHARDING_FIELD_NUMBER: _ClassVar[int]
    RANK_PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    name: str
    parent: str
    dataset: str
    eval_loss_before: float
    eval_loss: float
    eval_perplexity: float
    train_loss: float
    steps: int
    train_blocks: int
    eval_blocks: int
    train_tokens: int
    bf16: bool
    seconds: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    sharding: str
    rank_parameters: int
    def __init__(self, name: _Optional[str] = ..., parent: _Optional[str] = ..., dataset: _Optional[str] = ..., eval_loss_before: _Optional[float] = ..., eval_loss: _Optional[float] = ..., eval_perplexity: _Optional[float] = ..., train_loss: _Optional[float] = ..., steps: _Optional[int] = ..., train_blocks: _Optional[int] = ..., eval_blocks: _Optional[int] = ..., train_tokens: _Optional[int] = ..., bf16: _Optional[bool] = ..., seconds: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ..., sharding: _Optional[str] = ..., rank_parameters: _Optional[int] = ...) -> None: ...
