from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExportRequest(_message.Message):
    __slots__ = ("name", "output_dir", "outtype", "ollama_url", "ollama_model", "skip_verify", "system", "parameters", "num_ctx")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_DIR_FIELD_NUMBER: _ClassVar[int]
    OUTTYPE_FIELD_NUMBER: _ClassVar[int]
    OLLAMA_URL_FIELD_NUMBER: _ClassVar[int]
    OLLAMA_MODEL_FIELD_NUMBER: _ClassVar[int]
    SKIP_VERIFY_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NUM_CTX_FIELD_NUMBER: _ClassVar[int]
    name: str
    output_dir: str
    outtype: str
    ollama_url: str
    ollama_model: str
    skip_verify: bool
    system: str
    parameters: _containers.ScalarMap[str, str]
    num_ctx: int
    def __init__(self, name: _Optional[str] = ..., output_dir: _Optional[str] = ..., outtype: _Optional[str] = ..., ollama_url: _Optional[str] = ..., ollama_model: _Optional[str] = ..., skip_verify: _Optional[bool] = ..., system: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., num_ctx: _Optional[int] = ...) -> None: ...

class CreateModelfileRequest(_message.Message):
    __slots__ = ("name", "gguf_path", "system", "parameters", "num_ctx")
    class ParametersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    GGUF_PATH_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    NUM_CTX_FIELD_NUMBER: _ClassVar[int]
    name: str
    gguf_path: str
    system: str
    parameters: _containers.ScalarMap[str, str]
    num_ctx: int
    def __init__(self, name: _Optional[str] = ..., gguf_path: _Optional[str] = ..., system: _Optional[str] = ..., parameters: _Optional[_Mapping[str, str]] = ..., num_ctx: _Optional[int] = ...) -> None: ...

class Modelfile(_message.Message):
    __slots__ = ("text", "chat_format", "warnings")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    text: str
    chat_format: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., chat_format: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class ExportResult(_message.Message):
    __slots__ = ("gguf", "size_bytes", "outtype", "arch", "tensor_types", "pre_tokenizer", "n_vocab", "modelfile", "chat_format", "verification", "ollama", "command", "warnings")
    class TensorTypesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    GGUF_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTTYPE_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    TENSOR_TYPES_FIELD_NUMBER: _ClassVar[int]
    PRE_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    N_VOCAB_FIELD_NUMBER: _ClassVar[int]
    MODELFILE_FIELD_NUMBER: _ClassVar[int]
    CHAT_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    OLLAMA_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    gguf: str
    size_bytes: int
    outtype: str
    arch: str
    tensor_types: _containers.ScalarMap[str, int]
    pre_tokenizer: str
    n_vocab: int
    modelfile: str
    chat_format: str
    verification: Verification
    ollama: OllamaCreate
    command: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, gguf: _Optional[str] = ..., size_bytes: _Optional[int] = ..., outtype: _Optional[str] = ..., arch: _Optional[str] = ..., tensor_types: _Optional[_Mapping[str, int]] = ..., pre_tokenizer: _Optional[str] = ..., n_vocab: _Optional[int] = ..., modelfile: _Optional[str] = ..., chat_format: _Optional[str] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., ollama: _Optional[_Union[OllamaCreate, _Mapping]] = ..., command: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("skipped", "positions", "max_abs_diff", "top1_agreement", "disagreements", "worst_disagreement_gap", "max_abs_logit", "kv_cache", "near_tie", "tokenization_texts", "tokenization_mismatches")
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    POSITIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_DIFF_FIELD_NUMBER: _ClassVar[int]
    TOP1_AGREEMENT_FIELD_NUMBER: _ClassVar[int]
    DISAGREEMENTS_FIELD_NUMBER: _ClassVar[int]
    WORST_DISAGREEMENT_GAP_FIELD_NUMBER: _ClassVar[int]
    MAX_ABS_LOGIT_FIELD_NUMBER: _ClassVar[int]
    KV_CACHE_FIELD_NUMBER: _ClassVar[int]
    NEAR_TIE_FIELD_NUMBER: _ClassVar[int]
    TOKENIZATION_TEXTS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZATION_MISMATCHES_FIELD_NUMBER: _ClassVar[int]
    skipped: str
    positions: int
    max_abs_diff: float
    top1_agreement: float
    disagreements: int
    worst_disagreement_gap: float
    max_abs_logit: float
    kv_cache: str
    near_tie: float
    tokenization_texts: int
    tokenization_mismatches: int
    def __init__(self, skipped: _Optional[str] = ..., positions: _Optional[int] = ..., max_abs_diff: _Optional[float] = ..., top1_agreement: _Optional[float] = ..., disagreements: _Optional[int] = ..., worst_disagreement_gap: _Optional[float] = ..., max_abs_logit: _Optional[float] = ..., kv_cache: _Optional[str] = ..., near_tie: _Optional[float] = ..., tokenization_texts: _Optional[int] = ..., tokenization_mismatches: _Optional[int] = ...) -> None: ...

class OllamaCreate(_message.Message):
    __slots__ = ("url", "model", "digest", "uploaded", "statuses")
    URL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    url: str
    model: str
    digest: str
    uploaded: bool
    statuses: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, url: _Optional[str] = ..., model: _Optional[str] = ..., digest: _Optional[str] = ..., uploaded: _Optional[bool] = ..., statuses: _Optional[_Iterable[str]] = ...) -> None: ...
