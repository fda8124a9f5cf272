"""Decoding of kubectl's protobuf request bodies (kybernetes.api.protobuf)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from kybernetes.api import protobuf
from kybernetes.api.errors import ApiError
from kybernetes.api.protobuf import decode_k8s_protobuf, format_timestamp, parse_table
from kybernetes.api.protobuf_types import KINDS, MESSAGES

FIXTURES = Path(__file__).parent / "fixtures" / "protobuf"
WITH_JSON = sorted(p.stem for p in FIXTURES.glob("*.bin") if (FIXTURES / f"{p.stem}.json").exists())


def fixture(name: str) -> dict:
    return decode_k8s_protobuf((FIXTURES / f"{name}.bin").read_bytes())


# --- a tiny encoder, to build bodies kubectl never sends ---------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def vfield(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value)


def lfield(num: int, payload: bytes | str) -> bytes:
    if isinstance(payload, str):
        payload = payload.encode()
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return b"k8s\x00" + lfield(1, lfield(1, api_version) + lfield(2, kind)) + lfield(2, raw)


# --- ground truth: every capture decodes to kubectl's own JSON of the object ---------


def test_fixture_set_is_complete() -> None:
    assert len(WITH_JSON) >= 25


@pytest.mark.parametrize("name", WITH_JSON)
def test_capture_matches_kubectl_json(name: str) -> None:
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    assert fixture(name) == expected


def test_deployment_generator() -> None:
    obj = fixture("deployment")
    assert obj["apiVersion"] == "apps/v1" and obj["kind"] == "Deployment"
    assert obj["metadata"] == {"name": "web", "labels": {"app": "web"}}
    spec = obj["spec"]
    assert spec["replicas"] == 3
    assert spec["selector"] == {"matchLabels": {"app": "web"}}
    assert spec["strategy"] == {}
    assert spec["template"]["spec"]["containers"] == [
        {"name": "busybox", "image": "busybox", "ports": [{"containerPort": 80}], "resources": {}}
    ]


def test_pointer_zero_is_kept() -> None:
    # --replicas=0 is a set *int32 and must not be mistaken for "unset".
    assert fixture("deployment-zero")["spec"]["replicas"] == 0
    container = fixture("deployment-zero")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sleep", "3600"]
    assert fixture("priorityclass-zero")["value"] == 0


def test_bytes_maps_become_base64() -> None:
    assert fixture("configmap-binary")["binaryData"] == {
        "blob": base64.b64encode(bytes([0, 1, 2, 0xFF, 0xFE, 10])).decode()
    }
    assert fixture("secret-generic")["data"] == {
        "user": base64.b64encode(b"admin").decode(),
        "pw": base64.b64encode(b"s3cr3t").decode(),
    }
    assert fixture("configmap")["data"] == {"a": "b", "empty": ""}


def test_int_or_string_and_quantities() -> None:
    assert fixture("pdb")["spec"]["minAvailable"] == "50%"
    assert fixture("pdb-maxunavailable")["spec"]["maxUnavailable"] == 1
    assert fixture("service-nodeport")["spec"]["ports"][0]["targetPort"] == "http"
    assert fixture("quota")["spec"]["hard"] == {"cpu": "1", "memory": "1Gi", "pods": "10"}


def test_inlined_ingress_rule_value() -> None:
    rules = fixture("ingress")["spec"]["rules"]
    assert rules[0]["host"] == "foo.com"
    assert rules[0]["http"]["paths"][0] == {
        "path": "/bar", "pathType": "Prefix",
        "backend": {"service": {"name": "svc1", "port": {"number": 8080}}},
    }


def test_self_subject_access_review() -> None:
    obj = fixture("can-i")
    assert obj["kind"] == "SelfSubjectAccessReview"
    assert obj["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}
    sub = fixture("can-i-subresource")["spec"]["resourceAttributes"]
    assert sub == {"namespace": "kube-system", "verb": "get", "resource": "pods", "subresource": "log",
                   "name": "mypod"}
    assert fixture("can-i-nonresource")["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


def test_rules_review_token_and_whoami() -> None:
    assert fixture("can-i-list")["spec"] == {"namespace": "dev"}
    token = fixture("token")
    assert token["kind"] == "TokenRequest"
    assert token["spec"] == {"audiences": ["api"], "expirationSeconds": 3600}
    whoami = fixture("whoami")
    assert (whoami["apiVersion"], whoami["kind"]) == ("authentication.k8s.io/v1", "SelfSubjectReview")


# --- hand-built bodies ---------------------------------------------------------------


def test_times_and_negative_numbers() -> None:
    meta = (lfield(1, "x") + lfield(8, vfield(1, 1795542000) + vfield(2, 5))
            + vfield(10, -1 & ((1 << 64) - 1)))
    obj = decode_k8s_protobuf(envelope("v1", "ConfigMap", lfield(1, meta)))
    assert obj["metadata"] == {"name": "x", "creationTimestamp": "2026-11-24T17:40:00Z",
                               "deletionGracePeriodSeconds": -1}
    assert format_timestamp(1795542000, 123456789, micro=True) == "2026-11-24T17:40:00.123456Z"


def test_unknown_fields_are_skipped_and_packed_ints_read() -> None:
    rule = lfield(1, "In") + lfield(2, varint(1) + varint(42))  # packed int32 values
    container = lfield(1, "c") + lfield(25, lfield(1, "Restart") + lfield(2, rule)) + vfield(99, 7)
    spec = lfield(2, container) + lfield(500, b"\x01\x02") + varint(501 << 3 | 5) + b"\0\0\0\0"
    body = envelope("v1", "Service", lfield(1, lfield(1, "s")) + vfield(77, 1))
    assert decode_k8s_protobuf(body) == {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}}
    pod_template = lfield(2, lfield(3, lfield(2, spec)))  # Deployment.spec.template.spec
    obj = decode_k8s_protobuf(envelope("apps/v1", "Deployment", pod_template))
    c = obj["spec"]["template"]["spec"]["containers"][0]
    assert c == {"name": "c", "restartPolicyRules": [
        {"action": "Restart", "exitCodes": {"operator": "In", "values": [1, 42]}}]}


def test_user_info_extra_values() -> None:
    extra = lfield(1, "team") + lfield(2, lfield(1, "a") + lfield(1, "b"))
    user = lfield(1, "alice") + lfield(3, "devs") + lfield(4, extra)
    obj = decode_k8s_protobuf(envelope("authentication.k8s.io/v1", "SelfSubjectReview",
                                       lfield(2, lfield(1, user))))
    assert obj["status"]["userInfo"] == {"username": "alice", "groups": ["devs"], "extra": {"team": ["a", "b"]}}



# Field numbers below come from upstream generated.proto, for fields the kubectl
# captures never set; they pin the tables that were once written from memory.


def test_upstream_numbers_policy_and_apps() -> None:
    when = vfield(1, 1795542000)
    spec = lfield(4, "AlwaysAllow")
    status = (vfield(1, 4) + lfield(2, lfield(1, "p-1") + lfield(2, when)) + vfield(3, 0)
              + vfield(6, 3) + lfield(7, lfield(1, "DisruptionAllowed") + lfield(2, "True")))
    pdb = decode_k8s_protobuf(envelope("policy/v1", "PodDisruptionBudget", lfield(2, spec) + lfield(3, status)))
    assert pdb["spec"] == {"unhealthyPodEvictionPolicy": "AlwaysAllow"}
    assert pdb["status"] == {"observedGeneration": 4, "disruptedPods": {"p-1": "2026-11-24T17:40:00Z"},
                             "disruptionsAllowed": 0, "expectedPods": 3,
                             "conditions": [{"type": "DisruptionAllowed", "status": "True"}]}
    rolling = lfield(1, vfield(1, 0) + vfield(2, 2)) + lfield(2, vfield(1, 1) + lfield(3, "30%"))
    spec = lfield(4, lfield(1, "RollingUpdate") + lfield(2, rolling)) + vfield(7, 1) + vfield(9, 60)
    deploy = decode_k8s_protobuf(envelope("apps/v1", "Deployment", lfield(2, spec)))
    assert deploy["spec"] == {"strategy": {"type": "RollingUpdate",
                                           "rollingUpdate": {"maxUnavailable": 2, "maxSurge": "30%"}},
                              "paused": True, "progressDeadlineSeconds": 60}


def test_upstream_numbers_networking_and_auth() -> None:
    resource = lfield(3, lfield(1, "k8s.example.com") + lfield(2, "Bucket") + lfield(3, "assets"))
    lb = lfield(1, lfield(1, lfield(2, "lb.example") + lfield(4, vfield(1, 443) + lfield(2, "TCP"))))
    ing = decode_k8s_protobuf(envelope("networking.k8s.io/v1", "Ingress",
                                       lfield(2, lfield(1, resource)) + lfield(3, lb)))
    assert ing["spec"] == {"defaultBackend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket",
                                                            "name": "assets"}}}
    assert ing["status"] == {"loadBalancer": {"ingress": [{"hostname": "lb.example",
                                                           "ports": [{"port": 443, "protocol": "TCP"}]}]}}
    bound = lfield(3, lfield(1, "Pod") + lfield(2, "v1") + lfield(3, "web-0") + lfield(4, "u-1"))
    status = lfield(1, "tok") + lfield(2, vfield(1, 1795542000))
    token = decode_k8s_protobuf(envelope("authentication.k8s.io/v1", "TokenRequest",
                                         lfield(2, bound) + lfield(3, status)))
    assert token["spec"] == {"audiences": None,
                             "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "web-0", "uid": "u-1"}}
    assert token["status"] == {"token": "tok", "expirationTimestamp": "2026-11-24T17:40:00Z"}
    access = vfield(1, 0) + vfield(4, 1) + lfield(2, "no") + lfield(3, "boom")
    sar = decode_k8s_protobuf(envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", lfield(3, access)))
    assert sar["status"] == {"allowed": False, "denied": True, "reason": "no", "evaluationError": "boom"}
    rules = (lfield(2, lfield(1, "get") + lfield(2, "/healthz")) + vfield(3, 1) + lfield(4, "partial"))
    ssrr = decode_k8s_protobuf(envelope("authorization.k8s.io/v1", "SelfSubjectRulesReview", lfield(3, rules)))
    assert ssrr["status"] == {"resourceRules": None, "nonResourceRules": [
        {"verbs": ["get"], "nonResourceURLs": ["/healthz"]}], "incomplete": True, "evaluationError": "partial"}


@pytest.mark.parametrize("body", [
    b"",
    b"{\"kind\": \"ConfigMap\"}",
    b"k8s\x00\x0a",  # truncated length
    b"k8s\x00" + lfield(1, lfield(1, "v1") + lfield(2, "ConfigMap")) + varint(2 << 3 | 2) + varint(1 << 40),
    b"k8s\x00" + varint(1 << 3) + b"\xff" * 11,  # varint that never ends
    envelope("v1", "ConfigMap", lfield(1, lfield(1, b"\xff\xfe"))),  # name is not UTF-8
    envelope("v1", "ConfigMap", vfield(1, 3)),  # metadata as a varint
    envelope("v1", "ConfigMap", varint(1 << 3 | 3)),  # group wire type
    envelope("v1", "ComponentStatus", b""),  # kind without a table
    envelope("example.com/v1", "Widget", b""),
    b"k8s\x00" + lfield(2, b""),  # no typeMeta
])
def test_malformed_bodies_are_bad_requests(body: bytes) -> None:
    with pytest.raises(ApiError) as info:
        decode_k8s_protobuf(body)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"


def test_nesting_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    body = (FIXTURES / "deployment.bin").read_bytes()
    monkeypatch.setattr(protobuf, "MAX_DEPTH", 3)
    with pytest.raises(ApiError) as info:
        decode_k8s_protobuf(body)
    assert info.value.code == 400


# --- the tables themselves -------------------------------------------------------------


def test_tables_are_consistent() -> None:
    known = set(MESSAGES) | {"s", "i32", "i64", "b", "by", "Time", "MicroTime", "IOS", "Q", "FieldsV1", "ExtraValue",
                             "Raw"}
    for name, spec in MESSAGES.items():
        fields = parse_table(spec)
        assert len(fields) == len([p for p in spec.split(";") if p.strip()]), f"duplicate number in {name}"
        names = [f.json for f in fields.values()]
        assert len(names) == len(set(names)), f"duplicate json name in {name}"
        for field in fields.values():
            assert field.type in known, f"{name}.{field.json}: unknown type {field.type}"
    for message in KINDS.values():
        assert parse_table(MESSAGES[message])[1].json == "metadata"


def test_compiled_codecs_are_kept_reused_replaced_and_never_trusted_when_broken(tmp_path):
    from kybernetes.api.protobuf import _compiled

    def run(code):
        namespace: dict = {}
        exec(code, namespace)  # noqa: S102
        return namespace["f"]()

    first = _compiled("def f():\n    return 1\n", "test", str(tmp_path), write=True)
    kept = list(tmp_path.glob("protobuf-test-*.marshal"))
    assert run(first) == 1 and len(kept) == 1
    assert oct(kept[0].stat().st_mode & 0o777) == "0o644"
    # Read back from the file: the same function, under the codecs' own file name.
    again = _compiled("def f():\n    return 1\n", "test", str(tmp_path), write=True)
    assert run(again) == 1 and again.co_filename == "<kybernetes protobuf test>"
    # A changed source gets a file of its own; the old one goes.
    changed = _compiled("def f():\n    return 2\n", "test", str(tmp_path), write=True)
    now = list(tmp_path.glob("protobuf-test-*.marshal"))
    assert run(changed) == 2 and len(now) == 1 and now != kept
    # A torn file is compiled anew and written whole.
    now[0].write_bytes(now[0].read_bytes()[:20])
    assert run(_compiled("def f():\n    return 2\n", "test", str(tmp_path), write=True)) == 2
    assert len(now[0].read_bytes()) > 20
    # Without bytecode writing nothing is written.
    assert run(_compiled("def f():\n    return 3\n", "test", str(tmp_path / "none"), write=False)) == 3
    assert not (tmp_path / "none").exists()
