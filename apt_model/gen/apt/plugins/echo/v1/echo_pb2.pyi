from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Stats(_message.Message):
    __slots__ = ("cancelled_calls",)
    CANCELLED_CALLS_FIELD_NUMBER: _ClassVar[int]
    cancelled_calls: int
    def __init__(self, cancelled_calls: _Optional[int] = ...) -> None: ...

class EchoRequest(_message.Message):
    __slots__ = ("text", "sleep_seconds", "crash")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SLEEP_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CRASH_FIELD_NUMBER: _ClassVar[int]
    text: str
    sleep_seconds: float
    crash: bool
    def __init__(self, text: _Optional[str] = ..., sleep_seconds: _Optional[float] = ..., crash: _Optional[bool] = ...) -> None: ...

class EchoResponse(_message.Message):
    __slots__ = ("text", "metadata", "index")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TEXT_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    text: str
    metadata: _containers.ScalarMap[str, str]
    index: int
    def __init__(self, text: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., index: _Optional[int] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("n", "interval_seconds", "crash_after")
    N_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CRASH_AFTER_FIELD_NUMBER: _ClassVar[int]
    n: int
    interval_seconds: float
    crash_after: int
    def __init__(self, n: _Optional[int] = ..., interval_seconds: _Optional[float] = ..., crash_after: _Optional[int] = ...) -> None: ...

class ArtifactRequest(_message.Message):
    __slots__ = ("total_bytes", "chunk_bytes")
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    CHUNK_BYTES_FIELD_NUMBER: _ClassVar[int]
    total_bytes: int
    chunk_bytes: int
    def __init__(self, total_bytes: _Optional[int] = ..., chunk_bytes: _Optional[int] = ...) -> None: ...

class ArtifactChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class FailRequest(_message.Message):
    __slots__ = ("error", "message")
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error: str
    message: str
    def __init__(self, error: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StartEchoRequest(_message.Message):
    __slots__ = ("text", "steps", "interval_seconds", "warning", "undeclared_key")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WARNING_FIELD_NUMBER: _ClassVar[int]
    UNDECLARED_KEY_FIELD_NUMBER: _ClassVar[int]
    text: str
    steps: int
    interval_seconds: float
    warning: str
    undeclared_key: str
    def __init__(self, text: _Optional[str] = ..., steps: _Optional[int] = ..., interval_seconds: _Optional[float] = ..., warning: _Optional[str] = ..., undeclared_key: _Optional[str] = ...) -> None: ...

class EchoResult(_message.Message):
    __slots__ = ("text", "steps", "length", "warnings")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    text: str
    steps: int
    length: int
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., steps: _Optional[int] = ..., length: _Optional[int] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
