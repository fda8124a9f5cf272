"""A kind served in two versions (autoscaling/v1 and v2 HorizontalPodAutoscalers, stored as
v2) and the certificates.k8s.io/v1 CertificateSigningRequest API, on a real `kyb server`
driven by real kubectl and the official Python client."""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "default"
METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"


@pytest.fixture(scope="module")
def v1(k8s_client) -> client.AutoscalingV1Api:
    return client.AutoscalingV1Api(k8s_client)


@pytest.fixture(scope="module")
def v2(k8s_client) -> client.AutoscalingV2Api:
    return client.AutoscalingV2Api(k8s_client)


def _v2_hpa(name: str) -> dict:
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": name},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 6,
            "metrics": [
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization",
                                                                           "averageUtilization": 50}}},
                {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue",
                                                                              "averageValue": "300Mi"}}},
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 120,
                                       "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}},
        },
    }


# -- discovery -----------------------------------------------------------------------------


def test_discovery_serves_both_autoscaling_versions_with_v2_preferred(kubectl, k8s_client):
    versions = kubectl.ok("api-versions").split()
    assert "autoscaling/v1" in versions and "autoscaling/v2" in versions
    assert "certificates.k8s.io/v1" in versions
    group = json.loads(kubectl.ok("get", "--raw", "/apis/autoscaling"))
    assert [v["version"] for v in group["versions"]] == ["v2", "v1"]
    assert group["preferredVersion"]["version"] == "v2"
    v1_list = json.loads(kubectl.ok("get", "--raw", "/apis/autoscaling/v1"))
    v2_list = json.loads(kubectl.ok("get", "--raw", "/apis/autoscaling/v2"))
    (hpa1,) = [r for r in v1_list["resources"] if r["name"] == "horizontalpodautoscalers"]
    (hpa2,) = [r for r in v2_list["resources"] if r["name"] == "horizontalpodautoscalers"]
    # Both versions share one storage version, so one hash.
    assert hpa1["storageVersionHash"] == hpa2["storageVersionHash"]
    assert "horizontalpodautoscalers/status" in {r["name"] for r in v1_list["resources"]}
    # Aggregated discovery (what kubectl 1.37 reads) lists both, preferred first.
    resp = k8s_client.rest_client.request("GET", k8s_client.configuration.host + "/apis", headers={
        "Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    agg = json.loads(resp.read())
    (autoscaling,) = [g for g in agg["items"] if g["metadata"]["name"] == "autoscaling"]
    assert [v["version"] for v in autoscaling["versions"]] == ["v2", "v1"]
    # The v1 OpenAPI document describes the v1 shape (kubectl explain reads it).
    explained = kubectl.ok("explain", "hpa.spec", "--api-version=autoscaling/v1")
    assert "targetCPUUtilizationPercentage" in explained


# -- autoscaling/v1 <-> v2 -----------------------------------------------------------------


def test_an_hpa_written_in_v2_reads_in_v1_and_survives_a_v1_round_trip(v1, v2):
    v2.create_namespaced_horizontal_pod_autoscaler(NS, _v2_hpa("rt"))
    old = v1.read_namespaced_horizontal_pod_autoscaler("rt", NS)
    assert old.api_version == "autoscaling/v1"
    assert old.spec.target_cpu_utilization_percentage == 50
    assert old.spec.max_replicas == 6 and old.spec.min_replicas == 2
    others = json.loads(old.metadata.annotations[METRICS_ANNOTATION])
    assert others == [{"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "300Mi"}}]
    # The behavior travels as upstream's internal Go struct (Go field names).
    behavior = json.loads(old.metadata.annotations[BEHAVIOR_ANNOTATION])
    assert behavior["ScaleDown"]["StabilizationWindowSeconds"] == 120
    # A v1 client reads, changes one field and writes the whole object back: nothing v2
    # says is lost, and the annotations never reach storage.
    old.spec.max_replicas = 9
    v1.replace_namespaced_horizontal_pod_autoscaler("rt", NS, old)
    new = v2.read_namespaced_horizontal_pod_autoscaler("rt", NS)
    assert new.spec.max_replicas == 9
    assert [(m.resource.name, m.resource.target.type) for m in new.spec.metrics] == [
        ("memory", "AverageValue"), ("cpu", "Utilization")]
    assert new.spec.behavior.scale_down.stabilization_window_seconds == 120
    assert new.spec.behavior.scale_down.policies[0].value == 1
    assert not (new.metadata.annotations or {}).get(METRICS_ANNOTATION)
    v1.delete_namespaced_horizontal_pod_autoscaler("rt", NS)
    with pytest.raises(ApiException) as e:
        v2.read_namespaced_horizontal_pod_autoscaler("rt", NS)
    assert e.value.status == 404


def test_a_v1_patch_and_status_write_convert(v1, v2):
    v1.create_namespaced_horizontal_pod_autoscaler(NS, {
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "st"},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}})
    created = v2.read_namespaced_horizontal_pod_autoscaler("st", NS)
    # v1 without a CPU target means upstream's implicit 80% (and minReplicas 1).
    assert created.spec.min_replicas == 1
    assert created.spec.metrics[0].resource.target.average_utilization == 80
    patched = v1.patch_namespaced_horizontal_pod_autoscaler(
        "st", NS, {"spec": {"targetCPUUtilizationPercentage": 65}})
    assert patched.api_version == "autoscaling/v1" and patched.spec.target_cpu_utilization_percentage == 65
    assert v2.read_namespaced_horizontal_pod_autoscaler("st", NS).spec.metrics[0].resource.target \
        .average_utilization == 65
    current = v1.read_namespaced_horizontal_pod_autoscaler_status("st", NS)
    current.status.current_replicas = 2
    current.status.desired_replicas = 3
    current.status.current_cpu_utilization_percentage = 42
    v1.replace_namespaced_horizontal_pod_autoscaler_status("st", NS, current)
    status = v2.read_namespaced_horizontal_pod_autoscaler("st", NS).status
    assert status.current_replicas == 2 and status.desired_replicas == 3
    assert status.current_metrics[0].resource.current.average_utilization == 42
    v2.delete_namespaced_horizontal_pod_autoscaler("st", NS)


def test_a_v1_watch_gets_every_event_in_v1(v1, v2):
    v2.create_namespaced_horizontal_pod_autoscaler(NS, _v2_hpa("wt"))
    seen: list[tuple[str, str, int | None]] = []
    w = watch.Watch()

    def watch_v1() -> None:
        for ev in w.stream(v1.list_namespaced_horizontal_pod_autoscaler, NS, field_selector="metadata.name=wt",
                           timeout_seconds=20):
            obj = ev["object"]
            seen.append((ev["type"], obj.api_version, obj.spec.max_replicas))
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=watch_v1)
    t.start()
    time.sleep(1.0)
    v2.patch_namespaced_horizontal_pod_autoscaler("wt", NS, {"spec": {"maxReplicas": 7}})
    v2.delete_namespaced_horizontal_pod_autoscaler("wt", NS)
    t.join(25)
    assert [s[0] for s in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert {s[1] for s in seen} == {"autoscaling/v1"}
    assert [s[2] for s in seen] == [6, 7, 7]


def test_kubectl_applies_a_v1_manifest_and_autoscales(kubectl):
    kubectl.ok("create", "deployment", "scaled", "--image=registry.local/busybox")
    manifest = """
apiVersion: autoscaling/v1
kind: HorizontalPodAutoscaler
metadata:
  name: applied
  annotations:
    autoscaling.alpha.kubernetes.io/metrics: '[{"type":"Resource","resource":{"name":"memory","targetAverageUtilization":70}}]'
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: scaled}
  maxReplicas: MAX
  targetCPUUtilizationPercentage: 55
"""
    assert "created" in kubectl.ok("apply", "-f", "-", stdin=manifest.replace("MAX", "4"))
    assert "configured" in kubectl.ok("apply", "-f", "-", stdin=manifest.replace("MAX", "6"))
    out = kubectl.ok("get", "hpa", "applied")
    assert out.split("\n")[0].split() == ["NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    row = out.split("\n")[1]
    assert "Deployment/scaled" in row and "memory: <unknown>/70%, cpu: <unknown>/55%" in row and " 6 " in row
    v1_obj = json.loads(kubectl.ok("get", "horizontalpodautoscalers.v1.autoscaling", "applied", "-o", "json"))
    assert v1_obj["apiVersion"] == "autoscaling/v1" and v1_obj["spec"]["maxReplicas"] == 6
    assert v1_obj["spec"]["targetCPUUtilizationPercentage"] == 55
    # The v1 table is the same as v2's (one printer per kind, as upstream).
    assert "memory: <unknown>/70%" in kubectl.ok("get", "horizontalpodautoscalers.v1.autoscaling")
    # Writes in v1 are recorded in v1, as upstream's field manager records them.
    managed = {m["manager"]: m for m in json.loads(kubectl.ok(
        "get", "hpa", "applied", "-o", "json", "--show-managed-fields"))["metadata"]["managedFields"]}
    entry = managed["kubectl-client-side-apply"]
    assert entry["apiVersion"] == "autoscaling/v1" and entry["operation"] == "Update"
    assert "f:targetCPUUtilizationPercentage" in entry["fieldsV1"]["f:spec"]
    kubectl.ok("autoscale", "deployment", "scaled", "--name=auto", "--min=2", "--max=5", "--cpu=60%")
    auto = json.loads(kubectl.ok("get", "horizontalpodautoscalers.v1.autoscaling", "auto", "-o", "json"))
    assert auto["spec"]["minReplicas"] == 2 and auto["spec"]["targetCPUUtilizationPercentage"] == 60
    kubectl.ok("delete", "horizontalpodautoscalers.v1.autoscaling", "applied", "auto")
    kubectl.ok("delete", "deployment", "scaled")
    assert "No resources found" in kubectl("get", "hpa").stderr


# -- CertificateSigningRequests ---------------------------------------------------------------


def _csr_pem(common_name: str) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM)


def _self_signed_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "e2e.example.com")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(hours=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def _csr(pem: bytes, signer: str, generate: str = "", name: str = "") -> dict:
    meta = {"generateName": generate} if generate else {"name": name}
    return {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": meta,
            "spec": {"request": base64.b64encode(pem).decode(), "signerName": signer, "expirationSeconds": 3600,
                     "usages": ["digital signature", "key encipherment", "server auth"]}}


def test_csr_api_operations_as_the_conformance_test_runs_them(k8s_client):
    """The steps of upstream's "should support CSR API operations" conformance test."""
    api = client.CertificatesV1Api(k8s_client)
    signer = "example.com/e2e-csr-ops"
    template = _csr(_csr_pem("e2e.example.com"), signer, generate="e2e-example-csr-")
    for _ in range(2):
        api.create_certificate_signing_request(template)
    created = api.create_certificate_signing_request(template)
    assert created.spec.username == "kybernetes-admin" and "system:authenticated" in created.spec.groups
    got = api.read_certificate_signing_request(created.metadata.name)
    assert got.metadata.uid == created.metadata.uid and got.spec.expiration_seconds == 3600
    listed = api.list_certificate_signing_request(field_selector=f"spec.signerName={signer}")
    assert len(listed.items) == 3

    patched = api.patch_certificate_signing_request(created.metadata.name,
                                                    {"metadata": {"annotations": {"patched": "true"}}})
    assert patched.metadata.annotations["patched"] == "true"
    patched.metadata.annotations["updated"] = "true"
    updated = api.replace_certificate_signing_request(created.metadata.name, patched)
    assert updated.metadata.annotations["updated"] == "true"

    approval = api.patch_certificate_signing_request_approval(created.metadata.name, {
        "metadata": {"annotations": {"patchedapproval": "true"}},
        "status": {"conditions": [{"type": "ApprovalPatch", "status": "True", "reason": "e2e"}]}})
    assert [c.type for c in approval.status.conditions] == ["ApprovalPatch"]
    assert approval.metadata.annotations["patchedapproval"] == "true"
    approval.status.conditions.append(client.V1CertificateSigningRequestCondition(
        type="Approved", status="True", reason="E2E", message="Set from an e2e test"))
    approved = api.replace_certificate_signing_request_approval(created.metadata.name, approval)
    assert [c.type for c in approved.status.conditions] == ["ApprovalPatch", "Approved"]
    assert approved.status.conditions[1].last_update_time is not None

    certificate = base64.b64encode(_self_signed_pem()).decode()
    with_cert = api.patch_certificate_signing_request_status(created.metadata.name, {
        "metadata": {"annotations": {"patchedstatus": "true"}}, "status": {"certificate": certificate}})
    assert with_cert.status.certificate == certificate
    assert with_cert.metadata.annotations["patchedstatus"] == "true"
    with_cert.status.conditions.append(client.V1CertificateSigningRequestCondition(
        type="StatusUpdate", status="True", reason="E2E", message="Set from an e2e test"))
    after_status = api.replace_certificate_signing_request_status(created.metadata.name, with_cert)
    assert [c.type for c in after_status.status.conditions] == ["ApprovalPatch", "Approved", "StatusUpdate"]

    api.delete_certificate_signing_request(created.metadata.name)
    with pytest.raises(ApiException) as e:
        api.read_certificate_signing_request(created.metadata.name)
    assert e.value.status == 404
    assert len(api.list_certificate_signing_request(field_selector=f"spec.signerName={signer}").items) == 2
    api.delete_collection_certificate_signing_request(field_selector=f"spec.signerName={signer}")
    assert api.list_certificate_signing_request(field_selector=f"spec.signerName={signer}").items == []


def test_csr_rules_hold(k8s_client):
    api = client.CertificatesV1Api(k8s_client)
    name = "e2e-rules"
    body = _csr(_csr_pem("rules"), "example.com/rules", name=name)
    body["spec"]["username"] = "someone-else"  # the server says who asked, not the client
    body["status"] = {"conditions": [{"type": "Approved", "status": "True"}]}  # no pre-approved requests
    created = api.create_certificate_signing_request(body)
    assert created.spec.username == "kybernetes-admin" and not created.status.conditions
    # The spec is fixed at creation: an update that changes it keeps the stored one.
    created.spec.signer_name = "example.com/other"
    assert api.replace_certificate_signing_request(name, created).spec.signer_name == "example.com/rules"
    # /status cannot approve; /approval can, once; Approved and Denied exclude each other.
    current = api.read_certificate_signing_request(name)
    current.status.conditions = [client.V1CertificateSigningRequestCondition(type="Approved", status="True")]
    with pytest.raises(ApiException) as e:
        api.replace_certificate_signing_request_status(name, current)
    assert e.value.status == 422 and 'may not add a condition of type \\"Approved\\"' in e.value.body
    api.replace_certificate_signing_request_approval(name, current)
    current = api.read_certificate_signing_request(name)
    current.status.conditions.append(client.V1CertificateSigningRequestCondition(type="Denied", status="True"))
    with pytest.raises(ApiException) as e:
        api.replace_certificate_signing_request_approval(name, current)
    assert e.value.status == 422 and "mutually exclusive" in e.value.body
    current.status.conditions = []
    with pytest.raises(ApiException) as e:
        api.replace_certificate_signing_request_approval(name, current)
    assert e.value.status == 422 and 'may not remove a condition of type \\"Approved\\"' in e.value.body
    assert [c.type for c in api.read_certificate_signing_request(name).status.conditions] == ["Approved"]
    api.delete_certificate_signing_request(name)


def test_kubectl_creates_lists_approves_and_denies_csrs(kubectl):
    manifests = "\n---\n".join(json.dumps(_csr(_csr_pem(n), "kubernetes.io/kube-apiserver-client", name=n))
                               for n in ("e2e-alice", "e2e-bob"))
    kubectl.ok("apply", "-f", "-", stdin=manifests)
    out = kubectl.ok("get", "csr", "e2e-alice")
    assert out.split("\n")[0].split() == ["NAME", "AGE", "SIGNERNAME", "REQUESTOR", "REQUESTEDDURATION", "CONDITION"]
    assert out.split("\n")[1].split()[2:] == ["kubernetes.io/kube-apiserver-client", "kybernetes-admin", "60m",
                                             "Pending"]
    kubectl.ok("certificate", "approve", "e2e-alice")
    kubectl.ok("certificate", "deny", "e2e-bob")
    rows = {line.split()[0]: line.split()[-1] for line in kubectl.ok("get", "csr").splitlines()[1:]}
    # The in-cluster signer then fails alice's request (it asks for "server auth"), which the column adds.
    assert rows["e2e-alice"].split(",")[0] == "Approved" and rows["e2e-bob"] == "Denied"
    kubectl.ok("delete", "csr", "e2e-alice", "e2e-bob")


def test_bad_csrs_are_refused_and_nothing_is_stored(kubectl):
    good = _csr(_csr_pem("bad"), "example.com/bad", name="e2e-bad")
    cases = [
        ({"request": base64.b64encode(b"not a pem").decode()}, "PEM block type must be CERTIFICATE REQUEST"),
        ({"signerName": "nodomain"}, "must be a fully qualified domain and path"),
        ({"signerName": ""}, "spec.signerName: Required value"),
        ({"expirationSeconds": 599}, "may not specify a duration less than 600 seconds"),
        ({"usages": []}, "spec.usages: Required value"),
        ({"usages": ["client auth", "flying"]}, 'Unsupported value: "flying"'),
    ]
    for change, message in cases:
        body = json.loads(json.dumps(good))
        body["spec"].update(change)
        r = kubectl("create", "-f", "-", stdin=json.dumps(body))
        assert r.returncode != 0 and message in r.stderr, (change, r.stderr)
    assert "NotFound" in kubectl("get", "csr", "e2e-bad").stderr


def _client_key_and_csr(common_name: str, organization: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    request = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization)])).sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, request.public_bytes(serialization.Encoding.PEM)


def _wait_for(fetch, done, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        obj = fetch()
        if done(obj) or time.monotonic() > deadline:
            return obj
        time.sleep(0.3)


def test_an_approved_client_csr_is_signed_by_the_cluster_ca_and_its_certificate_logs_in(kubectl, k8s_client,
                                                                                      server, tmp_path):
    api = client.CertificatesV1Api(k8s_client)
    key_pem, csr_pem = _client_key_and_csr("e2e-carol", "e2e-team")
    body = _csr(csr_pem, "kubernetes.io/kube-apiserver-client", name="e2e-carol")
    body["spec"]["usages"] = ["digital signature", "key encipherment", "client auth"]
    api.create_certificate_signing_request(body)
    time.sleep(1.0)
    assert not api.read_certificate_signing_request("e2e-carol").status.certificate, "signed before approval"
    kubectl.ok("certificate", "approve", "e2e-carol")
    csr = _wait_for(lambda: api.read_certificate_signing_request("e2e-carol"), lambda c: c.status.certificate)
    assert csr.status.certificate, "the signer never issued the certificate"
    cert_pem = base64.b64decode(csr.status.certificate)
    cert = x509.load_pem_x509_certificate(cert_pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "e2e-carol"
    # Not valid for longer than asked (one hour) plus the five minutes of backdating.
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= dt.timedelta(hours=1, minutes=5)
    assert "Issued" in kubectl.ok("get", "csr", "e2e-carol")
    # The certificate is a working credential: the server reads the user from it.
    cfg = json.loads(kubectl.ok("config", "view", "--raw", "-o", "json"))
    cluster = cfg["clusters"][0]["cluster"]
    (tmp_path / "ca.crt").write_bytes(base64.b64decode(cluster["certificate-authority-data"]))
    (tmp_path / "carol.crt").write_bytes(cert_pem)
    (tmp_path / "carol.key").write_bytes(key_pem)
    r = kubectl("--kubeconfig=/dev/null", f"--server={cluster['server']}",
                f"--certificate-authority={tmp_path / 'ca.crt'}", f"--client-certificate={tmp_path / 'carol.crt'}",
                f"--client-key={tmp_path / 'carol.key'}", "auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == "e2e-carol" and "e2e-team" in info["groups"]
    api.delete_certificate_signing_request("e2e-carol")


def test_the_signer_fails_a_client_csr_asking_for_server_auth(kubectl, k8s_client):
    api = client.CertificatesV1Api(k8s_client)
    _, csr_pem = _client_key_and_csr("e2e-dave", "e2e-team")
    body = _csr(csr_pem, "kubernetes.io/kube-apiserver-client", name="e2e-dave")  # asks for "server auth"
    api.create_certificate_signing_request(body)
    kubectl.ok("certificate", "approve", "e2e-dave")
    csr = _wait_for(lambda: api.read_certificate_signing_request("e2e-dave"),
                    lambda c: any(x.type == "Failed" for x in c.status.conditions or []))
    failed = [c for c in csr.status.conditions or [] if c.type == "Failed"]
    assert failed and failed[0].reason == "SignerValidationFailure"
    assert "invalid usage for client certificate: server auth" in failed[0].message
    assert not csr.status.certificate
    assert kubectl.ok("get", "csr", "e2e-dave").split("\n")[1].split()[-1] == "Approved,Failed"
    api.delete_certificate_signing_request("e2e-dave")
