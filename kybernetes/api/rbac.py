"""RBAC decisions: who may make which request, from Roles, ClusterRoles and their bindings.

Pure. `RbacIndex` is built from the four RBAC kinds' stored objects and answers
`authorize(attrs)` with a few dictionary lookups (by subject, then by namespace) plus
the rules of the bindings found; it never walks every binding. Rule matching, the
allowed reason, the Forbidden message and the escalation check (`missing_rules`,
`escalation_message`) follow kube-apiserver's RBAC authorizer and its wording.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

MASTERS_GROUP = "system:masters"
SA_PREFIX = "system:serviceaccount:"
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class Attributes:
    """One request as the authorizer sees it (kube-apiserver's authorizer.Attributes)."""

    user: str
    groups: tuple[str, ...]
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""
    resource_request: bool = True


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True)
class Rule:
    """A PolicyRule with its lists as frozensets (membership tests on every request)."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    non_resource_urls: tuple[str, ...]
    source: Mapping[str, Any]

    @classmethod
    def of(cls, rule: Mapping[str, Any]) -> Rule:
        def strs(key: str) -> list[str]:
            v = rule.get(key)
            return [s for s in v if isinstance(s, str)] if isinstance(v, list) else []

        return cls(frozenset(strs("verbs")), frozenset(strs("apiGroups")), frozenset(strs("resources")),
                   frozenset(strs("resourceNames")), tuple(strs("nonResourceURLs")), rule)

    def allows(self, a: Attributes) -> bool:
        if "*" not in self.verbs and a.verb not in self.verbs:
            return False
        if not a.resource_request:
            return any(_url_matches(u, a.path) for u in self.non_resource_urls)
        if "*" not in self.api_groups and a.api_group not in self.api_groups:
            return False
        if not _resource_matches(self.resources, a.resource, a.subresource):
            return False
        return not self.resource_names or a.name in self.resource_names


def _resource_matches(resources: frozenset[str], resource: str, subresource: str) -> bool:
    if "*" in resources:
        return True
    if not subresource:
        return resource in resources
    return f"{resource}/{subresource}" in resources or f"*/{subresource}" in resources


def _url_matches(rule_url: str, path: str) -> bool:
    if rule_url == "*" or rule_url == path:
        return True
    return rule_url.endswith("*") and path.startswith(rule_url[:-1])


def _rules(obj: Mapping[str, Any]) -> tuple[Rule, ...]:
    rules = obj.get("rules")
    return tuple(Rule.of(r) for r in rules if isinstance(r, dict)) if isinstance(rules, list) else ()


@dataclass(frozen=True)
class _Binding:
    kind: str  # RoleBinding | ClusterRoleBinding
    name: str
    namespace: str  # "" for a ClusterRoleBinding
    role_kind: str
    role_name: str
    subject: str  # `Kind "name"` as the allowed reason words it


def _subject_text(subject: Mapping[str, Any], binding_namespace: str) -> str:
    kind, name = str(subject.get("kind") or ""), str(subject.get("name") or "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    m = obj.get("metadata")
    return m if isinstance(m, dict) else {}


class RbacIndex:
    """The RBAC objects of a cluster, indexed for decisions.

    `_by_user` / `_by_group`: subject name -> binding namespace ("" for cluster-wide) ->
    bindings. A request looks up its user and each of its groups, and in each only the
    cluster-wide and the request's namespace's bindings.
    """

    def __init__(self, roles: Iterable[Obj] = (), cluster_roles: Iterable[Obj] = (),
                 role_bindings: Iterable[Obj] = (), cluster_role_bindings: Iterable[Obj] = ()) -> None:
        self._roles: dict[tuple[str, str], tuple[Rule, ...]] = {}
        self._cluster_roles: dict[str, tuple[Rule, ...]] = {}
        self._by_user: dict[str, dict[str, list[_Binding]]] = {}
        self._by_group: dict[str, dict[str, list[_Binding]]] = {}
        for r in roles:
            m = _meta(r)
            self._roles[(str(m.get("namespace") or ""), str(m.get("name") or ""))] = _rules(r)
        for r in cluster_roles:
            self._cluster_roles[str(_meta(r).get("name") or "")] = _rules(r)
        # Cluster-wide bindings first, as upstream visits them first (the reason names the first match).
        for b in cluster_role_bindings:
            self._add_binding("ClusterRoleBinding", b)
        for b in role_bindings:
            self._add_binding("RoleBinding", b)

    def _add_binding(self, kind: str, b: Obj) -> None:
        m = _meta(b)
        ns = str(m.get("namespace") or "") if kind == "RoleBinding" else ""
        ref = b.get("roleRef") if isinstance(b.get("roleRef"), dict) else {}
        subjects = b.get("subjects") if isinstance(b.get("subjects"), list) else []
        for s in subjects:
            if not isinstance(s, dict):
                continue
            skind, sname = s.get("kind"), s.get("name")
            if not isinstance(sname, str) or not sname:
                continue
            entry = _Binding(kind, str(m.get("name") or ""), ns, str(ref.get("kind") or ""),
                             str(ref.get("name") or ""), _subject_text(s, ns))
            if skind == "User":
                self._by_user.setdefault(sname, {}).setdefault(ns, []).append(entry)
            elif skind == "Group":
                self._by_group.setdefault(sname, {}).setdefault(ns, []).append(entry)
            elif skind == "ServiceAccount":
                sa_ns = s.get("namespace") or ns
                if sa_ns:
                    user = f"{SA_PREFIX}{sa_ns}:{sname}"
                    self._by_user.setdefault(user, {}).setdefault(ns, []).append(entry)

    # -- lookups ---------------------------------------------------------------------------

    def _bindings(self, user: str, groups: Iterable[str], namespace: str) -> list[_Binding]:
        """The bindings that apply to this user in `namespace`: cluster-wide ones first."""
        found: list[_Binding] = []
        spaces = ("", namespace) if namespace else ("",)
        tables = [self._by_user.get(user)] + [self._by_group.get(g) for g in groups]
        for ns in spaces:
            for t in tables:
                if t is not None:
                    found.extend(t.get(ns, ()))
        return found

    def _role_rules(self, b: _Binding) -> tuple[Rule, ...] | None:
        if b.role_kind == "ClusterRole":
            return self._cluster_roles.get(b.role_name)
        if b.role_kind == "Role" and b.namespace:
            return self._roles.get((b.namespace, b.role_name))
        return None

    def authorize(self, attrs: Attributes) -> Decision:
        errors: list[str] = []
        for b in self._bindings(attrs.user, attrs.groups, attrs.namespace):
            rules = self._role_rules(b)
            if rules is None:
                errors.append(_not_found(b))
                continue
            for rule in rules:
                if rule.allows(attrs):
                    return Decision(True, f"RBAC: allowed by {_describe(b)}")
        return Decision(False, "RBAC: " + _aggregate(errors) if errors else "")

    def rules_for(self, user: str, groups: Iterable[str], namespace: str) -> tuple[list[Obj], list[Obj], str]:
        """(resource rules, non-resource rules, resolution error) that apply to the user in
        `namespace`, as SelfSubjectRulesReview reports them."""
        resource: list[Obj] = []
        non_resource: list[Obj] = []
        errors: list[str] = []
        for b in self._bindings(user, tuple(groups), namespace):
            rules = self._role_rules(b)
            if rules is None:
                errors.append(_not_found(b))
                continue
            for r in rules:
                if r.non_resource_urls:
                    non_resource.append({"verbs": sorted(r.verbs), "nonResourceURLs": list(r.non_resource_urls)})
                else:
                    out: Obj = {"verbs": sorted(r.verbs), "apiGroups": sorted(r.api_groups),
                                "resources": sorted(r.resources)}
                    if r.resource_names:
                        out["resourceNames"] = sorted(r.resource_names)
                    resource.append(out)
        return resource, non_resource, _aggregate(errors) if errors else ""

    def policy_rules(self, user: str, groups: Iterable[str], namespace: str) -> list[Rule]:
        """Every rule the user holds in `namespace` (cluster-wide ones included)."""
        out: list[Rule] = []
        for b in self._bindings(user, tuple(groups), namespace):
            out.extend(self._role_rules(b) or ())
        return out

    def role_rules(self, kind: str, namespace: str, name: str) -> tuple[Rule, ...] | None:
        """The rules of the role a roleRef names, None when it does not exist."""
        if kind == "ClusterRole":
            return self._cluster_roles.get(name)
        if kind == "Role":
            return self._roles.get((namespace, name))
        return None


def _not_found(b: _Binding) -> str:
    res = "clusterrole" if b.role_kind == "ClusterRole" else "role"
    return f'{res}.{RBAC_GROUP} "{b.role_name}" not found'


def _aggregate(errors: list[str]) -> str:
    # k8s.io/apimachinery's utilerrors.NewAggregate formatting.
    uniq = list(dict.fromkeys(errors))
    return uniq[0] if len(uniq) == 1 else "[" + ", ".join(uniq) + "]"


def _describe(b: _Binding) -> str:
    if b.kind == "ClusterRoleBinding":
        return f'ClusterRoleBinding "{b.name}" of {b.role_kind} "{b.role_name}" to {b.subject}'
    return f'RoleBinding "{b.name}/{b.namespace}" of {b.role_kind} "{b.role_name}" to {b.subject}'


# -- messages ----------------------------------------------------------------------------


def forbidden_reason(attrs: Attributes) -> str:
    """The part after "is forbidden: ", as kube-apiserver's forbiddenMessage words it."""
    if not attrs.resource_request:
        return f'User "{attrs.user}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope")
    return f'User "{attrs.user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'


def forbidden_message(attrs: Attributes, reason: str = "") -> str:
    """The whole Status message of a refused request, e.g. `pods "x" is forbidden: User
    "alice" cannot get resource "pods" in API group "" in the namespace "default"`."""
    detail = forbidden_reason(attrs)
    if reason:
        detail = f"{detail}: {reason}"
    return qualified_forbidden(attrs.api_group, attrs.resource if attrs.resource_request else "", attrs.name,
                               detail)


def qualified_forbidden(group: str, resource: str, name: str, detail: str) -> str:
    """apierrors.NewForbidden's message: `<resource.group> "<name>" is forbidden: <detail>`."""
    qualified = f"{resource}.{group}" if group and resource else resource
    if name:
        return f'{qualified} "{name}" is forbidden: {detail}'
    if qualified:
        return f"{qualified} is forbidden: {detail}"
    return f"forbidden: {detail}"


# -- escalation --------------------------------------------------------------------------


def _breakdown(rule: Mapping[str, Any]) -> list[Obj]:
    """One rule per verb × group × resource × name (or verb × URL), as upstream's BreakdownRule."""
    r = Rule.of(rule)
    out: list[Obj] = []
    groups = sorted(r.api_groups)
    for group in groups:
        for resource in sorted(r.resources):
            for verb in sorted(r.verbs):
                if r.resource_names:
                    out += [{"apiGroups": [group], "resources": [resource], "verbs": [verb], "resourceNames": [n]}
                            for n in sorted(r.resource_names)]
                else:
                    out.append({"apiGroups": [group], "resources": [resource], "verbs": [verb]})
    for url in r.non_resource_urls:
        out += [{"nonResourceURLs": [url], "verbs": [verb]} for verb in sorted(r.verbs)]
    return out


def _resources_cover(owner: frozenset[str], wanted: list[str]) -> bool:
    if "*" in owner:
        return True
    for res in wanted:
        if res in owner:
            continue
        if "/" not in res or "*/" + res.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: tuple[str, ...], wanted: list[str]) -> bool:
    return all(any(o == w or (o.endswith("*") and w.startswith(o[:-1])) for o in owner) for w in wanted)


def _covers(owner: Rule, sub: Mapping[str, Any]) -> bool:
    verbs = sub.get("verbs") or []
    groups = sub.get("apiGroups") or []
    names = sub.get("resourceNames") or []
    if not ("*" in owner.verbs or all(v in owner.verbs for v in verbs)):
        return False
    if not ("*" in owner.api_groups or all(g in owner.api_groups for g in groups)):
        return False
    if not _resources_cover(owner.resources, sub.get("resources") or []):
        return False
    if not _urls_cover(owner.non_resource_urls, sub.get("nonResourceURLs") or []):
        return False
    if not names:
        return not owner.resource_names
    return not owner.resource_names or all(n in owner.resource_names for n in names)


def missing_rules(owner: Iterable[Rule], wanted: Iterable[Mapping[str, Any]]) -> list[Obj]:
    """The pieces of `wanted` no rule of `owner` covers (upstream's validation.Covers)."""
    owned = list(owner)
    return [piece for rule in wanted if isinstance(rule, Mapping) for piece in _breakdown(rule)
            if not any(_covers(o, piece) for o in owned)]


def _go_list(values: list[str]) -> str:
    """A Go `%q` of a []string: `["a" "b"]`."""
    return "[" + " ".join(_go_quote(v) for v in values) + "]"


def _go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def compact_string(rule: Mapping[str, Any]) -> str:
    """rbacv1helpers.CompactString: `{APIGroups:[""], Resources:["pods"], Verbs:["get"]}`."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("nonResourceURLs", "NonResourceURLs"), ("resourceNames", "ResourceNames"),
                       ("verbs", "Verbs")):
        if rule.get(key):
            parts.append(f"{label}:{_go_list(list(rule[key]))}")
    return "{" + ", ".join(parts) + "}"


def _compact(rules: list[Obj]) -> list[Obj]:
    """Upstream's CompactRules: simple resource rules differing only in verbs become one."""
    merged: dict[tuple[str, str], Obj] = {}
    out: list[Obj] = []
    for r in rules:
        simple = (len(r.get("apiGroups") or []) == 1 and len(r.get("resources") or []) == 1
                  and not r.get("resourceNames") and not r.get("nonResourceURLs"))
        if not simple:
            out.append(r)
            continue
        key = (r["apiGroups"][0], r["resources"][0])
        if key in merged:
            merged[key]["verbs"] = merged[key]["verbs"] + [v for v in r["verbs"] if v not in merged[key]["verbs"]]
        else:
            merged[key] = {"apiGroups": list(r["apiGroups"]), "resources": list(r["resources"]),
                           "verbs": list(r["verbs"])}
            out.append(merged[key])
    return out


def escalation_message(user: str, groups: Iterable[str], missing: list[Obj]) -> str:
    """ConfirmNoEscalation's error text."""
    lines = sorted({compact_string(r) for r in _compact(missing)})
    return (f'user "{user}" (groups={_go_list(list(groups))}) is attempting to grant RBAC permissions '
            f"not currently held:\n" + "\n".join(lines))


# What the garbage collector writes (and selfLink, which nobody may set): an update
# changing nothing else grants nothing. The server's own bookkeeping (resourceVersion,
# managedFields) records the write and grants nothing either.
_GC_FIELDS = ("ownerReferences", "finalizers", "selfLink", "resourceVersion", "managedFields")


def only_gc_fields_changed(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether an update of an RBAC object changes only its owner references and
    finalizers (upstream's `IsOnlyMutatingGCFields`): such an update skips the
    escalation check, so the garbage collector, or anyone who may update the object,
    can finalize a Role holding rules they do not hold. Labels, annotations and the
    rules themselves still count as changes."""
    def rest(obj: Mapping[str, Any]) -> Obj:
        meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _GC_FIELDS}
        return {**obj, "metadata": meta}
    return rest(new) == rest(old)
