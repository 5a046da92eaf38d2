from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("name", "specifier", "installed_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SPECIFIER_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    specifier: str
    installed_version: str
    def __init__(self, name: _Optional[str] = ..., specifier: _Optional[str] = ..., installed_version: _Optional[str] = ...) -> None: ...

class Argument(_message.Message):
    __slots__ = ("name", "type", "description", "required", "default_value", "choices", "repeated", "rules")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    REPEATED_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: str
    description: str
    required: bool
    default_value: str
    choices: _containers.RepeatedScalarFieldContainer[str]
    repeated: bool
    rules: _options_pb2.FieldRules
    def __init__(self, name: _Optional[str] = ..., type: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ..., default_value: _Optional[str] = ..., choices: _Optional[_Iterable[str]] = ..., repeated: _Optional[bool] = ..., rules: _Optional[_Union[_options_pb2.FieldRules, _Mapping]] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("name", "description", "arguments", "long_running", "request_type", "response_type", "service", "client_streaming", "server_streaming", "result_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    LONG_RUNNING_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TYPE_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_TYPE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_STREAMING_FIELD_NUMBER: _ClassVar[int]
    SERVER_STREAMING_FIELD_NUMBER: _ClassVar[int]
    RESULT_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    arguments: _containers.RepeatedCompositeFieldContainer[Argument]
    long_running: bool
    request_type: str
    response_type: str
    service: str
    client_streaming: bool
    server_streaming: bool
    result_type: str
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., arguments: _Optional[_Iterable[_Union[Argument, _Mapping]]] = ..., long_running: _Optional[bool] = ..., request_type: _Optional[str] = ..., response_type: _Optional[str] = ..., service: _Optional[str] = ..., client_streaming: _Optional[bool] = ..., server_streaming: _Optional[bool] = ..., result_type: _Optional[str] = ...) -> None: ...

class PluginDescription(_message.Message):
    __slots__ = ("name", "version", "description", "required_dependencies", "optional_dependencies", "operations", "wants_gpu", "services", "file_descriptor_set")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    OPTIONAL_DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    WANTS_GPU_FIELD_NUMBER: _ClassVar[int]
    SERVICES_FIELD_NUMBER: _ClassVar[int]
    FILE_DESCRIPTOR_SET_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    description: str
    required_dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    optional_dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    wants_gpu: bool
    services: _containers.RepeatedScalarFieldContainer[str]
    file_descriptor_set: bytes
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., description: _Optional[str] = ..., required_dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ..., optional_dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ..., operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., wants_gpu: _Optional[bool] = ..., services: _Optional[_Iterable[str]] = ..., file_descriptor_set: _Optional[bytes] = ...) -> None: ...
