"""Node authorization, as kube-apiserver's Node authorizer decides it: a graph of what each
node's pods use, and the decision for a request from a node's identity.

A node authenticates as user `system:node:<name>` in group `system:nodes`. `NodeGraph`
records, per pod bound to a node, the Secrets, ConfigMaps, PersistentVolumeClaims,
ServiceAccount and ResourceClaims it uses, and per PersistentVolume its claim and the
Secrets it names; an object is reachable from a node when one of the node's pods uses
it (a volume through its claim). `node_authorize` is upstream's split: Secrets,
ConfigMaps, claims, volumes, ServiceAccount tokens, Leases, Nodes and Pods are decided
from the graph and the node's name; anything else by the `system:node` role's rules
(which the authorizer holds itself; the `system:node` ClusterRoleBinding has no subjects).
A "no" here is no opinion: RBAC is asked next.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from kybernetes.api.rbac import Attributes, Decision, Rule
from kybernetes.api.rbac_bootstrap import cluster_roles

Obj = dict[str, Any]

NODE_USER_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
NODE_LEASE_NAMESPACE = "kube-node-lease"

SECRET, CONFIGMAP, PVC, PV, SERVICEACCOUNT, RESOURCECLAIM, POD = (
    "secret", "configmap", "persistentvolumeclaim", "persistentvolume", "serviceaccount", "resourceclaim", "pod")

Ref = tuple[str, str, str]  # (type, namespace, name)

_NO_RELATION = "no relationship found between node '{}' and this object"


def node_identity(user: str, groups: Iterable[str]) -> tuple[str, bool]:
    """(node name, is a node) as upstream's NodeIdentifier: a node is in group
    `system:nodes` with a user name `system:node:<name>`; the name may be empty."""
    if NODES_GROUP not in groups or not user.startswith(NODE_USER_PREFIX):
        return "", False
    return user[len(NODE_USER_PREFIX):], True


# -- what a pod uses ----------------------------------------------------------------------

# Volume sources naming a Secret: (source key, field, nested field or "").
_SECRET_VOLUME_FIELDS = (("azureFile", "secretName", ""), ("cephfs", "secretRef", "name"),
                         ("cinder", "secretRef", "name"), ("flexVolume", "secretRef", "name"),
                         ("iscsi", "secretRef", "name"), ("rbd", "secretRef", "name"),
                         ("scaleIO", "secretRef", "name"), ("storageos", "secretRef", "name"),
                         ("csi", "nodePublishSecretRef", "name"))


def _containers(spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or []:
            if isinstance(c, Mapping):
                yield c


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def pod_references(pod: Mapping[str, Any]) -> set[Ref]:
    """The objects a pod uses, as upstream's graph populator records them."""
    meta, spec = _m(pod.get("metadata")), _m(pod.get("spec"))
    ns = str(meta.get("namespace") or "")
    out: set[Ref] = set()

    def add(kind: str, name: Any) -> None:
        if isinstance(name, str) and name:
            out.add((kind, ns, name))

    for ref in spec.get("imagePullSecrets") or []:
        add(SECRET, _m(ref).get("name"))
    for c in _containers(spec):
        for env in c.get("env") or []:
            source = _m(_m(env).get("valueFrom"))
            add(SECRET, _m(source.get("secretKeyRef")).get("name"))
            add(CONFIGMAP, _m(source.get("configMapKeyRef")).get("name"))
        for env_from in c.get("envFrom") or []:
            add(SECRET, _m(_m(env_from).get("secretRef")).get("name"))
            add(CONFIGMAP, _m(_m(env_from).get("configMapRef")).get("name"))
    pod_name = str(meta.get("name") or "")
    for v in spec.get("volumes") or []:
        v = _m(v)
        add(SECRET, _m(v.get("secret")).get("secretName"))
        add(CONFIGMAP, _m(v.get("configMap")).get("name"))
        add(PVC, _m(v.get("persistentVolumeClaim")).get("claimName"))
        if "ephemeral" in v and v.get("name"):
            # A generic ephemeral volume's claim is named after its pod and volume.
            add(PVC, f"{pod_name}-{v['name']}")
        for source in _m(v.get("projected")).get("sources") or []:
            source = _m(source)
            add(SECRET, _m(source.get("secret")).get("name"))
            add(CONFIGMAP, _m(source.get("configMap")).get("name"))
        for key, field, nested in _SECRET_VOLUME_FIELDS:
            value = _m(v.get(key)).get(field)
            add(SECRET, _m(value).get(nested) if nested else value)
    add(SERVICEACCOUNT, spec.get("serviceAccountName"))
    for claim in spec.get("resourceClaims") or []:
        add(RESOURCECLAIM, _m(claim).get("resourceClaimName"))
    for status in _m(pod.get("status")).get("resourceClaimStatuses") or []:
        add(RESOURCECLAIM, _m(status).get("resourceClaimName"))
    return out


def same_pod_references(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether `pod_references` (and the node) must be the same for both copies of a pod:
    what it reads lives in its spec and its resource claim statuses."""
    old_spec, new_spec = old.get("spec"), new.get("spec")
    if old_spec is not new_spec and old_spec != new_spec:
        return False
    old_status, new_status = _m(old.get("status")), _m(new.get("status"))
    return old_status.get("resourceClaimStatuses") == new_status.get("resourceClaimStatuses")


def volume_secrets(pv: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(namespace, name) of the Secrets a PersistentVolume's source names."""
    spec = _m(pv.get("spec"))
    out: set[tuple[str, str]] = set()
    for source in spec.values():
        if not isinstance(source, Mapping):
            continue
        for key, value in source.items():
            if key.endswith("SecretRef") or key == "secretRef":
                ref = _m(value)
                if ref.get("name"):
                    out.add((str(ref.get("namespace") or ""), str(ref["name"])))
    return out


# -- the graph ----------------------------------------------------------------------------


class NodeGraph:
    """Which node reaches which object, kept by `set_pod` / `set_volume` as pods and
    volumes change (a pod without spec.nodeName reaches nothing)."""

    def __init__(self) -> None:
        self._pods: dict[tuple[str, str], tuple[str, frozenset[Ref]]] = {}
        # object -> node -> how many of the node's pods use it
        self._reach: dict[Ref, dict[str, int]] = {}
        self._volumes: dict[str, tuple[tuple[str, str] | None, frozenset[tuple[str, str]]]] = {}
        self._secret_volumes: dict[tuple[str, str], set[str]] = {}

    def set_pod(self, namespace: str, name: str, pod: Mapping[str, Any] | None) -> None:
        key = (namespace, name)
        old = self._pods.pop(key, None)
        if old is not None:
            self._count(old[0], old[1], -1)
        node = str(_m((pod or {}).get("spec")).get("nodeName") or "")
        if pod is None or not node:
            return
        refs = frozenset(pod_references(pod) | {(POD, namespace, name)})
        self._pods[key] = (node, refs)
        self._count(node, refs, 1)

    def _count(self, node: str, refs: frozenset[Ref], delta: int) -> None:
        for ref in refs:
            nodes = self._reach.setdefault(ref, {})
            n = nodes.get(node, 0) + delta
            if n > 0:
                nodes[node] = n
            else:
                nodes.pop(node, None)
                if not nodes:
                    del self._reach[ref]

    def set_volume(self, name: str, pv: Mapping[str, Any] | None) -> None:
        old = self._volumes.pop(name, None)
        if old is not None:
            for secret in old[1]:
                names = self._secret_volumes.get(secret)
                if names is not None:
                    names.discard(name)
                    if not names:
                        del self._secret_volumes[secret]
        if pv is None:
            return
        ref = _m(_m(pv.get("spec")).get("claimRef"))
        claim = (str(ref.get("namespace") or ""), str(ref["name"])) if ref.get("name") else None
        secrets = frozenset(volume_secrets(pv))
        self._volumes[name] = (claim, secrets)
        for secret in secrets:
            self._secret_volumes.setdefault(secret, set()).add(name)

    def pod_node(self, namespace: str, name: str) -> str:
        """The node a pod is bound to ("" when unknown or unbound)."""
        found = self._pods.get((namespace, name))
        return found[0] if found is not None else ""

    def reaches(self, node: str, kind: str, namespace: str, name: str) -> bool:
        """Whether one of the node's pods uses the object (a volume, a volume's Secret,
        through the claim)."""
        if node in self._reach.get((kind, namespace, name), ()):
            return True
        if kind == PV:
            found = self._volumes.get(name)
            return bool(found and found[0] and node in self._reach.get((PVC, *found[0]), ()))
        if kind == SECRET:
            return any(self.reaches(node, PV, "", pv) for pv in self._secret_volumes.get((namespace, name), ()))
        return False


# -- decisions ----------------------------------------------------------------------------

# Upstream's NodeRules(): the system:node role, held here rather than bound to the group.
_NODE_RULES = tuple(Rule.of(rule) for role in cluster_roles() if role["metadata"]["name"] == "system:node"
                    for rule in role["rules"])
_NO_OPINION = Decision(False, "")


def field_selector_requires(selector: str, field: str, value: str) -> bool:
    """Whether a fieldSelector holds `field=value` (or `==`) among its requirements."""
    for part in selector.split(","):
        if "!=" in part:
            continue
        key, sep, val = part.partition("==") if "==" in part else part.partition("=")
        if sep and key.strip() == field and val.strip() == value:
            return True
    return False


def node_authorize(graph: NodeGraph, node: str, attrs: Attributes, field_selector: str = "") -> Decision:
    """Upstream's NodeAuthorizer.Authorize for a request of node `node`: allowed, or no
    opinion with its reason (RBAC decides next)."""
    if not node:
        return Decision(False, f'unknown node for user "{attrs.user}"')
    if attrs.resource_request:
        group, resource, verb, sub = attrs.api_group, attrs.resource, attrs.verb, attrs.subresource
        if group == "":
            if resource in ("secrets", "configmaps"):
                return _read_namespaced(graph, node, SECRET if resource == "secrets" else CONFIGMAP, attrs)
            if resource == "persistentvolumeclaims":
                if sub == "status":
                    if verb not in ("update", "patch"):
                        return Decision(False, "can only get/update/patch this type")
                    return _related(graph, node, PVC, attrs)
                return _get(graph, node, PVC, attrs)
            if resource == "persistentvolumes":
                return _get(graph, node, PV, attrs)
            if resource == "serviceaccounts":
                if verb != "create" or not attrs.name:
                    return Decision(False, "can only create tokens for individual service accounts")
                if sub != "token":
                    return Decision(False, "can only create token subresource of serviceaccount")
                return _related(graph, node, SERVICEACCOUNT, attrs)
            if resource == "nodes":
                return _node(node, attrs)
            if resource == "pods":
                return _pod(graph, node, attrs, field_selector)
        elif group == "coordination.k8s.io" and resource == "leases":
            if verb not in ("get", "create", "update", "patch", "delete"):
                return Decision(False, "can only get, create, update, patch, or delete a node lease")
            if attrs.namespace != NODE_LEASE_NAMESPACE:
                return Decision(False, f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace')
            if verb != "create" and attrs.name != node:
                return Decision(False, "can only access node lease with the same name as the requesting node")
            return Decision(True, "")
        elif group == "resource.k8s.io" and resource == "resourceclaims":
            return _get(graph, node, RESOURCECLAIM, attrs)
        elif group == "storage.k8s.io" and resource == "csinodes":
            if verb not in ("get", "create", "update", "patch", "delete"):
                return Decision(False, "can only get, create, update, patch, or delete a CSINode")
            if sub:
                return Decision(False, "cannot authorize CSINode subresources")
            if verb != "create" and attrs.name != node:
                return Decision(False, "can only access CSINode with the same name as the requesting node")
            return Decision(True, "")
    if any(rule.allows(attrs) for rule in _NODE_RULES):
        return Decision(True, "")
    return _NO_OPINION


def _read_namespaced(graph: NodeGraph, node: str, kind: str, attrs: Attributes) -> Decision:
    if attrs.verb not in ("get", "list", "watch"):
        return Decision(False, "can only read resources of this type")
    if attrs.subresource:
        return Decision(False, "cannot read subresource")
    if not attrs.namespace:
        return Decision(False, "can only read namespaced object of this type")
    return _related(graph, node, kind, attrs)


def _get(graph: NodeGraph, node: str, kind: str, attrs: Attributes) -> Decision:
    if attrs.verb != "get":
        return Decision(False, "can only get individual resources of this type")
    if attrs.subresource:
        return Decision(False, "cannot get subresource")
    return _related(graph, node, kind, attrs)


def _related(graph: NodeGraph, node: str, kind: str, attrs: Attributes) -> Decision:
    if not attrs.name:
        return Decision(False, "No Object name found")
    if graph.reaches(node, kind, attrs.namespace, attrs.name):
        return Decision(True, "")
    return Decision(False, _NO_RELATION.format(node))


def _node(node: str, attrs: Attributes) -> Decision:
    verb = attrs.verb
    if attrs.subresource == "":
        if verb in ("create", "update", "patch"):
            # NodeRestriction limits a node to writing its own Node.
            return Decision(True, "")
        if verb in ("get", "list", "watch"):
            # By name, not through the graph: a node reads its Node before creating it.
            if attrs.name == node:
                return Decision(True, "")
            if not attrs.name:
                return Decision(False, f"node '{node}' cannot read all nodes, only its own Node object")
            return Decision(False, f"node '{node}' cannot read '{attrs.name}', only its own Node object")
    elif attrs.subresource == "status" and verb in ("update", "patch"):
        return Decision(True, "")
    return _NO_OPINION


def _pod(graph: NodeGraph, node: str, attrs: Attributes, field_selector: str) -> Decision:
    verb, sub = attrs.verb, attrs.subresource
    if sub == "":
        if verb == "get":
            return _get(graph, node, POD, attrs)
        if verb in ("list", "watch"):
            if field_selector_requires(field_selector, "spec.nodeName", node):
                return Decision(True, "")
            if attrs.name:
                return _related(graph, node, POD, attrs)
            return Decision(False, "can only list/watch pods with spec.nodeName field selector")
        if verb in ("create", "delete"):
            # Mirror pods; NodeRestriction limits them to pods bound to the node.
            return Decision(True, "")
    elif sub == "status" and verb in ("update", "patch"):
        return Decision(True, "")
    elif sub == "eviction" and verb == "create":
        return Decision(True, "")
    return _NO_OPINION
