"""The persistent storage rules: which volume may serve which claim (api/storage.py), and the
claim/volume strategies and admission (api/kinds/storage.py): default class, protection
finalizers, immutability and expansion."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.storage import (
    PersistentVolumeClaimStrategy,
    PersistentVolumeStrategy,
    admit_claim_create,
    admit_claim_update,
)
from kybernetes.api.registry import Registry
from kybernetes.api.storage import (
    LOCAL_PATH_CLASS,
    LOCAL_PATH_PROVISIONER,
    PV_PROTECTION,
    PVC_PROTECTION,
    best_volume_for_claim,
    claim_class,
    claim_is_bound,
    default_class,
    local_path_storage_class,
    volume_matches_claim,
    volume_node_affinity_matches,
)

Obj = dict[str, Any]


def pv(name: str = "pv1", size: str = "1Gi", *, cls: str = "manual", modes: tuple[str, ...] = ("ReadWriteOnce",),
       phase: str = "Available", claim: Obj | None = None, labels: dict[str, str] | None = None,
       node: str | None = None, mode: str | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                 "hostPath": {"path": f"/data/{name}"}}
    if claim is not None:
        spec["claimRef"] = claim
    if node is not None:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
    if mode is not None:
        spec["volumeMode"] = mode
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "labels": labels or {}}, "spec": spec, "status": {"phase": phase}}


def pvc(name: str = "c", size: str = "500Mi", *, cls: str | None = "manual", modes: tuple[str, ...] = ("ReadWriteOnce",),
        selector: Obj | None = None, uid: str = "uid-c", phase: str = "Pending") -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if selector is not None:
        spec["selector"] = selector
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": "ns", "uid": uid}, "spec": spec, "status": {"phase": phase}}


def node(name: str, **labels: str) -> Obj:
    return {"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}}}


# -- matching -----------------------------------------------------------------------------

def test_a_claim_takes_the_smallest_available_volume_that_fits():
    volumes = [pv("big", "10Gi"), pv("small", "1Gi"), pv("tiny", "100Mi"), pv("taken", "600Mi", phase="Bound",
                                                                           claim={"name": "x", "namespace": "ns"})]
    assert best_volume_for_claim(volumes, pvc())["metadata"]["name"] == "small"


@pytest.mark.parametrize("volume, claim", [
    (pv(cls="other"), pvc()),  # another class
    (pv(modes=("ReadOnlyMany",)), pvc()),  # the claim's access mode is missing
    (pv(size="100Mi"), pvc(size="1Gi")),  # too small
    (pv(mode="Block"), pvc()),  # volumeMode differs
    (pv(phase="Released"), pvc()),  # not Available
    (pv(labels={"tier": "slow"}), pvc(selector={"matchLabels": {"tier": "fast"}})),
])
def test_volumes_that_cannot_serve_a_claim(volume, claim):
    assert not volume_matches_claim(volume, claim)
    assert best_volume_for_claim([volume], claim) is None


def test_a_prebound_volume_wins_whatever_its_phase_and_class():
    mine = pv("mine", "5Gi", cls="other", phase="Pending", claim={"name": "c", "namespace": "ns"})
    assert volume_matches_claim(mine, pvc())
    assert best_volume_for_claim([pv("small"), mine], pvc())["metadata"]["name"] == "mine"
    # Pre-bound to a namesake that was deleted (another uid): not this claim's.
    stale = pv("stale", claim={"name": "c", "namespace": "ns", "uid": "old"})
    assert not volume_matches_claim(stale, pvc())


def test_waiting_claims_take_only_prebound_volumes():
    assert best_volume_for_claim([pv("free")], pvc(), prebound_only=True) is None
    mine = pv("mine", claim={"name": "c", "namespace": "ns", "uid": "uid-c"})
    assert best_volume_for_claim([pv("free"), mine], pvc(), prebound_only=True)["metadata"]["name"] == "mine"


def test_node_affinity_decides_where_a_volume_can_be_used():
    local = pv("local", node="n1")
    assert volume_node_affinity_matches(local, node("n1"))
    assert not volume_node_affinity_matches(local, node("n2"))
    assert volume_node_affinity_matches(pv("anywhere"), node("n2"))
    assert best_volume_for_claim([local], pvc(), node("n2")) is None
    assert best_volume_for_claim([local, pv("bigger", "2Gi")], pvc(), node("n2"))["metadata"]["name"] == "bigger"
    # A volume pre-bound to the claim but out of reach of the node: no match at all.
    mine = pv("mine", node="n1", claim={"name": "c", "namespace": "ns"})
    assert best_volume_for_claim([mine, pv("other")], pvc(), node("n2")) is None


def test_claim_class_and_bound():
    assert claim_class(pvc(cls=None)) == ""
    annotated = pvc(cls="x")
    annotated["metadata"]["annotations"] = {"volume.beta.kubernetes.io/storage-class": "beta"}
    assert claim_class(annotated) == "beta"
    bound = pvc(phase="Bound")
    assert not claim_is_bound(bound)
    bound["spec"]["volumeName"] = "pv1"
    assert claim_is_bound(bound)


def test_the_builtin_class_is_the_default():
    sc = local_path_storage_class()
    assert sc["metadata"]["name"] == LOCAL_PATH_CLASS and sc["provisioner"] == LOCAL_PATH_PROVISIONER
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer" and sc["allowVolumeExpansion"] is True
    assert default_class([{"metadata": {"name": "plain"}}, sc]) is sc


def test_the_newest_default_class_wins():
    older = {"metadata": {"name": "a", "creationTimestamp": "2026-01-01T00:00:00Z",
                          "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}}
    newer = {"metadata": {"name": "b", "creationTimestamp": "2026-02-01T00:00:00Z",
                          "annotations": {"storageclass.beta.kubernetes.io/is-default-class": "true"}}}
    assert default_class([older, newer]) is newer
    assert default_class([{"metadata": {"name": "x", "annotations": {
        "storageclass.kubernetes.io/is-default-class": "false"}}}]) is None


# -- admission ----------------------------------------------------------------------------

def test_a_claim_without_a_class_gets_the_default_on_create():
    claim = pvc(cls=None)
    admit_claim_create(claim, [local_path_storage_class()])
    assert claim["spec"]["storageClassName"] == "local-path"
    explicit_none = pvc(cls="")
    admit_claim_create(explicit_none, [local_path_storage_class()])
    assert explicit_none["spec"]["storageClassName"] == ""
    no_default = pvc(cls=None)
    admit_claim_create(no_default, [{"metadata": {"name": "plain"}}])
    assert "storageClassName" not in no_default["spec"]


def _classes(expand: bool | None) -> Any:
    sc: Obj = {"metadata": {"name": "manual"}, "provisioner": "x.io/p"}
    if expand is not None:
        sc["allowVolumeExpansion"] = expand
    return lambda name: sc if name == "manual" else None


def test_expansion_needs_a_class_that_allows_it():
    old = pvc(size="1Gi", phase="Bound")
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    admit_claim_update(grown, old, _classes(True))
    for refused in (False, None):
        with pytest.raises(ApiError) as err:
            admit_claim_update(grown, old, _classes(refused))
        assert err.value.code == 403
        assert err.value.message == ('persistentvolumeclaims "c" is forbidden: only dynamically provisioned pvc can be '
                                     "resized and the storageclass that provisions the pvc must support resize")
    # Asking for less or the same is not the resize admission's business.
    admit_claim_update(old, grown, _classes(False))


# -- strategies ---------------------------------------------------------------------------

def _info(plural: str) -> Any:
    info = Registry().get("", "v1", plural)
    assert info is not None
    return info


def test_new_claims_and_volumes_are_protected():
    claim = pvc()
    PersistentVolumeClaimStrategy().prepare_for_create(_info("persistentvolumeclaims"), claim)
    assert claim["metadata"]["finalizers"] == [PVC_PROTECTION]
    volume = pv()
    volume["metadata"]["finalizers"] = ["example.com/keep", PV_PROTECTION]
    PersistentVolumeStrategy().prepare_for_create(_info("persistentvolumes"), volume)
    assert volume["metadata"]["finalizers"] == ["example.com/keep", PV_PROTECTION]


def _update_errors(new: Obj, old: Obj) -> list[str]:
    return [f"{e.field}: {e.detail}" for e in PersistentVolumeClaimStrategy().validate_update(
        _info("persistentvolumeclaims"), new, old)]


def test_claim_update_rules():
    old = pvc(size="1Gi", phase="Bound")
    old["status"]["capacity"] = {"storage": "1Gi"}
    named = copy.deepcopy(old)
    named["spec"]["volumeName"] = "pv1"
    assert _update_errors(named, old) == []  # the binder fills volumeName in once
    renamed = copy.deepcopy(named)
    renamed["spec"]["volumeName"] = "pv2"
    assert _update_errors(renamed, named)[0].startswith("spec: spec is immutable after creation")
    grown = copy.deepcopy(old)
    grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert _update_errors(grown, old) == []
    # After a failed expansion the request may come back down, but stay above what the volume has.
    failed = copy.deepcopy(old)
    failed["spec"]["resources"]["requests"]["storage"] = "3Gi"
    assert _update_errors(grown, failed) == []
    assert _update_errors(old, failed) == ["spec.resources.requests.storage: field can not be less than status.capacity"]
    shrunk = copy.deepcopy(old)
    shrunk["spec"]["resources"]["requests"]["storage"] = "500Mi"
    assert _update_errors(shrunk, old) == ["spec.resources.requests.storage: field can not be less than status.capacity"]
    unbound = pvc(size="1Gi")
    unbound_grown = copy.deepcopy(unbound)
    unbound_grown["spec"]["resources"]["requests"]["storage"] = "2Gi"
    assert _update_errors(unbound_grown, unbound)[0].startswith("spec: spec is immutable")
    classless = pvc(cls=None)
    given = copy.deepcopy(classless)
    given["spec"]["storageClassName"] = "fast"
    assert _update_errors(given, classless) == []  # a class for a claim that had none
    assert _update_errors(pvc(cls="slow"), pvc(cls="fast"))[0].startswith("spec: spec is immutable")


def test_volume_update_rules():
    strategy, info = PersistentVolumeStrategy(), _info("persistentvolumes")
    old = pv()
    bigger = copy.deepcopy(old)
    bigger["spec"]["capacity"]["storage"] = "2Gi"
    bigger["spec"]["claimRef"] = {"name": "c", "namespace": "ns"}
    assert strategy.validate_update(info, bigger, old) == []
    moved = copy.deepcopy(old)
    moved["spec"]["hostPath"]["path"] = "/elsewhere"
    assert [e.field for e in strategy.validate_update(info, moved, old)] == ["spec.persistentvolumesource"]


def test_a_local_volume_needs_node_affinity():
    strategy, info = PersistentVolumeStrategy(), _info("persistentvolumes")
    local = pv()
    local["spec"].pop("hostPath")
    local["spec"]["local"] = {"path": "/mnt/disk"}
    assert [f"{e.field}: {e.detail}" for e in strategy.validate(info, local)] == [
        "spec.nodeAffinity: Local volume requires node affinity"]
    local["spec"]["nodeAffinity"] = pv(node="n1")["spec"]["nodeAffinity"]
    assert strategy.validate(info, local) == []
