"""The namespace controller's decisions, and its deletion pass against a fake client."""

from __future__ import annotations

from typing import Any

from kybernetes.client import ApiError, Resource
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


class FakeClient:
    """Objects per resource plural; pods linger one pass after deletion (graceful deletion)."""

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.objects = objects
        self.calls: list[tuple[str, str]] = []

    async def delete_collection(self, res: Resource, namespace: str | None, label_selector: str = "",
                                propagation_policy: str | None = None) -> dict[str, Any]:
        self.calls.append(("deletecollection", res.plural))
        self._delete_all(res.plural)
        return {}

    async def delete(self, res: Resource, namespace: str | None, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        self.calls.append(("delete", f"{res.plural}/{name}"))
        items = self.objects.get(res.plural, [])
        keep = [o for o in items if o["metadata"]["name"] != name or o["metadata"].get("finalizers")]
        if len(keep) == len(items) and not any(o["metadata"]["name"] == name for o in items):
            raise ApiError.not_found(res.group, res.plural, name)
        self.objects[res.plural] = keep
        return {}

    async def list(self, res: Resource, namespace: str | None = None, **_: Any) -> dict[str, Any]:
        self.calls.append(("list", res.plural))
        return {"items": list(self.objects.get(res.plural, []))}

    def _delete_all(self, plural: str) -> None:
        items = self.objects.get(plural, [])
        if plural == "pods":
            for o in items:
                o["metadata"].setdefault("deletionTimestamp", "now")
            return
        self.objects[plural] = [o for o in items if o["metadata"].get("finalizers")]


class FakeFactory:
    class _Inf:
        def add_handler(self, **_: Any) -> None:
            pass

        def get(self, _ns: str | None, _name: str) -> None:
            return None

    def informer(self, _res: Resource, **_: Any) -> FakeFactory._Inf:
        return FakeFactory._Inf()


def _item(name: str, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "uid": "uid-" + name}
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


async def test_pass_deletes_pods_before_anything_else() -> None:
    client = FakeClient({"pods": [_item("p1")], "configmaps": [_item("c1")], "widgets": [_item("w1")]})
    ctrl = NamespaceController(client, FakeFactory())  # type: ignore[arg-type]
    found = Discovery([PODS, CONFIGMAPS, WIDGETS], {})
    report = await ctrl.delete_content("team", found)
    assert report.remaining == {"pods.": 1}
    assert client.objects["configmaps"]  # untouched while pods remain
    assert not any(p in ("configmaps", "widgets") for _, p in client.calls)
    # A second pass while the pod terminates does not delete it again (that could restart its grace).
    await ctrl.delete_content("team", found)
    assert client.calls.count(("deletecollection", "pods")) == 1
    client.objects["pods"] = []  # the node agent finished the pod
    report = await ctrl.delete_content("team", found)
    assert report.empty
    assert client.objects["configmaps"] == [] and client.objects["widgets"] == []
    # widgets have no deletecollection: deleted one by one.
    assert ("delete", "widgets/w1") in client.calls


async def test_pass_reports_objects_held_by_finalizers() -> None:
    client = FakeClient({"configmaps": [_item("c1", ["example.com/hold"]), _item("c2")]})
    ctrl = NamespaceController(client, FakeFactory())  # type: ignore[arg-type]
    report = await ctrl.delete_content("team", Discovery([PODS, CONFIGMAPS], {"x.io/v1": "down"}))
    assert report.remaining == {"configmaps.": 1}
    assert report.finalizers == {"example.com/hold": 1}
    assert report.discovery_failures == {"x.io/v1": "down"}
    assert not report.empty
