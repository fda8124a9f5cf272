"""Authorization of every request: RBAC from the watch cache, impersonation, escalation checks.

`Authorizer` keeps an `RbacIndex` (api/rbac.py) current: a listener on the watch cache
keeps the four RBAC kinds' objects by key and marks the index stale on a change; the
next decision rebuilds it (a request made after a binding was written is judged by it).
`system:masters` is allowed without a lookup. `request_attributes` maps a request to
kube-apiserver's authorizer attributes (RequestInfoFactory's rules), `impersonate`
applies the `Impersonate-*` headers, `check_escalation` refuses Roles and bindings
granting what their writer does not hold, and `reconcile_bootstrap` writes the default
policy (api/rbac_bootstrap.py) at start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from kybernetes.api import rbac_bootstrap
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.nodegraph import NODES_GROUP
from kybernetes.api.rbac import (
    MASTERS_GROUP,
    RBAC_GROUP,
    SA_PREFIX,
    Attributes,
    Decision,
    RbacIndex,
    escalation_message,
    forbidden_message,
    missing_rules,
    only_gc_fields_changed,
    qualified_forbidden,
)
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import auth
from kybernetes.apiserver.nodeauthz import NodeAuthorizer
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

log = logging.getLogger("kybernetes.apiserver.authz")

_PREFIX = f"/registry/{RBAC_GROUP}/"
_KINDS = ("roles", "clusterroles", "rolebindings", "clusterrolebindings")
_NAMESPACE_SUBRESOURCES = ("status", "finalize")
# Streaming pod subresources: kubectl opens them with a WebSocket GET; kube-apiserver
# (AuthorizePodWebsocketUpgradeCreatePermission) asks for `create` all the same.
_CREATE_SUBRESOURCES = ("exec", "attach", "portforward")
_METHOD_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch",
                 "DELETE": "delete"}
_TRUE = ("true", "1", "True")
_DECISION_CACHE = 4096
_FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                   {"verbs": ["*"], "nonResourceURLs": ["*"]}]
# What upstream's RBAC says for system:masters (through the default cluster-admin binding).
_MASTERS_REASON = ('RBAC: allowed by ClusterRoleBinding "cluster-admin" of ClusterRole "cluster-admin" '
                   'to Group "system:masters"')


def is_master(groups: Any) -> bool:
    return MASTERS_GROUP in groups


def request_attributes(user: str, groups: tuple[str, ...], method: str, path: str,
                       query: Mapping[str, str]) -> Attributes:
    """What a request asks, as kube-apiserver's RequestInfoFactory reads its URL."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        return Attributes(user, groups, method.lower(), path=path, resource_request=False)
    verb = _METHOD_VERBS.get(method, method.lower())
    if rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    if not rest:
        return Attributes(user, groups, verb, group, path=path)
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch") in _TRUE else "list"
        fs = query.get("fieldSelector", "")
        if fs.startswith("metadata.name=") and "," not in fs:
            name = fs[len("metadata.name="):]
        elif fs.startswith("metadata.name==") and "," not in fs:
            name = fs[len("metadata.name=="):]
    elif not name and verb == "delete":
        verb = "deletecollection"
    if sub in _CREATE_SUBRESOURCES and resource == "pods":
        verb = "create"
    return Attributes(user, groups, verb, group, resource, sub, namespace, name, path)


class Authorizer:
    """RBAC decisions for the server's requests, from the watch cache."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self._objects: dict[str, dict[str, Any]] = {k: {} for k in _KINDS}
        self._index: RbacIndex | None = None
        self._loaded = False
        # Decisions by (user, groups, method, path, query) for the current index: clients
        # repeat the same requests, and a hit costs one lookup instead of a parse and a match.
        self._decisions: dict[tuple[Any, ...], tuple[Attributes, Decision]] = {}
        self.rebuilds = 0
        cache.add_listener(self._on_event)
        # Asked first for node identities (upstream's Node,RBAC order); RBAC when it has no opinion.
        self.nodes = NodeAuthorizer(cache)

    def _on_event(self, ev: CacheEvent) -> None:
        if not ev.key.startswith(_PREFIX):
            return
        kind = ev.key[len(_PREFIX):].split("/", 1)[0]
        objs = self._objects.get(kind)
        if objs is None:
            return
        if ev.new is None:
            objs.pop(ev.key, None)
        else:
            objs[ev.key] = ev.new
        self._index = None
        self._decisions = {}

    def _load(self) -> None:
        # The listener sees changes from the moment it was added; what the cache held
        # before (loaded at start) is read once.
        for kind in _KINDS:
            for co in self.cache.list(f"{_PREFIX}{kind}/"):
                self._objects[kind].setdefault(co.key, co)
        self._loaded = True

    @property
    def index(self) -> RbacIndex:
        index = self._index
        if index is None:
            if not self._loaded:
                self._load()
            o = self._objects
            index = RbacIndex([c.obj for c in o["roles"].values()], [c.obj for c in o["clusterroles"].values()],
                              [c.obj for c in o["rolebindings"].values()],
                              [c.obj for c in o["clusterrolebindings"].values()])
            self._index = index
            self.rebuilds += 1
        return index

    def authorize(self, user: auth.UserInfo | Requester, attrs: Attributes) -> Decision:
        if is_master(attrs.groups):
            return Decision(True, "")
        return self._node_then_rbac(attrs)

    def decide(self, attrs: Attributes) -> Decision:
        """authorize() for callers that have only the attributes (the access reviews)."""
        if is_master(attrs.groups):
            return Decision(True, _MASTERS_REASON)
        return self._node_then_rbac(attrs)

    def _node_then_rbac(self, attrs: Attributes, field_selector: str = "") -> Decision:
        """The Node authorizer, then RBAC; a refusal gives both one's reasons, as
        upstream's union authorizer joins them."""
        node = self.nodes.authorize(attrs, field_selector)
        if node is None:
            return self.index.authorize(attrs)
        if node.allowed:
            return node
        rbac = self.index.authorize(attrs)
        if rbac.allowed:
            return rbac
        return Decision(False, ", ".join(r for r in (node.reason, rbac.reason) if r))

    def rules_for(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[list, list, str]:
        if is_master(groups):
            return ([{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                    [{"verbs": ["*"], "nonResourceURLs": ["*"]}], "")
        resource, non_resource, error = self.index.rules_for(user, groups, namespace)
        if NODES_GROUP in groups and user.startswith("system:node:"):
            # As upstream: a node's rules are not enumerable (they follow its pods).
            error = ", ".join(e for e in ("node authorizer does not support user rule resolution", error) if e)
        return resource, non_resource, error

    # -- the request pipeline -------------------------------------------------------------

    def check_request(self, user: auth.UserInfo, method: str, path: str, query: Mapping[str, str],
                      query_string: str) -> str:
        """Raise 403 unless RBAC allows the request; the allowing reason (for the audit log)."""
        if MASTERS_GROUP in user.groups:
            return ""
        groups = tuple(user.groups)
        if NODES_GROUP in groups:
            # Not kept per request: a node's reach changes as pods are bound to it.
            attrs = request_attributes(user.username, groups, method, path, query)
            decision = self._node_then_rbac(attrs, query.get("fieldSelector", ""))
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
            self.nodes.check_request(attrs)
            return decision.reason
        key = (user.username, groups, method, path, query_string)
        found = self._decisions.get(key) if self._index is not None else None
        if found is None:
            attrs = request_attributes(user.username, groups, method, path, query)
            found = (attrs, self.index.authorize(attrs))
            if len(self._decisions) >= _DECISION_CACHE:
                self._decisions = {}
            self._decisions[key] = found
        if not found[1].allowed:
            raise forbidden(found[0], found[1].reason)
        return found[1].reason

    def impersonate(self, user: auth.UserInfo, headers: Mapping[str, str], getall: Any) -> auth.UserInfo:
        """The user a request acts as after its `Impersonate-*` headers, each checked with
        the `impersonate` verb as kube-apiserver's impersonation filter does."""
        name = headers.get("Impersonate-User", "")
        groups = [g for g in getall("Impersonate-Group", []) if g]
        uid = headers.get("Impersonate-Uid", "")
        extra: dict[str, list[str]] = {}
        for key in headers:
            if key.lower().startswith("impersonate-extra-"):
                extra_key = _unescape(key[len("impersonate-extra-"):]).lower()
                extra.setdefault(extra_key, []).extend(v for v in getall(key, []))
        if not name:
            if groups or uid or extra:
                asked = [f"{{Group  {g}   }}" for g in groups] + ([f"{{UID  {uid}   }}"] if uid else [])
                asked += [f"{{UserExtra  {v}  {k} }}" for k, vs in extra.items() for v in vs]
                raise ApiError.bad_request(f"requested [{' '.join(asked)}] without impersonating a user")
            return user
        checks: list[Attributes] = []
        me, my_groups = user.username, tuple(user.groups)
        if name.startswith(SA_PREFIX) and name.count(":") == 3:
            ns, sa = name[len(SA_PREFIX):].split(":", 1)
            checks.append(Attributes(me, my_groups, "impersonate", "", "serviceaccounts", "", ns, sa))
        else:
            checks.append(Attributes(me, my_groups, "impersonate", "", "users", "", "", name))
        checks += [Attributes(me, my_groups, "impersonate", "", "groups", "", "", g) for g in groups]
        if uid:
            checks.append(Attributes(me, my_groups, "impersonate", "authentication.k8s.io", "uids", "", "", uid))
        checks += [Attributes(me, my_groups, "impersonate", "authentication.k8s.io", "userextras", k, "", v)
                   for k, vs in extra.items() for v in vs]
        for attrs in checks:
            decision = self.authorize(user, attrs)
            if not decision.allowed:
                raise forbidden(attrs, decision.reason)
        out_groups = list(groups)
        if name.startswith(SA_PREFIX) and not groups and name.count(":") == 3:
            ns = name[len(SA_PREFIX):].split(":", 1)[0]
            out_groups += ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
        if name == "system:anonymous":
            if auth.UNAUTHENTICATED_GROUP not in out_groups:
                out_groups.append(auth.UNAUTHENTICATED_GROUP)
        elif auth.AUTHENTICATED_GROUP not in out_groups:
            out_groups.append(auth.AUTHENTICATED_GROUP)
        return auth.UserInfo(username=name, uid=uid, groups=out_groups, extra=extra)

    # -- escalation -----------------------------------------------------------------------

    def check_escalation(self, info: ResourceInfo, obj: dict[str, Any], requester: Requester | None,
                         old: dict[str, Any] | None = None) -> None:
        """Refuse a Role/ClusterRole granting, or a binding to a role granting, rules the
        writer does not hold, unless they may `escalate` (roles) or `bind` (bindings).
        `old`: the stored object of an update; one changing only owner references and
        finalizers is not checked (as upstream)."""
        if info.group != RBAC_GROUP or requester is None or is_master(requester.groups):
            return
        if old is not None and only_gc_fields_changed(obj, old):
            return
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        namespace = str(meta.get("namespace") or "") if info.namespaced else ""
        user, groups = requester.username, tuple(requester.groups)
        if info.plural in ("roles", "clusterroles"):
            escalate = Attributes(user, groups, "escalate", RBAC_GROUP, info.plural, "", namespace, name)
            if self.index.authorize(escalate).allowed:
                return
            held = self.index.policy_rules(user, groups, namespace)
            if obj.get("aggregationRule") and missing_rules(held, _FULL_AUTHORITY):
                # An aggregation rule can gather anything: it takes everything to write one.
                raise ApiError.forbidden(
                    qualified_forbidden(RBAC_GROUP, info.plural, name,
                                        "must have cluster-admin privileges to use the aggregationRule"),
                    RBAC_GROUP, info.plural, name)
            rules = obj.get("rules") if isinstance(obj.get("rules"), list) else []
        elif info.plural in ("rolebindings", "clusterrolebindings"):
            ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
            kind, role = str(ref.get("kind") or ""), str(ref.get("name") or "")
            plural = "clusterroles" if kind == "ClusterRole" else "roles"
            bind = Attributes(user, groups, "bind", RBAC_GROUP, plural, "", namespace, role)
            if self.index.authorize(bind).allowed:
                return
            found = self.index.role_rules(kind, namespace, role)
            if found is None:
                # Upstream resolves the role for the comparison; a missing one cannot be bound.
                res = "clusterroles" if kind == "ClusterRole" else "roles"
                raise ApiError.not_found(RBAC_GROUP, res, role)
            rules = [dict(r.source) for r in found]
        else:
            return
        missing = missing_rules(self.index.policy_rules(user, groups, namespace), rules)
        if missing:
            raise ApiError.forbidden(
                qualified_forbidden(RBAC_GROUP, info.plural, name, escalation_message(user, groups, missing)),
                RBAC_GROUP, info.plural, name)


def forbidden(attrs: Attributes, reason: str = "") -> ApiError:
    """A 403 Status for a refused request, worded and detailed as kube-apiserver's."""
    message = forbidden_message(attrs, reason)
    if not attrs.resource_request:
        return ApiError(403, "Forbidden", message, {})
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.name:
        details["name"] = attrs.name
    if attrs.api_group:
        details["group"] = attrs.api_group
    return ApiError(403, "Forbidden", message, details)


def _unescape(key: str) -> str:
    from urllib.parse import unquote

    return unquote(key)


# -- the default policy --------------------------------------------------------------------


async def reconcile_bootstrap(registry: Registry, cache: WatchCache, service: Any) -> int:
    """Write the default ClusterRoles and ClusterRoleBindings that are missing or lack
    rules / subjects; returns how many objects were written."""
    from kybernetes.apiserver.resources import WriteContext

    written = 0
    for plural, desired in (("clusterroles", rbac_bootstrap.cluster_roles()),
                            ("clusterrolebindings", rbac_bootstrap.cluster_role_bindings())):
        info = registry.get(RBAC_GROUP, "v1", plural)
        if info is None:
            continue
        for obj in desired:
            name = obj["metadata"]["name"]
            co = cache.get(info.key(None, name))
            new = rbac_bootstrap.reconcile(co.obj if co is not None else None, obj)
            if new is None:
                continue
            ctx = WriteContext(field_manager="kybernetes-server")
            try:
                if co is None:
                    await service.create(info, None, new, ctx)
                else:
                    await service.update(info, None, name, new, ctx)
                written += 1
            except ApiError as e:
                if e.code != 409:
                    log.warning("could not write the default %s %s: %s", info.kind, name, e.message)
    return written
