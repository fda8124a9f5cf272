"""Request body decoding: duplicate fields, continue tokens and resource versions."""

from __future__ import annotations

import base64

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.apiserver import codec
from kybernetes.apiserver.rest import _rv_int, decode_continue, encode_continue


def _dups(body: bytes, ctype: str = "application/json") -> list[str]:
    out: list[str] = []
    codec.decode_body(body, ctype, "", out)
    return out


@pytest.mark.parametrize("body,expected", [
    (b'{"a":1,"b":2}', []),
    (b'{"a":1,"a":2}', ["a"]),
    (b'{"metadata":{"name":"x","name":"y"}}', ["metadata.name"]),
    (b'{"spec":{"containers":[{"image":"nginx:1","image":"b:2"}]}}', ["spec.containers[0].image"]),
    # Colons inside strings are not keys.
    (b'{"a":"x:y","b":{"c":"d:e:f"}}', []),
    # An escaped colon cannot hide a duplicate from the fast proof.
    (b'{"a":"\\u003a","a":1}', ["a"]),
    (b'{"a":"\\u003a","b":1}', []),
    (b'[{"op":"add","op":"remove"}]', ["[0].op"]),
])
def test_json_duplicate_fields(body, expected):
    assert _dups(body) == expected


def test_json_keeps_the_last_value():
    assert codec.decode_body(b'{"a":1,"a":2}', "application/json") == {"a": 2}


def test_yaml_duplicate_fields():
    body = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  name: b
data:
  x: "1"
  y: "2"
  x: "3"
items:
- a: 1
  a: 2
- {b: 1, c: 2}
other:
  x: 1
"""
    assert _dups(body, "application/yaml") == ["metadata.name", "data.x", "items[0].a"]


def test_no_duplicates_reported_unless_asked():
    assert codec.decode_body(b'{"a":1,"a":2}', "application/json", "", None) == {"a": 2}


def _token(payload: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def test_continue_round_trip():
    assert decode_continue(encode_continue(42, "/registry/core/configmaps/ns/a")) == (
        42, "/registry/core/configmaps/ns/a")
    assert decode_continue(encode_continue(-1, "/k"))[0] == -1


@pytest.mark.parametrize("token,why", [
    ("!!!", "continue key is not valid"),
    (_token([1]), "does not recognize this encoded version"),
    (_token({"v": 2, "rv": 1, "start": "/k"}), "does not recognize this encoded version"),
    (_token({"v": 1, "rv": 0, "start": "/k"}), "incorrect encoded start resourceVersion"),
    (_token({"v": 1, "rv": 2 ** 63, "start": "/k"}), "incorrect encoded start resourceVersion"),
    (_token({"v": 1, "rv": True, "start": "/k"}), "incorrect encoded start resourceVersion"),
    (_token({"v": 1, "rv": 1.5, "start": "/k"}), "incorrect encoded start resourceVersion"),
    (_token({"v": 1, "rv": 5}), "encoded start key empty"),
])
def test_bad_continue_tokens(token, why):
    with pytest.raises(ApiError) as e:
        decode_continue(token)
    assert e.value.code == 400 and why in e.value.message


@pytest.mark.parametrize("rv", ["abc", "-1", "1.5", "18446744073709551616", "١٢"])
def test_bad_resource_versions(rv):
    with pytest.raises(ApiError) as e:
        _rv_int(rv)
    assert e.value.code == 400 and "invalid resource version" in e.value.message


def test_good_resource_versions():
    assert _rv_int("") == 0 and _rv_int("0") == 0 and _rv_int("18446744073709551615") == 2 ** 64 - 1


def test_json_bodies_nested_too_deeply_are_refused_and_wide_ones_are_not():
    deep = b"[" * 101 + b"]" * 101
    with pytest.raises(ApiError) as e:
        codec.decode_body(deep, "application/json")
    assert e.value.code == 400 and "nested too deeply" in e.value.message
    # Exactly at the limit, and many brackets side by side, are fine.
    assert codec.decode_body(b"[" * 100 + b"]" * 100, "application/json") is not None
    wide = orjson.dumps({"items": [{"a": [{"b": i}]} for i in range(300)]})
    assert len(codec.decode_body(wide, "application/json")["items"]) == 300
    deep_in_wide = orjson.dumps({"items": [{} for _ in range(200)], "x": orjson.loads(deep)})
    with pytest.raises(ApiError):
        codec.decode_body(deep_in_wide, "application/json")
