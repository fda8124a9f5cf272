"""The API server's protobuf body decoder (the generated per-message decoders of
`protobuf.decode_k8s_protobuf`) against a plain model of the same wire rules written
here: every sample and every sample re-encoded decode alike, and damaged bodies fail
with a 400 exactly when the model refuses them, or decode to the same dict; the nesting
bound the decoder gives the API server is never below the real depth."""

from __future__ import annotations

import base64
import json
import pathlib
import random
from typing import Any

import orjson
import pytest

from kybernetes.api import protobuf as pb
from kybernetes.api.errors import ApiError
from kybernetes.api.quantity import parse_quantity

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")


# --- the model: one field at a time, straight from the tables --------------------------


class _Bad(Exception):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _Bad("truncated varint")
        result |= (buf[pos] & 0x7F) << shift
        pos += 1
        if not buf[pos - 1] & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise _Bad("varint too long")


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise _Bad("field 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in (1, 2, 5):
            size, pos = (8, pos) if wire == 1 else (4, pos) if wire == 5 else _varint(buf, pos)
            if size > len(buf) - pos:
                raise _Bad("too long")
            value, pos = buf[pos:pos + size], pos + size
        else:
            raise _Bad("wire type")
        out.append((number, wire, value))
    return out


def _signed(value: int, bits: int) -> int:
    value &= (1 << 64) - 1
    value -= (1 << 64) if value >= 1 << 63 else 0
    if bits == 32 and not -(1 << 31) <= value < (1 << 31):
        raise _Bad("int32 range")
    return value


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError as exc:
        raise _Bad("utf-8") from exc


def _well_known(type_: str, raw: bytes) -> Any:
    fields = _fields(raw)
    ints, texts = {1: 0, 2: 0}, []
    for number, wire, value in fields:
        if wire == 0 and number in (1, 2):
            ints[number] = _signed(value, 64 if number == 1 else 32)
        elif wire == 2 and (type_, number) in (("IOS", 3), ("Q", 1), ("ExtraValue", 1)):
            texts.append(_text(value))
            if type_ == "Q" and parse_quantity(texts[-1]) is None:
                raise _Bad("quantity")
    if type_ in ("Time", "MicroTime"):
        return pb.format_timestamp(ints[1], ints[2], micro=type_ == "MicroTime") if fields else None
    if type_ == "IOS":
        return (texts or [""])[-1] if ints[1] == 1 else ints[2]
    if type_ == "Q":
        return (texts or ["0"])[-1]
    if type_ == "ExtraValue":
        return texts
    for number, wire, value in fields:  # Raw, FieldsV1
        if number == 1 and wire == 2:
            try:
                return orjson.loads(value)
            except orjson.JSONDecodeError as exc:
                raise _Bad("json") from exc
    return None if type_ == "Raw" else {}


_SCALARS = {"s", "by", "i32", "i64", "b"}


def _single(f: pb.Field, wire: int, value: Any, depth: int) -> Any:
    if f.type in ("s", "by"):
        if wire != 2:
            raise _Bad("wire")
        return _text(value) if f.type == "s" else base64.b64encode(value).decode()
    if f.type in _SCALARS:
        if wire != 0:
            raise _Bad("wire")
        return value != 0 if f.type == "b" else _signed(value, 32 if f.type == "i32" else 64)
    if wire != 2:
        raise _Bad("wire")
    if f.type in ("Time", "MicroTime", "IOS", "Q", "FieldsV1", "ExtraValue", "Raw"):
        return _well_known(f.type, value)
    return _message(f.type, value, depth + 1)


def _default(type_: str) -> Any:
    if type_ in _SCALARS:
        return "" if type_ in ("s", "by") else False if type_ == "b" else 0
    return {"Q": "0", "ExtraValue": [], "IOS": 0, "Time": None, "MicroTime": None, "Raw": None}.get(type_, {})


def _message(message: str, raw: bytes, depth: int) -> dict[str, Any]:
    if depth > pb.MAX_DEPTH:
        raise _Bad("too deep")
    table = pb._table(message)
    out: dict[str, Any] = {}
    for number, wire, value in _fields(raw):
        f = table.get(number)
        if f is None:
            continue
        if f.map:
            if wire != 2:
                raise _Bad("map")
            key, item = "", _default(f.type)
            for n, w, v in _fields(value):
                if n == 1:
                    if w != 2:
                        raise _Bad("map key")
                    key = _text(v)
                elif n == 2:
                    item = _single(f, w, v, depth)
            out.setdefault(f.json, {})[key] = item
        elif f.repeated and wire == 2 and f.type in ("i32", "i64", "b"):
            items, pos = out.setdefault(f.json, []), 0
            while pos < len(value):
                v, pos = _varint(value, pos)
                items.append(_single(f, 0, v, depth))
        elif f.repeated:
            out.setdefault(f.json, []).append(_single(f, wire, value, depth))
        elif f.inline:
            if wire != 2:
                raise _Bad("inline")
            out.update(_message(f.type, value, depth + 1))
        else:
            item = _single(f, wire, value, depth)
            if (item is None or (f.type in _SCALARS and item in ("", 0))) and not f.keep_zero:
                out.pop(f.json, None)
            else:
                out[f.json] = item
    for f in table.values():
        if f.keep_zero and (f.repeated or f.map):
            out.setdefault(f.json, None)
    return out


def _model(body: bytes) -> tuple[str, Any]:
    """("ok", dict) or ("error", 400), as the decoder must answer."""
    try:
        if not body.startswith(pb.MAGIC):
            raise _Bad("magic")
        api_version = kind = encoding = ""
        raw = b""
        for number, wire, value in _fields(body[4:]):
            if wire == 2 and number == 1:
                for n, w, v in _fields(value):
                    if w == 2 and n in (1, 2):
                        api_version, kind = (_text(v), kind) if n == 1 else (api_version, _text(v))
            elif wire == 2 and number == 2:
                raw = value
            elif wire == 2 and number == 3:
                encoding = _text(value)
        message = pb.message_for(api_version, kind)
        if encoding or not api_version or not kind or message is None:
            raise _Bad("envelope")
        obj = _message(message, raw, 1)
        if message.endswith("List") and message not in pb.MESSAGES:
            obj.setdefault("items", [])
    except (_Bad, ValueError, OverflowError, RecursionError):
        return "error", 400
    return "ok", {"apiVersion": api_version, "kind": kind, **obj}


# --- the tests -----------------------------------------------------------------------


def _bodies() -> list[bytes]:
    if not SAMPLES.is_dir():
        pytest.skip("wire samples not present")
    out = [p.read_bytes() for p in sorted(SAMPLES.glob("*.pb"))]
    for p in sorted(SAMPLES.glob("*.json")):
        obj = json.loads(p.read_text())
        if pb.can_encode(obj.get("apiVersion", ""), obj.get("kind", "")):
            out.append(pb.encode_k8s_protobuf(obj))
    return out


def _answer(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", pb.decode_k8s_protobuf(body)
    except ApiError as e:
        return "error", e.code


def test_every_sample_decodes_as_the_model() -> None:
    bodies = _bodies()
    assert len(bodies) > 60
    for body in bodies:
        got = _answer(body)
        assert got[0] == "ok"
        assert got == _model(body)


def _damage(rng: random.Random, body: bytes) -> bytes:
    out = bytearray(body)
    op = rng.random()
    if op < 0.3:
        return bytes(out[:rng.randrange(len(out))])
    if op < 0.7:
        for _ in range(rng.randint(1, 3)):
            out[rng.randrange(4, len(out))] = rng.randrange(256)
    else:
        at = rng.randrange(4, len(out))
        out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
    return bytes(out)


def test_damaged_bodies_fail_or_decode_as_the_model() -> None:
    bodies = _bodies()
    rng = random.Random(11)
    errors = decoded = 0
    for _ in range(3000):
        body = _damage(rng, rng.choice(bodies))
        want = _model(body)
        assert _answer(body) == want
        errors += want[0] == "error"
        decoded += want[0] == "ok"
    assert errors > 500 and decoded > 50  # the damage is real, and some of it still decodes


def test_a_value_field_given_twice_keeps_the_last() -> None:
    name = b"\x0a\x03abc"
    for raw, want in [(b"\x0a" + bytes([len(name) * 2]) + name + name, {"name": "abc"}),
                      (b"\x0a\x07\x0a\x03abc\x0a\x00", {}),  # an empty name after one: absent
                      (b"\x0a\x04\x38\x05\x38\x00", {})]:  # generation 5, then 0
        body = pb.envelope("v1", "ConfigMap", raw)
        assert pb.decode_k8s_protobuf(body) == {"apiVersion": "v1", "kind": "ConfigMap", "metadata": want}


def test_a_list_decodes_its_items() -> None:
    cms = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c{i}"}, "data": {"k": str(i)}}
           for i in range(3)]
    body = pb.list_body("v1", "ConfigMapList", {"resourceVersion": "7"},
                        [pb.encode_object_message(c) for c in cms])
    got = pb.decode_k8s_protobuf(body)
    assert got["metadata"] == {"resourceVersion": "7"}
    assert [i["data"] for i in got["items"]] == [{"k": "0"}, {"k": "1"}, {"k": "2"}]


@pytest.mark.parametrize("body", [b"", b"k8s\x00", b"nope", b"k8s\x00\x0a\x05\x0a\x02v1", b"k8s\x00\xff\xff"])
def test_malformed_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as e:
        pb.decode_k8s_protobuf(body)
    assert e.value.code == 400


def _json_depth(value: Any, depth: int = 1) -> int:
    """Deepest container, counted as `codec.check_depth` counts it."""
    if isinstance(value, dict):
        return max([depth] + [_json_depth(v, depth + 1) for v in value.values() if isinstance(v, dict | list)])
    if isinstance(value, list):
        return max([depth] + [_json_depth(v, depth + 1) for v in value if isinstance(v, dict | list)])
    return 0


def test_depth_bound_is_never_below_the_real_depth() -> None:
    bounded = 0
    bodies = _bodies()
    for p in sorted(SAMPLES.glob("*.json")):  # as clients send them: no managedFields
        obj = json.loads(p.read_text())
        (obj.get("metadata") or {}).pop("managedFields", None)
        if pb.can_encode(obj.get("apiVersion", ""), obj.get("kind", "")):
            bodies.append(pb.encode_k8s_protobuf(obj))
    for body in bodies:
        obj, bound = pb.decode_with_depth_bound(body)
        if bound is not None:
            bounded += 1
            assert _json_depth(obj) <= bound <= 100
    assert bounded > 30


def test_free_form_json_is_still_depth_checked() -> None:
    from kybernetes.apiserver import codec

    nested: dict[str, Any] = {}
    for _ in range(150):
        nested = {"f:a": nested}
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "deep", "managedFields": [{"manager": "m", "operation": "Update",
                                                           "fieldsType": "FieldsV1", "fieldsV1": nested}]}}
    body = pb.encode_k8s_protobuf(cm)
    assert pb.decode_with_depth_bound(body)[1] is None
    with pytest.raises(ApiError) as e:
        codec.decode_object(body, codec.PROTOBUF_TYPE)
    assert e.value.code == 400 and "nested too deeply" in e.value.message


_SAMPLE_VALUES: dict[str, Any] = {"s": "x", "i32": 7, "i64": 7, "b": True, "by": "eA==", "IOS": 8080, "Q": "250m",
                                  "Time": "2024-01-02T03:04:05Z", "MicroTime": "2024-01-02T03:04:05.000006Z",
                                  "ExtraValue": ["x"], "Raw": {"a": 1}, "FieldsV1": {"f:a": {}}}


def _every_field(message: str, path: tuple[str, ...] = ()) -> dict[str, Any]:
    """A value of `message` with every field of its table set (a message already being
    filled in, further up, is left out)."""
    out: dict[str, Any] = {}
    for f in pb._table(message).values():
        if f.type in _SAMPLE_VALUES:
            value = _SAMPLE_VALUES[f.type]
        elif f.type in path:
            continue
        else:
            value = _every_field(f.type, (*path, message))
        if f.inline:
            out.update(value)
        else:
            out[f.json] = [value] if f.repeated else {"k": value} if f.map else value
    return out


def test_decoded_bodies_need_no_unknown_field_or_type_check() -> None:
    # The API server skips those checks for protobuf bodies: that holds only while every
    # field of every table is a field of the kind's schema, of the schema's type.
    from kybernetes.api import validation
    from kybernetes.api.registry import Registry

    checked = 0
    for info in Registry().all():
        message = pb.message_for(info.api_version, info.kind)
        if message is None or info.crd_schema is not None or not info.definition:
            continue
        obj = {"apiVersion": info.api_version, "kind": info.kind, **_every_field(message)}
        decoded = pb.decode_k8s_protobuf(pb.encode_k8s_protobuf(obj))
        assert validation.unknown_fields(info, decoded) == [], info.kind
        assert validation.type_errors(info, decoded) == [], info.kind
        checked += 1
    assert checked > 50


def test_a_quantity_that_does_not_parse_is_refused() -> None:
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "lots"}}}]}}
    with pytest.raises(ApiError) as e:
        pb.decode_k8s_protobuf(pb.encode_k8s_protobuf(pod))
    assert e.value.code == 400 and "quantities must match" in e.value.message
