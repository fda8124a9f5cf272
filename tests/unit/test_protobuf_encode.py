"""The protobuf encoder: JSON -> protobuf -> JSON gives the object back, for every kind.

Byte-exactness against a real kube-apiserver is checked by test_protobuf_golden.py; here
every kind with a field table (samples, hand-written examples and objects generated from
the tables with a seeded generator) must survive the round trip through our own decoder,
and the encoder's contract (lists, Status, watch frames, refusals) holds.
"""

from __future__ import annotations

import base64
import json
import pathlib
import random
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.protobuf import (
    MAGIC,
    NotEncodable,
    _encoder,
    _table,
    _zero_message,
    can_encode,
    decode_k8s_protobuf,
    encode_k8s_protobuf,
    encode_message,
    encode_object_message,
    envelope,
    format_timestamp,
    iter_watch_frames,
    list_body,
    message_for,
    watch_frame,
)
from kybernetes.api.protobuf_types import KINDS, MESSAGES

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")
SAMPLE_JSON = sorted(p for p in SAMPLES.glob("*.json") if p.with_suffix(".pb").exists()) if SAMPLES.is_dir() else []


def _canonical(value: Any) -> Any:
    """The sample as our decoder gives it: a null `creationTimestamp` (pod templates) means
    unset, and claim templates carry no TypeMeta on the wire."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()
                if not (k == "creationTimestamp" and v is None)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    body = encode_k8s_protobuf(obj)
    assert body.startswith(MAGIC)
    return decode_k8s_protobuf(body)


@pytest.mark.skipif(not SAMPLE_JSON, reason="wire samples not present")
@pytest.mark.parametrize("path", SAMPLE_JSON, ids=lambda p: p.stem)
def test_sample_json_survives_protobuf(path: pathlib.Path) -> None:
    obj = json.loads(path.read_text())
    for claim in obj.get("spec", {}).get("volumeClaimTemplates", []):
        claim.pop("apiVersion", None)
        claim.pop("kind", None)
    assert roundtrip(obj) == _canonical(obj)


# --- hand-written examples of kinds the samples do not show -----------------------------

META = {"name": "x", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
        "creationTimestamp": "2026-01-02T03:04:05Z", "labels": {"b": "2", "a": "1"}}
TEMPLATE = {"metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "busybox", "resources": {}}],
                     "restartPolicy": "Always", "terminationGracePeriodSeconds": 0}}

EXAMPLES: list[dict[str, Any]] = [
    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": META,
     "data": {"spec": {"template": {"$patch": "replace", "spec": {"x": [1, 2.5, None, True]}}}},
     "revision": 3},
    {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": META, "data": None, "revision": 0},
    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": META,
     "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE},
     "status": {"replicas": 0, "observedGeneration": 2}},
    {"apiVersion": "v1", "kind": "Endpoints", "metadata": META,
     "subsets": [{"addresses": [{"ip": "10.0.0.1", "nodeName": "n1",
                                 "targetRef": {"kind": "Pod", "name": "p", "namespace": "ns"}}],
                  "ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}]},
    {"apiVersion": "v1", "kind": "PodTemplate", "metadata": META, "template": TEMPLATE},
    {"apiVersion": "v1", "kind": "Binding", "metadata": META, "target": {"kind": "Node", "name": "n1"}},
    {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": META,
     "deleteOptions": {"gracePeriodSeconds": 0, "dryRun": ["All"]}},
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "metadata": META,
     "spec": {"audiences": ["api"], "expirationSeconds": 3600, "boundObjectRef": {"kind": "Pod", "name": "p"}},
     "status": {"token": "t0k", "expirationTimestamp": "2026-01-02T04:04:05Z"}},
    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "metadata": {},
     "spec": {"token": "abc"}, "status": {"authenticated": True,
                                          "user": {"username": "me", "groups": ["g"], "extra": {"k": ["v"]}}}},
    {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
     "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}, "status": {"allowed": False}},
    {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "metadata": {},
     "spec": {"namespace": "ns"},
     "status": {"resourceRules": [{"verbs": ["get"], "resources": ["pods"]}], "nonResourceRules": None,
                "incomplete": False}},
    {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": META, "handler": "runc",
     "overhead": {"podFixed": {"cpu": "250m"}}},
    {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver", "metadata": META,
     "spec": {"attachRequired": False, "podInfoOnMount": True, "volumeLifecycleModes": ["Persistent"]}},
    {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure",
     "message": 'pods "p" is invalid', "reason": "Invalid",
     "details": {"name": "p", "kind": "pods",
                 "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec"}]},
     "code": 422},
    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": META,
     "spec": {"holderIdentity": "", "leaseDurationSeconds": 0, "renewTime": "2026-01-02T03:04:05.123456Z"}},
    {"apiVersion": "v1", "kind": "Pod", "metadata": {**META, "deletionTimestamp": "1969-12-31T23:59:59Z",
                                                     "deletionGracePeriodSeconds": 0},
     "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 8080}],
                              "readinessProbe": {"tcpSocket": {"port": "http"}},
                              "securityContext": {"runAsUser": -1, "privileged": False}}],
              "securityContext": {"supplementalGroups": [0, 5, 1 << 40]}},
     "status": {"phase": "Pending", "startTime": "2026-01-02T03:04:05Z"}},
]


@pytest.mark.parametrize("obj", EXAMPLES, ids=lambda o: o["kind"])
def test_handwritten_example_survives_protobuf(obj: dict[str, Any]) -> None:
    assert roundtrip(obj) == obj


# --- examples generated from the tables ---------------------------------------------------

_STRINGS = ["a", "web", "kube-system", "app.kubernetes.io/name", "ünïcödé ✓", "x" * 200]
_QUANTITIES = ["0", "1", "100m", "64Mi", "1.5Gi", "2k"]


def _time(rng: random.Random, micro: bool) -> str:
    return format_timestamp(rng.randrange(0, 1 << 33), rng.randrange(1_000_000) * 1000 if micro else 0, micro)


def _scalar(rng: random.Random, type_: str, zero_ok: bool) -> Any:
    if type_ == "s":
        return rng.choice(_STRINGS + [""] * zero_ok)
    if type_ == "i32":
        return rng.choice([1, 7, 80, 65535, -3, (1 << 31) - 1, -(1 << 31)] + [0] * zero_ok)
    if type_ == "i64":
        return rng.choice([1, 300, 1 << 40, -5, (1 << 63) - 1] + [0] * zero_ok)
    if type_ == "b":
        return rng.choice([True, False]) if zero_ok else True
    if type_ == "by":
        return base64.b64encode(rng.randbytes(rng.randrange(1, 40))).decode()
    raise AssertionError(type_)


def _value(rng: random.Random, type_: str, depth: int, zero_ok: bool = False) -> Any:
    if type_ in ("s", "i32", "i64", "b", "by"):
        return _scalar(rng, type_, zero_ok)
    if type_ in ("Time", "MicroTime"):
        return _time(rng, type_ == "MicroTime")
    if type_ == "IOS":
        return rng.choice([0, 8080, "http", "25%"])
    if type_ == "Q":
        return rng.choice(_QUANTITIES)
    if type_ == "FieldsV1":
        return {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}
    if type_ == "ExtraValue":
        return rng.sample(_STRINGS, 2)
    if type_ == "Raw":
        return {"k": [1, "v", None, {"n": 2.5}]}
    return generate(rng, type_, depth + 1)


def generate(rng: random.Random, message: str, depth: int = 0) -> dict[str, Any]:
    """A random object of `message` in the canonical form Go's JSON would give: zero
    value fields left out, non-omitempty nil collections and zero value times as null."""
    out: dict[str, Any] = {}
    chance = 0.6 if depth < 4 else 0.0
    for field in _table(message).values():
        if field.inline:
            for key, value in generate(rng, field.type, depth + 1).items():
                out.setdefault(key, value)
            continue
        null_when_absent = field.keep_zero and (
            field.repeated or field.map
            or (field.type in ("Time", "MicroTime", "Raw") and not field.pointer))
        if rng.random() >= chance:
            if null_when_absent:
                out[field.json] = None
            continue
        if field.repeated:
            out[field.json] = [_value(rng, field.type, depth, True) for _ in range(rng.randrange(1, 3))]
        elif field.map:
            keys = rng.sample(_STRINGS, rng.randrange(1, 3))
            out[field.json] = {k: _value(rng, field.type, depth, True) for k in keys}
        else:
            out[field.json] = _value(rng, field.type, depth, field.keep_zero)
    return out


GENERATED = sorted({(api_version, kind) for api_version, kind in KINDS})


@pytest.mark.parametrize(("api_version", "kind"), GENERATED, ids=lambda v: v)
def test_generated_objects_survive_protobuf(api_version: str, kind: str) -> None:
    message = message_for(api_version, kind)
    assert message is not None
    for seed in range(12):
        rng = random.Random(f"{kind}/{seed}")
        obj = {"apiVersion": api_version, "kind": kind, **generate(rng, message)}
        body = encode_k8s_protobuf(obj)
        back = decode_k8s_protobuf(body)
        assert back == obj, f"seed {seed}"
        assert encode_k8s_protobuf(back) == body, f"seed {seed}"


# --- wire facts that the round trip alone would not catch --------------------------------


def test_zero_fields_follow_go_marshalling() -> None:
    # A value field left out of JSON (omitempty) is still written as zero; a pointer left out
    # is not; a pointer set to zero is.
    bare = encode_object_message({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                                  "spec": {}})
    with_zero = encode_object_message({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                                       "spec": {"replicas": 0}})
    meta = b"\x0a\x01d\x12\x00\x1a\x00\x22\x00\x2a\x00\x32\x00\x38\x00\x42\x00"  # name + value fields
    assert bare == b"\x0a" + bytes([len(meta)]) + meta + b"\x12\x04\x28\x00\x38\x00"
    assert with_zero == b"\x0a" + bytes([len(meta)]) + meta + b"\x12\x06\x08\x00\x28\x00\x38\x00"


def test_maps_are_sorted_and_repeated_fields_unpacked() -> None:
    raw = encode_object_message({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {},
                                 "data": {"b": "2", "a": ""}})
    assert raw.endswith(b"\x12\x05\x0a\x01a\x12\x00" + b"\x12\x06\x0a\x01b\x12\x012")
    spec = encode_message("PodSecurityContext", {"supplementalGroups": [1, 2]})
    assert b"\x20\x01\x20\x02" in spec


def test_times_keep_micro_and_pre_epoch_seconds() -> None:
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {},
             "spec": {"renewTime": "1969-12-31T23:59:59.500000Z"}}
    assert roundtrip(lease)["spec"] == lease["spec"]


def test_zero_message_shortcut_matches_the_full_encoder() -> None:
    for message in MESSAGES:
        assert bytes(_encoder(message)({"not-a-field": 1})) == _zero_message(message), message


def test_lists_of_every_kind_encode_generically() -> None:
    for api_version, kind in KINDS:
        assert can_encode(api_version, kind + "List")
        empty = {"apiVersion": api_version, "kind": kind + "List", "metadata": {"resourceVersion": "9"},
                 "items": []}
        assert roundtrip(empty) == empty
    pods = {"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9", "continue": "c",
                                                               "remainingItemCount": 0},
            "items": [{"metadata": {"name": f"p{i}"}, "spec": {}, "status": {}} for i in range(3)]}
    assert roundtrip(pods) == pods
    cached = [encode_message("Pod", item) for item in pods["items"]]
    assert list_body("v1", "PodList", pods["metadata"], cached) == encode_k8s_protobuf(pods)


def test_error_status_encodes() -> None:
    status = {"apiVersion": "v1", **ApiError.not_found("apps", "deployments", "web").status()}
    assert roundtrip(status) == status


def test_watch_frames_round_trip() -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "resourceVersion": "3"},
          "data": {"k": "v"}}
    stream = watch_frame("ADDED", encode_k8s_protobuf(cm)) + watch_frame("DELETED", encode_k8s_protobuf(cm))
    assert list(iter_watch_frames(stream)) == [("ADDED", cm), ("DELETED", cm)]
    with pytest.raises(ApiError) as err:
        list(iter_watch_frames(stream[:-1]))
    assert err.value.code == 400


def test_envelope_is_kube_apiservers() -> None:
    assert envelope("v1", "Pod", b"\x01") == MAGIC + b"\x0a\x09\x0a\x02v1\x12\x03Pod\x12\x01\x01\x1a\x00\x22\x00"


def test_kinds_without_a_table_are_not_acceptable() -> None:
    assert not can_encode("example.com/v1", "Widget")
    assert not can_encode("example.com/v1", "WidgetList")
    assert can_encode("apps/v1", "ControllerRevision")
    with pytest.raises(NotEncodable) as err:
        encode_k8s_protobuf({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {}})
    assert err.value.code == 406
    assert isinstance(err.value, ApiError)


@pytest.mark.parametrize("spec", [{"replicas": "three"}, {"template": "nope"}, {"selector": {"matchLabels": [1]}},
                                  {"minReadySeconds": 1.5}])
def test_values_of_the_wrong_type_are_refused_not_crashed(spec: dict[str, Any]) -> None:
    with pytest.raises(NotEncodable) as err:
        encode_k8s_protobuf({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {}, "spec": spec})
    assert err.value.code == 406


def test_times_in_year_one_keep_four_digit_years() -> None:
    # Kubernetes' Lease conformance spec stamps acquireTime two seconds after Go's zero time.
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "l", "namespace": "default"},
             "spec": {"holderIdentity": "h", "acquireTime": "0001-01-01T00:00:02.000000Z",
                      "renewTime": "0999-12-31T23:59:59.500000Z"}}
    back = decode_k8s_protobuf(encode_k8s_protobuf(lease))
    assert back["spec"]["acquireTime"] == "0001-01-01T00:00:02.000000Z"
    assert back["spec"]["renewTime"] == "0999-12-31T23:59:59.500000Z"
