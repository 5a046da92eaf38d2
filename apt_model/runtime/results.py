"""Typed job results (AIP-151): every long-running method names the message its job ends with.

A method that returns ``apt.common.v1.Job`` declares its result message in the contract::

    rpc StartPrune(PruneRequest) returns (apt.common.v1.Job) {
      option (apt.options.v1.result_type) = "apt.plugins.model_pruning.v1.PruneResult";
    }

A job's work function returns a dict; when it succeeds the job runtime turns the dict into that
message *strictly* (:func:`to_message`: a key the message lacks, a value of the wrong type or a
``None`` where the field cannot be unset is a bug in the service, never dropped or coerced) and
sends it as ``Job.response`` (an ``Any``). ``Job.result`` (a ``Struct``, kept for the clients that
read it) is the same message rendered back (:func:`json_view`), so the two always agree.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.options.v1 import options_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2

JOB = job_pb2.Job.DESCRIPTOR.full_name
JOBS_SERVICE = plugin_pb2.DESCRIPTOR.services_by_name["Jobs"].full_name

_F = FieldDescriptor
_INTEGERS = {_F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_SINT32, _F.TYPE_SINT64,
             _F.TYPE_FIXED32, _F.TYPE_FIXED64, _F.TYPE_SFIXED32, _F.TYPE_SFIXED64}
# proto3's JSON mapping writes these as strings; the Struct view keeps them numbers, as before
_WIDE_INTEGERS = {_F.TYPE_INT64, _F.TYPE_UINT64, _F.TYPE_SINT64, _F.TYPE_FIXED64, _F.TYPE_SFIXED64}
_FLOATS = {_F.TYPE_DOUBLE, _F.TYPE_FLOAT}
_TYPE_NAMES = {v: n[5:].lower() for n, v in vars(_F).items() if n.startswith("TYPE_")}


class ResultMismatch(Exception):
    """A work function's dict does not fit its operation's declared result message."""


def long_running(service: ServiceDescriptor) -> list[MethodDescriptor]:
    """The methods of ``service`` that start jobs: they return ``apt.common.v1.Job`` (those of
    ``apt.plugin.v1.Jobs`` return jobs that exist already)."""
    if service.full_name == JOBS_SERVICE:
        return []
    return [m for m in service.methods if m.output_type.full_name == JOB]


def declared_type(method: MethodDescriptor) -> Descriptor:
    """The result message ``method`` declares; LookupError saying what to add when it declares none."""
    options = method.GetOptions()
    name = options.Extensions[options_pb2.result_type] if options.HasExtension(options_pb2.result_type) else ""
    where = f"{method.containing_service.file.name}: rpc {method.name}"
    if not name:
        raise LookupError(
            f"{method.full_name} returns a Job but declares no result message; add "
            f"'option (apt.options.v1.result_type) = \"<package>.<Message>\";' to {where}.")
    try:
        return method.containing_service.file.pool.FindMessageTypeByName(name)
    except KeyError:
        raise LookupError(f"{method.full_name} declares result_type {name!r}, which is not a message "
                          f"known to the contracts; fix the name in {where} (the full name, package "
                          "included).") from None


@lru_cache(maxsize=None)
def result_class(operation: str) -> type[Message]:
    """The result message class of ``operation`` ("/<package>.<Service>/<Method>", as jobs record it)."""
    service, _, method = operation.lstrip("/").rpartition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service).methods_by_name[method]
    except KeyError:
        raise LookupError(f"{operation!r} is not a method of a service whose contract this process "
                          "imported; a job's operation is its start method's full name.") from None
    if found not in long_running(found.containing_service):
        raise LookupError(f"{operation!r} does not start jobs.")
    return message_factory.GetMessageClass(declared_type(found))


def to_message(cls: type[Message], data: dict[str, Any]) -> Message:
    """``data`` as a ``cls``; ResultMismatch naming the first key that does not fit."""
    _check_message(data, cls.DESCRIPTOR, "")
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as exc:  # e.g. an int32 out of range
        raise ResultMismatch(str(exc).splitlines()[0]) from exc


def json_view(message: Message) -> dict[str, Any]:
    """The message as ``Job.result`` shows it: field names as in the proto, every field without
    presence (zeros and empty lists too, as the dicts always held them), 64-bit integers as
    numbers."""
    out = json_format.MessageToDict(message, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True)
    _wide_integers_as_numbers(out, message.DESCRIPTOR)
    return out


def typed_result(job: job_pb2.Job) -> Message | None:
    """A finished job's result as its declared message; None while it has none.

    ``Job.response`` when it is set. A job from a service that predates typed results has only
    the Struct view: it is read as the declared type (numbers there are doubles; whole ones are
    taken for integer fields), ValueError when it does not fit.
    """
    if job.HasField("response"):
        try:
            desc = descriptor_pool.Default().FindMessageTypeByName(job.response.TypeName())
        except KeyError:
            raise ValueError(f"Job {job.id}'s result is a {job.response.TypeName()}, a message this program "
                             "does not know: import the module generated from its .proto.") from None
        message = message_factory.GetMessageClass(desc)()
        job.response.Unpack(message)
        return message
    if not job.HasField("result"):
        return None
    cls = result_class(job.operation)
    try:
        return json_format.ParseDict(json_format.MessageToDict(job.result), cls(), ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise ValueError(f"Job {job.id} predates typed results and its result does not read as a "
                         f"{cls.DESCRIPTOR.full_name} ({str(exc).splitlines()[0]}); use job.result.") from exc


# -- strictness: json_format.ParseDict alone takes "3" or 3.0 for an integer, True for a double --

def _is_map(fd: FieldDescriptor) -> bool:
    return fd.type == _F.TYPE_MESSAGE and fd.message_type.GetOptions().map_entry


def _check_message(data: Any, desc: Descriptor, path: str) -> None:
    if desc.full_name.startswith("google.protobuf."):
        return  # well-known types (Struct rows of a dataset preview): json_format checks their shape
    if not isinstance(data, dict):
        raise ResultMismatch(f"{path or 'the result'} is a {type(data).__name__}, not an object ({desc.full_name})")
    for key, value in data.items():
        where = f"{path}.{key}" if path else str(key)
        fd = desc.fields_by_name.get(key)
        if fd is None:
            raise ResultMismatch(f"{where}: {desc.full_name} has no field {key!r}")
        if value is None:
            if fd.has_presence:
                continue  # unset
            raise ResultMismatch(f"{where} is None, but the field cannot be unset (declare it optional)")
        if _is_map(fd):
            if not isinstance(value, dict):
                raise ResultMismatch(f"{where} is a {type(value).__name__}, not a map")
            key_fd, value_fd = fd.message_type.fields_by_name["key"], fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                _check_value(k, key_fd, f"{where}[{k!r}] (key)")
                _check_value(v, value_fd, f"{where}[{k!r}]")
        elif fd.is_repeated:
            if not isinstance(value, (list, tuple)):
                raise ResultMismatch(f"{where} is a {type(value).__name__}, not a list")
            for i, item in enumerate(value):
                _check_value(item, fd, f"{where}[{i}]")
        else:
            _check_value(value, fd, where)


def _check_value(value: Any, fd: FieldDescriptor, where: str) -> None:
    t = fd.type
    if t == _F.TYPE_MESSAGE:
        _check_message(value, fd.message_type, where)
        return
    ok = (isinstance(value, int) and not isinstance(value, bool) if t in _INTEGERS else
          isinstance(value, (int, float)) and not isinstance(value, bool) if t in _FLOATS else
          isinstance(value, bool) if t == _F.TYPE_BOOL else
          isinstance(value, str) if t in (_F.TYPE_STRING, _F.TYPE_ENUM) else
          isinstance(value, bytes))
    if not ok:
        raise ResultMismatch(f"{where} is {type(value).__name__} {value!r}, the field is {_TYPE_NAMES[t]}")


def _wide_integers_as_numbers(view: dict[str, Any], desc: Descriptor) -> None:
    for fd in desc.fields:
        if fd.name not in view or fd.type not in (_F.TYPE_MESSAGE, *_WIDE_INTEGERS):
            continue
        value = view[fd.name]
        if _is_map(fd):
            value_fd = fd.message_type.fields_by_name["value"]
            view[fd.name] = {k: _number(v, value_fd) for k, v in value.items()}
        elif fd.is_repeated:
            view[fd.name] = [_number(v, fd) for v in value]
        else:
            view[fd.name] = _number(value, fd)


def _number(value: Any, fd: FieldDescriptor) -> Any:
    if fd.type in _WIDE_INTEGERS:
        return int(value)
    if fd.type == _F.TYPE_MESSAGE and not fd.message_type.full_name.startswith("google.protobuf."):
        _wide_integers_as_numbers(value, fd.message_type)
    return value
