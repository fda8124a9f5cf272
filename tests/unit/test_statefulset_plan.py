"""The StatefulSet controller's decisions (identities, claims, ordered and parallel
management, rolling update with partition and maxUnavailable, OnDelete, the retention
policy's claim owners, revisions, status) and its shell against in-memory fakes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kybernetes.client.resources import CONTROLLERREVISIONS, PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS
from kybernetes.controllers import podutil
from kybernetes.controllers.revisions import HASH_LABEL, new_revision
from kybernetes.controllers.statefulset import StatefulSetController
from kybernetes.controllers.statefulset_plan import (
    POD_INDEX_LABEL,
    POD_NAME_LABEL,
    claim_owner_refs,
    claim_owner_up_to_date,
    claim_pods,
    new_pod,
    parent_and_ordinal,
    plan_statefulset,
    revisions_to_prune,
    update_revision,
    versioned_pod,
)
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, settle

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
UID = "sts-uid"
OWNER = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": UID}


def make_sts(replicas: int = 3, *, image: str = "nginx:1", policy: str = "OrderedReady", partition: int | None = 0,
             strategy: str = "RollingUpdate", max_unavailable: Any = None, claims: bool = True,
             retention: tuple[str, str] = ("Retain", "Retain"), start: int | None = None,
             min_ready: int = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": "web", "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {"metadata": {"labels": {"app": "web"}},
                     "spec": {"containers": [{"name": "c", "image": image,
                                              "volumeMounts": [{"name": "www", "mountPath": "/d"}]}]}},
        "updateStrategy": {"type": strategy},
        "persistentVolumeClaimRetentionPolicy": {"whenDeleted": retention[0], "whenScaled": retention[1]},
        "revisionHistoryLimit": 10,
    }
    if strategy == "RollingUpdate" and partition is not None:
        spec["updateStrategy"]["rollingUpdate"] = {"partition": partition}
        if max_unavailable is not None:
            spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = max_unavailable
    if claims:
        spec["volumeClaimTemplates"] = [{"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                         "metadata": {"name": "www", "labels": {"tier": "data"}},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}},
                                         "status": {"phase": "Pending"}}]
    if start is not None:
        spec["ordinals"] = {"start": start}
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default", "uid": UID, "generation": 1, "resourceVersion": "5"},
            "spec": spec, "status": {}}


def rev(sts: dict[str, Any], number: int = 1) -> dict[str, Any]:
    r = new_revision(sts, number, "StatefulSet")
    r["metadata"]["uid"] = f"rev-{number}"
    return r


def spod(ordinal: int, revision: str, *, ready: bool = True, phase: str = "Running", deleting: bool = False,
         ready_for: float = 60) -> dict[str, Any]:
    name = f"web-{ordinal}"
    return fakes.pod(name, labels={"app": "web", HASH_LABEL: revision, POD_NAME_LABEL: name,
                                   POD_INDEX_LABEL: str(ordinal)},
                     phase=phase, ready=ready, owner=OWNER, deleting=deleting, node="n1",
                     ready_since=podutil.format_time(NOW - dt.timedelta(seconds=ready_for)))


def plan(sts, pods, claims=None, current=None, update=None, **kw):
    update = update or rev(sts)
    current = current or update
    found = {c["metadata"]["name"]: c for c in claims or ()}
    return plan_statefulset(sts, pods, found.get, current, update, NOW, **kw)


def names(objs) -> list[str]:
    return [o["metadata"]["name"] for o in objs]


def created(p) -> list[str]:
    return [c.pod["metadata"]["name"] for c in p.create]


# -- identities -------------------------------------------------------------------------------


def test_pod_names_hostnames_labels_and_claim_volumes_are_stable():
    sts = make_sts(start=5)
    sts["spec"]["template"]["spec"]["volumes"] = [{"name": "www", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
    pod = new_pod(sts, 6, "web-abc")
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "web-6" and meta["generateName"] == "web-"
    assert meta["labels"] == {"app": "web", POD_NAME_LABEL: "web-6", POD_INDEX_LABEL: "6", HASH_LABEL: "web-abc"}
    assert meta["ownerReferences"][0]["uid"] == UID and meta["ownerReferences"][0]["controller"] is True
    assert spec["hostname"] == "web-6" and spec["subdomain"] == "web"
    # The template's own volume of the claim's name is replaced by the claim.
    assert spec["volumes"] == [{"name": "www", "persistentVolumeClaim": {"claimName": "www-web-6"}},
                               {"name": "tmp", "emptyDir": {}}]
    assert parent_and_ordinal("web-12") == ("web", 12)
    assert parent_and_ordinal("my-web-x") == ("", -1)


def test_ordered_ready_creates_one_pod_at_a_time_with_its_claims_first():
    sts = make_sts()
    r = rev(sts)
    p = plan(sts, [], update=r)
    assert created(p) == ["web-0"]
    claim = p.create[0].claims[0]
    assert claim["metadata"]["name"] == "www-web-0"
    assert claim["metadata"]["labels"] == {"tier": "data", "app": "web"}
    assert "status" not in claim and "ownerReferences" not in claim["metadata"]
    # web-0 not yet Running and Ready: nothing more.
    assert created(plan(sts, [spod(0, r["metadata"]["name"], ready=False, phase="Pending")], update=r)) == []
    # Its claim exists already: only the pod is created.
    p = plan(sts, [spod(0, r["metadata"]["name"])], claims=[claim], update=r)
    assert created(p) == ["web-1"] and p.create[0].claims[0]["metadata"]["name"] == "www-web-1"
    ready_claim = {**claim, "metadata": {**claim["metadata"], "name": "www-web-1"}}
    p = plan(sts, [spod(0, r["metadata"]["name"])], claims=[claim, ready_claim], update=r)
    assert created(p) == ["web-1"] and p.create[0].claims == []


def test_ordered_ready_waits_for_min_ready_seconds_before_the_next_pod():
    sts = make_sts(min_ready=30)
    r = rev(sts)
    p = plan(sts, [spod(0, r["metadata"]["name"], ready_for=10)], update=r)
    assert created(p) == [] and p.requeue_after is not None and 19 < p.requeue_after < 21
    assert created(plan(sts, [spod(0, r["metadata"]["name"], ready_for=31)], update=r)) == ["web-1"]


def test_parallel_creates_every_pod_at_once_from_the_start_ordinal():
    p = plan(make_sts(policy="Parallel", start=3), [])
    assert created(p) == ["web-3", "web-4", "web-5"]


def test_scale_down_goes_from_the_highest_ordinal_one_at_a_time():
    sts = make_sts(replicas=1)
    r = rev(sts)
    h = r["metadata"]["name"]
    pods = [spod(0, h), spod(1, h), spod(2, h)]
    assert names(plan(sts, pods, update=r).delete) == ["web-2"]
    # The highest is terminating: wait for it before the next.
    assert names(plan(sts, [spod(0, h), spod(1, h), spod(2, h, deleting=True)], update=r).delete) == []
    # Stop on an unhealthy pod that is not the first unhealthy one.
    assert names(plan(sts, [spod(0, h), spod(1, h, ready=False), spod(2, h, ready=False)], update=r).delete) == []
    # ... but the first unhealthy one may go.
    assert names(plan(sts, [spod(0, h), spod(1, h, ready=False)], update=r).delete) == ["web-1"]
    # Parallel: all at once.
    par = make_sts(replicas=1, policy="Parallel")
    assert sorted(names(plan(par, pods, update=r).delete)) == ["web-1", "web-2"]


def test_failed_pods_are_deleted_to_be_recreated_with_the_same_name():
    sts = make_sts()
    r = rev(sts)
    h = r["metadata"]["name"]
    p = plan(sts, [spod(0, h), spod(1, h, phase="Failed", ready=False)], update=r)
    assert names(p.delete) == ["web-1"] and p.create == []
    # Gone: the next sync creates it again, with its name.
    assert created(plan(sts, [spod(0, h)], update=r)) == ["web-1"]


def test_partitioned_rolling_update_replaces_only_ordinals_at_or_above_the_partition():
    old = make_sts(partition=1)
    r1 = rev(old, 1)
    new = make_sts(image="nginx:2", partition=1)
    r2 = rev(new, 2)
    h1, h2 = r1["metadata"]["name"], r2["metadata"]["name"]
    assert h1 != h2
    p = plan(new, [spod(0, h1), spod(1, h1), spod(2, h1)], current=r1, update=r2)
    assert names(p.delete) == ["web-2"]
    p = plan(new, [spod(0, h1), spod(1, h1), spod(2, h2)], current=r1, update=r2)
    assert names(p.delete) == ["web-1"]
    # An updated pod not yet ready holds the update back.
    assert plan(new, [spod(0, h1), spod(1, h1), spod(2, h2, ready=False)], current=r1, update=r2).delete == []
    p = plan(new, [spod(0, h1), spod(1, h2), spod(2, h2)], current=r1, update=r2)
    assert p.delete == []
    assert p.status["currentRevision"] == h1 and p.status["updateRevision"] == h2
    assert p.status["updatedReplicas"] == 2 and p.status["currentReplicas"] == 1
    # A pod below the partition is recreated at the current revision, above it at the update one.
    below = versioned_pod(old, new, h1, h2, 0)
    above = versioned_pod(old, new, h1, h2, 2)
    assert below["metadata"]["labels"][HASH_LABEL] == h1 and below["spec"]["containers"][0]["image"] == "nginx:1"
    assert above["metadata"]["labels"][HASH_LABEL] == h2 and above["spec"]["containers"][0]["image"] == "nginx:2"
    # From the revisions' templates, not the set's: a missing web-0 comes back as it was.
    p = plan(new, [spod(1, h2), spod(2, h2)], current=r1, update=r2)
    assert created(p) == ["web-0"] and p.create[0].pod["spec"]["containers"][0]["image"] == "nginx:1"


def test_max_unavailable_replaces_several_at_once_and_on_delete_none():
    new = make_sts(image="nginx:2", max_unavailable=2)
    r1, r2 = rev(make_sts(), 1), rev(new, 2)
    h1 = r1["metadata"]["name"]
    pods = [spod(0, h1), spod(1, h1), spod(2, h1)]
    assert names(plan(new, pods, current=r1, update=r2).delete) == ["web-2", "web-1"]
    pct = make_sts(image="nginx:2", max_unavailable="50%")  # of 3, rounded down: 1
    assert names(plan(pct, pods, current=r1, update=rev(pct, 2)).delete) == ["web-2"]
    on_delete = make_sts(image="nginx:2", strategy="OnDelete", partition=None)
    assert plan(on_delete, pods, current=r1, update=rev(on_delete, 2)).delete == []


def test_status_counts_and_a_finished_rolling_update_makes_the_update_revision_current():
    new = make_sts(image="nginx:2")
    r1, r2 = rev(make_sts(), 1), rev(new, 2)
    h1, h2 = r1["metadata"]["name"], r2["metadata"]["name"]
    status = plan(new, [spod(0, h1), spod(1, h2, ready=False), spod(2, h2)], current=r1, update=r2,
                  collision_count=0).status
    assert status == {"observedGeneration": 1, "replicas": 3, "readyReplicas": 2, "currentReplicas": 1,
                      "updatedReplicas": 2, "currentRevision": h1, "updateRevision": h2, "collisionCount": 0,
                      "availableReplicas": 2}
    status = plan(new, [spod(0, h2), spod(1, h2), spod(2, h2)], current=r1, update=r2).status
    assert status["currentRevision"] == h2 and status["currentReplicas"] == 3


# -- claims ---------------------------------------------------------------------------------------


def claim(name: str, refs: list[dict[str, Any]] | None = None, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}"}
    if refs:
        meta["ownerReferences"] = refs
    if deleting:
        meta["deletionTimestamp"] = fakes.DELETION_TIMESTAMP
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": {}}


def test_retention_policy_sets_claim_owners_as_upstream():
    pod_in, pod_out = spod(0, "x"), spod(4, "x")
    set_ref = {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": UID}
    pod_ref = {"apiVersion": "v1", "kind": "Pod", "name": "web-4", "uid": "uid-web-4"}

    def owners(policy, pod):
        return [r["kind"] for r in claim_owner_refs(claim("c"), make_sts(retention=policy), pod)]

    assert owners(("Retain", "Retain"), pod_out) == []
    assert owners(("Delete", "Retain"), pod_in) == ["StatefulSet"]
    assert owners(("Delete", "Retain"), pod_out) == ["StatefulSet"]
    assert owners(("Retain", "Delete"), pod_in) == []
    assert owners(("Retain", "Delete"), pod_out) == ["Pod"]
    assert owners(("Delete", "Delete"), pod_in) == ["StatefulSet"]
    assert owners(("Delete", "Delete"), pod_out) == ["Pod"]
    dd = make_sts(retention=("Delete", "Delete"))
    assert claim_owner_up_to_date(claim("c", [{**pod_ref, "controller": True}]), dd, pod_out)
    assert not claim_owner_up_to_date(claim("c", [{**set_ref, "controller": True}]), dd, pod_out)
    # Someone else controls the claim: it is left alone.
    other = {"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "t", "controller": True}
    assert claim_owner_up_to_date(claim("c", [other]), dd, pod_out)


def test_scale_down_with_when_scaled_delete_hands_the_claim_to_the_pod_before_deleting_it():
    sts = make_sts(replicas=1, retention=("Retain", "Delete"))
    r = rev(sts)
    h = r["metadata"]["name"]
    p = plan(sts, [spod(0, h), spod(1, h)], claims=[claim("www-web-0"), claim("www-web-1")], update=r)
    assert names(p.delete) == ["web-1"]
    assert [(c["metadata"]["name"], [x["kind"] for x in refs]) for c, refs in p.claim_refs] == \
        [("www-web-1", ["Pod"])]
    assert p.claim_refs[0][1][0]["uid"] == "uid-web-1"


def test_a_new_pod_waits_for_a_claim_still_owned_by_its_predecessor_or_being_deleted():
    sts = make_sts(retention=("Retain", "Delete"))
    r = rev(sts)
    h = r["metadata"]["name"]
    stale = claim("www-web-1", [{"apiVersion": "v1", "kind": "Pod", "name": "web-1", "uid": "old", "controller": True}])
    p = plan(sts, [spod(0, h)], claims=[claim("www-web-0"), stale], update=r)
    assert p.create == [] and p.requeue_after == 1.0
    p = plan(sts, [spod(0, h)], claims=[claim("www-web-0"), claim("www-web-1", deleting=True)], update=r)
    assert p.create == []
    # A claim of a pending pod that went missing is made again.
    p = plan(sts, [spod(0, h, phase="Pending", ready=False)], update=r)
    assert names(p.claims) == ["www-web-0"]


def test_pods_are_claimed_by_selector_and_name_membership():
    sts = make_sts()
    orphan = fakes.pod("web-3", labels={"app": "web"})
    stranger = fakes.pod("db-0", labels={"app": "web"})
    other_owner = fakes.pod("web-4", labels={"app": "web"}, owner={**OWNER, "uid": "other"})
    unselected = spod(1, "x")
    unselected["metadata"]["labels"]["app"] = "other"
    c = claim_pods(sts, [spod(0, "x"), orphan, stranger, other_owner, unselected])
    assert names(c.pods) == ["web-0", "web-3"] and names(c.adopt) == ["web-3"] and names(c.release) == ["web-1"]


# -- revisions --------------------------------------------------------------------------------


def test_a_rollback_renumbers_the_equal_revision_and_history_is_pruned_past_the_limit():
    v1, v2 = make_sts(), make_sts(image="nginx:2")
    r1, r2 = rev(v1, 1), rev(v2, 2)
    assert update_revision(v2, [r1, r2]) == (r2, None)
    found, number = update_revision(v1, [r1, r2])
    assert found is r1 and number == 3
    assert update_revision(make_sts(image="nginx:3"), [r1, r2]) == (None, None)
    limited = make_sts()
    limited["spec"]["revisionHistoryLimit"] = 1
    r3 = rev(make_sts(image="nginx:3"), 3)
    assert names(revisions_to_prune(limited, [r3, r2, r1], {r3["metadata"]["name"]})) == [r1["metadata"]["name"]]


# -- the shell against fakes ----------------------------------------------------------------


def shell(sts: dict[str, Any]) -> tuple[FakeClient, StatefulSetController]:
    informers = FakeInformers()
    client = FakeClient(informers)
    ctrl = StatefulSetController(client, informers)
    client.add(STATEFULSETS, sts)
    return client, ctrl


def make_ready(client: FakeClient, name: str) -> None:
    pod = client.stored(PODS, "default", name)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    client.add(PODS, pod)


async def test_controller_creates_revision_claims_and_pods_in_order_and_writes_status():
    client, ctrl = shell(make_sts(replicas=2))
    await ctrl.sync("default/web")
    await settle()
    revs = client.all(CONTROLLERREVISIONS)
    assert len(revs) == 1 and revs[0]["revision"] == 1
    rev_name = revs[0]["metadata"]["name"]
    assert names(client.all(PERSISTENTVOLUMECLAIMS)) == ["www-web-0"]
    assert names(client.all(PODS)) == ["web-0"]
    assert client.stored(PODS, "default", "web-0")["metadata"]["labels"][HASH_LABEL] == rev_name
    creates = [(c.resource, c.name or c.body["metadata"]["name"]) for c in client.calls_of("create")
               if c.resource in ("pods", "persistentvolumeclaims")]
    assert creates == [("persistentvolumeclaims", "www-web-0"), ("pods", "web-0")]
    assert ("Normal", "SuccessfulCreate") in {(e.type, e.reason) for e in client.events}
    status = client.stored(STATEFULSETS, "default", "web")["status"]
    assert status["updateRevision"] == rev_name and status["currentRevision"] == rev_name
    await ctrl.sync("default/web")
    assert names(client.all(PODS)) == ["web-0"]
    make_ready(client, "web-0")
    await ctrl.sync("default/web")
    await settle()
    assert names(client.all(PODS)) == ["web-0", "web-1"]
    make_ready(client, "web-1")
    await ctrl.sync("default/web")
    status = client.stored(STATEFULSETS, "default", "web")["status"]
    assert status["readyReplicas"] == 2 and status["replicas"] == 2 and status["availableReplicas"] == 2

    # A new template: a second revision, and web-1 (the highest) is replaced first.
    await client.patch(STATEFULSETS, "default", "web",
                       {"metadata": {"generation": 2},
                        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}})
    await ctrl.sync("default/web")
    await settle()
    assert sorted(r["revision"] for r in client.all(CONTROLLERREVISIONS)) == [1, 2]
    assert [c.name for c in client.calls_of("delete", "pods")] == ["web-1"]


# -- the kind's rules ------------------------------------------------------------------------


def test_statefulset_validation_refuses_bad_rollout_retention_and_ordinals():
    from kybernetes.api.errors import ApiError
    from kybernetes.api.kinds import DEFAULT
    from kybernetes.api.registry import Registry
    from kybernetes.api.validation import validate_with

    info = Registry().get("apps", "v1", "statefulsets")
    sts = make_sts(max_unavailable="50%", start=2)
    DEFAULT.for_info(info).default(info, sts)
    assert validate_with(DEFAULT.for_info(info), info, sts, None) == []
    sts["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = 0
    sts["spec"]["ordinals"]["start"] = -1
    sts["spec"]["minReadySeconds"] = -1
    sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = "Keep"
    sts["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 5
    message = ApiError.invalid(info.group, info.kind, "web", validate_with(DEFAULT.for_info(info), info, sts, None)
                               ).message
    for part in ("spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: cannot be 0",
                 "spec.ordinals.start: Invalid value: -1: must be greater than or equal to 0",
                 "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0",
                 'spec.persistentVolumeClaimRetentionPolicy.whenScaled: Unsupported value: "Keep"',
                 "spec.template.spec.activeDeadlineSeconds: Forbidden: activeDeadlineSeconds in StatefulSet is "
                 "not Supported"):
        assert part in message, (part, message)


async def test_controller_waits_for_its_own_creates_to_show_and_adopts_orphans():
    informers = FakeInformers()
    client = FakeClient(informers, lag=["pods"])
    ctrl = StatefulSetController(client, informers)
    client.add(STATEFULSETS, make_sts(replicas=3, policy="Parallel", claims=False))
    await ctrl.sync("default/web")
    await settle()
    assert len(client.calls_of("create", "pods")) == 3
    # Not yet seen through the watch: nothing is created twice.
    await ctrl.sync("default/web")
    assert len(client.calls_of("create", "pods")) == 3
    client.deliver(PODS)
    await ctrl.sync("default/web")
    assert len(client.calls_of("create", "pods")) == 3

    # web-2 is orphaned (its owner reference removed): the set adopts it again.
    orphan = client.stored(PODS, "default", "web-2")
    orphan["metadata"].pop("ownerReferences")
    client.add(PODS, orphan)
    client.deliver(PODS)
    await ctrl.sync("default/web")
    refs = client.stored(PODS, "default", "web-2")["metadata"]["ownerReferences"]
    assert [r["uid"] for r in refs] == [UID]
    assert len(client.calls_of("create", "pods")) == 3


async def test_controller_bumps_collision_count_when_a_revision_name_is_taken():
    sts = make_sts(claims=False)
    client, ctrl = shell(sts)
    squatter = rev(sts)
    squatter["data"] = {"spec": {"template": {"metadata": {}, "spec": {}}}}
    squatter["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    client.add(CONTROLLERREVISIONS, squatter)
    try:
        await ctrl.sync("default/web")
    except RuntimeError as e:
        assert "collides" in str(e)
    else:
        raise AssertionError("expected the collision to be reported")
    assert client.stored(STATEFULSETS, "default", "web")["status"]["collisionCount"] == 1
    await ctrl.sync("default/web")
    assert len({r["metadata"]["name"] for r in client.all(CONTROLLERREVISIONS)}) == 2
    assert client.stored(STATEFULSETS, "default", "web")["status"]["collisionCount"] == 1
