from apt_model.gen.apt.common.v1 import job_pb2 as _job_pb2
from apt_model.gen.apt.options.v1 import options_pb2 as _options_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BackupRequest(_message.Message):
    __slots__ = ("name", "kind", "destination", "tag", "endpoint_url", "region", "part_size", "concurrency")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    PART_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    destination: str
    tag: str
    endpoint_url: str
    region: str
    part_size: int
    concurrency: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., destination: _Optional[str] = ..., tag: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., region: _Optional[str] = ..., part_size: _Optional[int] = ..., concurrency: _Optional[int] = ...) -> None: ...

class UploadRequest(_message.Message):
    __slots__ = ("paths", "destination", "endpoint_url", "region", "commit_message", "part_size", "concurrency")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    PART_SIZE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedScalarFieldContainer[str]
    destination: str
    endpoint_url: str
    region: str
    commit_message: str
    part_size: int
    concurrency: int
    def __init__(self, paths: _Optional[_Iterable[str]] = ..., destination: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., region: _Optional[str] = ..., commit_message: _Optional[str] = ..., part_size: _Optional[int] = ..., concurrency: _Optional[int] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("source", "tag", "name", "kind", "overwrite", "endpoint_url", "region", "backup_name", "concurrency")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    BACKUP_NAME_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    source: str
    tag: str
    name: str
    kind: str
    overwrite: bool
    endpoint_url: str
    region: str
    backup_name: str
    concurrency: int
    def __init__(self, source: _Optional[str] = ..., tag: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ..., overwrite: _Optional[bool] = ..., endpoint_url: _Optional[str] = ..., region: _Optional[str] = ..., backup_name: _Optional[str] = ..., concurrency: _Optional[int] = ...) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ("destination", "endpoint_url", "region", "name", "kind")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_URL_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    destination: str
    endpoint_url: str
    region: str
    name: str
    kind: str
    def __init__(self, destination: _Optional[str] = ..., endpoint_url: _Optional[str] = ..., region: _Optional[str] = ..., name: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class Backup(_message.Message):
    __slots__ = ("name", "kind", "tag", "size_bytes", "files", "created", "complete", "stored_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    tag: str
    size_bytes: int
    files: int
    created: str
    complete: bool
    stored_bytes: int
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., tag: _Optional[str] = ..., size_bytes: _Optional[int] = ..., files: _Optional[int] = ..., created: _Optional[str] = ..., complete: _Optional[bool] = ..., stored_bytes: _Optional[int] = ...) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups",)
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[Backup]
    def __init__(self, backups: _Optional[_Iterable[_Union[Backup, _Mapping]]] = ...) -> None: ...

class BackupResult(_message.Message):
    __slots__ = ("destination", "name", "tag", "files", "resumed", "bytes_total", "bytes_sent", "bytes_skipped", "parts_sent", "parts_skipped", "seconds", "bytes_per_s", "warnings")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    RESUMED_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PARTS_SENT_FIELD_NUMBER: _ClassVar[int]
    PARTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    destination: str
    name: str
    tag: str
    files: int
    resumed: bool
    bytes_total: int
    bytes_sent: int
    bytes_skipped: int
    parts_sent: int
    parts_skipped: int
    seconds: float
    bytes_per_s: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, destination: _Optional[str] = ..., name: _Optional[str] = ..., tag: _Optional[str] = ..., files: _Optional[int] = ..., resumed: _Optional[bool] = ..., bytes_total: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_skipped: _Optional[int] = ..., parts_sent: _Optional[int] = ..., parts_skipped: _Optional[int] = ..., seconds: _Optional[float] = ..., bytes_per_s: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadResult(_message.Message):
    __slots__ = ("destination", "uploaded", "bytes_total", "bytes_sent", "bytes_skipped", "parts_sent", "parts_skipped", "seconds", "bytes_per_s", "warnings")
    DESTINATION_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PARTS_SENT_FIELD_NUMBER: _ClassVar[int]
    PARTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    destination: str
    uploaded: _containers.RepeatedCompositeFieldContainer[UploadedFile]
    bytes_total: int
    bytes_sent: int
    bytes_skipped: int
    parts_sent: int
    parts_skipped: int
    seconds: float
    bytes_per_s: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, destination: _Optional[str] = ..., uploaded: _Optional[_Iterable[_Union[UploadedFile, _Mapping]]] = ..., bytes_total: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_skipped: _Optional[int] = ..., parts_sent: _Optional[int] = ..., parts_skipped: _Optional[int] = ..., seconds: _Optional[float] = ..., bytes_per_s: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class UploadedFile(_message.Message):
    __slots__ = ("key", "size", "sha256")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    sha256: str
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class RestoreResult(_message.Message):
    __slots__ = ("name", "kind", "source", "backup_name", "tag", "files", "verified", "bytes_total", "bytes_sent", "bytes_skipped", "parts_sent", "parts_skipped", "seconds", "bytes_per_s", "warnings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    BACKUP_NAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    BYTES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    PARTS_SENT_FIELD_NUMBER: _ClassVar[int]
    PARTS_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    source: str
    backup_name: str
    tag: str
    files: int
    verified: bool
    bytes_total: int
    bytes_sent: int
    bytes_skipped: int
    parts_sent: int
    parts_skipped: int
    seconds: float
    bytes_per_s: float
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., source: _Optional[str] = ..., backup_name: _Optional[str] = ..., tag: _Optional[str] = ..., files: _Optional[int] = ..., verified: _Optional[bool] = ..., bytes_total: _Optional[int] = ..., bytes_sent: _Optional[int] = ..., bytes_skipped: _Optional[int] = ..., parts_sent: _Optional[int] = ..., parts_skipped: _Optional[int] = ..., seconds: _Optional[float] = ..., bytes_per_s: _Optional[float] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...
