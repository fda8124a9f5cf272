"""The EndpointSlice mirroring controller: the planner on its own, then the shell on fakes."""

from __future__ import annotations

from typing import Any

from kybernetes.api.labels import MANAGED_BY_LABEL, SERVICE_NAME_LABEL, SKIP_MIRROR_LABEL
from kybernetes.client.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from kybernetes.controllers.endpoints import TRIGGER_TIME_ANNOTATION, endpoints_labels
from kybernetes.controllers.endpointslicemirroring import (
    CONTROLLER_NAME,
    EndpointSliceMirroringController,
    desired_groups,
    plan_mirror,
    should_mirror,
)
from kybernetes.testing.fakes import FakeClient, FakeInformers

Obj = dict[str, Any]


def service(name: str = "db", selector: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"ports": [{"port": 5432}]}
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default",
                                                                 "uid": f"uid-svc-{name}"}, "spec": spec}


def endpoints(name: str = "db", subsets: list[Obj] | None = None, labels: dict[str, str] | None = None,
              annotations: dict[str, str] | None = None) -> Obj:
    meta: Obj = {"name": name, "namespace": "default", "uid": f"uid-ep-{name}"}
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
            "subsets": subsets if subsets is not None else [
                {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]}


def ips(slice_: Obj) -> list[tuple[str, bool]]:
    return [(e["addresses"][0], e["conditions"]["ready"]) for e in slice_["endpoints"]]


# -- the planner ------------------------------------------------------------------------

def test_a_user_endpoints_gets_one_slice_with_its_addresses_ports_labels_and_owner() -> None:
    ep = endpoints(subsets=[{"addresses": [{"ip": "10.0.0.2", "nodeName": "n1", "hostname": "h"}],
                             "notReadyAddresses": [{"ip": "10.0.0.3"}],
                             "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}],
                   labels={"team": "a", SKIP_MIRROR_LABEL: "false"},
                   annotations={"note": "x", TRIGGER_TIME_ANNOTATION: "2026-01-01T00:00:00Z"})
    plan = plan_mirror(ep, service(), [])
    assert not plan.update and not plan.delete and len(plan.create) == 1
    sl = plan.create[0]
    assert sl["addressType"] == "IPv4"
    assert sl["metadata"]["generateName"] == "db-"
    assert sl["metadata"]["labels"] == {"team": "a", SERVICE_NAME_LABEL: "db", MANAGED_BY_LABEL: CONTROLLER_NAME}
    assert sl["metadata"]["annotations"] == {"note": "x"}
    owner = sl["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("Endpoints", "db", "uid-ep-db", True)
    assert sl["ports"] == [{"name": "pg", "port": 5432, "protocol": "TCP"}]
    assert ips(sl) == [("10.0.0.2", True), ("10.0.0.3", False)]
    assert sl["endpoints"][0]["nodeName"] == "n1" and sl["endpoints"][0]["hostname"] == "h"


def test_families_and_port_sets_get_separate_slices_and_bad_ips_are_skipped() -> None:
    ep = endpoints(subsets=[
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "fd00::0001"}, {"ip": "not-an-ip"}], "ports": [{"port": 80}]},
        {"addresses": [{"ip": "10.0.0.9"}], "ports": [{"port": 81}]},
        {"addresses": [{"ip": "10.0.0.5"}, {"ip": "10.0.0.1"}], "ports": [{"port": 80}]},
    ])
    plan = plan_mirror(ep, service(), [])
    got = sorted((s["addressType"], s["ports"][0]["port"], [i for i, _ in ips(s)]) for s in plan.create)
    assert got == [("IPv4", 80, ["10.0.0.1", "10.0.0.5"]), ("IPv4", 81, ["10.0.0.9"]), ("IPv6", 80, ["fd00::1"])]


def test_at_most_max_addresses_of_a_subset_are_mirrored_ready_first() -> None:
    ep = endpoints(subsets=[{"addresses": [{"ip": f"10.0.1.{i}"} for i in range(3)],
                             "notReadyAddresses": [{"ip": f"10.0.2.{i}"} for i in range(3)],
                             "ports": [{"port": 80}]}])
    groups = desired_groups(ep, max_per_subset=4)
    (group,) = groups.values()
    assert sorted(group.endpoints) == ["10.0.1.0", "10.0.1.1", "10.0.1.2", "10.0.2.0"]


def test_skip_mirror_selector_services_missing_services_and_leader_records_are_not_mirrored() -> None:
    assert should_mirror(endpoints(), service())
    assert not should_mirror(endpoints(labels={SKIP_MIRROR_LABEL: "true"}), service())
    assert not should_mirror(endpoints(), service(selector={"app": "db"}))
    assert not should_mirror(endpoints(), None)
    assert not should_mirror(None, service())
    assert not should_mirror(endpoints(annotations={"control-plane.alpha.kubernetes.io/leader": "{}"}), service())


def test_the_endpoints_controller_marks_its_endpoints_skip_mirror() -> None:
    assert endpoints_labels(service(selector={"app": "db"}))[SKIP_MIRROR_LABEL] == "true"


def test_unchanged_slices_are_left_alone_changed_ones_updated_in_place_and_extras_deleted() -> None:
    ep = endpoints()
    made = dict(plan_mirror(ep, service(), []).create[0])
    made["metadata"] = {**made["metadata"], "name": "db-abc", "resourceVersion": "5"}
    assert plan_mirror(ep, service(), [made]).empty

    ep2 = endpoints(subsets=[{"addresses": [{"ip": "10.0.0.7"}], "ports": [{"name": "pg", "port": 5432}]}])
    stray = {**made, "metadata": {**made["metadata"], "name": "db-zzz"}}
    plan = plan_mirror(ep2, service(), [made, stray])
    assert [s["metadata"]["name"] for s in plan.update] == ["db-abc"]
    assert ips(plan.update[0]) == [("10.0.0.7", True)]
    assert [s["metadata"]["name"] for s in plan.delete] == ["db-zzz"] and not plan.create


def test_all_slices_go_when_the_service_goes_or_gains_a_selector() -> None:
    made = {**plan_mirror(endpoints(), service(), []).create[0]}
    made["metadata"] = {**made["metadata"], "name": "db-abc"}
    assert plan_mirror(endpoints(), None, [made]).delete == [made]
    assert plan_mirror(endpoints(), service(selector={"a": "b"}), [made]).delete == [made]
    assert plan_mirror(None, service(), [made]).delete == [made]


# -- the shell ----------------------------------------------------------------------------

async def test_the_controller_creates_updates_and_deletes_mirrored_slices() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    ctl = EndpointSliceMirroringController(client, informers)
    client.add(SERVICES, service())
    client.add(ENDPOINTS, endpoints())
    await ctl.sync("default/db")
    (sl,) = client.all(ENDPOINTSLICES, "default")
    assert ips(sl) == [("10.0.0.1", True)]
    assert sl["metadata"]["labels"][MANAGED_BY_LABEL] == CONTROLLER_NAME

    await ctl.sync("default/db")  # nothing changed: no second slice, no write
    assert len(client.all(ENDPOINTSLICES, "default")) == 1
    assert not client.calls_of("update", "endpointslices")

    client.add(ENDPOINTS, endpoints(subsets=[{"addresses": [{"ip": "10.0.0.8"}],
                                              "ports": [{"name": "pg", "port": 5432, "protocol": "TCP"}]}]))
    await ctl.sync("default/db")
    (sl,) = client.all(ENDPOINTSLICES, "default")
    assert ips(sl) == [("10.0.0.8", True)]

    client.remove(SERVICES, "default", "db")
    await ctl.sync("default/db")
    assert client.all(ENDPOINTSLICES, "default") == []


async def test_the_controller_leaves_selector_services_and_other_slices_alone() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    ctl = EndpointSliceMirroringController(client, informers)
    client.add(SERVICES, service("web", selector={"app": "web"}))
    client.add(ENDPOINTS, endpoints("web", labels={SKIP_MIRROR_LABEL: "true"}))
    client.add(ENDPOINTSLICES, {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                                "metadata": {"name": "web-x", "namespace": "default",
                                             "labels": {SERVICE_NAME_LABEL: "web",
                                                        MANAGED_BY_LABEL: "endpointslice-controller.k8s.io"}},
                                "addressType": "IPv4", "endpoints": []})
    await ctl.sync("default/web")
    assert [s["metadata"]["name"] for s in client.all(ENDPOINTSLICES, "default")] == ["web-x"]
    assert not client.calls_of("create") and not client.calls_of("delete")
