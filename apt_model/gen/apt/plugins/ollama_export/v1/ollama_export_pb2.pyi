from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

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
