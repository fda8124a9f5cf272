"""Decoding of Kubernetes protobuf request bodies into JSON-shaped dicts.

kubectl's typed clients (the `create <generator>` commands, `create token`,
`autoscale`, `auth can-i`, `auth whoami`) POST bodies as
`application/vnd.kubernetes.protobuf`: the magic `k8s\\x00` followed by a
`runtime.Unknown` envelope whose `raw` bytes hold the object. This module owns
turning such a body into exactly the dict the JSON form of the same object
would give, using the field tables of `protobuf_types`.

Every failure (bad magic, truncated or malformed wire data, unknown kind,
nesting too deep) is reported as `ApiError.bad_request`.
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api.errors import ApiError
from kybernetes.api.protobuf_types import ANY_VERSION_KINDS, KINDS, MESSAGES

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
MAX_DEPTH = 64

_SCALARS = {"s", "i32", "i64", "b", "by"}
_WELL_KNOWN = {"Time", "MicroTime", "IOS", "Q", "FieldsV1", "ExtraValue"}

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
        fields[number] = Field(
            json=name.rstrip("!"),
            type=type_.rstrip("^").removeprefix("[]").removeprefix("{}"),
            repeated=repeated,
            map=is_map,
            keep_zero=keep,
            inline=inline,
        )
    return fields


@functools.cache
def _table(message: str) -> dict[int, Field]:
    return parse_table(MESSAGES[message])


def message_for(api_version: str, kind: str) -> str | None:
    """The message name decoding a top-level object of this apiVersion/kind, if known."""
    return KINDS.get((api_version, kind)) or ANY_VERSION_KINDS.get(kind)


# --- wire format ------------------------------------------------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise _Malformed("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Malformed("varint too long")


def _iter_fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """(field number, wire type, value) triples; value is int for varints and bytes otherwise."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Malformed("field number 0")
        if wire == _VARINT:
            value, pos = _read_varint(buf, pos)
        elif wire == _LEN:
            length, pos = _read_varint(buf, pos)
            if length > end - pos:
                raise _Malformed("length exceeds message")
            value = buf[pos:pos + length]
            pos += length
        elif wire == _FIXED64:
            if pos + 8 > end:
                raise _Malformed("truncated fixed64")
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == _FIXED32:
            if pos + 4 > end:
                raise _Malformed("truncated fixed32")
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise _Malformed(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    # Negative int32/int64 travel as 64-bit two's complement varints.
    value &= (1 << 64) - 1
    if value >= 1 << 63:
        value -= 1 << 64
    if bits == 32 and not -(1 << 31) <= value < (1 << 31):
        raise _Malformed("int32 out of range")
    return value


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed("string is not valid UTF-8") from exc


# --- values -----------------------------------------------------------------------


def _scalar(type_: str, wire: int, value: Any) -> Any:
    if type_ in ("s", "by"):
        if wire != _LEN:
            raise _Malformed("expected length-delimited value")
        return _utf8(value) if type_ == "s" else base64.b64encode(value).decode("ascii")
    if wire != _VARINT:
        raise _Malformed("expected varint value")
    if type_ == "b":
        return value != 0
    return _signed(value, 32 if type_ == "i32" else 64)


def _packed(type_: str, raw: bytes) -> list[Any]:
    items: list[Any] = []
    pos = 0
    while pos < len(raw):
        value, pos = _read_varint(raw, pos)
        items.append(_scalar(type_, _VARINT, value))
    return items


def format_timestamp(seconds: int, nanos: int, micro: bool = False) -> str:
    """RFC 3339 text of a protobuf Timestamp as Go's JSON writes it: `Time` drops the
    fraction, `MicroTime` keeps six digits."""
    try:
        moment = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC) + _dt.timedelta(seconds=seconds)
    except OverflowError as exc:
        raise _Malformed("timestamp out of range") from exc
    if not 0 <= nanos < 1_000_000_000:
        raise _Malformed("nanos out of range")
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if micro:
        text += f".{nanos // 1000:06d}"
    return text + "Z"


def _well_known(type_: str, raw: bytes) -> Any:
    fields = _iter_fields(raw)
    if type_ in ("Time", "MicroTime"):
        if not fields:
            return None  # Go's zero time: JSON omits it (omitzero) or writes null.
        seconds = nanos = 0
        for number, wire, value in fields:
            if number == 1 and wire == _VARINT:
                seconds = _signed(value, 64)
            elif number == 2 and wire == _VARINT:
                nanos = _signed(value, 32)
        return format_timestamp(seconds, nanos, micro=type_ == "MicroTime")
    if type_ == "IOS":
        kind, int_val, str_val = 0, 0, ""
        for number, wire, value in fields:
            if number == 1 and wire == _VARINT:
                kind = _signed(value, 64)
            elif number == 2 and wire == _VARINT:
                int_val = _signed(value, 32)
            elif number == 3 and wire == _LEN:
                str_val = _utf8(value)
        return str_val if kind == 1 else int_val
    if type_ == "Q":
        text = "0"
        for number, wire, value in fields:
            if number == 1 and wire == _LEN:
                text = _utf8(value)
        return text
    if type_ == "ExtraValue":
        return [_utf8(v) for n, w, v in fields if n == 1 and w == _LEN]
    if type_ == "FieldsV1":
        for number, wire, value in fields:
            if number == 1 and wire == _LEN:
                try:
                    return orjson.loads(value)
                except orjson.JSONDecodeError as exc:
                    raise _Malformed("fieldsV1 is not JSON") from exc
        return {}
    raise _Malformed(f"unknown well-known type {type_}")


def _single(field: Field, wire: int, value: Any, depth: int) -> Any:
    if field.type in _SCALARS:
        return _scalar(field.type, wire, value)
    if wire != _LEN:
        raise _Malformed(f"expected embedded message for {field.json}")
    if field.type in _WELL_KNOWN:
        return _well_known(field.type, value)
    return _decode_message(field.type, value, depth + 1)


def _map_entry(field: Field, raw: bytes, depth: int) -> tuple[str, Any]:
    key = ""
    value: Any = _map_default(field.type)
    for number, wire, item in _iter_fields(raw):
        if number == 1:
            if wire != _LEN:
                raise _Malformed("map key must be a string")
            key = _utf8(item)
        elif number == 2:
            value = _single(field, wire, item, depth)
    return key, value


def _map_default(type_: str) -> Any:
    """The JSON of a Go zero value, for map entries that omit their value."""
    if type_ in _SCALARS:
        return "" if type_ in ("s", "by") else (False if type_ == "b" else 0)
    return {"Q": "0", "ExtraValue": [], "IOS": 0, "Time": None, "MicroTime": None}.get(type_, {})


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value is False or (isinstance(value, int) and value == 0)


def _decode_message(message: str, raw: bytes, depth: int) -> dict[str, Any]:
    if depth > MAX_DEPTH:
        raise _Malformed("message nesting too deep")
    table = _table(message)
    out: dict[str, Any] = {}
    for number, wire, value in _iter_fields(raw):
        field = table.get(number)
        if field is None:
            continue
        if field.map:
            if wire != _LEN:
                raise _Malformed(f"bad map entry for {field.json}")
            key, item = _map_entry(field, value, depth)
            out.setdefault(field.json, {})[key] = item
        elif field.repeated:
            if wire == _LEN and field.type in ("i32", "i64", "b"):
                out.setdefault(field.json, []).extend(_packed(field.type, value))
            else:
                out.setdefault(field.json, []).append(_single(field, wire, value, depth))
        elif field.inline:
            if wire != _LEN:
                raise _Malformed(f"expected embedded message for {field.json}")
            out.update(_decode_message(field.type, value, depth + 1))
        else:
            item = _single(field, wire, value, depth)
            if item is None and field.keep_zero:
                out[field.json] = None
                continue
            # Only scalars can be Go value fields that JSON's omitempty drops; a present
            # message (IntOrString, Quantity, struct) is always written by both encoders.
            if item is None or (field.type in _SCALARS and _is_zero(item) and not field.keep_zero):
                out.pop(field.json, None)
            else:
                out[field.json] = item
    for field in _absent_as_null(message):
        out.setdefault(field.json, None)
    return out


@functools.cache
def _absent_as_null(message: str) -> tuple[Field, ...]:
    """Collections that Go's JSON writes as `null` when the protobuf leaves them out."""
    return tuple(f for f in _table(message).values() if f.keep_zero and (f.repeated or f.map))


# --- envelope ---------------------------------------------------------------------


def _unknown_envelope(buf: bytes) -> tuple[str, str, bytes, str]:
    """(apiVersion, kind, raw, contentEncoding) of a `runtime.Unknown`."""
    api_version = kind = encoding = ""
    raw = b""
    for number, wire, value in _iter_fields(buf):
        if wire != _LEN:
            continue
        if number == 1:
            for n, w, v in _iter_fields(value):
                if w == _LEN and n == 1:
                    api_version = _utf8(v)
                elif w == _LEN and n == 2:
                    kind = _utf8(v)
        elif number == 2:
            raw = value
        elif number == 3:
            encoding = _utf8(value)
    return api_version, kind, raw, encoding


def decode_k8s_protobuf(body: bytes) -> dict[str, Any]:
    """Decode a Kubernetes protobuf request body into the dict its JSON form would give."""
    if not isinstance(body, bytes | bytearray | memoryview):
        raise ApiError.bad_request("protobuf body must be bytes")
    body = bytes(body)
    if not body.startswith(MAGIC):
        raise ApiError.bad_request("protobuf body does not start with the Kubernetes magic prefix")
    try:
        api_version, kind, raw, encoding = _unknown_envelope(body[len(MAGIC):])
        if encoding:
            raise ApiError.bad_request(f"unsupported protobuf content encoding {encoding!r}")
        if not kind or not api_version:
            raise ApiError.bad_request("protobuf body has no apiVersion/kind")
        message = message_for(api_version, kind)
        if message is None:
            raise ApiError.bad_request(
                f"protobuf decoding of {api_version}, Kind={kind} is not supported; send JSON instead")
        obj = _decode_message(message, raw, 1)
    except _Malformed as exc:
        raise ApiError.bad_request(f"malformed protobuf body: {exc}") from None
    except (RecursionError, ValueError, OverflowError) as exc:
        raise ApiError.bad_request(f"malformed protobuf body: {exc}") from None
    return {"apiVersion": api_version, "kind": kind, **obj}
