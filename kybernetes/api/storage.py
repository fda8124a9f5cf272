"""Persistent storage rules shared by the API kinds, the PV binder, the scheduler, the agent's
local-path provisioner and the StatefulSet controller: the well-known names (annotations,
finalizers, the built-in class) and the pure decisions on which volume may serve which claim.

Kubernetes' equivalents live in component-helpers/storage/volume and the PV controller's
index (FindMatchingVolume); these functions follow their rules on plain dict objects."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from kybernetes.api.pods import compile_node_term, node_term_matches
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.selectors import label_selector_matcher

Obj = dict[str, Any]

LOCAL_PATH_PROVISIONER = "kybernetes.io/local-path"
LOCAL_PATH_CLASS = "local-path"

ANN_SELECTED_NODE = "volume.kubernetes.io/selected-node"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_BETA_DEFAULT_CLASS = "storageclass.beta.kubernetes.io/is-default-class"
ANN_BETA_STORAGE_CLASS = "volume.beta.kubernetes.io/storage-class"

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"

IMMEDIATE = "Immediate"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    ann = _meta(obj).get("annotations")
    return ann if isinstance(ann, Mapping) else {}


def claim_class(pvc: Mapping[str, Any]) -> str:
    """The class a claim asks for: the beta annotation when present (it predates the field),
    else spec.storageClassName, else "" (no class: only class-less PVs serve it)."""
    annotated = _annotations(pvc).get(ANN_BETA_STORAGE_CLASS)
    if annotated is not None:
        return str(annotated)
    return str(_spec(pvc).get("storageClassName") or "")


def volume_class(pv: Mapping[str, Any]) -> str:
    """The class a volume belongs to, by the same precedence as `claim_class`."""
    annotated = _annotations(pv).get(ANN_BETA_STORAGE_CLASS)
    if annotated is not None:
        return str(annotated)
    return str(_spec(pv).get("storageClassName") or "")


def is_default_class(sc: Mapping[str, Any]) -> bool:
    """Whether a StorageClass carries the default-class annotation (GA or beta) set to "true"."""
    ann = _annotations(sc)
    return "true" in (ann.get(ANN_DEFAULT_CLASS), ann.get(ANN_BETA_DEFAULT_CLASS))


def default_class(classes: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The default StorageClass, as upstream's admission picks it when several are marked:
    the newest by creationTimestamp, then the first by name."""
    defaults = sorted((sc for sc in classes if is_default_class(sc)),
                      key=lambda sc: str(_meta(sc).get("name") or ""))
    if not defaults:
        return None
    # max() keeps the first of equals, so the name order decides ties.
    return max(defaults, key=lambda sc: str(_meta(sc).get("creationTimestamp") or ""))


def binding_mode(sc: Mapping[str, Any] | None) -> str:
    """A class's volumeBindingMode; Immediate when unset or the class is unknown."""
    if not sc:
        return IMMEDIATE
    return str(sc.get("volumeBindingMode") or IMMEDIATE)


def request_of(pvc: Mapping[str, Any]) -> Decimal:
    """The storage a claim requests (0 when missing or malformed)."""
    resources = _spec(pvc).get("resources")
    requests = resources.get("requests") if isinstance(resources, Mapping) else None
    value = requests.get("storage") if isinstance(requests, Mapping) else None
    return parse_quantity(value) or Decimal(0)


def capacity_of(pv: Mapping[str, Any]) -> Decimal:
    """A volume's storage capacity (0 when missing or malformed)."""
    capacity = _spec(pv).get("capacity")
    value = capacity.get("storage") if isinstance(capacity, Mapping) else None
    return parse_quantity(value) or Decimal(0)


def volume_mode(obj: Mapping[str, Any]) -> str:
    """A claim's or volume's volumeMode, Filesystem when unset."""
    return str(_spec(obj).get("volumeMode") or "Filesystem")


def volume_bound_to_claim(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    """The PV's claimRef names this claim (and, when the ref carries a uid, this very claim)."""
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, Mapping):
        return False
    meta = _meta(pvc)
    if ref.get("name") != meta.get("name") or ref.get("namespace") != meta.get("namespace"):
        return False
    return not ref.get("uid") or ref.get("uid") == meta.get("uid")


def _access_modes_cover(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    have = set(_spec(pv).get("accessModes") or ())
    return all(mode in have for mode in _spec(pvc).get("accessModes") or ())


def _selector_matches(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    sel = _spec(pvc).get("selector")
    if sel is None:
        return True
    matcher = label_selector_matcher(sel)
    labels = _meta(pv).get("labels")
    return matcher is not None and matcher(labels if isinstance(labels, Mapping) else {})


def _volume_phase(pv: Mapping[str, Any]) -> str:
    status = pv.get("status")
    return str(status.get("phase") or "") if isinstance(status, Mapping) else ""


def volume_matches_claim(pv: Mapping[str, Any], pvc: Mapping[str, Any]) -> bool:
    """Whether the PV can serve the claim, node aside: capacity covers the request, volume
    modes agree, access modes cover the claim's, the PV is not being deleted, and either it is
    pre-bound to this claim (then class, selector and phase do not matter, as upstream) or it
    is Available, unclaimed, of the claim's class and selected by the claim's selector."""
    if _meta(pv).get("deletionTimestamp"):
        return False
    if capacity_of(pv) < request_of(pvc) or volume_mode(pv) != volume_mode(pvc):
        return False
    if not _access_modes_cover(pv, pvc):
        return False
    if volume_bound_to_claim(pv, pvc):
        return True
    if _spec(pv).get("claimRef"):
        return False
    return (_volume_phase(pv) == "Available" and volume_class(pv) == claim_class(pvc)
            and _selector_matches(pv, pvc))


def volume_node_affinity_matches(pv: Mapping[str, Any], node: Mapping[str, Any]) -> bool:
    """The PV's spec.nodeAffinity.required holds on the Node (any term; a PV without required
    affinity is reachable from every node)."""
    affinity = _spec(pv).get("nodeAffinity")
    required = affinity.get("required") if isinstance(affinity, Mapping) else None
    if not isinstance(required, Mapping):
        return True
    meta = _meta(node)
    name = str(meta.get("name") or "")
    labels = meta.get("labels") if isinstance(meta.get("labels"), Mapping) else {}
    return any(node_term_matches(compile_node_term(term), name, labels)
               for term in required.get("nodeSelectorTerms") or () if isinstance(term, Mapping))


def best_volume_for_claim(pvs: Iterable[Mapping[str, Any]], pvc: Mapping[str, Any],
                          node: Mapping[str, Any] | None = None, *,
                          prebound_only: bool = False) -> Obj | None:
    """The PV to bind the claim to: one pre-bound to it wins outright (None if it cannot reach
    `node`); otherwise the smallest matching Available PV. With `node`, the PV's node affinity
    must allow that node. `prebound_only` is the binder's view of a WaitForFirstConsumer claim
    before a node is chosen: only a PV already pre-bound to it may be taken."""
    best: Obj | None = None
    best_size = Decimal(0)
    for pv in pvs:
        if not volume_matches_claim(pv, pvc):
            continue
        reachable = node is None or volume_node_affinity_matches(pv, node)
        if volume_bound_to_claim(pv, pvc):
            return pv if reachable else None  # type: ignore[return-value]
        if prebound_only or not reachable:
            continue
        size = capacity_of(pv)
        if best is None or size < best_size:
            best, best_size = pv, size  # type: ignore[assignment]
    return best


def claim_is_bound(pvc: Mapping[str, Any]) -> bool:
    """The claim is Bound to a named volume."""
    status = pvc.get("status")
    phase = status.get("phase") if isinstance(status, Mapping) else None
    return phase == "Bound" and bool(_spec(pvc).get("volumeName"))


def local_path_storage_class() -> Obj:
    """The built-in default StorageClass the API server creates at start when absent: volumes
    are directories the node agent makes on the node a pod was scheduled to."""
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": LOCAL_PATH_CLASS, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": WAIT_FOR_FIRST_CONSUMER,
        "allowVolumeExpansion": True,
    }
