"""The scheduling decision: filter plugins (which nodes can take a pod, and why not), score
plugins with the default profile's weights, node sampling like `percentageOfNodesToScore`,
and the `FailedScheduling` message in Kubernetes' words. `schedule_one` reads a
`ClusterCache` and returns a `ScheduleResult`; it changes nothing except the cache's
rotating start index."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.pods import Taint, node_term_matches, tolerated
from kybernetes.scheduler import preemption
from kybernetes.scheduler.cache import (
    HOSTNAME_LABEL,
    ClusterCache,
    NodeInfo,
    PodAffinityTerm,
    PodInfo,
    SpreadConstraint,
    pod_info,
)
from kybernetes.scheduler.preemption import Budget, Candidate
from kybernetes.scheduler.volumebinding import VolumeState

MAX_NODE_SCORE = 100

# Filter reasons, as the kube-scheduler words them.
ERR_NODE_NAME = "node(s) didn't match the requested node name"
ERR_UNSCHEDULABLE = "node(s) were unschedulable"
ERR_TAINT = "node(s) had untolerated taint(s)"
_UNSCHEDULABLE_TAINT = Taint("node.kubernetes.io/unschedulable", "", "NoSchedule")
ERR_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
ERR_PORTS = "node(s) didn't have free ports for the requested pod ports"
ERR_TOO_MANY_PODS = "Too many pods"
ERR_SPREAD = "node(s) didn't match pod topology spread constraints"
ERR_SPREAD_LABEL = "node(s) didn't match pod topology spread constraints (missing required label)"
ERR_EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
ERR_ANTI = "node(s) didn't match pod anti-affinity rules"
ERR_AFFINITY = "node(s) didn't match pod affinity rules"
ERR_NO_NODES = "no nodes available to schedule pods"
# The dynamic-resources plugin's post-filter always speaks first for pods without claims.
DRA_POSTFILTER = "no new claims to deallocate"

# Score weights of the default profile.
WEIGHT_TAINT = 3
WEIGHT_NODE_AFFINITY = 2
WEIGHT_SPREAD = 2
WEIGHT_INTER_POD_AFFINITY = 2
# The default profile's hardPodAffinityWeight: what an existing pod's required affinity
# term that the incoming pod matches adds to its topology domain.
HARD_POD_AFFINITY_WEIGHT = 1
WEIGHT_LEAST_ALLOCATED = 1
WEIGHT_BALANCED = 1
WEIGHT_IMAGE = 1

MIN_FEASIBLE_NODES = 100
MIN_PERCENTAGE = 5
BASE_PERCENTAGE = 50

_MB = 1024 * 1024
IMAGE_MIN_THRESHOLD = 23 * _MB
IMAGE_MAX_CONTAINER_THRESHOLD = 1000 * _MB

# A failed filter: its reasons, and whether evicting pods could ever help on that node.
Status = tuple[tuple[str, ...], bool]
Filter = Callable[[NodeInfo], "Status | None"]


@dataclass
class ScheduleResult:
    """Where the pod goes (None: nowhere), and when nowhere, how many nodes failed for each
    reason and the message for the event and the PodScheduled condition."""

    node: str | None
    reasons: dict[str, int] = field(default_factory=dict)
    message: str = ""
    evaluated: int = 0
    feasible: int = 0
    # Preemption's choice when nowhere fits now: evict its victims, nominate its node.
    preemption: Candidate | None = None


# -- sampling -----------------------------------------------------------------------------

def num_feasible_nodes_to_find(num_nodes: int, percentage: int = 0) -> int:
    """How many feasible nodes are enough to stop filtering: all of a small cluster, else
    an adaptive share (50% minus one point per 125 nodes, at least 5%), never under 100."""
    if num_nodes < MIN_FEASIBLE_NODES:
        return num_nodes
    if percentage <= 0:
        percentage = max(BASE_PERCENTAGE - num_nodes // 125, MIN_PERCENTAGE)
    if percentage >= 100:
        return num_nodes
    return max(num_nodes * percentage // 100, MIN_FEASIBLE_NODES)


# -- filters ------------------------------------------------------------------------------

def filter_node_unschedulable(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if ni.unschedulable and not tolerated(pod.tolerations, _UNSCHEDULABLE_TAINT):
        return (ERR_UNSCHEDULABLE,), False
    return None


def filter_node_name(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if pod.node_name and pod.node_name != ni.name:
        return (ERR_NODE_NAME,), False
    return None


def untolerated_taint(pod: PodInfo, taints: tuple[Taint, ...]) -> Taint | None:
    for taint in taints:
        if not tolerated(pod.tolerations, taint):
            return taint
    return None


def filter_taints(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if ni.hard_taints and untolerated_taint(pod, ni.hard_taints) is not None:
        return (ERR_TAINT,), False
    return None


def filter_node_affinity(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if not pod.matches_node_affinity(ni.name, ni.labels):
        return (ERR_NODE_AFFINITY,), False
    return None


def ports_conflict(used: Mapping[tuple[str, int], Mapping[str, int]], proto: str, port: int, ip: str) -> bool:
    ips = used.get((proto, port))
    if not ips:
        return False
    return ip == "0.0.0.0" or "0.0.0.0" in ips or ip in ips


def filter_ports(pod: PodInfo, ni: NodeInfo) -> Status | None:
    for proto, port, ip in pod.host_ports:
        if ports_conflict(ni.ports, proto, port, ip):
            return (ERR_PORTS,), True
    return None


def filter_resources(pod: PodInfo, ni: NodeInfo) -> Status | None:
    if (len(ni.pods) < ni.alloc_pods and pod.cpu <= ni.alloc_cpu - ni.req_cpu
            and pod.mem <= ni.alloc_mem - ni.req_mem and pod.eph <= ni.alloc_eph - ni.req_eph
            and not pod.scalar):
        return None
    reasons: list[str] = []
    unresolvable = False
    if len(ni.pods) + 1 > ni.alloc_pods:
        reasons.append(ERR_TOO_MANY_PODS)
        unresolvable = ni.alloc_pods < 1
    checks = ((pod.cpu, ni.alloc_cpu, ni.req_cpu, "cpu"), (pod.mem, ni.alloc_mem, ni.req_mem, "memory"),
              (pod.eph, ni.alloc_eph, ni.req_eph, "ephemeral-storage"))
    for want, alloc, used, name in checks:
        if want > 0 and want > alloc - used:
            reasons.append("Insufficient " + name)
            # Even an empty node is too small: evicting pods cannot help.
            unresolvable = unresolvable or want > alloc
    for name, want in pod.scalar.items():
        alloc = ni.alloc_scalar.get(name, 0)
        if want > alloc - ni.req_scalar.get(name, 0):
            reasons.append("Insufficient " + name)
            unresolvable = unresolvable or want > alloc
    if reasons:
        return tuple(reasons), not unresolvable
    return None


@dataclass
class AffinityState:
    """What the inter-pod affinity filter precomputes over all pods once per cycle."""

    existing_anti: set[tuple[str, str]]
    affinity_counts: dict[tuple[str, str], int]
    anti_counts: dict[tuple[str, str], int]
    matches_own_terms: bool


def affinity_state(pod: PodInfo, cache: ClusterCache) -> AffinityState | None:
    """None when neither the pod nor any pod in the cluster has required inter-pod
    (anti-)affinity: the common case, which then costs nothing per node."""
    if not pod.affinity_terms and not pod.anti_terms and not cache.anti_pods:
        return None
    existing: set[tuple[str, str]] = set()
    for other in cache.anti_pods.values():
        ni = cache.nodes.get(other.node_name)
        if ni is None or ni.node is None:
            continue
        for term in other.anti_terms:
            value = ni.labels.get(term.topology_key)
            if value is not None and term.matches(pod):
                existing.add((term.topology_key, value))
    aff: dict[tuple[str, str], int] = {}
    anti: dict[tuple[str, str], int] = {}
    if pod.affinity_terms or pod.anti_terms:
        for ni in cache.nodes.values():
            if ni.node is None or not ni.pods:
                continue
            for other in ni.pods.values():
                if pod.affinity_terms and all(t.matches(other) for t in pod.affinity_terms):
                    for t in pod.affinity_terms:
                        value = ni.labels.get(t.topology_key)
                        if value is not None:
                            aff[(t.topology_key, value)] = aff.get((t.topology_key, value), 0) + 1
                for t in pod.anti_terms:
                    if t.matches(other):
                        value = ni.labels.get(t.topology_key)
                        if value is not None:
                            anti[(t.topology_key, value)] = anti.get((t.topology_key, value), 0) + 1
    own = bool(pod.affinity_terms) and all(t.matches(pod) for t in pod.affinity_terms)
    return AffinityState(existing, aff, anti, own)


def filter_inter_pod_affinity(pod: PodInfo, ni: NodeInfo, state: AffinityState) -> Status | None:
    labels = ni.labels
    if state.existing_anti:
        for key, value in labels.items():
            if (key, value) in state.existing_anti:
                return (ERR_EXISTING_ANTI,), True
    for t in pod.anti_terms:
        value = labels.get(t.topology_key)
        if value is not None and state.anti_counts.get((t.topology_key, value), 0) > 0:
            return (ERR_ANTI,), True
    if pod.affinity_terms:
        pods_exist = True
        for t in pod.affinity_terms:
            value = labels.get(t.topology_key)
            if value is None:
                return (ERR_AFFINITY,), False
            if state.affinity_counts.get((t.topology_key, value), 0) <= 0:
                pods_exist = False
        # The first pod of a group that wants to be with its own kind may start anywhere.
        if not pods_exist and not (not state.affinity_counts and state.matches_own_terms):
            return (ERR_AFFINITY,), False
    return None


@dataclass
class SpreadState:
    """Matching pod counts per topology value for each spread constraint."""

    constraints: tuple[SpreadConstraint, ...]
    counts: list[dict[str, int]]
    self_match: list[int]


def _spread_eligible(pod: PodInfo, c: SpreadConstraint, ni: NodeInfo, keys: tuple[str, ...]) -> bool:
    # Upstream counts only on nodes that carry every topology key of the pod's constraints.
    labels = ni.labels
    for key in keys:
        if key not in labels:
            return False
    if c.honor_affinity and not pod.matches_node_affinity(ni.name, ni.labels):
        return False
    return not (c.honor_taints and ni.hard_taints and untolerated_taint(pod, ni.hard_taints) is not None)


def spread_state(pod: PodInfo, cache: ClusterCache, constraints: tuple[SpreadConstraint, ...]) -> SpreadState:
    counts: list[dict[str, int]] = []
    self_match: list[int] = []
    keys = tuple({c.topology_key: None for c in constraints})
    for c in constraints:
        per: dict[str, int] = {}
        if c.owner and c.topology_key != HOSTNAME_LABEL:
            # System default: same-controller pods per zone are counted in the cache.
            per = dict(cache.owner_zone.get(c.owner) or {})
        elif c.hard or (not c.owner and c.topology_key != HOSTNAME_LABEL):
            for ni in cache.nodes.values():
                if ni.node is None or not _spread_eligible(pod, c, ni, keys):
                    continue
                value = ni.labels[c.topology_key]
                n = sum(1 for p in ni.pods.values() if c.counts(p, pod.namespace))
                per[value] = per.get(value, 0) + n
        counts.append(per)
        self_match.append(1 if (c.owner == pod.owner_uid if c.owner else
                                c.selector is not None and c.selector.matches(pod.labels)) else 0)
    return SpreadState(constraints, counts, self_match)


def filter_spread(pod: PodInfo, ni: NodeInfo, state: SpreadState) -> Status | None:
    for i, c in enumerate(state.constraints):
        if not c.hard:
            continue
        value = ni.labels.get(c.topology_key)
        if value is None:
            return (ERR_SPREAD_LABEL,), False
        per = state.counts[i]
        minimum = min(per.values()) if per else 0
        if len(per) < c.min_domains:
            minimum = 0
        if per.get(value, 0) + state.self_match[i] - minimum > c.max_skew:
            return (ERR_SPREAD,), True
    return None


# The length of the chain of a pod that only needs node-unschedulable, taints and resources.
BASIC_FILTERS = 3


def build_filters(pod: PodInfo, cache: ClusterCache, volumes: VolumeState | None = None) -> list[Filter]:
    """The filter chain for one pod in the default profile's order, leaving out filters
    that cannot fail for it (volume binding only for a pod with claims). Each node stops
    at its first failing filter."""
    chain: list[Filter] = [lambda ni: filter_node_unschedulable(pod, ni)]
    if pod.node_name:
        chain.append(lambda ni: filter_node_name(pod, ni))
    chain.append(lambda ni: filter_taints(pod, ni))
    if pod.node_affinity.restricts:
        chain.append(lambda ni: filter_node_affinity(pod, ni))
    if pod.host_ports:
        chain.append(lambda ni: filter_ports(pod, ni))
    chain.append(lambda ni: filter_resources(pod, ni))
    if volumes is not None:
        chain.append(volumes.filter)
    hard = tuple(c for c in pod.spread if c.hard)
    if hard:
        sstate = spread_state(pod, cache, hard)
        chain.append(lambda ni: filter_spread(pod, ni, sstate))
    astate = affinity_state(pod, cache)
    if astate is not None:
        chain.append(lambda ni: filter_inter_pod_affinity(pod, ni, astate))
    return chain


def run_filters(chain: list[Filter], ni: NodeInfo) -> Status | None:
    for f in chain:
        status = f(ni)
        if status is not None:
            return status
    return None


# -- scores -------------------------------------------------------------------------------

def least_allocated_score(pod: PodInfo, ni: NodeInfo) -> int:
    total = 0
    for alloc, used in ((ni.alloc_cpu, ni.nz_cpu + pod.nz_cpu), (ni.alloc_mem, ni.nz_mem + pod.nz_mem)):
        if alloc > 0 and used <= alloc:
            total += (alloc - used) * MAX_NODE_SCORE // alloc
    return total // 2


def balanced_allocation_score(pod: PodInfo, ni: NodeInfo) -> int:
    fractions = []
    for alloc, used in ((ni.alloc_cpu, ni.req_cpu + pod.cpu), (ni.alloc_mem, ni.req_mem + pod.mem)):
        if alloc > 0:
            fractions.append(min(used / alloc, 1.0))
    if len(fractions) < 2:
        return MAX_NODE_SCORE
    std = abs(fractions[0] - fractions[1]) / 2
    return int((1 - std) * MAX_NODE_SCORE)


def resource_scores(pod: PodInfo, nodes: list[NodeInfo]) -> list[int]:
    """least_allocated_score * WEIGHT_LEAST_ALLOCATED + balanced_allocation_score *
    WEIGHT_BALANCED for each node, in one pass: this runs for hundreds of nodes per pod."""
    out = []
    append = out.append
    nz_cpu, nz_mem, cpu, mem = pod.nz_cpu, pod.nz_mem, pod.cpu, pod.mem
    for ni in nodes:
        alloc_cpu, alloc_mem = ni.alloc_cpu, ni.alloc_mem
        least = 0
        if alloc_cpu > 0:
            used = ni.nz_cpu + nz_cpu
            if used <= alloc_cpu:
                least += (alloc_cpu - used) * MAX_NODE_SCORE // alloc_cpu
        if alloc_mem > 0:
            used = ni.nz_mem + nz_mem
            if used <= alloc_mem:
                least += (alloc_mem - used) * MAX_NODE_SCORE // alloc_mem
        if alloc_cpu > 0 and alloc_mem > 0:
            f_cpu = (ni.req_cpu + cpu) / alloc_cpu
            f_mem = (ni.req_mem + mem) / alloc_mem
            std = abs((f_cpu if f_cpu < 1.0 else 1.0) - (f_mem if f_mem < 1.0 else 1.0)) / 2
            balanced = int((1 - std) * MAX_NODE_SCORE)
        else:
            balanced = MAX_NODE_SCORE
        append((least // 2) * WEIGHT_LEAST_ALLOCATED + balanced * WEIGHT_BALANCED)
    return out


def image_locality_score(pod: PodInfo, ni: NodeInfo, image_nodes: Mapping[str, int], total_nodes: int) -> int:
    total = 0
    if ni.images and total_nodes:
        for image in pod.images:
            size = ni.images.get(image)
            if size is not None:
                total += int(size * (image_nodes.get(image, 0) / total_nodes))
    max_threshold = IMAGE_MAX_CONTAINER_THRESHOLD * max(pod.num_containers, 1)
    total = min(max(total, IMAGE_MIN_THRESHOLD), max_threshold)
    return MAX_NODE_SCORE * (total - IMAGE_MIN_THRESHOLD) // (max_threshold - IMAGE_MIN_THRESHOLD)


def preferred_affinity_raw(pod: PodInfo, ni: NodeInfo) -> int:
    return sum(w for w, term in pod.preferred_terms if node_term_matches(term, ni.name, ni.labels))


def intolerable_prefer_taints(pod: PodInfo, ni: NodeInfo) -> int:
    tols = [t for t in pod.tolerations if not t[3] or t[3] == "PreferNoSchedule"]
    return sum(1 for taint in ni.prefer_taints if not tolerated(tols, taint))


def normalize(scores: list[int], reverse: bool = False) -> list[int]:
    """Scale to 0..100 by the maximum; reversed, fewer is better."""
    top = max(scores, default=0)
    if top == 0:
        return [MAX_NODE_SCORE if reverse else 0 for _ in scores]
    out = [MAX_NODE_SCORE * s // top for s in scores]
    return [MAX_NODE_SCORE - s for s in out] if reverse else out


def spread_scores(pod: PodInfo, cache: ClusterCache, nodes: list[NodeInfo]) -> list[int]:
    """Topology spread (ScheduleAnyway): fewer matching pods in the node's domains is
    better, each constraint weighted by log(domains + 2). Computed a constraint at a
    time over all nodes (list comprehensions: this runs for hundreds of nodes per pod)."""
    soft = tuple(c for c in pod.spread if not c.hard)
    n = len(nodes)
    if not soft or not n:
        return [0] * n
    system = all(c.owner for c in soft)
    state = spread_state(pod, cache, soft)
    if system and len(soft) == 2 and soft[0].topology_key == HOSTNAME_LABEL != soft[1].topology_key:
        return _default_spread_scores(soft, state.counts[1], nodes)
    return _spread_scores_by_constraint(pod, soft, state, nodes)


def _spread_scores_by_constraint(pod: PodInfo, soft: tuple[SpreadConstraint, ...], state: SpreadState,
                                 nodes: list[NodeInfo]) -> list[int]:
    n = len(nodes)
    system = all(c.owner for c in soft)
    ignored = None if system else [any(c.topology_key not in ni.labels for c in soft) for ni in nodes]
    skipped = sum(ignored) if ignored is not None else 0
    namespace = pod.namespace
    raw = [0.0] * n
    for i, c in enumerate(soft):
        key, owner, offset = c.topology_key, c.owner, c.max_skew - 1
        if key == HOSTNAME_LABEL:
            weight = math.log(n - skipped + 2)
            if owner:
                col = [ni.owners.get(owner, 0) * weight + offset if key in ni.labels else 0.0 for ni in nodes]
            else:
                col = [sum(1 for p in ni.pods.values() if c.counts(p, namespace)) * weight + offset
                       if key in ni.labels else 0.0 for ni in nodes]
        else:
            values = [ni.labels.get(key) for ni in nodes]
            domains = set(values)
            domains.discard(None)
            weight = math.log(len(domains) + 2)
            counts = state.counts[i]
            col = [counts.get(v, 0) * weight + offset if v is not None else 0.0 for v in values]
        raw = [a + b for a, b in zip(raw, col, strict=True)]
    scores = [round(s) for s in raw]
    if ignored is not None:
        scores = [-1 if skip else s for s, skip in zip(scores, ignored, strict=True)]
        valid = [s for s in scores if s >= 0]
        if not valid:
            return [0] * n
    else:
        valid = scores
    lo, hi = min(valid), max(valid)
    if hi == 0:
        return [0 if s < 0 else MAX_NODE_SCORE for s in scores]
    top = hi + lo
    return [0 if s < 0 else MAX_NODE_SCORE * (top - s) // hi for s in scores]


def _default_spread_scores(soft: tuple[SpreadConstraint, SpreadConstraint], zone_counts: Mapping[str, int],
                           nodes: list[NodeInfo]) -> list[int]:
    """`spread_scores` for the system default constraints of a controller's pod (its
    siblings per host, then per zone) in one pass over the nodes: what every Deployment
    pod is scored with. The same arithmetic as the general loop, fused."""
    host, zone = soft
    owner, host_offset = host.owner, host.max_skew - 1
    zone_key, zone_offset = zone.topology_key, zone.max_skew - 1
    host_weight = math.log(len(nodes) + 2)
    zone_weight = 0.0
    if zone_counts:  # otherwise every zone's count is 0 and its weight multiplies nothing
        domains = {ni.labels.get(zone_key) for ni in nodes}
        domains.discard(None)
        zone_weight = math.log(len(domains) + 2)
    scores = [
        round((ni.owners.get(owner, 0) * host_weight + host_offset if HOSTNAME_LABEL in ni.labels else 0.0)
              + (zone_counts.get(ni.labels[zone_key], 0) * zone_weight + zone_offset
                 if zone_key in ni.labels else 0.0))
        for ni in nodes]
    lo, hi = min(scores), max(scores)
    if hi == 0:
        return [MAX_NODE_SCORE] * len(scores)
    top = hi + lo
    return [MAX_NODE_SCORE * (top - s) // hi for s in scores]


TopologyScore = dict[str, dict[str, int]]


def _add_term(scores: TopologyScore, term: PodAffinityTerm, weight: int, target: PodInfo,
              labels: Mapping[str, str]) -> None:
    value = labels.get(term.topology_key)
    if value is not None and term.matches(target):
        per = scores.setdefault(term.topology_key, {})
        per[value] = per.get(value, 0) + weight


def _existing_pod_terms(scores: TopologyScore, pod: PodInfo, other: PodInfo, labels: Mapping[str, str]) -> None:
    """What `other` (on a node with `labels`) contributes to `pod`'s topology scores through
    its own terms: required affinity with the hard weight, preferred terms with theirs."""
    for term in other.affinity_terms:
        _add_term(scores, term, HARD_POD_AFFINITY_WEIGHT, pod, labels)
    for weight, term in other.pref_affinity:
        _add_term(scores, term, weight, pod, labels)
    for weight, term in other.pref_anti:
        _add_term(scores, term, -weight, pod, labels)


def inter_pod_affinity_topology(pod: PodInfo, cache: ClusterCache) -> TopologyScore:
    """The InterPodAffinity pre-score: per topology key and value, the sum of the weights
    of the incoming pod's preferred terms that existing pods there match (anti-affinity
    subtracts), and of existing pods' terms that the incoming pod matches. Only pods with
    terms are visited unless the incoming pod has preferred terms of its own."""
    scores: TopologyScore = {}
    if pod.pref_affinity or pod.pref_anti:
        for ni in cache.nodes.values():
            labels = ni.labels
            if ni.node is None or not labels or not ni.pods:
                continue
            for other in ni.pods.values():
                for weight, term in pod.pref_affinity:
                    _add_term(scores, term, weight, other, labels)
                for weight, term in pod.pref_anti:
                    _add_term(scores, term, -weight, other, labels)
                if other.key in cache.affinity_pods:
                    _existing_pod_terms(scores, pod, other, labels)
        return scores
    for other in cache.affinity_pods.values():
        ni = cache.nodes.get(other.node_name)
        if ni is None or ni.node is None or not ni.labels:
            continue
        _existing_pod_terms(scores, pod, other, ni.labels)
    return scores


def normalize_min_max(scores: list[int]) -> list[int]:
    """InterPodAffinity's normalization: the lowest score maps to 0, the highest to 100."""
    lo, hi = min(scores), max(scores)
    if hi == lo:
        return [0] * len(scores)
    span = hi - lo
    return [int(MAX_NODE_SCORE * ((s - lo) / span)) for s in scores]


def inter_pod_affinity_scores(pod: PodInfo, cache: ClusterCache, nodes: list[NodeInfo]) -> list[int] | None:
    """Normalized InterPodAffinity scores of `nodes`, or None when nothing in the cluster
    can give a preference (the common case: no pod has terms), at the cost of two checks."""
    if not pod.pref_affinity and not pod.pref_anti and not cache.affinity_pods:
        return None
    topology = inter_pod_affinity_topology(pod, cache)
    if not topology:
        return None
    items = list(topology.items())
    raw = []
    for ni in nodes:
        labels = ni.labels
        total = 0
        for key, per in items:
            value = labels.get(key)
            if value is not None:
                total += per.get(value, 0)
        raw.append(total)
    return normalize_min_max(raw)


def score_nodes(pod: PodInfo, cache: ClusterCache, nodes: list[NodeInfo]) -> list[int]:
    """Weighted sum of the default profile's scores for each feasible node. Scores that
    would be equal on every node are left out: they cannot change the choice."""
    totals = resource_scores(pod, nodes)
    if pod.preferred_terms:
        aff = normalize([preferred_affinity_raw(pod, ni) for ni in nodes])
        totals = [t + a * WEIGHT_NODE_AFFINITY for t, a in zip(totals, aff, strict=True)]
    if pod.pref_affinity or pod.pref_anti or cache.affinity_pods:
        inter = inter_pod_affinity_scores(pod, cache, nodes)
        if inter is not None:
            totals = [t + a * WEIGHT_INTER_POD_AFFINITY for t, a in zip(totals, inter, strict=True)]
    if cache.prefer_tainted and any(ni.prefer_taints for ni in nodes):
        taint = normalize([intolerable_prefer_taints(pod, ni) for ni in nodes], reverse=True)
        totals = [t + s * WEIGHT_TAINT for t, s in zip(totals, taint, strict=True)]
    if pod.spread:
        spread = spread_scores(pod, cache, nodes)
        totals = [t + s * WEIGHT_SPREAD for t, s in zip(totals, spread, strict=True)]
    if cache.image_nodes:
        total_nodes = len(cache.order)
        totals = [t + image_locality_score(pod, ni, cache.image_nodes, total_nodes) * WEIGHT_IMAGE
                  for t, ni in zip(totals, nodes, strict=True)]
    return totals


def select_host(nodes: list[NodeInfo], scores: list[int], rng: random.Random) -> NodeInfo:
    """The best-scored node; ties broken uniformly at random."""
    top = max(scores)
    if scores.count(top) == 1:
        return nodes[scores.index(top)]
    ties = [i for i, s in enumerate(scores) if s == top]
    return nodes[ties[rng.randrange(len(ties))]]


# -- messages -----------------------------------------------------------------------------

def reasons_histogram(statuses: Mapping[str, Status]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reasons, _ in statuses.values():
        for r in reasons:
            counts[r] = counts.get(r, 0) + 1
    return counts


def nodes_available_message(num_nodes: int, reasons: Mapping[str, int]) -> str:
    """ "0/3 nodes are available: 1 node(s) had untolerated taint(s), 2 Insufficient cpu."
    (entries sorted as strings, count first, like the kube-scheduler)."""
    parts = sorted(f"{n} {r}" for r, n in reasons.items())
    msg = f"0/{num_nodes} nodes are available:"
    if parts:
        msg += " " + ", ".join(parts) + "."
    return msg


def failure_message(num_nodes: int, reasons: Mapping[str, int], preemption: str | None,
                    prefilter: str = "") -> str:
    """The whole FailedScheduling message. A pre-filter rejection (the same for every node)
    stands in for the per-node reasons, as upstream words it."""
    msg = f"0/{num_nodes} nodes are available: {prefilter}." if prefilter else \
        nodes_available_message(num_nodes, reasons)
    post = DRA_POSTFILTER
    if preemption:
        post += ", preemption: " + preemption
    return f"{msg} {post}" if preemption else f"{msg} {post}."


def post_filter(pod: PodInfo, cache: ClusterCache, statuses: Mapping[str, Status], chain: list[Filter],
                rng: random.Random, budgets: Sequence[Budget],
                nominated: Mapping[str, Sequence[PodInfo]] | None) -> tuple[str | None, Candidate | None]:
    """Preemption after every node failed: the node and victims to evict, or the
    message's preemption clause saying why there are none."""
    own = cache.nominated_node.get(pod.key) or (pod.pod.get("status") or {}).get("nominatedNodeName") or ""
    why = preemption.eligible(pod, cache, own, statuses)
    if why is not None:
        return why, None
    candidates, out = preemption.find_candidates(pod, cache, statuses, chain, budgets, rng, nominated)
    chosen = preemption.pick_candidate(candidates)
    if chosen is None:
        return nodes_available_message(len(cache.order), reasons_histogram(out)), None
    return None, chosen


def _fits_with_nominated(chain: list[Filter], ni: NodeInfo, extra: Sequence[PodInfo] | None) -> Status | None:
    """Upstream's two passes: with the room nominated pods keep on the node, and without
    them (a pod they would satisfy affinity for must not count on them)."""
    if extra:
        status = run_filters(chain, preemption.with_pods(ni, extra))
        if status is not None:
            return status
    return run_filters(chain, ni)


# -- the cycle ----------------------------------------------------------------------------

def rejected_everywhere(p: PodInfo, cache: ClusterCache, rng: random.Random, budgets: Sequence[Budget],
                        why: str) -> ScheduleResult:
    """A pre-filter said no for every node: nothing to filter, and evicting pods cannot help."""
    statuses: dict[str, Status] = {name: ((why,), False) for name in cache.order}
    nominated = preemption.nominated_for(p, cache) if cache.nominated else None
    pre, _ = post_filter(p, cache, statuses, [], rng, budgets, nominated)
    n = len(cache.order)
    return ScheduleResult(None, {why: n}, failure_message(n, {}, pre, why), 0, 0)


def schedule_one(pod: Mapping[str, Any] | PodInfo, snapshot: ClusterCache, rng: random.Random,
                 percentage_of_nodes_to_score: int = 0, budgets: Sequence[Budget] = (),
                 volumes: VolumeState | None = None) -> ScheduleResult:
    """Choose a node for `pod`: its nominated node if it fits there now, else filter nodes
    from a rotating start until enough feasible ones are found, score those, take the
    best. On failure every node has been tried and the result carries the reason counts,
    the FailedScheduling message and, when preemption helps, the node and victims
    (`budgets`: the PodDisruptionBudgets). Pods nominated to a node keep their room there
    against pods of lower or equal priority. `volumes`: the pod's claims (None without any),
    from `volumebinding.prefilter`."""
    p = pod_info(pod)  # type: ignore[arg-type]
    cache = snapshot
    names = cache.order
    n = len(names)
    if n == 0:
        return ScheduleResult(None, {}, ERR_NO_NODES)
    if volumes is not None and volumes.rejection:
        return rejected_everywhere(p, cache, rng, budgets, volumes.rejection)
    chain = build_filters(p, cache, volumes)
    nominated = preemption.nominated_for(p, cache) if cache.nominated else None
    own = cache.nominated_node.get(p.key)
    if own is not None:
        ni = cache.nodes.get(own)
        if ni is not None and ni.node is not None and \
                _fits_with_nominated(chain, ni, nominated.get(own) if nominated else None) is None:
            return ScheduleResult(own, {}, "", 1, 1)
    want = num_feasible_nodes_to_find(n, percentage_of_nodes_to_score)
    start = cache.next_start % n
    nodes = cache.nodes
    feasible: list[NodeInfo] = []
    statuses: dict[str, Status] = {}
    processed = 0
    # Most pods need only the filters every pod has (unschedulable, taints, resources):
    # a node that plainly passes them is feasible without running the chain.
    basic = len(chain) == BASIC_FILTERS and not p.scalar
    cpu, mem, eph = p.cpu, p.mem, p.eph
    for i in range(n):
        ni = nodes[names[(start + i) % n]]
        processed += 1
        if nominated is not None and ni.name in nominated:
            status = _fits_with_nominated(chain, ni, nominated[ni.name])
            if status is None:
                feasible.append(ni)
                if len(feasible) >= want:
                    break
            else:
                statuses[ni.name] = status
            continue
        if (basic and not ni.unschedulable and not ni.hard_taints and len(ni.pods) < ni.alloc_pods
                and cpu <= ni.alloc_cpu - ni.req_cpu and mem <= ni.alloc_mem - ni.req_mem
                and eph <= ni.alloc_eph - ni.req_eph):
            feasible.append(ni)
            if len(feasible) >= want:
                break
            continue
        status = None
        for f in chain:
            status = f(ni)
            if status is not None:
                break
        if status is None:
            feasible.append(ni)
            if len(feasible) >= want:
                break
        else:
            statuses[ni.name] = status
    cache.next_start = (start + processed) % n
    if not feasible:
        reasons = reasons_histogram(statuses)
        pre, chosen = post_filter(p, cache, statuses, chain, rng, budgets, nominated)
        return ScheduleResult(None, reasons, failure_message(n, reasons, pre), processed, 0, chosen)
    if len(feasible) == 1:
        return ScheduleResult(feasible[0].name, {}, "", processed, 1)
    scores = score_nodes(p, cache, feasible)
    chosen = select_host(feasible, scores, rng)
    return ScheduleResult(chosen.name, {}, "", processed, len(feasible))
