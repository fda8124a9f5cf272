"""RBAC: Roles, ClusterRoles and their bindings."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar

from kybernetes.api.defaults import child_map, dicts, is_unset, set_default
from kybernetes.api.errors import FieldError, invalid, not_supported, required
from kybernetes.api.kinds.base import CreatedAtStrategy, KindRef, KindStrategy
from kybernetes.api.names import path_segment_name_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_str,
    column,
    dict_at,
    doc,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import GoValue, as_dict, as_list, enum_errors, go_strings, name_errors

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


_RBAC_GROUP = "rbac.authorization.k8s.io"


def _validate_rules(rules: Any, namespaced: bool) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        p = f"rules[{i}]"
        if not isinstance(rule, dict):
            continue
        if not rule.get("verbs"):
            errs.append(required(f"{p}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs")
        if urls:
            if namespaced:
                errs.append(invalid(f"{p}.nonResourceURLs", GoValue(go_strings(urls)),
                                    "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(invalid(f"{p}.nonResourceURLs", GoValue(go_strings(urls)),
                                    "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            errs.append(required(f"{p}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(required(f"{p}.resources", "resource rules must supply at least one resource"))
    return errs


def _validate_role(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_rules(obj.get("rules"), info.namespaced)


def _validate_binding(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    kinds = ["Role", "ClusterRole"] if info.namespaced else ["ClusterRole"]
    errs += enum_errors("roleRef.apiGroup", ref.get("apiGroup"), [_RBAC_GROUP])
    errs += enum_errors("roleRef.kind", ref.get("kind"), kinds)
    if not ref.get("name"):
        errs.append(required("roleRef.name"))
    else:
        errs += name_errors(path_segment_name_errors, "roleRef.name", ref["name"])
    for i, subject in enumerate(as_list(obj.get("subjects"))):
        p = f"subjects[{i}]"
        if not isinstance(subject, dict):
            continue
        if not subject.get("name"):
            errs.append(required(f"{p}.name"))
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                errs.append(not_supported(f"{p}.apiGroup", subject["apiGroup"], [""]))
            if not info.namespaced and not subject.get("namespace"):
                errs.append(required(f"{p}.namespace"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != _RBAC_GROUP:
                errs.append(not_supported(f"{p}.apiGroup", subject.get("apiGroup") or "", [_RBAC_GROUP]))
        else:
            errs.append(not_supported(f"{p}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    return errs


def _validate_binding_update(new: Obj, old: Obj) -> Errors:
    if new.get("roleRef") != old.get("roleRef"):
        ref = as_dict(new.get("roleRef"))
        shown = GoValue(f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
                        f'Name:"{ref.get("name", "")}"}}')
        return [invalid("roleRef", shown, "cannot change roleRef")]
    return []


def _default_binding(obj: Obj) -> None:
    role_ref = child_map(obj, "roleRef")
    set_default(role_ref, "apiGroup", "rbac.authorization.k8s.io")
    for subject in dicts(obj.get("subjects")):
        if is_unset(subject, "apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


def _columns_binding(kind: str, what: str) -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Role", doc(f"rbac.v1.{kind}", "roleRef")),
        age_column(),
        column("Users", f"Users in the {what}", priority=1),
        column("Groups", f"Groups in the {what}", priority=1),
        column("ServiceAccounts", f"ServiceAccounts in the {what}", priority=1),
    ]


def _subjects(obj: Obj) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for subject in list_at(obj, "subjects"):
        if not isinstance(subject, Mapping):
            continue
        kind = subject.get("kind")
        if kind == "User":
            users.append(as_str(subject.get("name")))
        elif kind == "Group":
            groups.append(as_str(subject.get("name")))
        elif kind == "ServiceAccount":
            sas.append(f"{as_str(subject.get('namespace'))}/{as_str(subject.get('name'))}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


def _cells_binding(obj: Obj, now: datetime) -> Cells:
    ref = dict_at(obj, "roleRef")
    return [name_of(obj), f"{as_str(ref.get('kind'))}/{as_str(ref.get('name'))}", age_of(obj, now), *_subjects(obj)]


# -- strategies ---------------------------------------------------------------------------

class RoleStrategy(CreatedAtStrategy):
    refs = (KindRef("rbac.authorization.k8s.io", "Role"), KindRef("rbac.authorization.k8s.io", "ClusterRole"))

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_role(info, obj)


class RoleBindingStrategy(KindStrategy):
    refs = (KindRef("rbac.authorization.k8s.io", "RoleBinding"),)
    # The kind and the JSON name its table's column descriptions speak of.
    column_kind: ClassVar[tuple[str, str]] = ("RoleBinding", "roleBinding")

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_binding(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_binding(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_binding_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_binding(*self.column_kind)

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_binding(obj, now)


class ClusterRoleBindingStrategy(RoleBindingStrategy):
    refs = (KindRef("rbac.authorization.k8s.io", "ClusterRoleBinding"),)
    column_kind = ("ClusterRoleBinding", "clusterRoleBinding")
