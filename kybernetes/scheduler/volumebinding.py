"""Volume binding in the scheduler (upstream's VolumeBinding and VolumeZone plugins): which
nodes can serve a pod's PersistentVolumeClaims, and the writes that commit the choice.

* `prefilter`: every claim the pod names must exist, not be being deleted (nor Lost), and be
  either bound or of a WaitForFirstConsumer class; otherwise the pod is unschedulable on every
  node with upstream's message (`persistentvolumeclaim "x" not found`, `pod has unbound
  immediate PersistentVolumeClaims`). Claims of other pods' generic ephemeral volumes count
  as missing.
* `VolumeState.filter` (one node): a bound claim's PV must reach the node (node affinity, and
  the zone labels as VolumeZone reads them); an unbound WaitForFirstConsumer claim needs an
  Available static PV reaching the node, or a class that provisions on that node.
* `VolumeBinder`: the scheduler's view of claims and volumes with what it assumed on top (two
  pods of one burst must not pick the same static PV), and PreBind: pre-bind the chosen static
  PV to its claim (`spec.claimRef`, pinned to the PV's resourceVersion) or mark the claim with
  the selected node, for the binder and the node's provisioner to finish. The pod is bound
  right after, without waiting for the claim to be bound: the node agent waits to mount it.

Pods without claims never reach this module.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.storage import (
    ANN_BOUND_BY_CONTROLLER,
    ANN_SELECTED_NODE,
    WAIT_FOR_FIRST_CONSUMER,
    best_volume_for_claim,
    binding_mode,
    claim_class,
    claim_is_bound,
    request_of,
    volume_bound_to_claim,
    volume_class,
    volume_matches_claim,
    volume_node_affinity_matches,
)
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES
from kybernetes.scheduler.cache import NodeInfo, PodInfo

Obj = dict[str, Any]
# A failed filter: its reasons, and whether evicting pods could ever help (core.Status).
Status = tuple[tuple[str, ...], bool]

# Filter reasons, in upstream's words.
ERR_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
ERR_NODE_CONFLICT = "node(s) had volume node affinity conflict"
ERR_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
ERR_ZONE_CONFLICT = "node(s) had no available volume zone"
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
# The provisioner of classes for static volumes only (local PVs).
NO_PROVISIONER = "kubernetes.io/no-provisioner"

_ZONE_LABELS = {
    "topology.kubernetes.io/zone": "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region": "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone": "topology.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region": "topology.kubernetes.io/region",
}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _key(obj: Mapping[str, Any]) -> str:
    meta = _meta(obj)
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _rv(obj: Mapping[str, Any] | None) -> str:
    return str(_meta(obj).get("resourceVersion") or "") if obj else ""


# -- pure decisions -----------------------------------------------------------------------

def class_allows_node(sc: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """The class's allowedTopologies hold on the node's labels (any term; none: everywhere)."""
    terms = sc.get("allowedTopologies") or ()
    if not terms:
        return True
    for term in terms:
        exprs = term.get("matchLabelExpressions") or ()
        if all(labels.get(e.get("key") or "") in (e.get("values") or ()) for e in exprs):
            return True
    return False


def can_provision(sc: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """A claim of class `sc` can get a new volume on a node with `labels`."""
    if not sc:
        return False
    provisioner = sc.get("provisioner") or ""
    if not provisioner or provisioner == NO_PROVISIONER:
        return False
    return class_allows_node(sc, labels)


def zones_allow(pv: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """VolumeZone: each zone/region label of the PV (values joined by "__") names the node's."""
    pv_labels = _meta(pv).get("labels") or {}
    for key, ga in _ZONE_LABELS.items():
        want = pv_labels.get(key)
        if want is None:
            continue
        have = labels.get(key)
        if have is None:
            have = labels.get(ga)
        if have is None or have not in {z.strip() for z in str(want).split("__")}:
            return False
    return True


def claim_ref(pvc: Mapping[str, Any]) -> Obj:
    """An ObjectReference to the claim, as upstream's pre-binding writes it."""
    meta = _meta(pvc)
    return {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace") or "", "name": meta.get("name"),
            "uid": meta.get("uid") or "", "apiVersion": "v1", "resourceVersion": meta.get("resourceVersion") or ""}


def prebind_needed(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    """The PV does not yet point at exactly this claim (by uid)."""
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    meta = _meta(pvc)
    return not (ref.get("name") == meta.get("name") and ref.get("namespace") == meta.get("namespace")
                and ref.get("uid") and ref.get("uid") == meta.get("uid"))


def prebind_patch(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> Obj:
    """The merge patch that pre-binds `pv` to `pvc`, pinned to the PV's resourceVersion so a
    PV taken meanwhile answers 409. A PV the user did not point at the claim is marked as
    bound by the controller, as upstream does."""
    meta: Obj = {"resourceVersion": _rv(pv)}
    if not volume_bound_to_claim(pv, pvc) and ANN_BOUND_BY_CONTROLLER not in (_meta(pv).get("annotations") or {}):
        meta["annotations"] = {ANN_BOUND_BY_CONTROLLER: "yes"}
    return {"metadata": meta, "spec": {"claimRef": claim_ref(pvc)}}


def assumed_prebound(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> Obj:
    """The PV as it will be once pre-bound (for the assume cache)."""
    out = copy.deepcopy(dict(pv))
    patch = prebind_patch(pv, pvc)
    out.setdefault("spec", {})["claimRef"] = patch["spec"]["claimRef"]
    if "annotations" in patch["metadata"]:
        out.setdefault("metadata", {}).setdefault("annotations", {}).update(patch["metadata"]["annotations"])
    return out


def assumed_selected(pvc: Mapping[str, Any], node: str) -> Obj:
    """The claim as it will be once the selected node is set on it (for the assume cache)."""
    out = copy.deepcopy(dict(pvc))
    out.setdefault("metadata", {}).setdefault("annotations", {})[ANN_SELECTED_NODE] = node
    return out


def _candidate(pv: Mapping[str, Any], pvc: Mapping[str, Any], cls: str) -> bool:
    # A cheap look first: most PVs are bound to someone else or of another class.
    ref = (pv.get("spec") or {}).get("claimRef")
    if ref:
        meta = _meta(pvc)
        if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
            return False
    elif volume_class(pv) != cls or ((pv.get("status") or {}).get("phase")) != "Available":
        return False
    return volume_matches_claim(pv, pvc)


@dataclass
class PodVolumes:
    """What binding the pod to one node takes: static PVs to pre-bind to claims (each with
    the PV as it was seen), and claims to mark with the node for provisioning."""

    node: str
    static: list[tuple[Obj, Obj]] = field(default_factory=list)  # (claim, pv)
    provision: list[Obj] = field(default_factory=list)

    def empty(self) -> bool:
        return not self.static and not self.provision


@dataclass
class DelayedClaim:
    """An unbound WaitForFirstConsumer claim, the PVs that could serve it (node aside), and
    its class."""

    claim: Obj
    candidates: list[Obj]
    storage_class: Obj | None


@dataclass
class VolumeState:
    """The pod's claims for one scheduling cycle (upstream's cycle state). `rejection` set:
    the pod fits nowhere, for that reason."""

    rejection: str = ""
    bound: list[tuple[Obj, Obj | None]] = field(default_factory=list)  # (claim, its PV or None)
    delayed: list[DelayedClaim] = field(default_factory=list)
    by_node: dict[str, PodVolumes] = field(default_factory=dict)

    def find(self, node: Mapping[str, Any]) -> tuple[PodVolumes | None, tuple[str, ...]]:
        """Upstream's FindPodVolumes: what binding on `node` takes, or why it cannot."""
        meta = _meta(node)
        name = str(meta.get("name") or "")
        labels = meta.get("labels") or {}
        reasons: list[str] = []
        for _claim, pv in self.bound:
            if pv is None:
                reasons.append(ERR_PV_NOT_EXIST)
                break
            if not volume_node_affinity_matches(pv, node):
                reasons.append(ERR_NODE_CONFLICT)
                break
        out = PodVolumes(name)
        chosen: set[str] = set()
        for d in self.delayed:
            selected = (_meta(d.claim).get("annotations") or {}).get(ANN_SELECTED_NODE)
            if selected is not None:
                # Already promised to a node: only that one can provision it.
                if selected != name or not can_provision(d.storage_class, labels):
                    return None, (*reasons, ERR_BIND_CONFLICT)
                out.provision.append(d.claim)
                continue
            pvs = [pv for pv in d.candidates if _meta(pv).get("name") not in chosen]
            pv = best_volume_for_claim(pvs, d.claim, node) if pvs else None
            if pv is not None:
                chosen.add(str(_meta(pv).get("name")))
                out.static.append((d.claim, pv))
            elif can_provision(d.storage_class, labels):
                out.provision.append(d.claim)
            else:
                return None, (*reasons, ERR_BIND_CONFLICT)
        if reasons:
            return None, tuple(reasons)
        return out, ()

    def filter(self, ni: NodeInfo) -> Status | None:
        """The VolumeBinding then VolumeZone filters for one node; failures are not
        something evicting pods could fix."""
        node = ni.node
        if node is None:
            return (ERR_BIND_CONFLICT,), False
        vols, reasons = self.find(node)
        if vols is None:
            return reasons, False
        labels = ni.labels
        for _claim, pv in self.bound:
            if pv is not None and not zones_allow(pv, labels):
                return (ERR_ZONE_CONFLICT,), False
        self.by_node[ni.name] = vols
        return None


def prefilter(pod: PodInfo, get_claim: Callable[[str, str], Obj | None],
              get_class: Callable[[str], Obj | None], get_pv: Callable[[str], Obj | None],
              pvs: Callable[[], Iterable[Obj]]) -> VolumeState:
    """Upstream's PreFilter over the pod's claims (`get_claim(namespace, name)`), classes,
    and volumes (`pvs()` lists every PV, only called for claims still to bind)."""
    claims: list[Obj] = []
    for name, ephemeral in pod.claims:
        pvc = get_claim(pod.namespace, name)
        if pvc is None:
            if ephemeral:
                return VolumeState(f'waiting for ephemeral volume controller to create the persistentvolumeclaim '
                                   f'"{name}"')
            return VolumeState(f'persistentvolumeclaim "{name}" not found')
        if ((pvc.get("status") or {}).get("phase")) == "Lost":
            return VolumeState(f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                               f'"{(pvc.get("spec") or {}).get("volumeName") or ""}"')
        if _meta(pvc).get("deletionTimestamp"):
            return VolumeState(f'persistentvolumeclaim "{name}" is being deleted')
        if ephemeral and not _owned_by(pvc, pod.uid):
            return VolumeState(f"PVC {pod.namespace}/{name} was not created for pod {pod.namespace}/{pod.name} "
                               "(pod is not owner)")
        claims.append(pvc)
    state = VolumeState()
    delayed: list[tuple[Obj, Obj | None]] = []
    for pvc in claims:
        if claim_is_bound(pvc):
            state.bound.append((pvc, get_pv(str(pvc["spec"]["volumeName"]))))
            continue
        cls_name = claim_class(pvc)
        sc = get_class(cls_name) if cls_name else None
        if binding_mode(sc) != WAIT_FOR_FIRST_CONSUMER or (pvc.get("spec") or {}).get("volumeName"):
            return VolumeState(UNBOUND_IMMEDIATE)
        delayed.append((pvc, sc))
    if delayed:
        delayed.sort(key=lambda d: request_of(d[0]))  # smallest first get the smallest fits
        everything = list(pvs())
        for pvc, sc in delayed:
            cls = claim_class(pvc)
            state.delayed.append(DelayedClaim(pvc, [pv for pv in everything if _candidate(pv, pvc, cls)], sc))
    return state


def _owned_by(pvc: Mapping[str, Any], uid: str) -> bool:
    for ref in _meta(pvc).get("ownerReferences") or ():
        if ref.get("controller"):
            return bool(uid) and ref.get("uid") == uid and ref.get("kind") == "Pod"
    return False


def claim_names_of(pod: Mapping[str, Any]) -> set[str]:
    """The claim names a pod (or its scheduling view) uses, for requeueing on claim events."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    out = set()
    for v in spec.get("volumes") or ():
        ref = v.get("persistentVolumeClaim")
        if ref is not None:
            out.add(ref.get("claimName") or "")
        elif v.get("ephemeral") is not None:
            out.add(f"{meta.get('name') or ''}-{v.get('name') or ''}")
    return out


# -- the assume cache and PreBind ---------------------------------------------------------

class VolumeBinder:
    """Claims, volumes and classes as the scheduler sees them: the informers' objects, with
    the pre-bindings and node selections it assumed on top until the informer brings a newer
    version of that object (or the PreBind write fails and they are reverted)."""

    def __init__(self, claims: Any, volumes: Any, classes: Any) -> None:
        self.claims = claims
        self.volumes = volumes
        self.classes = classes
        # key -> (assumed object, resourceVersion of the informer's object it replaces)
        self.assumed_volumes: dict[str, tuple[Obj, str]] = {}
        self.assumed_claims: dict[str, tuple[Obj, str]] = {}

    # reads

    def claim(self, namespace: str, name: str) -> Obj | None:
        over = self.assumed_claims.get(f"{namespace}/{name}")
        return over[0] if over is not None else self.claims.get(namespace, name)

    def volume(self, name: str) -> Obj | None:
        over = self.assumed_volumes.get(name)
        return over[0] if over is not None else self.volumes.get(None, name)

    def storage_class(self, name: str) -> Obj | None:
        return self.classes.get(None, name)

    def all_volumes(self) -> list[Obj]:
        assumed = self.assumed_volumes
        if not assumed:
            return self.volumes.list()
        return [assumed[n][0] if (n := _meta(pv).get("name")) in assumed else pv for pv in self.volumes.list()]

    def prefilter(self, pod: PodInfo) -> VolumeState:
        return prefilter(pod, self.claim, self.storage_class, self.volume, self.all_volumes)

    # informer events: a newer object replaces the assumption

    def volume_changed(self, pv: Obj) -> None:
        name = str(_meta(pv).get("name") or "")
        over = self.assumed_volumes.get(name)
        if over is not None and over[1] != _rv(pv):
            del self.assumed_volumes[name]

    def volume_deleted(self, pv: Obj) -> None:
        self.assumed_volumes.pop(str(_meta(pv).get("name") or ""), None)

    def claim_changed(self, pvc: Obj) -> None:
        key = _key(pvc)
        over = self.assumed_claims.get(key)
        if over is not None and over[1] != _rv(pvc):
            del self.assumed_claims[key]

    def claim_deleted(self, pvc: Obj) -> None:
        self.assumed_claims.pop(_key(pvc), None)

    # Reserve / Unreserve

    def assume(self, state: VolumeState, node: Mapping[str, Any]) -> PodVolumes | None:
        """Reserve the choice for `node`: the PVs to pre-bind and the claims to mark count as
        taken for the next pods at once. None when there is nothing to write."""
        name = str(_meta(node).get("name") or "")
        vols = state.by_node.get(name)
        if vols is None:
            vols, _ = state.find(node)
            if vols is None:
                return None
        writes = PodVolumes(name)
        for pvc, pv in vols.static:
            if not prebind_needed(pv, pvc):
                continue
            pv_name = str(_meta(pv).get("name"))
            seen = self.volumes.get(None, pv_name)
            self.assumed_volumes[pv_name] = (assumed_prebound(pv, pvc), _rv(seen))
            writes.static.append((pvc, pv))
        for pvc in vols.provision:
            if (_meta(pvc).get("annotations") or {}).get(ANN_SELECTED_NODE) == name:
                continue
            meta = _meta(pvc)
            seen = self.claims.get(meta.get("namespace"), meta.get("name"))
            self.assumed_claims[_key(pvc)] = (assumed_selected(pvc, name), _rv(seen))
            writes.provision.append(pvc)
        return None if writes.empty() else writes

    def revert(self, writes: PodVolumes) -> None:
        for _pvc, pv in writes.static:
            self.assumed_volumes.pop(str(_meta(pv).get("name")), None)
        for pvc in writes.provision:
            self.assumed_claims.pop(_key(pvc), None)

    # PreBind

    async def bind(self, client: Any, writes: PodVolumes) -> None:
        """Pre-bind the chosen static PVs, then mark the claims to provision with the node;
        an ApiError (409: the PV was taken meanwhile) propagates to the caller."""
        for pvc, pv in writes.static:
            await client.patch(PERSISTENTVOLUMES, None, str(_meta(pv).get("name")), prebind_patch(pv, pvc), "merge")
        for pvc in writes.provision:
            meta = _meta(pvc)
            await client.patch(PERSISTENTVOLUMECLAIMS, meta.get("namespace") or "default", str(meta.get("name")),
                               {"metadata": {"annotations": {ANN_SELECTED_NODE: writes.node}}}, "merge")


def waiting_on_claim(claim: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """A predicate for queued pods that use `claim`."""
    meta = _meta(claim)
    namespace, name = meta.get("namespace") or "default", meta.get("name") or ""

    def match(pod: Mapping[str, Any]) -> bool:
        return ((pod.get("metadata") or {}).get("namespace") or "default") == namespace \
            and name in claim_names_of(pod)
    return match

