from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class ProcessRequest(_message.Message):
    __slots__ = ("paths", "text_field", "cleaning", "dedup", "name")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_FIELD_NUMBER: _ClassVar[int]
    CLEANING_FIELD_NUMBER: _ClassVar[int]
    DEDUP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    text_field: str
    cleaning: str
    dedup: bool
    name: str
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., text_field: _Optional[str] = ..., cleaning: _Optional[str] = ..., dedup: _Optional[bool] = ..., name: _Optional[str] = ...) -> None: ...

class CleanTextRequest(_message.Message):
    __slots__ = ("texts", "strategy")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ...) -> None: ...

class CleanTextResponse(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class AugmentRequest(_message.Message):
    __slots__ = ("dataset", "methods", "copies", "name", "seed")
    DATASET_FIELD_NUMBER: _ClassVar[int]
    METHODS_FIELD_NUMBER: _ClassVar[int]
    COPIES_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    dataset: str
    methods: _containers.RepeatedScalarFieldContainer[str]
    copies: int
    name: str
    seed: int
    def __init__(self, dataset: _Optional[str] = ..., methods: _Optional[_Iterable[str]] = ..., copies: _Optional[int] = ..., name: _Optional[str] = ..., seed: _Optional[int] = ...) -> None: ...

class ProcessResult(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class AugmentResult(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...
