"""Rules about pods that several components share, kept once: a pod's key, its QoS
class, whether a toleration tolerates a taint, whether a pod's nodeSelector and node
affinity select a node, and what its phase and conditions say
(ready, terminal, terminating, active).

Pure functions over decoded objects (plain dicts); the API server, the scheduler, the
controllers and the node agent all read the same answers from here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from kybernetes.api.quantity import parse_quantity
from kybernetes.api.timefmt import parse_time

Obj = Mapping[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

QOS_GUARANTEED = "Guaranteed"
QOS_BURSTABLE = "Burstable"
QOS_BEST_EFFORT = "BestEffort"

# Only these resources decide the QoS class; extended resources and hugepages do not.
_QOS_RESOURCES = ("cpu", "memory")


# -- identity ---------------------------------------------------------------------------

def pod_key(pod: Obj) -> str:
    """"namespace/name", the key queues and caches use for a pod. A pod read back from the
    API always has a namespace; one built by hand without it counts as in "default"."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or 'default'}/{meta.get('name') or ''}"


# -- QoS class --------------------------------------------------------------------------

def _positive_quantities(resources: Mapping[str, Any] | None) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for name in _QOS_RESOURCES:
        q = parse_quantity((resources or {}).get(name))
        if q is not None and q > 0:
            out[name] = q
    return out


def _add_into(total: dict[str, Decimal], part: Mapping[str, Decimal]) -> None:
    for name, q in part.items():
        total[name] = total.get(name, Decimal(0)) + q


def qos_class(pod: Obj) -> str:
    """The pod's QoS class as Kubernetes computes it (ComputePodQOS).

    Only positive cpu and memory count. With pod-level `spec.resources` those decide
    alone; otherwise the containers' and init containers' amounts are summed. BestEffort
    when nothing is requested or limited; Guaranteed when every container (or the pod)
    limits both cpu and memory and the summed requests equal the summed limits;
    Burstable otherwise. Expects a defaulted pod (a limit without a request has had the
    request set to the limit), as every pod read back from the API is."""
    spec = pod.get("spec") or {}
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    pod_resources = spec.get("resources")
    if isinstance(pod_resources, Mapping) and pod_resources:
        requests = _positive_quantities(pod_resources.get("requests"))
        if pod_resources.get("limits"):
            limits = _positive_quantities(pod_resources.get("limits"))
            guaranteed = len(limits) == len(_QOS_RESOURCES)
    else:
        # Ephemeral containers cannot set resources, so they never count.
        for c in [*(spec.get("containers") or ()), *(spec.get("initContainers") or ())]:
            res = c.get("resources") or {}
            _add_into(requests, _positive_quantities(res.get("requests")))
            found = _positive_quantities(res.get("limits"))
            _add_into(limits, found)
            if len(found) != len(_QOS_RESOURCES):
                guaranteed = False
    if not requests and not limits:
        return QOS_BEST_EFFORT
    if guaranteed and all(limits.get(name) == q for name, q in requests.items()) \
            and len(requests) == len(limits):
        return QOS_GUARANTEED
    return QOS_BURSTABLE


# -- tolerations ------------------------------------------------------------------------

class Toleration(NamedTuple):
    key: str
    operator: str
    value: str
    effect: str

    @classmethod
    def of(cls, obj: Obj) -> Toleration:
        return cls(obj.get("key") or "", obj.get("operator") or "Equal", obj.get("value") or "",
                   obj.get("effect") or "")


class Taint(NamedTuple):
    key: str
    value: str
    effect: str

    @classmethod
    def of(cls, obj: Obj) -> Taint:
        return cls(obj.get("key") or "", obj.get("value") or "", obj.get("effect") or "")


def tolerates(toleration: Toleration, taint: Taint) -> bool:
    """Kubernetes' ToleratesTaint: an empty effect or key matches any; then `Exists`
    matches any value, `Equal` (the default) the same value, and an unknown operator
    nothing."""
    key, operator, value, effect = toleration
    if effect and effect != taint[2]:
        return False
    if key and key != taint[0]:
        return False
    if operator == "Exists":
        return True
    if operator in ("Equal", ""):
        return value == taint[1]
    return False


def toleration_matches(toleration: Obj, taint: Obj) -> bool:
    """`tolerates` for a toleration and a taint as they appear in objects."""
    return tolerates(Toleration.of(toleration), Taint.of(taint))


def pod_tolerations(pod: Obj) -> tuple[Toleration, ...]:
    return tuple(Toleration.of(t) for t in (pod.get("spec") or {}).get("tolerations") or ())


def tolerated(tolerations: Iterable[Toleration], taint: Taint) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


# -- node selection ---------------------------------------------------------------------
# Compiled once per pod (or DaemonSet template) and then matched against many nodes: the
# scheduler filters every node for every pod, so matching reads no dicts.

@dataclass(frozen=True, slots=True)
class NodeRequirement:
    """One NodeSelectorRequirement: on a label (matchExpressions) or, for `field`, on the
    node's `metadata.name` (matchFields, the only field that exists)."""

    key: str
    operator: str
    values: tuple[str, ...]
    field: bool = False

    @classmethod
    def of(cls, obj: Obj, field: bool = False) -> NodeRequirement:
        return cls(obj.get("key") or "", obj.get("operator") or "", tuple(obj.get("values") or ()), field)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.field:
            have: str | None = name if self.key == "metadata.name" else None
        else:
            have = labels.get(self.key)
        op = self.operator
        if op == "In":
            return have is not None and have in self.values
        if op == "NotIn":
            return have is None or have not in self.values
        if op == "Exists":
            return have is not None
        if op == "DoesNotExist":
            return have is None
        if op in ("Gt", "Lt"):
            if have is None or len(self.values) != 1:
                return False
            try:
                a, b = int(have), int(self.values[0])
            except ValueError:
                return False
            return a > b if op == "Gt" else a < b
        return False


NodeTerm = tuple[NodeRequirement, ...]


def compile_node_term(term: Obj) -> NodeTerm | None:
    """A nodeSelectorTerm as requirements; None for an empty term, which matches no node."""
    reqs = [NodeRequirement.of(e) for e in term.get("matchExpressions") or ()]
    reqs += [NodeRequirement.of(e, field=True) for e in term.get("matchFields") or ()]
    return tuple(reqs) if reqs else None


def node_term_matches(term: NodeTerm | None, name: str, labels: Mapping[str, str]) -> bool:
    """All of a term's requirements hold on the node (never, for an empty term)."""
    if term is None:
        return False
    return all(r.matches(name, labels) for r in term)


@dataclass(frozen=True, slots=True)
class RequiredNodeAffinity:
    """A pod spec's nodeSelector and required node affinity, which must both hold
    (Kubernetes' GetRequiredNodeAffinity). `terms` None: no required affinity."""

    node_selector: Mapping[str, str]
    terms: tuple[NodeTerm | None, ...] | None

    @classmethod
    def of(cls, spec: Obj) -> RequiredNodeAffinity:
        required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution")
        terms = None if required is None else tuple(
            compile_node_term(t) for t in required.get("nodeSelectorTerms") or ())
        return cls(spec.get("nodeSelector") or {}, terms)

    @property
    def restricts(self) -> bool:
        """Whether some node could fail it at all."""
        return bool(self.node_selector) or self.terms is not None

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        for k, v in self.node_selector.items():
            if labels.get(k) != v:
                return False
        if self.terms is not None:
            return any(node_term_matches(t, name, labels) for t in self.terms)
        return True

    def fits(self, node: Obj) -> bool:
        meta = node.get("metadata") or {}
        return self.matches(meta.get("name") or "", meta.get("labels") or {})


def preferred_node_terms(spec: Obj) -> tuple[tuple[int, NodeTerm | None], ...]:
    """A pod spec's preferred node affinity as (weight, compiled term) pairs."""
    node_aff = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    return tuple((int(p.get("weight") or 0), compile_node_term(p.get("preference") or {}))
                 for p in node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or ())


def pod_spec_fits_node(spec: Obj, node: Obj) -> bool:
    """A pod spec's nodeSelector and required node affinity both hold on `node`; callers
    that ask for many nodes compile `RequiredNodeAffinity.of(spec)` once instead."""
    return RequiredNodeAffinity.of(spec).fits(node)


# -- phase and conditions ---------------------------------------------------------------

def condition(obj: Obj, type_: str) -> Obj | None:
    """The status condition of this type of a pod or a node, if it has one."""
    for cond in (obj.get("status") or {}).get("conditions") or ():
        if cond.get("type") == type_:
            return cond
    return None


def pod_is_ready(pod: Obj) -> bool:
    cond = condition(pod, "Ready")
    return cond is not None and cond.get("status") == "True"


def readiness_gates_message(pod: Obj, conditions: Iterable[Obj]) -> str:
    """Why the pod's readiness gates keep it from Ready ("" when every gate's condition is
    True), worded as the kubelet's ReadinessGatesNotReady message."""
    by_type = {c.get("type"): c for c in conditions}
    unready = []
    for gate in (pod.get("spec") or {}).get("readinessGates") or ():
        kind = gate.get("conditionType", "")
        cond = by_type.get(kind)
        if cond is None:
            unready.append(f'corresponding condition of pod readiness gate "{kind}" does not exist.')
        elif cond.get("status") != "True":
            unready.append(f'the status of pod readiness gate "{kind}" is not "True", but {cond.get("status")}')
    return ", ".join(unready)


def pod_ready_since(pod: Obj) -> dt.datetime | None:
    """When a ready pod last became ready; None if it is not ready or the time is unknown."""
    cond = condition(pod, "Ready")
    if cond is None or cond.get("status") != "True":
        return None
    return parse_time(cond.get("lastTransitionTime"))


def pod_is_terminal(pod: Obj) -> bool:
    """Finished for good: phase Succeeded or Failed."""
    return (pod.get("status") or {}).get("phase") in TERMINAL_PHASES


def pod_is_terminating(pod: Obj) -> bool:
    return bool((pod.get("metadata") or {}).get("deletionTimestamp"))


def pod_is_active(pod: Obj) -> bool:
    """Counts toward a workload's replicas: not finished and not being deleted."""
    return not pod_is_terminal(pod) and not pod_is_terminating(pod)
