"""events.k8s.io/v1 and core/v1 Events are one resource on a real `kyb server`: objects
written through either group are read, selected, watched, patched and deleted through the
other, converted field by field, as kube-apiserver serves them."""

from __future__ import annotations

import json
import threading

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

NS = "events-shared"


@pytest.fixture(scope="module", autouse=True)
def namespace(kubectl):
    # Its own namespace, gone (with its events) before later modules list every event: a
    # core Event without eventTime does not read through the Python client's events.k8s.io
    # model, against kube-apiserver too.
    kubectl.ok("create", "namespace", NS)
    yield NS
    kubectl("delete", "namespace", NS, "--timeout=60s")


@pytest.fixture(scope="module")
def core(k8s_client) -> client.CoreV1Api:
    return client.CoreV1Api(k8s_client)


@pytest.fixture(scope="module")
def events(k8s_client) -> client.EventsV1Api:
    return client.EventsV1Api(k8s_client)


def _new_event(name: str, controller: str = "test-controller") -> dict:
    return {
        "apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": name, "namespace": NS},
        "eventTime": "2024-01-02T03:04:05.000000Z", "reportingController": controller,
        "reportingInstance": "inst-1", "action": "Scheduling", "reason": "Tested", "type": "Normal",
        "note": "hello from events.k8s.io",
        "regarding": {"kind": "Pod", "name": "p1", "namespace": NS, "uid": "u-1"},
        "series": {"count": 2, "lastObservedTime": "2024-01-02T03:05:05.000000Z"},
    }


def _raw(kubectl, path: str) -> dict:
    return json.loads(kubectl.ok("get", "--raw", path))


def _create(kubectl, obj: dict) -> None:
    # kubectl sends times as written (the Python client re-formats them).
    kubectl.ok("create", "-f", "-", stdin=json.dumps(obj))


def test_new_api_event_reads_through_core_converted(kubectl, events, core):
    _create(kubectl, _new_event("shared-a"))
    got = _raw(kubectl, f"/api/v1/namespaces/{NS}/events/shared-a")
    assert got["apiVersion"] == "v1"
    assert got["involvedObject"] == {"kind": "Pod", "name": "p1", "namespace": NS, "uid": "u-1"}
    assert got["message"] == "hello from events.k8s.io"
    assert got["reportingComponent"] == "test-controller"
    assert got["reportingInstance"] == "inst-1"
    assert got["series"] == {"count": 2, "lastObservedTime": "2024-01-02T03:05:05.000000Z"}
    assert "regarding" not in got and "note" not in got
    names = [e.metadata.name for e in core.list_namespaced_event(NS).items]
    assert "shared-a" in names
    assert "event/shared-a" in kubectl.ok("get", "events", "-n", NS, "-o", "name")
    # managedFields name the version the write came in.
    managers = got["metadata"].get("managedFields") or []
    assert managers and managers[0]["apiVersion"] == "events.k8s.io/v1"


def test_core_event_reads_through_events_api_converted(kubectl, core):
    _create(kubectl, {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "shared-b", "namespace": NS},
        "involvedObject": {"kind": "Node", "name": "n1", "namespace": NS}, "reason": "Booted", "message": "core says hi",
        "source": {"component": "kubelet", "host": "n1"}, "count": 3, "type": "Warning",
        "firstTimestamp": "2024-01-02T03:04:05Z", "lastTimestamp": "2024-01-02T03:06:05Z",
    })
    got = _raw(kubectl, f"/apis/events.k8s.io/v1/namespaces/{NS}/events/shared-b")
    assert got["apiVersion"] == "events.k8s.io/v1"
    assert got["regarding"] == {"kind": "Node", "name": "n1", "namespace": NS}
    assert got["note"] == "core says hi"
    assert got["deprecatedSource"] == {"component": "kubelet", "host": "n1"}
    assert got["deprecatedCount"] == 3
    assert got["deprecatedFirstTimestamp"] == "2024-01-02T03:04:05Z"
    assert got["deprecatedLastTimestamp"] == "2024-01-02T03:06:05Z"
    assert "involvedObject" not in got and "message" not in got and "source" not in got
    listed = _raw(kubectl, f"/apis/events.k8s.io/v1/namespaces/{NS}/events")
    assert "shared-b" in [i["metadata"]["name"] for i in listed["items"]]


def test_field_selectors_in_both_groups(kubectl, events, core):
    _create(kubectl, _new_event("shared-c", "other-controller"))
    _create(kubectl, _new_event("shared-d"))
    by_source = [e.metadata.name for e in core.list_namespaced_event(NS, field_selector="source=test-controller").items]
    assert "shared-d" in by_source and "shared-c" not in by_source
    by_controller = [e.metadata.name for e in events.list_namespaced_event(
        NS, field_selector="reportingController=test-controller").items]
    assert "shared-d" in by_controller and "shared-c" not in by_controller
    # Listed raw: a core Event without eventTime reads with a null one, which this client rejects.
    by_kind = [i["metadata"]["name"] for i in _raw(
        kubectl, f"/apis/events.k8s.io/v1/namespaces/{NS}/events?fieldSelector=regarding.kind%3DNode")["items"]]
    assert "shared-b" in by_kind and "shared-d" not in by_kind
    with pytest.raises(ApiException) as err:
        events.list_namespaced_event(NS, field_selector="involvedObject.kind=Node")
    assert err.value.status == 400


def test_watch_in_new_api_sees_core_writes(events, core):
    # Only core writes the client can read back through events.k8s.io: those with an eventTime.
    seen: list[tuple[str, str | None]] = []
    started = threading.Event()

    def run() -> None:
        w = watch.Watch()
        started.set()
        for ev in w.stream(events.list_namespaced_event, NS, field_selector="metadata.name=shared-w",
                           timeout_seconds=20):
            seen.append((ev["type"], ev["object"].note))
            if ev["type"] == "ADDED":
                w.stop()

    t = threading.Thread(target=run)
    t.start()
    started.wait()
    core.create_namespaced_event(NS, {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "shared-w", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": NS}, "message": "watched",
        "eventTime": "2024-01-02T03:04:05.000000Z"})
    t.join(30)
    assert ("ADDED", "watched") in seen


def test_strategic_merge_patch_of_series_through_new_api(kubectl, events):
    _create(kubectl, _new_event("shared-p"))
    patched = events.patch_namespaced_event("shared-p", NS, {
        "series": {"count": 5, "lastObservedTime": "2024-01-02T04:00:00.000000Z"}})
    assert patched.series.count == 5
    got = _raw(kubectl, f"/api/v1/namespaces/{NS}/events/shared-p")
    assert got["series"] == {"count": 5, "lastObservedTime": "2024-01-02T04:00:00.000000Z"}
    assert got["message"] == "hello from events.k8s.io"


def test_delete_through_one_group_removes_from_both(kubectl, events, core):
    _create(kubectl, _new_event("shared-x"))
    core.delete_namespaced_event("shared-x", NS)
    with pytest.raises(ApiException) as err:
        events.read_namespaced_event("shared-x", NS)
    assert err.value.status == 404
    core.create_namespaced_event(NS, {
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "shared-y", "namespace": NS},
        "involvedObject": {"kind": "Pod", "name": "p1", "namespace": NS}})
    events.delete_namespaced_event("shared-y", NS)
    with pytest.raises(ApiException) as err:
        core.read_namespaced_event("shared-y", NS)
    assert err.value.status == 404


def test_discovery_lists_events_in_both_groups(kubectl):
    resources = kubectl.ok("api-resources", "--no-headers")
    lines = [line.split() for line in resources.splitlines() if line.split()[0] == "events"]
    assert {line[-3] for line in lines} == {"v1", "events.k8s.io/v1"}


def test_new_api_rules_still_apply_to_its_writes(kubectl):
    bad = _new_event("shared-bad")
    del bad["reportingController"], bad["eventTime"]
    out = kubectl("create", "-f", "-", stdin=json.dumps(bad))
    assert out.returncode != 0
    assert "reportingController" in out.stderr and "eventTime" in out.stderr
    assert kubectl("get", "events", "shared-bad", "-n", NS).returncode != 0
