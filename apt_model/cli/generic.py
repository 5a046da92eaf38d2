"""``apt-model <plugin> <operation> [--field value ...]``: every plugin's operations, from its proto.

Nothing here knows a plugin. The gateway hands out each installed plugin's description
(``Describe``: its operations, their arguments with help, defaults, choices and rules, and the
proto files themselves as a ``FileDescriptorSet``); the command line is built from it. A flag
is the request field's name in kebab case, ``--help`` is the field's comment in the .proto file,
and a long-running operation is followed with the job progress bar like any other. So a plugin
written outside this repository is called the same way as a built-in one, with no client code.

Descriptions are cached per plugin version under ``$XDG_CACHE_HOME/apt/plugins`` (a plugin
that changes its contract changes its version).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
from pathlib import Path

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import FieldDescriptor

from apt_model.cli.common import (CliError, Ctx, add_global_options, add_job_options, emit_json, examples_text,
                                  start_and_watch, to_dict)
from apt_model.cli.data import file_or_dataset, files_or_dataset
from apt_model.gen.apt.common.v1 import job_pb2
from apt_model.gen.apt.gateway.v1 import gateway_pb2, gateway_pb2_grpc
from apt_model.gen.apt.plugin.v1 import plugin_pb2, plugin_pb2_grpc

GLOBALS_WITH_VALUE = {"--gateway", "--token", "--home", "--timeout"}
_PYTHON_TYPES = {"int": int, "float": float}


def command_index(argv: list[str]) -> int | None:
    """Where the command is in ``argv``: the first word that is no global option nor its value."""
    skip = False
    for i, word in enumerate(argv):
        if skip:
            skip = False
        elif word in GLOBALS_WITH_VALUE:
            skip = True
        elif not word.startswith("-"):
            return i
    return None


def kebab(name: str) -> str:
    """Field or method name -> flag or command word: learning_rate -> learning-rate, StartPrune -> start-prune,
    StartRLTraining -> start-rl-training (an acronym ends before its last capital when a lower-case letter follows)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])|(?<=[A-Z])([A-Z])(?=[a-z])", r"-\1\2", name).replace("_", "-").lower()


def operation_words(ops) -> dict[str, plugin_pb2.Operation]:
    """Command word -> operation: the method in kebab case, and without its ``start-`` when that
    names no other operation (``prune`` for StartPrune)."""
    words = {kebab(op.name): op for op in ops}
    for word, op in list(words.items()):
        short = word.removeprefix("start-")
        if short != word and short not in words:
            words[short] = op
    return words


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "apt" / "plugins"


def describe(ctx: Ctx, name: str) -> plugin_pb2.PluginDescription:
    """The installed plugin's description, from the cache when its version was seen before."""
    channel = ctx.channel()
    try:
        info = gateway_pb2_grpc.PluginRegistryStub(channel).GetPlugin(
            gateway_pb2.GetPluginRequest(name=name), timeout=ctx.timeout or 10)
    except grpc.RpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
            raise CliError(f"'{name}' is neither a command nor a plugin: run 'apt-model --help' for the commands "
                           "and 'apt-model plugin list' for the plugins.", 2) from None
        raise
    if info.status != gateway_pb2.PLUGIN_STATUS_INSTALLED:
        raise CliError(f"Plugin {name} is not installed ({info.status_message or 'not installed'}): "
                       f"install it with 'apt-model plugin install {name}'.", 7)
    key = hashlib.sha256(f"{ctx.address}\0{name}\0{info.version}".encode()).hexdigest()[:16]
    cached = cache_dir() / f"{name}-{info.version}-{key}.binpb"
    try:
        return plugin_pb2.PluginDescription.FromString(cached.read_bytes())
    except (OSError, ValueError):
        pass
    desc = plugin_pb2_grpc.PluginStub(channel).Describe(
        plugin_pb2.DescribeRequest(), metadata=[("x-apt-plugin", name)], timeout=ctx.timeout or 10)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(desc.SerializeToString())
        os.replace(tmp, cached)
    except OSError:
        pass  # a read-only home only costs one Describe per call
    return desc


class Contract:
    """The plugin's proto files in a pool of their own: request and response classes by name."""

    def __init__(self, desc: plugin_pb2.PluginDescription):
        from google.protobuf import descriptor_pb2

        self.pool = descriptor_pool.DescriptorPool()
        for f in descriptor_pb2.FileDescriptorSet.FromString(desc.file_descriptor_set).file:
            self.pool.Add(f)

    def message(self, full_name: str):
        return message_factory.GetMessageClass(self.pool.FindMessageTypeByName(full_name))


def result_pool(ctx: Ctx, job_id: str) -> descriptor_pool.DescriptorPool:
    """The descriptors that decode a job's typed result: the CLI's own for the gateway's jobs,
    the plugin's (Describe, cached) for a plugin's; the job id names its service."""
    service = job_id.partition(":")[0]
    return descriptor_pool.Default() if service == "gateway" else Contract(describe(ctx, service)).pool


def _help(arg: plugin_pb2.Argument) -> str:
    text = arg.description
    r = arg.rules
    bounds = []
    if r.HasField("min") or r.HasField("greater_than"):
        bounds.append(f"{'>=' if r.HasField('min') else '>'} {r.min if r.HasField('min') else r.greater_than:g}")
    if r.HasField("max") or r.HasField("less_than"):
        bounds.append(f"{'<=' if r.HasField('max') else '<'} {r.max if r.HasField('max') else r.less_than:g}")
    if bounds:
        text += f" ({', '.join(bounds)})"
    if arg.default_value:
        text += f" (default: {arg.default_value})"
    if arg.type == "map":
        text += " (KEY=VALUE, repeatable)"
    elif arg.type == "message":
        text += " (JSON)"
    elif arg.repeated:
        text += " (repeatable)"
    return text.replace("%", "%%")


def add_arguments(parser: argparse.ArgumentParser, op: plugin_pb2.Operation) -> None:
    group = parser.add_argument_group("arguments (the request's fields)")
    for arg in op.arguments:
        flag = f"--{kebab(arg.name)}"
        kw = dict(dest=f"field:{arg.name}", help=_help(arg), required=arg.required)
        if arg.type == "bool" and not arg.repeated:
            group.add_argument(flag, action="store_true", **kw)
            continue
        kw["metavar"] = arg.type.upper() if not arg.choices else None
        if arg.choices:
            kw["choices"] = list(arg.choices)
        if arg.type in _PYTHON_TYPES and not arg.repeated:
            kw["type"] = _PYTHON_TYPES[arg.type]
        if arg.repeated or arg.type == "map":
            kw["action"] = "append"
        group.add_argument(flag, **kw)


def request_of(args: argparse.Namespace, op: plugin_pb2.Operation, cls, ctx: Ctx | None = None):
    """The request message from the parsed flags (only given ones: the rest keep their zero).
    With ``ctx``, files on this machine named by a field with a ``local_files_dataset`` twin are
    pushed into the store first and sent as that dataset (data.file_or_dataset)."""
    data = {}
    fields = cls.DESCRIPTOR.fields_by_name
    pushed = _push_local_files(args, op, ctx) if ctx is not None else {}
    for arg in op.arguments:
        value = pushed[arg.name] if arg.name in pushed else getattr(args, f"field:{arg.name}")
        if value is None or value is False or (arg.name in pushed and not value):  # a local file went as its twin
            continue
        if arg.type == "map":
            value = dict(_pair(arg.name, item, fields[arg.name]) for item in value)
        elif arg.type == "message":
            value = _json(arg.name, value)
        data[arg.name] = value
    try:
        return json_format.ParseDict(data, cls())
    except json_format.ParseError as exc:
        raise CliError(f"{op.name}: {exc}", 2) from None


def _push_local_files(args: argparse.Namespace, op: plugin_pb2.Operation, ctx: Ctx) -> dict:
    """Field name -> the value to send instead, for fields whose files are on this machine."""
    out = {}
    for arg in op.arguments:
        twin = arg.rules.local_files_dataset
        value = getattr(args, f"field:{arg.name}")
        if not twin or not value:
            continue
        flag, twin_flag = f"--{kebab(arg.name)}", f"--{kebab(twin)}"
        dataset = out.get(twin, getattr(args, f"field:{twin}", None)) or ""
        if arg.repeated:
            out[arg.name], out[twin] = files_or_dataset(ctx, value, dataset, flag, twin_flag)
        else:
            out[arg.name], out[twin] = file_or_dataset(ctx, value, dataset, flag, twin_flag)
    return out


def _pair(name: str, item: str, fd: FieldDescriptor):
    key, sep, value = item.partition("=")
    if not sep:
        raise CliError(f"--{kebab(name)} takes KEY=VALUE pairs, got {item!r}.", 2)
    value_fd = fd.message_type.fields_by_name["value"]
    if value_fd.type == FieldDescriptor.TYPE_MESSAGE:
        return key, _json(name, value)
    try:
        numeric = {FieldDescriptor.CPPTYPE_DOUBLE: float, FieldDescriptor.CPPTYPE_FLOAT: float,
                   FieldDescriptor.CPPTYPE_INT32: int, FieldDescriptor.CPPTYPE_INT64: int,
                   FieldDescriptor.CPPTYPE_UINT32: int, FieldDescriptor.CPPTYPE_UINT64: int}.get(value_fd.cpp_type)
        return key, numeric(value) if numeric else value
    except ValueError:
        raise CliError(f"--{kebab(name)} {item}: {value!r} is not a number.", 2) from None


def _json(name: str, text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"--{kebab(name)} takes JSON: {exc}.", 2) from None


def build_parser(plugin: str, desc: plugin_pb2.PluginDescription, common: argparse.ArgumentParser):
    words = operation_words(desc.operations)
    parser = argparse.ArgumentParser(
        prog=f"apt-model {plugin}", parents=[common], formatter_class=argparse.RawDescriptionHelpFormatter,
        description=f"{desc.name} {desc.version}: {desc.description}",
        epilog=examples_text(*(f"apt-model {plugin} {w} --help" for w in list(words)[:3])))
    sub = parser.add_subparsers(dest="operation", metavar="OPERATION", required=True)
    for word, op in words.items():
        if word != kebab(op.name):
            continue  # the short word is an alias of the full one below
        aliases = [w for w, o in words.items() if o is op and w != word]
        p = sub.add_parser(word, aliases=aliases, parents=[common], help=op.description.replace("%", "%%"),
                           description=op.description, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_arguments(p, op)
        if op.long_running:
            add_job_options(p)
        p.set_defaults(op=op)
    return parser


def global_args(argv: list[str]) -> argparse.Namespace:
    """The global options (--gateway, --token, ...) wherever they are in ``argv``."""
    first = argparse.ArgumentParser(add_help=False)
    add_global_options(first, suppress=False)
    return first.parse_known_args(argv)[0]


def run(argv: list[str], at: int) -> None:
    """``argv[at]`` names a plugin: describe it, parse the rest against its operations, call."""
    known = global_args(argv)
    plugin = argv[at]
    desc = describe(Ctx(known), plugin)
    common = argparse.ArgumentParser(add_help=False)
    add_global_options(common, suppress=True)
    args = build_parser(plugin, desc, common).parse_args(argv[:at] + argv[at + 1:])
    for key, value in vars(known).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    call(Ctx(args), desc, args.op, args)


def call(ctx: Ctx, desc: plugin_pb2.PluginDescription, op: plugin_pb2.Operation, args) -> None:
    contract = Contract(desc)
    request = request_of(args, op, contract.message(op.request_type), ctx)
    if op.client_streaming:
        raise CliError(f"{op.name} reads a stream of requests: call it from code through the proto "
                       "(docs/api.md), not from the command line.", 2)
    path = f"/{op.service}/{op.name}"
    if op.long_running:
        start = ctx.channel().unary_unary(path, request_serializer=lambda m: m.SerializeToString(),
                                          response_deserializer=job_pb2.Job.FromString)
        start_and_watch(ctx, start, request, args, pool=contract.pool)
        return
    response_cls = contract.message(op.response_type)
    kind = ctx.channel().unary_stream if op.server_streaming else ctx.channel().unary_unary
    stub = kind(path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_cls.FromString)
    if op.server_streaming:
        for message in stub(request, timeout=ctx.timeout):
            print(json.dumps(to_dict(message), ensure_ascii=False), flush=True)
        return
    emit_json(to_dict(stub(request, timeout=ctx.timeout or 60)))
    sys.stdout.flush()
