"""Serving a kind in more than one version, and the CertificateSigningRequest rules.

HorizontalPodAutoscalers are stored as autoscaling/v2 and served as v1 too: the
conversion must reproduce what a real kube-apiserver 1.28 answered for the same object
in both versions (wire samples), and carry everything v1 cannot say through upstream's
`autoscaling.alpha.kubernetes.io/*` annotations. The request pipeline converts through the
registry (storage version) and the kind's strategy; CSRs are checked through their
strategy and write policies.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import pathlib

import orjson
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.api import tables
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import DEFAULT
from kybernetes.api.kinds.autoscaling import (
    BEHAVIOR_ANNOTATION,
    CONDITIONS_ANNOTATION,
    METRIC_SPECS_ANNOTATION,
    METRIC_STATUSES_ANNOTATION,
    hpa_to_v1,
    hpa_to_v2,
)
from kybernetes.api.kinds.base import Requester
from kybernetes.api.kinds.certificates import (
    csr_condition,
    signer_name_errors,
    validate_csr,
    validate_csr_update,
)
from kybernetes.api.protobuf import decode_k8s_protobuf, encode_k8s_protobuf
from kybernetes.api.registry import Registry
from kybernetes.apiserver import discovery

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")


def _sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip("wire samples not available")
    return path.read_bytes()


# -- registry and discovery ------------------------------------------------------------------


def test_hpa_v1_is_served_from_the_v2_storage_version() -> None:
    registry = Registry()
    v1 = registry.get("autoscaling", "v1", "horizontalpodautoscalers")
    v2 = registry.get("autoscaling", "v2", "horizontalpodautoscalers")
    assert v1 is not None and v2 is not None
    assert registry.storage_info(v1) is v2 and registry.storage_info(v2) is v2
    assert v1.storage_prefix() == v2.storage_prefix()
    assert discovery.storage_version_hash(v1) == discovery.storage_version_hash(v2)
    group = next(g for g in discovery.legacy_api_group_list(registry)["groups"] if g["name"] == "autoscaling")
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"


def test_discovery_of_both_groups_matches_the_real_server() -> None:
    """The 1.28 server's documents for autoscaling (v2 preferred, v1) and certificates.k8s.io."""
    aggregated = json.loads(_sample("../aggregated-apis-v2beta1-from-1.28.json"))
    legacy = json.loads(_sample("../legacy-apis.json"))
    ours_aggregated = discovery.aggregated_discovery(Registry(), core=False)["items"]
    ours_legacy = discovery.legacy_api_group_list(Registry())["groups"]
    for group in ("autoscaling", "certificates.k8s.io"):
        assert next(g for g in ours_aggregated if g["metadata"]["name"] == group) == \
            next(g for g in aggregated["items"] if g["metadata"]["name"] == group), group
        assert next(g for g in ours_legacy if g["name"] == group) == \
            next(g for g in legacy["groups"] if g["name"] == group), group


# -- autoscaling/v1 <-> v2 ---------------------------------------------------------------------


def test_conversion_reproduces_the_real_servers_answers_byte_for_byte() -> None:
    v1_raw, v2_raw = _sample("hpa-v1.json"), _sample("hpa-v2.json")
    v1, v2 = json.loads(v1_raw), json.loads(v2_raw)
    assert json.dumps(hpa_to_v1(v2)) == json.dumps(v1)
    assert json.dumps(hpa_to_v2(v1)) == json.dumps(v2)


def _rich_v2() -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "rich", "namespace": "ns", "annotations": {"team": "a"}},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 10,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                           "averageUtilization": 70}}},
                {"type": "Pods", "pods": {"metric": {"name": "qps"},
                                          "target": {"type": "AverageValue", "averageValue": "1k"}}},
                {"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "x"}}},
                                                  "target": {"type": "Value", "value": "30"}}},
            ],
            "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                                     "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                         "scaleDown": {"selectPolicy": "Min",
                                       "policies": [{"type": "Percent", "value": 10, "periodSeconds": 60}]}},
        },
        "status": {
            "currentReplicas": 3, "desiredReplicas": 4,
            "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageValue": "250m", "averageUtilization": 91}}}],
            "conditions": [{"type": "AbleToScale", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z",
                            "reason": "ReadyForNewScale", "message": "ok"}],
        },
    }


def test_v2_only_data_travels_in_annotations_and_comes_back() -> None:
    v2 = _rich_v2()
    v1 = hpa_to_v1(v2)
    assert v1["apiVersion"] == "autoscaling/v1"
    assert v1["spec"] == {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                          "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 70}
    assert v1["status"] == {"currentReplicas": 3, "desiredReplicas": 4, "currentCPUUtilizationPercentage": 91}
    notes = v1["metadata"]["annotations"]
    assert notes["team"] == "a"
    assert json.loads(notes[METRIC_SPECS_ANNOTATION]) == [
        {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "1k"}},
        {"type": "External", "external": {"metricName": "queue", "metricSelector": {"matchLabels": {"q": "x"}},
                                          "targetValue": "30"}}]
    assert json.loads(notes[METRIC_STATUSES_ANNOTATION]) == [
        {"type": "Resource", "resource": {"name": "cpu", "currentAverageUtilization": 91,
                                          "currentAverageValue": "250m"}}]
    # Upstream marshals its internal Go struct: Go field names, nil pointers as null.
    assert json.loads(notes[BEHAVIOR_ANNOTATION])["ScaleDown"] == {
        "StabilizationWindowSeconds": None, "SelectPolicy": "Min",
        "Policies": [{"Type": "Percent", "Value": 10, "PeriodSeconds": 60}], "Tolerance": None}
    assert json.loads(notes[CONDITIONS_ANNOTATION])[0]["reason"] == "ReadyForNewScale"
    back = hpa_to_v2(v1)
    assert back["metadata"]["annotations"] == {"team": "a"}
    # v1 puts its own CPU target after the annotated metrics, as upstream does.
    assert back["spec"]["metrics"] == v2["spec"]["metrics"][1:] + v2["spec"]["metrics"][:1]
    assert back["spec"]["behavior"] == v2["spec"]["behavior"]
    assert back["status"]["currentMetrics"] == v2["status"]["currentMetrics"]
    assert back["status"]["conditions"] == v2["status"]["conditions"]
    assert v2 == _rich_v2(), "conversion must not modify its input"


def test_a_plain_v1_object_gets_upstreams_implicit_defaults() -> None:
    v2 = hpa_to_v2({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "x"},
                    "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}})
    assert v2["spec"]["minReplicas"] == 1
    assert v2["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    assert "annotations" not in v2["metadata"]


def test_undecodable_annotations_are_ignored_and_dropped() -> None:
    v1 = {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
          "metadata": {"name": "x", "annotations": {METRIC_SPECS_ANNOTATION: "{not json",
                                                    BEHAVIOR_ANNOTATION: "[]", "keep": "me"}},
          "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                   "targetCPUUtilizationPercentage": 40}}
    v2 = hpa_to_v2(v1)
    assert [m["resource"]["target"]["averageUtilization"] for m in v2["spec"]["metrics"]] == [40]
    assert "behavior" not in v2["spec"]
    assert v2["metadata"]["annotations"] == {"keep": "me"}


def test_reading_in_v1_drops_stale_round_trip_annotations() -> None:
    v2 = _rich_v2()
    v2["spec"]["metrics"] = v2["spec"]["metrics"][:1]
    del v2["spec"]["behavior"]
    v2["status"] = {"desiredReplicas": 0}
    v2["metadata"]["annotations"][METRIC_SPECS_ANNOTATION] = "[]"  # left over from someone's write
    assert hpa_to_v1(v2)["metadata"]["annotations"] == {"team": "a"}


def test_the_strategy_converts_by_version() -> None:
    strategy = DEFAULT.for_info(Registry().get("autoscaling", "v1", "horizontalpodautoscalers"))
    v2 = _rich_v2()
    assert strategy.convert(v2, "v2") is v2
    assert strategy.convert(v2, "v1")["apiVersion"] == "autoscaling/v1"
    assert strategy.convert(strategy.convert(v2, "v1"), "v2")["apiVersion"] == "autoscaling/v2"


# -- CertificateSigningRequests -----------------------------------------------------------------


def _request_b64(cn: str = "alice") -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])).sign(key, hashes.SHA256())
    return base64.b64encode(csr.public_bytes(serialization.Encoding.PEM)).decode()


REQUEST = _request_b64()


def _csr(**spec: object) -> dict:
    body = {"request": REQUEST, "signerName": "example.com/signer", "usages": ["client auth"]}
    body.update(spec)
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
            "metadata": {"name": "c"}, "spec": body, "status": {}}


def _messages(errors: list) -> list[str]:
    """Each error as the API's Status message shows it: `<field>: <message>`."""
    return [f"{e.field}: {e.message()}" for e in errors]


def test_a_well_formed_csr_is_valid() -> None:
    assert validate_csr(_csr(expirationSeconds=600)) == []


@pytest.mark.parametrize(("spec", "expected"), [
    ({"request": base64.b64encode(b"hello").decode()}, "PEM block type must be CERTIFICATE REQUEST"),
    ({"usages": []}, "spec.usages: Required value"),
    ({"usages": ["client auth", "client auth"]}, 'spec.usages[1]: Duplicate value: "client auth"'),
    ({"usages": ["teleport"]}, 'spec.usages[0]: Unsupported value: "teleport"'),
    ({"signerName": ""}, "spec.signerName: Required value"),
    ({"signerName": "kubernetes.io/legacy-unknown"}, "the legacy signerName is not allowed"),
    ({"expirationSeconds": 599}, "may not specify a duration less than 600 seconds (10 minutes)"),
])
def test_bad_csrs_are_invalid(spec: dict, expected: str) -> None:
    assert any(expected in m for m in _messages(validate_csr(_csr(**spec)))), validate_csr(_csr(**spec))


def test_a_tampered_request_fails_its_signature_check() -> None:
    pem = base64.b64decode(REQUEST)
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    tampered = der[:-4] + bytes(b ^ 0xFF for b in der[-4:])
    bad = b"-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(tampered) + \
        b"-----END CERTIFICATE REQUEST-----\n"
    assert any("spec.request" in m for m in _messages(validate_csr(_csr(request=base64.b64encode(bad).decode()))))


@pytest.mark.parametrize(("signer", "ok"), [
    ("example.com/signer", True), ("kubernetes.io/kube-apiserver-client", True), ("a.b/c.d", True),
    ("example.com", False), ("example.com/a/b", False), ("nodots/name", False), ("Example.com/x", False),
    ("example.com/Bad_Name", False),
])
def test_signer_names(signer: str, ok: bool) -> None:
    assert (signer_name_errors("spec.signerName", signer) == []) is ok


def test_condition_rules() -> None:
    both = _csr()
    both["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Denied", "status": "True"}]}
    assert any("mutually exclusive" in m for m in _messages(validate_csr(both)))
    false_approval = _csr()
    false_approval["status"] = {"conditions": [{"type": "Approved", "status": "False"}]}
    assert any('Unsupported value: "False"' in m for m in _messages(validate_csr(false_approval)))
    approved = _csr()
    approved["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    assert any('may not remove a condition of type "Approved"' in m
               for m in _messages(validate_csr_update(_csr(), approved)))


def _strategy():
    return DEFAULT.for_info(Registry().get("certificates.k8s.io", "v1", "certificatesigningrequests"))


def test_the_creator_is_the_requesting_user_not_the_body() -> None:
    info = Registry().get("certificates.k8s.io", "v1", "certificatesigningrequests")
    obj = _csr(username="mallory", groups=["system:masters"])
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}
    strategy = _strategy()
    strategy.prepare_for_create(info, obj)
    strategy.stamp_creator(info, obj, Requester("alice", uid="u1", groups=("devs",), extra=(("scope", ("x",)),)))
    assert obj["status"] == {}
    assert (obj["spec"]["username"], obj["spec"]["uid"], obj["spec"]["groups"], obj["spec"]["extra"]) == (
        "alice", "u1", ["devs"], {"scope": ["x"]})


def test_writes_change_only_what_their_subresource_owns() -> None:
    info = Registry().get("certificates.k8s.io", "v1", "certificatesigningrequests")
    strategy = _strategy()
    old = _csr()
    old["status"] = {"conditions": [{"type": "Approved", "status": "True", "lastUpdateTime": "2026-01-01T00:00:00Z",
                                     "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    # The object itself: the spec and status stay as stored.
    changed = _csr(signerName="example.com/other")
    changed["status"] = {}
    main = strategy.write_policy(info, "").merge(old, changed, False)
    assert main["spec"]["signerName"] == "example.com/signer" and main["status"] == old["status"]
    # /approval: only the conditions, timestamps filled in.
    new = _csr()
    new["status"] = {"certificate": "Zm9v", "conditions": [*old["status"]["conditions"],
                                                          {"type": "Extra", "status": "True"}]}
    approval = strategy.write_policy(info, "approval").merge(old, new, False)
    assert "certificate" not in approval["status"]
    assert approval["status"]["conditions"][1]["lastUpdateTime"]
    # /status may not approve.
    sneaky = _csr()
    sneaky["status"] = {"conditions": [{"type": "Denied", "status": "True"}]}
    with pytest.raises(ApiError) as e:
        strategy.write_policy(info, "status").merge(_csr(), sneaky, False)
    assert e.value.code == 422 and 'may not add a condition of type "Denied"' in e.value.message


def test_the_condition_column() -> None:
    csr = _csr()
    assert csr_condition(csr) == "Pending"
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True"}, {"type": "Failed", "status": "True"}],
                     "certificate": "Zm9v"}
    assert csr_condition(csr) == "Approved,Failed,Issued"
    csr["status"] = {"conditions": [{"type": "Denied", "status": "True"}]}
    assert csr_condition(csr) == "Denied"


def test_the_table_matches_kubectl_columns() -> None:
    info = Registry().get("certificates.k8s.io", "v1", "certificatesigningrequests")
    obj = _csr(expirationSeconds=3600, username="alice")
    obj["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z"
    table = tables.build_table(info, [obj], dt.datetime(2026, 1, 1, 0, 5, tzinfo=dt.UTC))
    assert [c["name"] for c in table["columnDefinitions"]] == [
        "Name", "Age", "SignerName", "Requestor", "RequestedDuration", "Condition"]
    assert table["rows"][0]["cells"] == ["c", "5m", "example.com/signer", "alice", "60m", "Pending"]


def test_a_csr_decodes_from_protobuf_and_back() -> None:
    obj = _csr(expirationSeconds=3600, username="alice", groups=["devs"])
    obj["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "r",
                                     "lastUpdateTime": "2026-01-01T00:00:00Z"}]}
    body = encode_k8s_protobuf(obj)
    assert orjson.loads(orjson.dumps(decode_k8s_protobuf(body)))["spec"] == obj["spec"]
    assert decode_k8s_protobuf(body)["status"]["conditions"][0]["type"] == "Approved"


def test_openapi_describes_the_v1_hpa_and_the_csr_approval_subresource() -> None:
    from kybernetes.apiserver import openapi

    registry = Registry()
    hpa = openapi.build_document(registry, "autoscaling", "v1")
    assert hpa is not None and "io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler" in hpa["components"]["schemas"]
    csr = openapi.build_document(registry, "certificates.k8s.io", "v1")
    assert csr is not None
    approval = csr["paths"]["/apis/certificates.k8s.io/v1/certificatesigningrequests/{name}/approval"]
    assert approval["put"]["operationId"] == "replaceCertificatesV1CertificateSigningRequestApproval"
    assert {"get", "put", "patch"} <= set(approval)
