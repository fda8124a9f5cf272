"""The API server's protobuf body decoder (`protobuf_decode`) answers exactly as the
reference decoder (`protobuf.decode_k8s_protobuf`): every sample and every sample
re-encoded decode to the same dict, and damaged bodies fail (400) or decode alike."""

from __future__ import annotations

import json
import pathlib
import random
from typing import Any

import pytest

from kybernetes.api import protobuf as pb
from kybernetes.api import protobuf_decode as fast
from kybernetes.api.errors import ApiError

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")


def _bodies() -> list[bytes]:
    if not SAMPLES.is_dir():
        pytest.skip("wire samples not present")
    out = [p.read_bytes() for p in sorted(SAMPLES.glob("*.pb"))]
    for p in sorted(SAMPLES.glob("*.json")):
        obj = json.loads(p.read_text())
        if pb.can_encode(obj.get("apiVersion", ""), obj.get("kind", "")):
            out.append(pb.encode_k8s_protobuf(obj))
    return out


def _answer(decode: Any, body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode(body)
    except ApiError as e:
        return "error", e.code


def test_every_sample_decodes_as_the_reference() -> None:
    bodies = _bodies()
    assert len(bodies) > 60
    for body in bodies:
        assert fast.decode_k8s_protobuf(body) == pb.decode_k8s_protobuf(body)


def test_damaged_bodies_fail_or_decode_as_the_reference() -> None:
    bodies = _bodies()
    rng = random.Random(11)
    errors = 0
    for _ in range(3000):
        body = bytearray(rng.choice(bodies))
        op = rng.random()
        if op < 0.3:
            body = body[:rng.randrange(len(body))]
        elif op < 0.7:
            for _ in range(rng.randint(1, 3)):
                body[rng.randrange(4, len(body))] = rng.randrange(256)
        else:
            at = rng.randrange(4, len(body))
            body[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        want = _answer(pb.decode_k8s_protobuf, bytes(body))
        assert _answer(fast.decode_k8s_protobuf, bytes(body)) == want
        errors += want[0] == "error"
    assert errors > 500  # the damage is real: most bodies are refused


@pytest.mark.parametrize("body", [b"", b"k8s\x00", b"nope", b"k8s\x00\x0a\x05\x0a\x02v1", b"k8s\x00\xff\xff"])
def test_malformed_is_a_400(body: bytes) -> None:
    with pytest.raises(ApiError) as e:
        fast.decode_k8s_protobuf(body)
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
        obj, bound = fast.decode_with_depth_bound(body)
        if bound is not None:
            bounded += 1
            assert _json_depth(obj) <= bound
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
    assert fast.decode_with_depth_bound(body)[1] is None
    with pytest.raises(ApiError) as e:
        codec.decode_object(body, codec.PROTOBUF_TYPE)
    assert e.value.code == 400 and "nested too deeply" in e.value.message
