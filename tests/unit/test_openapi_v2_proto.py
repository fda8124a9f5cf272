"""`/openapi/v2` in gnostic protobuf: the bytes decode, with the `protobuf` library and
a descriptor written here from gnostic's OpenAPIv2.proto, back to the JSON document
they were made from (names, types, refs, required lists, vendor extensions as YAML);
Accept negotiation; the cache follows the registry."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import openapi
from kybernetes.apiserver import openapi_v2_proto as v2proto

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BOOL, _DOUBLE, _INT64, _MSG = _F.TYPE_STRING, _F.TYPE_BOOL, _F.TYPE_DOUBLE, _F.TYPE_INT64, _F.TYPE_MESSAGE
_REPEATED = "repeated"

# The subset of openapi.v2 the encoder writes, field numbers as in gnostic's .proto.
# Fields left out are skipped by the decoder as unknown, so a wrong number shows up
# as a missing value in the round trip.
_MESSAGES: dict[str, list[tuple[str, int, int, str | None, str]]] = {
    "Any": [("yaml", 2, _STRING, None, "")],
    "NamedAny": [("name", 1, _STRING, None, ""), ("value", 2, _MSG, "Any", "")],
    "Info": [("title", 1, _STRING, None, ""), ("version", 2, _STRING, None, ""),
             ("description", 3, _STRING, None, ""), ("vendor_extension", 7, _MSG, "NamedAny", _REPEATED)],
    "PathItem": [("vendor_extension", 10, _MSG, "NamedAny", _REPEATED)],
    "NamedPathItem": [("name", 1, _STRING, None, ""), ("value", 2, _MSG, "PathItem", "")],
    "Paths": [("vendor_extension", 1, _MSG, "NamedAny", _REPEATED),
              ("path", 2, _MSG, "NamedPathItem", _REPEATED)],
    "TypeItem": [("value", 1, _STRING, None, _REPEATED)],
    "ItemsItem": [("schema", 1, _MSG, "Schema", _REPEATED)],
    "NamedSchema": [("name", 1, _STRING, None, ""), ("value", 2, _MSG, "Schema", "")],
    "Properties": [("additional_properties", 1, _MSG, "NamedSchema", _REPEATED)],
    "Definitions": [("additional_properties", 1, _MSG, "NamedSchema", _REPEATED)],
    "AdditionalPropertiesItem": [("schema", 1, _MSG, "Schema", "oneof"), ("boolean", 2, _BOOL, None, "oneof")],
    "Schema": [
        ("_ref", 1, _STRING, None, ""), ("format", 2, _STRING, None, ""), ("title", 3, _STRING, None, ""),
        ("description", 4, _STRING, None, ""), ("default", 5, _MSG, "Any", ""),
        ("multiple_of", 6, _DOUBLE, None, ""), ("maximum", 7, _DOUBLE, None, ""),
        ("exclusive_maximum", 8, _BOOL, None, ""), ("minimum", 9, _DOUBLE, None, ""),
        ("exclusive_minimum", 10, _BOOL, None, ""), ("max_length", 11, _INT64, None, ""),
        ("min_length", 12, _INT64, None, ""), ("pattern", 13, _STRING, None, ""),
        ("max_items", 14, _INT64, None, ""), ("min_items", 15, _INT64, None, ""),
        ("unique_items", 16, _BOOL, None, ""), ("max_properties", 17, _INT64, None, ""),
        ("min_properties", 18, _INT64, None, ""), ("required", 19, _STRING, None, _REPEATED),
        ("enum", 20, _MSG, "Any", _REPEATED),
        ("additional_properties", 21, _MSG, "AdditionalPropertiesItem", ""),
        ("type", 22, _MSG, "TypeItem", ""), ("items", 23, _MSG, "ItemsItem", ""),
        ("all_of", 24, _MSG, "Schema", _REPEATED), ("properties", 25, _MSG, "Properties", ""),
        ("read_only", 27, _BOOL, None, ""), ("example", 30, _MSG, "Any", ""),
        ("vendor_extension", 31, _MSG, "NamedAny", _REPEATED),
    ],
    "Document": [
        ("swagger", 1, _STRING, None, ""), ("info", 2, _MSG, "Info", ""), ("host", 3, _STRING, None, ""),
        ("base_path", 4, _STRING, None, ""), ("produces", 7, _STRING, None, _REPEATED),
        ("paths", 8, _MSG, "Paths", ""), ("definitions", 9, _MSG, "Definitions", ""),
        ("vendor_extension", 16, _MSG, "NamedAny", _REPEATED),
    ],
}


def _document_class() -> type:
    file = descriptor_pb2.FileDescriptorProto(name="test_openapiv2.proto", package="openapi.v2", syntax="proto3")
    for name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=name)
        if any(kind == "oneof" for *_, kind in fields):
            msg.oneof_decl.add(name="oneof")
        for fname, number, ftype, type_name, kind in fields:
            f = msg.field.add(name=fname, number=number, type=ftype)
            f.label = _F.LABEL_REPEATED if kind == _REPEATED else _F.LABEL_OPTIONAL
            if type_name:
                f.type_name = ".openapi.v2." + type_name
            if kind == "oneof":
                f.oneof_index = 0
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("openapi.v2.Document"))


Document = _document_class()


def _decode(data: bytes) -> Any:
    doc = Document()
    doc.ParseFromString(data)
    return doc


def _extensions(named: Any) -> dict[str, Any]:
    return {n.name: yaml.safe_load(n.value.yaml) for n in named}


def _schema_back(s: Any) -> dict[str, Any]:
    """A decoded Schema message as the JSON keywords it carries."""
    out: dict[str, Any] = {}
    for field, key in (("_ref", "$ref"), ("format", "format"), ("title", "title"),
                       ("description", "description"), ("pattern", "pattern")):
        if getattr(s, field):
            out[key] = getattr(s, field)
    for field, key in (("max_length", "maxLength"), ("min_length", "minLength"), ("max_items", "maxItems"),
                       ("min_items", "minItems"), ("max_properties", "maxProperties"),
                       ("min_properties", "minProperties"), ("maximum", "maximum"), ("minimum", "minimum"),
                       ("multiple_of", "multipleOf"), ("exclusive_maximum", "exclusiveMaximum"),
                       ("exclusive_minimum", "exclusiveMinimum"), ("unique_items", "uniqueItems"),
                       ("read_only", "readOnly")):
        if getattr(s, field):
            out[key] = getattr(s, field)
    if s.HasField("default"):
        out["default"] = yaml.safe_load(s.default.yaml)
    if s.HasField("example"):
        out["example"] = yaml.safe_load(s.example.yaml)
    if s.required:
        out["required"] = list(s.required)
    if s.enum:
        out["enum"] = [yaml.safe_load(e.yaml) for e in s.enum]
    if s.HasField("type"):
        values = list(s.type.value)
        out["type"] = values[0] if len(values) == 1 else values
    if s.HasField("items"):
        items = [_schema_back(i) for i in s.items.schema]
        out["items"] = items[0] if len(items) == 1 else items
    if s.all_of:
        out["allOf"] = [_schema_back(i) for i in s.all_of]
    if s.HasField("properties"):
        out["properties"] = {p.name: _schema_back(p.value) for p in s.properties.additional_properties}
    if s.HasField("additional_properties"):
        ap = s.additional_properties
        out["additionalProperties"] = (_schema_back(ap.schema) if ap.WhichOneof("oneof") == "schema"
                                       else ap.boolean)
    out.update(_extensions(s.vendor_extension))
    return out


_ENCODED_KEYS = {
    "$ref", "format", "title", "description", "pattern", "maxLength", "minLength", "maxItems", "minItems",
    "maxProperties", "minProperties", "maximum", "minimum", "multipleOf", "exclusiveMaximum",
    "exclusiveMinimum", "uniqueItems", "readOnly", "default", "example", "required", "enum", "type", "items",
    "allOf", "properties", "additionalProperties",
}


def _swagger_view(node: Any) -> Any:
    """What of a JSON schema node the protobuf form can carry (proto3 drops zero values)."""
    if isinstance(node, list):
        return [_swagger_view(n) for n in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if not (key in _ENCODED_KEYS or key.startswith("x-")):
            continue
        if key in ("properties",):
            out[key] = {k: _swagger_view(v) for k, v in value.items()}
        elif key in ("items", "allOf") or (key == "additionalProperties" and isinstance(value, dict)):
            out[key] = _swagger_view(value)
        elif value in ("", 0, False, []) and key not in ("default", "example", "additionalProperties") \
                and not key.startswith("x-"):
            continue
        else:
            out[key] = value
    return out


WIDGET_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A Widget — with non-ASCII text and \"quotes\".",
    "properties": {
        "spec": {
            "type": "object",
            "required": ["size"],
            "properties": {
                "size": {"type": "integer", "format": "int32", "minimum": -3, "maximum": 1e6,
                         "default": 2},
                "ratio": {"type": "number", "multipleOf": 0.5},
                "color": {"type": "string", "enum": ["red", "blue", "yes"], "maxLength": 10, "pattern": "^[a-z]+$"},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set",
                         "maxItems": 4},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "any": {"x-kubernetes-preserve-unknown-fields": True},
            },
        },
    },
}


def _registry() -> Registry:
    registry = Registry()
    registry.add(ResourceInfo("stable.example.com", "v1", "Widget", "widgets", "widget", True,
                              crd_schema=WIDGET_SCHEMA))
    return registry


def test_document_round_trips_through_an_independent_protobuf_decoder() -> None:
    registry = _registry()
    json_doc = orjson.loads(openapi.openapi_v2_document(registry)[0])
    data, _ = v2proto.openapi_v2_protobuf(registry)
    doc = _decode(data)
    assert doc.swagger == "2.0"
    assert doc.info.title == "Kubernetes" and doc.info.version == json_doc["info"]["version"]
    decoded = {n.name: _schema_back(n.value) for n in doc.definitions.additional_properties}
    assert list(decoded) == list(json_doc["definitions"])  # every name, in order
    for name, schema in json_doc["definitions"].items():
        assert decoded[name] == _swagger_view(schema), name


def test_kinds_carry_their_group_version_kind_as_yaml() -> None:
    doc = _decode(v2proto.openapi_v2_protobuf(_registry())[0])
    defs = {n.name: n.value for n in doc.definitions.additional_properties}
    deployment = defs["io.k8s.api.apps.v1.Deployment"]
    assert _extensions(deployment.vendor_extension)["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    props = {p.name: p.value for p in deployment.properties.additional_properties}
    assert props["spec"]._ref == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert not props["spec"].HasField("type")  # kubectl rejects a $ref that also has a type
    spec = defs["io.k8s.api.apps.v1.DeploymentSpec"]
    assert "selector" in spec.required and "template" in spec.required
    # Maps are objects with additionalProperties; arrays carry exactly one item schema.
    meta = {p.name: p.value for p in defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]
            .properties.additional_properties}
    assert list(meta["labels"].type.value) == ["object"]
    assert list(meta["labels"].additional_properties.schema.type.value) == ["string"]
    assert list(meta["finalizers"].type.value) == ["array"] and len(meta["finalizers"].items.schema) == 1

    widget = _schema_back(defs["com.example.stable.v1.Widget"])
    spec_props = widget["properties"]["spec"]["properties"]
    assert widget["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "Widget", "version": "v1"}]
    assert widget["description"] == WIDGET_SCHEMA["description"]
    assert spec_props["tags"]["x-kubernetes-list-type"] == "set"
    assert spec_props["color"]["enum"] == ["red", "blue", "yes"]  # "yes" stays a string in YAML 1.1
    assert spec_props["size"]["minimum"] == -3 and spec_props["size"]["default"] == 2
    assert spec_props["any"] == {"x-kubernetes-preserve-unknown-fields": True}


def test_negative_int64_and_false_oneof_are_encoded() -> None:
    data = v2proto.encode_document({"swagger": "2.0", "definitions": {
        "t": {"type": "object", "minProperties": -1, "additionalProperties": False, "properties": {}}}})
    schema = _decode(data).definitions.additional_properties[0].value
    assert schema.min_properties == -1
    assert schema.additional_properties.WhichOneof("oneof") == "boolean"
    assert schema.additional_properties.boolean is False
    assert schema.HasField("properties")  # empty, yet present: kubectl reads it as a kind


def test_paths_keep_their_names() -> None:
    data = v2proto.encode_document({"swagger": "2.0", "paths": {"/api/v1/pods": {"x-a": 1}}})
    doc = _decode(data)
    assert [(p.name, _extensions(p.value.vendor_extension)) for p in doc.paths.path] == [("/api/v1/pods", {"x-a": 1})]


def test_cache_follows_the_registry() -> None:
    registry = _registry()
    first, digest = v2proto.openapi_v2_protobuf(registry)
    assert v2proto.openapi_v2_protobuf(registry) == (first, digest)
    registry.add(ResourceInfo("stable.example.com", "v1", "Gadget", "gadgets", "gadget", True,
                              crd_schema={"type": "object"}))
    second, digest2 = v2proto.openapi_v2_protobuf(registry)
    assert digest2 != digest
    names = [n.name for n in _decode(second).definitions.additional_properties]
    assert "com.example.stable.v1.Gadget" in names


@pytest.mark.parametrize(("accept", "expected"), [
    ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", v2proto.PROTOBUF_MEDIA_TYPE),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf", v2proto.PROTOBUF_MEDIA_TYPE),
    ("application/json", "application/json"),
    ("", "application/json"),
    ("*/*", "application/json"),
    ("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf", v2proto.PROTOBUF_MEDIA_TYPE),
    ("application/com.github.proto-openapi.spec.v2.v1.0+protobuf;q=0.1, application/json", "application/json"),
    ("application/yaml", None),
    ("application/json;q=0", None),
])
def test_negotiation(accept: str, expected: str | None) -> None:
    assert v2proto.negotiate(accept) == expected
