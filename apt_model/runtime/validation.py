"""One generic check of every request against the rules on its fields (apt.options.v1.rules).

The rules live in the proto, so the contract says what a service accepts and every service
enforces it the same way, before its servicer runs (``apt_model.runtime.interceptors``):
INVALID_ARGUMENT with one ``google.rpc.BadRequest`` violation per field at fault. A field left
at its zero value is "not given" (the service's default applies): rules check given values,
``required`` checks presence. Nested messages are checked too, with dotted field names.
"""

from __future__ import annotations

import math
from functools import lru_cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from apt_model import errors
from apt_model.gen.apt.options.v1 import options_pb2

_NUMBERS = {FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_INT32,
            FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
            FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64}


@lru_cache(maxsize=None)
def _ruled(descriptor: Descriptor) -> tuple[tuple[FieldDescriptor, options_pb2.FieldRules | None], ...]:
    """The fields of a message type that carry rules or hold messages (looked up once per type)."""
    out = []
    for fd in descriptor.fields:
        opts = fd.GetOptions()
        rules = opts.Extensions[options_pb2.rules] if opts.HasExtension(options_pb2.rules) else None
        nested = fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry
        if rules is not None or nested:
            out.append((fd, rules))
    return tuple(out)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _value_problem(name: str, value, rules: options_pb2.FieldRules, number: bool) -> str | None:
    if number:
        if isinstance(value, float) and math.isnan(value):
            return f"{name} is not a number"
        if rules.HasField("min") and rules.HasField("max") and not rules.min <= value <= rules.max:
            return f"{name} must be between {_fmt(rules.min)} and {_fmt(rules.max)}, got {_fmt(value)}"
        if (rules.HasField("greater_than") and rules.HasField("less_than")
                and not rules.greater_than < value < rules.less_than):
            return (f"{name} must be strictly between {_fmt(rules.greater_than)} and {_fmt(rules.less_than)}, "
                    f"got {_fmt(value)}")
        if rules.HasField("min") and value < rules.min:
            return f"{name} must be at least {_fmt(rules.min)}, got {_fmt(value)}"
        if rules.HasField("max") and value > rules.max:
            return f"{name} must be at most {_fmt(rules.max)}, got {_fmt(value)}"
        if rules.HasField("greater_than") and not value > rules.greater_than:
            return f"{name} must be greater than {_fmt(rules.greater_than)}, got {_fmt(value)}"
        if rules.HasField("less_than") and not value < rules.less_than:
            return f"{name} must be less than {_fmt(rules.less_than)}, got {_fmt(value)}"
    elif rules.choices and value not in rules.choices:
        return f"{name} {value!r} is not one of: {', '.join(rules.choices)}"
    return None


def violations(message: Message, prefix: str = "") -> list[tuple[str, str]]:
    """(field, what is wrong) for every rule ``message`` breaks."""
    out: list[tuple[str, str]] = []
    for fd, rules in _ruled(message.DESCRIPTOR):
        name = prefix + fd.name
        value = getattr(message, fd.name)
        given = message.HasField(fd.name) if fd.has_presence else bool(value)
        if fd.type == FieldDescriptor.TYPE_MESSAGE and not fd.message_type.GetOptions().map_entry:
            for i, item in enumerate(value if fd.is_repeated else ([value] if given else [])):
                out += violations(item, f"{name}[{i}]." if fd.is_repeated else f"{name}.")
        if rules is None:
            continue
        if not given:
            if rules.required:
                out.append((name, f"{name} is required"))
            continue
        number = fd.type in _NUMBERS
        for item in (value if fd.is_repeated else [value]):
            if (problem := _value_problem(name, item, rules, number)) is not None:
                out.append((name, problem))
                break
    return out


def check(message) -> None:
    """InvalidArgument naming every field at fault; nothing for a request within its rules
    (or for raw bytes: the gateway's router relays requests it does not decode)."""
    if not isinstance(message, Message):
        return
    if found := violations(message):
        raise errors.InvalidArgument("; ".join(why for _, why in found) + ".", violations=found)
