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
