"""Protobuf responses, as Go clients ask for them (`Accept: application/vnd.kubernetes.protobuf,
application/json`): every sampled kind created from kube-apiserver's own protobuf reads
back in protobuf as the same object as in JSON; LISTs, watch streams (length-prefixed
frames) and error Statuses are protobuf; custom resources stay JSON-only (406/415);
kubectl and the Python client, which read JSON, are unaffected."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pathlib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from kybernetes.api import protobuf as pb

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")
PROTO = "application/vnd.kubernetes.protobuf"
GO_ACCEPT = f"{PROTO},application/json"
NS = "pb-responses"

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason="wire samples not present")

# kind -> (namespaced, plural): where the sample is created (under its own apiVersion)
PLURALS = {
    "Namespace": (False, "namespaces"),
    "ConfigMap": (True, "configmaps"),
    "Secret": (True, "secrets"),
    "ServiceAccount": (True, "serviceaccounts"),
    "Pod": (True, "pods"),
    "Service": (True, "services"),
    "Deployment": (True, "deployments"),
    "StatefulSet": (True, "statefulsets"),
    "DaemonSet": (True, "daemonsets"),
    "Job": (True, "jobs"),
    "CronJob": (True, "cronjobs"),
    "PersistentVolumeClaim": (True, "persistentvolumeclaims"),
    "PersistentVolume": (False, "persistentvolumes"),
    "StorageClass": (False, "storageclasses"),
    "Role": (True, "roles"),
    "RoleBinding": (True, "rolebindings"),
    "ClusterRole": (False, "clusterroles"),
    "ClusterRoleBinding": (False, "clusterrolebindings"),
    "NetworkPolicy": (True, "networkpolicies"),
    "Ingress": (True, "ingresses"),
    "HorizontalPodAutoscaler": (True, "horizontalpodautoscalers"),
    "PodDisruptionBudget": (True, "poddisruptionbudgets"),
    "PriorityClass": (False, "priorityclasses"),
    "ResourceQuota": (True, "resourcequotas"),
    "LimitRange": (True, "limitranges"),
    "Lease": (True, "leases"),
    "EndpointSlice": (True, "endpointslices"),
    "ReplicationController": (True, "replicationcontrollers"),
    "Node": (False, "nodes"),
    "Event": (True, "events"),
    "ValidatingWebhookConfiguration": (False, "validatingwebhookconfigurations"),
}
# Only the server sets these; a client's body never carries them.
SERVER_META = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
               "deletionTimestamp", "deletionGracePeriodSeconds")


def _samples() -> list[str]:
    out = []
    for path in sorted(SAMPLES.glob("*.pb")):
        stem = path.stem
        if stem.startswith(("list-", "error-", "scale-")) or not SAMPLES.joinpath(stem + ".json").exists():
            continue
        out.append(stem)
    return out


class Api:
    """HTTPS to the test server with the admin client certificate."""

    def __init__(self, server: Any) -> None:
        pki = os.path.join(server.data_dir, "pki")
        self.ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ctx.check_hostname = False
        self.ctx.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.base = server.url

    def open(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
             accept: str = "application/json", timeout: float = 30) -> Any:
        req = urllib.request.Request(self.base + path, data=body or None, method=method,
                                     headers={"Content-Type": content_type, "Accept": accept})
        try:
            return urllib.request.urlopen(req, context=self.ctx, timeout=timeout)
        except urllib.error.HTTPError as e:
            return e

    def call(self, method: str, path: str, body: bytes = b"", content_type: str = "application/json",
             accept: str = "application/json") -> tuple[int, str, bytes]:
        with self.open(method, path, body, content_type, accept) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()

    def json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        code, _ct, data = self.call(method, path, json.dumps(body).encode() if body is not None else b"")
        return code, json.loads(data) if data else None

    def proto(self, method: str, path: str, body: bytes = b"", accept: str = GO_ACCEPT) -> tuple[int, Any]:
        """A Go client's request: protobuf body and `Accept`; the answer decoded (it must be protobuf)."""
        code, ctype, data = self.call(method, path, body, PROTO, accept)
        assert ctype == PROTO, (code, ctype, data[:300])
        return code, pb.decode_k8s_protobuf(data)


@pytest.fixture(scope="module")
def api(server) -> Api:
    return Api(server)


@pytest.fixture(scope="module")
def namespace(api: Api, kubectl):
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("-n", NS, "create", "serviceaccount", "sa")
    yield NS
    kubectl("delete", "namespace", NS, "--wait=false")


def _for_create(stem: str) -> tuple[str, dict[str, Any]]:
    """The sample object as a client would send it: server-set fields gone, renamed into
    this test's namespace; and the collection URL it is created under."""
    obj = json.loads(SAMPLES.joinpath(stem + ".json").read_text())
    obj.pop("status", None)
    meta = obj["metadata"]
    for key in SERVER_META:
        meta.pop(key, None)
    namespaced, plural = PLURALS[obj["kind"]]
    root = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    path = f"{root}/namespaces/{NS}/{plural}" if namespaced else f"{root}/{plural}"
    if namespaced:
        meta["namespace"] = NS
    else:
        meta.pop("namespace", None)
    meta["name"] = f"pbr-{stem.replace('.', '-')}"
    if obj["kind"] == "Event":
        obj["involvedObject" if obj["apiVersion"] == "v1" else "regarding"]["namespace"] = NS
    if obj["kind"] == "Namespace":
        obj.pop("spec", None)  # finalizers are the server's
        meta["labels"].pop("kubernetes.io/metadata.name")  # the server's, from the name
    if obj["kind"] == "Service":
        # Addresses and node ports are allocated by the server from its own ranges.
        for key in ("clusterIP", "clusterIPs"):
            obj["spec"].pop(key, None)
        for port in obj["spec"].get("ports") or []:
            port.pop("nodePort", None)
    return path, obj


def _values(value: Any) -> Any:
    """`value` without null fields. Protobuf cannot tell a null from an absent field, and
    the decoder writes Go's `null` for fields Go always writes; the server's JSON leaves
    some of them out (its own fidelity, not the encoding's), so both are compared
    without them: every value either side has must be the same on the other."""
    if isinstance(value, dict):
        return {k: _values(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_values(v) for v in value]
    return value


def _item(obj: dict[str, Any]) -> dict[str, Any]:
    """A JSON list item as protobuf carries it: no apiVersion/kind (kube-apiserver's JSON
    items do not have them either)."""
    return {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}


def _both_encodings(api: Api, path: str) -> tuple[Any, Any]:
    """The object read in JSON and in protobuf at the same resourceVersion (controllers
    may change it between two reads)."""
    for _ in range(20):
        code, as_json = api.json("GET", path)
        assert code == 200, as_json
        code, as_proto = api.proto("GET", path)
        assert code == 200
        if as_proto["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]:
            return as_json, as_proto
        time.sleep(0.2)
    raise AssertionError(f"{path} kept changing")


@pytest.mark.parametrize("stem", _samples())
def test_sample_created_from_protobuf_reads_back_the_same_in_both_encodings(api: Api, namespace: str,
                                                                         stem: str) -> None:
    path, obj = _for_create(stem)
    name = obj["metadata"]["name"]
    if api.call("GET", path + "?limit=1")[0] == 404:
        pytest.skip(f"{obj['apiVersion']} {obj['kind']} is not served")
    code, created = api.proto("POST", path, pb.encode_k8s_protobuf(obj))
    assert code == 201, created.get("message", created)
    try:
        as_json, as_proto = _both_encodings(api, f"{path}/{name}")
        # Embedded objects carry no TypeMeta in protobuf (a Go client reading protobuf
        # sees none there either): a StatefulSet's claim templates lose apiVersion/kind.
        for template in (as_json.get("spec") or {}).get("volumeClaimTemplates") or []:
            template.pop("apiVersion", None)
            template.pop("kind", None)
        assert _values(as_proto) == _values(as_json)
        assert created["metadata"]["uid"] == as_json["metadata"]["uid"]
        # The sampled fields came through protobuf both ways.
        for key, value in obj.items():
            if key not in ("metadata", "spec", "status") and not isinstance(value, dict | list):
                assert as_json.get(key) == value, key
        labels = obj["metadata"].get("labels") or {}
        assert {k: v for k, v in (as_json["metadata"].get("labels") or {}).items() if k in labels} == labels
    finally:
        api.call("DELETE", f"{path}/{name}")


def test_update_and_patch_replies_in_protobuf(api: Api, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "replies"}, "data": {"a": "1"}}
    code, created = api.proto("POST", path, pb.encode_k8s_protobuf(cm))
    assert code == 201 and created["data"] == {"a": "1"}
    created["data"]["a"] = "2"
    code, updated = api.proto("PUT", f"{path}/replies", pb.encode_k8s_protobuf(created))
    assert code == 200 and updated["data"] == {"a": "2"}
    code, ctype, data = api.call("PATCH", f"{path}/replies", b'{"data":{"b":"3"}}',
                                 "application/merge-patch+json", GO_ACCEPT)
    assert (code, ctype) == (200, PROTO)
    assert pb.decode_k8s_protobuf(data)["data"] == {"a": "2", "b": "3"}
    # Kubernetes has no protobuf patch type.
    code, _ct, _data = api.call("PATCH", f"{path}/replies", pb.encode_k8s_protobuf(created), PROTO, GO_ACCEPT)
    assert code == 415
    code, status = api.proto("DELETE", f"{path}/replies")
    assert code == 200
    assert status["kind"] == "Status" and status["status"] == "Success"
    assert status["details"]["name"] == "replies"


def _configmaps(api: Api, namespace: str, prefix: str, count: int, labels: dict[str, str]) -> None:
    def create(i: int) -> int:
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"{prefix}-{i:04d}"},
                                "data": {"i": str(i)}}
        if i % 2 == 0:
            body["metadata"]["labels"] = labels
        return api.json("POST", f"/api/v1/namespaces/{namespace}/configmaps", body)[0]

    # Each request is a new TLS connection: eight at a time.
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert set(pool.map(create, range(count))) == {201}


@pytest.mark.parametrize("query", ["", "?labelSelector=many%3Dyes", "?limit=7"])
def test_list_in_protobuf_is_the_json_list(api: Api, namespace: str, query: str) -> None:
    # More items than one chunk, so the streamed protobuf LIST is exercised (and, with the
    # label selector, the one filtered while it is gathered).
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    if api.json("GET", f"{path}/many-1099")[0] == 404:
        _configmaps(api, namespace, "many", 1100, {"many": "yes"})
    for _ in range(20):  # both at one resourceVersion (other writers may come between)
        code, ctype, data = api.call("GET", path + query, accept=GO_ACCEPT)
        assert (code, ctype) == (200, PROTO)
        decoded = pb.decode_k8s_protobuf(data)
        code, as_json = api.json("GET", path + query)
        if decoded["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]:
            break
        time.sleep(0.2)
    assert decoded["kind"] == "ConfigMapList" and decoded["apiVersion"] == "v1"
    assert decoded["metadata"]["resourceVersion"] == as_json["metadata"]["resourceVersion"]
    assert decoded["metadata"].get("continue") == as_json["metadata"].get("continue")
    assert [i["metadata"]["name"] for i in decoded["items"]] == [i["metadata"]["name"] for i in as_json["items"]]
    assert _values(decoded["items"]) == _values([_item(i) for i in as_json["items"]])
    if not query:
        assert len(decoded["items"]) > 1100
    elif "labelSelector" in query:
        assert len(decoded["items"]) == 550
    else:
        assert len(decoded["items"]) == 7


def _read_frames(resp: Any, count: int) -> list[tuple[str, dict[str, Any]]]:
    """`count` frames of a protobuf watch stream, each read by its length prefix."""
    out = []
    for _ in range(count):
        head = resp.read(4)
        assert len(head) == 4, "the watch ended early"
        frame = head + resp.read(int.from_bytes(head, "big"))
        out.extend(pb.iter_watch_frames(frame))
    return out


def test_watch_in_protobuf_frames(api: Api, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    code, listed = api.json("GET", path + "?limit=1")
    rv = listed["metadata"]["resourceVersion"]
    with api.open("GET", f"{path}?watch=1&resourceVersion={rv}&fieldSelector=metadata.name%3Dwatched"
                  "&timeoutSeconds=30", accept=f"{PROTO};stream=watch") as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"] == f"{PROTO};stream=watch"
        cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "watched"}, "data": {"a": "1"}}
        assert api.json("POST", path, cm)[0] == 201
        code, _ct, _ = api.call("PATCH", f"{path}/watched", b'{"data":{"a":"2"}}', "application/merge-patch+json")
        assert code == 200
        assert api.call("DELETE", f"{path}/watched")[0] == 200
        events = _read_frames(resp, 3)
    assert [t for t, _ in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert [o["data"]["a"] for _, o in events] == ["1", "2", "2"]
    assert all(o["kind"] == "ConfigMap" and o["apiVersion"] == "v1" for _, o in events)
    assert int(events[1][1]["metadata"]["resourceVersion"]) > int(events[0][1]["metadata"]["resourceVersion"])


def test_watch_initial_events_end_with_a_protobuf_bookmark(api: Api, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "initial", "labels": {"initial": "x"}}}
    assert api.json("POST", path, cm)[0] == 201
    with api.open("GET", f"{path}?watch=1&labelSelector=initial&sendInitialEvents=true"
                  "&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true&timeoutSeconds=30",
                  accept=GO_ACCEPT) as resp:
        assert resp.headers["Content-Type"] == f"{PROTO};stream=watch"
        (added_type, added), (mark_type, mark) = _read_frames(resp, 2)
    assert (added_type, added["metadata"]["name"]) == ("ADDED", "initial")
    assert mark_type == "BOOKMARK" and mark["kind"] == "ConfigMap"
    assert mark["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(mark["metadata"]["resourceVersion"]) >= int(added["metadata"]["resourceVersion"])


def test_errors_are_protobuf_statuses(api: Api, namespace: str) -> None:
    code, ctype, data = api.call("GET", f"/api/v1/namespaces/{namespace}/configmaps/nope", accept=GO_ACCEPT)
    assert (code, ctype) == (404, PROTO)
    want = json.loads(SAMPLES.joinpath("error-notfound.json").read_text())
    assert pb.decode_k8s_protobuf(data) == want
    # The same Status in JSON for a JSON client.
    code, ctype, data = api.call("GET", f"/api/v1/namespaces/{namespace}/configmaps/nope")
    assert (code, ctype, json.loads(data)) == (404, "application/json", want)


def test_table_stays_json(api: Api, namespace: str) -> None:
    path = f"/api/v1/namespaces/{namespace}/configmaps?limit=2"
    code, _ct, data = api.call("GET", path, accept=f"{PROTO};as=Table;v=v1;g=meta.k8s.io")
    assert code == 406, data
    assert json.loads(data)["reason"] == "NotAcceptable"
    code, ctype, data = api.call(
        "GET", path, accept=f"{PROTO};as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1;g=meta.k8s.io")
    assert (code, ctype) == (200, "application/json")
    assert json.loads(data)["kind"] == "Table"


CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "pbwidgets.pb.example.com"},
    "spec": {"group": "pb.example.com", "scope": "Namespaced",
             "names": {"plural": "pbwidgets", "singular": "pbwidget", "kind": "PbWidget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}


def test_custom_resources_are_json_only(api: Api, namespace: str, kubectl) -> None:
    code, _ = api.json("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", CRD)
    assert code in (201, 409)
    path = f"/apis/pb.example.com/v1/namespaces/{namespace}/pbwidgets"
    widget = {"apiVersion": "pb.example.com/v1", "kind": "PbWidget", "metadata": {"name": "w"}, "spec": {"n": 1}}
    for _ in range(50):
        code, _ = api.json("POST", path, widget)
        if code != 404:
            break
        time.sleep(0.2)
    assert code == 201
    # Protobuf only: 406 (the Status itself in protobuf, as kube-apiserver writes it).
    code, ctype, data = api.call("GET", f"{path}/w", accept=PROTO)
    assert (code, ctype) == (406, PROTO)
    assert pb.decode_k8s_protobuf(data)["reason"] == "NotAcceptable"
    # A JSON fallback in Accept: JSON.
    code, ctype, data = api.call("GET", f"{path}/w", accept=GO_ACCEPT)
    assert (code, ctype) == (200, "application/json")
    assert json.loads(data)["spec"] == {"n": 1}
    code, ctype, data = api.call("GET", path, accept=GO_ACCEPT)
    assert (code, ctype) == (200, "application/json")
    # A protobuf body: 415, nothing stored.
    body = pb.envelope("pb.example.com/v1", "PbWidget", b"\x0a\x03\x0a\x01x")
    code, _ct, data = api.call("POST", path, body, PROTO, "application/json")
    assert code == 415, data
    assert json.loads(data)["reason"] == "UnsupportedMediaType"
    assert api.json("GET", f"{path}/x")[0] == 404
    # kubectl reads it as ever (JSON).
    assert "w" in kubectl.ok("-n", namespace, "get", "pbwidgets")


def test_kubectl_and_python_client_read_json(api: Api, namespace: str, kubectl, k8s_client) -> None:
    from kubernetes import client

    # kubectl's typed commands send protobuf and accept it back.
    kubectl.ok("-n", namespace, "create", "deployment", "pbdep", "--image=busybox:1.35")
    kubectl.ok("-n", namespace, "create", "configmap", "pbcm", "--from-literal=k=v")
    out = kubectl.ok("-n", namespace, "get", "configmap", "pbcm", "-o", "json")
    assert json.loads(out)["data"] == {"k": "v"}
    assert "pbdep" in kubectl.ok("-n", namespace, "describe", "deployment", "pbdep")
    core = client.CoreV1Api(k8s_client)
    cm = core.read_namespaced_config_map("pbcm", namespace)
    assert cm.data == {"k": "v"}
    listed = core.list_namespaced_config_map(namespace, label_selector="many=yes", limit=3)
    assert len(listed.items) <= 3
    apps = client.AppsV1Api(k8s_client)
    assert apps.read_namespaced_deployment("pbdep", namespace).spec.template.spec.containers[0].image == \
        "busybox:1.35"


POM = "as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
POM_LIST = "as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


def test_metadata_only_answers_for_metadata_informers(api: Api, namespace: str) -> None:
    # What client-go's metadata client sends: protobuf first, JSON after.
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "meta-only", "labels": {"meta": "x"}},
          "data": {"secret-ish": "not in metadata answers"}}
    assert api.json("POST", path, cm)[0] == 201
    code, full = api.json("GET", f"{path}/meta-only")
    code, ctype, data = api.call("GET", f"{path}/meta-only", accept=f"{PROTO};{POM},application/json;{POM}")
    assert (code, ctype) == (200, PROTO)
    assert pb.decode_k8s_protobuf(data) == {"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                                            "metadata": full["metadata"]}
    code, ctype, data = api.call("GET", f"{path}/meta-only", accept=f"application/json;{POM}")
    assert (code, ctype) == (200, "application/json")
    assert json.loads(data) == {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                "metadata": full["metadata"]}
    code, ctype, data = api.call("GET", path + "?labelSelector=meta", accept=f"{PROTO};{POM_LIST},application/json")
    assert (code, ctype) == (200, PROTO)
    listed = pb.decode_k8s_protobuf(data)
    assert listed["kind"] == "PartialObjectMetadataList"
    assert [i["metadata"] for i in listed["items"]] == [full["metadata"]]
    # A list is not an object, nor the other way round.
    assert api.call("GET", path, accept=f"application/json;{POM}")[0] == 406
    assert api.call("GET", f"{path}/meta-only", accept=f"application/json;{POM_LIST}")[0] == 406
    rv = listed["metadata"]["resourceVersion"]
    with api.open("GET", f"{path}?watch=1&labelSelector=meta&resourceVersion={rv}&timeoutSeconds=30",
                  accept=f"{PROTO};{POM},application/json") as resp:
        assert resp.headers["Content-Type"] == f"{PROTO};stream=watch"
        assert api.call("DELETE", f"{path}/meta-only")[0] == 200
        ((event, obj),) = _read_frames(resp, 1)
    assert event == "DELETED" and obj["kind"] == "PartialObjectMetadata"
    assert obj["metadata"]["name"] == "meta-only" and "data" not in obj


def test_reviews_answer_in_protobuf(api: Api) -> None:
    # `kubectl auth can-i` and `auth whoami` post protobuf and ask for it first.
    ssar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "metadata": {},
            "spec": {"resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "default"}}}
    code, got = api.proto("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                          pb.encode_k8s_protobuf(ssar))
    assert code == 201 and got["kind"] == "SelfSubjectAccessReview" and got["status"]["allowed"] is True
    ssr = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview", "metadata": {}}
    code, got = api.proto("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", pb.encode_k8s_protobuf(ssr))
    assert code == 201 and got["status"]["userInfo"]["username"]
    code, ctype, data = api.call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                                 json.dumps(ssar).encode())
    assert code == 201 and ctype == "application/json" and json.loads(data)["status"]["allowed"] is True
    code, ctype, _ = api.call("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", json.dumps(ssr).encode(),
                              accept="text/html")
    assert code == 406
