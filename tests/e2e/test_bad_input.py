"""Hostile and malformed requests get a clear 4xx Status; nothing is stored; the server keeps serving."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request

import pytest


def _request(server, method, path, body=b"", content_type="application/json"):
    token = open(server.data_dir + "/pki/admin.token").read().strip()
    ctx = ssl.create_default_context(cafile=server.data_dir + "/pki/ca.crt")
    req = urllib.request.Request(server.url + path, data=body if body else None, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


CM = "/api/v1/namespaces/default/configmaps"


@pytest.mark.parametrize("body,ctype,code", [
    (b"{not json", "application/json", 400),
    (b"[1,2,3]", "application/json", 400),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"},"data":"str"}', "application/json", 400),
    (b'{"apiVersion":"v1","kind":"Pod","metadata":{"name":"t"}}', "application/json", 400),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"t"}}', "text/plain", 415),
    (b"a: &a [x,x]\nb: &b [*a,*a]\nc: [*b,*b]\n", "application/yaml", 400),
    (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"UPPER"}}', "application/json", 422),
])
def test_bad_bodies_rejected(server, body, ctype, code):
    status, st = _request(server, "POST", CM, body, ctype)
    assert status == code, st
    assert st["kind"] == "Status" and st["code"] == code and st["status"] == "Failure"
    s2, _ = _request(server, "GET", CM + "/t")
    assert s2 == 404


def test_huge_body_rejected(server):
    big = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"big"},"data":{"a":"' + b"x" * (4 * 1024 * 1024) + b'"}}'
    try:
        status, _ = _request(server, "POST", CM, big)
    except (ConnectionResetError, BrokenPipeError, urllib.error.URLError):
        status = 413
    assert status == 413
    assert _request(server, "GET", CM + "/big")[0] == 404
    assert _request(server, "GET", "/api/v1/namespaces/default")[0] == 200


def test_unknown_paths_and_methods(server):
    assert _request(server, "GET", "/api/v1/nothings")[0] == 404
    assert _request(server, "GET", "/apis/nope.io/v1/things")[0] == 404
    assert _request(server, "PUT", CM)[0] == 405
    status, st = _request(server, "PATCH", CM + "/x", b"{}", "application/json")
    assert status in (404, 415)


def test_server_still_serves(server):
    status, body = _request(server, "GET", "/api/v1/namespaces/default")
    assert status == 200 and body["metadata"]["name"] == "default"


def _full(server, method, path, body=b"", content_type="application/json"):
    """(status, headers, decoded body) of one request as the admin."""
    token = open(server.data_dir + "/pki/admin.token").read().strip()
    ctx = ssl.create_default_context(cafile=server.data_dir + "/pki/ca.crt")
    req = urllib.request.Request(server.url + path, data=body if body else None, method=method,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
            return r.status, r.headers, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"null")


def _token(rv, start):
    import base64

    raw = json.dumps({"v": 1, "rv": rv, "start": start}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _make_cms(server, ns, names):
    _request(server, "POST", "/api/v1/namespaces", json.dumps({"metadata": {"name": ns}}).encode())
    for n in names:
        body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": n}}).encode()
        assert _request(server, "POST", f"/api/v1/namespaces/{ns}/configmaps", body)[0] in (201, 409)


@pytest.mark.parametrize("token,why", [
    ("%%%not-base64", "continue key is not valid"),
    (_token(2 ** 70, "/registry/core/configmaps/bad-cont/a"), "incorrect encoded start resourceVersion"),
    (_token(0, "/registry/core/configmaps/bad-cont/a"), "incorrect encoded start resourceVersion"),
    (_token("12", "/registry/core/configmaps/bad-cont/a"), "incorrect encoded start resourceVersion"),
    (_token(5, ""), "encoded start key empty"),
    (_token(5, "/registry/core/secrets/kube-system/x"), "does not belong to this list"),
], ids=["not-base64", "rv-2^70", "rv-0", "rv-string", "empty-start", "other-resource"])
def test_malformed_continue_tokens_are_400(server, token, why):
    _make_cms(server, "bad-cont", ["a", "b"])
    status, st = _request(server, "GET", f"/api/v1/namespaces/bad-cont/configmaps?limit=1&continue={token}")
    assert status == 400, st
    assert st["reason"] == "BadRequest" and why in st["message"], st
    assert _request(server, "GET", "/api/v1/namespaces/bad-cont")[0] == 200


def test_negative_continue_revision_continues_at_the_latest(server):
    # kube-apiserver reads a negative revision as "the latest" (it hands out rv=-1 with a 410).
    _make_cms(server, "neg-cont", ["a", "b", "c"])
    status, page = _request(server, "GET",
                            f"/api/v1/namespaces/neg-cont/configmaps?continue={_token(-5, '/registry/core/configmaps/neg-cont/a')}")
    assert status == 200, page
    # (Without the controller manager's kube-root-ca.crt, which every namespace gets.)
    assert [i["metadata"]["name"] for i in page["items"] if i["metadata"]["name"] != "kube-root-ca.crt"] == [
        "b", "c"]
    _, latest = _request(server, "GET", "/api/v1/namespaces/neg-cont/configmaps")
    assert int(page["metadata"]["resourceVersion"]) >= max(int(i["metadata"]["resourceVersion"])
                                                           for i in latest["items"])


def test_continue_token_from_the_future_is_a_timeout_not_a_made_up_list(server):
    _make_cms(server, "future-cont", ["a", "b"])
    _, page = _request(server, "GET", "/api/v1/namespaces/future-cont/configmaps?limit=1")
    future = int(page["metadata"]["resourceVersion"]) + 10 ** 9
    status, headers, st = _full(server, "GET", "/api/v1/namespaces/future-cont/configmaps?limit=1&continue="
                                + _token(future, "/registry/core/configmaps/future-cont/a"))
    assert status == 504, st
    assert st["reason"] == "Timeout" and "Too large resource version" in st["message"]
    assert headers.get("Retry-After")


def test_continue_token_of_a_compacted_revision_is_410_with_a_fresh_token():
    from kybernetes.testing.cluster import ServerProcess

    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler",
                                    "--compact-interval", "1", "--compact-retention", "1"])
    srv.start()
    try:
        _make_cms(srv, "old-cont", ["a", "b", "c"])
        _, page = _request(srv, "GET", "/api/v1/namespaces/old-cont/configmaps?limit=1")
        token = page["metadata"]["continue"]
        for i in range(5):
            body = json.dumps({"data": {"i": str(i)}}).encode()
            assert _request(srv, "PATCH", "/api/v1/namespaces/old-cont/configmaps/c", body,
                            "application/merge-patch+json")[0] == 200
        import time

        deadline = time.monotonic() + 20
        while True:
            status, st = _request(srv, "GET", f"/api/v1/namespaces/old-cont/configmaps?limit=1&continue={token}")
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert status == 410, st
        assert st["reason"] == "Expired" and st["message"].startswith("The provided continue parameter is too old")
        fresh = st["metadata"]["continue"]
        status, rest = _request(srv, "GET", f"/api/v1/namespaces/old-cont/configmaps?continue={fresh}")
        assert status == 200, rest
        assert [i["metadata"]["name"] for i in rest["items"]] == ["b", "c"]
    finally:
        srv.cleanup()


DUP_CM = (b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},'
          b'"data":{"a":"first","b":"x","a":"second"}}')


def test_duplicate_json_fields_rejected_under_strict(server):
    body = DUP_CM.replace(b"NAME", b"dup-strict")
    status, st = _request(server, "POST", CM + "?fieldValidation=Strict", body)
    assert status == 400, st
    assert st["reason"] == "BadRequest"
    assert 'strict decoding error: duplicate field "data.a"' in st["message"], st["message"]
    assert _request(server, "GET", CM + "/dup-strict")[0] == 404


def test_duplicate_yaml_fields_rejected_under_strict(server):
    body = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup-yaml\n  name: dup-yaml2\ndata:\n  a: '1'\n"
    status, st = _request(server, "POST", CM + "?fieldValidation=Strict", body, "application/yaml")
    assert status == 400, st
    # kube-apiserver words a YAML body's duplicates as its YAML library does.
    assert 'strict decoding error: yaml: unmarshal errors:\n  line 5: key "name" already set in map' in st["message"]
    assert _request(server, "GET", CM + "/dup-yaml")[0] == 404
    assert _request(server, "GET", CM + "/dup-yaml2")[0] == 404


def test_duplicate_fields_warned_under_warn_and_silent_under_ignore(server):
    status, headers, obj = _full(server, "POST", CM + "?fieldValidation=Warn", DUP_CM.replace(b"NAME", b"dup-warn"))
    assert status == 201, obj
    assert 'duplicate field \\"data.a\\"' in (headers.get("Warning") or ""), headers.get_all("Warning")
    assert obj["data"] == {"a": "second", "b": "x"}
    status, headers, obj = _full(server, "POST", CM + "?fieldValidation=Ignore", DUP_CM.replace(b"NAME", b"dup-ign"))
    assert status == 201 and not headers.get("Warning")


def test_duplicate_fields_in_a_patch_rejected_under_strict(server):
    _request(server, "POST", CM, DUP_CM.replace(b"NAME", b"dup-patch"))
    status, st = _request(server, "PATCH", CM + "/dup-patch?fieldValidation=Strict",
                          b'{"data":{"z":"1","z":"2"}}', "application/merge-patch+json")
    # A patch's strict decoding errors are a 422 on the `patch` field, as kube-apiserver's.
    assert status == 422 and 'strict decoding error: duplicate field "data.z"' in st["message"], st
    assert st["details"]["causes"][0]["field"] == "patch"
    _, obj = _request(server, "GET", CM + "/dup-patch")
    assert "z" not in obj["data"]


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/default?resourceVersion=abc",
    "/api/v1/namespaces/default/configmaps?resourceVersion=abc",
    "/api/v1/namespaces/default/configmaps?resourceVersion=-1",
    "/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=abc",
    "/api/v1/namespaces/default?resourceVersion=18446744073709551616",
])
def test_invalid_resource_version_is_400(server, path):
    status, st = _request(server, "GET", path)
    assert status == 400, st
    assert st["reason"] == "BadRequest" and "invalid resource version" in st["message"], st


def test_get_with_a_resource_version_from_the_future_is_a_timeout(server):
    _, ns = _request(server, "GET", "/api/v1/namespaces/default")
    future = int(ns["metadata"]["resourceVersion"]) + 10 ** 9
    status, headers, st = _full(server, "GET", f"/api/v1/namespaces/default?resourceVersion={future}")
    assert status == 504 and st["reason"] == "Timeout", st
    status, _, obj = _full(server, "GET", "/api/v1/namespaces/default?resourceVersion=0")
    assert status == 200 and obj["metadata"]["name"] == "default"


def test_action_subresources_take_only_post(server):
    pods = "/api/v1/namespaces/default/pods"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bind-verbs"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}]}}
    assert _request(server, "POST", pods, json.dumps(pod).encode())[0] == 201
    try:
        binding = json.dumps({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "bind-verbs"},
                              "target": {"apiVersion": "v1", "kind": "Node", "name": "nowhere"}}).encode()
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            status, st = _request(server, method, f"{pods}/bind-verbs/binding", binding if method != "GET" else b"",
                                  "application/merge-patch+json" if method == "PATCH" else "application/json")
            assert status == 405 and st["reason"] == "MethodNotAllowed", (method, st)
        status, pod_now = _request(server, "GET", f"{pods}/bind-verbs")
        assert status == 200 and not pod_now["spec"].get("nodeName")
    finally:
        _request(server, "DELETE", f"{pods}/bind-verbs")
