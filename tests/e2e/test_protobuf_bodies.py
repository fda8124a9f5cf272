"""Go clients' protobuf request bodies: a Pod created from kube-apiserver's own protobuf
encoding reads back as the same JSON, and DELETE honours a protobuf DeleteOptions."""

from __future__ import annotations

import json
import pathlib
import ssl
import urllib.error
import urllib.request

import pytest

from kybernetes.api.protobuf import MAGIC, _iter_fields

SAMPLES = pathlib.Path("/work/shared/compat/samples/wire-1.28")
PROTOBUF = "application/vnd.kubernetes.protobuf"


def _request(server, method: str, path: str, body: bytes = b"",
             content_type: str = "application/json") -> tuple[int, dict]:
    token = open(server.data_dir + "/pki/admin.token").read().strip()
    ctx = ssl._create_unverified_context()
    req = urllib.request.Request(server.url + path, data=body or None, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type,
                                          "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def _ld(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _encode(fields: list[tuple[int, int, object]]) -> bytes:
    out = b""
    for number, wire, value in fields:
        if wire == 0:
            out += _varint(number << 3) + _varint(value)  # type: ignore[arg-type]
        else:
            out += _ld(number, value)  # type: ignore[arg-type]
    return out


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    return MAGIC + _ld(1, _ld(1, api_version.encode()) + _ld(2, kind.encode())) + _ld(2, raw)


def _pod_body_for_create(namespace: str) -> bytes:
    """The sample Pod as kube-apiserver encoded it, minus what only a server sets
    (uid, resourceVersion, creationTimestamp, managedFields, status), in `namespace`."""
    envelope = dict((n, v) for n, _, v in _iter_fields(SAMPLES.joinpath("pod.pb").read_bytes()[len(MAGIC):]))
    pod = _iter_fields(envelope[2])
    meta_fields = next(v for n, _, v in pod if n == 1)
    meta = [(n, w, v) for n, w, v in _iter_fields(meta_fields) if n not in (3, 5, 6, 8, 17)]
    meta.append((3, 2, namespace.encode()))
    raw = _encode([(1, 2, _encode(meta))] + [(n, w, v) for n, w, v in pod if n == 2])
    return _envelope("v1", "Pod", raw)


@pytest.fixture(scope="module")
def namespace(kubectl):
    kubectl.ok("create", "namespace", "pb-bodies")
    kubectl.ok("-n", "pb-bodies", "create", "serviceaccount", "sa")
    yield "pb-bodies"
    kubectl("delete", "namespace", "pb-bodies", "--wait=false")


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="wire samples not present")
def test_pod_created_from_protobuf_reads_back_as_json(server, namespace):
    code, created = _request(server, "POST", f"/api/v1/namespaces/{namespace}/pods",
                             _pod_body_for_create(namespace), PROTOBUF)
    assert code == 201, created
    code, got = _request(server, "GET", f"/api/v1/namespaces/{namespace}/pods/pod")
    assert code == 200
    want = json.loads(SAMPLES.joinpath("pod.json").read_text())
    assert got["metadata"]["labels"] == want["metadata"]["labels"]
    assert got["metadata"]["annotations"] == want["metadata"]["annotations"]
    for key in ("volumes", "initContainers", "nodeSelector", "affinity", "serviceAccountName",
                "automountServiceAccountToken"):
        assert got["spec"][key] == want["spec"][key], key
    web = got["spec"]["containers"][0]
    want_web = want["spec"]["containers"][0]
    for key in ("command", "args", "env", "envFrom", "ports", "resources", "volumeMounts",
                "livenessProbe", "readinessProbe", "securityContext"):
        assert web[key] == want_web[key], key


def test_delete_with_protobuf_delete_options(server, namespace, kubectl):
    kubectl.ok("-n", namespace, "create", "configmap", "gone", "--from-literal=a=b")
    code, cm = _request(server, "GET", f"/api/v1/namespaces/{namespace}/configmaps/gone")
    assert code == 200
    path = f"/api/v1/namespaces/{namespace}/configmaps/gone"

    def options(uid: str) -> bytes:
        # gracePeriodSeconds 0, preconditions {uid}, propagationPolicy Background.
        raw = _varint(1 << 3) + _varint(0) + _ld(2, _ld(1, uid.encode())) + _ld(4, b"Background")
        return _envelope("v1", "DeleteOptions", raw)

    code, status = _request(server, "DELETE", path, options("not-the-uid"), PROTOBUF)
    assert code == 409, status  # the precondition was read from the protobuf body
    assert _request(server, "GET", path)[0] == 200
    code, status = _request(server, "DELETE", path, options(cm["metadata"]["uid"]), PROTOBUF)
    assert code == 200, status
    assert _request(server, "GET", path)[0] == 404


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="wire samples not present")
def test_eviction_in_protobuf_removes_the_pod(server, namespace):
    path = f"/api/v1/namespaces/{namespace}/pods/pod"
    if _request(server, "GET", path)[0] == 404:
        code, created = _request(server, "POST", f"/api/v1/namespaces/{namespace}/pods",
                                 _pod_body_for_create(namespace), PROTOBUF)
        assert code == 201, created
    meta = _ld(1, b"pod") + _ld(3, namespace.encode())
    delete_options = _varint(1 << 3) + _varint(0)
    body = _envelope("policy/v1", "Eviction", _ld(1, meta) + _ld(2, delete_options))
    code, status = _request(server, "POST", path + "/eviction", body, PROTOBUF)
    assert code == 201, status
    assert _request(server, "GET", path)[0] == 404
