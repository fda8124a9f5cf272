"""The DaemonSet controller's decisions, pure: which nodes should run a daemon pod, the
pod to create for a node, which pods to create and delete (one per eligible node, failed
ones replaced with back-off, RollingUpdate at maxUnavailable / maxSurge, OnDelete), the
ControllerRevision history and the status, as Kubernetes' pkg/controller/daemonset
decides them. `daemonset.py` is the shell that feeds informer snapshots in and carries
the plans out through the API.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api.kinds.workloads import TEMPLATE_GENERATION
from kybernetes.api.pods import (
    RequiredNodeAffinity,
    Taint,
    Toleration,
    pod_is_ready,
    pod_is_terminal,
    pod_is_terminating,
    tolerated,
    toleration_matches,
)
from kybernetes.controllers import revisions
from kybernetes.controllers.deployment_plan import scaled_value
from kybernetes.controllers.podutil import (
    compile_selector,
    controller_ref,
    owner_reference,
    parse_time,
    pod_is_available,
)
from kybernetes.controllers.podutil import next_available_in as pods_available_in
from kybernetes.controllers.revisions import HASH_LABEL, History, current_hash, revision_number
from kybernetes.controllers.revisions import revision_matches as revision_matches

Obj = dict[str, Any]

GENERATION_LABEL = "pod-template-generation"
# Kubernetes' cap on creations or deletions of one DaemonSet in one sync.
BURST_REPLICAS = 250
BACKOFF_INITIAL = 1.0
BACKOFF_MAX = 15 * 60.0

# The tolerations every daemon pod gets (AddOrUpdateDaemonPodTolerations): a daemon keeps
# running through node trouble and ignores cordoning. NoExecute ones without seconds.
DAEMON_TOLERATIONS: tuple[Obj, ...] = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)
HOST_NETWORK_TOLERATION: Obj = {"key": "node.kubernetes.io/network-unavailable", "operator": "Exists",
                                "effect": "NoSchedule"}


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _spec(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("spec") or {}


def _name(obj: Mapping[str, Any]) -> str:
    return _meta(obj).get("name") or ""


def _labels(obj: Mapping[str, Any]) -> Mapping[str, str]:
    return _meta(obj).get("labels") or {}


def _deep(value: Any) -> Any:
    # A JSON round trip is the cheapest deep copy of plain API data.
    return orjson.loads(orjson.dumps(value))


# -- eligibility --------------------------------------------------------------------------


def _same_toleration(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    # Kubernetes' MatchToleration: tolerationSeconds does not take part.
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("key", "operator", "value", "effect"))


def with_daemon_tolerations(pod_spec: Mapping[str, Any]) -> list[Obj]:
    """The pod spec's tolerations with the daemon ones added, replacing a user's toleration
    of the same key, operator, value and effect (its seconds, say) as Kubernetes does."""
    tolerations = [dict(t) for t in pod_spec.get("tolerations") or ()]
    wanted = list(DAEMON_TOLERATIONS)
    if pod_spec.get("hostNetwork"):
        wanted.append(HOST_NETWORK_TOLERATION)
    for tol in wanted:
        for i, existing in enumerate(tolerations):
            if _same_toleration(existing, tol):
                tolerations[i] = dict(tol)
                break
        else:
            tolerations.append(dict(tol))
    return tolerations


@dataclass(frozen=True)
class Eligibility:
    """A DaemonSet's rules for nodes, parsed once per sync."""

    pod_spec: Mapping[str, Any]
    tolerations: tuple[Toleration, ...]
    node_affinity: RequiredNodeAffinity

    @classmethod
    def of(cls, ds: Mapping[str, Any]) -> Eligibility:
        pod_spec = (_spec(ds).get("template") or {}).get("spec") or {}
        return cls(pod_spec, tuple(Toleration.of(t) for t in with_daemon_tolerations(pod_spec)),
                   RequiredNodeAffinity.of(pod_spec))

    def check(self, node: Mapping[str, Any]) -> tuple[bool, bool]:
        """(should run, should continue running) on `node` (NodeShouldRunDaemonPod): a
        pinned nodeName, the nodeSelector and required node affinity decide both; an
        untolerated NoSchedule taint stops new pods, an untolerated NoExecute one evicts."""
        wanted = self.pod_spec.get("nodeName")
        if wanted and wanted != _name(node):
            return False, False
        if not self.node_affinity.fits(node):
            return False, False
        continue_running = True
        fits_taints = True
        for raw in _spec(node).get("taints") or ():
            taint = Taint.of(raw)
            if taint.effect not in ("NoSchedule", "NoExecute") or tolerated(self.tolerations, taint):
                continue
            fits_taints = False
            if taint.effect == "NoExecute":
                continue_running = False
        if not fits_taints:
            return False, continue_running
        return True, True


def node_should_run(ds: Mapping[str, Any], node: Mapping[str, Any]) -> tuple[bool, bool]:
    return Eligibility.of(ds).check(node)


def untolerated_taints(ds: Mapping[str, Any], node: Mapping[str, Any]) -> list[Obj]:
    """The node's NoSchedule/NoExecute taints the daemon pods would not tolerate (for messages)."""
    tols = with_daemon_tolerations((_spec(ds).get("template") or {}).get("spec") or {})
    return [t for t in _spec(node).get("taints") or ()
            if t.get("effect") in ("NoSchedule", "NoExecute") and not any(toleration_matches(x, t) for x in tols)]


# -- daemon pods --------------------------------------------------------------------------


def target_node(pod: Mapping[str, Any]) -> str | None:
    """The node a daemon pod is for: its nodeName once bound, else the node its required
    affinity pins it to (metadata.name In [node]), as GetTargetNodeName reads it."""
    spec = _spec(pod)
    if spec.get("nodeName"):
        return spec["nodeName"]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution") or {}
    for term in required.get("nodeSelectorTerms") or ():
        for req in term.get("matchFields") or ():
            values = req.get("values") or ()
            if req.get("key") == "metadata.name" and req.get("operator") == "In" and len(values) == 1:
                return values[0]
    return None


def pin_to_node(affinity: Mapping[str, Any] | None, node_name: str) -> Obj:
    """The pod's affinity with its required node terms replaced by `metadata.name In
    [node]` (ReplaceDaemonSetPodNodeNameNodeAffinity): the scheduler still places the pod,
    checking resources and ports, but on that node only. Other affinities stay."""
    out = _deep(dict(affinity or {}))
    node_aff = out.setdefault("nodeAffinity", {})
    node_aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}
    return out


def template_generation(ds: Mapping[str, Any]) -> str | None:
    value = (_meta(ds).get("annotations") or {}).get(TEMPLATE_GENERATION)
    if value is None:
        return None
    try:
        return str(int(value))
    except ValueError:
        return None


def new_daemon_pod(ds: Mapping[str, Any], node_name: str, hash_: str) -> Obj:
    """The pod `ds` creates for `node_name`: its template with the daemon tolerations, the
    node pin, the revision hash and template generation labels, a name generated from
    `<ds name>-` and the controller reference."""
    meta = _meta(ds)
    template = _spec(ds).get("template") or {}
    tmeta = template.get("metadata") or {}
    spec = _deep(template.get("spec") or {})
    spec["tolerations"] = with_daemon_tolerations(spec)
    spec["affinity"] = pin_to_node(spec.get("affinity"), node_name)
    labels = dict(tmeta.get("labels") or {})
    generation = template_generation(ds)
    if generation is not None:
        labels[GENERATION_LABEL] = generation
    if hash_:
        labels[HASH_LABEL] = hash_
    pod_meta: Obj = {"generateName": f"{meta.get('name', '')}-", "namespace": meta.get("namespace", ""),
                     "labels": labels,
                     "ownerReferences": [owner_reference(ds, "apps/v1", "DaemonSet")]}
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    if tmeta.get("finalizers"):
        pod_meta["finalizers"] = list(tmeta["finalizers"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": spec}


def pod_is_updated(pod: Mapping[str, Any], hash_: str, generation: str | None) -> bool:
    """Runs the current template: its revision hash label, or (older pods) its template
    generation label, matches."""
    labels = _labels(pod)
    if hash_ and labels.get(HASH_LABEL) == hash_:
        return True
    return generation is not None and labels.get(GENERATION_LABEL) == generation


def _creation_order(pod: Mapping[str, Any]) -> tuple[Any, ...]:
    # podByCreationTimestampAndPhase: bound pods first, then oldest, then by name.
    created = parse_time(_meta(pod).get("creationTimestamp"))
    return (0 if _spec(pod).get("nodeName") else 1,
            created.timestamp() if created is not None else float("inf"), _name(pod))


def sort_by_age(pods: Iterable[Obj]) -> list[Obj]:
    return sorted(pods, key=_creation_order)


@dataclass
class Claim:
    """The pods of a DaemonSet by target node, and ownership changes to make first."""

    by_node: dict[str, list[Obj]] = field(default_factory=dict)
    adopt: list[Obj] = field(default_factory=list)
    release: list[Obj] = field(default_factory=list)
    # Pods pointing at no node at all (never possible for our own): deleted.
    unplaced: list[Obj] = field(default_factory=list)


def claim_pods(ds: Mapping[str, Any], pods: Iterable[Obj], include_deleted_terminal: bool = False) -> Claim:
    """Pods `ds` controls or may adopt (matching orphans), grouped by target node. Terminal
    pods already being deleted are left out unless asked for (history keeps their hashes)."""
    meta = _meta(ds)
    uid = meta.get("uid") or ""
    namespace = meta.get("namespace")
    selector = compile_selector(_spec(ds).get("selector"))
    deleting = bool(meta.get("deletionTimestamp"))
    claim = Claim()
    for pod in pods:
        pmeta = _meta(pod)
        if namespace is not None and pmeta.get("namespace") != namespace:
            continue
        ref = controller_ref(pod)
        if ref is not None and ref.get("uid") != uid:
            continue
        matches = selector.matches(pmeta.get("labels") or {})
        if ref is None:
            if not matches or deleting or pod_is_terminating(pod):
                continue
            claim.adopt.append(pod)
        elif not matches:
            if not deleting and not pod_is_terminating(pod):
                claim.release.append(pod)
            continue
        if not include_deleted_terminal and pod_is_terminal(pod) and pod_is_terminating(pod):
            continue
        node = target_node(pod)
        if node is None:
            claim.unplaced.append(pod)
            continue
        claim.by_node.setdefault(node, []).append(pod)
    return claim


# -- failed pod back-off -------------------------------------------------------------------


class FailedPodBackoff:
    """Kubernetes' flowcontrol.Backoff for failed daemon pods, per DaemonSet, generation and
    node: a node whose daemon keeps failing (rejected by its agent, say) is not hot-looped."""

    def __init__(self, initial: float = BACKOFF_INITIAL, maximum: float = BACKOFF_MAX) -> None:
        self.initial = initial
        self.maximum = maximum
        self._entries: dict[str, tuple[float, float]] = {}  # key -> (delay, last update)

    def delay(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry[0] if entry else 0.0

    def in_backoff(self, key: str, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - entry[1] < entry[0]

    def next(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None or now - entry[1] > 2 * self.maximum:
            self._entries[key] = (self.initial, now)
        else:
            self._entries[key] = (min(entry[0] * 2, self.maximum), now)

    def gc(self, now: float) -> None:
        for key in [k for k, (_, at) in self._entries.items() if now - at > 2 * self.maximum]:
            del self._entries[key]


def backoff_key(ds: Mapping[str, Any], node_name: str) -> str:
    return f"{_meta(ds).get('uid', '')}/{_meta(ds).get('generation', 0)}/{node_name}"


# -- the manage loop ------------------------------------------------------------------------


def max_surge_unavailable(ds: Mapping[str, Any], desired: int) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) against the nodes that should run the daemon; percentages
    round up for both (SurgeCount, UnavailableCount). Neither set means one unavailable."""
    strategy = _spec(ds).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = max(scaled_value(rolling.get("maxSurge"), desired, True, default="0"), 0)
    unavailable = max(scaled_value(rolling.get("maxUnavailable"), desired, True, default="1"), 0)
    if desired > 0 and surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def allows_surge(ds: Mapping[str, Any]) -> bool:
    strategy = _spec(ds).get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return False
    surge = (strategy.get("rollingUpdate") or {}).get("maxSurge")
    # Any value that is not zero allows it, whatever the node count rounds it to.
    return surge not in (None, 0, "0", "0%")


@dataclass
class Sync:
    """Pods to create (by node) and to delete in one sync, with the events to record."""

    create_on: list[str] = field(default_factory=list)
    delete: list[Obj] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)  # (type, reason, message)
    requeue_after: float | None = None

    def wait(self, seconds: float) -> None:
        self.requeue_after = seconds if self.requeue_after is None else min(self.requeue_after, seconds)


def plan_manage(ds: Mapping[str, Any], nodes: Iterable[Obj], claim: Claim, hash_: str, now: dt.datetime,
                backoff: FailedPodBackoff, clock: float) -> Sync:
    """One pod on each node that should run the daemon and none elsewhere (manage +
    podsShouldBeOnNode): failed and succeeded pods are deleted (failed ones with back-off
    per node), surplus pods on a node go (with surge, the new and old pod may share it
    while the new one becomes available), and pods pinned to nodes that do not exist go."""
    sync = Sync()
    rules = Eligibility.of(ds)
    surge = allows_surge(ds)
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    seen: set[str] = set()
    for node in nodes:
        name = _name(node)
        seen.add(name)
        should_run, should_continue = rules.check(node)
        pods = claim.by_node.get(name) or []
        if should_run and not pods:
            sync.create_on.append(name)
            continue
        if not pods:
            continue
        if not should_continue:
            sync.delete.extend(p for p in pods if not pod_is_terminating(p))
            continue
        running: list[Obj] = []
        for pod in pods:
            if pod_is_terminating(pod):
                continue
            phase = (pod.get("status") or {}).get("phase")
            if phase == "Failed":
                key = backoff_key(ds, name)
                if backoff.in_backoff(key, clock):
                    sync.wait(backoff.delay(key))
                    continue
                backoff.next(key, clock)
                sync.events.append(("Warning", "FailedDaemonPod",
                                    f"Found failed daemon pod {_meta(pod).get('namespace')}/{_name(pod)} on node "
                                    f"{name}, will try to kill it"))
                sync.delete.append(pod)
            elif phase == "Succeeded":
                sync.events.append(("Normal", "SucceededDaemonPod",
                                    f"Found succeeded daemon pod {_meta(pod).get('namespace')}/{_name(pod)} on node "
                                    f"{name}, will try to delete it"))
                sync.delete.append(pod)
            else:
                running.append(pod)
        if not surge:
            if len(running) > 1:
                sync.delete.extend(sort_by_age(running)[1:])
            continue
        if len(running) <= 1:
            if not running and should_run:
                sync.create_on.append(name)
            continue
        # With surge a node may hold the oldest new pod and the oldest old pod while the new
        # one becomes available; everything else goes.
        oldest_new: Obj | None = None
        oldest_old: Obj | None = None
        for pod in sort_by_age(running):
            if _labels(pod).get(HASH_LABEL) == hash_:
                if oldest_new is None:
                    oldest_new = pod
                    continue
            elif oldest_old is None:
                oldest_old = pod
                continue
            sync.delete.append(pod)
        if oldest_new is not None and oldest_old is not None and (
                not pod_is_ready(oldest_old) or pod_is_available(oldest_new, min_ready, now)):
            sync.delete.append(oldest_old)
    for name, pods in claim.by_node.items():
        if name in seen:
            continue
        # Never bound and pinned to a node that is gone: nothing else would delete them.
        sync.delete.extend(p for p in pods if not _spec(p).get("nodeName") and not pod_is_terminating(p))
    sync.delete.extend(p for p in claim.unplaced if not pod_is_terminating(p))
    return sync


# -- rolling update -------------------------------------------------------------------------


def _updated_pods_on_node(pods: Iterable[Obj], hash_: str, generation: str | None
                          ) -> tuple[Obj | None, Obj | None, bool]:
    """(new pod, old pod, ok) on one node; not ok when there is more than one of either,
    which the manage loop sorts out first."""
    new = old = None
    for pod in pods:
        if pod_is_terminating(pod):
            continue
        if pod_is_updated(pod, hash_, generation):
            if new is not None:
                return None, None, False
            new = pod
        else:
            if old is not None:
                return None, None, False
            old = pod
    return new, old, True


def desired_nodes(ds: Mapping[str, Any], nodes: Iterable[Obj]) -> list[str]:
    rules = Eligibility.of(ds)
    return [_name(n) for n in nodes if rules.check(n)[0]]


def plan_rolling_update(ds: Mapping[str, Any], nodes: list[Obj], claim: Claim, hash_: str,
                        now: dt.datetime) -> Sync:
    """Replace old pods within the budget (rollingUpdate). Without surge, delete old pods
    while fewer than maxUnavailable nodes lack an available daemon (the manage loop then
    creates the new ones); with surge, start new pods beside old available ones, at most
    maxSurge at a time, and delete an old pod once its replacement is available."""
    sync = Sync()
    rules = Eligibility.of(ds)
    generation = template_generation(ds)
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    node_by_name = {_name(n): n for n in nodes}
    by_node: dict[str, list[Obj]] = dict(claim.by_node)
    desired = 0
    for node in nodes:
        if rules.check(node)[0]:
            desired += 1
            by_node.setdefault(_name(node), [])
    max_surge, max_unavailable = max_surge_unavailable(ds, desired)
    # Nodes in a stable order, so that the same candidates are picked each pass.
    order = sorted(by_node)
    if max_surge == 0:
        unavailable = 0
        replace: list[Obj] = []
        candidates: list[Obj] = []
        for name in order:
            new, old, ok = _updated_pods_on_node(by_node[name], hash_, generation)
            if not ok:
                unavailable += 1
                continue
            if (old is None and new is None) or (old is not None and new is not None):
                unavailable += 1
            elif new is not None:
                if not pod_is_available(new, min_ready, now):
                    unavailable += 1
            elif old is not None:
                if not pod_is_available(old, min_ready, now):
                    replace.append(old)
                    unavailable += 1
                elif unavailable < max_unavailable:
                    candidates.append(old)
        room = min(max(max_unavailable - unavailable, 0), len(candidates))
        sync.delete = replace + candidates[:room]
        return sync
    surged = 0
    available = 0
    allowed_new: list[str] = []
    candidate_new: list[str] = []
    retire: list[Obj] = []
    not_wanted: list[Obj] = []
    for name in order:
        new, old, ok = _updated_pods_on_node(by_node[name], hash_, generation)
        if not ok:
            surged += 1
            continue
        if old is not None:
            available += pod_is_available(old, min_ready, now)
        elif new is not None:
            available += pod_is_available(new, min_ready, now)
        if old is None:
            continue
        node = node_by_name.get(name)
        should_run = node is not None and rules.check(node)[0]
        if new is None:
            if not pod_is_available(old, min_ready, now):
                if not should_run:
                    retire.append(old)
                else:
                    allowed_new.append(name)
            elif not should_run:
                not_wanted.append(old)
            elif surged < max_surge:
                candidate_new.append(name)
        elif not pod_is_available(new, min_ready, now):
            surged += 1
        else:
            retire.append(old)
    # With surge the owner expects full availability: an old pod on a node that no longer
    # wants it goes only when enough pods elsewhere are available.
    deletable = min(max(available - desired, 0), len(not_wanted))
    retire.extend(not_wanted[:deletable])
    room = min(max(max_surge - surged, 0), len(candidate_new))
    sync.delete = retire
    sync.create_on = allowed_new + candidate_new[:room]
    return sync


# -- status ----------------------------------------------------------------------------------


_COUNTERS = ("currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady",
             "updatedNumberScheduled", "numberAvailable", "numberUnavailable")


def daemonset_status(ds: Mapping[str, Any], nodes: Iterable[Obj], claim: Claim, hash_: str, now: dt.datetime,
                     observe_generation: bool = True) -> Obj:
    """The status (updateDaemonSetStatus): per node that should run the daemon, its oldest
    pod decides scheduled / ready / available / updated; pods elsewhere are misscheduled.
    Conditions and collisionCount are kept; observedGeneration moves only when this sync
    acted on the current generation."""
    rules = Eligibility.of(ds)
    generation = template_generation(ds)
    min_ready = int(_spec(ds).get("minReadySeconds") or 0)
    desired = current = misscheduled = ready = updated = available = 0
    for node in nodes:
        pods = claim.by_node.get(_name(node)) or []
        if rules.check(node)[0]:
            desired += 1
            if not pods:
                continue
            current += 1
            pod = pods[0] if len(pods) == 1 else sort_by_age(pods)[0]
            if pod_is_ready(pod):
                ready += 1
                if pod_is_available(pod, min_ready, now):
                    available += 1
            if pod_is_updated(pod, hash_, generation):
                updated += 1
        elif pods:
            misscheduled += 1
    old = dict(ds.get("status") or {})
    status: Obj = {"currentNumberScheduled": current, "numberMisscheduled": misscheduled,
                   "desiredNumberScheduled": desired, "numberReady": ready}
    observed = int(_meta(ds).get("generation") or 0) if observe_generation else int(old.get("observedGeneration") or 0)
    if observed:
        status["observedGeneration"] = observed
    # Zero counters beyond the four always shown are left out, as the real API does.
    for key, value in (("updatedNumberScheduled", updated), ("numberAvailable", available),
                       ("numberUnavailable", desired - available)):
        if value:
            status[key] = value
    for key in ("collisionCount", "conditions"):
        if old.get(key) is not None:
            status[key] = old[key]
    return status


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    old = old or {}
    if any(int(old.get(k) or 0) != int(new.get(k) or 0) for k in (*_COUNTERS, "observedGeneration")):
        return True
    return old.get("collisionCount") != new.get("collisionCount")


def next_available_in(ds: Mapping[str, Any], claim: Claim, now: dt.datetime) -> float | None:
    """Seconds until a ready daemon pod becomes available (minReadySeconds), to look again."""
    return pods_available_in((pod for pods in claim.by_node.values() for pod in pods),
                             int(_spec(ds).get("minReadySeconds") or 0), now)


# -- ControllerRevisions --------------------------------------------------------------------


def new_revision(ds: Mapping[str, Any], number: int) -> Obj:
    """The ControllerRevision snapshotting `ds`'s template (see revisions.new_revision)."""
    return revisions.new_revision(ds, number, "DaemonSet")


def plan_history(ds: Mapping[str, Any], found: Iterable[Obj]) -> History:
    """constructHistory: the revisions `ds` controls split into current and old (see
    revisions.plan_history); duplicates of the current one are folded into it."""
    return revisions.plan_history(ds, found, "DaemonSet")


def revisions_to_prune(ds: Mapping[str, Any], old: list[Obj], claim: Claim) -> list[Obj]:
    """Old revisions beyond revisionHistoryLimit, oldest first, never one a live pod still
    runs (cleanupHistory); `claim` should include deleted terminal pods."""
    limit = _spec(ds).get("revisionHistoryLimit")
    keep = 10 if limit is None else int(limit)
    excess = len(old) - keep
    if excess <= 0:
        return []
    live = {_labels(p).get(HASH_LABEL) for pods in claim.by_node.values() for p in pods}
    live.update(_labels(p).get(HASH_LABEL) for p in claim.unplaced)
    out: list[Obj] = []
    for rev in sorted(old, key=revision_number):
        if excess <= 0:
            break
        if current_hash(rev) in live:
            continue
        out.append(rev)
        excess -= 1
    return out


def dedup_relabels(claim: Claim, duplicates: Iterable[Obj], keep_hash: str) -> list[Obj]:
    """Pods labelled with the hash of a duplicate current revision: relabelled to the kept one."""
    dup_hashes = {current_hash(r) for r in duplicates} - {keep_hash}
    return [p for pods in claim.by_node.values() for p in pods if _labels(p).get(HASH_LABEL) in dup_hashes]


def selects_everything(ds: Mapping[str, Any]) -> bool:
    selector = _spec(ds).get("selector")
    return isinstance(selector, dict) and not selector.get("matchLabels") and not selector.get("matchExpressions")


# -- one sync -------------------------------------------------------------------------------


@dataclass
class Plan:
    """What one sync of a DaemonSet does once its history is in place."""

    claim: Claim
    sync: Sync
    status: Obj
    prune: list[Obj] = field(default_factory=list)


def plan_daemonset(ds: Mapping[str, Any], nodes: list[Obj], pods: list[Obj], hash_: str, old_revisions: list[Obj],
                   now: dt.datetime, backoff: FailedPodBackoff, clock: float, *,
                   expectations_satisfied: bool = True, burst: int = BURST_REPLICAS) -> Plan:
    """manage, then (when manage has nothing to do, as upstream's expectations make it)
    the rolling update, then history cleanup and the status."""
    claim = claim_pods(ds, pods)
    if not expectations_satisfied:
        return Plan(claim, Sync(), daemonset_status(ds, nodes, claim, hash_, now, observe_generation=False))
    sync = plan_manage(ds, nodes, claim, hash_, now, backoff, clock)
    if not sync.create_on and not sync.delete:
        strategy = (_spec(ds).get("updateStrategy") or {}).get("type", "RollingUpdate")
        if strategy == "RollingUpdate":
            rolling = plan_rolling_update(ds, nodes, claim, hash_, now)
            sync.create_on, sync.delete = rolling.create_on, rolling.delete
    sync.create_on = sync.create_on[:burst]
    sync.delete = sync.delete[:burst]
    wait = next_available_in(ds, claim, now)
    if wait is not None:
        sync.wait(wait)
    limit = _spec(ds).get("revisionHistoryLimit")
    prune: list[Obj] = []
    if len(old_revisions) > (10 if limit is None else int(limit)):
        prune = revisions_to_prune(ds, old_revisions, claim_pods(ds, pods, include_deleted_terminal=True))
    return Plan(claim, sync, daemonset_status(ds, nodes, claim, hash_, now), prune)
