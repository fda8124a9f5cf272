"""Kubernetes protobuf: decoding request bodies, encoding responses and watch frames.

kubectl's typed clients (the `create <generator>` commands, `create token`,
`autoscale`, `auth can-i`, `auth whoami`) POST bodies as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\x00` followed by a
`runtime.Unknown` envelope whose `raw` bytes hold the object. This module owns
turning such a body into exactly the dict the JSON form of the same object
would give, using the field tables of `protobuf_types`.

Every failure (bad magic, truncated or malformed wire data, unknown kind,
nesting too deep, a quantity that does not parse) is reported as
`ApiError.bad_request`.

Both directions compile each message's table once into a Python function (generated
source run through `exec`, on first use), so a body is decoded or an object encoded
without interpreting the table field by field.

The other way, `encode_object_message` / `encode_k8s_protobuf` write a JSON-shaped
object (or `<Kind>List`) byte for byte as kube-apiserver does, `list_body` builds a
LIST response from cached per-object messages, and `watch_frame` one frame of a
`stream=watch` response. Objects whose kind has no table raise `NotEncodable` (406).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import functools
import hashlib
import importlib.util
import marshal
import os
import sys
import tempfile
import threading
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api.errors import ApiError
from kybernetes.api.protobuf_types import ANY_VERSION_KINDS, KINDS, MESSAGES
from kybernetes.api.quantity import QUANTITY_REGEX_MSG, parse_quantity

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAX_DEPTH = 64

_SCALARS = {"s", "i32", "i64", "b", "by"}
_WELL_KNOWN = {"Time", "MicroTime", "IOS", "Q", "FieldsV1", "ExtraValue", "Raw"}

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


class _Malformed(Exception):
    """Internal: the bytes are not valid protobuf for the expected message."""


@dataclass(frozen=True)
class Field:
    json: str
    type: str
    repeated: bool = False
    map: bool = False
    keep_zero: bool = False
    inline: bool = False
    pointer: bool = False


def parse_table(spec: str) -> dict[int, Field]:
    """Parse one compact message description (see `protobuf_types`) into fields by number."""
    fields: dict[int, Field] = {}
    for part in spec.split(";"):
        tokens = part.split()
        if not tokens:
            continue
        number = int(tokens[0])
        name = tokens[1]
        type_ = tokens[2] if len(tokens) > 2 else "s"
        keep = name.endswith("!")
        inline = type_.endswith("^")
        repeated = type_.startswith("[]")
        is_map = type_.startswith("{}")
        pointer = type_.startswith("*")
        fields[number] = Field(
            json=name.rstrip("!"),
            type=type_.rstrip("^").removeprefix("[]").removeprefix("{}").removeprefix("*"),
            repeated=repeated,
            map=is_map,
            keep_zero=keep,
            inline=inline,
            pointer=pointer,
        )
    return fields


LIST_SUFFIX = "List"


@functools.cache
def _table(message: str) -> dict[int, Field]:
    spec = MESSAGES.get(message)
    if spec is None:
        item = _list_item(message)
        if item is None:
            raise KeyError(message)
        # Every XxxList of k8s.io/api has the same two fields.
        spec = f"1 metadata ListMeta; 2 items []{item}"
    return parse_table(spec)


def _list_item(message: str) -> str | None:
    """The item message of a synthesized `<Item>List` message name, if it is one."""
    if message.endswith(LIST_SUFFIX) and message not in MESSAGES:
        item = message[:-len(LIST_SUFFIX)]
        if item in MESSAGES:
            return item
    return None


def message_for(api_version: str, kind: str) -> str | None:
    """The message name of a top-level object of this apiVersion/kind, if known.

    `<Kind>List` of every kind with a table is known too, as the message `<Message>List`."""
    message = KINDS.get((api_version, kind)) or ANY_VERSION_KINDS.get(kind)
    if message is None and kind.endswith(LIST_SUFFIX):
        item = KINDS.get((api_version, kind[:-len(LIST_SUFFIX)]))
        if item is not None:
            message = item + LIST_SUFFIX
    return message


# --- decoding: wire format ----------------------------------------------------------


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint too long")


def _payload(buf: bytes, pos: int, end: int, wire: int) -> tuple[int, int]:
    """(start, stop) of the non-varint value of this wire type whose bytes (after the key)
    begin at `pos`."""
    if wire == _LEN:
        length, pos = _varint(buf, pos, end)
        if length > end - pos:
            raise _Malformed("length exceeds message")
        return pos, pos + length
    if wire == _FIXED64:
        if pos + 8 > end:
            raise _Malformed("truncated fixed64")
        return pos, pos + 8
    if wire == _FIXED32:
        if pos + 4 > end:
            raise _Malformed("truncated fixed32")
        return pos, pos + 4
    raise _Malformed(f"unsupported wire type {wire}")


def _spans(buf: bytes, pos: int, end: int) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) of the message in `buf[pos:end]`, checked to its
    end: the value is an int for varints and (start, stop) positions in `buf` otherwise.
    Reading one byte past `end` is caught by the final check (or is an IndexError at the
    end of `buf`), as in the generated decoders."""
    out: list[tuple[int, int, Any]] = []
    while pos < end:
        key = buf[pos]
        pos += 1
        if key > 127:
            key, pos = _varint(buf, pos - 1, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value = buf[pos]
            pos += 1
            if value > 127:
                value, pos = _varint(buf, pos - 1, end)
            out.append((number, wire, value))
        elif wire == _LEN:
            length = buf[pos]
            pos += 1
            if length > 127:
                length, pos = _varint(buf, pos - 1, end)
            stop = pos + length
            if stop > end:
                raise _Malformed("length exceeds message")
            out.append((number, wire, (pos, stop)))
            pos = stop
        else:
            span = _payload(buf, pos, end, wire)
            out.append((number, wire, span))
            pos = span[1]
    if pos != end:
        raise _Malformed("truncated field")
    return out


def _iter_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples; value is int for varints and bytes otherwise."""
    return [(n, w, v if w == _VARINT else buf[v[0]:v[1]]) for n, w, v in _spans(buf, 0, len(buf))]


def _signed(value: int, bits: int) -> int:
    # Negative int32/int64 travel as 64-bit two's complement varints.
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < (1 << 31):
        raise _Malformed("int32 out of range")
    return value


def _text(buf: bytes, start: int, stop: int) -> str:
    try:
        return buf[start:stop].decode()
    except UnicodeDecodeError as exc:
        raise _Malformed("string is not valid UTF-8") from exc


# --- decoding: well-known types ------------------------------------------------------


def format_timestamp(seconds: int, nanos: int, micro: bool = False) -> str:
    """RFC 3339 text of a protobuf Timestamp as Go's JSON writes it: `Time` drops the
    fraction, `MicroTime` keeps six digits."""
    try:
        moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise _Malformed("timestamp out of range") from exc
    if not 0 <= nanos < 1_000_000_000:
        raise _Malformed("nanos out of range")
    # Not strftime: its %Y does not pad years before 1000, and Go writes four digits
    # (a Lease spec stamps times in year 1).
    text = (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")
    if micro:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


_timestamp = functools.lru_cache(maxsize=4096)(format_timestamp)


def _wk_time(buf: bytes, pos: int, end: int, micro: bool) -> str | None:
    if pos == end:
        return None  # Go's zero time: JSON omits it (omitzero) or writes null.
    seconds = nanos = 0
    for number, wire, value in _spans(buf, pos, end):
        if number == 1 and wire == _VARINT:
            seconds = _signed(value, 64)
        elif number == 2 and wire == _VARINT:
            nanos = _signed(value, 32)
    return _timestamp(seconds, nanos, micro)


def _wk_ios(buf: bytes, pos: int, end: int) -> int | str:
    """IntOrString {type=1, intVal=2, strVal=3}."""
    kind, int_val, str_val = 0, 0, ""
    for number, wire, value in _spans(buf, pos, end):
        if number == 1 and wire == _VARINT:
            kind = _signed(value, 64)
        elif number == 2 and wire == _VARINT:
            int_val = _signed(value, 32)
        elif number == 3 and wire == _LEN:
            str_val = _text(buf, *value)
    return str_val if kind == 1 else int_val


@functools.lru_cache(maxsize=4096)
def _quantity(raw: bytes) -> str:
    """A Quantity's text, refused unless it parses, as Go's `Quantity.Unmarshal` does: so
    a decoded body needs no type check of its quantities (see `decode_k8s_protobuf`)."""
    text = raw.decode()
    if parse_quantity(text) is None:
        raise _Malformed(QUANTITY_REGEX_MSG)
    return text


def _wk_quantity(buf: bytes, pos: int, end: int) -> str:
    """Quantity {string=1}; nearly always exactly one short field, read without a list."""
    if end - pos > 2 and buf[pos] == 0x0A and pos + 2 + buf[pos + 1] == end:
        return _quantity(buf[pos + 2:end])
    text = "0"
    for number, wire, value in _spans(buf, pos, end):
        if number == 1 and wire == _LEN:
            text = _quantity(buf[value[0]:value[1]])
    return text


def _wk_extra(buf: bytes, pos: int, end: int) -> list[str]:
    return [_text(buf, *v) for n, w, v in _spans(buf, pos, end) if n == 1 and w == _LEN]


# Whether the decode now running on this thread read free-form JSON (FieldsV1,
# RawExtension), whose nesting the message tables cannot bound.
_json_seen = threading.local()


def _wk_json(buf: bytes, pos: int, end: int, raw: bool) -> Any:
    """RawExtension {raw=1} or FieldsV1 {raw=1}: JSON bytes, the first field 1 counts."""
    for number, wire, value in _spans(buf, pos, end):
        if number == 1 and wire == _LEN:
            _json_seen.value = True
            try:
                return orjson.loads(buf[value[0]:value[1]])
            except orjson.JSONDecodeError as exc:
                raise _Malformed("raw extension is not JSON" if raw else "fieldsV1 is not JSON") from exc
    return None if raw else {}


# --- decoding: messages ---------------------------------------------------------------
#
# Like the encoders, each message's table is compiled once into a Python function,
# `d_<Message>(buf, pos, end, room) -> dict`, that decodes `buf[pos:end]` in place
# (`room`: how many levels of messages may still nest, `MAX_DEPTH` for the object):
# the field key is dispatched on by its whole value (field number and wire type) through
# a tree of integer comparisons, lengths and one-byte varints are read inline, strings
# are one `bytes.decode`, nested messages are decoded by calling their function on the
# same buffer. The function handles each field as it is normally sent; anything else
# (unknown fields, packed repeated numbers, wrong wire types, field number 0) goes to
# `_other`, which skips, decodes or refuses it. Go's JSON and protobuf differ in what
# they leave out, so, as in the encoders:
# * a scalar value field without `!` at its zero value is absent in JSON, so a zero on
#   the wire removes the key (the last occurrence of a field wins);
# * `Time`, `MicroTime`, `Raw` and `FieldsV1` can decode to None: kept as null with `!`,
#   absent without;
# * repeated and map fields marked `!` are null when the wire has none of them.

_MAP_DEFAULTS = {"s": "", "by": "", "i32": 0, "i64": 0, "b": False, "Q": "0", "IOS": 0, "Time": None,
                 "MicroTime": None, "Raw": None}
_MAYBE_NONE = {"Time", "MicroTime", "Raw", "FieldsV1"}


def _map_default(type_: str) -> Any:
    """The JSON of a Go zero value, for map entries that leave their value out (a new
    list or dict each time)."""
    return [] if type_ == "ExtraValue" else _MAP_DEFAULTS.get(type_, {})


def _value_expr(type_: str, start: str, stop: str) -> str:
    """Python expression of a length-delimited value of this type in `buf[start:stop]`."""
    return {
        "s": f"buf[{start}:{stop}].decode()",
        "by": f"_b64e(buf[{start}:{stop}]).decode()",
        "Time": f"_wk_time(buf, {start}, {stop}, False)",
        "MicroTime": f"_wk_time(buf, {start}, {stop}, True)",
        "IOS": f"_wk_ios(buf, {start}, {stop})",
        "Q": f"_wk_quantity(buf, {start}, {stop})",
        "ExtraValue": f"_wk_extra(buf, {start}, {stop})",
        "Raw": f"_wk_json(buf, {start}, {stop}, True)",
        "FieldsV1": f"_wk_json(buf, {start}, {stop}, False)",
    }.get(type_) or f"d_{type_}(buf, {start}, {stop}, room - 1)"


def _read_varint_lines(ind: str, var: str, pos: str, end: str, type_: str) -> list[str]:
    lines = [f"{ind}{var} = buf[{pos}]", f"{ind}{pos} += 1", f"{ind}if {var} > 127:",
             f"{ind}    {var}, {pos} = _varint(buf, {pos} - 1, {end})"]
    if type_ in ("i32", "i64"):  # one byte is always a small positive number
        lines.append(f"{ind}    {var} = _signed({var}, {32 if type_ == 'i32' else 64})")
    elif type_ == "b":
        lines.append(f"{ind}{var} = {var} != 0")
    return lines


def _read_len_lines(ind: str, length: str, pos: str, stop: str, end: str) -> list[str]:
    # Past `end` a one-byte read sees the parent's next byte (or raises IndexError at the
    # end of the body); either way `stop` then lies beyond `end` and the field is refused.
    return [f"{ind}{length} = buf[{pos}]", f"{ind}{pos} += 1", f"{ind}if {length} > 127:",
            f"{ind}    {length}, {pos} = _varint(buf, {pos} - 1, {end})",
            f"{ind}{stop} = {pos} + {length}", f"{ind}if {stop} > {end}:",
            f"{ind}    raise _Malformed('length exceeds message')"]


class _DecoderGen:
    """Python source of one decoder function per message."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def map_entry(self, ind: str, message: str, number: int, f: Field) -> None:
        """Decode the map entry in buf[pos:stop] into `k`, `x`."""
        value_tag = _tag(2, f.type)[0]
        lines = self.lines
        lines += [f"{ind}p = pos", f"{ind}k = ''", f"{ind}x = {_map_default(f.type)!r}",
                  f"{ind}while p < stop:",
                  f"{ind}    t = buf[p]",
                  f"{ind}    p += 1",
                  f"{ind}    if t == 10:"]
        lines += _read_len_lines(ind + "        ", "m", "p", "s", "stop")
        lines += [f"{ind}        k = buf[p:s].decode()", f"{ind}        p = s",
                  f"{ind}    elif t == {value_tag}:"]
        if f.type in _VARINT_TYPES:
            lines += _read_varint_lines(ind + "        ", "x", "p", "stop", f.type)
        else:
            lines += _read_len_lines(ind + "        ", "m", "p", "s", "stop")
            lines += [f"{ind}        x = {_value_expr(f.type, 'p', 's')}", f"{ind}        p = s"]
        lines += [f"{ind}    else:",
                  f"{ind}        k, x = _entry(T_{message}[{number}], buf, pos, stop, room)",
                  f"{ind}        p = stop",
                  f"{ind}        break",
                  f"{ind}if p != stop:",
                  f"{ind}    raise _Malformed('truncated map entry')"]

    def field(self, ind: str, message: str, number: int, f: Field) -> None:
        lines = self.lines
        name = f.json
        if f.type in _VARINT_TYPES and not f.map:
            lines += _read_varint_lines(ind, "v", "pos", "end", f.type)
            if f.repeated:
                lines += [f"{ind}got = out.get({name!r})", f"{ind}if got is None:",
                          f"{ind}    out[{name!r}] = [v]", f"{ind}else:", f"{ind}    got.append(v)"]
            elif f.keep_zero:
                lines.append(f"{ind}out[{name!r}] = v")
            else:
                lines += [f"{ind}if v:", f"{ind}    out[{name!r}] = v", f"{ind}else:",
                          f"{ind}    out.pop({name!r}, None)"]
            return
        lines += _read_len_lines(ind, "n", "pos", "stop", "end")
        expr = _value_expr(f.type, "pos", "stop")
        if f.map:
            self.map_entry(ind, message, number, f)
            lines += [f"{ind}got = out.get({name!r})", f"{ind}if got is None:",
                      f"{ind}    out[{name!r}] = {{k: x}}", f"{ind}else:", f"{ind}    got[k] = x"]
        elif f.repeated:
            lines += [f"{ind}item = {expr}", f"{ind}got = out.get({name!r})", f"{ind}if got is None:",
                      f"{ind}    out[{name!r}] = [item]", f"{ind}else:", f"{ind}    got.append(item)"]
        elif f.inline:
            lines.append(f"{ind}out.update({expr})")
        elif f.type in ("s", "by") and not f.keep_zero:
            lines += [f"{ind}if n:", f"{ind}    out[{name!r}] = {expr}", f"{ind}else:",
                      f"{ind}    out.pop({name!r}, None)"]
        elif f.type in _MAYBE_NONE:
            lines += [f"{ind}item = {expr}", f"{ind}if item is not None:", f"{ind}    out[{name!r}] = item"]
            lines += [f"{ind}else:", f"{ind}    out[{name!r}] = None" if f.keep_zero
                      else f"{ind}    out.pop({name!r}, None)"]
        else:
            lines.append(f"{ind}out[{name!r}] = {expr}")
        lines.append(f"{ind}pos = stop")

    def dispatch(self, ind: str, message: str, by_tag: list[tuple[int, int, Field]]) -> None:
        """A comparison tree over the expected keys, each leaf a field's code."""
        lines = self.lines
        if len(by_tag) > 3:
            middle = len(by_tag) // 2
            lines.append(f"{ind}if key < {by_tag[middle][0]}:")
            self.dispatch(ind + "    ", message, by_tag[:middle])
            lines.append(f"{ind}else:")
            self.dispatch(ind + "    ", message, by_tag[middle:])
            return
        for i, (key, number, f) in enumerate(by_tag):
            lines.append(f"{ind}{'if' if i == 0 else 'elif'} key == {key}:")
            self.field(ind + "    ", message, number, f)
        if by_tag:
            lines.append(f"{ind}else:")
            ind += "    "
        lines.append(f"{ind}pos = _other(T_{message}, out, key, buf, pos, end, room)")

    def message(self, message: str) -> None:
        table = _table(message)
        by_tag = sorted((_key(number, f), number, f) for number, f in table.items())
        self.lines += [f"def d_{message}(buf, pos, end, room):",
                       "    if room < 1:",
                       "        raise _Malformed('message nesting too deep')",
                       "    out = {}",
                       "    while pos < end:",
                       "        key = buf[pos]",
                       "        pos += 1",
                       "        if key > 127:",  # fields 16 to 2047 have two-byte keys
                       "            b = buf[pos]",
                       "            if b < 128:",
                       "                key = (key & 127) | b << 7",
                       "                pos += 1",
                       "            else:",
                       "                key, pos = _varint(buf, pos - 1, end)"]
        self.dispatch("        ", message, by_tag)
        self.lines += ["    if pos != end:",
                       "        raise _Malformed('truncated field')"]
        for f in _absent_as_null(message):
            self.lines += [f"    if {f.json!r} not in out:", f"        out[{f.json!r}] = None"]
        self.lines += ["    return out", "", ""]


def _key(number: int, f: Field) -> int:
    """The key a field is normally sent with (repeated numbers unpacked, as Go sends them)."""
    return number << 3 | (_VARINT if f.type in _VARINT_TYPES and not f.map else _LEN)


@functools.cache
def _absent_as_null(message: str) -> tuple[Field, ...]:
    """Collections that Go's JSON writes as `null` when the protobuf leaves them out."""
    return tuple(f for f in _table(message).values() if f.keep_zero and (f.repeated or f.map))


def _value(f: Field, wire: int, value: Any, buf: bytes, room: int) -> Any:
    """One value of field `f` as `_spans` gives it, whatever wire type it came with."""
    if f.type in _VARINT_TYPES:
        if wire != _VARINT:
            raise _Malformed(f"expected varint value for {f.json}")
        return value != 0 if f.type == "b" else _signed(value, 32 if f.type == "i32" else 64)
    if wire != _LEN:
        raise _Malformed(f"expected length-delimited value for {f.json}")
    start, stop = value
    if f.type == "s":
        return _text(buf, start, stop)
    if f.type == "by":
        return base64.b64encode(buf[start:stop]).decode()
    if f.type in ("Time", "MicroTime"):
        return _wk_time(buf, start, stop, f.type == "MicroTime")
    if f.type == "IOS":
        return _wk_ios(buf, start, stop)
    if f.type == "Q":
        return _wk_quantity(buf, start, stop)
    if f.type == "ExtraValue":
        return _wk_extra(buf, start, stop)
    if f.type in ("Raw", "FieldsV1"):
        return _wk_json(buf, start, stop, f.type == "Raw")
    return _decoder(f.type)(buf, start, stop, room - 1)


def _entry(f: Field, buf: bytes, pos: int, end: int, room: int) -> tuple[str, Any]:
    """A map entry {key=1, value=2} sent in an unusual way (other fields, odd keys)."""
    key, item = "", _map_default(f.type)
    for number, wire, value in _spans(buf, pos, end):
        if number == 1:
            if wire != _LEN:
                raise _Malformed("map key must be a string")
            key = _text(buf, *value)
        elif number == 2:
            item = _value(f, wire, value, buf, room)
    return key, item


def _other(table: dict[int, Field], out: dict[str, Any], key: int, buf: bytes, pos: int, end: int,
           room: int) -> int:
    """A field the generated code does not expect: skipped when unknown, packed repeated
    numbers decoded, anything else refused. Returns the position after it."""
    number, wire = key >> 3, key & 7
    if number == 0:
        raise _Malformed("field number 0")
    f = table.get(number)
    if f is None:
        return _varint(buf, pos, end)[1] if wire == _VARINT else _payload(buf, pos, end, wire)[1]
    if f.repeated and wire == _LEN and f.type in _VARINT_TYPES:
        start, stop = _payload(buf, pos, end, wire)
        items = out.setdefault(f.json, [])
        while start < stop:
            value, start = _varint(buf, start, stop)
            items.append(_value(f, _VARINT, value, buf, room))
        return stop
    raise _Malformed(f"unexpected wire type {wire} for {f.json}")


@functools.cache
def _decoders() -> dict[str, Any]:
    """One compiled decoder per message: `d_<Message>(buf, pos, end, room) -> dict`."""
    gen = _DecoderGen()
    for message in MESSAGES:
        gen.message(message)
    namespace: dict[str, Any] = {
        "_Malformed": _Malformed, "_varint": _varint, "_signed": _signed, "_other": _other, "_entry": _entry,
        "_b64e": base64.b64encode, "_wk_time": _wk_time, "_wk_ios": _wk_ios, "_wk_quantity": _wk_quantity,
        "_wk_extra": _wk_extra, "_wk_json": _wk_json,
        **{f"T_{message}": _table(message) for message in MESSAGES},
    }
    exec(_compiled("\n".join(gen.lines), "decoders", _codec_cache_dir()), namespace)  # noqa: S102
    return namespace


def _codec_cache_dir() -> str:
    """Where the compiled codecs are kept: beside this module's own bytecode."""
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")


def _compiled(source: str, kind: str, cache_dir: str, write: bool | None = None) -> types.CodeType:
    """`compile(source)`, kept in `cache_dir`: the codecs are 1 MB of generated source, and
    compiling them took 0.4 s of every API server's start. A file is named by a hash of the
    source and of the interpreter's bytecode version, so that a change in either compiles
    anew; it is written (as Python writes bytecode: unless PYTHONDONTWRITEBYTECODE, or when
    `write` says so) where Python's own bytecode of this module is, with the same trust."""
    filename = f"<kybernetes protobuf {kind}>"
    key = hashlib.sha256(importlib.util.MAGIC_NUMBER + source.encode()).hexdigest()[:32]
    path = os.path.join(cache_dir, f"protobuf-{kind}-{key}.marshal")
    code = _kept_code(path, filename)
    if code is None:
        code = compile(source, filename, "exec")
        if not sys.dont_write_bytecode if write is None else write:
            _write_code(path, code, f"protobuf-{kind}-")
    return code


def _kept_code(path: str, filename: str) -> types.CodeType | None:
    """The code kept at `path`, or None when there is none or it is not whole."""
    try:
        with open(path, "rb") as f:
            code = marshal.load(f)
    except (OSError, EOFError, ValueError, TypeError):
        return None
    return code if isinstance(code, types.CodeType) and code.co_filename == filename else None


def _write_code(path: str, code: types.CodeType, prefix: str) -> None:
    """Write `code` to `path` whole (several API workers may start at once) and drop the
    files an older source left there. On a read-only install nothing is written: the codecs
    are then compiled at every start, as before."""
    directory = os.path.dirname(path)
    with contextlib.suppress(OSError):
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-" + prefix)
        try:
            with os.fdopen(fd, "wb") as f:
                marshal.dump(code, f)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        for name in os.listdir(directory):
            if name.startswith(prefix) and os.path.join(directory, name) != path:
                os.unlink(os.path.join(directory, name))


def _decoder_source(message: str) -> str:
    """The generated decoder of one message, for reading and debugging."""
    gen = _DecoderGen()
    gen.message(message)
    return "\n".join(gen.lines)


def _decoder(message: str) -> Any:
    namespace = _decoders()
    decode = namespace.get(f"d_{message}")
    if decode is None:  # an `<Item>List`: compiled the first time one arrives
        namespace[f"T_{message}"] = _table(message)
        exec(compile(_decoder_source(message), f"<kybernetes protobuf decoder {message}>", "exec"),  # noqa: S102
             namespace)
        decode = namespace[f"d_{message}"]
    return decode


# --- decoding: nesting bound ----------------------------------------------------------


def _json_depth(message: str, _visiting: frozenset[str] = frozenset()) -> int | None:
    """How deep (objects and arrays, the message itself 1) the JSON of this message can
    nest, free-form JSON inside it aside; None when the message can contain itself."""
    if message in _DEPTHS:
        return _DEPTHS[message]
    if message in _visiting:
        return None
    deepest = 0
    for f in _table(message).values():
        if f.type in _SCALARS or f.type in _WELL_KNOWN:
            inner = 1 if f.type in ("ExtraValue", "FieldsV1", "Raw") else 0
        else:
            child = _json_depth(f.type, _visiting | {message})
            if child is None:
                _DEPTHS[message] = None
                return None
            inner = child - 1 if f.inline else child
        deepest = max(deepest, inner + (1 if f.repeated or f.map else 0))
    _DEPTHS[message] = 1 + deepest
    return 1 + deepest


_DEPTHS: dict[str, int | None] = {}


# --- decoding: bodies -----------------------------------------------------------------


def _unknown_envelope(buf: bytes) -> tuple[str, str, bytes, str]:
    """(apiVersion, kind, raw, contentEncoding) of a `runtime.Unknown`."""
    api_version, kind, (start, stop), encoding = _envelope(buf, 0)
    return api_version, kind, buf[start:stop], encoding


def _envelope(buf: bytes, pos: int) -> tuple[str, str, tuple[int, int], str]:
    """(apiVersion, kind, raw's position, contentEncoding) of the `runtime.Unknown` that
    starts at `pos`."""
    api_version = kind = encoding = ""
    raw = (0, 0)
    for number, wire, value in _spans(buf, pos, len(buf)):
        if wire != _LEN:
            continue
        if number == 1:
            for n, w, v in _spans(buf, *value):
                if w == _LEN and n == 1:
                    api_version = _text(buf, *v)
                elif w == _LEN and n == 2:
                    kind = _text(buf, *v)
        elif number == 2:
            raw = value
        elif number == 3:
            encoding = _text(buf, *value)
    return api_version, kind, raw, encoding


def _decode(body: bytes) -> tuple[dict[str, Any], str]:
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ApiError.bad_request("protobuf body must be bytes")
    body = bytes(body)
    if not body.startswith(MAGIC):
        raise ApiError.bad_request("protobuf body does not start with the Kubernetes magic prefix")
    try:
        api_version, kind, (start, stop), encoding = _envelope(body, len(MAGIC))
        if encoding:
            raise ApiError.bad_request(f"unsupported protobuf content encoding {encoding!r}")
        if not kind or not api_version:
            raise ApiError.bad_request("protobuf body has no apiVersion/kind")
        message = message_for(api_version, kind)
        if message is None:
            raise ApiError.bad_request(
                f"protobuf decoding of {api_version}, Kind={kind} is not supported; send JSON instead")
        obj = _decoder(message)(body, start, stop, MAX_DEPTH)
        if _list_item(message) is not None:
            obj.setdefault("items", [])  # kube-apiserver's JSON writes an empty list as []
    except _Malformed as exc:
        raise ApiError.bad_request(f"malformed protobuf body: {exc}") from None
    except (RecursionError, ValueError, OverflowError, IndexError) as exc:
        # ValueError: a string that is not UTF-8; IndexError: a read past the body's end.
        raise ApiError.bad_request(f"malformed protobuf body: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}, message


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body into the dict its JSON form would give;
    `ApiError` 400 for anything malformed or of a kind without a table.

    The result is typed as Go's decoder would type it: only fields of the message tables
    (which the kinds' schemas all know, a unit test checks), each of its field's JSON
    type, integers in range, quantities that parse. So, unlike a JSON body, it needs no
    check for unknown fields or values of the wrong type."""
    return _decode(body)[0]


def decode_with_depth_bound(body: bytes) -> tuple[dict[str, Any], int | None]:
    """`decode_k8s_protobuf`, and a bound on the result's JSON nesting depth (None when
    unbounded: the message type can contain itself, or free-form JSON was read), so the
    API server walks the object to check its depth only when it could be too deep."""
    _json_seen.value = False
    obj, message = _decode(body)
    if _json_seen.value:
        return obj, None
    return obj, _json_depth(message)



# --- encoding ---------------------------------------------------------------------
#
# Each message's table is compiled once into a Python function (generated source, run
# through `exec`) that writes the fields in ascending number order the way Go's
# gogo-protobuf marshalling does. Interpreting the table per field would cost a dispatch
# and a dataclass lookup per field per object on every protobuf GET, LIST and watch event.
#
# Which fields are written (see `protobuf_types` for the table syntax):
# * a scalar without `!` is a Go value field: always written, zero when JSON omits it;
# * a scalar with `!` is a pointer or a non-omitempty value field: written when JSON has a
#   non-null value (Go's JSON always has non-omitempty value fields, and has pointers
#   exactly when they are set), so "present in JSON" is "written in protobuf" for both;
# * bytes (`by`) are written when present, even empty (gogo tests `!= nil`);
# * `Time`/`MicroTime`/`Raw` value structs are always written, a zero one as an empty
#   message; `*Time` pointers only when set;
# * other messages are written when JSON has them (Go's JSON never omits a struct value);
# * `^` inlined structs are always written, built from the parent's own JSON keys;
# * repeated fields one element per tag; maps one entry per key, sorted, key and value
#   both always written.


class NotEncodable(ApiError):
    """An object that cannot be written as Kubernetes protobuf: its kind has no field table,
    or one of its values does not fit its field's type. Always a 406 NotAcceptable, so the
    API server can answer in JSON instead (kube-apiserver does the same for kinds without
    protobuf support)."""


def _varint_bytes(n: int) -> bytes:
    n &= (1 << 64) - 1  # negative int32/int64 travel as 64-bit two's complement
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VC_LIMIT = 1 << 14
_VC: tuple[bytes, ...] = tuple(_varint_bytes(i) for i in range(_VC_LIMIT))


def _vbig(n: Any) -> bytes:
    if n.__class__ is not int:
        if isinstance(n, float) and n.is_integer():
            n = int(n)
        elif not isinstance(n, int):
            raise TypeError(f"expected an integer, got {type(n).__name__}")
    return _varint_bytes(int(n))


def _len_prefixed(tag: bytes, payload: bytes) -> bytes:
    n = len(payload)
    return tag + (_VC[n] if n < _VC_LIMIT else _varint_bytes(n)) + payload


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


@functools.lru_cache(maxsize=8192)
def _time(text: str) -> bytes:
    """A Timestamp message {seconds=1, nanos=2}; Go writes both even when zero."""
    moment = _dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    delta = moment - _EPOCH
    seconds = delta.days * 86400 + delta.seconds
    return b"\x08" + _varint_bytes(seconds) + b"\x10" + _varint_bytes(delta.microseconds * 1000)


@functools.lru_cache(maxsize=8192, typed=True)  # typed: 1, 1.0 and True differ
def _ios(value: int | str) -> bytes:
    """IntOrString {type=1, intVal=2, strVal=3}, all three always written."""
    if isinstance(value, str):
        return b"\x08\x01\x10\x00" + _len_prefixed(b"\x1a", value.encode())
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("IntOrString must be an integer or a string")
    return b"\x08\x00\x10" + _varint_bytes(value) + b"\x1a\x00"


@functools.lru_cache(maxsize=8192, typed=True)  # typed: 1, 1.0 and True differ
def _qty(value: str | int | float) -> bytes:
    if isinstance(value, bool):
        raise TypeError("a quantity must be a string or a number")
    text = value if isinstance(value, str) else str(value)
    return _len_prefixed(b"\x0a", text.encode())


def _fields(value: Any) -> bytes:
    return _len_prefixed(b"\x0a", orjson.dumps(value))


def _raw(value: Any) -> bytes:
    # runtime.RawExtension {raw=1}: the JSON bytes; an empty extension writes nothing.
    return b"" if value is None else _len_prefixed(b"\x0a", orjson.dumps(value))


def _extra(value: list[str]) -> bytes:
    return b"".join(_len_prefixed(b"\x0a", item.encode()) for item in value)


def _b64(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


_VARINT_TYPES = {"i32", "i64", "b"}
_VALUE_STRUCTS = {"Time", "MicroTime", "Raw"}  # always written unless marked `*`
_PAYLOAD = {
    "s": "{}.encode()",
    "by": "_b64({})",
    "Time": "_time({})",
    "MicroTime": "_time({})",
    "IOS": "_ios({})",
    "Q": "_qty({})",
    "FieldsV1": "_fields({})",
    "ExtraValue": "_extra({})",
    "Raw": "_raw({})",
}
# Tag-plus-length (or tag-plus-value) prefixes are looked up in one tuple per tag for
# values below this, which covers most strings and numbers in one append.
_PREFIX_LIMIT = 128


def _fn_name(message: str) -> str:
    return "e_" + message


def _tag(number: int, type_: str) -> bytes:
    return _varint_bytes(number << 3 | (_VARINT if type_ in _VARINT_TYPES else _LEN))


@functools.cache
def _zero_message(message: str) -> bytes:
    """What Go writes for the message's zero value: its value scalars and value structs."""
    out = b""
    for number, f in sorted(_table(message).items()):
        if f.map or f.repeated:
            continue
        tag = _tag(number, f.type)
        if f.inline:
            out += _len_prefixed(tag, _zero_message(f.type))
        elif f.type in _VALUE_STRUCTS and not f.pointer:
            out += tag + b"\x00"
        elif f.type in _VARINT_TYPES | {"s"} and not f.keep_zero:
            out += tag + b"\x00"
    return out


class _Codegen:
    """Python source of one encoder function per message, plus the constants it uses."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}

    def prefixes(self, tag: bytes) -> str:
        name = "P" + tag.hex()
        if name not in self.consts:
            self.consts[name] = tuple(tag + _VC[i] for i in range(_PREFIX_LIMIT))
        return name

    def write_len(self, ind: str, out: str, tag: bytes, expr: str) -> None:
        prefixes = self.prefixes(tag)
        self.lines += [
            f"{ind}b = {expr}",
            f"{ind}n = len(b)",
            f"{ind}{out} += {prefixes}[n] if n < {_PREFIX_LIMIT} else {tag!r} + (_VC[n] if n < {_VC_LIMIT} else _vbig(n))",
            f"{ind}{out} += b",
        ]

    def write_varint(self, ind: str, out: str, tag: bytes, var: str, type_: str) -> None:
        if type_ == "b":
            true, false = tag + b"\x01", tag + b"\x00"
            self.lines.append(f"{ind}{out} += {true!r} if {var} else {false!r}")
            return
        prefixes = self.prefixes(tag)
        self.lines.append(
            f"{ind}{out} += {prefixes}[{var}] if 0 <= {var} < {_PREFIX_LIMIT} else {tag!r} + _vbig({var})")

    def write_single(self, ind: str, out: str, tag: bytes, type_: str, var: str) -> None:
        if type_ in _VARINT_TYPES:
            self.write_varint(ind, out, tag, var, type_)
        else:
            template = _PAYLOAD.get(type_)
            self.write_len(ind, out, tag, template.format(var) if template else f"{_fn_name(type_)}({var})")

    def field(self, number: int, f: Field) -> None:
        tag = _tag(number, f.type)
        zero = tag + b"\x00"
        lines = self.lines
        if f.inline:
            lines.append(f"    # {f.json}: inlined from this object's own keys")
            self.write_len("    ", "out", tag, f"{_fn_name(f.type)}(o)")
            return
        lines.append(f"    v = get({f.json!r})")
        if f.map:
            lines += ["    if v:", "        for k in sorted(v):", "            x = v[k]",
                      "            e = bytearray()"]
            self.write_len("            ", "e", b"\x0a", "k.encode()")
            if f.type in ("Time", "MicroTime"):
                self.write_len("            ", "e", _tag(2, f.type), "_time(x) if x else b''")
            elif f.type in _VARINT_TYPES or f.type in _PAYLOAD:
                self.write_single("            ", "e", _tag(2, f.type), f.type, "x")
            else:
                self.write_len("            ", "e", _tag(2, f.type),
                               f"{_fn_name(f.type)}(x) if x is not None else b''")
            self.write_len("            ", "out", tag, "e")
        elif f.repeated:
            lines += ["    if v:", "        for x in v:"]
            self.write_single("            ", "out", tag, f.type, "x")
        elif f.type in _VALUE_STRUCTS and not f.pointer:
            self.write_len("    ", "out", tag, "_raw(v)" if f.type == "Raw" else "_time(v) if v else b''")
        elif (f.type in _VARINT_TYPES or f.type == "s") and not f.keep_zero:
            lines.append("    if v:")
            self.write_single("        ", "out", tag, f.type, "v")
            lines += ["    else:", f"        out += {zero!r}"]
        else:
            lines.append("    if v is not None:")
            self.write_single("        ", "out", tag, f.type, "v")

    def message(self, message: str) -> None:
        zero = "Z_" + message
        self.consts[zero] = _zero_message(message)
        self.lines += [f"def {_fn_name(message)}(o):",
                       "    if not o:",
                       f"        return {zero}",
                       "    get = o.get",
                       "    out = bytearray()"]
        for number, f in sorted(_table(message).items()):
            self.field(number, f)
        self.lines += ["    return out", "", ""]


@functools.cache
def _encoders() -> dict[str, Any]:
    """One compiled encoder per message: `e_<Message>(dict) -> bytes-like`."""
    gen = _Codegen()
    for message in MESSAGES:
        gen.message(message)
    namespace: dict[str, Any] = {
        "_vbig": _vbig, "_time": _time, "_ios": _ios, "_qty": _qty, "_fields": _fields,
        "_raw": _raw, "_extra": _extra, "_b64": _b64, "_VC": _VC, **gen.consts,
    }
    exec(_compiled("\n".join(gen.lines), "encoders", _codec_cache_dir()), namespace)  # noqa: S102
    return namespace


def compile_codecs() -> None:
    """Build every message's decoder and encoder now. Compiling them takes a few tenths of a
    second unless an earlier start kept them; done lazily, the first protobuf request would
    stall every client of the process."""
    _decoders()
    _encoders()


def _message_source(message: str) -> str:
    """The generated encoder of one message, for reading and debugging."""
    gen = _Codegen()
    gen.message(message)
    return "\n".join(gen.lines)


def _encoder(message: str) -> Any:
    return _encoders()[_fn_name(message)]


def can_encode(api_version: str, kind: str) -> bool:
    """Whether objects (or lists) of this apiVersion/kind can be written as protobuf."""
    return message_for(api_version, kind) is not None


def _message_of(obj: dict[str, Any]) -> str:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    message = message_for(api_version, kind) if isinstance(api_version, str) and isinstance(kind, str) else None
    if message is None:
        raise NotEncodable.not_acceptable(
            f"the server cannot write {api_version}, Kind={kind} as protobuf; ask for application/json")
    return message


_ENCODE_ERRORS = (TypeError, AttributeError, ValueError, LookupError, OverflowError, RecursionError)


def encode_message(message: str, obj: dict[str, Any]) -> bytes:
    """The bytes of `obj` as the named message (no envelope); `NotEncodable` if a value
    does not fit its field."""
    try:
        item = _list_item(message)
        if item is not None:
            encode = _encoder(item)
            return list_message(obj.get("metadata") or {}, (encode(i) for i in obj.get("items") or ()))
        return bytes(_encoder(message)(obj))
    except _ENCODE_ERRORS as exc:
        raise NotEncodable.not_acceptable(f"the object cannot be written as protobuf: {exc}") from None


def encode_object_message(obj: dict[str, Any]) -> bytes:
    """The kind's message bytes (no envelope) of a JSON-shaped object carrying apiVersion
    and kind; a `<Kind>List` dict gives the list message.

    Raises `NotEncodable` (an `ApiError`, 406 NotAcceptable) when the kind has no field
    table or a value does not fit its field's type."""
    return encode_message(_message_of(obj), obj)


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    """`k8s\\0` + runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding "",
    contentType ""}, byte for byte as kube-apiserver writes it."""
    type_meta = _len_prefixed(b"\x0a", api_version.encode()) + _len_prefixed(b"\x12", kind.encode())
    return b"".join((MAGIC, _len_prefixed(b"\x0a", type_meta), _len_prefixed(b"\x12", raw), b"\x1a\x00\x22\x00"))


def encode_k8s_protobuf(obj: dict[str, Any]) -> bytes:
    """A whole protobuf response body for a JSON-shaped object or list."""
    message = _message_of(obj)
    return envelope(obj["apiVersion"], obj["kind"], encode_message(message, obj))


def encode_list_meta(list_meta: dict[str, Any]) -> bytes:
    """metav1.ListMeta's message bytes."""
    try:
        return bytes(_encoder("ListMeta")(list_meta))
    except _ENCODE_ERRORS as exc:
        raise NotEncodable.not_acceptable(f"the list metadata cannot be written as protobuf: {exc}") from None


def list_message(list_meta: dict[str, Any], item_messages: Iterable[bytes]) -> bytes:
    """An XxxList message (ListMeta = 1, items = 2) from already-encoded item messages."""
    parts = [_len_prefixed(b"\x0a", encode_list_meta(list_meta))]
    for item in item_messages:
        n = len(item)
        parts += (b"\x12", _VC[n] if n < _VC_LIMIT else _varint_bytes(n), item)
    return b"".join(parts)


def list_body(api_version: str, list_kind: str, list_meta: dict[str, Any],
              item_messages: Iterable[bytes]) -> bytes:
    """A whole LIST response body from already-encoded item messages (so callers can cache
    each object's message bytes and only concatenate)."""
    return envelope(api_version, list_kind, list_message(list_meta, item_messages))


# --- watch streams ----------------------------------------------------------------


def watch_frame(event_type: str, object_envelope: bytes) -> bytes:
    """One frame of a protobuf watch stream: a 4-byte big-endian length, then a
    metav1.WatchEvent {type=1, object=2 RawExtension{raw=1}} whose raw is the object's
    `k8s\\0` envelope."""
    event = _len_prefixed(b"\x0a", event_type.encode()) + _len_prefixed(
        b"\x12", _len_prefixed(b"\x0a", object_envelope))
    return len(event).to_bytes(4, "big") + event


def iter_watch_frames(data: bytes) -> Iterator[tuple[str, dict[str, Any]]]:
    """(type, decoded object) of each frame of a protobuf watch stream; `ApiError` 400 on a
    truncated or malformed stream."""
    pos = 0
    while pos < len(data):
        if pos + 4 > len(data):
            raise ApiError.bad_request("truncated watch frame length")
        length = int.from_bytes(data[pos:pos + 4], "big")
        pos += 4
        if pos + length > len(data):
            raise ApiError.bad_request("truncated watch frame")
        frame = data[pos:pos + length]
        pos += length
        event_type, raw = "", b""
        try:
            for number, wire, value in _spans(frame, 0, len(frame)):
                if number == 1 and wire == _LEN:
                    event_type = _text(frame, *value)
                elif number == 2 and wire == _LEN:
                    raw = b"".join(frame[v[0]:v[1]] for n, w, v in _spans(frame, *value) if n == 1 and w == _LEN)
        except (_Malformed, ValueError, IndexError) as exc:
            raise ApiError.bad_request(f"malformed watch frame: {exc}") from None
        yield event_type, decode_k8s_protobuf(raw)
