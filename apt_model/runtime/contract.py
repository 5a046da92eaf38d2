"""What a service's proto says about its operations: the one source of Describe and the CLI.

Every operation of a plugin (name, help, arguments with their types, defaults, choices, ranges
and required-ness, whether it is long-running) is read here from the descriptors of its proto:
the help is the comment on the method or field in the .proto file, everything else the field
itself and its ``(apt.options.v1.rules)``. Nothing about an operation is written twice.

The generated ``*_pb2`` modules leave comments out, so ``make proto`` writes each file's
descriptor with its comments beside its module (``<file>.binpb``, see tools/gen_proto.sh);
:func:`source_file` finds it from the module, for this repository's protos and for a plugin
outside it alike.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (Descriptor, FieldDescriptor, FileDescriptor, MethodDescriptor,
                                        ServiceDescriptor)

from apt_model import errors
from apt_model.gen.apt.options.v1 import options_pb2
from apt_model.gen.apt.plugin.v1 import plugin_pb2

JOB = "apt.common.v1.Job"
_TYPE_NAMES = {
    FieldDescriptor.TYPE_STRING: "string", FieldDescriptor.TYPE_BOOL: "bool", FieldDescriptor.TYPE_BYTES: "bytes",
    FieldDescriptor.TYPE_DOUBLE: "float", FieldDescriptor.TYPE_FLOAT: "float", FieldDescriptor.TYPE_ENUM: "enum",
    FieldDescriptor.TYPE_MESSAGE: "message",
}
# Where descriptor.proto puts things (field numbers of FileDescriptorProto and its children):
# the source-info paths of a message's fields are (4, m, 2, f), of a service's methods (6, s, 2, m).
_MESSAGE, _FIELD, _SERVICE, _METHOD, _NESTED = 4, 2, 6, 2, 3


def type_name(fd: FieldDescriptor) -> str:
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        return "map"
    return _TYPE_NAMES.get(fd.type, "int")


@lru_cache(maxsize=None)
def source_file(file_name: str) -> descriptor_pb2.FileDescriptorProto:
    """The proto file ``file_name`` as compiled, with its comments when its ``.binpb`` is found
    (beside the generated module of any loaded package holding it), else without."""
    fd = descriptor_pool.Default().FindFileByName(file_name)
    stem = file_name.removesuffix(".proto")
    for root in _gen_roots():
        path = root / f"{stem}.binpb"
        if path.is_file():
            files = descriptor_pb2.FileDescriptorSet.FromString(path.read_bytes()).file
            if files and files[0].name == file_name:
                return files[0]
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    return proto


def _gen_roots() -> list[Path]:
    """Folders holding generated modules by proto path: this package's, and for every loaded
    ``*_pb2`` module outside it, the folder its proto path starts from."""
    roots = [Path(__file__).resolve().parent.parent / "gen"]
    for module in list(sys.modules.values()):
        name, file = getattr(module, "__name__", ""), getattr(module, "__file__", None)
        descriptor = getattr(module, "DESCRIPTOR", None)
        if file and name.endswith("_pb2") and isinstance(descriptor, FileDescriptor):
            root = Path(file).resolve().parent
            for _ in range(descriptor.name.count("/")):
                root = root.parent
            if root not in roots:
                roots.append(root)
    return roots


@lru_cache(maxsize=None)
def _comments(file_name: str) -> dict[tuple[int, ...], str]:
    """Source path -> the comment on that element (leading, else trailing), tidied."""
    out = {}
    for loc in source_file(file_name).source_code_info.location:
        text = loc.leading_comments or loc.trailing_comments
        if text.strip():
            out[tuple(loc.path)] = " ".join(line.strip() for line in text.strip().splitlines())
    return out


def _message_path(message: Descriptor) -> tuple[int, ...]:
    chain = []
    while message is not None:
        parent = message.containing_type
        siblings = parent.nested_types if parent else list(message.file.message_types_by_name.values())
        chain.append(siblings.index(message))
        message = parent
    chain.reverse()
    path = (_MESSAGE, chain[0])
    for index in chain[1:]:
        path += (_NESTED, index)
    return path


def field_help(fd: FieldDescriptor) -> str:
    return _comments(fd.file.name).get(_message_path(fd.containing_type) + (_FIELD, fd.index), "")


def method_help(method: MethodDescriptor) -> str:
    service = method.containing_service
    return _comments(service.file.name).get((_SERVICE, service.index, _METHOD, method.index), "")


def rules_of(fd: FieldDescriptor) -> options_pb2.FieldRules:
    opts = fd.GetOptions()
    return opts.Extensions[options_pb2.rules] if opts.HasExtension(options_pb2.rules) else options_pb2.FieldRules()


def argument(fd: FieldDescriptor) -> plugin_pb2.Argument:
    rules = rules_of(fd)
    choices = list(rules.choices) or ([v.name for v in fd.enum_type.values] if fd.enum_type else [])
    return plugin_pb2.Argument(
        name=fd.name, type=type_name(fd), description=field_help(fd), required=rules.required,
        default_value=rules.default_value, choices=choices,
        repeated=fd.is_repeated and type_name(fd) != "map", rules=rules,
    )


def operation(method: MethodDescriptor) -> plugin_pb2.Operation:
    return plugin_pb2.Operation(
        name=method.name, description=method_help(method),
        arguments=[argument(fd) for fd in method.input_type.fields],
        long_running=method.output_type.full_name == JOB, request_type=method.input_type.full_name,
        response_type=method.output_type.full_name, service=method.containing_service.full_name,
        client_streaming=method.client_streaming, server_streaming=method.server_streaming,
        result_type=_result_type(method),
    )


def _result_type(method: MethodDescriptor) -> str:
    opts = method.GetOptions()
    return opts.Extensions[options_pb2.result_type] if opts.HasExtension(options_pb2.result_type) else ""


def service(full_name: str) -> ServiceDescriptor:
    try:
        return descriptor_pool.Default().FindServiceByName(full_name)
    except KeyError as exc:
        raise errors.FailedPrecondition(
            f"The proto service {full_name} is not loaded: import its generated *_pb2 module first.") from exc


def operations(service_names) -> list[plugin_pb2.Operation]:
    return [operation(m) for name in service_names for m in service(name).methods]


def descriptor_set(service_names) -> descriptor_pb2.FileDescriptorSet:
    """The files declaring these services and every file they import, dependencies first, with
    their comments where known: what a client needs to build requests without generated code."""
    out, seen = descriptor_pb2.FileDescriptorSet(), set()

    def add(fd: FileDescriptor) -> None:
        if fd.name in seen:
            return
        seen.add(fd.name)
        for dep in fd.dependencies:
            add(dep)
        out.file.append(source_file(fd.name))

    for name in service_names:
        add(service(name).file)
    return out
