"""What Kubernetes' sig-api-machinery conformance specs expect of the API, checked on a
real server with kubectl and the Python client: `/openapi/v2` publishing custom resource
schemas, ResourceQuota status and admission, and ReplicationControllers that make pods
and orphan them on a plain delete."""

from __future__ import annotations

import json
import textwrap
import time
import uuid

import pytest

CRD_GROUP = "apimachinery-fixes.example.com"
CRD = textwrap.dedent(f"""
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: gizmos.{CRD_GROUP}
    spec:
      group: {CRD_GROUP}
      scope: Namespaced
      names: {{plural: gizmos, singular: gizmo, kind: Gizmo, listKind: GizmoList}}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            description: Gizmo CRD for testing
            type: object
            properties:
              spec:
                description: Specification of Gizmo
                type: object
                properties:
                  parts:
                    description: List of parts.
                    type: array
                    items:
                      type: object
                      required: [name]
                      properties:
                        name: {{description: Name of the part., type: string}}
    """)
DEFINITION = "com.example.apimachinery-fixes.v1.Gizmo"


def wait_for(fn, timeout: float = 30.0, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    return last


def get_v2(k8s_client, headers: dict[str, str] | None = None):
    """(status, headers, body) of GET /openapi/v2."""
    resp = k8s_client.call_api("GET", k8s_client.configuration.host + "/openapi/v2", header_params=headers or {})
    body = resp.read()
    return resp.status, resp.getheaders(), body


@pytest.fixture
def namespace(kubectl):
    name = "amf-" + uuid.uuid4().hex[:8]
    kubectl.ok("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


# -- /openapi/v2 ------------------------------------------------------------------------


def test_openapi_v2_publishes_a_custom_resource_schema(kubectl, k8s_client):
    kubectl.ok("apply", "-f", "-", stdin=CRD)
    try:
        def definition():
            status, _, body = get_v2(k8s_client)
            assert status == 200
            return json.loads(body)["definitions"].get(DEFINITION)

        d = wait_for(definition)
        assert d is not None, "the CRD's kind is not in /openapi/v2"
        assert d["description"] == "Gizmo CRD for testing"
        assert d["x-kubernetes-group-version-kind"] == [{"group": CRD_GROUP, "kind": "Gizmo", "version": "v1"}]
        parts = d["properties"]["spec"]["properties"]["parts"]
        assert parts["items"]["required"] == ["name"]
        assert d["properties"]["metadata"]["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        # Built-in kinds are there too, with Swagger 2.0 references.
        status, hdrs, body = get_v2(k8s_client)
        doc = json.loads(body)
        assert doc["swagger"] == "2.0"
        assert "io.k8s.api.core.v1.Pod" in doc["definitions"]
        # The ETag lets a poller skip unchanged documents.
        etag = hdrs["ETag"]
        status, _, _ = get_v2(k8s_client, {"If-None-Match": etag})
        assert status == 304
    finally:
        kubectl("delete", "crd", f"gizmos.{CRD_GROUP}", "--ignore-not-found")

    def gone():
        _, _, body = get_v2(k8s_client)
        return DEFINITION not in json.loads(body)["definitions"]

    assert wait_for(gone), "a deleted CRD's kind is still in /openapi/v2"


def test_openapi_v2_is_offered_in_protobuf_to_go_clients(k8s_client):
    # client-go asks for gnostic protobuf only (kubectl's client-side validation of List files).
    status, hdrs, body = get_v2(k8s_client, {"Accept": "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"})
    assert status == 200
    assert hdrs["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert body.startswith(b"\n\x032.0")  # field 1 (swagger) = "2.0"


def test_a_crd_without_schema_is_a_bare_object_in_v2(kubectl, k8s_client):
    crd = CRD.replace("gizmos", "blobs").replace("gizmo", "blob").replace("Gizmo", "Blob")
    start = crd.index("    schema:")
    crd = crd[:start] + textwrap.indent(textwrap.dedent("""\
        schema:
          openAPIV3Schema:
            type: object
            x-kubernetes-preserve-unknown-fields: true
        """), "    ")
    kubectl.ok("apply", "-f", "-", stdin=crd)
    try:
        name = "com.example.apimachinery-fixes.v1.Blob"
        d = wait_for(lambda: json.loads(get_v2(k8s_client)[2])["definitions"].get(name))
        assert d == {"type": "object",
                     "x-kubernetes-group-version-kind": [{"group": CRD_GROUP, "kind": "Blob", "version": "v1"}]}
    finally:
        kubectl("delete", "crd", f"blobs.{CRD_GROUP}", "--ignore-not-found")


# -- ResourceQuota ----------------------------------------------------------------------


def quota_used(kubectl, namespace: str, name: str) -> dict[str, str]:
    return json.loads(kubectl.ok("-n", namespace, "get", "resourcequota", name, "-o", "json")).get(
        "status", {}).get("used", {})


def pod_manifest(name: str, requests: dict[str, str] | None = None, **spec) -> str:
    resources = {"requests": requests, "limits": requests} if requests else {}
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                       "spec": {"nodeSelector": {"x-test/unsatisfiable": "yes"}, **spec,
                                "containers": [{"name": "c", "image": "pause", "resources": resources}]}})


def test_quota_status_counts_what_the_namespace_holds(kubectl, namespace):
    kubectl.ok("-n", namespace, "create", "quota", "q",
               "--hard=configmaps=10,secrets=10,count/replicasets.apps=5,services=4,services.nodeports=2")
    kubectl.ok("-n", namespace, "create", "configmap", "one", "--from-literal=a=b")
    kubectl.ok("-n", namespace, "create", "service", "nodeport", "np", "--tcp=80:80")
    used = wait_for(lambda: (u := quota_used(kubectl, namespace, "q")).get("services") == "1" and u)
    assert used["services.nodeports"] == "1"
    assert int(used["configmaps"]) >= 1  # one of ours, and the root CA bundle once published
    before = int(used["configmaps"])
    assert used["count/replicasets.apps"] == "0"
    status = json.loads(kubectl.ok("-n", namespace, "get", "quota", "q", "-o", "json"))["status"]
    assert status["hard"]["configmaps"] == "10"
    kubectl.ok("-n", namespace, "delete", "configmap", "one")
    assert wait_for(lambda: quota_used(kubectl, namespace, "q")["configmaps"] == str(before - 1))


def test_quota_refuses_a_create_that_goes_over(kubectl, namespace):
    kubectl.ok("-n", namespace, "create", "quota", "q", "--hard=pods=2,cpu=1,memory=1Gi,services.nodeports=1")
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_manifest("fits", {"cpu": "500m", "memory": "252Mi"}))
    assert wait_for(lambda: quota_used(kubectl, namespace, "q").get("cpu") == "500m")
    assert quota_used(kubectl, namespace, "q")["memory"] == "252Mi"
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_manifest("big", {"cpu": "600m", "memory": "1Mi"}))
    assert r.returncode != 0
    assert 'pods "big" is forbidden: exceeded quota: q, requested: cpu=600m, used: cpu=500m, limited: cpu=1' \
        in r.stderr
    r = kubectl("-n", namespace, "apply", "-f", "-", stdin=pod_manifest("unbounded"))
    assert r.returncode != 0 and "failed quota: q: must specify cpu for: c; memory for: c" in r.stderr
    kubectl.ok("-n", namespace, "create", "service", "nodeport", "np1", "--tcp=80:80")
    r = kubectl("-n", namespace, "create", "service", "nodeport", "np2", "--tcp=80:80")
    assert r.returncode != 0 and "exceeded quota" in r.stderr
    assert kubectl("-n", namespace, "get", "pod", "big").returncode != 0  # nothing stored
    kubectl.ok("-n", namespace, "delete", "pod", "fits", "--grace-period=0", "--force")
    assert wait_for(lambda: quota_used(kubectl, namespace, "q").get("cpu") == "0")


def test_quota_scopes_pick_the_pods_they_count(kubectl, namespace):
    kubectl.ok("-n", namespace, "create", "quota", "be", "--hard=pods=5", "--scopes=BestEffort")
    kubectl.ok("-n", namespace, "create", "quota", "term", "--hard=pods=5", "--scopes=Terminating")
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=pod_manifest("plain"))
    kubectl.ok("-n", namespace, "apply", "-f", "-",
               stdin=pod_manifest("bounded", {"cpu": "100m", "memory": "10Mi"}, activeDeadlineSeconds=3600))
    assert wait_for(lambda: quota_used(kubectl, namespace, "be").get("pods") == "1")
    assert wait_for(lambda: quota_used(kubectl, namespace, "term").get("pods") == "1")
    kubectl.ok("-n", namespace, "delete", "pod", "bounded", "--grace-period=0", "--force")
    assert wait_for(lambda: quota_used(kubectl, namespace, "term").get("pods") == "0")
    assert quota_used(kubectl, namespace, "be")["pods"] == "1"


# -- ReplicationControllers ---------------------------------------------------------------


def rc_pods(kubectl, namespace: str) -> list[dict]:
    return json.loads(kubectl.ok("-n", namespace, "get", "pods", "-l", "app=rc-fix", "-o", "json"))["items"]


def test_a_replication_controller_makes_pods_and_a_plain_delete_orphans_them(kubectl, k8s_client, namespace):
    from kubernetes import client

    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc-fix"},
          "spec": {"replicas": 2, "selector": {"app": "rc-fix"},
                   "template": {"metadata": {"labels": {"app": "rc-fix"}},
                                "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=json.dumps(rc))
    pods = wait_for(lambda: len(p := rc_pods(kubectl, namespace)) == 2 and p)
    assert pods, "the ReplicationController made no pods"
    refs = pods[0]["metadata"]["ownerReferences"]
    assert refs[0]["kind"] == "ReplicationController" and refs[0]["apiVersion"] == "v1" and refs[0]["controller"]
    status = wait_for(lambda: json.loads(kubectl.ok("-n", namespace, "get", "rc", "rc-fix", "-o", "json"))
                      ["status"].get("replicas") == 2)
    assert status
    # Without a propagation policy, an RC's dependents are orphaned (its v1 default).
    client.CoreV1Api(k8s_client).delete_namespaced_replication_controller("rc-fix", namespace)
    assert wait_for(lambda: kubectl("-n", namespace, "get", "rc", "rc-fix").returncode != 0)
    orphans = wait_for(lambda: all(not p["metadata"].get("ownerReferences") for p in rc_pods(kubectl, namespace)))
    assert orphans
    assert len(rc_pods(kubectl, namespace)) == 2



def rc_condition(kubectl, namespace: str, name: str, type_: str) -> dict | None:
    rc = json.loads(kubectl.ok("-n", namespace, "get", "rc", name, "-o", "json"))
    return next((c for c in rc["status"].get("conditions") or [] if c["type"] == type_), None)


def test_a_replication_controller_over_its_quota_says_so_and_recovers(kubectl, namespace):
    # The controller creates pods in concurrent batches: all of a batch must be
    # counted against the quota, not each against the pods stored before the batch.
    kubectl.ok("-n", namespace, "create", "quota", "condition-test", "--hard=pods=2")
    assert wait_for(lambda: quota_used(kubectl, namespace, "condition-test").get("pods") == "0")
    rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "rc-fix"},
          "spec": {"replicas": 5, "selector": {"app": "rc-fix"},
                   "template": {"metadata": {"labels": {"app": "rc-fix"}},
                                "spec": {"containers": [{"name": "c", "image": "pause"}]}}}}
    kubectl.ok("-n", namespace, "apply", "-f", "-", stdin=json.dumps(rc))
    failure = wait_for(lambda: rc_condition(kubectl, namespace, "rc-fix", "ReplicaFailure"))
    assert failure and failure["status"] == "True" and failure["reason"] == "FailedCreate"
    assert "exceeded quota: condition-test" in failure["message"]
    assert len(rc_pods(kubectl, namespace)) == 2
    kubectl.ok("-n", namespace, "scale", "rc", "rc-fix", "--replicas=2")
    assert wait_for(lambda: rc_condition(kubectl, namespace, "rc-fix", "ReplicaFailure") is None)
    assert len(rc_pods(kubectl, namespace)) == 2

# -- Tables ------------------------------------------------------------------------------

SSAR = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"nonResourceAttributes": {"path": "/", "verb": "get"}}}


def post_review(k8s_client, accept: str):
    resp = k8s_client.call_api(
        "POST", k8s_client.configuration.host + "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        header_params={"Accept": accept, "Content-Type": "application/json"}, body=SSAR)
    return resp.status, json.loads(resp.read())


def test_a_review_cannot_be_answered_as_a_table(k8s_client):
    # Reviews are create-only, with no table conversion: as kube-apiserver, 406.
    status, body = post_review(k8s_client, "application/json;as=Table;v=v1;g=meta.k8s.io")
    assert status == 406
    assert body["reason"] == "NotAcceptable"
    # With a plain alternative offered, that is what comes back.
    status, body = post_review(k8s_client, "application/json;as=Table;v=v1;g=meta.k8s.io, application/json")
    assert status == 201
    assert body["kind"] == "SelfSubjectAccessReview" and body["status"]["allowed"] is True


# -- CustomResourceDefinitions -----------------------------------------------------------


def test_a_crd_status_write_keeps_its_own_conditions(kubectl):
    kubectl.ok("apply", "-f", "-", stdin=CRD)
    try:
        name = f"gizmos.{CRD_GROUP}"
        kubectl.ok("patch", "crd", name, "--subresource=status", "--type=json",
                   "-p", '[{"op": "add", "path": "/status/conditions/-", "value": {"message": "patched"}}]')
        conditions = json.loads(kubectl.ok("get", "crd", name, "-o", "json"))["status"]["conditions"]
        assert {"message": "patched"} in conditions
        assert {c.get("type") for c in conditions} >= {"NamesAccepted", "Established"}
    finally:
        kubectl("delete", "crd", f"gizmos.{CRD_GROUP}", "--ignore-not-found")


def test_a_default_added_to_a_crd_shows_on_stored_objects(kubectl):
    crd = CRD.replace("gizmos", "dials").replace("gizmo", "dial").replace("Gizmo", "Dial").replace(
        "scope: Namespaced", "scope: Cluster")
    # Two more top-level properties, without defaults for now.
    crd += "          a: {type: string}\n          b: {type: string}\n"
    kubectl.ok("apply", "-f", "-", stdin=crd)
    name = f"dials.{CRD_GROUP}"
    try:
        cr = {"apiVersion": f"{CRD_GROUP}/v1", "kind": "Dial", "metadata": {"name": "d1"}}
        assert wait_for(lambda: kubectl("apply", "-f", "-", stdin=json.dumps(cr)).ok)
        assert "a" not in json.loads(kubectl.ok("get", "dials", "d1", "-o", "json"))
        kubectl.ok("patch", "crd", name, "--type=json", "-p", json.dumps([
            {"op": "add", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/a/default", "value": "A"}]))
        # Read through the new default, though the stored object was written before it.
        assert wait_for(lambda: json.loads(kubectl.ok("get", "dials", "d1", "-o", "json")).get("a") == "A")
        listed = json.loads(kubectl.ok("get", "dials", "-o", "json"))["items"]
        assert listed[0]["a"] == "A"
        kubectl.ok("patch", "crd", name, "--type=json", "-p", json.dumps([
            {"op": "remove", "path": "/spec/versions/0/schema/openAPIV3Schema/properties/a/default"}]))
        assert wait_for(lambda: "a" not in json.loads(kubectl.ok("get", "dials", "d1", "-o", "json")))
    finally:
        kubectl("delete", "crd", name, "--ignore-not-found")
