from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DashboardRequest(_message.Message):
    __slots__ = ("models", "output_path", "output_name", "overwrite", "max_points", "png")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    MAX_POINTS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedScalarFieldContainer[str]
    output_path: str
    output_name: str
    overwrite: bool
    max_points: int
    png: bool
    def __init__(self, models: _Optional[_Iterable[str]] = ..., output_path: _Optional[str] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ..., max_points: _Optional[int] = ..., png: _Optional[bool] = ...) -> None: ...

class AttentionMapRequest(_message.Message):
    __slots__ = ("name", "text", "layers", "output_path", "output_name", "overwrite", "heads", "max_tokens", "png")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    name: str
    text: str
    layers: _containers.RepeatedScalarFieldContainer[int]
    output_path: str
    output_name: str
    overwrite: bool
    heads: _containers.RepeatedScalarFieldContainer[int]
    max_tokens: int
    png: bool
    def __init__(self, name: _Optional[str] = ..., text: _Optional[str] = ..., layers: _Optional[_Iterable[int]] = ..., output_path: _Optional[str] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ..., heads: _Optional[_Iterable[int]] = ..., max_tokens: _Optional[int] = ..., png: _Optional[bool] = ...) -> None: ...

class ComparisonReportRequest(_message.Message):
    __slots__ = ("models", "eval_path", "output_path", "eval_dataset", "output_name", "overwrite", "max_eval_tokens", "bootstrap_samples", "prompts", "max_new_tokens", "png")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    EVAL_PATH_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_PATH_FIELD_NUMBER: _ClassVar[int]
    EVAL_DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    MAX_EVAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedScalarFieldContainer[str]
    eval_path: str
    output_path: str
    eval_dataset: str
    output_name: str
    overwrite: bool
    max_eval_tokens: int
    bootstrap_samples: int
    prompts: _containers.RepeatedScalarFieldContainer[str]
    max_new_tokens: int
    png: bool
    def __init__(self, models: _Optional[_Iterable[str]] = ..., eval_path: _Optional[str] = ..., output_path: _Optional[str] = ..., eval_dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., overwrite: _Optional[bool] = ..., max_eval_tokens: _Optional[int] = ..., bootstrap_samples: _Optional[int] = ..., prompts: _Optional[_Iterable[str]] = ..., max_new_tokens: _Optional[int] = ..., png: _Optional[bool] = ...) -> None: ...

class DashboardResult(_message.Message):
    __slots__ = ("warnings", "output", "html", "html_bytes", "models", "points_in", "points_drawn", "lineage_edges", "png_files")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    HTML_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    POINTS_IN_FIELD_NUMBER: _ClassVar[int]
    POINTS_DRAWN_FIELD_NUMBER: _ClassVar[int]
    LINEAGE_EDGES_FIELD_NUMBER: _ClassVar[int]
    PNG_FILES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    output: str
    html: str
    html_bytes: int
    models: int
    points_in: int
    points_drawn: int
    lineage_edges: int
    png_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., output: _Optional[str] = ..., html: _Optional[str] = ..., html_bytes: _Optional[int] = ..., models: _Optional[int] = ..., points_in: _Optional[int] = ..., points_drawn: _Optional[int] = ..., lineage_edges: _Optional[int] = ..., png_files: _Optional[_Iterable[str]] = ...) -> None: ...

class HeadStats(_message.Message):
    __slots__ = ("layer", "head", "kv_head", "entropy", "sink_mass", "previous_token", "induction")
    LAYER_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    KV_HEAD_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    SINK_MASS_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    INDUCTION_FIELD_NUMBER: _ClassVar[int]
    layer: int
    head: int
    kv_head: int
    entropy: float
    sink_mass: float
    previous_token: float
    induction: float
    def __init__(self, layer: _Optional[int] = ..., head: _Optional[int] = ..., kv_head: _Optional[int] = ..., entropy: _Optional[float] = ..., sink_mass: _Optional[float] = ..., previous_token: _Optional[float] = ..., induction: _Optional[float] = ...) -> None: ...

class AttentionMapResult(_message.Message):
    __slots__ = ("warnings", "output", "html", "html_bytes", "tokens", "truncated", "layers", "heads", "kv_heads", "max_quantization_error", "head_stats", "png_files")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    HTML_BYTES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    HEADS_FIELD_NUMBER: _ClassVar[int]
    KV_HEADS_FIELD_NUMBER: _ClassVar[int]
    MAX_QUANTIZATION_ERROR_FIELD_NUMBER: _ClassVar[int]
    HEAD_STATS_FIELD_NUMBER: _ClassVar[int]
    PNG_FILES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    output: str
    html: str
    html_bytes: int
    tokens: int
    truncated: bool
    layers: _containers.RepeatedScalarFieldContainer[int]
    heads: _containers.RepeatedScalarFieldContainer[int]
    kv_heads: int
    max_quantization_error: float
    head_stats: _containers.RepeatedCompositeFieldContainer[HeadStats]
    png_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., output: _Optional[str] = ..., html: _Optional[str] = ..., html_bytes: _Optional[int] = ..., tokens: _Optional[int] = ..., truncated: _Optional[bool] = ..., layers: _Optional[_Iterable[int]] = ..., heads: _Optional[_Iterable[int]] = ..., kv_heads: _Optional[int] = ..., max_quantization_error: _Optional[float] = ..., head_stats: _Optional[_Iterable[_Union[HeadStats, _Mapping]]] = ..., png_files: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelScore(_message.Message):
    __slots__ = ("name", "perplexity", "nll", "tokens_scored", "bits_per_byte", "parameters", "size_bytes", "first_token_ms", "per_token_ms", "perplexity_by_language")
    class PerplexityByLanguageEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_FIELD_NUMBER: _ClassVar[int]
    NLL_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SCORED_FIELD_NUMBER: _ClassVar[int]
    BITS_PER_BYTE_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    PER_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    PERPLEXITY_BY_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    perplexity: float
    nll: float
    tokens_scored: int
    bits_per_byte: float
    parameters: int
    size_bytes: int
    first_token_ms: float
    per_token_ms: float
    perplexity_by_language: _containers.ScalarMap[str, float]
    def __init__(self, name: _Optional[str] = ..., perplexity: _Optional[float] = ..., nll: _Optional[float] = ..., tokens_scored: _Optional[int] = ..., bits_per_byte: _Optional[float] = ..., parameters: _Optional[int] = ..., size_bytes: _Optional[int] = ..., first_token_ms: _Optional[float] = ..., per_token_ms: _Optional[float] = ..., perplexity_by_language: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Difference(_message.Message):
    __slots__ = ("model", "metric", "value", "low", "high")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    LOW_FIELD_NUMBER: _ClassVar[int]
    HIGH_FIELD_NUMBER: _ClassVar[int]
    model: str
    metric: str
    value: float
    low: float
    high: float
    def __init__(self, model: _Optional[str] = ..., metric: _Optional[str] = ..., value: _Optional[float] = ..., low: _Optional[float] = ..., high: _Optional[float] = ...) -> None: ...

class ComparisonReportResult(_message.Message):
    __slots__ = ("warnings", "output", "html", "html_bytes", "models", "differences", "same_tokenizer", "per_token_note", "png_files")
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    HTML_FIELD_NUMBER: _ClassVar[int]
    HTML_BYTES_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    DIFFERENCES_FIELD_NUMBER: _ClassVar[int]
    SAME_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    PER_TOKEN_NOTE_FIELD_NUMBER: _ClassVar[int]
    PNG_FILES_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    output: str
    html: str
    html_bytes: int
    models: _containers.RepeatedCompositeFieldContainer[ModelScore]
    differences: _containers.RepeatedCompositeFieldContainer[Difference]
    same_tokenizer: bool
    per_token_note: str
    png_files: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ..., output: _Optional[str] = ..., html: _Optional[str] = ..., html_bytes: _Optional[int] = ..., models: _Optional[_Iterable[_Union[ModelScore, _Mapping]]] = ..., differences: _Optional[_Iterable[_Union[Difference, _Mapping]]] = ..., same_tokenizer: _Optional[bool] = ..., per_token_note: _Optional[str] = ..., png_files: _Optional[_Iterable[str]] = ...) -> None: ...
