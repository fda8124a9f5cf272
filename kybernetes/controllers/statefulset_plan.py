"""The StatefulSet controller's decisions, pure, as Kubernetes' pkg/controller/statefulset
makes them: the pods' stable identities (`<set>-<ordinal>` from `spec.ordinals.start`,
hostname and subdomain, the pod-name and pod-index labels), their claims from
`volumeClaimTemplates` (`<template>-<set>-<ordinal>`, created before the pod, never
replaced), the owner references a claim carries for `persistentVolumeClaimRetentionPolicy`,
which pods to create, fix and delete in one sync (OrderedReady: one at a time, in ordinal
order, each only once its predecessors are Running, Ready and available, scale down from
the highest ordinal; Parallel: all at once), the RollingUpdate from the highest ordinal
down to `partition` within `maxUnavailable` (OnDelete: never), the revision history to
prune and the status. `statefulset.py` is the shell that feeds informer snapshots in and
carries the plans out through the API.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api.pods import pod_is_ready, pod_is_terminating
from kybernetes.controllers.deployment_plan import scaled_value
from kybernetes.controllers.podutil import compile_selector, controller_ref, owner_reference, pod_is_available
from kybernetes.controllers.podutil import next_available_in as pods_available_in
from kybernetes.controllers.revisions import HASH_LABEL, revision_matches, revision_number, revision_template

Obj = dict[str, Any]

KIND = "StatefulSet"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"
RETAIN = "Retain"
DELETE = "Delete"
# How soon to look again at a pod waiting for a claim that is going away.
CLAIM_WAIT = 1.0

_MEMBER = re.compile(r"^(.*)-([0-9]+)$")


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _uid(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("uid") or ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _deep(value: Any) -> Any:
    # A JSON round trip is the cheapest deep copy of plain API data.
    return orjson.loads(orjson.dumps(value))


# -- identity ---------------------------------------------------------------------------------


def parent_and_ordinal(name: str) -> tuple[str, int]:
    """The set a pod name belongs to and its ordinal (getParentNameAndOrdinal); ("", -1)
    for a name no StatefulSet would give."""
    m = _MEMBER.match(name)
    if m is None:
        return "", -1
    ordinal = int(m.group(2))
    # Go parses the ordinal as an int32.
    return m.group(1), ordinal if ordinal < 2**31 else -1


def ordinal_of(pod: Mapping[str, Any]) -> int:
    return parent_and_ordinal(_name(pod))[1]


def is_member(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    return parent_and_ordinal(_name(pod))[0] == _name(sts)


def start_ordinal(sts: Mapping[str, Any]) -> int:
    return int((_spec(sts).get("ordinals") or {}).get("start") or 0)


def replicas_of(sts: Mapping[str, Any]) -> int:
    value = _spec(sts).get("replicas")
    return 1 if value is None else int(value)


def in_range(sts: Mapping[str, Any], ordinal: int) -> bool:
    start = start_ordinal(sts)
    return start <= ordinal < start + replicas_of(sts)


def pod_name(sts: Mapping[str, Any], ordinal: int) -> str:
    return f"{_name(sts)}-{ordinal}"


def claim_name(template_name: str, sts_name: str, ordinal: int) -> str:
    return f"{template_name}-{sts_name}-{ordinal}"


def pod_revision(pod: Mapping[str, Any]) -> str:
    return _labels(pod).get(HASH_LABEL) or ""


def retention(sts: Mapping[str, Any]) -> tuple[str, str]:
    """(whenDeleted, whenScaled); anything but Delete keeps claims, as upstream treats an
    unknown policy."""
    policy = _spec(sts).get("persistentVolumeClaimRetentionPolicy") or {}
    return (DELETE if policy.get("whenDeleted") == DELETE else RETAIN,
            DELETE if policy.get("whenScaled") == DELETE else RETAIN)


def with_template(sts: Mapping[str, Any], template: Mapping[str, Any] | None) -> Obj:
    """`sts` as it was at a revision (ApplyRevision): its own spec with that template."""
    if template is None:
        return dict(sts)
    return {**sts, "spec": {**_spec(sts), "template": template}}


def claims_for(sts: Mapping[str, Any], ordinal: int) -> dict[str, Obj]:
    """The claims of the pod at `ordinal`, by template name (getPersistentVolumeClaims):
    each template named `<template>-<set>-<ordinal>`, labelled with the set's matchLabels."""
    match_labels = (_spec(sts).get("selector") or {}).get("matchLabels") or {}
    out: dict[str, Obj] = {}
    for template in _spec(sts).get("volumeClaimTemplates") or ():
        tname = _name(template)
        if not tname:
            continue
        claim = _deep(template)
        claim.pop("status", None)
        meta = {k: v for k, v in (claim.get("metadata") or {}).items()
                if k not in ("creationTimestamp", "resourceVersion", "uid", "generateName")}
        meta["name"] = claim_name(tname, _name(sts), ordinal)
        meta["namespace"] = _meta(sts).get("namespace", "")
        meta["labels"] = {**(meta.get("labels") or {}), **match_labels}
        claim["metadata"] = meta
        claim["apiVersion"] = "v1"
        claim["kind"] = "PersistentVolumeClaim"
        out[tname] = claim
    return out


def new_pod(sts: Mapping[str, Any], ordinal: int, revision: str) -> Obj:
    """The pod for `ordinal` from `sts`'s template (newStatefulSetPod): its stable name,
    hostname and subdomain, the identity and revision labels, the claim volumes in place
    of template volumes of the same name, and the controller reference."""
    meta = _meta(sts)
    template = _spec(sts).get("template") or {}
    tmeta = template.get("metadata") or {}
    name = pod_name(sts, ordinal)
    spec = _deep(template.get("spec") or {})
    spec["hostname"] = name
    if _spec(sts).get("serviceName"):
        spec["subdomain"] = _spec(sts)["serviceName"]
    claims = claims_for(sts, ordinal)
    if claims:
        volumes = [{"name": t, "persistentVolumeClaim": {"claimName": _name(c)}} for t, c in claims.items()]
        volumes += [v for v in spec.get("volumes") or () if v.get("name") not in claims]
        spec["volumes"] = volumes
    labels = {**(tmeta.get("labels") or {}), POD_NAME_LABEL: name, POD_INDEX_LABEL: str(ordinal)}
    if revision:
        labels[HASH_LABEL] = revision
    pod_meta: Obj = {"name": name, "generateName": f"{meta.get('name', '')}-",
                     "namespace": meta.get("namespace", ""), "labels": labels,
                     "ownerReferences": [owner_reference(sts, "apps/v1", KIND)]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def versioned_pod(current_set: Mapping[str, Any], update_set: Mapping[str, Any], current: str, update: str,
                  ordinal: int) -> Obj:
    """The pod to create at `ordinal` (newVersionedStatefulSetPod): below the partition a
    rolling update has not reached, the current revision; everywhere else (and always with
    OnDelete) the update revision."""
    strategy = _spec(current_set).get("updateStrategy") or {}
    rolling = strategy.get("rollingUpdate")
    start = start_ordinal(current_set)
    if strategy.get("type", "RollingUpdate") == "RollingUpdate":
        if rolling is None:
            below = ordinal < start + int((current_set.get("status") or {}).get("currentReplicas") or 0)
        else:
            below = ordinal < start + int(rolling.get("partition") or 0)
        if below:
            return new_pod(current_set, ordinal, current)
    return new_pod(update_set, ordinal, update)


def identity_labels(sts: Mapping[str, Any], pod: Mapping[str, Any]) -> dict[str, str] | None:
    """The identity labels a member pod lacks (updateIdentity), or None when it has them."""
    ordinal = ordinal_of(pod)
    want = {POD_NAME_LABEL: _name(pod), POD_INDEX_LABEL: str(ordinal)}
    labels = _labels(pod)
    missing = {k: v for k, v in want.items() if labels.get(k) != v}
    return missing or None


# -- claims and the retention policy ----------------------------------------------------------


def _ref_names(ref: Mapping[str, Any], api_version: str, kind: str, name: str) -> bool:
    return ref.get("apiVersion") == api_version and ref.get("kind") == kind and ref.get("name") == name


def _refs(claim: Mapping[str, Any]) -> list[Obj]:
    return [dict(r) for r in _meta(claim).get("ownerReferences") or ()]


def _has_ref(claim: Mapping[str, Any], uid: str) -> bool:
    return bool(uid) and any(r.get("uid") == uid for r in _refs(claim))


def _stale_ref(claim: Mapping[str, Any], api_version: str, kind: str, name: str, uid: str) -> bool:
    for ref in _refs(claim):
        if _ref_names(ref, api_version, kind, name):
            return ref.get("uid") != uid
    return False


def _unexpected_controller(claim: Mapping[str, Any], sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    if retention(sts) == (RETAIN, RETAIN):
        # Under Retain another controller may well manage the claim.
        return False
    for ref in _refs(claim):
        if _ref_names(ref, "apps/v1", KIND, _name(sts)):
            if ref.get("uid") != _uid(sts):
                return True
            continue
        if _ref_names(ref, "v1", "Pod", _name(pod)):
            if ref.get("uid") != _uid(pod):
                return True
            continue
        if ref.get("controller"):
            return True
    return False


def claim_owner_up_to_date(claim: Mapping[str, Any], sts: Mapping[str, Any], pod: Mapping[str, Any]) -> bool:
    """Whether a claim's owner references fit the retention policy (isClaimOwnerUpToDate):
    Retain/Retain none, whenDeleted Delete the set, whenScaled Delete the pod once it is
    scaled down (the set while it is not). Claims of an earlier set or pod, or controlled by
    someone else, are left alone."""
    if _stale_ref(claim, "apps/v1", KIND, _name(sts), _uid(sts)) or \
            _stale_ref(claim, "v1", "Pod", _name(pod), _uid(pod)):
        return True
    has_set, has_pod = _has_ref(claim, _uid(sts)), _has_ref(claim, _uid(pod))
    if _unexpected_controller(claim, sts, pod):
        return not (has_set or has_pod)
    if any(r.get("uid") in (_uid(sts), _uid(pod)) and not r.get("controller") for r in _refs(claim)):
        return False
    when_deleted, when_scaled = retention(sts)
    scaled_down = not in_range(sts, ordinal_of(pod))
    if when_scaled == RETAIN:
        return has_set == (when_deleted == DELETE) and not has_pod
    if when_deleted == RETAIN:
        return not has_set and has_pod == scaled_down
    return has_set != scaled_down and has_pod == scaled_down


def claim_owner_refs(claim: Mapping[str, Any], sts: Mapping[str, Any], pod: Mapping[str, Any]) -> list[Obj]:
    """The claim's owner references under the retention policy
    (updateClaimOwnerRefForSetAndPod): ours scrubbed, then the set and/or the pod added as
    controller, unless someone else controls the claim."""
    unexpected = _unexpected_controller(claim, sts, pod)
    refs = [r for r in _refs(claim)
            if not _ref_names(r, "apps/v1", KIND, _name(sts)) and not _ref_names(r, "v1", "Pod", _name(pod))]
    if unexpected:
        return refs
    when_deleted, when_scaled = retention(sts)
    scaled_down = not in_range(sts, ordinal_of(pod))
    if when_scaled == DELETE and scaled_down:
        refs.append(owner_reference(pod, "v1", "Pod"))
    elif when_deleted == DELETE:
        refs.append(owner_reference(sts, "apps/v1", KIND))
    return refs


def claim_is_stale(claim: Mapping[str, Any] | None, sts: Mapping[str, Any], name: str) -> bool:
    """Whether the claim a new pod `name` would use still belongs to an earlier pod of that
    name, which scale down handed it to for deletion (PodClaimIsStale): wait for it to go."""
    if claim is None or retention(sts)[1] != DELETE:
        return False
    return any(_ref_names(r, "v1", "Pod", name) for r in _refs(claim))


# -- pods of a set ------------------------------------------------------------------------------


@dataclass
class Claim:
    """The pods a StatefulSet controls (after adoption), and ownership changes to make."""

    pods: list[Obj] = field(default_factory=list)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)


def claim_pods(sts: Mapping[str, Any], pods: Iterable[Obj]) -> Claim:
    """Pods `sts` controls, and orphans it adopts: its selector matches them and their name
    makes them members (getPodsForStatefulSet). Controlled pods it no longer selects are
    released."""
    uid = _uid(sts)
    namespace = _meta(sts).get("namespace")
    selector = compile_selector(_spec(sts).get("selector"))
    deleting = bool(_meta(sts).get("deletionTimestamp"))
    out = Claim()
    for pod in pods:
        if namespace is not None and _meta(pod).get("namespace") != namespace:
            continue
        ref = controller_ref(pod)
        if ref is not None and ref.get("uid") != uid:
            continue
        matches = selector.matches(_labels(pod)) and is_member(sts, pod)
        if ref is None:
            if not matches or deleting or pod_is_terminating(pod):
                continue
            out.adopt.append(pod)
        elif not matches:
            if not deleting and not pod_is_terminating(pod):
                out.release.append(pod)
            continue
        out.pods.append(pod)
    return out


def running_and_ready(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and pod_is_ready(pod)


def unavailable(pod: Mapping[str, Any] | None, min_ready: int, now: dt.datetime) -> bool:
    return pod is None or pod_is_terminating(pod) or not pod_is_available(pod, min_ready, now)


# -- one sync ---------------------------------------------------------------------------------


@dataclass
class Create:
    """A pod to create, and its claims that do not exist yet (created first)."""

    pod: Obj
    claims: list[Obj] = field(default_factory=list)


@dataclass
class Plan:
    """What one sync of a StatefulSet does once its revisions are in place."""

    status: Obj
    create: list[Create] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    relabel: list[tuple[Obj, dict[str, str]]] = field(default_factory=list)
    claims: list[Obj] = field(default_factory=list)  # missing claims of pods that exist
    claim_refs: list[tuple[Obj, list[Obj]]] = field(default_factory=list)
    requeue_after: float | None = None

    def wait(self, seconds: float) -> None:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def statefulset_status(sts: Mapping[str, Any], pods: Iterable[Obj], current: str, update: str,
                       collision_count: int, now: dt.datetime) -> Obj:
    """The status (updateStatus + completeRollingUpdate): counts over the member pods;
    once a rolling update has every replica updated and ready, the update revision becomes
    the current one. Zero counters beyond replicas and availableReplicas are left out, as
    the real API writes them."""
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    replicas = ready = available = current_n = updated = 0
    for pod in pods:
        replicas += 1
        if running_and_ready(pod):
            ready += 1
            if pod_is_available(pod, min_ready, now):
                available += 1
        if not pod_is_terminating(pod):
            revision = pod_revision(pod)
            current_n += revision == current
            updated += revision == update
    strategy = (_spec(sts).get("updateStrategy") or {}).get("type", "RollingUpdate")
    want = replicas_of(sts)
    if strategy == "RollingUpdate" and updated == want and ready == want and replicas == want:
        current_n, current = updated, update
    status: Obj = {"observedGeneration": int(_meta(sts).get("generation") or 0), "replicas": replicas}
    for key, value in (("readyReplicas", ready), ("currentReplicas", current_n), ("updatedReplicas", updated)):
        if value:
            status[key] = value
    if current:
        status["currentRevision"] = current
    if update:
        status["updateRevision"] = update
    status["collisionCount"] = collision_count
    status["availableReplicas"] = available
    if not status["observedGeneration"]:
        del status["observedGeneration"]
    conditions = (sts.get("status") or {}).get("conditions")
    if conditions is not None:
        status["conditions"] = conditions
    return status


_STATUS_KEYS = ("observedGeneration", "replicas", "readyReplicas", "currentReplicas", "updatedReplicas",
                "currentRevision", "updateRevision", "collisionCount", "availableReplicas")


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    old = old or {}
    return any(old.get(k) != new.get(k) for k in _STATUS_KEYS)


def max_unavailable(sts: Mapping[str, Any]) -> int:
    """maxUnavailable of the rolling update against the replicas, percentages rounded down,
    at least one (getStatefulSetMaxUnavailable)."""
    rolling = (_spec(sts).get("updateStrategy") or {}).get("rollingUpdate") or {}
    return max(scaled_value(rolling.get("maxUnavailable"), replicas_of(sts), False, default="1"), 1)


def plan_statefulset(sts: Mapping[str, Any], pods: Iterable[Obj], get_claim: Callable[[str], Obj | None],
                     current_rev: Mapping[str, Any], update_rev: Mapping[str, Any], now: dt.datetime,
                     collision_count: int = 0) -> Plan:
    """updateStatefulSet: create the missing replicas, recreate failed ones, fix identities
    and claim ownership, delete the condemned ones beyond the range, then roll the update.
    OrderedReady stops at the first pod that is not yet created, Running, Ready and
    available; Parallel goes on. `pods` are the set's own (see claim_pods)."""
    current_name, update_name = _name(current_rev), _name(update_rev)
    current_set = with_template(sts, revision_template(current_rev))
    update_set = with_template(sts, revision_template(update_rev))
    count = replicas_of(sts)
    start = start_ordinal(sts)
    min_ready = int(_spec(sts).get("minReadySeconds") or 0)
    replicas: list[Obj | None] = [None] * count
    condemned: list[Obj] = []
    for pod in pods:
        ordinal = ordinal_of(pod)
        if start <= ordinal < start + count:
            replicas[ordinal - start] = pod
        elif ordinal >= 0:
            condemned.append(pod)
    condemned.sort(key=ordinal_of, reverse=True)
    members = [p for p in replicas if p is not None] + condemned
    plan = Plan(statefulset_status(sts, members, current_name, update_name, collision_count, now))
    wait = pods_available_in(members, min_ready, now)
    if wait is not None:
        plan.wait(wait)
    if _meta(sts).get("deletionTimestamp"):
        return plan
    monotonic = _spec(sts).get("podManagementPolicy") != "Parallel"
    first_unavailable: Obj | None = None
    for pod in [*replicas, *reversed(condemned)]:
        if pod is not None and unavailable(pod, min_ready, now):
            first_unavailable = pod
            break

    def fix_claims(pod: Obj, ordinal: int) -> None:
        for claim in claims_for(update_set, ordinal).values():
            existing = get_claim(_name(claim))
            if existing is not None and not claim_owner_up_to_date(existing, update_set, pod):
                plan.claim_refs.append((existing, claim_owner_refs(existing, update_set, pod)))

    for i, pod in enumerate(replicas):
        ordinal = start + i
        if pod is None:
            new = versioned_pod(current_set, update_set, current_name, update_name, ordinal)
            missing: list[Obj] = []
            blocked = False
            for claim in claims_for(sts, ordinal).values():
                existing = get_claim(_name(claim))
                if existing is None:
                    claim["metadata"]["ownerReferences"] = claim_owner_refs(claim, sts, new)
                    if not claim["metadata"]["ownerReferences"]:
                        del claim["metadata"]["ownerReferences"]
                    missing.append(claim)
                elif _meta(existing).get("deletionTimestamp") or claim_is_stale(existing, sts, _name(new)):
                    blocked = True
            if blocked:
                plan.wait(CLAIM_WAIT)
                if monotonic:
                    return plan
                continue
            plan.create.append(Create(new, missing))
            if monotonic:
                return plan
            continue
        phase = (pod.get("status") or {}).get("phase")
        if phase in ("Failed", "Succeeded"):
            # Recreated with the same name once this one is gone.
            if not pod_is_terminating(pod):
                plan.delete.append(pod)
            if monotonic:
                return plan
            continue
        if phase == "Pending":
            plan.claims.extend(c for c in claims_for(sts, ordinal).values() if get_claim(_name(c)) is None)
        if monotonic and (pod_is_terminating(pod) or not running_and_ready(pod)
                          or not pod_is_available(pod, min_ready, now)):
            return plan
        labels = identity_labels(sts, pod)
        if labels is not None:
            plan.relabel.append((pod, labels))
        fix_claims(pod, ordinal)
    for pod in condemned:
        fix_claims(pod, ordinal_of(pod))
    for pod in condemned:
        if pod_is_terminating(pod):
            if monotonic:
                return plan
            continue
        if monotonic and pod is not first_unavailable and (not running_and_ready(pod)
                                                          or not pod_is_available(pod, min_ready, now)):
            return plan
        plan.delete.append(pod)
        if monotonic:
            return plan
    strategy = _spec(sts).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return plan
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    budget = max_unavailable(sts) - sum(unavailable(p, min_ready, now) for p in replicas)
    deleting = {id(p) for p in plan.delete}
    for target in range(count - 1, partition - 1, -1):
        if budget <= 0:
            break
        pod = replicas[target]
        if pod is not None and pod_revision(pod) != update_name and not pod_is_terminating(pod) \
                and id(pod) not in deleting:
            plan.delete.append(pod)
            budget -= 1
    return plan


def revisions_to_prune(sts: Mapping[str, Any], revisions: Iterable[Obj], live: Iterable[str]) -> list[Obj]:
    """Revisions beyond revisionHistoryLimit, oldest first, never the current or update
    revision nor one a pod still runs (truncateHistory); `live` names those."""
    keep = {*live}
    history = sorted((r for r in revisions if _name(r) not in keep), key=lambda r: (revision_number(r), _name(r)))
    limit = _spec(sts).get("revisionHistoryLimit")
    limit = 10 if limit is None else int(limit)
    if limit < 0 or len(history) <= limit:
        return []
    return history[:len(history) - limit]


def update_revision(sts: Mapping[str, Any], revisions: Iterable[Obj]) -> tuple[Obj | None, int | None]:
    """The revision holding the set's template and the number it must be given
    (getStatefulSetRevisions): none when no revision holds it (the caller creates one);
    renumbered past the others when an equal one is not the latest (a rollback)."""
    ordered = sorted(revisions, key=lambda r: (revision_number(r), _name(r)))
    equal = [r for r in ordered if revision_matches(sts, r)]
    if not equal:
        return None, None
    latest = ordered[-1]
    if equal[-1] is latest:
        return latest, None
    return equal[-1], revision_number(latest) + 1


def current_revision(sts: Mapping[str, Any], revisions: Iterable[Obj], update: Obj) -> Obj:
    """The revision named by status.currentRevision, or the update revision when there is
    none (a new set's history starts at its first revision)."""
    wanted = (sts.get("status") or {}).get("currentRevision")
    for rev in revisions:
        if wanted and _name(rev) == wanted:
            return rev
    return update
