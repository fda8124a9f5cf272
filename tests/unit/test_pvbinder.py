"""The PersistentVolume binder and the protection controllers against in-memory fakes:
binding both ways with phases and annotations, the events a waiting claim gets, release
and reclaim, expansion of local-path volumes, and the finalizers held while in use."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from kybernetes.api.storage import (
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    LOCAL_PATH_PROVISIONER,
    PV_PROTECTION,
    PVC_PROTECTION,
    local_path_storage_class,
)
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS
from kybernetes.controllers.pvbinder import STORAGECLASSES, PersistentVolumeBinder
from kybernetes.controllers.pvbinder_plan import plan_claim, plan_volume
from kybernetes.controllers.pvprotection import PVCProtectionController, PVProtectionController
from kybernetes.testing.fakes import FakeClient, FakeInformers, drain, pod

Obj = dict[str, Any]
NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)


def pv(name: str = "pv1", size: str = "1Gi", *, cls: str = "manual", phase: str | None = None,
       claim: Obj | None = None, reclaim: str = "Retain", annotations: dict[str, str] | None = None,
       host_path: str | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                 "persistentVolumeReclaimPolicy": reclaim, "volumeMode": "Filesystem"}
    if host_path:
        spec["hostPath"] = {"path": host_path}
    else:
        spec["local"] = {"path": f"/mnt/{name}"}
    if claim is not None:
        spec["claimRef"] = claim
    obj: Obj = {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "uid": f"uid-{name}", "annotations": dict(annotations or {}),
                             "finalizers": [PV_PROTECTION]},
                "spec": spec, "status": {}}
    if phase:
        obj["status"]["phase"] = phase
    return obj


def pvc(name: str = "c", size: str = "500Mi", *, cls: str | None = "manual", volume: str | None = None,
        annotations: dict[str, str] | None = None, phase: str = "Pending") -> Obj:
    spec: Obj = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                 "volumeMode": "Filesystem"}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "annotations": dict(annotations or {}),
                         "finalizers": [PVC_PROTECTION]},
            "spec": spec, "status": {"phase": phase}}


def sc(name: str = "manual", provisioner: str = "kubernetes.io/no-provisioner", mode: str = "Immediate",
       expand: bool = False) -> Obj:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": name},
            "provisioner": provisioner, "volumeBindingMode": mode, "reclaimPolicy": "Delete",
            "allowVolumeExpansion": expand}


def ref(claim: Obj, uid: bool = True) -> Obj:
    out = {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": claim["metadata"]["name"]}
    if uid:
        out["uid"] = claim["metadata"]["uid"]
    return out


def setup(*objs: tuple[Any, Obj]) -> tuple[FakeClient, PersistentVolumeBinder]:
    informers = FakeInformers()
    client = FakeClient(informers)
    for res, obj in objs:
        client.add(res, obj)
    return client, PersistentVolumeBinder(client, informers, clock=lambda: NOW)


async def settle(client: FakeClient, binder: PersistentVolumeBinder) -> None:
    """Sync every queued key until nothing is left (the fake mirrors writes into the informers)."""
    for _ in range(50):
        keys = [("c", k) for k in await drain(binder.claim_queue)] + [("v", k) for k in await drain(binder.volume_queue)]
        if not keys:
            await asyncio.sleep(0)  # the events are recorded in tasks of their own
            return
        for kind, key in keys:
            await (binder.sync_claim(key) if kind == "c" else binder.sync_volume(key))
    raise AssertionError("the binder never settled")


def stored_claim(client: FakeClient, name: str = "c") -> Obj:
    obj = client.stored(PERSISTENTVOLUMECLAIMS, "ns", name)
    assert obj is not None
    return obj


def stored_volume(client: FakeClient, name: str = "pv1") -> Obj:
    obj = client.stored(PERSISTENTVOLUMES, None, name)
    assert obj is not None
    return obj


def reasons(client: FakeClient) -> list[str]:
    return [e.reason for e in client.events]


# -- binding ---------------------------------------------------------------------------------

async def test_an_immediate_claim_binds_the_smallest_fitting_volume_both_ways():
    client, binder = setup((STORAGECLASSES, sc()), (PERSISTENTVOLUMES, pv("pv1", "1Gi")),
                           (PERSISTENTVOLUMES, pv("pv2", "5Gi")), (PERSISTENTVOLUMECLAIMS, pvc()))
    await settle(client, binder)
    claim, volume = stored_claim(client), stored_volume(client)
    assert claim["spec"]["volumeName"] == "pv1"
    assert claim["status"] == {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    assert claim["metadata"]["annotations"][ANN_BIND_COMPLETED] == "yes"
    assert claim["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert volume["spec"]["claimRef"]["uid"] == "uid-c" and volume["spec"]["claimRef"]["name"] == "c"
    assert volume["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
    assert volume["status"]["phase"] == "Bound"
    assert volume["status"]["lastPhaseTransitionTime"] == "2026-01-01T12:00:00Z"
    assert stored_volume(client, "pv2")["status"]["phase"] == "Available"


async def test_a_claim_naming_its_volume_gets_it_or_is_told_why_not():
    client, binder = setup((STORAGECLASSES, sc()), (PERSISTENTVOLUMES, pv("small", "100Mi")),
                           (PERSISTENTVOLUMECLAIMS, pvc(volume="small")))
    await settle(client, binder)
    assert stored_claim(client)["status"]["phase"] == "Pending"
    [event] = client.events
    assert (event.reason, event.message) == ("VolumeMismatch",
                                            'Cannot bind to requested volume "small": requested PV is too small')
    client, binder = setup((STORAGECLASSES, sc()), (PERSISTENTVOLUMES, pv("big", "5Gi")),
                           (PERSISTENTVOLUMECLAIMS, pvc(volume="big")))
    await settle(client, binder)
    claim = stored_claim(client)
    assert claim["status"]["phase"] == "Bound" and ANN_BOUND_BY_CONTROLLER not in claim["metadata"]["annotations"]


async def test_a_prebound_volume_is_completed_without_the_controller_mark():
    claim = pvc(cls="local-path", annotations={ANN_SELECTED_NODE: "n1"})
    provisioned = pv("pvc-uid-c", cls="local-path", claim=ref(claim), reclaim="Delete",
                     annotations={ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER})
    client, binder = setup((STORAGECLASSES, local_path_storage_class()), (PERSISTENTVOLUMECLAIMS, claim),
                           (PERSISTENTVOLUMES, provisioned))
    await settle(client, binder)
    claim, volume = stored_claim(client), stored_volume(client, "pvc-uid-c")
    assert claim["spec"]["volumeName"] == "pvc-uid-c" and claim["status"]["phase"] == "Bound"
    assert volume["status"]["phase"] == "Bound"
    assert ANN_BOUND_BY_CONTROLLER not in volume["metadata"]["annotations"]
    assert not client.calls_of("update", "persistentvolumes") or all(
        c.subresource == "status" for c in client.calls_of("update", "persistentvolumes"))


async def test_a_waiting_claim_is_told_so_and_annotated_for_its_provisioner():
    client, binder = setup((STORAGECLASSES, local_path_storage_class()),
                           (PERSISTENTVOLUMES, pv("free", cls="local-path")),
                           (PERSISTENTVOLUMECLAIMS, pvc(cls="local-path")))
    await settle(client, binder)
    claim = stored_claim(client)
    assert "volumeName" not in claim["spec"]  # an Available volume waits for the scheduler's choice
    assert claim["metadata"]["annotations"][ANN_STORAGE_PROVISIONER] == LOCAL_PATH_PROVISIONER
    assert claim["metadata"]["annotations"][ANN_BETA_STORAGE_PROVISIONER] == LOCAL_PATH_PROVISIONER
    [event] = client.events
    assert (event.type, event.reason, event.message) == (
        "Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
    # A resync says nothing new.
    binder.claim_queue.add("ns/c")
    await settle(client, binder)
    assert len(client.events) == 1
    # A pod that uses it and waits for the scheduler is named.
    client.add(PODS, pod("user", namespace="ns", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]))
    await settle(client, binder)
    assert (client.events[-1].reason, client.events[-1].message) == ("WaitForPodScheduled",
                                                                     "waiting for pod user to be scheduled")


async def test_once_a_node_is_chosen_the_claim_waits_for_the_provisioner():
    claim = pvc(cls="local-path", annotations={ANN_SELECTED_NODE: "n1"})
    client, binder = setup((STORAGECLASSES, local_path_storage_class()), (PERSISTENTVOLUMECLAIMS, claim))
    await settle(client, binder)
    [event] = client.events
    assert event.reason == "ExternalProvisioning"
    assert event.message == ("Waiting for a volume to be created either by the external provisioner "
                             "'kybernetes.io/local-path' or manually by the system administrator. If volume creation "
                             "is delayed, please verify that the provisioner is running and correctly registered.")


async def test_claims_nothing_can_serve():
    client, binder = setup((PERSISTENTVOLUMECLAIMS, pvc(cls="")), (PERSISTENTVOLUMECLAIMS, pvc("gone-class", cls="nope")),
                           (STORAGECLASSES, sc("static")), (PERSISTENTVOLUMECLAIMS, pvc("static", cls="static")))
    await settle(client, binder)
    said = {(e.name, e.reason, e.message) for e in client.events}
    assert said == {
        ("c", "FailedBinding", "no persistent volumes available for this claim and no storage class is set"),
        ("gone-class", "ProvisioningFailed", 'storageclass.storage.k8s.io "nope" not found'),
        ("static", "ProvisioningFailed", "no volume plugin matched name: kubernetes.io/no-provisioner"),
    }


async def test_a_claim_made_before_any_default_class_gets_it_later():
    client, binder = setup((PERSISTENTVOLUMECLAIMS, pvc(cls=None)))
    await settle(client, binder)
    assert "storageClassName" not in stored_claim(client)["spec"]
    client.add(STORAGECLASSES, local_path_storage_class())
    await settle(client, binder)
    assert stored_claim(client)["spec"]["storageClassName"] == "local-path"


# -- release and reclaim ---------------------------------------------------------------------

def _bound_pair(reclaim: str, **kw: Any) -> tuple[Obj, Obj]:
    claim = pvc(volume="pv1", annotations={ANN_BIND_COMPLETED: "yes"}, phase="Bound")
    return claim, pv(claim=ref(claim), phase="Bound", reclaim=reclaim, **kw)


def test_a_volume_whose_claim_is_gone_is_released_and_retained():
    _, volume = _bound_pair("Retain")
    plan = plan_volume(volume, lambda ns, n: None, "now")
    assert [(w.subresource, w.obj["status"]["phase"]) for w in plan.writes] == [("status", "Released")]
    assert plan.confirm_claim_gone and not plan.events
    # An admin clearing the claimRef makes it Available again.
    released = {**volume, "spec": {k: v for k, v in volume["spec"].items() if k != "claimRef"},
                "status": {"phase": "Released"}}
    assert plan_volume(released, lambda ns, n: None, "now").writes[0].obj["status"]["phase"] == "Available"


def test_a_static_delete_volume_fails_as_upstream_says():
    _, volume = _bound_pair("Delete")
    plan = plan_volume(volume, lambda ns, n: None, "now")
    assert [w.obj["status"]["phase"] for w in plan.writes] == ["Released", "Failed"]
    assert plan.writes[-1].obj["status"]["message"] == (
        'error getting deleter volume plugin for volume "pv1": no deletable volume plugin matched')
    assert [(e.type, e.reason) for e in plan.events] == [("Warning", "VolumeFailedDelete")]
    _, host = _bound_pair("Delete", host_path="/data/x")
    assert plan_volume(host, lambda ns, n: None, "now").writes[-1].obj["status"]["message"] == (
        "host_path deleter only supports /tmp/.+ but received provided /data/x")


def test_a_provisioned_volume_is_left_to_its_provisioner():
    _, volume = _bound_pair("Delete", annotations={ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER})
    plan = plan_volume(volume, lambda ns, n: None, "now")
    assert [w.obj["status"]["phase"] for w in plan.writes] == ["Released"] and not plan.events


def test_a_namesake_claim_does_not_hold_the_volume():
    claim, volume = _bound_pair("Retain")
    namesake = {**claim, "metadata": {**claim["metadata"], "uid": "other"}}
    plan = plan_volume(volume, lambda ns, n: namesake, "now")
    assert plan.writes[0].obj["status"]["phase"] == "Released"


async def test_release_waits_for_the_server_when_the_cache_lacks_the_claim():
    claim, volume = _bound_pair("Retain")
    client, binder = setup((PERSISTENTVOLUMES, volume))
    client.objects[("persistentvolumeclaims", "ns", "c")] = claim  # on the server, not yet in the cache
    result = await binder.sync_volume("pv1")
    assert result.requeue_after > 0 and stored_volume(client)["status"]["phase"] == "Bound"


def test_a_bound_claim_losing_its_volume_is_lost():
    claim, _ = _bound_pair("Retain")
    plan = plan_claim(claim, [], lambda n: None, {}, [], "now")
    assert plan.writes[0].obj["status"]["phase"] == "Lost"
    assert plan.confirm_volume_gone == "pv1"
    assert (plan.events[0].reason, plan.events[0].message) == (
        "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")


# -- expansion -------------------------------------------------------------------------------

async def test_a_local_path_claim_grows_when_its_class_allows():
    claim = pvc(cls="local-path", volume="pvc-uid-c", annotations={ANN_BIND_COMPLETED: "yes"}, phase="Bound",
                size="2Gi")
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    volume = pv("pvc-uid-c", "1Gi", cls="local-path", claim=ref(claim), phase="Bound", reclaim="Delete",
                annotations={ANN_PROVISIONED_BY: LOCAL_PATH_PROVISIONER})
    client, binder = setup((STORAGECLASSES, local_path_storage_class()), (PERSISTENTVOLUMECLAIMS, claim),
                           (PERSISTENTVOLUMES, volume))
    await settle(client, binder)
    assert stored_volume(client, "pvc-uid-c")["spec"]["capacity"]["storage"] == "2Gi"
    assert stored_claim(client)["status"]["capacity"]["storage"] == "2Gi"
    assert reasons(client) == ["Resizing", "VolumeResizeSuccessful"]
    await settle(client, binder)
    assert reasons(client) == ["Resizing", "VolumeResizeSuccessful"]


async def test_a_static_volume_waits_for_an_external_resizer():
    claim = pvc(volume="pv1", annotations={ANN_BIND_COMPLETED: "yes"}, phase="Bound", size="2Gi")
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    client, binder = setup((STORAGECLASSES, sc(expand=True)), (PERSISTENTVOLUMECLAIMS, claim),
                           (PERSISTENTVOLUMES, pv(claim=ref(claim), phase="Bound")))
    await settle(client, binder)
    assert stored_volume(client)["spec"]["capacity"]["storage"] == "1Gi"
    assert reasons(client) == ["ExternalExpanding"]


# -- protection ------------------------------------------------------------------------------

def _deleting(obj: Obj) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "deletionTimestamp": "2026-01-01T00:00:00Z"}}


def _user(name: str, node: str | None = "n1", phase: str = "Running") -> Obj:
    return pod(name, namespace="ns", node=node, phase=phase,
               volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}])


async def test_a_claim_in_use_keeps_its_finalizer_until_its_pods_are_done():
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(PERSISTENTVOLUMECLAIMS, _deleting(pvc()))
    client.add(PODS, _user("running"), _user("unscheduled", node=None), _user("done", phase="Succeeded"))
    ctl = PVCProtectionController(client, informers)
    await ctl.sync("ns/c")
    assert stored_claim(client)["metadata"]["finalizers"] == [PVC_PROTECTION]
    running = client.stored(PODS, "ns", "running")
    assert running is not None
    client.remove(PODS, "ns", "running")
    informers[PODS].delete(running)
    assert "ns/c" in await drain(ctl.queue)
    await ctl.sync("ns/c")
    assert client.stored(PERSISTENTVOLUMECLAIMS, "ns", "c") is None  # the last finalizer gone: deleted


async def test_a_pod_the_cache_has_not_seen_still_holds_the_claim():
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(PERSISTENTVOLUMECLAIMS, _deleting(pvc()))
    ctl = PVCProtectionController(client, informers)
    client.objects[("pods", "ns", "late")] = _user("late")
    result = await ctl.sync("ns/c")
    assert result.requeue_after > 0 and stored_claim(client)["metadata"]["finalizers"] == [PVC_PROTECTION]


async def test_a_volume_keeps_its_finalizer_while_bound():
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(PERSISTENTVOLUMES, _deleting(pv(phase="Bound")))
    ctl = PVProtectionController(client, informers)
    await ctl.sync("pv1")
    assert stored_volume(client)["metadata"]["finalizers"] == [PV_PROTECTION]
    released = stored_volume(client)
    released["status"] = {"phase": "Released"}
    client.objects[("persistentvolumes", None, "pv1")] = released
    informers[PERSISTENTVOLUMES].upsert(released)
    assert await drain(ctl.queue) == ["pv1"]
    await ctl.sync("pv1")
    assert client.stored(PERSISTENTVOLUMES, None, "pv1") is None
