from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CotTrainingRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ...) -> None: ...

class VerifierTrainingRequest(_message.Message):
    __slots__ = ("model", "dataset", "output_name", "max_steps")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DATASET_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_NAME_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    model: str
    dataset: str
    output_name: str
    max_steps: int
    def __init__(self, model: _Optional[str] = ..., dataset: _Optional[str] = ..., output_name: _Optional[str] = ..., max_steps: _Optional[int] = ...) -> None: ...

class TreeSearchRequest(_message.Message):
    __slots__ = ("model", "verifier", "prompt", "beam_width", "max_depth")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    BEAM_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_DEPTH_FIELD_NUMBER: _ClassVar[int]
    model: str
    verifier: str
    prompt: str
    beam_width: int
    max_depth: int
    def __init__(self, model: _Optional[str] = ..., verifier: _Optional[str] = ..., prompt: _Optional[str] = ..., beam_width: _Optional[int] = ..., max_depth: _Optional[int] = ...) -> None: ...

class CotTrainingResult(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class VerifierTrainingResult(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class TreeSearchResult(_message.Message):
    __slots__ = ("warnings",)
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, warnings: _Optional[_Iterable[str]] = ...) -> None: ...
