"""Volume binding in the scheduler without a server: the pre-filter's verdicts and messages,
the per-node filter (PV node affinity, static PVs for WaitForFirstConsumer claims,
provisioning classes, zones), the assume cache, preemption ignoring volume failures, and the
shell's PreBind writes and requeueing against a fake client."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import orjson
import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.storage import ANN_BOUND_BY_CONTROLLER, ANN_SELECTED_NODE
from kybernetes.client.resources import NODES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS
from kybernetes.scheduler.cache import ClusterCache, PodInfo, scheduling_view
from kybernetes.scheduler.core import schedule_one
from kybernetes.scheduler.queue import SchedulingQueue
from kybernetes.scheduler.scheduler import STORAGECLASSES, Scheduler
from kybernetes.scheduler.volumebinding import (
    ERR_BIND_CONFLICT,
    ERR_NODE_CONFLICT,
    ERR_PV_NOT_EXIST,
    ERR_ZONE_CONFLICT,
    UNBOUND_IMMEDIATE,
    VolumeBinder,
    prebind_patch,
)
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, until

NOT_HELPFUL = "Preemption is not helpful for scheduling"


def node(name: str, cpu: str = "4", labels: dict | None = None) -> dict:
    return fakes.node(name, labels=labels, allocatable={"cpu": cpu, "memory": "8Gi", "pods": "110"})


def pod(name: str, *claims: str, cpu: str | None = None, ephemeral: tuple[str, ...] = (), **spec: Any) -> dict:
    vols: list[dict] = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    vols += [{"name": e, "ephemeral": {"volumeClaimTemplate": {"spec": {}}}} for e in ephemeral]
    if vols:
        spec["volumes"] = vols
    return fakes.pod(name, phase="Pending", requests={"cpu": cpu} if cpu else None,
                     created="2025-01-01T00:00:00Z", **spec)


def sc(name: str, mode: str = "WaitForFirstConsumer", provisioner: str = "example.com/disk", **extra: Any) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
            "metadata": {"name": name, "resourceVersion": "1"}, "provisioner": provisioner,
            "volumeBindingMode": mode, "reclaimPolicy": "Delete", **extra}


def pvc(name: str, cls: str | None = "wffc", size: str = "1Gi", *, bound_to: str = "", ns: str = "default",
        annotations: dict | None = None, deleting: bool = False, owner_uid: str = "") -> dict:
    meta: dict = {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": "5"}
    if annotations:
        meta["annotations"] = dict(annotations)
    if deleting:
        meta["deletionTimestamp"] = fakes.DELETION_TIMESTAMP
    if owner_uid:
        meta["ownerReferences"] = [{"apiVersion": "v1", "kind": "Pod", "name": "x", "uid": owner_uid,
                                    "controller": True}]
    spec: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
                  "volumeMode": "Filesystem"}
    if cls is not None:
        spec["storageClassName"] = cls
    if bound_to:
        spec["volumeName"] = bound_to
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec,
            "status": {"phase": "Bound" if bound_to else "Pending"}}


def pv(name: str, cls: str = "local", size: str = "1Gi", *, on: tuple[str, ...] = (), claim: str = "",
       labels: dict | None = None, phase: str = "Available") -> dict:
    spec: dict = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
                  "volumeMode": "Filesystem", "persistentVolumeReclaimPolicy": "Retain",
                  "local": {"path": f"/mnt/{name}"}}
    if on:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": list(on)}]}]}}
    if claim:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", "namespace": "default", "name": claim,
                            "uid": f"uid-{claim}"}
        phase = "Bound"
    meta: dict = {"name": name, "resourceVersion": "7"}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": meta, "spec": spec,
            "status": {"phase": phase}}


class World:
    """Claims, volumes and classes in fake informers, a cluster cache, and the binder."""

    def __init__(self, *nodes: dict, claims: tuple = (), volumes: tuple = (), classes: tuple = ()) -> None:
        self.informers = FakeInformers()
        self.binder = VolumeBinder(self.informers[PERSISTENTVOLUMECLAIMS], self.informers[PERSISTENTVOLUMES],
                                   self.informers[STORAGECLASSES])
        self.informers[PERSISTENTVOLUMECLAIMS].upsert(*claims)
        self.informers[PERSISTENTVOLUMES].upsert(*volumes)
        self.informers[STORAGECLASSES].upsert(sc("wffc"), sc("local", provisioner="kubernetes.io/no-provisioner"),
                                              sc("now", mode="Immediate"), *classes)
        self.cache = ClusterCache()
        for n in nodes:
            self.cache.set_node(n)

    def schedule(self, p: dict, assume: bool = False):
        info = PodInfo(p)
        state = self.binder.prefilter(info) if info.claims else None
        result = schedule_one(info, self.cache, random.Random(0), 0, (), state)
        writes = None
        if assume and result.node is not None:
            self.cache.assume(info, result.node)
            writes = self.binder.assume(state, self.cache.nodes[result.node].node)
        return result, writes


# -- the pre-filter -----------------------------------------------------------------------

@pytest.mark.parametrize(("claims", "p", "why"), [
    ((), pod("p", "data"), 'persistentvolumeclaim "data" not found'),
    ((pvc("data", deleting=True),), pod("p", "data"), 'persistentvolumeclaim "data" is being deleted'),
    ((pvc("data", "now"),), pod("p", "data"), UNBOUND_IMMEDIATE),
    ((pvc("data", None),), pod("p", "data"), UNBOUND_IMMEDIATE),  # no class: immediate
    ((pvc("data", "gone"),), pod("p", "data"), UNBOUND_IMMEDIATE),  # unknown class: immediate, as upstream
    ((pvc("ok", bound_to="pv-ok"), pvc("data", "now")), pod("p", "ok", "data"), UNBOUND_IMMEDIATE),
    ((), pod("p", ephemeral=("scratch",)),
     'waiting for ephemeral volume controller to create the persistentvolumeclaim "p-scratch"'),
    ((pvc("p-scratch", owner_uid="someone-else"),), pod("p", ephemeral=("scratch",)),
     "PVC default/p-scratch was not created for pod default/p (pod is not owner)"),
])
def test_prefilter_rejects_the_pod_on_every_node_with_upstreams_words(claims, p, why):
    w = World(node("n1"), node("n2"), claims=claims)
    result, _ = w.schedule(p)
    assert result.node is None
    assert result.message == (f"0/2 nodes are available: {why}. no new claims to deallocate, preemption: "
                              f"0/2 nodes are available: 2 {NOT_HELPFUL}.")


def test_pods_without_claims_skip_volume_binding_and_owned_ephemeral_claims_are_fine():
    w = World(node("n1"), claims=(pvc("p-scratch", owner_uid="uid-p"),))
    assert PodInfo(pod("plain")).claims == ()
    assert w.schedule(pod("plain"))[0].node == "n1"
    assert w.schedule(pod("p", ephemeral=("scratch",)))[0].node == "n1"


# -- the filter ----------------------------------------------------------------------------

def test_a_bound_claims_pv_node_affinity_restricts_placement():
    w = World(node("n1"), node("n2"), node("n3"),
              claims=(pvc("data", bound_to="pv1"),), volumes=(pv("pv1", on=("n2",), claim="data"),))
    for _ in range(5):
        result, writes = w.schedule(pod("p", "data"), assume=True)
        assert result.node == "n2" and writes is None  # nothing to write for a bound claim
        w.cache.forget("default/p")
    w.informers[PERSISTENTVOLUMES].upsert(pv("pv1", on=("elsewhere",), claim="data"))
    result, _ = w.schedule(pod("p", "data"))
    assert result.node is None
    assert result.message.startswith(f"0/3 nodes are available: 3 {ERR_NODE_CONFLICT}. ")
    assert result.message.endswith(f"0/3 nodes are available: 3 {NOT_HELPFUL}.")
    w.informers[PERSISTENTVOLUMES].delete(pv("pv1"))
    assert w.schedule(pod("p", "data"))[0].reasons == {ERR_PV_NOT_EXIST: 3}


def test_volume_zone_labels_must_name_the_nodes_zone():
    zone = "topology.kubernetes.io/zone"
    w = World(node("a", labels={zone: "z1"}), node("b", labels={zone: "z2"}), node("c"),
              claims=(pvc("data", bound_to="pv1"),),
              volumes=(pv("pv1", claim="data", labels={zone: "z2__z3"}),))
    result, _ = w.schedule(pod("p", "data"))
    assert result.node == "b"
    w.cache.remove_node("b")
    assert w.schedule(pod("p", "data"))[0].reasons == {ERR_ZONE_CONFLICT: 2}


def test_wffc_claim_takes_a_static_pv_on_its_node_and_pre_binds_it():
    w = World(node("n1"), node("n2"), node("n3"), claims=(pvc("data", "local", "2Gi"),),
              volumes=(pv("small", size="1Gi", on=("n1",)), pv("pv2", size="5Gi", on=("n2",)),
                       pv("pv3", size="3Gi", on=("n3",)), pv("taken", size="2Gi", on=("n1",), claim="other")))
    result, writes = w.schedule(pod("p", "data"), assume=True)
    assert result.node == "n3"  # the smallest that fits, and its node
    assert [(c["metadata"]["name"], v["metadata"]["name"]) for c, v in writes.static] == [("data", "pv3")]
    assert writes.provision == []
    patch = prebind_patch(writes.static[0][1], writes.static[0][0])
    assert patch == {"metadata": {"resourceVersion": "7", "annotations": {ANN_BOUND_BY_CONTROLLER: "yes"}},
                     "spec": {"claimRef": {"kind": "PersistentVolumeClaim", "namespace": "default", "name": "data",
                                           "uid": "uid-data", "apiVersion": "v1", "resourceVersion": "5"}}}
    # no static PV and no provisioner: nowhere
    w2 = World(node("n1"), node("n2"), claims=(pvc("data", "local", "10Gi"),), volumes=(pv("pv1", on=("n1",)),))
    result, _ = w2.schedule(pod("p", "data"))
    assert result.reasons == {ERR_BIND_CONFLICT: 2}
    assert result.message.startswith(f"0/2 nodes are available: 2 {ERR_BIND_CONFLICT}. ")


def test_a_user_pre_bound_pv_is_taken_even_of_another_class():
    w = World(node("n1"), node("n2"), claims=(pvc("data", "local"),),
              volumes=(pv("mine", "other", on=("n2",), claim="data", phase="Available"), pv("any", on=("n1",))))
    result, writes = w.schedule(pod("p", "data"), assume=True)
    assert result.node == "n2"
    assert writes is None  # it already names the claim, uid and all


def test_wffc_claim_with_a_provisioner_fits_where_the_class_allows_and_gets_the_node():
    key = "topology.kubernetes.io/zone"
    zoned = sc("zoned", allowedTopologies=[{"matchLabelExpressions": [{"key": key, "values": ["z1"]}]}])
    w = World(node("n1", labels={key: "z2"}), node("n2", labels={key: "z1"}), classes=(zoned,),
              claims=(pvc("data", "zoned"),))
    result, writes = w.schedule(pod("p", "data"), assume=True)
    assert result.node == "n2"
    assert [c["metadata"]["name"] for c in writes.provision] == ["data"] and writes.node == "n2"
    # the next pod of the burst sharing the claim sees the node chosen for it
    assert w.binder.claim("default", "data")["metadata"]["annotations"][ANN_SELECTED_NODE] == "n2"
    w.cache.set_node(node("n3", labels={key: "z1"}))
    for _ in range(4):
        assert w.schedule(pod("q", "data"))[0].node == "n2"
    # a newer claim from the informer replaces the assumption
    w.informers[PERSISTENTVOLUMECLAIMS].upsert({**pvc("data", "zoned"), "metadata": {
        **pvc("data")["metadata"], "resourceVersion": "6"}})
    w.binder.claim_changed(w.informers[PERSISTENTVOLUMECLAIMS].get("default", "data"))
    assert ANN_SELECTED_NODE not in (w.binder.claim("default", "data")["metadata"].get("annotations") or {})


def test_two_pods_of_a_burst_do_not_pick_the_same_static_pv():
    w = World(node("n1"), node("n2"), claims=(pvc("a", "local"), pvc("b", "local"), pvc("c", "local")),
              volumes=(pv("pv1", on=("n1",)), pv("pv2", on=("n2",))))
    r1, w1 = w.schedule(pod("p1", "a"), assume=True)
    r2, w2 = w.schedule(pod("p2", "b"), assume=True)
    taken = {w1.static[0][1]["metadata"]["name"], w2.static[0][1]["metadata"]["name"]}
    assert taken == {"pv1", "pv2"} and {r1.node, r2.node} == {"n1", "n2"}
    r3, _ = w.schedule(pod("p3", "c"))
    assert r3.reasons == {ERR_BIND_CONFLICT: 2}
    # a failed pre-bind gives the PV back
    w.binder.revert(w2)
    assert w.schedule(pod("p3", "c"))[0].node == r2.node
    # one pod with two claims gets two different PVs
    w = World(node("n1"), claims=(pvc("a", "local"), pvc("b", "local")),
              volumes=(pv("pv1", on=("n1",)), pv("pv2", on=("n1",))))
    _, writes = w.schedule(pod("p", "a", "b"), assume=True)
    assert sorted(v["metadata"]["name"] for _, v in writes.static) == ["pv1", "pv2"]


def test_preemption_never_evicts_for_volume_failures():
    low = {"priority": 0}
    w = World(node("n1", cpu="1"), node("n2", cpu="1"), claims=(pvc("data", "local"),),
              volumes=(pv("pv1", on=("n2",)),))
    for n in ("n1", "n2"):
        w.cache.add_pod(fakes.pod(f"low-{n}", node=n, phase="Running", requests={"cpu": "800m"}, **low))
    # fits nowhere for cpu; the volume only on n2: victims only there
    result, _ = w.schedule(pod("hi", "data", cpu="500m", priority=100))
    assert result.node is None and result.preemption is not None
    assert result.preemption.node == "n2"
    assert [v.name for v in result.preemption.victims] == ["low-n2"]
    # the volume fits nowhere: evicting cannot help
    w.informers[PERSISTENTVOLUMES].upsert(pv("pv1", on=("n9",)))
    result, _ = w.schedule(pod("hi", "data", cpu="500m", priority=100))
    assert result.preemption is None
    # cpu is the first filter to fail; without the victims, the volume still does not fit
    assert result.message == ("0/2 nodes are available: 2 Insufficient cpu. no new claims to deallocate, "
                              f"preemption: 0/2 nodes are available: 2 {ERR_BIND_CONFLICT}.")


# -- views and the queue ------------------------------------------------------------------

def test_scheduling_view_keeps_only_claim_volumes_by_name():
    full = pod("p", "data", ephemeral=("scratch",))
    full["spec"]["volumes"] += [{"name": "cfg", "configMap": {"name": "c"}}]
    full["spec"]["volumes"][0]["persistentVolumeClaim"]["readOnly"] = True
    view = scheduling_view(orjson.loads(orjson.dumps(full)))
    assert view["spec"]["volumes"] == [{"name": "v0", "persistentVolumeClaim": {"claimName": "data"}},
                                       {"name": "scratch", "ephemeral": {}}]
    assert PodInfo(view).claims == PodInfo(full).claims == (("data", False), ("p-scratch", True))


def test_queue_moves_only_pods_waiting_for_volumes():
    now = [0.0]
    q = SchedulingQueue(lambda: now[0])
    for p, vols in ((pod("a", "data"), True), (pod("b", "other"), True), (pod("c"), False)):
        q.add(p)
        got, _ = q.pop_nowait()
        q.unschedulable(got, None, volumes=vols)
    now[0] = 100.0
    assert q.move_volume_waiting(lambda p: p["metadata"]["name"] == "a") == 1
    assert q.where == {"default/a": "active", "default/b": "unschedulable", "default/c": "unschedulable"}
    assert q.move_volume_waiting() == 1
    assert q.where["default/c"] == "unschedulable"


# -- the shell ------------------------------------------------------------------------------

def _bindings(client: FakeClient) -> dict[str, str]:
    return {p["metadata"]["name"]: p["spec"]["nodeName"] for p in client.all(PODS) if p["spec"].get("nodeName")}


async def _running(sched: Scheduler):
    task = asyncio.create_task(sched.run())
    await asyncio.sleep(0)
    return task


async def _stop(task) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_scheduler_marks_claims_pre_binds_pvs_and_binds_pods():
    informers = FakeInformers()
    client = FakeClient(informers)
    sched = Scheduler(client, informers, rng=random.Random(0))
    client.add(STORAGECLASSES, sc("wffc"), sc("local", provisioner="kubernetes.io/no-provisioner"))
    client.add(NODES, node("n1"), node("n2"))
    client.add(PERSISTENTVOLUMES, pv("pv1", on=("n1",)))
    client.add(PERSISTENTVOLUMECLAIMS, pvc("dyn"), pvc("static", "local"))
    task = await _running(sched)
    try:
        client.add(PODS, pod("a", "dyn"), pod("b", "static"))
        await until(lambda: len(_bindings(client)) == 2)
        claim = client.stored(PERSISTENTVOLUMECLAIMS, "default", "dyn")
        assert claim["metadata"]["annotations"][ANN_SELECTED_NODE] == _bindings(client)["a"]
        assert _bindings(client)["b"] == "n1"
        vol = client.stored(PERSISTENTVOLUMES, None, "pv1")
        ref = vol["spec"]["claimRef"]
        assert (ref["name"], ref["namespace"], ref["uid"], ref["resourceVersion"]) == ("static", "default",
                                                                                       "uid-static", "5")
        assert vol["metadata"]["annotations"][ANN_BOUND_BY_CONTROLLER] == "yes"
        # the writes came before the bindings, and the PV write was pinned to its version
        order = [(c.verb, c.name) for c in client.calls if c.verb in ("patch", "create_subresource")]
        assert order.index(("patch", "pv1")) < order.index(("create_subresource", "b"))
        assert order.index(("patch", "dyn")) < order.index(("create_subresource", "a"))
        pv_patch = next(c for c in client.calls_of("patch", "persistentvolumes"))
        assert pv_patch.body["metadata"]["resourceVersion"]
        assert not sched.volumes.assumed_volumes and not sched.volumes.assumed_claims  # the informer caught up
    finally:
        await _stop(task)


async def test_a_pod_waits_for_its_claim_and_a_taken_pv_sends_it_back():
    informers = FakeInformers()
    client = FakeClient(informers)
    sched = Scheduler(client, informers, rng=random.Random(0))
    sched.queue.initial_backoff = 0.02
    sched.flush_interval = 0.01
    client.add(STORAGECLASSES, sc("wffc"), sc("local", provisioner="kubernetes.io/no-provisioner"))
    client.add(NODES, node("n1"))
    task = await _running(sched)
    try:
        client.add(PODS, pod("a", "data"))
        await until(lambda: client.calls_of("patch", "pods"))
        cond = client.calls_of("patch", "pods")[0].body["status"]["conditions"][0]
        assert cond["message"].startswith('0/1 nodes are available: persistentvolumeclaim "data" not found.')
        await until(lambda: sched.queue.where.get("default/a") == "unschedulable")
        # the claim appears: the pod is retried at once (well before the 60 s resync)
        client.add(PERSISTENTVOLUMES, pv("pv1", on=("n1",)))
        client.fail("patch", "persistentvolumes", ApiError.conflict("", "persistentvolumes", "pv1"))
        client.add(PERSISTENTVOLUMECLAIMS, pvc("data", "local"))
        await until(lambda: _bindings(client).get("a") == "n1")
        assert any(e.reason == "FailedScheduling" and e.message.startswith('running PreBind plugin "VolumeBinding"')
                   for e in client.events)
        assert len(client.calls_of("patch", "persistentvolumes")) == 2
        assert client.stored(PERSISTENTVOLUMES, None, "pv1")["spec"]["claimRef"]["name"] == "data"
    finally:
        await _stop(task)
