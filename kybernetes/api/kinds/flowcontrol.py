"""flowcontrol.apiserver.k8s.io: API Priority and Fairness configuration, FlowSchemas and
PriorityLevelConfigurations, with upstream's defaulting, validation and columns, and
the bootstrap configuration every kube-apiserver keeps: the mandatory `exempt` and
`catch-all` objects (recreated if deleted) and the suggested ones.

The objects are stored and printed as upstream does; the server's own limiter
(`kybernetes/apiserver/flowcontrol.py`) does not classify requests by them yet.
"""

from __future__ import annotations

import copy
import math
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, set_default
from kybernetes.api.errors import FieldError, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1123_label_errors, dns1123_subdomain_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    column,
    dict_at,
    doc,
    get_path,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import as_dict, as_list, enum_errors, name_errors

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

GROUP = "flowcontrol.apiserver.k8s.io"
API_VERSION = f"{GROUP}/v1"
FLOW_SCHEMA = KindRef(GROUP, "FlowSchema")
PRIORITY_LEVEL = KindRef(GROUP, "PriorityLevelConfiguration")

# Set "false" on a bootstrap object to keep the server from putting its spec back.
AUTOUPDATE_ANNOTATION = "apf.kubernetes.io/autoupdate-spec"
EXEMPT = "exempt"
CATCH_ALL = "catch-all"

_SUBJECT_KINDS = ["Group", "ServiceAccount", "User"]
_DISTINGUISHERS = ["ByNamespace", "ByUser"]
_PL_TYPES = ["Exempt", "Limited"]
_LIMIT_RESPONSES = ["Queue", "Reject"]
_MAX_PRECEDENCE = 10000
# Shuffle sharding: a hand of H out of Q queues must fit in 60 bits of entropy.
_MAX_HASH_BITS = 60


# -- defaulting ---------------------------------------------------------------------------


def default_flow_schema(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "matchingPrecedence", 1000)


def default_priority_level(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    limited, exempt = spec.get("limited"), spec.get("exempt")
    if isinstance(limited, dict):
        set_default(limited, "nominalConcurrencyShares", 30)
        set_default(limited, "lendablePercent", 0)
        response = child_map(limited, "limitResponse")
        queuing = response.get("queuing")
        if isinstance(queuing, dict):
            set_default(queuing, "queues", 64)
            set_default(queuing, "handSize", 8)
            set_default(queuing, "queueLengthLimit", 50)
    if isinstance(exempt, dict):
        set_default(exempt, "nominalConcurrencyShares", 0)
        set_default(exempt, "lendablePercent", 0)


# -- validation ---------------------------------------------------------------------------


def _strings_required(path: str, values: Any, what: str) -> Errors:
    items = as_list(values)
    if not items:
        return [required(path, f"{what} must contain at least one value")]
    if "*" in items and len(items) > 1:
        return [invalid(path, items, f"if '*' is present, must not specify other {what}")]
    return []


def _validate_subject(path: str, subject: Any) -> Errors:
    s = as_dict(subject)
    kind = s.get("kind")
    errs = enum_errors(f"{path}.kind", kind, _SUBJECT_KINDS)
    members = {"User": "user", "Group": "group", "ServiceAccount": "serviceAccount"}
    for k, member in members.items():
        given = s.get(member) is not None
        if k == kind and not given:
            errs.append(required(f"{path}.{member}", f"{member} is required when subject kind is '{k}'"))
        elif k != kind and given:
            errs.append(forbidden(f"{path}.{member}", f"{member} is forbidden when subject kind is not '{k}'"))
    if kind == "ServiceAccount" and isinstance(s.get("serviceAccount"), dict):
        sa = s["serviceAccount"]
        if not sa.get("name"):
            errs.append(required(f"{path}.serviceAccount.name", "name is required"))
        elif sa["name"] != "*":
            errs += name_errors(dns1123_subdomain_errors, f"{path}.serviceAccount.name", sa["name"])
        if not sa.get("namespace"):
            errs.append(required(f"{path}.serviceAccount.namespace", "namespace is required"))
        else:
            errs += name_errors(dns1123_label_errors, f"{path}.serviceAccount.namespace", sa["namespace"])
    for member in ("user", "group"):
        if members.get(str(kind)) == member and isinstance(s.get(member), dict) and not s[member].get("name"):
            errs.append(required(f"{path}.{member}.name", "name is required"))
    return errs


def _validate_resource_rule(path: str, rule: Any) -> Errors:
    r = as_dict(rule)
    errs = _strings_required(f"{path}.verbs", r.get("verbs"), "verbs")
    errs += _strings_required(f"{path}.apiGroups", r.get("apiGroups"), "apiGroups")
    errs += _strings_required(f"{path}.resources", r.get("resources"), "resources")
    namespaces = as_list(r.get("namespaces"))
    if not namespaces and not r.get("clusterScope"):
        errs.append(required(f"{path}.namespaces",
                             "resource rules that are not cluster scoped must supply at least one namespace"))
    elif "*" in namespaces and len(namespaces) > 1:
        errs.append(invalid(f"{path}.namespaces", namespaces, "if '*' is present, must not specify other namespaces"))
    else:
        for i, ns in enumerate(namespaces):
            if ns != "*":
                errs += name_errors(dns1123_label_errors, f"{path}.namespaces[{i}]", ns)
    return errs


def _validate_non_resource_rule(path: str, rule: Any) -> Errors:
    r = as_dict(rule)
    errs = _strings_required(f"{path}.verbs", r.get("verbs"), "verbs")
    errs += _strings_required(f"{path}.nonResourceURLs", r.get("nonResourceURLs"), "nonResourceURLs")
    for i, url in enumerate(as_list(r.get("nonResourceURLs"))):
        text = str(url)
        if text == "*":
            continue
        if not text.startswith("/"):
            errs.append(invalid(f"{path}.nonResourceURLs[{i}]", text, "must start with slash"))
        elif "*" in text[:-1]:
            errs.append(invalid(f"{path}.nonResourceURLs[{i}]", text, "wildcard can only do suffix glob matching"))
    return errs


def validate_flow_schema(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = []
    precedence = spec.get("matchingPrecedence")
    if isinstance(precedence, int) and not isinstance(precedence, bool):
        if precedence <= 0:
            errs.append(invalid("spec.matchingPrecedence", precedence, "must be a positive value"))
        elif precedence > _MAX_PRECEDENCE:
            errs.append(invalid("spec.matchingPrecedence", precedence,
                                f"must not be greater than {_MAX_PRECEDENCE}"))
    if precedence == 1 and get_path(obj, "metadata", "name") != EXEMPT:
        errs.append(invalid("spec.matchingPrecedence", precedence,
                            "only the schema named 'exempt' may have matchingPrecedence 1"))
    method = spec.get("distinguisherMethod")
    if method is not None:
        errs += enum_errors("spec.distinguisherMethod.type", as_dict(method).get("type"), _DISTINGUISHERS)
    pl_name = get_path(spec, "priorityLevelConfiguration", "name")
    if not pl_name:
        errs.append(required("spec.priorityLevelConfiguration.name", "must reference a priority level"))
    else:
        errs += name_errors(dns1123_subdomain_errors, "spec.priorityLevelConfiguration.name", pl_name)
    for i, rule in enumerate(as_list(spec.get("rules"))):
        path = f"spec.rules[{i}]"
        r = as_dict(rule)
        subjects = as_list(r.get("subjects"))
        if not subjects:
            errs.append(required(f"{path}.subjects", "subjects must contain at least one value"))
        for j, subject in enumerate(subjects):
            errs += _validate_subject(f"{path}.subjects[{j}]", subject)
        resource_rules, non_resource_rules = as_list(r.get("resourceRules")), as_list(r.get("nonResourceRules"))
        if not resource_rules and not non_resource_rules:
            errs.append(required(path, "at least one of resourceRules and nonResourceRules has to be non-empty"))
        for j, rr in enumerate(resource_rules):
            errs += _validate_resource_rule(f"{path}.resourceRules[{j}]", rr)
        for j, nr in enumerate(non_resource_rules):
            errs += _validate_non_resource_rule(f"{path}.nonResourceRules[{j}]", nr)
    return errs


def _hand_bits(queues: int, hand: int) -> float:
    # log2(queues^hand): the entropy a hand of `hand` queues draws from `queues`.
    return hand * math.log2(queues) if queues > 0 else 0.0


def _validate_queuing(path: str, queuing: Obj) -> Errors:
    errs: Errors = []
    for key in ("queues", "handSize", "queueLengthLimit"):
        value = queuing.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            errs.append(invalid(f"{path}.{key}", value, "must be positive"))
    queues, hand = queuing.get("queues"), queuing.get("handSize")
    if isinstance(queues, int) and isinstance(hand, int) and queues > 0 and hand > 0:
        if hand > queues:
            errs.append(invalid(f"{path}.handSize", hand,
                                f"should not be greater than queues ({queues})"))
        elif _hand_bits(queues, hand) > _MAX_HASH_BITS:
            errs.append(invalid(f"{path}.handSize", hand,
                                f"required entropy bits of deckSize {queues} and handSize {hand} should not be "
                                f"greater than {_MAX_HASH_BITS}"))
    return errs


def _validate_percent(path: str, value: Any) -> Errors:
    if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 100:
        return [invalid(path, value, "must be between 0 and 100, inclusive")]
    return []


def _validate_shares(path: str, value: Any) -> Errors:
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return [invalid(path, value, "must be a non-negative integer")]
    return []


def validate_priority_level(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    name = get_path(obj, "metadata", "name")
    pl_type = spec.get("type")
    errs = enum_errors("spec.type", pl_type, _PL_TYPES)
    if (name == EXEMPT) != (pl_type == "Exempt") and pl_type in _PL_TYPES:
        errs.append(invalid("spec.type", pl_type, "type must be 'Exempt' if and only if name is 'exempt'"))
    limited, exempt = spec.get("limited"), spec.get("exempt")
    if pl_type == "Exempt":
        if limited is not None:
            errs.append(forbidden("spec.limited", "must be nil if the type is not Limited"))
        if isinstance(exempt, dict):
            errs += _validate_shares("spec.exempt.nominalConcurrencyShares", exempt.get("nominalConcurrencyShares"))
            errs += _validate_percent("spec.exempt.lendablePercent", exempt.get("lendablePercent"))
    elif pl_type == "Limited":
        if exempt is not None:
            errs.append(forbidden("spec.exempt", "must be nil if the type is Limited"))
        if not isinstance(limited, dict):
            errs.append(required("spec.limited", "must not be empty when type is Limited"))
        else:
            errs += _validate_shares("spec.limited.nominalConcurrencyShares",
                                     limited.get("nominalConcurrencyShares"))
            errs += _validate_percent("spec.limited.lendablePercent", limited.get("lendablePercent"))
            borrowing = limited.get("borrowingLimitPercent")
            if isinstance(borrowing, int) and not isinstance(borrowing, bool) and borrowing < 0:
                errs.append(invalid("spec.limited.borrowingLimitPercent", borrowing,
                                    "if specified, must be a non-negative integer"))
            response = as_dict(limited.get("limitResponse"))
            rtype = response.get("type")
            errs += enum_errors("spec.limited.limitResponse.type", rtype, _LIMIT_RESPONSES)
            queuing = response.get("queuing")
            if rtype == "Queue":
                if not isinstance(queuing, dict):
                    errs.append(required("spec.limited.limitResponse.queuing",
                                         "must not be empty if limitResponse.type is Queue"))
                else:
                    errs += _validate_queuing("spec.limited.limitResponse.queuing", queuing)
            elif rtype == "Reject" and queuing is not None:
                errs.append(forbidden("spec.limited.limitResponse.queuing",
                                      "must be nil if limited.limitResponse.type is not Limited"))
    return errs


# -- columns ------------------------------------------------------------------------------


def dangling_status(obj: Obj) -> str:
    """The MissingPL column: the status of the Dangling condition, `?` before it is known."""
    for cond in list_at(obj, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == "Dangling":
            return str(cond.get("status") or "?")
    return "?"


def _none_or(value: Any) -> Any:
    return "<none>" if value is None else value


def flow_schema_cells(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    method = get_path(spec, "distinguisherMethod", "type")
    return [name_of(obj), str(get_path(spec, "priorityLevelConfiguration", "name") or ""),
            spec.get("matchingPrecedence", 0), method or "<none>", age_of(obj, now), dangling_status(obj)]


def priority_level_cells(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    limited = spec.get("limited") if isinstance(spec.get("limited"), dict) else None
    shares: Any = "<none>"
    queues: Any = "<none>"
    hand: Any = "<none>"
    length: Any = "<none>"
    if limited is not None:
        shares = _none_or(limited.get("nominalConcurrencyShares"))
        queuing = get_path(limited, "limitResponse", "queuing")
        if isinstance(queuing, dict):
            queues, hand, length = (_none_or(queuing.get(k)) for k in ("queues", "handSize", "queueLengthLimit"))
    return [name_of(obj), str(spec.get("type") or ""), shares, queues, hand, length, age_of(obj, now)]


# -- the bootstrap configuration ----------------------------------------------------------


_ALL_RESOURCES = {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"], "clusterScope": True, "namespaces": ["*"]}
_ALL_NON_RESOURCES = {"verbs": ["*"], "nonResourceURLs": ["*"]}
_EVERYONE = ("system:unauthenticated", "system:authenticated")


def _groups(*names: str) -> list[Obj]:
    return [{"kind": "Group", "group": {"name": n}} for n in names]


def _users(*names: str) -> list[Obj]:
    return [{"kind": "User", "user": {"name": n}} for n in names]


def _kube_system_service_accounts(name: str = "*") -> list[Obj]:
    return [{"kind": "ServiceAccount", "serviceAccount": {"name": name, "namespace": "kube-system"}}]


def _meta(name: str) -> Obj:
    return {"name": name, "annotations": {AUTOUPDATE_ANNOTATION: "true"}}


def _flow_schema(name: str, level: str, precedence: int, method: str | None, subjects: list[Obj],
                 resource_rules: list[Obj] | None = None, non_resource_rules: list[Obj] | None = None) -> Obj:
    rule: Obj = {"subjects": subjects}
    if resource_rules is None and non_resource_rules is None:
        resource_rules, non_resource_rules = [dict(_ALL_RESOURCES)], [dict(_ALL_NON_RESOURCES)]
    if resource_rules:
        rule["resourceRules"] = resource_rules
    if non_resource_rules:
        rule["nonResourceRules"] = non_resource_rules
    spec: Obj = {"priorityLevelConfiguration": {"name": level}, "matchingPrecedence": precedence}
    if method:
        spec["distinguisherMethod"] = {"type": method}
    spec["rules"] = [rule]
    return {"apiVersion": API_VERSION, "kind": "FlowSchema", "metadata": _meta(name), "spec": spec}


def _limited(name: str, shares: int, lendable: int, queuing: tuple[int, int, int] | None) -> Obj:
    response: Obj = {"type": "Reject"}
    if queuing is not None:
        response = {"type": "Queue", "queuing": {"queues": queuing[0], "handSize": queuing[1],
                                                  "queueLengthLimit": queuing[2]}}
    return {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": _meta(name),
            "spec": {"type": "Limited", "limited": {"nominalConcurrencyShares": shares, "lendablePercent": lendable,
                                                   "limitResponse": response}}}


def _lease_rule(namespaces: list[str]) -> Obj:
    return {"verbs": ["get", "create", "update"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
            "namespaces": namespaces}


def mandatory_priority_levels() -> list[Obj]:
    exempt = {"apiVersion": API_VERSION, "kind": "PriorityLevelConfiguration", "metadata": _meta(EXEMPT),
              "spec": {"type": "Exempt", "exempt": {"nominalConcurrencyShares": 0, "lendablePercent": 0}}}
    return [exempt, _limited(CATCH_ALL, 5, 0, None)]


def mandatory_flow_schemas() -> list[Obj]:
    return [
        _flow_schema(EXEMPT, EXEMPT, 1, None, _groups("system:masters")),
        _flow_schema(CATCH_ALL, CATCH_ALL, 10000, "ByUser", _groups(*_EVERYONE)),
    ]


def suggested_priority_levels() -> list[Obj]:
    return [
        _limited("system", 30, 33, (64, 6, 50)),
        _limited("node-high", 40, 25, (64, 6, 50)),
        _limited("leader-election", 10, 0, (16, 4, 50)),
        _limited("workload-high", 40, 50, (128, 6, 50)),
        _limited("workload-low", 100, 90, (128, 6, 50)),
        _limited("global-default", 20, 50, (128, 6, 50)),
    ]


def suggested_flow_schemas() -> list[Obj]:
    controllers = _users("system:kube-controller-manager", "system:kube-scheduler")
    return [
        _flow_schema("system-nodes", "system", 500, "ByUser", _groups("system:nodes")),
        _flow_schema("system-node-high", "node-high", 400, "ByUser", _groups("system:nodes"), [
            {"verbs": ["*"], "apiGroups": [""], "resources": ["nodes", "nodes/status"], "clusterScope": True},
            {"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "namespaces": ["*"]},
        ]),
        _flow_schema("probes", EXEMPT, 2, None, _groups(*_EVERYONE), [], [
            {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/readyz", "/livez"]},
        ]),
        _flow_schema("system-leader-election", "leader-election", 100, "ByUser",
                     controllers + _kube_system_service_accounts(), [_lease_rule(["*"])]),
        _flow_schema("endpoint-controller", "workload-high", 150, "ByUser",
                     _users("system:kube-controller-manager") + _kube_system_service_accounts("endpoint-controller"),
                     [{"verbs": ["get", "create", "update"], "apiGroups": [""], "resources": ["endpoints"],
                       "namespaces": ["*"]}]),
        _flow_schema("workload-leader-election", "leader-election", 200, "ByUser", _kube_system_service_accounts(),
                     [_lease_rule(["*"])]),
        _flow_schema("kube-controller-manager", "workload-high", 800, "ByNamespace",
                     _users("system:kube-controller-manager")),
        _flow_schema("kube-scheduler", "workload-high", 800, "ByNamespace", _users("system:kube-scheduler")),
        _flow_schema("kube-system-service-accounts", "workload-high", 900, "ByNamespace",
                     _kube_system_service_accounts()),
        _flow_schema("service-accounts", "workload-low", 9000, "ByUser", _groups("system:serviceaccounts")),
        _flow_schema("global-default", "global-default", 9900, "ByUser", _groups(*_EVERYONE)),
    ]


def _autoupdate(existing: Obj, mandatory: bool) -> bool:
    """Whether the server may put a bootstrap object's spec back: always for a mandatory
    one; for a suggested one as its annotation says, or, without the annotation, while
    nobody has changed it (generation 1)."""
    if mandatory:
        return True
    annotations = get_path(existing, "metadata", "annotations")
    value = annotations.get(AUTOUPDATE_ANNOTATION) if isinstance(annotations, dict) else None
    if value is None:
        return get_path(existing, "metadata", "generation") in (None, 1)
    return str(value).lower() == "true"


def bootstrap_revision(existing: Obj, desired: Obj, mandatory: bool) -> Obj | None:
    """What the server writes over a stored bootstrap object (`desired` as defaulting
    leaves it), or None when it is as it should be. The autoupdate annotation records
    the decision; the `exempt` level keeps the concurrency shares its owner set."""
    autoupdate = _autoupdate(existing, mandatory)
    spec = copy.deepcopy(desired.get("spec"))
    if mandatory and get_path(existing, "metadata", "name") == EXEMPT and spec is not None and \
            isinstance(get_path(existing, "spec", "exempt"), dict):
        spec["exempt"] = copy.deepcopy(existing["spec"]["exempt"])
    change_spec = autoupdate and existing.get("spec") != spec
    annotations = get_path(existing, "metadata", "annotations")
    current_note = annotations.get(AUTOUPDATE_ANNOTATION) if isinstance(annotations, dict) else None
    note = "true" if autoupdate else "false"
    if not change_spec and current_note == note:
        return None
    out = copy.deepcopy(existing)
    meta = out.setdefault("metadata", {})
    meta["annotations"] = {**(meta.get("annotations") or {}), AUTOUPDATE_ANNOTATION: note}
    if change_spec:
        out["spec"] = spec
    return out


def dangling_condition(flow_schema: Obj, level_exists: bool, now: str) -> Obj:
    """The Dangling condition the configuration controller writes on a FlowSchema."""
    level = str(get_path(flow_schema, "spec", "priorityLevelConfiguration", "name") or "")
    if level_exists:
        return {"type": "Dangling", "status": "False", "lastTransitionTime": now, "reason": "Found",
                "message": f"This FlowSchema references the PriorityLevelConfiguration object named \"{level}\" "
                           "and it exists"}
    return {"type": "Dangling", "status": "True", "lastTransitionTime": now, "reason": "NotFound",
            "message": f"This FlowSchema references the PriorityLevelConfiguration object named \"{level}\" "
                       "but there is no such object"}


# -- strategies ---------------------------------------------------------------------------


class FlowSchemaStrategy(KindStrategy):
    refs = (FLOW_SCHEMA,)
    status_metadata = ()  # the status strategy keeps the stored ObjectMeta whole

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_flow_schema(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_flow_schema(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "flowcontrol.v1.FlowSchemaSpec"
        return [
            name_column(),
            column("PriorityLevel", doc(spec, "priorityLevelConfiguration")),
            column("MatchingPrecedence", doc(spec, "matchingPrecedence"), "string"),
            column("DistinguisherMethod", doc(spec, "distinguisherMethod")),
            age_column(),
            column("MissingPL", "references a broken or non-existent PriorityLevelConfiguration"),
        ]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return flow_schema_cells(obj, now)


class PriorityLevelConfigurationStrategy(KindStrategy):
    refs = (PRIORITY_LEVEL,)
    status_metadata = ()  # the status strategy keeps the stored ObjectMeta whole

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_priority_level(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_priority_level(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        queuing = "flowcontrol.v1.QueuingConfiguration"
        return [
            name_column(),
            column("Type", doc("flowcontrol.v1.PriorityLevelConfigurationSpec", "type")),
            column("NominalConcurrencyShares",
                   doc("flowcontrol.v1.LimitedPriorityLevelConfiguration", "nominalConcurrencyShares"), "string"),
            column("Queues", doc(queuing, "queues"), "string"),
            column("HandSize", doc(queuing, "handSize"), "string"),
            column("QueueLengthLimit", doc(queuing, "queueLengthLimit"), "string"),
            age_column(),
        ]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return priority_level_cells(obj, now)
