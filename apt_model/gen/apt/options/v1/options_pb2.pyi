from google.protobuf import descriptor_pb2 as _descriptor_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor
RULES_FIELD_NUMBER: _ClassVar[int]
rules: _descriptor.FieldDescriptor
RESULT_TYPE_FIELD_NUMBER: _ClassVar[int]
result_type: _descriptor.FieldDescriptor

class FieldRules(_message.Message):
    __slots__ = ("required", "min", "max", "greater_than", "less_than", "choices", "default_value", "local_files_dataset")
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    GREATER_THAN_FIELD_NUMBER: _ClassVar[int]
    LESS_THAN_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_FILES_DATASET_FIELD_NUMBER: _ClassVar[int]
    required: bool
    min: float
    max: float
    greater_than: float
    less_than: float
    choices: _containers.RepeatedScalarFieldContainer[str]
    default_value: str
    local_files_dataset: str
    def __init__(self, required: _Optional[bool] = ..., min: _Optional[float] = ..., max: _Optional[float] = ..., greater_than: _Optional[float] = ..., less_than: _Optional[float] = ..., choices: _Optional[_Iterable[str]] = ..., default_value: _Optional[str] = ..., local_files_dataset: _Optional[str] = ...) -> None: ...
