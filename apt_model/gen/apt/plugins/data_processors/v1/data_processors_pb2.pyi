from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessRequest(_message.Message):
    __slots__ = ("paths", "text_field", "cleaning", "dedup", "name", "dataset", "threshold", "num_perm", "eval_fraction", "no_quality_filters", "tokenizer_model", "seed", "html_extractor", "overwrite", "no_confirm", "workers")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    CLEANING_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    NUM_PERM_FIELD_NUMBER: _ClassVar[int]
    EVAL_FRACTION_FIELD_NUMBER: _ClassVar[int]
    NO_QUALITY_FILTERS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    HTML_EXTRACTOR_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    NO_CONFIRM_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    text_field: str
    cleaning: str
    dedup: bool
    name: str
    dataset: str
    threshold: float
    num_perm: int
    eval_fraction: float
    no_quality_filters: bool
    tokenizer_model: str
    seed: int
    html_extractor: str
    overwrite: bool
    no_confirm: bool
    workers: int
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., text_field: _Optional[str] = ..., cleaning: _Optional[str] = ..., dedup: _Optional[bool] = ..., name: _Optional[str] = ..., dataset: _Optional[str] = ..., threshold: _Optional[float] = ..., num_perm: _Optional[int] = ..., eval_fraction: _Optional[float] = ..., no_quality_filters: _Optional[bool] = ..., tokenizer_model: _Optional[str] = ..., seed: _Optional[int] = ..., html_extractor: _Optional[str] = ..., overwrite: _Optional[bool] = ..., no_confirm: _Optional[bool] = ..., workers: _Optional[int] = ...) -> None: ...

class CleanTextRequest(_message.Message):
    __slots__ = ("texts", "strategy", "traditional_to_simplified")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    TRADITIONAL_TO_SIMPLIFIED_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    traditional_to_simplified: bool
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ..., traditional_to_simplified: _Optional[bool] = ...) -> None: ...

class CleanTextResponse(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("dataset", "methods", "copies", "name", "seed", "overwrite")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    copies: int
    name: str
    seed: int
    overwrite: bool
    def __init__(self, dataset: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., copies: _Optional[int] = ..., name: _Optional[str] = ..., seed: _Optional[int] = ..., overwrite: _Optional[bool] = ...) -> None: ...

class DropCount(_message.Message):
    __slots__ = ("reason", "count")
    REASON_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    reason: str
    count: int
    def __init__(self, reason: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class ProcessResult(_message.Message):
    __slots__ = ("warnings", "name", "eval_name", "documents_read", "documents_kept", "eval_documents", "exact_duplicates", "near_duplicates", "duplicate_clusters", "dropped", "cross_split_pairs", "seconds", "augmented_copies")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EVAL_NAME_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_READ_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_KEPT_FIELD_NUMBER: _ClassVar[int]
    EVAL_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    EXACT_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_CLUSTERS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    CROSS_SPLIT_PAIRS_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    AUGMENTED_COPIES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    name: str
    eval_name: str
    documents_read: int
    documents_kept: int
    eval_documents: int
    exact_duplicates: int
    near_duplicates: int
    duplicate_clusters: int
    dropped: _containers.RepeatedCompositeFieldContainer[DropCount]
    cross_split_pairs: int
    seconds: float
    augmented_copies: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., eval_name: _Optional[str] = ..., documents_read: _Optional[int] = ..., documents_kept: _Optional[int] = ..., eval_documents: _Optional[int] = ..., exact_duplicates: _Optional[int] = ..., near_duplicates: _Optional[int] = ..., duplicate_clusters: _Optional[int] = ..., dropped: _Optional[_Iterable[_Union[DropCount, _Mapping]]] = ..., cross_split_pairs: _Optional[int] = ..., seconds: _Optional[float] = ..., augmented_copies: _Optional[int] = ...) -> None: ...

class AugmentResult(_message.Message):
    __slots__ = ("warnings", "name", "originals", "copies_written")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGINALS_FIELD_NUMBER: _ClassVar[int]
    COPIES_WRITTEN_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    name: str
    originals: int
    copies_written: int
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., name: _Optional[str] = ..., originals: _Optional[int] = ..., copies_written: _Optional[int] = ...) -> None: ...
