"""Validation of a pod spec's scheduling fields, `schedulingGates` and
`topologySpreadConstraints`, in upstream's order and words, for pods and pod templates
alike. Imports nothing of `validation` (which calls it): the label selector rule comes in
as an argument."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from kybernetes.api.names import qualified_name_errors

Errors = list[FieldError]
SelectorRule = Callable[[str, Any], Errors]

_NOT_POSITIVE = "must be greater than zero"
_WHEN_UNSATISFIABLE = ["DoNotSchedule", "ScheduleAnyway"]
_INCLUSION_POLICIES = ["Honor", "Ignore"]


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_scheduling_gates(path: str, gates: Any) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    for i, gate in enumerate(_as_list(gates)):
        name = _as_dict(gate).get("name")
        p = f"{path}[{i}]"
        if not isinstance(name, str) or not name:
            errs.append(required(f"{p}.name"))
            continue
        errs += [invalid(p, name, m) for m in qualified_name_errors(name)]
        if name in seen:
            errs.append(duplicate(p, name))
        seen.add(name)
    return errs


def _label_name_errors(path: str, keys: Any) -> Errors:
    errs: Errors = []
    for i, key in enumerate(_as_list(keys)):
        if isinstance(key, str):
            errs += [invalid(f"{path}[{i}]", key, m) for m in qualified_name_errors(key)]
    return errs


def validate_topology_spread_constraints(path: str, constraints: Any, selector_errors: SelectorRule) -> Errors:
    """Upstream's validateTopologySpreadConstraints, in its order and words;
    `selector_errors` validates a label selector (validation.validate_label_selector)."""
    items = [c if isinstance(c, dict) else {} for c in _as_list(constraints)]
    errs: Errors = []
    for i, c in enumerate(items):
        p = f"{path}[{i}]"
        skew = c.get("maxSkew")
        if not _is_int(skew) or skew <= 0:
            errs.append(invalid(f"{p}.maxSkew", skew if skew is not None else 0, _NOT_POSITIVE))
        if not c.get("topologyKey"):
            errs.append(required(f"{p}.topologyKey", "can not be empty"))
        when = c.get("whenUnsatisfiable")
        if when not in _WHEN_UNSATISFIABLE:
            errs.append(not_supported(f"{p}.whenUnsatisfiable", when or "", _WHEN_UNSATISFIABLE))
        for later in items[i + 1:]:
            if later.get("topologyKey") == c.get("topologyKey") and later.get("whenUnsatisfiable") == when:
                errs.append(duplicate(f"{p}.{{topologyKey, whenUnsatisfiable}}",
                                      f"{{{c.get('topologyKey') or ''}, {when or ''}}}"))
                break
        domains = c.get("minDomains")
        if domains is not None:
            if not _is_int(domains) or domains <= 0:
                errs.append(invalid(f"{p}.minDomains", domains, _NOT_POSITIVE))
            if when != "DoNotSchedule":
                errs.append(invalid(f"{p}.minDomains", domains,
                                    f"can only use minDomains if whenUnsatisfiable=DoNotSchedule, not {when or ''}"))
        for key in ("nodeAffinityPolicy", "nodeTaintsPolicy"):
            policy = c.get(key)
            if policy is not None and policy not in _INCLUSION_POLICIES:
                errs.append(not_supported(f"{p}.{key}", policy, _INCLUSION_POLICIES))
        if _as_list(c.get("matchLabelKeys")):
            if c.get("labelSelector") is None:
                errs.append(forbidden(f"{p}.matchLabelKeys", "must not be specified when labelSelector is not set"))
            errs += _label_name_errors(f"{p}.matchLabelKeys", c.get("matchLabelKeys"))
        errs += selector_errors(f"{p}.labelSelector", c.get("labelSelector"))
    return errs


def validate_spec_scheduling(path: str, spec: dict[str, Any], selector_errors: SelectorRule) -> Errors:
    errs = validate_scheduling_gates(f"{path}.schedulingGates", spec.get("schedulingGates"))
    errs += validate_topology_spread_constraints(f"{path}.topologySpreadConstraints",
                                                 spec.get("topologySpreadConstraints"), selector_errors)
    return errs
