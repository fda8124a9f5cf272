"""The PersistentVolume binder's decisions (upstream pkg/controller/volume/persistentvolume,
`syncClaim` and `syncVolume`, plus the expander's part for local-path volumes), as pure
functions of one claim or one volume and the informer state around it.

A plan is an ordered list of writes (the object itself, then its status), and the events
to record before and after them; `pvbinder.PersistentVolumeBinder` carries it out. Each
write holds the whole object as it should be stored, cumulative: a claim's status write
carries the annotations its main write set, so the two compose in either version.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from kybernetes.api.quantity import parse_quantity
from kybernetes.api.storage import (
    ANN_BETA_STORAGE_CLASS,
    ANN_BETA_STORAGE_PROVISIONER,
    ANN_BIND_COMPLETED,
    ANN_BOUND_BY_CONTROLLER,
    ANN_PROVISIONED_BY,
    ANN_SELECTED_NODE,
    ANN_STORAGE_PROVISIONER,
    LOCAL_PATH_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    best_volume_for_claim,
    binding_mode,
    capacity_of,
    claim_class,
    default_class,
    request_of,
    volume_bound_to_claim,
    volume_class,
    volume_mode,
)

Obj = dict[str, Any]
Target = Literal["claim", "volume"]

WAIT_FOR_FIRST_CONSUMER_MESSAGE = "waiting for first consumer to be created before binding"
NO_CLASS_MESSAGE = "no persistent volumes available for this claim and no storage class is set"


@dataclass(frozen=True)
class Write:
    """Store `obj` (the whole object) through `subresource` ("" or "status")."""

    target: Target
    subresource: str
    obj: Obj


@dataclass(frozen=True)
class Event:
    target: Target
    type: str
    reason: str
    message: str


@dataclass
class Plan:
    """What one sync does. `volume` is the PV the writes and volume events are about.
    `enqueue_claim`: a claim key to sync next (a PV saw its claim half-bound).
    `confirm_claim_gone`: the release rests on the claim missing from the cache; the shell
    asks the API server before writing (a claim created moments ago may not be cached)."""

    writes: list[Write] = field(default_factory=list)
    events_before: list[Event] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    volume: Obj | None = None
    enqueue_claim: str | None = None
    confirm_claim_gone: bool = False
    # The PV lookup that made the claim Lost: the shell checks the API server first.
    confirm_volume_gone: str | None = None


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _annotations(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return _meta(obj).get("annotations") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _status(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("status") or {}


def _phase(obj: Mapping[str, Any]) -> str:
    return str(_status(obj).get("phase") or "")


def claim_key(claim: Mapping[str, Any]) -> str:
    meta = _meta(claim)
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


def _with_annotations(obj: Obj, **changes: str | None) -> Obj:
    """`obj` with its metadata copied and annotations changed (None removes one)."""
    out = dict(obj)
    meta = dict(_meta(obj))
    ann = dict(meta.get("annotations") or {})
    for key, value in changes.items():
        if value is None:
            ann.pop(key, None)
        else:
            ann[key] = value
    meta["annotations"] = ann
    out["metadata"] = meta
    return out


def _annotate(obj: Obj, key: str, value: str) -> Obj:
    return _with_annotations(obj, **{key: value})


# -- the volume's side --------------------------------------------------------------------

def volume_phase_write(pv: Obj, phase: str, message: str, now: str) -> Write | None:
    """A status write moving `pv` to `phase` (None when it is there with that message);
    the transition time moves only with the phase, as upstream's status strategy does."""
    status = _status(pv)
    if status.get("phase") == phase and (status.get("message") or "") == message:
        return None
    new_status: Obj = {k: v for k, v in status.items() if k not in ("message", "reason")}
    new_status["phase"] = phase
    if message:
        new_status["message"] = message
    if status.get("phase") != phase or not status.get("lastPhaseTransitionTime"):
        new_status["lastPhaseTransitionTime"] = now
    return Write("volume", "status", {**pv, "status": new_status})


def claim_ref(claim: Mapping[str, Any]) -> Obj:
    """The object reference a bound PV keeps to its claim."""
    meta = _meta(claim)
    return {"kind": "PersistentVolumeClaim", "namespace": meta.get("namespace") or "",
            "name": meta.get("name") or "", "uid": meta.get("uid") or "", "apiVersion": "v1",
            "resourceVersion": meta.get("resourceVersion") or ""}


def _deleter_failure(pv: Mapping[str, Any]) -> tuple[str, str] | None:
    """Why a Released PV with reclaim Delete cannot be deleted here: (reason, message), or None
    when a provisioner outside the control plane owns its deletion (the local-path one is the
    node agent's). Static volumes have no deleter, as with upstream's controller."""
    provisioned_by = str(_annotations(pv).get(ANN_PROVISIONED_BY) or "")
    if provisioned_by and not provisioned_by.startswith("kubernetes.io/"):
        return None
    name = _meta(pv).get("name") or ""
    host_path = _spec(pv).get("hostPath")
    if isinstance(host_path, Mapping) and not str(host_path.get("path") or "").startswith("/tmp/"):
        # Upstream's hostPath deleter refuses anything outside /tmp; it never reaches
        # into a node's disk from the control plane here either.
        return "VolumeFailedDelete", f"host_path deleter only supports /tmp/.+ but received provided {host_path.get('path')}"
    return "VolumeFailedDelete", f'error getting deleter volume plugin for volume "{name}": no deletable volume plugin matched'


def _reclaim(pv: Obj, plan: Plan, now: str) -> None:
    policy = _spec(pv).get("persistentVolumeReclaimPolicy") or "Retain"
    if policy == "Retain":
        return
    if policy == "Recycle":
        failure: tuple[str, str] | None = ("VolumeFailedRecycle", "No recycler plugin found for the volume!")
    else:
        failure = _deleter_failure(pv)
    if failure is None:
        return
    write = volume_phase_write(pv, "Failed", failure[1], now)
    if write is not None:
        plan.writes.append(write)
        plan.events.append(Event("volume", "Warning", failure[0], failure[1]))


def _release(pv: Obj, plan: Plan, now: str) -> None:
    current = pv
    if _phase(pv) not in ("Released", "Failed"):
        write = volume_phase_write(pv, "Released", "", now)
        if write is not None:
            plan.writes.append(write)
            current = write.obj
    _reclaim(current, plan, now)


def plan_volume(pv: Obj, claim_named: Callable[[str, str], Obj | None], now: str) -> Plan:
    """upstream syncVolume: Available while unclaimed (or only pre-bound by name), Bound with
    its claim, Released when the claim is gone (then the reclaim policy: Retain keeps it,
    Delete of a volume no provisioner here owns fails as upstream's does)."""
    plan = Plan(volume=pv)
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, Mapping) or not ref.get("uid"):
        write = volume_phase_write(pv, "Available", "", now)
        if write is not None:
            plan.writes.append(write)
        return plan
    claim = claim_named(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
    if claim is not None and _meta(claim).get("uid") != ref.get("uid"):
        claim = None  # a namesake: the claim this volume was bound to was deleted
    if claim is None:
        plan.confirm_claim_gone = _phase(pv) not in ("Released", "Failed")
        _release(pv, plan, now)
        return plan
    volume_name = _spec(claim).get("volumeName") or ""
    if not volume_name:
        plan.enqueue_claim = claim_key(claim)
        return plan
    if volume_name == _meta(pv).get("name"):
        write = volume_phase_write(pv, "Bound", "", now)
        if write is not None:
            plan.writes.append(write)
        return plan
    # The claim is bound to another volume.
    ann = _annotations(pv)
    if ANN_PROVISIONED_BY in ann and _spec(pv).get("persistentVolumeReclaimPolicy") == "Delete":
        _release(pv, plan, now)
    elif ANN_BOUND_BY_CONTROLLER in ann:
        unbound = _with_annotations(pv, **{ANN_BOUND_BY_CONTROLLER: None})
        unbound["spec"] = {k: v for k, v in _spec(pv).items() if k != "claimRef"}
        plan.writes.append(Write("volume", "", unbound))
        write = volume_phase_write(unbound, "Available", "", now)
        if write is not None:
            plan.writes.append(write)
    return plan


# -- the claim's side ---------------------------------------------------------------------

def _bind(pv: Obj, claim: Obj, plan: Plan, now: str) -> None:
    """upstream bind(): the volume's claimRef, its phase, the claim's volumeName and
    annotations, then the claim's phase, access modes and capacity; only what differs."""
    plan.volume = pv
    volume = pv
    ref = _spec(pv).get("claimRef")
    meta = _meta(claim)
    ref_exact = (isinstance(ref, Mapping) and ref.get("name") == meta.get("name")
                 and ref.get("namespace") == meta.get("namespace") and ref.get("uid") == meta.get("uid"))
    if not ref_exact:
        # A volume only pre-bound by name (by an admin, the scheduler or a provisioner)
        # keeps its owner's mark; one the binder chose is marked as the binder's.
        if not volume_bound_to_claim(pv, claim) and ANN_BOUND_BY_CONTROLLER not in _annotations(pv):
            volume = _annotate(volume, ANN_BOUND_BY_CONTROLLER, "yes")
        volume = {**volume, "spec": {**_spec(volume), "claimRef": claim_ref(claim)}}
        plan.writes.append(Write("volume", "", volume))
    write = volume_phase_write(volume, "Bound", "", now)
    if write is not None:
        plan.writes.append(write)

    new_claim = claim
    pv_name = _meta(pv).get("name") or ""
    if _spec(claim).get("volumeName") != pv_name:
        new_claim = {**new_claim, "spec": {**_spec(new_claim), "volumeName": pv_name}}
        if ANN_BOUND_BY_CONTROLLER not in _annotations(new_claim):
            new_claim = _annotate(new_claim, ANN_BOUND_BY_CONTROLLER, "yes")
    if ANN_BIND_COMPLETED not in _annotations(new_claim):
        new_claim = _annotate(new_claim, ANN_BIND_COMPLETED, "yes")
    if new_claim is not claim:
        plan.writes.append(Write("claim", "", new_claim))
    status = dict(_status(new_claim))
    wanted: Obj = {"phase": "Bound", "accessModes": list(_spec(pv).get("accessModes") or [])}
    capacity = (_spec(pv).get("capacity") or {}).get("storage")
    if capacity is not None:
        wanted["capacity"] = {**(status.get("capacity") or {}), "storage": capacity}
    if any(status.get(k) != v for k, v in wanted.items()):
        plan.writes.append(Write("claim", "status", {**new_claim, "status": {**status, **wanted}}))


def _lost(claim: Obj, plan: Plan, reason: str, message: str) -> None:
    if _phase(claim) == "Lost":
        return
    plan.writes.append(Write("claim", "status", {**claim, "status": {**_status(claim), "phase": "Lost"}}))
    plan.events.append(Event("claim", "Warning", reason, message))


def _pending(claim: Obj, plan: Plan) -> None:
    if _phase(claim) != "Pending":
        plan.writes.append(Write("claim", "status", {**claim, "status": {**_status(claim), "phase": "Pending"}}))


def volume_mismatch(pv: Mapping[str, Any], claim: Mapping[str, Any]) -> str | None:
    """Why a volume the claim names cannot serve it (upstream checkVolumeSatisfyClaim), or None."""
    if capacity_of(pv) < request_of(claim):
        return "requested PV is too small"
    if volume_class(pv) != claim_class(claim):
        return "storageClassName does not match"
    if volume_mode(pv) != volume_mode(claim):
        return "incompatible volumeMode"
    have = set(_spec(pv).get("accessModes") or ())
    if not all(m in have for m in _spec(claim).get("accessModes") or ()):
        return "incompatible accessMode"
    return None


def _provisioner_event(claim: Obj, sc: Mapping[str, Any] | None, class_name: str, plan: Plan) -> Obj:
    """upstream provisionClaim for a provisioner outside the controller: the claim is
    annotated with it and told who is expected to act. Returns the claim as planned."""
    if sc is None:
        plan.events.append(Event("claim", "Warning", "ProvisioningFailed",
                                 f'storageclass.storage.k8s.io "{class_name}" not found'))
        return claim
    provisioner = str(sc.get("provisioner") or "")
    if provisioner.startswith("kubernetes.io/"):
        # No in-tree volume plugins run here (kubernetes.io/no-provisioner among them).
        plan.events.append(Event("claim", "Warning", "ProvisioningFailed",
                                 f"no volume plugin matched name: {provisioner}"))
        return claim
    claim = _provisioner_annotated(claim, provisioner, plan)
    plan.events.append(Event("claim", "Normal", "ExternalProvisioning",
                             f"Waiting for a volume to be created either by the external provisioner "
                             f"'{provisioner}' or manually by the system administrator. If volume creation "
                             "is delayed, please verify that the provisioner is running and correctly registered."))
    return claim


def _provisioner_annotated(claim: Obj, provisioner: str, plan: Plan) -> Obj:
    ann = _annotations(claim)
    if ann.get(ANN_STORAGE_PROVISIONER) == provisioner and ann.get(ANN_BETA_STORAGE_PROVISIONER) == provisioner:
        return claim
    new = _with_annotations(claim, **{ANN_STORAGE_PROVISIONER: provisioner,
                                      ANN_BETA_STORAGE_PROVISIONER: provisioner})
    plan.writes.append(Write("claim", "", new))
    return new


def _wait_event(waiting_pods: Sequence[str]) -> Event:
    """upstream emitEventForUnboundDelayBindingClaim."""
    if not waiting_pods:
        return Event("claim", "Normal", "WaitForFirstConsumer", WAIT_FOR_FIRST_CONSUMER_MESSAGE)
    if len(waiting_pods) == 1:
        return Event("claim", "Normal", "WaitForPodScheduled", f"waiting for pod {waiting_pods[0]} to be scheduled")
    return Event("claim", "Normal", "WaitForPodScheduled",
                 f"waiting for pods {','.join(waiting_pods)} to be scheduled")


def _plan_unbound_without_volume(claim: Obj, volumes: Sequence[Obj], classes: Mapping[str, Obj],
                                 waiting_pods: Sequence[str], plan: Plan, now: str) -> None:
    class_name = claim_class(claim)
    if (_spec(claim).get("storageClassName") is None and ANN_BETA_STORAGE_CLASS not in _annotations(claim)):
        chosen = default_class(classes.values())
        if chosen is not None:
            # Retroactive default class: a claim made before any default existed gets it now.
            plan.writes.append(Write("claim", "", {**claim, "spec": {
                **_spec(claim), "storageClassName": _meta(chosen).get("name") or ""}}))
            return
    sc = classes.get(class_name) if class_name else None
    delay = sc is not None and binding_mode(sc) == WAIT_FOR_FIRST_CONSUMER
    pv = best_volume_for_claim(volumes, claim, prebound_only=delay)
    if pv is not None:
        _bind(pv, claim, plan, now)
        return
    if delay and ANN_SELECTED_NODE not in _annotations(claim):
        provisioner = str((sc or {}).get("provisioner") or "")
        if provisioner and not provisioner.startswith("kubernetes.io/"):
            # Annotated ahead of the node choice, so the provisioner can start as soon as
            # the scheduler names the node (upstream waits for that; the result is the same).
            claim = _provisioner_annotated(claim, provisioner, plan)
        plan.events.append(_wait_event(waiting_pods))
    elif class_name:
        _provisioner_event(claim, sc, class_name, plan)
        return
    else:
        plan.events.append(Event("claim", "Normal", "FailedBinding", NO_CLASS_MESSAGE))
    _pending(claim, plan)


def _plan_expansion(claim: Obj, pv: Obj, classes: Mapping[str, Obj], plan: Plan) -> None:
    """A bound claim asking for more than it has. The local-path provisioner's volumes are
    directories, with nothing to grow: the new size is recorded on the volume and the claim.
    Other volumes wait for a resizer outside the control plane, as upstream's expander says."""
    wanted = request_of(claim)
    have = parse_quantity((_status(claim).get("capacity") or {}).get("storage")) or Decimal(0)
    if wanted <= have:
        return
    sc = classes.get(claim_class(claim))
    if sc is None or sc.get("allowVolumeExpansion") is not True:
        return
    requested = ((_spec(claim).get("resources") or {}).get("requests") or {}).get("storage")
    pv_name = _meta(pv).get("name") or ""
    if _annotations(pv).get(ANN_PROVISIONED_BY) != LOCAL_PATH_PROVISIONER:
        plan.events.append(Event("claim", "Normal", "ExternalExpanding",
                                 "waiting for an external controller to expand this PVC"))
        return
    if capacity_of(pv) < wanted:
        plan.events_before.append(Event("claim", "Normal", "Resizing",
                                        f"External resizer is resizing volume {pv_name}"))
        plan.writes.append(Write("volume", "", {**pv, "spec": {
            **_spec(pv), "capacity": {**(_spec(pv).get("capacity") or {}), "storage": requested}}}))
    status = dict(_status(claim))
    status["capacity"] = {**(status.get("capacity") or {}), "storage": requested}
    status["allocatedResources"] = {**(status.get("allocatedResources") or {}), "storage": requested}
    plan.writes.append(Write("claim", "status", {**claim, "status": status}))
    plan.events.append(Event("claim", "Normal", "VolumeResizeSuccessful", "Resize volume succeeded"))


def plan_claim(claim: Obj, volumes: Sequence[Obj], volume_named: Callable[[str], Obj | None],
               classes: Mapping[str, Obj], waiting_pods: Sequence[str], now: str) -> Plan:
    """upstream syncClaim (syncUnboundClaim / syncBoundClaim) for one claim. `volumes`: every
    PV; `classes`: StorageClasses by name; `waiting_pods`: names of the not yet scheduled
    pods that use the claim (for the WaitForPodScheduled event)."""
    plan = Plan()
    volume_name = str(_spec(claim).get("volumeName") or "")
    if ANN_BIND_COMPLETED not in _annotations(claim):
        if not volume_name:
            _plan_unbound_without_volume(claim, volumes, classes, waiting_pods, plan, now)
            return plan
        pv = volume_named(volume_name)
        if pv is None:
            _pending(claim, plan)  # the volume it asks for may be created later
            return plan
        plan.volume = pv
        ref = _spec(pv).get("claimRef")
        if not isinstance(ref, Mapping):
            why = volume_mismatch(pv, claim)
            if why is not None:
                plan.events.append(Event("claim", "Warning", "VolumeMismatch",
                                         f'Cannot bind to requested volume "{volume_name}": {why}'))
                _pending(claim, plan)
                return plan
            _bind(pv, claim, plan, now)
        elif volume_bound_to_claim(pv, claim):
            _bind(pv, claim, plan, now)
        else:
            _pending(claim, plan)  # the volume is someone else's for now
        return plan
    if not volume_name:
        _lost(claim, plan, "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")
        return plan
    pv = volume_named(volume_name)
    if pv is None:
        plan.confirm_volume_gone = volume_name
        _lost(claim, plan, "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
        return plan
    ref = _spec(pv).get("claimRef")
    if not isinstance(ref, Mapping) or ref.get("uid") == _meta(claim).get("uid"):
        _bind(pv, claim, plan, now)
        if not plan.writes:
            _plan_expansion(claim, pv, classes, plan)
        return plan
    _lost(claim, plan, "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")
    return plan


def pods_waiting_for(claim: Mapping[str, Any], pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """Names of the pods using the claim that no node was chosen for yet (sorted)."""
    name = _meta(claim).get("name")
    out = []
    for pod in pods:
        if _spec(pod).get("nodeName") or _meta(pod).get("deletionTimestamp"):
            continue
        if any((v.get("persistentVolumeClaim") or {}).get("claimName") == name for v in _spec(pod).get("volumes") or ()):
            out.append(str(_meta(pod).get("name") or ""))
    return sorted(out)


def merged_for_write(write: Write, latest_rv: str | None) -> Obj:
    """The body of `write`, on the resourceVersion an earlier write of the same object returned."""
    obj = copy.copy(write.obj)
    if latest_rv:
        obj["metadata"] = {**_meta(obj), "resourceVersion": latest_rv}
    return obj
