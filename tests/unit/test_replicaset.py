"""The ReplicaSet controller's decisions (plan, ranking, status, expectations, slow start)
and its shell against an in-memory fake of the client and informers."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.patch import json_patch
from kybernetes.api.pods import pod_is_active, pod_is_ready
from kybernetes.client.resources import PODS, REPLICASETS
from kybernetes.controllers import podutil
from kybernetes.controllers.replicaset import (
    Expectations,
    ReplicaSetController,
    adopt_patch,
    new_pod,
    plan_replicaset,
    rank_pods_for_deletion,
    release_patch,
    replicaset_status,
    slow_start_batch,
    slow_start_batches,
    status_changed,
)
from kybernetes.testing import fakes
from kybernetes.testing.fakes import Call, FakeClient, FakeInformers, settle

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
RS_UID = "rs-uid-1"


def ts(seconds_ago: float) -> str:
    return podutil.format_time(NOW - dt.timedelta(seconds=seconds_ago))


def make_rs(replicas: int = 3, min_ready: int = 0, uid: str = RS_UID, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-7d4b9c", "namespace": "default", "uid": uid, "generation": 4,
                     "resourceVersion": "10", **meta},
        "spec": {
            "replicas": replicas, "minReadySeconds": min_ready,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web", "tier": "front"},
                                      "annotations": {"note": "x"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    }


def make_pod(name: str, *, owner: str | None = RS_UID, labels: dict[str, str] | None = None,
             node: str = "n1", phase: str = "Running", ready_for: float | None = 3600.0,
             created_ago: float = 7200.0, restarts: int = 0, deleting: bool = False,
             namespace: str = "default") -> dict[str, Any]:
    """A pod of the ReplicaSet (unless `owner` is None), ready for `ready_for` seconds
    before NOW (not ready since 10 s if None)."""
    p = fakes.pod(name, namespace, labels={"app": "web", "tier": "front"} if labels is None else labels,
                  node=node, phase=phase, created=ts(created_ago), ready=ready_for is not None,
                  ready_since=ts(ready_for if ready_for is not None else 10),
                  owner={"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": owner}
                  if owner is not None else None,
                  status={"containerStatuses": [{"name": "c", "restartCount": restarts}]})
    if deleting:
        p["metadata"]["deletionTimestamp"] = ts(1)
    return p


def names(pods: list[dict[str, Any]]) -> list[str]:
    return [p["metadata"]["name"] for p in pods]


# -- podutil ---------------------------------------------------------------------------------


def test_readiness_and_availability_follow_the_ready_condition_and_min_ready_seconds():
    ready_10s = make_pod("a", ready_for=10)
    assert pod_is_ready(ready_10s)
    assert not pod_is_ready(make_pod("b", ready_for=None))
    assert podutil.pod_is_available(ready_10s, 0, NOW)
    assert podutil.pod_is_available(ready_10s, 9, NOW)
    # Kubernetes wants strictly more than minReadySeconds.
    assert not podutil.pod_is_available(ready_10s, 10, NOW)
    assert not podutil.pod_is_available(make_pod("b", ready_for=None), 0, NOW)
    no_time = make_pod("c")
    del no_time["status"]["conditions"][0]["lastTransitionTime"]
    assert podutil.pod_is_available(no_time, 0, NOW)
    assert not podutil.pod_is_available(no_time, 5, NOW)


def test_selector_matching_never_selects_everything_from_an_empty_selector():
    assert podutil.selector_matches({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"})
    assert not podutil.selector_matches({"matchLabels": {"app": "web"}}, {"app": "db"})
    assert podutil.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, {"tier": "b"})
    assert not podutil.selector_matches(
        {"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["b"]}]}, {"tier": "b"})
    assert not podutil.selector_matches({}, {"app": "web"})
    assert not podutil.selector_matches(None, {"app": "web"})


def test_controller_ref_is_the_owner_reference_marked_controller():
    pod = make_pod("a")
    pod["metadata"]["ownerReferences"].insert(0, {"kind": "Other", "uid": "u0", "name": "o"})
    assert podutil.controller_ref(pod)["uid"] == RS_UID
    assert podutil.controller_ref(make_pod("b", owner=None)) is None


def test_activity_excludes_finished_and_terminating_pods():
    assert pod_is_active(make_pod("a"))
    assert not pod_is_active(make_pod("a", phase="Succeeded"))
    assert not pod_is_active(make_pod("a", phase="Failed"))
    assert not pod_is_active(make_pod("a", deleting=True))


# -- scaling ---------------------------------------------------------------------------------


def test_scale_up_from_nothing_creates_the_missing_pods():
    plan = plan_replicaset(make_rs(3), [], NOW)
    assert plan.create == 3
    assert plan.delete == [] and plan.adopt == [] and plan.release == []
    assert plan.status == {"replicas": 0, "observedGeneration": 4}


def test_scale_up_counts_existing_pods_and_is_capped_by_the_burst():
    plan = plan_replicaset(make_rs(5), [make_pod("a"), make_pod("b")], NOW)
    assert plan.create == 3
    assert plan_replicaset(make_rs(2000), [], NOW).create == 500
    assert plan_replicaset(make_rs(10), [], NOW, burst=4).create == 4


def test_missing_replicas_defaults_to_one():
    rs = make_rs()
    del rs["spec"]["replicas"]
    assert plan_replicaset(rs, [], NOW).create == 1


def test_at_desired_count_nothing_happens():
    plan = plan_replicaset(make_rs(2), [make_pod("a"), make_pod("b")], NOW)
    assert plan.create == 0 and plan.delete == []


def test_scale_down_deletes_the_surplus_cheapest_first():
    pods = [make_pod("old", created_ago=9000), make_pod("unscheduled", node="", phase="Pending", ready_for=None),
            make_pod("new", created_ago=60)]
    plan = plan_replicaset(make_rs(1), pods, NOW)
    assert plan.create == 0
    assert names(plan.delete) == ["unscheduled", "new"]


def test_finished_and_terminating_pods_do_not_count_and_are_replaced():
    pods = [make_pod("a"), make_pod("done", phase="Succeeded"), make_pod("failed", phase="Failed"),
            make_pod("going", deleting=True)]
    plan = plan_replicaset(make_rs(3), pods, NOW)
    assert plan.create == 2
    assert plan.status["replicas"] == 1
    assert plan.status["terminatingReplicas"] == 1
    assert names(plan.claimed) == ["a"]


def test_pods_of_other_controllers_or_namespaces_are_ignored():
    pods = [make_pod("mine"), make_pod("theirs", owner="other-uid"), make_pod("elsewhere", namespace="prod")]
    plan = plan_replicaset(make_rs(1), pods, NOW)
    assert names(plan.claimed) == ["mine"]
    assert plan.adopt == [] and plan.release == [] and plan.create == 0 and plan.delete == []


# -- deletion ranking ------------------------------------------------------------------------


@pytest.mark.parametrize("first,second", [
    (make_pod("x", node=""), make_pod("y", node="n1")),
    (make_pod("x", phase="Pending", ready_for=None), make_pod("y", phase="Unknown", ready_for=None)),
    (make_pod("x", phase="Unknown", ready_for=None), make_pod("y", phase="Running", ready_for=None)),
    (make_pod("x", ready_for=None), make_pod("y", ready_for=100)),
    (make_pod("x", ready_for=100), make_pod("y", ready_for=1000)),
    (make_pod("x", restarts=5), make_pod("y", restarts=1)),
    (make_pod("x", created_ago=10), make_pod("y", created_ago=1000)),
], ids=["unscheduled", "pending<unknown", "unknown<running", "not-ready", "ready-less-time", "restarts",
        "newer"])
def test_ranking_prefers_deleting_the_cheaper_pod(first, second):
    assert names(rank_pods_for_deletion([second, first])) == ["x", "y"]
    assert names(rank_pods_for_deletion([first, second])) == ["x", "y"]


def test_ranking_criteria_apply_in_order():
    # Unscheduled beats a newer, restarting, not-ready scheduled pod: the earlier criterion wins.
    unscheduled_old = make_pod("a", node="", created_ago=99999)
    scheduled_bad = make_pod("b", ready_for=None, restarts=9, created_ago=1)
    assert names(rank_pods_for_deletion([scheduled_bad, unscheduled_old])) == ["a", "b"]
    # Among ready pods, readiness age beats restarts.
    assert names(rank_pods_for_deletion([make_pod("c", ready_for=10, restarts=0),
                                         make_pod("d", ready_for=5000, restarts=7)])) == ["c", "d"]


def test_ranking_deletes_doubled_up_pods_first():
    pods = [make_pod("alone", node="n1", created_ago=10), make_pod("crowded", node="n2", created_ago=9000)]
    sibling = make_pod("sibling", node="n2", owner="sibling-rs")
    assert names(rank_pods_for_deletion(pods, pods + [sibling])) == ["crowded", "alone"]
    # Without siblings each pod is alone on its node and age decides.
    assert names(rank_pods_for_deletion(pods)) == ["alone", "crowded"]


# -- adoption and release ----------------------------------------------------------------


def test_matching_orphans_are_adopted_and_count_toward_replicas():
    orphan = make_pod("orphan", owner=None)
    stranger = make_pod("stranger", owner=None, labels={"app": "db"})
    plan = plan_replicaset(make_rs(2), [make_pod("a"), orphan, stranger], NOW)
    assert names(plan.adopt) == ["orphan"]
    assert plan.create == 0
    assert plan.status["replicas"] == 2


def test_terminating_or_finished_orphans_are_not_adopted():
    pods = [make_pod("going", owner=None, deleting=True), make_pod("done", owner=None, phase="Succeeded")]
    plan = plan_replicaset(make_rs(1), pods, NOW)
    assert plan.adopt == []
    assert plan.create == 1


def test_owned_pods_that_stop_matching_are_released_and_replaced():
    relabeled = make_pod("relabeled", labels={"app": "debug"})
    plan = plan_replicaset(make_rs(2), [make_pod("a"), relabeled], NOW)
    assert names(plan.release) == ["relabeled"]
    assert plan.create == 1
    assert plan.status["replicas"] == 1


def test_a_replicaset_being_deleted_neither_adopts_releases_nor_scales():
    rs = make_rs(5, deletionTimestamp=ts(1))
    pods = [make_pod("a"), make_pod("orphan", owner=None), make_pod("relabeled", labels={"app": "x"})]
    plan = plan_replicaset(rs, pods, NOW)
    assert plan.adopt == [] and plan.release == [] and plan.create == 0 and plan.delete == []
    assert plan.status["replicas"] == 1


def test_adopt_patch_sets_the_controller_reference_guarded_by_uid_and_resource_version():
    rs = make_rs()
    orphan = make_pod("orphan", owner=None)
    orphan["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "t1"}]
    patched = json_patch(orphan, adopt_patch(rs, orphan))
    refs = patched["metadata"]["ownerReferences"]
    assert refs[0]["uid"] == "t1"
    assert refs[1] == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c", "uid": RS_UID,
                       "controller": True, "blockOwnerDeletion": True}
    changed = {**orphan, "metadata": {**orphan["metadata"], "resourceVersion": "6"}}
    with pytest.raises(ApiError):
        json_patch(changed, adopt_patch(rs, orphan))
    replaced = {**orphan, "metadata": {**orphan["metadata"], "uid": "another"}}
    with pytest.raises(ApiError):
        json_patch(replaced, adopt_patch(rs, orphan))


def test_release_patch_removes_only_this_replicasets_reference():
    rs = make_rs()
    pod = make_pod("p")
    assert "ownerReferences" not in json_patch(pod, release_patch(rs, pod))["metadata"]
    pod["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "t1"})
    assert json_patch(pod, release_patch(rs, pod))["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Thing", "name": "t", "uid": "t1"}]


# -- new pods ----------------------------------------------------------------------------


def test_new_pod_comes_from_the_template_with_a_controller_reference():
    rs = make_rs()
    pod = new_pod(rs)
    assert pod["metadata"]["generateName"] == "web-7d4b9c-"
    assert pod["metadata"]["namespace"] == "default"
    assert pod["metadata"]["labels"] == {"app": "web", "tier": "front"}
    assert pod["metadata"]["annotations"] == {"note": "x"}
    assert pod["metadata"]["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                                   "name": "web-7d4b9c", "uid": RS_UID, "controller": True,
                                                   "blockOwnerDeletion": True}]
    assert pod["spec"] == rs["spec"]["template"]["spec"]
    pod["spec"]["containers"][0]["image"] = "changed"
    pod["metadata"]["labels"]["app"] = "changed"
    assert rs["spec"]["template"]["spec"]["containers"][0]["image"] == "busybox"
    assert rs["spec"]["template"]["metadata"]["labels"]["app"] == "web"


# -- status ------------------------------------------------------------------------------


def test_status_counts_labels_readiness_and_availability():
    pods = [make_pod("ready-long", ready_for=100), make_pod("ready-short", ready_for=5),
            make_pod("not-ready", ready_for=None),
            make_pod("partial-labels", labels={"app": "web"}, ready_for=None)]
    plan = plan_replicaset(make_rs(4, min_ready=30), pods, NOW)
    assert plan.status == {"replicas": 4, "fullyLabeledReplicas": 3, "readyReplicas": 2,
                           "availableReplicas": 1, "observedGeneration": 4}
    # The short-ready pod becomes available 25 s from now: look again just after.
    assert plan.requeue_after == pytest.approx(25.05)


def test_no_requeue_without_min_ready_seconds_or_pending_availability():
    assert plan_replicaset(make_rs(1), [make_pod("a", ready_for=1)], NOW).requeue_after is None
    assert plan_replicaset(make_rs(1, min_ready=30), [make_pod("a", ready_for=100)], NOW).requeue_after is None


def test_replica_failure_condition_is_added_kept_and_cleared():
    rs = make_rs(3)
    failed = replicaset_status(rs, [], [], NOW, ("FailedCreate", 'pods "web-x" is forbidden: exceeded quota'))
    assert failed["conditions"] == [{"type": "ReplicaFailure", "status": "True",
                                     "lastTransitionTime": podutil.format_time(NOW), "reason": "FailedCreate",
                                     "message": 'pods "web-x" is forbidden: exceeded quota'}]
    rs["status"] = failed
    later = NOW + dt.timedelta(minutes=5)
    again = replicaset_status(rs, [], [], later, ("FailedCreate", "other words"))
    assert again["conditions"] == failed["conditions"]
    cleared = replicaset_status(rs, [], [], later)
    assert "conditions" not in cleared


def test_status_changed_treats_missing_counters_as_zero():
    assert not status_changed({"replicas": 0, "readyReplicas": 0}, {"replicas": 0})
    assert not status_changed(None, {"replicas": 0})
    assert status_changed({"replicas": 2}, {"replicas": 3})
    assert status_changed({"replicas": 2, "observedGeneration": 1}, {"replicas": 2, "observedGeneration": 2})
    assert status_changed({"replicas": 0}, {"replicas": 0, "conditions": [{"type": "ReplicaFailure"}]})


# -- expectations ------------------------------------------------------------------------


def test_unsatisfied_expectations_hold_back_creates_and_deletes_but_not_status():
    plan = plan_replicaset(make_rs(3), [make_pod("a")], NOW, expectations_satisfied=False)
    assert plan.create == 0
    assert plan.status["replicas"] == 1
    plan = plan_replicaset(make_rs(0), [make_pod("a")], NOW, expectations_satisfied=False)
    assert plan.delete == []


def test_expectations_are_satisfied_once_every_create_is_observed():
    exp = Expectations()
    assert exp.satisfied("default/rs")
    exp.expect("default/rs", creates=2)
    assert not exp.satisfied("default/rs")
    exp.creation_observed("default/rs")
    assert not exp.satisfied("default/rs")
    exp.creation_observed("default/rs")
    assert exp.satisfied("default/rs")
    exp.creation_observed("default/rs")
    assert exp.pending("default/rs") == (0, 0)


def test_expected_deletions_count_each_pod_once():
    exp = Expectations()
    exp.expect("k", deletes=["default/a", "default/b"])
    exp.deletion_observed("k", "default/a")
    exp.deletion_observed("k", "default/a")
    assert not exp.satisfied("k")
    exp.deletion_observed("k", "default/other")
    assert not exp.satisfied("k")
    exp.deletion_observed("k", "default/b")
    assert exp.satisfied("k")


def test_expectations_expire_so_a_lost_event_cannot_block_forever():
    clock = [100.0]
    exp = Expectations(ttl=300, clock=lambda: clock[0])
    exp.expect("k", creates=1)
    clock[0] += 299
    assert not exp.satisfied("k")
    clock[0] += 2
    assert exp.satisfied("k")
    exp.expect("k", creates=1)
    exp.forget("k")
    assert exp.satisfied("k")


# -- slow start --------------------------------------------------------------------------


def test_slow_start_batches_double():
    assert slow_start_batches(0) == []
    assert slow_start_batches(1) == [1]
    assert slow_start_batches(10) == [1, 2, 4, 3]
    assert slow_start_batches(500) == [1, 2, 4, 8, 16, 32, 64, 128, 245]


async def test_slow_start_stops_after_the_first_failing_batch():
    calls: list[int] = []

    async def fn(i: int) -> None:
        calls.append(i)
        if i == 4:
            raise ApiError(403, "Forbidden", "exceeded quota")

    successes, err = await slow_start_batch(20, fn)
    assert sorted(calls) == list(range(7))
    assert successes == 6
    assert isinstance(err, ApiError) and err.message == "exceeded quota"

    async def ok(i: int) -> None:
        await asyncio.sleep(0)

    assert await slow_start_batch(5, ok) == (5, None)


# -- the shell against fakes -------------------------------------------------------------


def shell(*replicasets: dict[str, Any], pods: tuple[dict[str, Any], ...] = ()) -> tuple[
        FakeClient, FakeInformers, ReplicaSetController]:
    """A controller over fakes. Its ReplicaSets' changes reach the informer at once; pod
    changes only when the test calls `client.deliver(PODS)`, as a watch that lags."""
    informers = FakeInformers()
    client = FakeClient(informers, lag=["pods"])
    ctrl = ReplicaSetController(client, informers)
    client.add(REPLICASETS, *replicasets)
    client.add(PODS, *pods)
    client.deliver(PODS)
    return client, informers, ctrl


def events(client: FakeClient) -> list[tuple[str, str, str]]:
    assert all(e.kind == "ReplicaSet" and e.component == "replicaset-controller" for e in client.events)
    return [(e.type, e.reason, e.message) for e in client.events]


def status_writes(client: FakeClient) -> list[dict[str, Any]]:
    return [c.body["status"] for c in client.calls_of("update", "replicasets")]


async def test_controller_creates_once_until_its_pods_are_observed_and_writes_status():
    rs = make_rs(3)
    rs["status"] = {"replicas": 0}
    client, informers, ctrl = shell(rs)
    await ctrl.sync("default/web-7d4b9c")
    await settle()
    created = [c.body for c in client.calls_of("create", "pods")]
    assert [p["metadata"]["name"] for p in client.all(PODS)] == ["web-7d4b9c-0", "web-7d4b9c-1", "web-7d4b9c-2"]
    assert all(p["metadata"]["generateName"] == "web-7d4b9c-" for p in created)
    assert ("Normal", "SuccessfulCreate", "Created pod: web-7d4b9c-1") in events(client)
    assert status_writes(client) == [{"replicas": 0, "observedGeneration": 4}]

    # The informer has not shown the new pods yet: a second sync must not create again.
    await ctrl.sync("default/web-7d4b9c")
    assert len(client.calls_of("create", "pods")) == 3
    client.deliver(PODS)
    assert ctrl.expectations.satisfied("default/web-7d4b9c")
    await ctrl.sync("default/web-7d4b9c")
    assert len(client.calls_of("create", "pods")) == 3
    assert status_writes(client)[-1]["replicas"] == 3

    # Scale down deletes one pod and waits for its deletion to be observed.
    await client.patch(REPLICASETS, "default", "web-7d4b9c", {"spec": {"replicas": 2}})
    await ctrl.sync("default/web-7d4b9c")
    await settle()
    deleted = [c.name for c in client.calls_of("delete", "pods")]
    assert len(deleted) == 1 and len(client.all(PODS)) == 2
    assert ("Normal", "SuccessfulDelete", f"Deleted pod: {deleted[0]}") in events(client)
    assert not ctrl.expectations.satisfied("default/web-7d4b9c")
    client.deliver(PODS)
    assert ctrl.expectations.satisfied("default/web-7d4b9c")


async def test_controller_reports_failed_creates_as_events_and_a_condition():
    client, informers, ctrl = shell(make_rs(5))

    def quota(call: Call) -> None:
        if client.all(PODS):
            raise ApiError(403, "Forbidden", f'pods "{call.body["metadata"]["generateName"]}abcde" is forbidden: '
                                             "exceeded quota: q")

    client.react("create", "pods", quota)
    with pytest.raises(ApiError):
        await ctrl.sync("default/web-7d4b9c")
    await settle()
    # Slow start: 1 succeeds, the batch of 2 fails, the remaining 2 are never tried.
    assert len(client.all(PODS)) == 1
    assert len(client.calls_of("create", "pods")) == 3
    assert sum(1 for e in events(client) if e[1] == "FailedCreate") == 2
    assert events(client)[-1][2].startswith("Error creating: pods")
    cond = status_writes(client)[-1]["conditions"][0]
    assert cond["type"] == "ReplicaFailure" and cond["reason"] == "FailedCreate"
    assert "exceeded quota" in cond["message"]
    # Only the one pod that exists is still expected.
    assert ctrl.expectations.pending("default/web-7d4b9c") == (1, 0)


async def test_controller_adopts_orphans_and_releases_strays_with_guarded_patches():
    client, informers, ctrl = shell(make_rs(2), pods=(make_pod("orphan", owner=None),
                                                      make_pod("stray", labels={"app": "other"})))
    await ctrl.sync("default/web-7d4b9c")
    patched = {c.name: c.body for c in client.calls_of("patch", "pods")}
    assert set(patched) == {"orphan", "stray"}
    assert patched["orphan"][0] == {"op": "test", "path": "/metadata/uid", "value": "uid-orphan"}
    assert patched["stray"][-1] == {"op": "remove", "path": "/metadata/ownerReferences"}
    assert podutil.controller_ref(client.stored(PODS, "default", "orphan"))["uid"] == RS_UID
    assert podutil.controller_ref(client.stored(PODS, "default", "stray")) is None
    assert len(client.calls_of("create", "pods")) == 1


# -- the controller manager's view of pods and the orphan index --------------------------------

def test_controller_view_keeps_what_controllers_read():
    full = {"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"},
                         "annotations": {"controller.kubernetes.io/pod-deletion-cost": "5"},
                         "ownerReferences": [{"uid": "rs-1", "controller": True, "kind": "ReplicaSet", "name": "rs"}]},
            "spec": {"nodeName": "n1", "hostname": "h", "tolerations": [{"key": "k", "operator": "Exists"}],
                     "volumes": [{"name": "v", "emptyDir": {}}],
                     "containers": [{"name": "c", "image": "busybox", "command": ["sh"], "env": [{"name": "A"}],
                                     "ports": [{"name": "http", "containerPort": 80}],
                                     "livenessProbe": {"exec": {"command": ["true"]}}}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1",
                       "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t"}],
                       "containerStatuses": [{"name": "c", "ready": True, "restartCount": 3, "started": True,
                                              "state": {"running": {"startedAt": "t"}}, "imageID": "x"}]}}
    view = podutil.controller_view(copy.deepcopy(full))
    assert view["metadata"] == full["metadata"]
    assert view["spec"]["containers"] == [{"name": "c", "image": "busybox",
                                           "ports": [{"name": "http", "containerPort": 80}]}]
    assert "volumes" not in view["spec"] and view["spec"]["tolerations"] == full["spec"]["tolerations"]
    assert view["status"]["containerStatuses"] == [{"name": "c", "ready": True, "started": True, "restartCount": 3}]
    assert {k: v for k, v in view["status"].items() if k != "containerStatuses"} == \
        {k: v for k, v in full["status"].items() if k != "containerStatuses"}
    # what the ReplicaSet controller ranks and counts is unchanged
    assert pod_is_ready(view) and podutil.controller_ref(view) == podutil.controller_ref(full)


def test_orphan_index_lists_only_pods_without_a_controller():
    owned = {"metadata": {"namespace": "ns", "ownerReferences": [{"uid": "u", "controller": True}]}}
    foreign_owner = {"metadata": {"namespace": "ns", "ownerReferences": [{"uid": "u", "controller": False}]}}
    assert podutil.orphan_index(owned) == []
    assert podutil.orphan_index(foreign_owner) == ["ns"]
    assert podutil.orphan_index({"metadata": {"namespace": "other"}}) == ["other"]
