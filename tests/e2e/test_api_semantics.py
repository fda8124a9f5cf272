"""API semantics a Kubernetes user relies on, checked against a real `kyb server`.

Finalizers, generateName, namespace termination, selectors, watch details,
reads at old revisions, field validation, dry runs, durability across a crash,
compaction, optimistic concurrency and the status subresource.
"""

from __future__ import annotations

import http.client
import json
import signal
import ssl
import threading
import time
import urllib.parse
import uuid
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from kybernetes.testing.cluster import ServerProcess

# -- raw HTTPS helpers -----------------------------------------------------------------------


def _token(server: ServerProcess) -> str:
    with open(server.data_dir + "/pki/admin.token") as f:
        return f.read().strip()


def _conn(server: ServerProcess, timeout: float = 30) -> http.client.HTTPSConnection:
    ctx = ssl.create_default_context(cafile=server.data_dir + "/pki/ca.crt")
    return http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=timeout)


def _path(path: str, params: dict[str, Any] | None = None) -> str:
    if not params:
        return path
    return path + "?" + urllib.parse.urlencode(params, doseq=True)


def call(server: ServerProcess, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None,
         content_type: str = "application/json", headers: dict[str, str] | None = None
         ) -> tuple[int, http.client.HTTPMessage, Any]:
    """One request; returns (status, headers, decoded JSON body)."""
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
    hdrs = {"Authorization": f"Bearer {_token(server)}", "Content-Type": content_type}
    hdrs.update(headers or {})
    conn = _conn(server)
    try:
        conn.request(method, _path(path, params), body=data, headers=hdrs)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, resp.headers, json.loads(raw or b"null")
    finally:
        conn.close()


def ok(server: ServerProcess, method: str, path: str, body: Any = None, **kw: Any) -> Any:
    status, _, out = call(server, method, path, body, **kw)
    assert 200 <= status < 300, (status, out)
    return out


class WatchStream:
    """A raw watch connection: open it, then read newline-delimited events."""

    def __init__(self, server: ServerProcess, path: str, params: dict[str, Any],
                 headers: dict[str, str] | None = None, timeout: float = 10) -> None:
        self.conn = _conn(server, timeout=timeout)
        hdrs = {"Authorization": f"Bearer {_token(server)}"}
        hdrs.update(headers or {})
        self.conn.request("GET", _path(path, {**params, "watch": "true"}), headers=hdrs)
        # Headers arrive only after the server has subscribed, so later writes are seen.
        self.resp = self.conn.getresponse()
        self.status = self.resp.status

    def next(self) -> dict[str, Any] | None:
        line = self.resp.readline()
        return json.loads(line) if line else None

    def take(self, n: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(n):
            ev = self.next()
            assert ev is not None, f"stream ended after {out}"
            out.append(ev)
        return out

    def rest(self) -> list[dict[str, Any]]:
        """Every remaining event until the server ends the stream."""
        out = []
        while (ev := self.next()) is not None:
            out.append(ev)
        return out

    def close(self) -> None:
        self.conn.close()


def _names(items: list[dict[str, Any]]) -> list[str]:
    return sorted(i["metadata"]["name"] for i in items)


def _cm(name: str, data: dict[str, str] | None = None, **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **meta}, "data": data or {}}


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ns(server):
    name = "sem-" + uuid.uuid4().hex[:6]
    ok(server, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    yield name
    call(server, "DELETE", f"/api/v1/namespaces/{name}")


@pytest.fixture(scope="module")
def core(k8s_client) -> client.CoreV1Api:
    return client.CoreV1Api(k8s_client)


def _cms(ns: str) -> str:
    return f"/api/v1/namespaces/{ns}/configmaps"


# -- 1. finalizers ---------------------------------------------------------------------------


def test_finalizer_holds_delete_until_removed(server, ns):
    created = ok(server, "POST", _cms(ns), _cm("fin", finalizers=["example.com/hold"]))
    w = WatchStream(server, _cms(ns), {"fieldSelector": "metadata.name=fin",
                                       "resourceVersion": created["metadata"]["resourceVersion"]})
    try:
        status, _, marked = call(server, "DELETE", _cms(ns) + "/fin")
        assert status in (200, 202), marked
        assert marked["metadata"]["deletionTimestamp"]
        live = ok(server, "GET", _cms(ns) + "/fin")
        assert live["metadata"]["deletionTimestamp"] == marked["metadata"]["deletionTimestamp"]
        assert live["metadata"]["finalizers"] == ["example.com/hold"]
        # A second delete changes nothing while the finalizer holds.
        again = ok(server, "DELETE", _cms(ns) + "/fin")
        assert again["metadata"]["resourceVersion"] == live["metadata"]["resourceVersion"]
        # No finalizer may be added to an object on its way out.
        status, _, st = call(server, "PATCH", _cms(ns) + "/fin",
                             {"metadata": {"finalizers": ["example.com/hold", "example.com/late"]}},
                             content_type="application/merge-patch+json")
        assert status == 422, st
        assert st["details"]["causes"][0]["field"] == "metadata.finalizers"
        assert "example.com/late" in st["message"]

        ok(server, "PATCH", _cms(ns) + "/fin", {"metadata": {"finalizers": None}},
           content_type="application/merge-patch+json")
        assert call(server, "GET", _cms(ns) + "/fin")[0] == 404
        events = w.take(2)
    finally:
        w.close()
    assert [e["type"] for e in events] == ["MODIFIED", "DELETED"]
    assert events[0]["object"]["metadata"]["deletionTimestamp"]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(
        events[0]["object"]["metadata"]["resourceVersion"])


# -- 2. generateName -------------------------------------------------------------------------


def test_generate_name_gives_distinct_names(core, ns):
    names = set()
    for _ in range(5):
        cm = core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(generate_name="gen-")))
        assert cm.metadata.name.startswith("gen-") and len(cm.metadata.name) > len("gen-")
        assert cm.metadata.generate_name == "gen-"
        names.add(cm.metadata.name)
    assert len(names) == 5
    listed = {c.metadata.name for c in core.list_namespaced_config_map(ns).items}
    assert names <= listed


# -- 3. namespace termination -----------------------------------------------------------------


def test_namespace_termination(server):
    name = "term-" + uuid.uuid4().hex[:6]
    ok(server, "POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    ok(server, "POST", _cms(name), _cm("held", finalizers=["example.com/hold"]))
    ok(server, "POST", _cms(name), _cm("plain"))

    deleted = ok(server, "DELETE", f"/api/v1/namespaces/{name}")
    assert deleted["status"]["phase"] == "Terminating"
    live = ok(server, "GET", f"/api/v1/namespaces/{name}")
    assert live["status"]["phase"] == "Terminating" and live["metadata"]["deletionTimestamp"]

    status, _, st = call(server, "POST", _cms(name), _cm("late"))
    assert status == 403, st
    assert st["reason"] == "Forbidden" and "being terminated" in st["message"]

    # The namespace's content is deleted; the finalizer keeps `held` (and so the namespace).
    deadline = time.monotonic() + 10
    while call(server, "GET", _cms(name) + "/plain")[0] != 404:
        assert time.monotonic() < deadline, "plain configmap not deleted by namespace termination"
        time.sleep(0.05)
    held = ok(server, "GET", _cms(name) + "/held")
    assert held["metadata"]["deletionTimestamp"]
    assert ok(server, "GET", f"/api/v1/namespaces/{name}")["status"]["phase"] == "Terminating"

    ok(server, "PATCH", _cms(name) + "/held", [{"op": "remove", "path": "/metadata/finalizers"}],
       content_type="application/json-patch+json")
    deadline = time.monotonic() + 10
    while call(server, "GET", f"/api/v1/namespaces/{name}")[0] != 404:
        assert time.monotonic() < deadline, "namespace not removed after its content went away"
        time.sleep(0.05)


# -- 4. field selectors ---------------------------------------------------------------------


def _pod(name: str, node: str | None = None) -> dict[str, Any]:
    # No scheduler serves this name: the session's scheduler must leave these pods alone.
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}], "schedulerName": "tests-only"}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def test_field_selectors(server, core, ns):
    pods = f"/api/v1/namespaces/{ns}/pods"
    ok(server, "POST", pods, _pod("fs-bound", node="node-x"))
    ok(server, "POST", pods, _pod("fs-free"))
    try:
        def sel(path: str, selector: str) -> list[str]:
            return _names(ok(server, "GET", path, params={"fieldSelector": selector})["items"])

        assert sel(pods, "spec.nodeName=node-x") == ["fs-bound"]
        assert sel(pods, "spec.nodeName=") == ["fs-free"]
        assert sel(pods, "spec.nodeName!=") == ["fs-bound"]
        assert sel(pods, "status.phase=Pending") == ["fs-bound", "fs-free"]
        assert sel(pods, "status.phase!=Pending") == []
        assert sel(pods, "status.phase=Pending,spec.nodeName=node-x") == ["fs-bound"]
        # All namespaces too, as the kubelet lists its pods.
        assert sel("/api/v1/pods", "spec.nodeName=node-x") == ["fs-bound"]

        events = f"/api/v1/namespaces/{ns}/events"
        for i, target in enumerate(["fs-bound", "fs-free", "fs-bound"]):
            ok(server, "POST", events, {
                "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"ev-{i}"},
                "involvedObject": {"kind": "Pod", "namespace": ns, "name": target, "apiVersion": "v1"},
                "reason": "Testing", "message": f"event {i}", "type": "Normal",
                "source": {"component": "tests"}})
        assert sel(events, "involvedObject.name=fs-bound") == ["ev-0", "ev-2"]
        assert sel(events, "involvedObject.name=fs-free,involvedObject.kind=Pod") == ["ev-1"]
        typed = core.list_namespaced_event(ns, field_selector="involvedObject.name=fs-free")
        assert [e.metadata.name for e in typed.items] == ["ev-1"]

        status, _, st = call(server, "GET", pods, params={"fieldSelector": "spec.bogus=1"})
        assert status == 400 and st["reason"] == "BadRequest", st
        status, _, st = call(server, "GET", _cms(ns), params={"fieldSelector": "data.x=y"})
        assert status == 400, st
        status, _, _ = call(server, "GET", pods, params={"fieldSelector": "spec.bogus=1", "watch": "true"})
        assert status == 400

        # A node's watch sees a pod appear when the pod is bound to it.
        w = WatchStream(server, "/api/v1/pods", {"fieldSelector": "spec.nodeName=node-y", "timeoutSeconds": "1"})
        try:
            binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "fs-free"},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": "node-y"}}
            status, _, st = call(server, "POST", f"{pods}/fs-free/binding", binding)
            assert status == 201, st
            status, _, st = call(server, "POST", f"{pods}/fs-free/binding", binding)
            assert status == 409, st
            events = w.rest()
        finally:
            w.close()
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "fs-free")]
        bound = events[0]["object"]
        assert bound["spec"]["nodeName"] == "node-y"
        assert {"type": "PodScheduled", "status": "True"}.items() <= bound["status"]["conditions"][0].items()
        assert sel(pods, "spec.nodeName=") == []
    finally:
        for p in ("fs-bound", "fs-free"):
            call(server, "DELETE", f"{pods}/{p}", params={"gracePeriodSeconds": "0"})
    assert call(server, "GET", f"{pods}/fs-bound")[0] == 404


# -- 5. label selectors ---------------------------------------------------------------------


def test_label_selectors(core, ns):
    labelled = {"ls-prod": {"env": "prod", "tier": "web"}, "ls-dev": {"env": "dev"},
                "ls-test": {"env": "test", "tier": "db"}, "ls-none": {}}
    for name, labels in labelled.items():
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"grp": "ls", **labels})))

    def sel(selector: str) -> list[str]:
        return sorted(c.metadata.name for c in core.list_namespaced_config_map(
            ns, label_selector="grp=ls," + selector).items)

    assert sel("env in (prod,dev)") == ["ls-dev", "ls-prod"]
    assert sel("env notin (prod,dev)") == ["ls-none", "ls-test"]
    assert sel("!env") == ["ls-none"]
    assert sel("env") == ["ls-dev", "ls-prod", "ls-test"]
    assert sel("env!=prod") == ["ls-dev", "ls-none", "ls-test"]
    assert sel("env=prod,tier=web") == ["ls-prod"]
    assert sel("tier,env!=test") == ["ls-prod"]
    with pytest.raises(ApiException) as e:
        core.list_namespaced_config_map(ns, label_selector="env in prod")
    assert e.value.status == 400


# -- 6. watch semantics ----------------------------------------------------------------------


def test_watch_from_resource_version_replays_only_later_changes(server, ns):
    first = ok(server, "POST", _cms(ns), _cm("wr-a", {"v": "1"}, labels={"grp": "wr"}))
    ok(server, "POST", _cms(ns), _cm("wr-b", labels={"grp": "wr"}))
    ok(server, "PATCH", _cms(ns) + "/wr-a", {"data": {"v": "2"}}, content_type="application/merge-patch+json")
    started = time.monotonic()
    w = WatchStream(server, _cms(ns), {"labelSelector": "grp=wr", "timeoutSeconds": "1",
                                       "resourceVersion": first["metadata"]["resourceVersion"]})
    try:
        events = w.rest()
    finally:
        w.close()
    elapsed = time.monotonic() - started
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "wr-b"),
                                                                              ("MODIFIED", "wr-a")]
    assert events[1]["object"]["data"] == {"v": "2"}
    # timeoutSeconds=1 ends the stream on the server's side.
    assert 0.8 <= elapsed < 5, elapsed


def test_watch_selector_transitions_are_added_and_deleted(server, ns):
    start = ok(server, "POST", _cms(ns), _cm("wl", labels={"grp": "wl", "side": "in"}))
    w = WatchStream(server, _cms(ns), {"labelSelector": "side=in", "timeoutSeconds": "1",
                                       "resourceVersion": start["metadata"]["resourceVersion"]})
    try:
        for side in ("out", "in"):
            ok(server, "PATCH", _cms(ns) + "/wl", {"metadata": {"labels": {"side": side}}},
               content_type="application/merge-patch+json")
        ok(server, "PATCH", _cms(ns) + "/wl", {"data": {"k": "v"}}, content_type="application/merge-patch+json")
        ok(server, "DELETE", _cms(ns) + "/wl")
        events = w.rest()
    finally:
        w.close()
    # Leaving the selection reads as a delete, entering it as an add.
    assert [(e["type"], e["object"]["metadata"]["labels"]["side"]) for e in events] == [
        ("DELETED", "out"), ("ADDED", "in"), ("MODIFIED", "in"), ("DELETED", "in")]


def test_watch_send_initial_events_ends_with_bookmark(server, ns):
    for n in ("wi-a", "wi-b"):
        ok(server, "POST", _cms(ns), _cm(n, labels={"grp": "wi"}))
    w = WatchStream(server, _cms(ns), {"labelSelector": "grp=wi", "sendInitialEvents": "true",
                                       "resourceVersionMatch": "NotOlderThan", "allowWatchBookmarks": "true"})
    try:
        events = w.take(3)
        ok(server, "POST", _cms(ns), _cm("wi-c", labels={"grp": "wi"}))
        later = w.take(1)
    finally:
        w.close()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events[:2]] == [("ADDED", "wi-a"),
                                                                                 ("ADDED", "wi-b")]
    bookmark = events[2]
    assert bookmark["type"] == "BOOKMARK"
    assert bookmark["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert int(bookmark["object"]["metadata"]["resourceVersion"]) >= max(
        int(e["object"]["metadata"]["resourceVersion"]) for e in events[:2])
    assert later[0]["type"] == "ADDED" and later[0]["object"]["metadata"]["name"] == "wi-c"


@pytest.mark.parametrize("params", [
    {"sendInitialEvents": "true"},
    {"sendInitialEvents": "true", "resourceVersionMatch": "Exact", "resourceVersion": "1"},
    {"resourceVersionMatch": "NotOlderThan", "resourceVersion": "1"},
])
def test_watch_rejects_bad_initial_events_options(server, ns, params):
    status, _, st = call(server, "GET", _cms(ns), params={**params, "watch": "true"})
    assert 400 <= status < 500, st
    assert st["kind"] == "Status" and st["status"] == "Failure"


def test_list_rejects_watch_only_options(server, ns):
    status, _, st = call(server, "GET", _cms(ns), params={"sendInitialEvents": "true"})
    assert 400 <= status < 500, st
    status, _, st = call(server, "GET", _cms(ns), params={"resourceVersion": "0", "resourceVersionMatch": "Exact"})
    assert 400 <= status < 500, st


TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


def test_watch_table_output(server, ns):
    for n in ("wt-a", "wt-b"):
        ok(server, "POST", _cms(ns), _cm(n, {"k": "v"}, labels={"grp": "wt"}))
    w = WatchStream(server, _cms(ns), {"labelSelector": "grp=wt"}, headers={"Accept": TABLE})
    try:
        initial = w.take(2)
        ok(server, "POST", _cms(ns), _cm("wt-c", labels={"grp": "wt"}))
        added = w.take(1)
    finally:
        w.close()
    events = initial + added
    assert [e["type"] for e in events] == ["ADDED"] * 3
    for e in events:
        t = e["object"]
        assert t["kind"] == "Table" and t["apiVersion"] == "meta.k8s.io/v1"
        assert len(t["rows"]) == 1
        assert t["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["wt-a", "wt-b", "wt-c"]
    cols = events[0]["object"]["columnDefinitions"]
    assert [c["name"] for c in cols][:2] == ["Name", "Data"]
    assert all(not e["object"].get("columnDefinitions") for e in events[1:])


def test_kubectl_watch_prints_new_rows(server, ns):
    w = server.kubectl_background("-n", ns, "get", "cm", "-w", "-l", "grp=kw")
    lines: list[list[str]] = []
    reader = threading.Thread(target=lambda: lines.extend(ln.split() for ln in w.stdout if ln.strip()),
                              daemon=True)
    reader.start()

    def wait_row(name: str) -> None:
        deadline = time.monotonic() + 15
        while not any(ln[0] == name for ln in lines) and time.monotonic() < deadline:
            time.sleep(0.05)

    try:
        ok(server, "POST", _cms(ns), _cm("kw-one", {"a": "1"}, labels={"grp": "kw"}))
        wait_row("kw-one")
        # kubectl has listed by now, so this one can only reach it through the watch.
        ok(server, "POST", _cms(ns), _cm("kw-two", labels={"grp": "kw"}))
        wait_row("kw-two")
    finally:
        w.terminate()
        _, err = w.communicate(timeout=10)
        reader.join(5)
    assert lines and lines[0][:3] == ["NAME", "DATA", "AGE"], (lines, err)
    assert [r[:2] for r in lines[1:]] == [["kw-one", "1"], ["kw-two", "0"]], (lines, err)


# -- 7. reads at a revision -------------------------------------------------------------------


def test_list_exact_returns_history(server, ns):
    v1 = ok(server, "POST", _cms(ns), _cm("hist", {"v": "1"}, labels={"grp": "hist"}))
    rv1 = v1["metadata"]["resourceVersion"]
    ok(server, "PUT", _cms(ns) + "/hist", _cm("hist", {"v": "2"}, labels={"grp": "hist"}))
    ok(server, "POST", _cms(ns), _cm("hist-later", labels={"grp": "hist"}))

    old = ok(server, "GET", _cms(ns), params={"labelSelector": "grp=hist", "resourceVersion": rv1,
                                              "resourceVersionMatch": "Exact"})
    assert old["metadata"]["resourceVersion"] == rv1
    assert [(i["metadata"]["name"], i["data"]) for i in old["items"]] == [("hist", {"v": "1"})]
    assert old["items"][0]["metadata"]["resourceVersion"] == rv1

    # Paging through an old revision stays at that revision.
    ok(server, "POST", _cms(ns), _cm("hist-0", labels={"grp": "hist"}))
    rv2 = ok(server, "GET", _cms(ns))["metadata"]["resourceVersion"]
    ok(server, "DELETE", _cms(ns) + "/hist-0")
    page = ok(server, "GET", _cms(ns), params={"labelSelector": "grp=hist", "resourceVersion": rv2,
                                               "resourceVersionMatch": "Exact", "limit": "2"})
    assert [i["metadata"]["name"] for i in page["items"]] == ["hist", "hist-0"]
    rest = ok(server, "GET", _cms(ns), params={"labelSelector": "grp=hist", "limit": "2",
                                               "continue": page["metadata"]["continue"]})
    assert rest["metadata"]["resourceVersion"] == rv2
    assert [i["metadata"]["name"] for i in rest["items"]] == ["hist-later"]

    now = ok(server, "GET", _cms(ns), params={"labelSelector": "grp=hist", "resourceVersion": rv1,
                                              "resourceVersionMatch": "NotOlderThan"})
    assert [(i["metadata"]["name"], i["data"]) for i in now["items"]] == [("hist", {"v": "2"}),
                                                                          ("hist-later", {})]


def test_paginated_list_is_a_consistent_snapshot(server, ns):
    for i in range(6):
        ok(server, "POST", _cms(ns), _cm(f"page-{i}", {"i": str(i)}, labels={"grp": "page"}))
    params = {"labelSelector": "grp=page", "limit": "2"}
    first = ok(server, "GET", _cms(ns), params=params)
    snapshot_rv = first["metadata"]["resourceVersion"]
    seen = list(first["items"])
    token = first["metadata"]["continue"]
    step = 0
    while token:
        # Writes between pages must not show up in this list.
        ok(server, "POST", _cms(ns), _cm(f"page-{step}x", labels={"grp": "page"}))
        ok(server, "PATCH", _cms(ns) + "/page-5", {"data": {"i": f"changed-{step}"}},
           content_type="application/merge-patch+json")
        step += 1
        page = ok(server, "GET", _cms(ns), params={**params, "continue": token})
        assert page["metadata"]["resourceVersion"] == snapshot_rv
        assert len(page["items"]) <= 2
        seen += page["items"]
        token = page["metadata"].get("continue")
    assert step == 2
    assert [i["metadata"]["name"] for i in seen] == [f"page-{i}" for i in range(6)]
    assert seen[-1]["data"] == {"i": "5"}
    assert all(int(i["metadata"]["resourceVersion"]) <= int(snapshot_rv) for i in seen)
    fresh = ok(server, "GET", _cms(ns), params={"labelSelector": "grp=page"})
    assert len(fresh["items"]) == 8


def test_continue_keeps_its_revision_when_only_other_resources_change(server, ns):
    for i in range(3):
        ok(server, "POST", _cms(ns), _cm(f"quiet-{i}", labels={"grp": "quiet"}))
    params = {"labelSelector": "grp=quiet", "limit": "1"}
    page = ok(server, "GET", _cms(ns), params=params)
    snapshot_rv = page["metadata"]["resourceVersion"]
    names = [i["metadata"]["name"] for i in page["items"]]
    while token := page["metadata"].get("continue"):
        # A write elsewhere moves the cluster revision but not this list's snapshot.
        ok(server, "POST", f"/api/v1/namespaces/{ns}/secrets",
           {"metadata": {"generateName": "quiet-"}, "stringData": {"k": "v"}})
        page = ok(server, "GET", _cms(ns), params={**params, "continue": token})
        assert page["metadata"]["resourceVersion"] == snapshot_rv
        names += [i["metadata"]["name"] for i in page["items"]]
    assert names == ["quiet-0", "quiet-1", "quiet-2"]


# -- 8. fieldValidation ----------------------------------------------------------------------


def test_field_validation_modes(server, ns):
    body = _cm("fv-warn", {"a": "b"})
    body["bogus"] = 1
    body["metadata"]["alsoBogus"] = "x"

    status, headers, obj = call(server, "POST", _cms(ns), body, params={"fieldValidation": "Warn"})
    assert status == 201, obj
    warnings = headers.get_all("Warning") or []
    assert any(w.startswith('299 - "unknown field') and "bogus" in w for w in warnings), warnings
    assert any("metadata.alsoBogus" in w for w in warnings), warnings
    stored = ok(server, "GET", _cms(ns) + "/fv-warn")
    assert "bogus" not in stored and "alsoBogus" not in stored["metadata"]

    # Warn is the default when the client says nothing.
    body["metadata"]["name"] = "fv-default"
    status, headers, _ = call(server, "POST", _cms(ns), body)
    assert status == 201 and any("bogus" in w for w in headers.get_all("Warning") or [])

    body["metadata"]["name"] = "fv-ignore"
    status, headers, obj = call(server, "POST", _cms(ns), body, params={"fieldValidation": "Ignore"})
    assert status == 201, obj
    assert not headers.get_all("Warning")
    assert "bogus" not in ok(server, "GET", _cms(ns) + "/fv-ignore")

    body["metadata"]["name"] = "fv-strict"
    status, _, st = call(server, "POST", _cms(ns), body, params={"fieldValidation": "Strict"})
    assert status == 400, st
    assert 'unknown field "bogus"' in st["message"] and "strict decoding error" in st["message"]
    assert call(server, "GET", _cms(ns) + "/fv-strict")[0] == 404

    # The same policy applies to updates and patches.
    status, headers, obj = call(server, "PATCH", _cms(ns) + "/fv-warn", {"data": {"c": "d"}, "extra": True},
                                content_type="application/merge-patch+json")
    assert status == 200 and "extra" not in obj and obj["data"] == {"a": "b", "c": "d"}
    assert any('unknown field \\"extra\\"' in w for w in headers.get_all("Warning") or []), headers
    status, _, st = call(server, "PUT", _cms(ns) + "/fv-warn", {**_cm("fv-warn"), "extra": 1},
                         params={"fieldValidation": "Strict"})
    assert status == 400, st
    assert ok(server, "GET", _cms(ns) + "/fv-warn")["data"] == {"a": "b", "c": "d"}


# -- 9. dryRun -------------------------------------------------------------------------------


def test_dry_run_changes_nothing(server, ns):
    base = ok(server, "POST", _cms(ns), _cm("dry", {"v": "1"}, finalizers=["example.com/hold"]))
    rv = base["metadata"]["resourceVersion"]
    dry = {"dryRun": "All"}

    put = ok(server, "PUT", _cms(ns) + "/dry", _cm("dry", {"v": "put"}, finalizers=["example.com/hold"]),
             params=dry)
    assert put["data"] == {"v": "put"}
    patched = ok(server, "PATCH", _cms(ns) + "/dry", {"data": {"v": "patch"}}, params=dry,
                 content_type="application/merge-patch+json")
    assert patched["data"] == {"v": "patch"}
    marked = ok(server, "DELETE", _cms(ns) + "/dry", params=dry)
    assert marked["metadata"].get("deletionTimestamp")
    created = ok(server, "POST", _cms(ns), _cm("dry-new"), params=dry)
    assert created["metadata"]["name"] == "dry-new"

    live = ok(server, "GET", _cms(ns) + "/dry")
    assert live["data"] == {"v": "1"} and live["metadata"]["resourceVersion"] == rv
    assert "deletionTimestamp" not in live["metadata"]
    assert call(server, "GET", _cms(ns) + "/dry-new")[0] == 404

    ok(server, "PATCH", _cms(ns) + "/dry", {"metadata": {"finalizers": None}},
       content_type="application/merge-patch+json")
    ok(server, "DELETE", _cms(ns) + "/dry", params=dry)
    assert call(server, "GET", _cms(ns) + "/dry")[0] == 200
    ok(server, "DELETE", _cms(ns) + "/dry")
    assert call(server, "GET", _cms(ns) + "/dry")[0] == 404


# -- 10. durability --------------------------------------------------------------------------


def _client_for(srv: ServerProcess) -> client.ApiClient:
    cfg = client.Configuration()
    config.load_kube_config(config_file=srv.kubeconfig, client_configuration=cfg)
    return client.ApiClient(cfg)


def test_writes_survive_kill9(tmp_path):
    srv = ServerProcess(data_dir=str(tmp_path))
    srv.start()
    try:
        with _client_for(srv) as api:
            core = client.CoreV1Api(api)
            last_rv = 0
            for i in range(50):
                cm = core.create_namespaced_config_map("default", client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name=f"durable-{i:02d}"), data={"i": str(i)}))
                last_rv = max(last_rv, int(cm.metadata.resource_version))
        srv.kill9()

        again = ServerProcess(data_dir=srv.data_dir, port=srv.port)
        again.start()
        try:
            with _client_for(again) as api:
                core = client.CoreV1Api(api)
                listed = core.list_namespaced_config_map("default")
                durable = {c.metadata.name: c.data for c in listed.items if c.metadata.name.startswith("durable-")}
                assert len(durable) == 50
                assert all(durable[f"durable-{i:02d}"] == {"i": str(i)} for i in range(50))
                assert int(listed.metadata.resource_version) >= last_rv
                nxt = core.create_namespaced_config_map("default", client.V1ConfigMap(
                    metadata=client.V1ObjectMeta(name="after-restart")))
                assert int(nxt.metadata.resource_version) > last_rv
        finally:
            again.stop()
    finally:
        srv.stop()


def test_a_stopping_server_ends_its_open_watches_cleanly_and_at_once(tmp_path):
    """On SIGTERM every open watch gets a finished response (its client watches again,
    elsewhere or after a restart), without the server waiting out a grace period for
    streams that never end by themselves."""
    # No controller manager or scheduler: the server would first wait for them to exit.
    srv = ServerProcess(data_dir=str(tmp_path), extra_args=["--disable-controllers", "--disable-scheduler",
                                                            "--api-workers", "1"])
    srv.start()
    try:
        watches = [WatchStream(srv, _cms("default"), {}) for _ in range(3)]
        assert [w.status for w in watches] == [200, 200, 200]
        proc = srv.proc
        assert proc is not None
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        # An aborted stream (no final chunk) raises IncompleteRead here.
        assert [w.rest() for w in watches] == [[], [], []]
        ended = time.monotonic() - started
        assert proc.wait(10) == 0
        assert ended < 0.9, f"the watches ended {ended:.2f}s after SIGTERM"
        for w in watches:
            w.close()
    finally:
        srv.stop()


# -- 11. compaction --------------------------------------------------------------------------


def test_compacted_revisions_are_gone(tmp_path):
    srv = ServerProcess(data_dir=str(tmp_path), extra_args=["--compact-interval", "1",
                                                                     "--compact-retention", "5"])
    srv.start()
    try:
        early = ok(srv, "POST", _cms("default"), _cm("compact-0"))
        early_rv = early["metadata"]["resourceVersion"]
        for i in range(30):
            ok(srv, "PATCH", _cms("default") + "/compact-0", {"data": {"i": str(i)}},
               content_type="application/merge-patch+json")
        # Compaction runs every second; wait for it rather than for a fixed time.
        deadline = time.monotonic() + 20
        while True:
            status, _, st = call(srv, "GET", _cms("default"), params={"resourceVersion": early_rv,
                                                                      "resourceVersionMatch": "Exact"})
            if status != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 410, st
        assert st["reason"] in ("Expired", "Gone")

        w = WatchStream(srv, _cms("default"), {"resourceVersion": early_rv})
        try:
            if w.status == 200:
                first = w.next()
                assert first is not None and first["type"] == "ERROR", first
                assert first["object"]["code"] == 410
            else:
                assert w.status == 410
        finally:
            w.close()

        with _client_for(srv) as api:
            core = client.CoreV1Api(api)
            with pytest.raises(ApiException) as e:
                for _ in watch.Watch().stream(core.list_namespaced_config_map, "default",
                                              resource_version=early_rv, timeout_seconds=2):
                    pass
            assert e.value.status == 410
            # A fresh list still works, and a recent revision is still readable.
            latest = core.list_namespaced_config_map("default")
            recent = ok(srv, "GET", _cms("default"), params={
                "resourceVersion": latest.metadata.resource_version, "resourceVersionMatch": "Exact"})
            # kube-root-ca.crt, which the controller manager publishes in every namespace, is not ours.
            assert [i["data"] for i in recent["items"] if i["metadata"]["name"] == "compact-0"] == [{"i": "29"}]
    finally:
        srv.stop()


# -- 12. optimistic concurrency ----------------------------------------------------------------


def test_put_without_rv_is_unconditional_and_stale_rv_conflicts(server, ns):
    first = ok(server, "POST", _cms(ns), _cm("occ", {"v": "1"}))
    stale_rv = first["metadata"]["resourceVersion"]
    ok(server, "PATCH", _cms(ns) + "/occ", {"data": {"v": "2"}}, content_type="application/merge-patch+json")

    status, _, st = call(server, "PUT", _cms(ns) + "/occ", _cm("occ", {"v": "3"}, resourceVersion=stale_rv))
    assert status == 409 and st["reason"] == "Conflict", st
    put = ok(server, "PUT", _cms(ns) + "/occ", _cm("occ", {"v": "3"}))
    assert put["data"] == {"v": "3"}

    status, _, st = call(server, "PATCH", _cms(ns) + "/occ",
                         {"metadata": {"resourceVersion": stale_rv}, "data": {"v": "4"}},
                         content_type="application/merge-patch+json")
    assert status == 409 and st["reason"] == "Conflict", st
    status, _, st = call(server, "PATCH", _cms(ns) + "/occ",
                         {"metadata": {"resourceVersion": stale_rv}, "data": {"v": "4"}},
                         content_type="application/strategic-merge-patch+json")
    assert status == 409, st
    assert ok(server, "GET", _cms(ns) + "/occ")["data"] == {"v": "3"}

    current = put["metadata"]["resourceVersion"]
    patched = ok(server, "PATCH", _cms(ns) + "/occ", {"metadata": {"resourceVersion": current},
                                                      "data": {"v": "4"}},
                 content_type="application/merge-patch+json")
    assert patched["data"] == {"v": "4"}
    assert int(patched["metadata"]["resourceVersion"]) > int(current)


def test_patches_racing_each_other_all_land(server, ns):
    """Patches that name no resourceVersion are applied to whatever is current: a race
    with another writer is retried by the server, never reported to the client."""
    ok(server, "POST", _cms(ns), _cm("racy", {}))
    results: list[int] = []

    def annotate(i: int) -> None:
        status, _, _ = call(server, "PATCH", _cms(ns) + "/racy", {"data": {f"k{i}": str(i)}},
                            content_type="application/merge-patch+json")
        results.append(status)

    threads = [threading.Thread(target=annotate, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 24
    assert ok(server, "GET", _cms(ns) + "/racy")["data"] == {f"k{i}": str(i) for i in range(24)}


# -- 13. status subresource --------------------------------------------------------------------


_GADGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "gadgets.semantics.example.com"},
    "spec": {"group": "semantics.example.com", "scope": "Namespaced",
             "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
             "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                           "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                               "spec": {"type": "object", "properties": {"replicas": {"type": "integer"}}},
                               "status": {"type": "object", "properties": {
                                   "replicas": {"type": "integer"}, "readyReplicas": {"type": "integer"},
                                   "observedGeneration": {"type": "integer"}}}}}}}]}}


def _gadget(name: str, replicas: int) -> dict[str, Any]:
    return {"apiVersion": "semantics.example.com/v1", "kind": "Gadget", "metadata": {"name": name},
            "spec": {"replicas": replicas}, "status": {"replicas": 7, "observedGeneration": 9}}


def test_status_subresource_and_generation(server, ns):
    # A custom resource: no controller of the session's control plane writes it concurrently.
    crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    status, _, _ = call(server, "POST", crds, _GADGET_CRD)
    assert status in (201, 409)
    deps = f"/apis/semantics.example.com/v1/namespaces/{ns}/gadgets"
    deadline = time.monotonic() + 10
    while call(server, "GET", deps)[0] != 200:
        assert time.monotonic() < deadline, "CRD not served"
        time.sleep(0.05)
    created = ok(server, "POST", deps, _gadget("st", 1))
    assert created["metadata"]["generation"] == 1
    assert not (created.get("status") or {}).get("replicas")

    # The main resource ignores status.
    body = _gadget("st", 1)
    body["metadata"]["labels"] = {"x": "y"}
    updated = ok(server, "PUT", deps + "/st", body)
    assert not (updated.get("status") or {}).get("replicas")
    assert updated["metadata"]["generation"] == 1, "a metadata-only change must not bump generation"

    # /status ignores spec.
    live = ok(server, "GET", deps + "/st")
    live["spec"]["replicas"] = 5
    live["status"] = {"replicas": 3, "observedGeneration": 1}
    st = ok(server, "PUT", deps + "/st/status", live)
    assert st["status"]["replicas"] == 3 and st["spec"]["replicas"] == 1
    assert st["metadata"]["generation"] == 1
    st = ok(server, "PATCH", deps + "/st/status", {"spec": {"replicas": 9}, "status": {"readyReplicas": 2}},
            content_type="application/merge-patch+json")
    assert st["spec"]["replicas"] == 1 and st["status"]["readyReplicas"] == 2
    assert st["metadata"]["generation"] == 1

    # A spec change bumps generation and keeps status.
    spec = ok(server, "PATCH", deps + "/st", {"spec": {"replicas": 4}, "status": {"replicas": 0}},
              content_type="application/merge-patch+json")
    assert spec["metadata"]["generation"] == 2
    assert spec["spec"]["replicas"] == 4 and spec["status"]["replicas"] == 3
    same = ok(server, "PATCH", deps + "/st", {"spec": {"replicas": 4}},
              content_type="application/merge-patch+json")
    assert same["metadata"]["generation"] == 2
    ok(server, "DELETE", deps + "/st")


def test_terminating_pod_stays_until_its_grace_period_ends(server, ns):
    """Status writes during a pod's grace period (its node reporting the containers
    stopping) do not delete it; the node's delete with grace 0 does. A finalizer
    holds a pod whose grace period was cut to 0 until it is removed."""
    pods = f"/api/v1/namespaces/{ns}/pods"
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "graceful"},
            "spec": {"nodeName": "some-node", "containers": [{"name": "c", "image": "busybox"}]}}
    assert call(server, "POST", pods, body)[0] == 201
    status, _, obj = call(server, "DELETE", f"{pods}/graceful", params={"gracePeriodSeconds": "30"})
    assert status == 200 and obj["metadata"]["deletionGracePeriodSeconds"] == 30
    patch = {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}
    status, _, obj = call(server, "PATCH", f"{pods}/graceful/status", patch,
                          content_type="application/merge-patch+json")
    assert status == 200, obj
    status, _, obj = call(server, "GET", f"{pods}/graceful")
    assert status == 200 and obj["metadata"]["deletionTimestamp"]
    assert call(server, "DELETE", f"{pods}/graceful", params={"gracePeriodSeconds": "0"})[0] == 200
    assert call(server, "GET", f"{pods}/graceful")[0] == 404

    held = dict(body, metadata={"name": "held", "finalizers": ["example.com/hold"]})
    assert call(server, "POST", pods, held)[0] == 201
    assert call(server, "DELETE", f"{pods}/held", params={"gracePeriodSeconds": "30"})[0] == 200
    status, _, obj = call(server, "DELETE", f"{pods}/held", params={"gracePeriodSeconds": "0"})
    assert status == 200 and obj["metadata"]["deletionGracePeriodSeconds"] == 0
    assert call(server, "PATCH", f"{pods}/held", {"metadata": {"finalizers": None}},
                content_type="application/merge-patch+json")[0] == 200
    assert call(server, "GET", f"{pods}/held")[0] == 404
