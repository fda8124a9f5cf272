"""The bootstrap policy gives the controller manager and the scheduler what their code does,
and no more than that; the components' client logs authorization's refusals."""

from __future__ import annotations

import logging

import pytest

from kybernetes.api.rbac import Attributes, RbacIndex
from kybernetes.api.rbac_bootstrap import cluster_role_bindings, cluster_roles
from kybernetes.client.api import _log_forbidden

CM = "system:kube-controller-manager"
SCHED = "system:kube-scheduler"
GROUPS = ("system:authenticated",)


@pytest.fixture(scope="module")
def index() -> RbacIndex:
    return RbacIndex(cluster_roles=cluster_roles(), cluster_role_bindings=cluster_role_bindings())


def _allowed(index: RbacIndex, user: str, verb: str, group: str, resource: str, sub: str = "", ns: str = "",
             name: str = "") -> bool:
    return index.authorize(Attributes(user, GROUPS, verb, group, resource, sub, ns, name)).allowed


# (verb, group, resource, subresource, namespace, name): one line per write a controller makes.
CONTROLLER_WRITES = [
    ("create", "", "pods", "", "ns", ""),  # replicaset, daemonset, statefulset, job
    ("create", "apps", "replicasets", "", "ns", ""),  # deployment
    ("update", "apps", "deployments", "status", "ns", "d"),
    ("create", "apps", "controllerrevisions", "", "ns", ""),  # daemonset, statefulset
    ("create", "", "persistentvolumeclaims", "", "ns", ""),  # statefulset
    ("create", "batch", "jobs", "", "ns", ""),  # cronjob
    ("update", "batch", "cronjobs", "status", "ns", "c"),
    ("delete", "batch", "jobs", "", "ns", "j"),  # ttlafterfinished
    ("deletecollection", "", "configmaps", "", "ns", ""),  # namespace
    ("update", "", "namespaces", "finalize", "", "ns"),
    ("patch", "", "namespaces", "status", "", "ns"),
    ("patch", "example.com", "widgets", "", "ns", "w"),  # garbagecollector, any kind
    ("create", "", "serviceaccounts", "", "ns", ""),  # serviceaccount
    ("create", "", "endpoints", "", "ns", ""),  # endpoints
    ("create", "discovery.k8s.io", "endpointslices", "", "ns", ""),  # endpointslice(+mirroring), nodedns
    ("update", "", "nodes", "", "", "n"),  # nodelifecycle: taints
    ("patch", "", "nodes", "status", "", "n"),
    ("patch", "", "nodes", "", "", "n"),  # podCIDRs
    ("patch", "", "pods", "status", "ns", "p"),  # nodelifecycle, podgc, disruption
    ("delete", "", "pods", "", "ns", "p"),
    ("update", "policy", "poddisruptionbudgets", "status", "ns", "b"),  # disruption
    ("update", "", "secrets", "", "ns", "s"),  # satokens
    ("delete", "", "secrets", "", "kube-system", "bootstrap-token-abcdef"),  # bootstrap token cleaner
    ("patch", "", "services", "status", "ns", "s"),  # servicelb
    ("create", "", "configmaps", "", "ns", ""),  # rootcacert
    ("update", "certificates.k8s.io", "certificatesigningrequests", "approval", "", "c"),  # csrapproving
    ("approve", "certificates.k8s.io", "signers", "", "", "kubernetes.io/kube-apiserver-client-kubelet"),
    ("create", "authorization.k8s.io", "subjectaccessreviews", "", "", ""),
    ("update", "certificates.k8s.io", "certificatesigningrequests", "status", "", "c"),  # csrsigning
    ("sign", "certificates.k8s.io", "signers", "", "", "kubernetes.io/kube-apiserver-client"),
    ("update", "", "persistentvolumes", "", "", "pv"),  # pvbinder, pvprotection
    ("update", "", "persistentvolumeclaims", "status", "ns", "c"),
    ("escalate", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),  # clusterroleaggregation
    ("update", "rbac.authorization.k8s.io", "clusterroles", "", "", "admin"),
    ("create", "", "events", "", "ns", ""),
    ("create", "coordination.k8s.io", "leases", "", "kube-system", ""),  # leader election
    ("update", "coordination.k8s.io", "leases", "", "kube-system", "kube-controller-manager"),
]


@pytest.mark.parametrize(("verb", "group", "resource", "sub", "ns", "name"), CONTROLLER_WRITES)
def test_the_controller_manager_may_make_every_write_of_its_controllers(index, verb, group, resource, sub, ns,
                                                                        name):
    assert _allowed(index, CM, verb, group, resource, sub, ns, name)


@pytest.mark.parametrize(("verb", "group", "resource", "sub", "name"), [
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", "", ""),
    ("bind", "rbac.authorization.k8s.io", "clusterroles", "", "cluster-admin"),
    ("impersonate", "", "users", "", "admin"),
    ("create", "", "nodes", "", ""),
    ("create", "", "pods", "exec", "p"),
    ("create", "", "pods", "eviction", "p"),
    ("approve", "certificates.k8s.io", "signers", "", "kubernetes.io/kube-apiserver-client"),
    ("create", "example.com", "widgets", "", ""),
])
def test_the_controller_manager_is_no_admin(index, verb, group, resource, sub, name):
    # (The garbage collector's read/patch/delete of every kind is upstream's too.)
    assert not _allowed(index, CM, verb, group, resource, sub, "", name)


@pytest.mark.parametrize(("verb", "group", "resource", "sub", "name", "allowed"), [
    ("create", "", "pods", "binding", "p", True),
    ("patch", "", "pods", "status", "p", True),  # nominatedNodeName, PodScheduled
    ("delete", "", "pods", "", "p", True),  # preemption
    ("watch", "policy", "poddisruptionbudgets", "", "", True),
    ("patch", "", "persistentvolumes", "", "pv", True),  # volume binding's pre-bind
    ("patch", "", "persistentvolumeclaims", "", "c", True),
    ("list", "storage.k8s.io", "storageclasses", "", "", True),
    ("create", "", "events", "", "", True),
    ("create", "", "pods", "", "", False),
    ("get", "", "secrets", "", "s", False),
    ("update", "", "nodes", "", "n", False),
])
def test_the_scheduler_may_do_what_it_does(index, verb, group, resource, sub, name, allowed):
    assert _allowed(index, SCHED, verb, group, resource, sub, "ns", name) is allowed


def test_the_scheduler_renews_only_its_own_lease(index):
    assert _allowed(index, SCHED, "update", "coordination.k8s.io", "leases", "", "kube-system", "kube-scheduler")
    assert not _allowed(index, SCHED, "update", "coordination.k8s.io", "leases", "", "kube-system",
                        "kube-controller-manager")


def test_only_authorizations_refusals_are_logged(caplog):
    caplog.set_level(logging.WARNING, logger="kybernetes.client.api")
    rbac = (b'{"kind":"Status","code":403,"message":"configmaps is forbidden: User \\"system:kube-scheduler\\" '
            b'cannot create resource \\"configmaps\\" in API group \\"\\" in the namespace \\"x\\""}')
    quota = b'{"kind":"Status","code":403,"message":"pods \\"p\\" is forbidden: exceeded quota: q"}'
    _log_forbidden(403, "POST", "/api/v1/namespaces/x/pods", quota)
    _log_forbidden(404, "GET", "/api/v1/namespaces/x/pods/p", rbac)
    assert caplog.records == []
    _log_forbidden(403, "POST", "/api/v1/namespaces/x/configmaps", rbac)
    assert [r.getMessage()[:50] for r in caplog.records] == ["forbidden: POST /api/v1/namespaces/x/configmaps: {"]
