"""The Node authorizer and NodeRestriction admission's shell: keeps the node graph
(api/nodegraph.py) from the watch cache and applies the rules of api/nodegraph.py and
api/noderestriction.py to requests from node identities (`system:node:<name>`).

`authorize` answers before RBAC (upstream's `--authorization-mode=Node,RBAC`); it is not
cached per request like RBAC's decisions, since a pod bound a moment ago changes it.
`check_request` is NodeRestriction's part that the request's attributes and the cache
decide (deletes, evictions, another node's objects); `admit` is the part that needs the
written object (a Node's labels and taints, mirror pods, pod status, Lease names, the
node of a volume it provisions, its DNS EndpointSlice),
called by the ResourceService on every create and update; `check_token` judges a node's
TokenRequest body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kybernetes.api import noderestriction as nr
from kybernetes.api.errors import ApiError
from kybernetes.api.nodegraph import NodeGraph, node_authorize, node_identity, same_pod_references
from kybernetes.api.rbac import Attributes, Decision
from kybernetes.api.registry import ResourceInfo
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

_PODS = "/registry/core/pods/"
_VOLUMES = "/registry/core/persistentvolumes/"
_NODES = "/registry/core/nodes/"


class NodeAuthorizer:
    """Node authorization and restriction for the server's requests."""

    def __init__(self, cache: WatchCache) -> None:
        self.cache = cache
        self.graph = NodeGraph()
        self._loaded = False
        # Keys the listener saw before the first load: the load must not overwrite them
        # with what the cache held earlier.
        self._early: set[str] = set()
        cache.add_listener(self._on_event)

    def _on_event(self, ev: CacheEvent) -> None:
        key = ev.key
        if key.startswith(_PODS):
            if ev.old is not None and ev.new is not None and same_pod_references(ev.old.obj, ev.new.obj):
                return  # most pod writes are status writes: the graph stays as it is
            ns, _, name = key[len(_PODS):].partition("/")
            self.graph.set_pod(ns, name, ev.new.obj if ev.new is not None else None)
        elif key.startswith(_VOLUMES):
            self.graph.set_volume(key[len(_VOLUMES):], ev.new.obj if ev.new is not None else None)
        else:
            return
        if not self._loaded:
            self._early.add(key)

    def _load(self) -> None:
        for co in self.cache.list(_PODS):
            if co.key not in self._early:
                ns, _, name = co.key[len(_PODS):].partition("/")
                self.graph.set_pod(ns, name, co.obj)
        for co in self.cache.list(_VOLUMES):
            if co.key not in self._early:
                self.graph.set_volume(co.key[len(_VOLUMES):], co.obj)
        self._early.clear()
        self._loaded = True

    def authorize(self, attrs: Attributes, field_selector: str = "") -> Decision | None:
        """The Node authorizer's decision, or None for a requester that is no node."""
        node, is_node = node_identity(attrs.user, attrs.groups)
        if not is_node:
            return None
        if not self._loaded:
            self._load()
        return node_authorize(self.graph, node, attrs, field_selector)

    # -- NodeRestriction ------------------------------------------------------------------

    def _pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        co = self.cache.get(f"{_PODS}{namespace}/{name}")
        return co.obj if co is not None else None

    def check_request(self, attrs: Attributes) -> None:
        """Refuse, as NodeRestriction does, a node's delete or eviction of a pod not bound
        to it and its writes to another node's Node or Lease."""
        node, is_node = node_identity(attrs.user, attrs.groups)
        if not is_node or not attrs.resource_request:
            return
        group, resource, verb, sub = attrs.api_group, attrs.resource, attrs.verb, attrs.subresource
        reason = None
        if not node:
            reason = f'could not determine node from user "{attrs.user}"'
        elif group == "" and resource == "pods" and attrs.name and (
                (verb == "delete" and not sub) or (verb == "create" and sub == "eviction")):
            pod = self._pod(attrs.namespace, attrs.name)
            if pod is None:
                raise ApiError.not_found("", "pods", attrs.name)
            reason = nr.admit_pod_delete(node, pod) if verb == "delete" else nr.admit_pod_eviction(node, pod)
        elif group == "" and resource == "pods" and sub not in ("", "status", "eviction") and verb in (
                "create", "update", "patch", "delete"):
            reason = f"unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed"
        elif group == "" and resource == "nodes" and verb in ("update", "patch", "delete") and attrs.name:
            if attrs.name != node:
                reason = f'node "{node}" is not allowed to modify node "{attrs.name}"'
        elif group == "coordination.k8s.io" and resource == "leases" and verb in ("update", "patch", "delete"):
            reason = nr.admit_lease(node, attrs.namespace, attrs.name)
        elif group == "" and resource == "persistentvolumes" and verb == "delete" and attrs.name:
            co = self.cache.get(f"{_VOLUMES}{attrs.name}")
            if co is None:
                raise ApiError.not_found("", "persistentvolumes", attrs.name)
            reason = nr.admit_volume(node, co.obj)
        elif group == "" and resource == "persistentvolumes" and verb in ("update", "patch", "deletecollection"):
            reason = f'node "{node}" can only create and delete persistentvolumes'
        elif group == "discovery.k8s.io" and resource == "endpointslices" and verb in (
                "update", "patch", "delete", "deletecollection"):
            reason = nr.admit_endpoint_slice(node, attrs.namespace, attrs.name)
        if reason:
            raise _forbidden(group, resource, attrs.name, reason)

    def admit(self, operation: str, info: ResourceInfo, subresource: str, new: dict[str, Any],
              old: dict[str, Any] | None, requester: Any) -> None:
        """NodeRestriction on a create or update of a node's (`requester`) object."""
        if requester is None:
            return
        node, is_node = node_identity(requester.username, requester.groups)
        if not is_node:
            return
        meta = new.get("metadata") or {}
        name = str(meta.get("name") or "")
        reason = None
        group, plural = info.group, info.plural
        if not node:
            reason = f'could not determine node from user "{requester.username}"'
        elif group == "" and plural == "nodes":
            reason = nr.admit_node(node, operation, name, new, old)
        elif group == "" and plural == "pods":
            if operation == "create":
                node_co = self.cache.get(f"{_NODES}{node}")
                node_uid = str((node_co.obj.get("metadata") or {}).get("uid") or "") if node_co else None
                reason = nr.admit_pod_create(node, new, node_uid)
            elif subresource == "status" and old is not None:
                reason = nr.admit_pod_status(node, new, old)
            elif subresource == "":
                reason = f'unexpected operation "UPDATE", node "{node}" can only create and delete mirror pods'
        elif group == "" and plural == "persistentvolumeclaims":
            if subresource != "status" or old is None:
                reason = "may only update PVC status"
            else:
                reason = nr.admit_pvc_status(node, new, old)
        elif group == "coordination.k8s.io" and plural == "leases":
            reason = nr.admit_lease(node, str(meta.get("namespace") or ""), name)
        elif group == "" and plural == "persistentvolumes" and operation == "create":
            reason = nr.admit_volume(node, new)
        elif group == "discovery.k8s.io" and plural == "endpointslices":
            reason = nr.admit_endpoint_slice(node, str(meta.get("namespace") or ""), name)
        if reason:
            raise _forbidden(group, plural, name, reason)

    def check_token(self, user: Any, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """NodeRestriction on a node's TokenRequest: bound to one of its own pods."""
        node, is_node = node_identity(user.username, user.groups)
        if not is_node:
            return
        reason = nr.admit_token_request(node, namespace, body, self._pod)
        if reason:
            raise _forbidden("", "serviceaccounts", name, reason)


def _forbidden(group: str, resource: str, name: str, reason: str) -> ApiError:
    return ApiError.forbidden(nr.forbidden_message(resource, name, reason, group), group, resource, name)
