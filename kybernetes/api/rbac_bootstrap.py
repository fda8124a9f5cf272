"""The default RBAC policy kube-apiserver creates at start (its bootstrappolicy), as data.

`cluster_roles()` and `cluster_role_bindings()` expand the tables below into objects;
`reconcile(existing, desired)` says what a start-up reconciliation writes: a missing
object is created, an existing one annotated `rbac.authorization.kubernetes.io/autoupdate:
"true"` gets the rules / subjects it lacks added (nothing removed), one annotated "false"
is left alone.

Rule notation: (verbs, apiGroups, resources[, resourceNames]), each a space-separated
string; "" in apiGroups is the core group, written `core`. Non-resource rules: ("URLS",
verbs, urls).
"""

from __future__ import annotations

import copy
from typing import Any

Obj = dict[str, Any]

AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
BOOTSTRAP_LABEL = {"kubernetes.io/bootstrapping": "rbac-defaults"}
API_VERSION = "rbac.authorization.k8s.io/v1"

READ = "get list watch"
WRITE = "create delete deletecollection patch update"
EVENTS = ("create patch update", "core events.k8s.io", "events")

_AGG = "rbac.authorization.k8s.io/aggregate-to-"

# name -> (labels, aggregate-from label or "", rules)
CLUSTER_ROLES: dict[str, tuple[dict[str, str], str, list[tuple[str, ...]]]] = {
    "cluster-admin": ({}, "", [("*", "*", "*"), ("URLS", "*", "*")]),
    "admin": ({}, _AGG + "admin", []),
    "edit": ({_AGG + "admin": "true"}, _AGG + "edit", []),
    "view": ({_AGG + "edit": "true"}, _AGG + "view", []),
    "system:aggregate-to-admin": ({_AGG + "admin": "true"}, "", [
        ("create", "authorization.k8s.io", "localsubjectaccessreviews"),
        (READ + " " + WRITE, "rbac.authorization.k8s.io", "rolebindings roles"),
    ]),
    "system:aggregate-to-edit": ({_AGG + "edit": "true"}, "", [
        (READ, "core", "pods/attach pods/exec pods/portforward pods/proxy secrets services/proxy"),
        ("impersonate", "core", "serviceaccounts"),
        (WRITE, "core", "pods pods/attach pods/exec pods/portforward pods/proxy"),
        ("create", "core", "pods/eviction"),
        (WRITE, "core", "configmaps events persistentvolumeclaims replicationcontrollers "
                        "replicationcontrollers/scale secrets serviceaccounts services services/proxy"),
        ("create", "core", "serviceaccounts/token"),
        (WRITE, "apps", "daemonsets deployments deployments/rollback deployments/scale replicasets "
                        "replicasets/scale statefulsets statefulsets/scale"),
        (WRITE, "autoscaling", "horizontalpodautoscalers"),
        (WRITE, "batch", "cronjobs jobs"),
        (WRITE, "extensions", "daemonsets deployments deployments/rollback deployments/scale ingresses "
                              "networkpolicies replicasets replicasets/scale replicationcontrollers/scale"),
        (WRITE, "policy", "poddisruptionbudgets"),
        (WRITE, "networking.k8s.io", "ingresses networkpolicies"),
        (READ + " " + WRITE, "coordination.k8s.io", "leases"),
    ]),
    "system:aggregate-to-view": ({_AGG + "view": "true"}, "", [
        (READ, "core", "configmaps endpoints persistentvolumeclaims persistentvolumeclaims/status pods "
                       "replicationcontrollers replicationcontrollers/scale serviceaccounts services "
                       "services/status"),
        (READ, "core", "bindings events limitranges namespaces/status pods/log pods/status "
                       "replicationcontrollers/status resourcequotas resourcequotas/status"),
        (READ, "core", "namespaces"),
        (READ, "discovery.k8s.io", "endpointslices"),
        (READ, "apps", "controllerrevisions daemonsets daemonsets/status deployments deployments/scale "
                       "deployments/status replicasets replicasets/scale replicasets/status statefulsets "
                       "statefulsets/scale statefulsets/status"),
        (READ, "autoscaling", "horizontalpodautoscalers horizontalpodautoscalers/status"),
        (READ, "batch", "cronjobs cronjobs/status jobs jobs/status"),
        (READ, "extensions", "daemonsets daemonsets/status deployments deployments/scale deployments/status "
                             "ingresses ingresses/status networkpolicies replicasets replicasets/scale "
                             "replicasets/status replicationcontrollers/scale"),
        (READ, "policy", "poddisruptionbudgets poddisruptionbudgets/status"),
        (READ, "networking.k8s.io", "ingresses ingresses/status networkpolicies"),
    ]),
    "system:auth-delegator": ({}, "", [
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
    ]),
    "system:basic-user": ({}, "", [
        ("create", "authorization.k8s.io", "selfsubjectaccessreviews selfsubjectrulesreviews"),
        ("create", "authentication.k8s.io", "selfsubjectreviews"),
    ]),
    "system:discovery": ({}, "", [
        ("URLS", "get", "/api /api/* /apis /apis/* /healthz /livez /openapi /openapi/* /readyz /version /version/"),
    ]),
    "system:public-info-viewer": ({}, "", [
        ("URLS", "get", "/healthz /livez /readyz /version /version/"),
    ]),
    "system:service-account-issuer-discovery": ({}, "", [
        ("URLS", "get", "/.well-known/openid-configuration /openid/v1/jwks"),
    ]),
    "system:monitoring": ({}, "", [
        ("URLS", "get", "/healthz /healthz/* /livez /livez/* /metrics /metrics/slis /readyz /readyz/*"),
    ]),
    "system:kube-controller-manager": ({}, "", [
        EVENTS,
        ("create", "coordination.k8s.io", "leases"),
        ("get update", "coordination.k8s.io", "leases", "kube-controller-manager"),
        ("create", "core", "secrets serviceaccounts"),
        ("delete", "core", "secrets"),
        ("get", "core", "configmaps namespaces secrets serviceaccounts"),
        ("update", "core", "secrets serviceaccounts"),
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
        ("list watch", "*", "*"),
        ("create", "core", "serviceaccounts/token"),
    ]),
    # kybernetes runs every controller on one client as user system:kube-controller-manager,
    # where upstream gives each controller its own ServiceAccount and system:controller:<name>
    # role (--use-service-account-credentials). Upstream's system:kube-controller-manager role
    # above is only what the process itself needs; this one is the union of what our
    # controllers do, a rule per controller (GC's and namespace's wildcards subsume several
    # of them; they stay listed so a controller's needs are readable in one place).
    "system:kybernetes:controller-manager": ({}, "", [
        # garbagecollector: watches every kind, drops owner references, deletes dependents
        # (upstream's system:controller:generic-garbage-collector).
        ("delete get list patch update watch", "*", "*"),
        # namespace: empties a terminating namespace of every kind, then finalizes it.
        ("delete deletecollection get list", "*", "*"),
        ("delete get list patch update watch", "core", "namespaces"),
        ("patch update", "core", "namespaces/finalize namespaces/status"),
        # replicaset (ReplicaSets and ReplicationControllers): their pods, status.
        (READ + " update", "apps extensions", "replicasets"),
        (READ + " update", "core", "replicationcontrollers"),
        ("update", "apps extensions", "replicasets/status replicasets/finalizers"),
        ("update", "core", "replicationcontrollers/status replicationcontrollers/finalizers"),
        ("create delete " + READ + " patch update", "core", "pods"),
        # deployment: its ReplicaSets, rollback annotations, status.
        (READ + " patch update", "apps extensions", "deployments"),
        ("update", "apps extensions", "deployments/status deployments/finalizers"),
        ("create delete " + READ + " patch update", "apps extensions", "replicasets"),
        # daemonset and statefulset: pods (above), ControllerRevisions, status; statefulset's claims.
        (READ, "apps extensions", "daemonsets"),
        (READ, "apps", "statefulsets"),
        ("update", "apps extensions", "daemonsets/status daemonsets/finalizers"),
        ("update", "apps", "statefulsets/status statefulsets/finalizers"),
        ("create delete " + READ + " patch update", "apps", "controllerrevisions"),
        ("create delete get list patch update watch", "core", "persistentvolumeclaims"),
        # job, cronjob, ttlafterfinished: a CronJob's Jobs, a Job's pods and finalizers.
        (READ + " patch update", "batch", "cronjobs"),
        ("update", "batch", "cronjobs/status cronjobs/finalizers"),
        ("create delete " + READ + " patch update", "batch", "jobs"),
        ("patch update", "batch", "jobs/status jobs/finalizers"),
        # disruption: PDB status from pods and their workloads; clears pods' DisruptionTarget.
        (READ, "policy", "poddisruptionbudgets"),
        ("update", "policy", "poddisruptionbudgets/status"),
        (READ, "apps extensions", "deployments replicasets"),
        # nodelifecycle (and node IPAM): conditions, taints, podCIDRs; marks and evicts pods;
        # podgc: marks orphaned pods Failed before deleting them.
        ("delete " + READ + " patch update", "core", "nodes"),
        ("patch update", "core", "nodes/status"),
        ("patch update", "core", "pods/status"),
        (READ, "coordination.k8s.io", "leases"),
        # serviceaccount: each namespace's default ServiceAccount.
        ("create " + READ, "core", "serviceaccounts"),
        # satokens: fills and cleans legacy token Secrets; bootstrap token cleaner: expired tokens.
        ("delete " + READ + " update", "core", "secrets"),
        # endpoints, endpointslice, endpointslicemirroring; nodedns: each node's kube-dns slice.
        (READ, "core", "services pods"),
        ("create delete " + READ + " update", "core", "endpoints"),
        ("create", "core", "endpoints/restricted"),
        ("create delete " + READ + " patch update", "discovery.k8s.io", "endpointslices"),
        # servicelb: LoadBalancer Services' ingress addresses.
        ("patch update", "core", "services/status"),
        # rootcacert: kube-root-ca.crt in every namespace.
        ("create " + READ + " update", "core", "configmaps"),
        # csrapproving: node client certificates, approved after a SubjectAccessReview.
        (READ, "certificates.k8s.io", "certificatesigningrequests"),
        ("update", "certificates.k8s.io", "certificatesigningrequests/approval"),
        ("approve", "certificates.k8s.io", "signers",
         "kubernetes.io/kube-apiserver-client-kubelet kubernetes.io/kubelet-serving"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
        # csrsigning: issues the certificates of approved requests.
        ("update", "certificates.k8s.io", "certificatesigningrequests/status"),
        ("sign", "certificates.k8s.io", "signers",
         "kubernetes.io/kube-apiserver-client kubernetes.io/kube-apiserver-client-kubelet "
         "kubernetes.io/kubelet-serving kubernetes.io/legacy-unknown"),
        # pvbinder, pvprotection: binds claims to volumes, keeps in-use ones from deletion.
        ("create delete " + READ + " update", "core", "persistentvolumes"),
        ("update", "core", "persistentvolumes/status persistentvolumeclaims/status"),
        (READ, "storage.k8s.io", "storageclasses"),
        # clusterroleaggregation: writes aggregated roles' rules, which it need not hold itself.
        ("escalate " + READ + " patch update", "rbac.authorization.k8s.io", "clusterroles"),
        # Every controller records Events.
        EVENTS,
    ]),
    "system:kube-scheduler": ({}, "", [
        EVENTS,
        ("create", "coordination.k8s.io", "leases"),
        ("get update", "coordination.k8s.io", "leases", "kube-scheduler"),
        (READ, "core", "nodes"),
        ("delete " + READ, "core", "pods"),
        ("create", "core", "bindings pods/binding"),
        ("patch update", "core", "pods/status"),
        (READ, "core", "replicationcontrollers services"),
        (READ, "apps extensions", "replicasets"),
        (READ, "apps", "statefulsets"),
        (READ, "policy", "poddisruptionbudgets"),
        (READ, "core", "persistentvolumeclaims persistentvolumes"),
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "subjectaccessreviews"),
        (READ, "storage.k8s.io", "csinodes"),
        (READ, "core", "namespaces"),
        (READ, "storage.k8s.io", "csidrivers"),
        (READ, "storage.k8s.io", "csistoragecapacities"),
    ]),
    "system:volume-scheduler": ({}, "", [
        (READ + " patch update", "core", "persistentvolumes"),
        (READ, "storage.k8s.io", "storageclasses"),
        (READ + " patch update", "core", "persistentvolumeclaims"),
    ]),
    "system:kube-dns": ({}, "", [("list watch", "core", "endpoints services")]),
    "system:kubelet-api-admin": ({}, "", [
        (READ, "core", "nodes"),
        ("proxy", "core", "nodes"),
        ("*", "core", "nodes/log nodes/metrics nodes/proxy nodes/stats"),
    ]),
    "system:node": ({}, "", [
        ("create", "authentication.k8s.io", "tokenreviews"),
        ("create", "authorization.k8s.io", "localsubjectaccessreviews subjectaccessreviews"),
        (READ, "core", "services"),
        ("create " + READ, "core", "nodes"),
        ("patch update", "core", "nodes/status"),
        ("patch update", "core", "nodes"),
        ("create patch update", "core", "events"),
        (READ, "core", "pods"),
        ("create delete", "core", "pods"),
        ("patch update", "core", "pods/status"),
        ("create", "core", "pods/eviction"),
        (READ, "core", "configmaps secrets"),
        ("get", "core", "persistentvolumeclaims persistentvolumes"),
        ("get", "core", "endpoints"),
        ("create " + READ, "certificates.k8s.io", "certificatesigningrequests"),
        ("create delete get patch update", "coordination.k8s.io", "leases"),
        ("get", "storage.k8s.io", "volumeattachments"),
        ("create", "core", "serviceaccounts/token"),
        ("get patch update", "core", "persistentvolumeclaims/status"),
        (READ, "storage.k8s.io", "csidrivers"),
        ("create delete get patch update", "storage.k8s.io", "csinodes"),
        (READ, "node.k8s.io", "runtimeclasses"),
    ]),
    "system:node-bootstrapper": ({}, "", [("create " + READ, "certificates.k8s.io", "certificatesigningrequests")]),
    "system:node-proxier": ({}, "", [
        ("list watch", "core", "endpoints services"),
        (READ, "core", "nodes"),
        EVENTS,
        ("list watch", "discovery.k8s.io", "endpointslices"),
    ]),
    # kybernetes' node agent runs, in its own process and with its node identity, what upstream
    # runs as add-ons with their own ServiceAccounts: the local-path provisioner (volumes for
    # claims on its node), the service proxy and the node's DNS (which publishes its own
    # kube-dns EndpointSlice). NodeRestriction keeps each node to its own volumes and slice.
    "system:kybernetes:node-agent": ({}, "", [
        ("create delete " + READ, "core", "persistentvolumes"),
        (READ, "core", "persistentvolumeclaims"),
        (READ, "storage.k8s.io", "storageclasses"),
        (READ + " create delete patch update", "discovery.k8s.io", "endpointslices"),
        # The pod network across nodes (agent/overlay.py, flannel's job upstream) follows every
        # Node's podCIDR and VTEP annotations: a list and watch, no get of another's Node.
        ("list watch", "core", "nodes"),
    ]),
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": ({}, "", [
        ("create", "certificates.k8s.io", "certificatesigningrequests/nodeclient")]),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": ({}, "", [
        ("create", "certificates.k8s.io", "certificatesigningrequests/selfnodeclient")]),
}

# name -> (role, subjects as "Kind:name" / "ServiceAccount:namespace/name")
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[str]]] = {
    "cluster-admin": ("cluster-admin", ["Group:system:masters"]),
    "system:basic-user": ("system:basic-user", ["Group:system:authenticated"]),
    "system:discovery": ("system:discovery", ["Group:system:authenticated"]),
    "system:public-info-viewer": ("system:public-info-viewer",
                                  ["Group:system:authenticated", "Group:system:unauthenticated"]),
    "system:service-account-issuer-discovery": ("system:service-account-issuer-discovery",
                                                ["Group:system:serviceaccounts"]),
    "system:monitoring": ("system:monitoring", ["Group:system:monitoring"]),
    "system:kube-controller-manager": ("system:kube-controller-manager", ["User:system:kube-controller-manager"]),
    "system:kybernetes:controller-manager": ("system:kybernetes:controller-manager",
                                             ["User:system:kube-controller-manager"]),
    "system:kube-scheduler": ("system:kube-scheduler", ["User:system:kube-scheduler"]),
    "system:volume-scheduler": ("system:volume-scheduler", ["User:system:kube-scheduler"]),
    "system:kube-dns": ("system:kube-dns", ["ServiceAccount:kube-system/kube-dns"]),
    "system:node-proxier": ("system:node-proxier", ["User:system:kube-proxy"]),
    "system:node": ("system:node", []),
    "system:kybernetes:node-agent": ("system:kybernetes:node-agent", ["Group:system:nodes"]),
    # The API server's own identity toward node agents (nodes/proxy, log, exec).
    "system:kube-apiserver-kubelet-api-admin": ("system:kubelet-api-admin", ["User:system:kube-apiserver"]),
    # Joining nodes, as kubeadm binds them: a bootstrap token may ask for a node client
    # certificate (auto-approved), a node may renew its own.
    "system:node-bootstrapper": ("system:node-bootstrapper", ["Group:system:bootstrappers"]),
    "system:certificates.k8s.io:certificatesigningrequests:nodeclient": (
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient", ["Group:system:bootstrappers"]),
    "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient": (
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient", ["Group:system:nodes"]),
}


def _rule(spec: tuple[str, ...]) -> Obj:
    if spec[0] == "URLS":
        return {"verbs": spec[1].split(), "nonResourceURLs": spec[2].split()}
    rule: Obj = {"verbs": spec[0].split(),
                 "apiGroups": ["" if g == "core" else g for g in spec[1].split()],
                 "resources": spec[2].split()}
    if len(spec) > 3:
        rule["resourceNames"] = spec[3].split()
    return rule


def _metadata(name: str, labels: dict[str, str] | None = None) -> Obj:
    return {"name": name, "labels": {**BOOTSTRAP_LABEL, **(labels or {})}, "annotations": {AUTOUPDATE: "true"}}


def cluster_roles() -> list[Obj]:
    out = []
    for name, (labels, aggregate, rules) in CLUSTER_ROLES.items():
        obj: Obj = {"apiVersion": API_VERSION, "kind": "ClusterRole", "metadata": _metadata(name, labels),
                    "rules": [_rule(r) for r in rules]}
        if aggregate:
            obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate: "true"}}]}
        out.append(obj)
    return out


def _subject(text: str) -> Obj:
    kind, name = text.split(":", 1)
    if kind == "ServiceAccount":
        ns, sa = name.split("/", 1)
        return {"kind": kind, "name": sa, "namespace": ns}
    return {"kind": kind, "apiGroup": "rbac.authorization.k8s.io", "name": name}


def cluster_role_bindings() -> list[Obj]:
    return [{"apiVersion": API_VERSION, "kind": "ClusterRoleBinding", "metadata": _metadata(name),
             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
             "subjects": [_subject(s) for s in subjects]}
            for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items()]


def _same_rule(a: Obj, b: Obj) -> bool:
    keys = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")
    return all(sorted(a.get(k) or []) == sorted(b.get(k) or []) for k in keys)


def _same_subject(a: Obj, b: Obj) -> bool:
    return all((a.get(k) or "") == (b.get(k) or "") for k in ("kind", "name", "namespace"))


def reconcile(existing: Obj | None, desired: Obj) -> Obj | None:
    """The object to write so `existing` holds what `desired` grants, or None when nothing
    is to be written. Aggregated roles' rules are the aggregation controller's to fill."""
    if existing is None:
        return copy.deepcopy(desired)
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(AUTOUPDATE) == "false":
        return None
    out = copy.deepcopy(existing)
    changed = False
    if desired["kind"] == "ClusterRole":
        if "aggregationRule" in desired:
            if not existing.get("aggregationRule"):
                out["aggregationRule"] = copy.deepcopy(desired["aggregationRule"])
                changed = True
        else:
            rules = list(out.get("rules") or [])
            for r in desired.get("rules") or []:
                if not any(_same_rule(r, have) for have in rules):
                    rules.append(copy.deepcopy(r))
                    changed = True
            out["rules"] = rules
        labels = dict(out.get("metadata", {}).get("labels") or {})
        for k, v in desired["metadata"]["labels"].items():
            if labels.get(k) != v:
                labels[k] = v
                changed = True
        out.setdefault("metadata", {})["labels"] = labels
    else:
        subjects = list(out.get("subjects") or [])
        for s in desired.get("subjects") or []:
            if not any(_same_subject(s, have) for have in subjects):
                subjects.append(copy.deepcopy(s))
                changed = True
        out["subjects"] = subjects
    return out if changed else None
