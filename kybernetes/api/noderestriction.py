"""NodeRestriction admission, as upstream's plugin words and decides it: what a node's
identity (`system:node:<name>`) may write.

A node writes only its own Node (never its taints, never labels outside the kubelet's
set: no `node-restriction.kubernetes.io/`, no other `kubernetes.io` / `k8s.io` labels such
as `node-role.kubernetes.io/`), creates only mirror pods bound to itself, deletes, evicts
and updates the status of only pods bound to itself, requests ServiceAccount tokens only
bound to its own pods, and writes only its own Lease in kube-node-lease. Beyond upstream, for what kybernetes'
agent runs itself: a node writes only volumes pinned to itself (its local-path
provisioner) and only its own DNS EndpointSlice (`kube-system/kube-dns-<node>`). Each function
returns None (admitted) or the reason of the refusal; the shell turns it into a 403.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kybernetes.api.nodegraph import CONFIGMAP, NODE_LEASE_NAMESPACE, PVC, SECRET, pod_references
from kybernetes.api.rbac import qualified_forbidden

Obj = Mapping[str, Any]

MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
NODE_RESTRICTION_NAMESPACE = "node-restriction.kubernetes.io"
# The labels a kubelet sets on its Node itself (k8s.io/kubelet/pkg/apis).
KUBELET_LABELS = frozenset((
    "kubernetes.io/hostname", "topology.kubernetes.io/zone", "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type", "kubernetes.io/os",
    "kubernetes.io/arch", "beta.kubernetes.io/os", "beta.kubernetes.io/arch"))
KUBELET_LABEL_NAMESPACES = ("kubelet.kubernetes.io", "node.kubernetes.io")


def forbidden_message(resource: str, name: str, reason: str, group: str = "") -> str:
    """admission.NewForbidden's message: `<resource> "<name>" is forbidden: <reason>`."""
    return qualified_forbidden(group, resource, name, reason)


def _m(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _label_namespace(key: str) -> str:
    return key.split("/", 1)[0] if "/" in key else ""


def _in_namespace(namespace: str, domain: str) -> bool:
    return namespace == domain or namespace.endswith("." + domain)


def is_kubelet_label(key: str) -> bool:
    return key in KUBELET_LABELS or any(_in_namespace(_label_namespace(key), ns) for ns in KUBELET_LABEL_NAMESPACES)


def forbidden_labels(new: Mapping[str, str] | None, old: Mapping[str, str] | None) -> list[str]:
    """The labels added, removed or changed between `old` and `new` that a node may not
    set itself, sorted."""
    new, old = dict(new or {}), dict(old or {})
    modified = {k for k in new.keys() | old.keys() if new.get(k) != old.get(k) or (k in new) != (k in old)}
    out = []
    for key in modified:
        namespace = _label_namespace(key)
        if _in_namespace(namespace, NODE_RESTRICTION_NAMESPACE):
            out.append(key)
        elif (_in_namespace(namespace, "kubernetes.io") or _in_namespace(namespace, "k8s.io")) \
                and not is_kubelet_label(key):
            out.append(key)
    return sorted(out)


def admit_node(node: str, operation: str, name: str, new: Obj | None, old: Obj | None) -> str | None:
    if name != node:
        return f'node "{node}" is not allowed to modify node "{name}"'
    new_spec, old_spec = _m(_m(new).get("spec")), _m(_m(old).get("spec"))
    if operation == "create":
        if new_spec.get("configSource") is not None:
            return f'node "{node}" is not allowed to create pods with a non-nil configSource'
        labels = forbidden_labels(_m(_m(new).get("metadata")).get("labels"), None)
        if labels:
            return f'node "{node}" is not allowed to set the following labels: {", ".join(labels)}'
    elif operation == "update":
        if new_spec.get("configSource") is not None and new_spec.get("configSource") != old_spec.get("configSource"):
            return f'node "{node}" is not allowed to update configSource to a new non-nil configSource'
        if (new_spec.get("taints") or []) != (old_spec.get("taints") or []):
            return f'node "{node}" is not allowed to modify taints'
        labels = forbidden_labels(_m(_m(new).get("metadata")).get("labels"),
                                  _m(_m(old).get("metadata")).get("labels"))
        if labels:
            return f"is not allowed to modify labels: {', '.join(labels)}"
    return None


def admit_pod_create(node: str, pod: Obj, node_uid: str | None) -> str | None:
    """A node creates only mirror pods: annotated, bound to itself, owned by its Node,
    and using no other API object."""
    meta, spec = _m(pod.get("metadata")), _m(pod.get("spec"))
    if MIRROR_POD_ANNOTATION not in _m(meta.get("annotations")):
        return f'pod does not have "{MIRROR_POD_ANNOTATION}" annotation, node "{node}" can only create mirror pods'
    if spec.get("nodeName") != node:
        return f'node "{node}" can only create pods with spec.nodeName set to itself'
    owners = [o for o in meta.get("ownerReferences") or [] if isinstance(o, Mapping)]
    if len(owners) > 1:
        return f'node "{node}" can only create pods with a single owner reference set to itself'
    if not owners:
        return f'node "{node}" can only create pods with an owner reference set to itself'
    owner = owners[0]
    if owner.get("apiVersion") != "v1" or owner.get("kind") != "Node" or owner.get("name") != node:
        return f'node "{node}" can only create pods with an owner reference set to itself'
    if owner.get("controller") is not True:
        return f'node "{node}" can only create pods with a controller owner reference set to itself'
    if owner.get("blockOwnerDeletion") is True:
        return f'node "{node}" must not set blockOwnerDeletion on an owner reference'
    if node_uid is None:
        return f'nodes "{node}" not found'
    if owner.get("uid") != node_uid:
        return f"node {node} UID mismatch: expected {owner.get('uid')} got {node_uid}"
    if spec.get("serviceAccountName"):
        return f'node "{node}" can not create pods that reference a service account'
    kinds = {ref[0] for ref in pod_references(pod)}
    for kind, word in ((SECRET, "secrets"), (CONFIGMAP, "configmaps")):
        if kind in kinds:
            return f'node "{node}" can not create pods that reference {word}'
    for v in spec.get("volumes") or []:
        for source in _m(_m(v).get("projected")).get("sources") or []:
            if "clusterTrustBundle" in _m(source):
                return f'node "{node}" can not create pods that reference clustertrustbundles'
    if PVC in kinds:
        return f'node "{node}" can not create pods that reference persistentvolumeclaims'
    return None


def admit_pod_status(node: str, new: Obj, old: Obj) -> str | None:
    if _m(old.get("spec")).get("nodeName") != node:
        return f'node "{node}" can only update pod status for pods with spec.nodeName set to itself'
    if (_m(new.get("metadata")).get("labels") or {}) != (_m(old.get("metadata")).get("labels") or {}):
        return f'node "{node}" cannot update labels through pod status'
    return None


def admit_pod_delete(node: str, pod: Obj) -> str | None:
    if _m(pod.get("spec")).get("nodeName") != node:
        return f'node "{node}" can only delete pods with spec.nodeName set to itself'
    return None


def admit_pod_eviction(node: str, pod: Obj) -> str | None:
    if _m(pod.get("spec")).get("nodeName") != node:
        return f"node {node} can only evict pods with spec.nodeName set to itself"
    return None


def admit_lease(node: str, namespace: str, name: str) -> str | None:
    if namespace != NODE_LEASE_NAMESPACE:
        return f'can only access leases in the "{NODE_LEASE_NAMESPACE}" system namespace'
    if name != node:
        return "can only access node lease with the same name as the requesting node"
    return None


def admit_token_request(node: str, namespace: str, request: Obj,
                        pod_named: Callable[[str, str], Obj | None]) -> str | None:
    """A node's TokenRequest must be bound to a pod of its own (by name and uid)."""
    ref = _m(_m(request.get("spec")).get("boundObjectRef"))
    if ref.get("apiVersion") != "v1" or ref.get("kind") != "Pod" or not ref.get("name"):
        return "node requested token not bound to a pod"
    if not ref.get("uid"):
        return "node requested token with a pod binding without a uid"
    pod = pod_named(namespace, str(ref["name"]))
    if pod is None:
        return f'pods "{ref["name"]}" not found'
    if _m(pod.get("metadata")).get("uid") != ref.get("uid"):
        return (f"the UID in the bound object reference ({ref.get('uid')}) does not match the UID in record. "
                "The object might have been deleted and then recreated")
    if _m(pod.get("spec")).get("nodeName") != node:
        return "node requested token bound to a pod scheduled on a different node"
    return None


def admit_pvc_status(node: str, new: Obj, old: Obj) -> str | None:
    """A node changes only a claim's status.capacity and status.conditions."""

    def stripped(obj: Obj) -> dict[str, Any]:
        out = {k: v for k, v in obj.items()}
        meta = {k: v for k, v in _m(out.get("metadata")).items() if k not in ("resourceVersion", "managedFields")}
        status = {k: v for k, v in _m(out.get("status")).items()
                  if k not in ("capacity", "conditions", "allocatedResourceStatuses", "allocatedResources")}
        out["metadata"], out["status"] = meta, status
        return out

    if stripped(new) != stripped(old):
        return f'node "{node}" is not allowed to update fields other than status.capacity and status.conditions'
    return None


def admit_volume(node: str, pv: Obj) -> str | None:
    """A node's local-path provisioner creates and deletes only volumes on that node: one
    node selector term, `kubernetes.io/hostname In [node]` alone (terms are ORed)."""
    required = _m(_m(_m(pv.get("spec")).get("nodeAffinity")).get("required"))
    terms = required.get("nodeSelectorTerms")
    pinned = False
    if isinstance(terms, list) and len(terms) == 1:
        exprs = _m(terms[0]).get("matchExpressions")
        fields = _m(terms[0]).get("matchFields")
        if isinstance(exprs, list) and len(exprs) == 1 and not fields:
            e = _m(exprs[0])
            pinned = e.get("key") == "kubernetes.io/hostname" and e.get("operator") == "In" and e.get("values") == [node]
    if not pinned:
        return f'node "{node}" can only create and delete persistentvolumes whose node affinity selects itself'
    return None


DNS_NAMESPACE = "kube-system"


def node_dns_slice(node: str) -> str:
    """The name of the EndpointSlice a node's DNS publishes itself with (dns/node.py)."""
    return f"kube-dns-{node}"


def admit_endpoint_slice(node: str, namespace: str, name: str) -> str | None:
    if namespace != DNS_NAMESPACE or name != node_dns_slice(node):
        return (f'node "{node}" can only write its own DNS EndpointSlice '
                f"{DNS_NAMESPACE}/{node_dns_slice(node)}")
    return None
