"""`/openapi/v2` in gnostic's protobuf encoding (`openapi.v2.Document`).

Go clients ask for Swagger 2.0 only as protobuf
(`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`). kubectl needs it
for client-side validation whenever the OpenAPI v3 check finds no PATCH operation
for an object's kind: `kind: List` files, and custom resources whose group-version
has no v3 document. Without it `kubectl apply -f list.yaml` fails outright.

This module owns the encoding and the content negotiation; the document itself is
the JSON one `openapi.build_v2_document` builds, re-encoded field by field with
the field numbers of gnostic's `openapiv2/OpenAPIv2.proto`. Vendor extensions,
`default`, `example` and `enum` values travel as `NamedAny`/`Any` carrying YAML
text, which is what Go readers (kube-openapi's `VendorExtensionToMap`) parse.
JSON text is valid YAML, so values are written as compact JSON.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from kybernetes.api.registry import Registry
from kybernetes.apiserver import openapi

# What the response says it is: Go's mime parser rejects the '@' spelling, so
# kube-apiserver answers both Accept spellings with this one.
PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
# The spelling client-go's discovery sends in Accept.
_AT_PROTOBUF_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
_JSON_MEDIA = ("application/json", "application/*", "*/*")

# -- wire primitives --------------------------------------------------------

_VARINT, _FIXED64, _BYTES = 0, 1, 2


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 is sent as its 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint((number << 3) | wire_type)


def _message(number: int, payload: bytes) -> bytes:
    return _tag(number, _BYTES) + _varint(len(payload)) + payload


def _string(number: int, value: Any) -> bytes:
    if not isinstance(value, str) or not value:
        return b""  # proto3 leaves defaults off the wire
    return _message(number, value.encode("utf-8"))


def _strings(number: int, values: Any) -> bytes:
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, list):
        return b""
    return b"".join(_message(number, v.encode("utf-8")) for v in values if isinstance(v, str))


def _bool(number: int, value: Any, keep_false: bool = False) -> bytes:
    if value is True:
        return _tag(number, _VARINT) + b"\x01"
    if value is False and keep_false:
        return _tag(number, _VARINT) + b"\x00"
    return b""


def _double(number: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return b""
    return _tag(number, _FIXED64) + struct.pack("<d", float(value))


def _int64(number: int, value: Any) -> bytes:
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value or not value:
        return b""
    return _tag(number, _VARINT) + _varint(int(value))


# -- gnostic messages -------------------------------------------------------


def yaml_text(value: Any) -> str:
    """The YAML an `Any` carries for a JSON value (JSON is a subset of YAML)."""
    return orjson.dumps(value).decode() + "\n"


def _any(value: Any) -> bytes:
    # Any { google.protobuf.Any value = 1; string yaml = 2; }
    return _message(2, yaml_text(value).encode("utf-8"))


def _named_any(number: int, name: str, value: Any) -> bytes:
    # NamedAny { string name = 1; Any value = 2; }
    return _message(number, _string(1, name) + _message(2, _any(value)))


def _extensions(number: int, node: dict[str, Any]) -> bytes:
    return b"".join(_named_any(number, k, v) for k, v in node.items() if k.startswith("x-"))


def _external_docs(value: Any) -> bytes:
    if not isinstance(value, dict):
        return b""
    return _string(1, value.get("description")) + _string(2, value.get("url")) + _extensions(3, value)


def _schemas(number: int, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return b"".join(_message(number, encode_schema(s)) for s in items if isinstance(s, dict))


def _additional_properties(value: Any) -> bytes:
    # AdditionalPropertiesItem { oneof { Schema schema = 1; bool boolean = 2; } }
    if isinstance(value, bool):
        return _message(21, _bool(2, value, keep_false=True))
    if isinstance(value, dict):
        return _message(21, _message(1, encode_schema(value)))
    return b""


def _properties(value: Any) -> bytes:
    # Properties { repeated NamedSchema additional_properties = 1; }
    if not isinstance(value, dict):
        return b""
    return _message(25, _named_schemas(1, value))


def _named_schemas(number: int, schemas: dict[str, Any]) -> bytes:
    # NamedSchema { string name = 1; Schema value = 2; }
    return b"".join(_message(number, _string(1, name) + _message(2, encode_schema(s)))
                    for name, s in schemas.items() if isinstance(s, dict))


# Schema fields by JSON keyword: (field number, encoder). Order is the .proto's.
_SCHEMA_FIELDS: tuple[tuple[str, Callable[[Any], bytes]], ...] = (
    ("$ref", lambda v: _string(1, v)),
    ("format", lambda v: _string(2, v)),
    ("title", lambda v: _string(3, v)),
    ("description", lambda v: _string(4, v)),
    ("default", lambda v: _message(5, _any(v))),
    ("multipleOf", lambda v: _double(6, v)),
    ("maximum", lambda v: _double(7, v)),
    ("exclusiveMaximum", lambda v: _bool(8, v)),
    ("minimum", lambda v: _double(9, v)),
    ("exclusiveMinimum", lambda v: _bool(10, v)),
    ("maxLength", lambda v: _int64(11, v)),
    ("minLength", lambda v: _int64(12, v)),
    ("pattern", lambda v: _string(13, v)),
    ("maxItems", lambda v: _int64(14, v)),
    ("minItems", lambda v: _int64(15, v)),
    ("uniqueItems", lambda v: _bool(16, v)),
    ("maxProperties", lambda v: _int64(17, v)),
    ("minProperties", lambda v: _int64(18, v)),
    ("required", lambda v: _strings(19, v)),
    ("enum", lambda v: b"".join(_message(20, _any(e)) for e in v) if isinstance(v, list) else b""),
    ("additionalProperties", _additional_properties),
    # TypeItem { repeated string value = 1; }
    ("type", lambda v: _message(22, _strings(1, v)) if isinstance(v, str | list) else b""),
    # ItemsItem { repeated Schema schema = 1; }
    ("items", lambda v: _message(23, _schemas(1, v)) if isinstance(v, dict | list) else b""),
    ("allOf", lambda v: _schemas(24, v) if isinstance(v, list) else b""),
    ("properties", _properties),
    ("discriminator", lambda v: _string(26, v)),
    ("readOnly", lambda v: _bool(27, v)),
    ("externalDocs", lambda v: _message(29, _external_docs(v)) if isinstance(v, dict) else b""),
    ("example", lambda v: _message(30, _any(v))),
)


def encode_schema(schema: dict[str, Any]) -> bytes:
    """One JSON Schema node as gnostic's `Schema` message; `x-` keys become
    vendor extensions, keywords Swagger 2.0 lacks are dropped."""
    out = [encode(schema[key]) for key, encode in _SCHEMA_FIELDS if key in schema]
    out.append(_extensions(31, schema))
    return b"".join(out)


def _info(info: dict[str, Any]) -> bytes:
    out = _string(1, info.get("title")) + _string(2, info.get("version")) + _string(3, info.get("description"))
    out += _string(4, info.get("termsOfService"))
    return out + _extensions(7, info)


def _paths(paths: dict[str, Any]) -> bytes:
    # Paths { repeated NamedAny vendor_extension = 1; repeated NamedPathItem path = 2; }
    # Only the path names and their extensions travel: kubectl reads operations from v3.
    out = _extensions(1, paths)
    for name, item in paths.items():
        if not name.startswith("x-") and isinstance(item, dict):
            out += _message(2, _string(1, name) + _message(2, _extensions(10, item)))
    return out


def encode_document(doc: dict[str, Any]) -> bytes:
    """A Swagger 2.0 JSON document as the bytes of `openapi.v2.Document`."""
    out = [_string(1, doc.get("swagger"))]
    if isinstance(doc.get("info"), dict):
        out.append(_message(2, _info(doc["info"])))
    out.append(_string(3, doc.get("host")))
    out.append(_string(4, doc.get("basePath")))
    for number, key in ((5, "schemes"), (6, "consumes"), (7, "produces")):
        out.append(_strings(number, doc.get(key)))
    out.append(_message(8, _paths(doc.get("paths") or {})))
    definitions = doc.get("definitions")
    if isinstance(definitions, dict):
        # Definitions { repeated NamedSchema additional_properties = 1; }
        out.append(_message(9, _named_schemas(1, definitions)))
    out.append(_extensions(16, doc))
    return b"".join(out)


# -- serving ---------------------------------------------------------------

_caches: weakref.WeakKeyDictionary[Registry, tuple[int, bytes, str]] = weakref.WeakKeyDictionary()


def openapi_v2_protobuf(registry: Registry) -> tuple[bytes, str]:
    """`GET /openapi/v2` as protobuf: the bytes and their hash (the ETag), re-encoded
    from the JSON document whenever the registry (built-ins plus CRDs) changes."""
    cached = _caches.get(registry)
    if cached is not None and cached[0] == registry.generation:
        return cached[1], cached[2]
    generation = registry.generation
    json_bytes, _ = openapi.openapi_v2_document(registry)
    data = encode_document(orjson.loads(json_bytes))
    digest = openapi.content_hash(data)
    _caches[registry] = (generation, data, digest)
    return data, digest


def _clauses(accept: str) -> Iterable[str]:
    """Media types from an Accept header, most preferred first (stable for ties);
    q=0 means "not acceptable"."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if media and q > 0:
            ranked.append((-q, index, media.lower()))
    return [media for _, _, media in sorted(ranked)]


def negotiate(accept: str) -> str | None:
    """The Content-Type `/openapi/v2` answers an Accept header with: JSON (also for
    wildcards and no Accept at all), protobuf, or None when neither is acceptable."""
    for media in _clauses(accept.strip() or "*/*"):
        if media in _JSON_MEDIA:
            return "application/json"
        if media in (PROTOBUF_MEDIA_TYPE, _AT_PROTOBUF_MEDIA_TYPE):
            return PROTOBUF_MEDIA_TYPE
    return None
