"""Preemption (the DefaultPreemption post-filter): when a pod fits on no node, which
lower-priority pods to evict, and on which node, as upstream decides it.

* `eligible`: `preemptionPolicy: Never` never preempts; a pod already nominated to a node
  where lower-priority pods are still terminating waits for them instead of preempting
  again.
* `select_victims` (one node): take every lower-priority pod off the node; if the pod
  still does not fit, the node is no candidate. Otherwise give back as many of them as
  possible, most important first (higher priority, then earlier start), those whose
  eviction would violate a PodDisruptionBudget before the others; what cannot be given
  back are the victims.
* `find_candidates`: nodes where preemption might help (their filter failure is
  resolvable), from a random offset, until enough candidates are found (10% of the
  nodes, at least 100).
* `pick_candidate`: fewest PDB violations, then the lowest highest-victim priority, the
  smallest sum of victim priorities, the fewest victims, and the latest start of the
  highest-priority victims.

PDBs are read as upstream does, from their status: `disruptionsAllowed` and the pods
already listed in `disruptedPods`. The filters are the cycle's own chain, re-run on a
copy of the node; precomputed affinity and spread state is not recomputed per removal
(upstream updates it through AddPod/RemovePod), which can only make a node look less
suitable. Pure functions over the cache's data: no I/O.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.selectors import LabelSelector, nothing, selector_from_label_selector_object
from kybernetes.scheduler.cache import ClusterCache, NodeInfo, PodInfo

Obj = dict[str, Any]
# A failed filter: its reasons, and whether evicting pods could ever help (core.Status).
Status = tuple[tuple[str, ...], bool]
Filter = Callable[[NodeInfo], "Status | None"]

MIN_CANDIDATE_NODES_PERCENTAGE = 10
MIN_CANDIDATE_NODES_ABSOLUTE = 100
# Upstream adds MaxInt32 + 1 to each priority before summing, so negative ones count right.
_PRIORITY_SHIFT = 2**31

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"
NEVER = "not eligible due to preemptionPolicy=Never."
TERMINATING = "not eligible due to a terminating pod on the nominated node."
# A pod without status.startTime sorts as starting now: after every pod that started.
_NOT_STARTED = "~"

DISRUPTION_TARGET = "DisruptionTarget"
PREEMPTION_BY_SCHEDULER = "PreemptionByScheduler"


@dataclass(frozen=True)
class Budget:
    """A PodDisruptionBudget as preemption reads it."""

    namespace: str
    selector: LabelSelector
    allowed: int
    disrupted: frozenset[str]


def budget_of(pdb: Mapping[str, Any]) -> Budget:
    meta = pdb.get("metadata") or {}
    spec = pdb.get("spec") or {}
    status = pdb.get("status") or {}
    try:
        selector = selector_from_label_selector_object(spec.get("selector"))
    except Exception:  # noqa: BLE001 - an unparsable selector matches nothing, as upstream skips it
        selector = nothing()
    return Budget(meta.get("namespace") or "default", selector, int(status.get("disruptionsAllowed") or 0),
                  frozenset(status.get("disruptedPods") or ()))


@dataclass
class Candidate:
    """A node where evicting `victims` (most important first) makes the pod fit."""

    node: str
    victims: list[PodInfo] = field(default_factory=list)
    pdb_violations: int = 0


def start_time(p: PodInfo) -> str:
    return ((p.pod.get("status") or {}).get("startTime")) or _NOT_STARTED


def importance_key(p: PodInfo) -> tuple[int, str]:
    """Sorts the most important pod first: higher priority, then the one started earlier."""
    return -p.priority, start_time(p)


def eligible(pod: PodInfo, cache: ClusterCache, nominated_node: str,
             statuses: Mapping[str, Status]) -> str | None:
    """None when `pod` may preempt, else why not (the message's preemption clause)."""
    if pod.preemption_never:
        return NEVER
    if nominated_node:
        status = statuses.get(nominated_node)
        if status is not None and not status[1]:
            return None  # its nominated node can no longer take it: look again elsewhere
        ni = cache.nodes.get(nominated_node)
        if ni is not None and any(p.terminating and p.priority < pod.priority for p in ni.pods.values()):
            return TERMINATING
    return None


def split_by_budgets(pods: Sequence[PodInfo], budgets: Sequence[Budget]) -> tuple[list[PodInfo], list[PodInfo]]:
    """(violating, non-violating), each in the given order: a pod violates when evicting it,
    after the pods before it, takes a budget it matches below zero."""
    allowed = [b.allowed for b in budgets]
    violating: list[PodInfo] = []
    fine: list[PodInfo] = []
    for p in pods:
        violated = False
        for i, b in enumerate(budgets):
            if b.namespace != p.namespace or b.selector.empty or not b.selector.matches(p.labels):
                continue
            if p.name in b.disrupted:
                continue  # already counted by the API server's eviction
            allowed[i] -= 1
            if allowed[i] < 0:
                violated = True
        (violating if violated else fine).append(p)
    return violating, fine


def _fits(chain: Sequence[Filter], ni: NodeInfo) -> Status | None:
    for f in chain:
        status = f(ni)
        if status is not None:
            return status
    return None


def with_pods(ni: NodeInfo, pods: Iterable[PodInfo]) -> NodeInfo:
    """A copy of `ni` with `pods` (nominated elsewhere-unbound pods) counted on it."""
    clone = ni.without(())
    for p in pods:
        clone.add_pod(p)
    return clone


def select_victims(pod: PodInfo, ni: NodeInfo, chain: Sequence[Filter], budgets: Sequence[Budget],
                   nominated: Sequence[PodInfo] = ()) -> Candidate | Status:
    """The fewest victims on `ni` that let `pod` fit, or the status saying why none do.
    `nominated`: pods nominated to this node with priority >= the pod's, which keep their room."""
    potential = [p for p in ni.pods.values() if p.priority < pod.priority]
    if not potential:
        return (NO_VICTIMS,), False
    clone = ni.without([p.key for p in potential])
    for p in nominated:
        clone.add_pod(p)
    status = _fits(chain, clone)
    if status is not None:
        return status
    potential.sort(key=importance_key)
    violating, fine = split_by_budgets(potential, budgets)
    victims: list[PodInfo] = []
    violations = 0
    for group, counts in ((violating, True), (fine, False)):
        for p in group:
            clone.add_pod(p)
            if _fits(chain, clone) is None:
                continue  # reprieved
            clone.remove_pod(p.key)
            victims.append(p)
            if counts:
                violations += 1
    victims.sort(key=importance_key)
    return Candidate(ni.name, victims, violations)


def num_candidates(num_nodes: int) -> int:
    n = num_nodes * MIN_CANDIDATE_NODES_PERCENTAGE // 100
    return min(max(n, MIN_CANDIDATE_NODES_ABSOLUTE), num_nodes)


def find_candidates(pod: PodInfo, cache: ClusterCache, statuses: Mapping[str, Status], chain: Sequence[Filter],
                    budgets: Sequence[Budget], rng: random.Random,
                    nominated: Mapping[str, Sequence[PodInfo]] | None = None,
                    ) -> tuple[list[Candidate], dict[str, Status]]:
    """Candidates among the nodes in `statuses` (every node failed the filters), and each
    other node's preemption status (for the message)."""
    out: dict[str, Status] = {}
    potential: list[str] = []
    for name, status in statuses.items():
        if status[1]:
            potential.append(name)
        else:
            out[name] = ((NOT_HELPFUL,), False)
    candidates: list[Candidate] = []
    if not potential:
        return candidates, out
    want = num_candidates(len(potential))
    offset = rng.randrange(len(potential))
    violating_found = 0
    for i in range(len(potential)):
        name = potential[(offset + i) % len(potential)]
        ni = cache.nodes.get(name)
        if ni is None:
            continue
        result = select_victims(pod, ni, chain, budgets, (nominated or {}).get(name, ()))
        if isinstance(result, Candidate):
            candidates.append(result)
            violating_found += result.pdb_violations > 0
            # Upstream stops once it has one candidate without violations and enough in all.
            if len(candidates) > violating_found and len(candidates) >= want:
                break
        else:
            out[name] = result
    return candidates, out


def _earliest_top_start(c: Candidate) -> str:
    top = c.victims[0].priority
    return min(start_time(p) for p in c.victims if p.priority == top)


def pick_candidate(candidates: Sequence[Candidate]) -> Candidate | None:
    """The node to preempt on, by upstream's criteria in order (ties keep the first)."""
    if not candidates:
        return None
    for c in candidates:
        if not c.victims:
            return c
    rest = list(candidates)
    criteria: list[Callable[[Candidate], Any]] = [
        lambda c: c.pdb_violations,
        lambda c: c.victims[0].priority,
        lambda c: sum(p.priority + _PRIORITY_SHIFT for p in c.victims),
        lambda c: len(c.victims),
    ]
    for key in criteria:
        best = min(key(c) for c in rest)
        rest = [c for c in rest if key(c) == best]
        if len(rest) == 1:
            return rest[0]
    latest = max(_earliest_top_start(c) for c in rest)
    return next(c for c in rest if _earliest_top_start(c) == latest)


def nominated_for(pod: PodInfo, cache: ClusterCache) -> dict[str, list[PodInfo]]:
    """Per node, the pods nominated there that keep their room against `pod`: those of
    the same or higher priority, other than the pod itself."""
    out: dict[str, list[PodInfo]] = {}
    for node, pods in cache.nominated.items():
        keep = [p for p in pods.values() if p.priority >= pod.priority and p.key != pod.key]
        if keep:
            out[node] = keep
    return out


def lower_nominated(pod: PodInfo, cache: ClusterCache, node: str) -> list[PodInfo]:
    """Pods nominated to `node` with lower priority: preempting there takes their room."""
    return [p for p in (cache.nominated.get(node) or {}).values() if p.priority < pod.priority and p.key != pod.key]


def disruption_condition(scheduler_name: str, now: str) -> Obj:
    return {"type": DISRUPTION_TARGET, "status": "True", "reason": PREEMPTION_BY_SCHEDULER,
            "message": f"{scheduler_name}: preempting to accommodate a higher priority pod",
            "lastProbeTime": None, "lastTransitionTime": now}
