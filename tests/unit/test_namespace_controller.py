"""The namespace controller's decisions, and its deletion pass against a fake client."""

from __future__ import annotations

from typing import Any

from kybernetes.client import Resource
from kybernetes.controllers.apidiscovery import Discovery, ServedResource, parse_resource_list
from kybernetes.controllers.namespace import (
    CONTENT_FAILURE,
    CONTENT_REMAINING,
    DISCOVERY_FAILURE,
    FINALIZERS_REMAINING,
    ContentReport,
    NamespaceController,
    build_conditions,
    conditions_differ,
    content_resources,
    deletion_phases,
    finalized,
    merge_conditions,
    needs_finalizing,
    retry_delay,
)
from kybernetes.testing.fakes import FakeClient, FakeInformers

ALL = frozenset({"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"})


def served(plural: str, kind: str, group: str = "", namespaced: bool = True,
           verbs: frozenset[str] = ALL) -> ServedResource:
    return ServedResource(Resource(group, "v1", plural, kind, namespaced), verbs)


PODS = served("pods", "Pod")
CONFIGMAPS = served("configmaps", "ConfigMap")
WIDGETS = served("widgets", "Widget", "example.com", verbs=frozenset({"list", "delete", "get"}))
NODES = served("nodes", "Node", namespaced=False)


def ns(deleting: bool = True, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "team", "uid": "u1", "resourceVersion": "7"}
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta,
            "spec": {"finalizers": ["kubernetes"] if finalizers is None else finalizers},
            "status": {"phase": "Terminating" if deleting else "Active"}}


def test_needs_finalizing_only_deleted_namespaces_held_by_kubernetes() -> None:
    assert needs_finalizing(ns())
    assert not needs_finalizing(ns(deleting=False))
    assert not needs_finalizing(ns(finalizers=["example.com/other"]))


def test_finalized_removes_only_kubernetes() -> None:
    before = ns(finalizers=["kubernetes", "example.com/other"])
    after = finalized(before)
    assert after["spec"]["finalizers"] == ["example.com/other"]
    assert before["spec"]["finalizers"] == ["kubernetes", "example.com/other"]  # input untouched
    assert after["metadata"]["resourceVersion"] == "7"  # the PUT carries the precondition


def test_content_resources_and_pods_first() -> None:
    unlistable = served("bindings", "Binding", verbs=frozenset({"create"}))
    content = content_resources([PODS, CONFIGMAPS, WIDGETS, NODES, unlistable])
    assert [s.resource.plural for s in content] == ["pods", "configmaps", "widgets"]
    phases = deletion_phases(content)
    assert [[s.resource.plural for s in p] for p in phases] == [["pods"], ["configmaps", "widgets"]]
    assert deletion_phases([CONFIGMAPS]) == [[CONFIGMAPS]]


def test_parse_resource_list_skips_subresources() -> None:
    doc = {"resources": [
        {"name": "pods", "kind": "Pod", "namespaced": True, "verbs": ["list", "delete"]},
        {"name": "pods/status", "kind": "Pod", "namespaced": True, "verbs": ["get"]},
    ]}
    parsed = parse_resource_list("", "v1", doc)
    assert [(p.resource.plural, p.resource.version, p.supports("delete")) for p in parsed] == [("pods", "v1", True)]


def _by_type(conds: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in conds}


def test_conditions_in_kubernetes_words() -> None:
    report = ContentReport()
    report.count(PODS, [{"metadata": {"name": "a"}}, {"metadata": {"name": "b", "finalizers": ["example.com/x"]}}])
    report.count(CONFIGMAPS, [])
    report.count(WIDGETS, [{"metadata": {"finalizers": ["example.com/x", "example.com/y"]}}])
    conds = _by_type(build_conditions(report))
    assert conds[CONTENT_REMAINING]["status"] == "True"
    assert conds[CONTENT_REMAINING]["reason"] == "SomeResourcesRemain"
    assert conds[CONTENT_REMAINING]["message"] == (
        "Some resources are remaining: pods. has 2 resource instances, "
        "widgets.example.com has 1 resource instances")
    assert conds[FINALIZERS_REMAINING]["message"] == (
        "Some content in the namespace has finalizers remaining: example.com/x in 2 resource instances, "
        "example.com/y in 1 resource instances")
    assert conds[DISCOVERY_FAILURE]["status"] == "False"
    assert conds[CONTENT_FAILURE]["reason"] == "ContentDeleted"
    assert not report.empty


def test_conditions_for_failures_and_clean_state() -> None:
    report = ContentReport(failures=["pods.: boom"], discovery_failures={"metrics.k8s.io/v1beta1": "503"})
    conds = _by_type(build_conditions(report))
    assert conds[DISCOVERY_FAILURE]["message"] == (
        "Discovery failed for some groups, 1 failing: unable to retrieve the complete list of server APIs: "
        "metrics.k8s.io/v1beta1: 503")
    assert conds[CONTENT_FAILURE]["message"] == "Failed to delete all resource types, 1 remaining: pods.: boom"
    clean = _by_type(build_conditions(ContentReport()))
    assert {c["status"] for c in clean.values()} == {"False"}
    assert clean[CONTENT_REMAINING]["message"] == "All content successfully removed"
    assert ContentReport().empty


def test_merge_conditions_moves_transition_time_only_on_status_change() -> None:
    first = merge_conditions([], build_conditions(ContentReport()), "T1")
    first.append({"type": "Custom", "status": "True"})
    again = merge_conditions(first, build_conditions(ContentReport()), "T2")
    assert {c["lastTransitionTime"] for c in again if c["type"] != "Custom"} == {"T1"}
    assert any(c["type"] == "Custom" for c in again)  # not ours: kept
    assert not conditions_differ(first, again)
    busy = ContentReport()
    busy.count(PODS, [{"metadata": {}}])
    changed = _by_type(merge_conditions(first, build_conditions(busy), "T3"))
    assert changed[CONTENT_REMAINING]["lastTransitionTime"] == "T3"
    assert changed[DISCOVERY_FAILURE]["lastTransitionTime"] == "T1"
    assert conditions_differ(first, list(changed.values()))


def test_retry_delay_grows_and_caps() -> None:
    assert retry_delay(0) < retry_delay(1) < retry_delay(3)
    assert retry_delay(50) == 5.0


# -- the deletion pass against a fake client ------------------------------------------------------


def seeded(objects: dict[ServedResource, list[dict[str, Any]]]) -> FakeClient:
    # Pods end gracefully: a deletion marks them and their node agent removes them later.
    client = FakeClient(graceful=["pods"])
    for served_res, items in objects.items():
        client.add(served_res.resource, *items)
    return client


def _item(name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "team", "uid": "uid-" + name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


async def test_pass_deletes_pods_before_anything_else() -> None:
    client = seeded({PODS: [_item("p1")], CONFIGMAPS: [_item("c1")], WIDGETS: [_item("w1")]})
    ctrl = NamespaceController(client, FakeInformers())
    found = Discovery([PODS, CONFIGMAPS, WIDGETS], {})
    report = await ctrl.delete_content("team", found)
    assert report.remaining == {"pods.": 1}
    assert client.all(CONFIGMAPS.resource)  # untouched while pods remain
    assert not any(c.resource in ("configmaps", "widgets") for c in client.calls)
    # A second pass while the pod terminates does not delete it again (that could restart its grace).
    await ctrl.delete_content("team", found)
    assert len(client.calls_of("deletecollection", "pods")) == 1
    client.remove(PODS.resource, "team", "p1")  # the node agent finished the pod
    report = await ctrl.delete_content("team", found)
    assert report.empty
    assert client.all(CONFIGMAPS.resource) == [] and client.all(WIDGETS.resource) == []
    # widgets have no deletecollection: deleted one by one.
    assert [(c.verb, c.name) for c in client.calls_of(resource="widgets") if c.verb.startswith("delete")] == \
        [("delete", "w1")]


async def test_pass_reports_objects_held_by_finalizers() -> None:
    client = seeded({CONFIGMAPS: [_item("c1", ["example.com/hold"]), _item("c2")]})
    ctrl = NamespaceController(client, FakeInformers())
    report = await ctrl.delete_content("team", Discovery([PODS, CONFIGMAPS], {"x.io/v1": "down"}))
    assert report.remaining == {"configmaps.": 1}
    assert report.finalizers == {"example.com/hold": 1}
    assert report.discovery_failures == {"x.io/v1": "down"}
    assert not report.empty
