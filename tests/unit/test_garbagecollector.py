"""Decisions of the garbage collector, on plain object snapshots (no server)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.patch import json_patch
from kybernetes.controllers.garbagecollector import (
    DANGLING,
    FOREGROUND,
    ORPHAN,
    SOLID,
    WAITING,
    Graph,
    Node,
    lookup_namespace,
    node_from,
    owner_verdict,
    plan_foreground,
    plan_item,
    plan_orphan,
    remove_finalizer_patch,
    remove_refs_patch,
    unblock_patch,
)


def ref(uid: str, kind: str = "ReplicaSet", name: str = "", block: bool = False,
        api_version: str = "apps/v1") -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name or uid, "uid": uid, "controller": True,
            "blockOwnerDeletion": block}


def obj(uid: str, name: str = "", ns: str = "default", owners: list[dict[str, Any]] | None = None,
        deleting: bool = False, finalizers: list[str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"uid": uid, "name": name or uid, "resourceVersion": "1"}
    if ns:
        meta["namespace"] = ns
    if owners:
        meta["ownerReferences"] = owners
    if deleting:
        meta["deletionTimestamp"] = "2025-01-01T00:00:00Z"
    if finalizers:
        meta["finalizers"] = finalizers
    return {"metadata": meta}


def node(uid: str, kind: str = "Pod", api_version: str = "v1", **kw: Any) -> Node:
    n = node_from(obj(uid, **kw), api_version, kind)
    assert n is not None
    return n


# -- owner verdicts --------------------------------------------------------------------------


def test_owner_verdicts_from_live_object() -> None:
    r = node("p", owners=[ref("rs1")]).owners[0]
    assert owner_verdict(r, None) == DANGLING
    assert owner_verdict(r, obj("other-uid", name="rs1")) == DANGLING  # same name, recreated object
    assert owner_verdict(r, obj("rs1")) == SOLID
    assert owner_verdict(r, obj("rs1", deleting=True, finalizers=[FOREGROUND])) == WAITING
    # Being deleted without the foreground finalizer: still an owner until it is gone.
    assert owner_verdict(r, obj("rs1", deleting=True, finalizers=[ORPHAN])) == SOLID


def test_owner_lookup_namespace_rules() -> None:
    namespaced_dep = node("p", ns="team")
    cluster_dep = node("pv", ns="", kind="PersistentVolume")
    assert lookup_namespace(namespaced_dep, owner_namespaced=True) == (True, "team")
    assert lookup_namespace(namespaced_dep, owner_namespaced=False) == (True, None)
    assert lookup_namespace(cluster_dep, owner_namespaced=False) == (True, None)
    # A cluster-scoped dependent cannot have a namespaced owner: unresolvable.
    assert lookup_namespace(cluster_dep, owner_namespaced=True) == (False, None)


# -- plans for one object ----------------------------------------------------------------------


def test_all_owners_gone_means_background_delete() -> None:
    n = node("p", owners=[ref("rs1"), ref("rs2")])
    plan = plan_item(n, {"rs1": DANGLING, "rs2": DANGLING}, [])
    assert (plan.action, plan.policy) == ("delete", "Background")


def test_one_solid_owner_keeps_object_and_drops_dangling_ref() -> None:
    n = node("p", owners=[ref("rs1"), ref("rs2")])
    plan = plan_item(n, {"rs1": SOLID, "rs2": DANGLING}, [])
    assert plan.action == "remove_refs"
    assert plan.remove_uids == ("rs2",)
    assert plan_item(n, {"rs1": SOLID, "rs2": SOLID}, []).action == "none"


def test_shared_dependent_of_foreground_owner_is_released_not_deleted() -> None:
    n = node("p", owners=[ref("a"), ref("b")])
    plan = plan_item(n, {"a": WAITING, "b": SOLID}, [])
    assert plan.action == "remove_refs" and plan.remove_uids == ("a",)


def test_dependent_of_foreground_owner_is_deleted_foreground_when_it_has_dependents() -> None:
    rs = node("rs", kind="ReplicaSet", api_version="apps/v1", owners=[ref("dep", kind="Deployment")])
    pod = node("p", owners=[ref("rs", block=True)])
    with_deps = plan_item(rs, {"dep": WAITING}, [pod])
    assert (with_deps.action, with_deps.policy, with_deps.unblock) == ("delete", "Foreground", False)
    # Kubernetes' choice: without dependents the waiting owner still propagates Foreground.
    alone = plan_item(rs, {"dep": WAITING}, [])
    assert (alone.action, alone.policy) == ("delete", "Foreground")


def test_cycle_with_waiting_owner_unblocks_before_deleting() -> None:
    a = node("a", kind="ConfigMap", owners=[ref("b", kind="ConfigMap", api_version="v1", block=True)])
    b_deleting = node("b", kind="ConfigMap", owners=[ref("a", kind="ConfigMap", api_version="v1", block=True)],
                      deleting=True, finalizers=[FOREGROUND])
    plan = plan_item(a, {"b": WAITING}, [b_deleting])
    assert plan.action == "delete" and plan.unblock and plan.policy == "Foreground"


def test_own_finalizers_choose_policy() -> None:
    n = node("p", owners=[ref("rs1")], finalizers=[ORPHAN])
    assert plan_item(n, {"rs1": DANGLING}, []).policy == "Orphan"


def test_nothing_for_objects_already_deleting_unowned_or_unchecked() -> None:
    assert plan_item(node("p", owners=[ref("rs1")], deleting=True), {"rs1": DANGLING}, []).action == "none"
    assert plan_item(node("p"), {}, []).action == "none"
    # One owner could not be checked: never delete on partial knowledge.
    n = node("p", owners=[ref("rs1"), ref("rs2")])
    assert plan_item(n, {"rs1": DANGLING}, []).action == "none"


# -- foreground and orphan ------------------------------------------------------------------------


def test_foreground_waits_for_blocking_dependents_only() -> None:
    owner = node("rs", kind="ReplicaSet", api_version="apps/v1", deleting=True, finalizers=[FOREGROUND])
    blocking = node("p1", owners=[ref("rs", block=True)])
    blocking_going = node("p2", owners=[ref("rs", block=True)], deleting=True)
    free = node("p3", owners=[ref("rs", block=False)])
    plan = plan_foreground(owner, [blocking, blocking_going, free])
    assert not plan.remove_finalizer
    assert plan.enqueue == ("p1",)  # p2 is already on its way, p3 does not block
    assert plan_foreground(owner, [free]).remove_finalizer
    assert plan_foreground(owner, []).remove_finalizer


def test_orphan_targets_only_dependents_referencing_owner() -> None:
    owner = node("rs", kind="ReplicaSet", api_version="apps/v1", deleting=True, finalizers=[ORPHAN])
    d1 = node("p1", owners=[ref("rs"), ref("other")])
    d2 = node("p2", owners=[ref("other")])
    assert [d.uid for d in plan_orphan(owner, [d1, d2])] == ["p1"]


# -- patches, applied with the server's own json-patch ------------------------------------------


def test_remove_refs_patch_keeps_other_owners() -> None:
    o = obj("p", owners=[ref("a"), ref("b"), ref("c")])
    n = node_from(o, "v1", "Pod")
    assert n is not None
    out = json_patch(o, remove_refs_patch(n, ["a", "c"]))
    assert [r["uid"] for r in out["metadata"]["ownerReferences"]] == ["b"]
    gone = json_patch(o, remove_refs_patch(n, ["a", "b", "c"]))
    assert "ownerReferences" not in gone["metadata"]


def test_patches_refuse_a_changed_object() -> None:
    o = obj("p", owners=[ref("a"), ref("b")])
    n = node_from(o, "v1", "Pod")
    assert n is not None
    moved = obj("p", owners=[ref("b"), ref("a")])  # someone reordered the refs since the snapshot
    with pytest.raises(ApiError) as err:
        json_patch(moved, remove_refs_patch(n, ["a"]))
    assert err.value.code == 422
    with pytest.raises(ApiError):
        json_patch(obj("recreated", name="p", owners=[ref("a")]), remove_refs_patch(n, ["a"]))


def test_finalizer_and_unblock_patches() -> None:
    o = obj("rs", owners=[ref("d", kind="Deployment", block=True)], deleting=True,
            finalizers=["example.com/x", FOREGROUND])
    n = node_from(o, "apps/v1", "ReplicaSet")
    assert n is not None
    out = json_patch(o, remove_finalizer_patch(n, FOREGROUND))
    assert out["metadata"]["finalizers"] == ["example.com/x"]
    unblocked = json_patch(o, unblock_patch(n))
    assert unblocked["metadata"]["ownerReferences"][0]["blockOwnerDeletion"] is False


# -- the graph ----------------------------------------------------------------------------------


def test_graph_tracks_dependents_and_enqueues_on_owner_delete() -> None:
    g = Graph()
    rs = node("rs", kind="ReplicaSet", api_version="apps/v1")
    g.upsert(rs)
    change = g.upsert(node("p1", owners=[ref("rs")]))
    assert change.attempt == []  # owner known and alive: nothing to check
    g.upsert(node("p2", owners=[ref("rs")]))
    assert sorted(d.uid for d in g.dependents_of("rs")) == ["p1", "p2"]
    change = g.remove("rs")
    assert sorted(change.attempt) == ["p1", "p2"]
    # The dependents still name the gone owner, so they are still found through it.
    assert sorted(d.uid for d in g.dependents_of("rs")) == ["p1", "p2"]


def test_graph_checks_dependent_of_unknown_owner() -> None:
    g = Graph()
    assert g.upsert(node("p1", owners=[ref("ghost")])).attempt == ["p1"]


def test_graph_foreground_transition_enqueues_dependents_and_owner() -> None:
    g = Graph()
    g.upsert(node("rs", kind="ReplicaSet", api_version="apps/v1"))
    g.upsert(node("p1", owners=[ref("rs", block=True)]))
    g.upsert(node("p2", owners=[ref("rs")]))
    change = g.upsert(node("rs", kind="ReplicaSet", api_version="apps/v1", deleting=True, finalizers=[FOREGROUND]))
    assert sorted(change.attempt) == ["p1", "p2", "rs"]
    # A blocking dependent going away wakes the owner up.
    assert g.remove("p1").attempt == ["rs"]
    # So does a dependent dropping its blockOwnerDeletion.
    g.upsert(node("p3", owners=[ref("rs", block=True)]))
    assert "rs" in g.upsert(node("p3", owners=[ref("rs", block=False)])).attempt


def test_graph_orphan_transition_and_ref_removal() -> None:
    g = Graph()
    g.upsert(node("rs", kind="ReplicaSet", api_version="apps/v1"))
    g.upsert(node("p1", owners=[ref("rs")]))
    change = g.upsert(node("rs", kind="ReplicaSet", api_version="apps/v1", deleting=True, finalizers=[ORPHAN]))
    assert change.orphan == ["rs"]
    # Later updates of the same state do not queue it again.
    assert g.upsert(node("rs", kind="ReplicaSet", api_version="apps/v1", deleting=True,
                         finalizers=[ORPHAN])).orphan == []
    g.upsert(node("p1"))  # its reference was removed
    assert g.dependents_of("rs") == []
