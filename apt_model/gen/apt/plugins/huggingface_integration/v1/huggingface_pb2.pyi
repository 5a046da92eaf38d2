from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

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
    __slots__ = ("model", "dataset", "output_name", "text_field", "seq_len", "learning_rate", "epochs", "batch_size", "grad_accum", "seed", "eval_fraction", "max_steps", "overwrite")
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
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., text_field: _Optional[str] = ..., seq_len: _Optional[int] = ..., learning_rate: _Optional[float] = ..., epochs: _Optional[float] = ..., batch_size: _Optional[int] = ..., grad_accum: _Optional[int] = ..., seed: _Optional[int] = ..., eval_fraction: _Optional[float] = ..., max_steps: _Optional[int] = ..., overwrite: _Optional[bool] = ...) -> None: ...
