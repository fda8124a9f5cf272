"""The DaemonSet controller's decisions (eligibility, daemon pods, manage loop, rolling
update, OnDelete, revisions, status) and its shell against in-memory fakes."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any

from kybernetes.api.pods import pod_spec_fits_node
from kybernetes.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from kybernetes.controllers import podutil
from kybernetes.controllers.daemonset import DaemonSetController
from kybernetes.controllers.daemonset_plan import (
    GENERATION_LABEL,
    HASH_LABEL,
    FailedPodBackoff,
    claim_pods,
    daemonset_status,
    max_surge_unavailable,
    new_daemon_pod,
    node_should_run,
    plan_daemonset,
    plan_history,
    plan_manage,
    plan_rolling_update,
    revisions_to_prune,
    target_node,
)
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, FakeInformers, settle

NOW = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.UTC)
UID = "ds-uid"
OWNER = {"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent", "uid": UID}


def ts(seconds_ago: float) -> str:
    return podutil.format_time(NOW - dt.timedelta(seconds=seconds_ago))


def make_ds(*, image: str = "agent:1", strategy: dict[str, Any] | None = None, generation: int = 1,
            min_ready: int = 0, history_limit: int = 10, **pod_spec: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "selector": {"matchLabels": {"app": "agent"}},
        "template": {"metadata": {"labels": {"app": "agent"}},
                     "spec": {"containers": [{"name": "c", "image": image}], **pod_spec}},
        "updateStrategy": strategy or {"type": "RollingUpdate",
                                       "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
        "revisionHistoryLimit": history_limit,
    }
    if min_ready:
        spec["minReadySeconds"] = min_ready
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default", "uid": UID, "generation": generation,
                         "resourceVersion": "5",
                         "annotations": {"deprecated.daemonset.template.generation": str(generation)}},
            "spec": spec, "status": {}}


def dpod(name: str, node: str, hash_: str = "h1", *, ready: bool = True, phase: str = "Running",
         created: float = 100, deleting: bool = False, bound: bool = True, ready_for: float = 50) -> dict[str, Any]:
    p = fakes.pod(name, labels={"app": "agent", HASH_LABEL: hash_}, node=node if bound else None, phase=phase,
                  ready=ready, ready_since=ts(ready_for), owner=OWNER, created=ts(created), deleting=deleting)
    if not bound:
        p["spec"]["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                    "values": [node]}]}]}}}
    return p


def nodes(n: int, **kw: Any) -> list[dict[str, Any]]:
    return [fakes.node(f"n{i}", **kw) for i in range(n)]


def plan(ds, node_list, pods, hash_="h1", backoff=None, clock=0.0, **kw):
    return plan_daemonset(ds, node_list, pods, hash_, [], NOW, backoff or FailedPodBackoff(), clock, **kw)


# -- eligibility ------------------------------------------------------------------------


def test_node_selector_and_required_affinity_decide_eligibility():
    ssd = fakes.node("a", labels={"disk": "ssd", "zone": "z1"})
    hdd = fakes.node("b", labels={"disk": "hdd", "zone": "z2"})
    ds = make_ds(nodeSelector={"disk": "ssd"})
    assert node_should_run(ds, ssd) == (True, True)
    assert node_should_run(ds, hdd) == (False, False)
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]}]}]}}}
    ds = make_ds(affinity=aff)
    assert node_should_run(ds, ssd) == (False, False)
    assert node_should_run(ds, hdd) == (True, True)
    assert node_should_run(make_ds(nodeName="a"), hdd) == (False, False)


def test_taints_stop_new_daemons_and_noexecute_evicts_unless_tolerated():
    no_schedule = fakes.node("a", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}])
    no_execute = fakes.node("b", taints=[{"key": "dedicated", "value": "db", "effect": "NoExecute"}])
    prefer = fakes.node("c", taints=[{"key": "dedicated", "effect": "PreferNoSchedule"}])
    ds = make_ds()
    assert node_should_run(ds, no_schedule) == (False, True)
    assert node_should_run(ds, no_execute) == (False, False)
    assert node_should_run(ds, prefer) == (True, True)
    tolerant = make_ds(tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db"}])
    assert node_should_run(tolerant, no_schedule) == (True, True)
    assert node_should_run(tolerant, no_execute) == (True, True)


def test_daemons_tolerate_node_trouble_and_cordoning_by_themselves():
    ds = make_ds()
    for key, effect in (("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/unreachable", "NoExecute"),
                        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
                        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
                        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
                        ("node.kubernetes.io/unschedulable", "NoSchedule")):
        n = fakes.node("a", taints=[{"key": key, "effect": effect}])
        assert node_should_run(ds, n) == (True, True), key
    unavailable = fakes.node("a", taints=[{"key": "node.kubernetes.io/network-unavailable", "effect": "NoSchedule"}])
    assert node_should_run(ds, unavailable) == (False, True)
    assert node_should_run(make_ds(hostNetwork=True), unavailable) == (True, True)


def test_the_daemon_pod_is_pinned_by_affinity_and_carries_revision_labels():
    user_tol = {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300}
    ds = make_ds(tolerations=[user_tol, {"key": "gpu", "operator": "Exists"}], hostNetwork=True,
                 affinity={"podAntiAffinity": {"x": 1}})
    ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"] = "3"
    pod = new_daemon_pod(ds, "n7", "abc")
    assert "nodeName" not in pod["spec"]
    assert pod["spec"]["affinity"]["nodeAffinity"] == {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n7"]}]}]}}
    assert pod["spec"]["affinity"]["podAntiAffinity"] == {"x": 1}
    assert target_node(pod) == "n7"
    assert pod["metadata"]["labels"] == {"app": "agent", HASH_LABEL: "abc", GENERATION_LABEL: "3"}
    assert pod["metadata"]["generateName"] == "agent-"
    assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
    tols = pod["spec"]["tolerations"]
    # The user's not-ready toleration loses its seconds: a daemon is never evicted for it.
    assert tols[0] == {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"}
    assert {"key": "gpu", "operator": "Exists"} in tols
    assert {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists", "effect": "NoSchedule"} in tols
    assert len(tols) == 8
    # The template itself is untouched.
    assert "affinity" not in ds["spec"]["template"]["spec"] or \
        "nodeAffinity" not in ds["spec"]["template"]["spec"]["affinity"]
    assert pod_spec_fits_node(pod["spec"], fakes.node("n7")) and not pod_spec_fits_node(pod["spec"], fakes.node("n8"))


# -- manage -----------------------------------------------------------------------------


def test_each_eligible_node_gets_one_pod_and_ineligible_nodes_lose_theirs():
    ds = make_ds(nodeSelector={"role": "edge"})
    node_list = [fakes.node("a", labels={"role": "edge"}), fakes.node("b", labels={"role": "edge"}),
                 fakes.node("c")]
    pods = [dpod("p-a", "a"), dpod("p-c", "c")]
    p = plan(ds, node_list, pods)
    assert p.sync.create_on == ["b"]
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["p-c"]
    assert p.status["desiredNumberScheduled"] == 2
    assert p.status["currentNumberScheduled"] == 1
    assert p.status["numberMisscheduled"] == 1


def test_a_pod_being_deleted_blocks_its_replacement_and_surplus_pods_go_oldest_kept():
    ds = make_ds()
    pods = [dpod("gone", "n0", deleting=True), dpod("old", "n1", created=300), dpod("young", "n1", created=10),
            dpod("pending", "n2", bound=False)]
    p = plan(ds, nodes(3), pods)
    assert p.sync.create_on == []
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["young"]


def test_unbound_pods_for_vanished_nodes_are_deleted():
    p = plan(make_ds(), nodes(1), [dpod("p0", "n0"), dpod("lost", "n9", bound=False)])
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["lost"]


def test_failed_daemon_pods_are_replaced_with_back_off():
    ds = make_ds()
    backoff = FailedPodBackoff(initial=1.0, maximum=60.0)
    failed = dpod("f", "n0", phase="Failed", ready=False)
    p = plan(ds, nodes(1), [failed], backoff=backoff, clock=100.0)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["f"]
    assert p.sync.events[0][1] == "FailedDaemonPod"
    # It failed again within a second: wait out the back-off instead of deleting at once.
    p = plan(ds, nodes(1), [dpod("f2", "n0", phase="Failed", ready=False)], backoff=backoff, clock=100.5)
    assert p.sync.delete == [] and p.sync.create_on == []
    assert p.sync.requeue_after == 1.0
    p = plan(ds, nodes(1), [dpod("f2", "n0", phase="Failed", ready=False)], backoff=backoff, clock=101.5)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["f2"]
    assert backoff.delay("ds-uid/1/n0") == 2.0


def test_orphans_are_adopted_and_strays_released():
    ds = make_ds()
    orphan = fakes.pod("o", labels={"app": "agent"}, node="n0")
    stray = dpod("s", "n1")
    stray["metadata"]["labels"] = {"app": "other"}
    claim = claim_pods(ds, [orphan, stray, fakes.pod("x", labels={"app": "other"}, node="n0")])
    assert [p["metadata"]["name"] for p in claim.adopt] == ["o"]
    assert [p["metadata"]["name"] for p in claim.release] == ["s"]
    assert list(claim.by_node) == ["n0"]


def test_burst_caps_creations_per_sync_and_expectations_hold_them():
    p = plan(make_ds(), nodes(10), [], burst=4)
    assert p.sync.create_on == ["n0", "n1", "n2", "n3"]
    p = plan(make_ds(), nodes(10), [], expectations_satisfied=False)
    assert p.sync.create_on == [] and "observedGeneration" not in p.status


# -- rolling update ---------------------------------------------------------------------


def test_surge_and_unavailable_percentages_round_up():
    ds = make_ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "30%", "maxSurge": 0}})
    assert max_surge_unavailable(ds, 5) == (0, 2)
    ds = make_ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": "10%"}})
    assert max_surge_unavailable(ds, 5) == (1, 0)
    assert max_surge_unavailable(make_ds(strategy={"type": "OnDelete"}), 5) == (0, 0)


def test_rolling_update_deletes_old_pods_up_to_max_unavailable():
    ds = make_ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2, "maxSurge": 0}})
    old = [dpod(f"old{i}", f"n{i}", "h0") for i in range(5)]
    p = plan(ds, nodes(5), old)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["old0", "old1"]
    # One new pod is not yet available: only one more old pod may go.
    pods = [dpod("new0", "n0", ready=False)] + old[1:]
    p = plan(ds, nodes(5), pods)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["old1"]
    # An old pod that is not available anyway is replaced without using the budget.
    pods = [dpod("new0", "n0", ready=False), dpod("new1", "n1", ready=False),
            dpod("old2", "n2", "h0", ready=False)] + old[3:]
    p = plan(ds, nodes(5), pods)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["old2"]
    assert p.status["updatedNumberScheduled"] == 2
    assert p.status["numberUnavailable"] == 3


def test_rolling_update_waits_for_min_ready_seconds():
    ds = make_ds(min_ready=120, strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}})
    pods = [dpod("new0", "n0"), dpod("old1", "n1", "h0", ready_for=600)]  # new0 ready for 50 s only
    p = plan(ds, nodes(2), pods)
    assert p.sync.delete == []
    assert p.sync.requeue_after is not None and 69 < p.sync.requeue_after < 71
    assert p.status["numberReady"] == 2 and p.status["numberAvailable"] == 1


def test_rolling_update_with_surge_starts_new_pods_beside_old_ones():
    ds = make_ds(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 2}})
    old = [dpod(f"old{i}", f"n{i}", "h0") for i in range(4)]
    p = plan(ds, nodes(4), old)
    assert p.sync.create_on == ["n0", "n1"] and p.sync.delete == []
    # new0 is available: old0 goes; new1 is not yet: old1 stays and holds one surge slot.
    pods = [dpod("new0", "n0"), dpod("new1", "n1", ready=False)] + old
    p = plan(ds, nodes(4), pods)
    assert [x["metadata"]["name"] for x in p.sync.delete] == ["old0"]


def test_on_delete_leaves_old_pods_until_someone_deletes_them():
    ds = make_ds(strategy={"type": "OnDelete"})
    old = [dpod(f"old{i}", f"n{i}", "h0") for i in range(3)]
    p = plan(ds, nodes(3), old)
    assert p.sync.delete == [] and p.sync.create_on == []
    p = plan(ds, nodes(3), old[1:])
    assert p.sync.create_on == ["n0"]


# -- history and status -------------------------------------------------------------------


def revision(ds: dict[str, Any], number: int, hash_: str) -> dict[str, Any]:
    from kybernetes.controllers.daemonset_plan import new_revision
    rev = new_revision(ds, number)
    rev["metadata"]["name"] = f"agent-{hash_}"
    rev["metadata"]["labels"][HASH_LABEL] = hash_
    return rev


def test_history_creates_renumbers_and_prunes_revisions():
    v1, v2 = make_ds(image="agent:1"), make_ds(image="agent:2")
    h = plan_history(v1, [])
    assert h.create is not None and h.create["revision"] == 1
    assert h.create["metadata"]["name"].startswith("agent-")
    assert h.create["metadata"]["labels"][HASH_LABEL] == h.create["metadata"]["name"][len("agent-"):]
    assert h.create["data"]["spec"]["template"]["$patch"] == "replace"
    # Keys in Go's map order, so that kubectl's byte comparison recognises the template.
    container = h.create["data"]["spec"]["template"]["spec"]["containers"][0]
    assert list(h.create["data"]["spec"]["template"]) == ["$patch", "metadata", "spec"]
    assert list(container) == ["image", "name"]
    r1 = revision(v1, 1, "h1")
    h = plan_history(v2, [r1])
    assert h.create is not None and h.create["revision"] == 2 and h.old == [r1]
    r2 = revision(v2, 2, "h2")
    # A rollback to v1 makes revision 1 current again, renumbered past the others.
    h = plan_history(v1, [r1, r2])
    assert h.current is r1 and h.renumber_to == 3 and h.old == [r2]
    # Revisions of another owner are not ours.
    other = copy.deepcopy(r2)
    other["metadata"]["ownerReferences"][0]["uid"] = "other"
    assert plan_history(v1, [other]).create is not None

    limited = make_ds(image="agent:9", history_limit=2)
    old = [revision(make_ds(image=f"agent:{i}"), i, f"h{i}") for i in range(1, 5)]
    live = claim_pods(limited, [dpod("p", "n0", "h2")])
    assert [r["revision"] for r in revisions_to_prune(limited, old, live)] == [1, 3]


def test_status_counts_per_node_as_kubernetes_does():
    ds = make_ds(min_ready=10, nodeSelector={"run": "yes"})
    ds["status"] = {"collisionCount": 2}
    node_list = [fakes.node(f"n{i}", labels={"run": "yes"}) for i in range(4)] + [fakes.node("off")]
    pods = [dpod("a", "n0"), dpod("b", "n1", "h0"), dpod("c", "n2", ready=False), dpod("d", "off")]
    status = daemonset_status(ds, node_list, claim_pods(ds, pods), "h1", NOW)
    assert status == {"currentNumberScheduled": 3, "numberMisscheduled": 1, "desiredNumberScheduled": 4,
                      "numberReady": 2, "observedGeneration": 1, "updatedNumberScheduled": 2,
                      "numberAvailable": 2, "numberUnavailable": 2, "collisionCount": 2}


def test_plan_manage_does_nothing_more_once_every_node_has_its_pod():
    sync = plan_manage(make_ds(), nodes(2), claim_pods(make_ds(), [dpod("a", "n0"), dpod("b", "n1")]), "h1", NOW,
                       FailedPodBackoff(), 0.0)
    assert sync.create_on == [] and sync.delete == []
    assert plan_rolling_update(make_ds(), nodes(2), claim_pods(make_ds(), [dpod("a", "n0")]), "h1", NOW).delete == []


# -- the shell against fakes ----------------------------------------------------------------


def shell(ds: dict[str, Any], node_list: list[dict[str, Any]]) -> tuple[FakeClient, DaemonSetController]:
    informers = FakeInformers()
    client = FakeClient(informers, lag=["pods"])
    ctrl = DaemonSetController(client, informers)
    client.add(NODES, *node_list)
    client.add(DAEMONSETS, ds)
    return client, ctrl


async def test_controller_snapshots_a_revision_creates_pods_and_writes_status():
    ds = make_ds()
    client, ctrl = shell(ds, nodes(3) + [fakes.node("tainted", taints=[{"key": "k", "effect": "NoSchedule"}])])
    await ctrl.sync("default/agent")
    await settle()
    revs = client.all(CONTROLLERREVISIONS)
    assert len(revs) == 1 and revs[0]["revision"] == 1
    hash_ = revs[0]["metadata"]["labels"][HASH_LABEL]
    created = client.all(PODS)
    assert sorted(target_node(p) for p in created) == ["n0", "n1", "n2"]
    assert all(p["metadata"]["labels"][HASH_LABEL] == hash_ for p in created)
    assert ("Normal", "SuccessfulCreate") in {(e.type, e.reason) for e in client.events}
    status = client.stored(DAEMONSETS, "default", "agent")["status"]
    assert status["desiredNumberScheduled"] == 3 and status["observedGeneration"] == 1

    # Not yet observed: a second sync creates nothing more.
    await ctrl.sync("default/agent")
    assert len(client.calls_of("create", "pods")) == 3
    client.deliver(PODS)
    await ctrl.sync("default/agent")
    assert len(client.calls_of("create", "pods")) == 3
    assert client.stored(DAEMONSETS, "default", "agent")["status"]["currentNumberScheduled"] == 3

    # A new template: a second revision, then old pods are replaced one node at a time.
    for p in client.all(PODS):
        p["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        p["spec"]["nodeName"] = target_node(p)
        client.add(PODS, p)
    client.deliver(PODS)
    await client.patch(DAEMONSETS, "default", "agent", {
        "metadata": {"generation": 2, "annotations": {"deprecated.daemonset.template.generation": "2"}},
        "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "agent:2"}]}}}})
    await ctrl.sync("default/agent")
    await settle()
    revs = sorted(client.all(CONTROLLERREVISIONS), key=lambda r: r["revision"])
    assert [r["revision"] for r in revs] == [1, 2]
    assert len(client.calls_of("delete", "pods")) == 1


async def test_controller_bumps_collision_count_when_a_revision_name_is_taken():
    ds = make_ds()
    client, ctrl = shell(ds, nodes(1))
    h = plan_history(ds, [])
    squatter = copy.deepcopy(h.create)
    squatter["data"] = {"spec": {"template": {"metadata": {}, "spec": {}}}}
    squatter["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    client.add(CONTROLLERREVISIONS, squatter)
    try:
        await ctrl.sync("default/agent")
    except RuntimeError as e:
        assert "collides" in str(e)
    else:
        raise AssertionError("expected the collision to be reported")
    assert client.stored(DAEMONSETS, "default", "agent")["status"]["collisionCount"] == 1
    await ctrl.sync("default/agent")
    names = {r["metadata"]["name"] for r in client.all(CONTROLLERREVISIONS)}
    assert len(names) == 2


# -- the kind's rules ------------------------------------------------------------------------


def test_daemonset_validation_refuses_deadlines_and_negative_min_ready():
    from kybernetes.api.errors import ApiError
    from kybernetes.api.kinds import DEFAULT
    from kybernetes.api.registry import Registry
    from kybernetes.api.validation import validate_with

    info = Registry().get("apps", "v1", "daemonsets")
    ds = make_ds()
    DEFAULT.for_info(info).default(info, ds)
    assert validate_with(DEFAULT.for_info(info), info, ds, None) == []
    ds["spec"]["minReadySeconds"] = -1
    ds["spec"]["template"]["spec"]["activeDeadlineSeconds"] = 30
    errs = validate_with(DEFAULT.for_info(info), info, ds, None)
    message = ApiError.invalid(info.group, info.kind, "agent", errs).message
    assert "spec.template.spec.activeDeadlineSeconds: Invalid value: 30: activeDeadlineSeconds in DaemonSet " \
           "is not Supported" in message
    assert "spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0" in message


async def test_node_changes_wake_daemonsets_only_when_placement_changes():
    client, ctrl = shell(make_ds(), nodes(2))
    while len(ctrl.queue):
        key = await ctrl.queue.get()
        ctrl.queue.done(key)
    n0 = client.stored(NODES, None, "n0")
    heartbeat = copy.deepcopy(n0)
    heartbeat["status"]["conditions"][0]["lastHeartbeatTime"] = ts(0)
    client.add(NODES, heartbeat)
    assert len(ctrl.queue) == 0
    tainted = copy.deepcopy(heartbeat)
    tainted["spec"]["taints"] = [{"key": "k", "effect": "NoExecute"}]
    client.add(NODES, tainted)
    assert len(ctrl.queue) == 1


def test_a_sync_prunes_history_beyond_the_limit_but_not_revisions_pods_still_run():
    ds = make_ds(image="agent:9", history_limit=1)
    old = [revision(make_ds(image=f"agent:{i}"), i, f"h{i}") for i in range(1, 4)]
    p = plan_daemonset(ds, nodes(1), [dpod("p", "n0", "h1")], "h9", old, NOW, FailedPodBackoff(), 0.0)
    assert [r["revision"] for r in p.prune] == [2, 3]
    p = plan_daemonset(make_ds(image="agent:9", history_limit=3), nodes(1), [], "h9", old, NOW,
                       FailedPodBackoff(), 0.0)
    assert p.prune == []


async def test_controller_adopts_orphan_revisions_instead_of_colliding():
    ds = make_ds()
    client, ctrl = shell(ds, nodes(1))
    orphan = copy.deepcopy(plan_history(ds, []).create)
    del orphan["metadata"]["ownerReferences"]
    orphan["revision"] = 4
    client.add(CONTROLLERREVISIONS, orphan)
    await ctrl.sync("default/agent")
    revs = client.all(CONTROLLERREVISIONS)
    assert len(revs) == 1 and revs[0]["revision"] == 4
    assert revs[0]["metadata"]["ownerReferences"][0]["uid"] == UID
    assert "collisionCount" not in client.stored(DAEMONSETS, "default", "agent")["status"]
    assert len(client.all(PODS)) == 1
