"""The Node authorizer's graph and decisions, and NodeRestriction's rules (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api import noderestriction as nr
from kybernetes.api.nodegraph import (
    CONFIGMAP,
    PV,
    PVC,
    SECRET,
    SERVICEACCOUNT,
    NodeGraph,
    field_selector_requires,
    node_authorize,
    node_identity,
    pod_references,
    same_pod_references,
)
from kybernetes.api.rbac import Attributes


def pod(name: str, node: str = "", ns: str = "default", **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns, "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}], **spec}}


def node_attrs(node: str, verb: str, resource: str, name: str = "", ns: str = "", group: str = "",
               sub: str = "") -> Attributes:
    return Attributes(f"system:node:{node}", ("system:nodes", "system:authenticated"), verb, group, resource, sub,
                      ns, name)


def test_node_identity_needs_both_the_user_prefix_and_the_group():
    assert node_identity("system:node:a", ("system:nodes",)) == ("a", True)
    assert node_identity("system:node:a", ("system:authenticated",)) == ("", False)
    assert node_identity("alice", ("system:nodes",)) == ("", False)
    assert node_identity("system:node:", ("system:nodes",)) == ("", True)


def test_pod_references_cover_volumes_env_pull_secrets_and_service_account():
    p = pod("p", "a", serviceAccountName="sa", imagePullSecrets=[{"name": "pull"}],
            volumes=[{"name": "s", "secret": {"secretName": "vol-secret"}},
                     {"name": "c", "configMap": {"name": "vol-cm"}},
                     {"name": "d", "persistentVolumeClaim": {"claimName": "data"}},
                     {"name": "e", "ephemeral": {"volumeClaimTemplate": {}}},
                     {"name": "p", "projected": {"sources": [{"secret": {"name": "proj-secret"}},
                                                             {"configMap": {"name": "proj-cm"}}]}},
                     {"name": "x", "csi": {"driver": "d", "nodePublishSecretRef": {"name": "csi-secret"}}}],
            initContainers=[{"name": "i", "envFrom": [{"secretRef": {"name": "init-env"}}]}])
    p["spec"]["containers"][0]["env"] = [
        {"name": "A", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
        {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}}]
    refs = pod_references(p)
    assert {n for k, _, n in refs if k == SECRET} == {"pull", "vol-secret", "proj-secret", "csi-secret", "init-env",
                                                     "env-secret"}
    assert {n for k, _, n in refs if k == CONFIGMAP} == {"vol-cm", "proj-cm", "env-cm"}
    assert {n for k, _, n in refs if k == PVC} == {"data", "p-e"}
    assert (SERVICEACCOUNT, "default", "sa") in refs


def test_graph_follows_pods_as_they_are_bound_changed_and_deleted():
    g = NodeGraph()
    g.set_pod("default", "p", pod("p", "", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    assert not g.reaches("a", SECRET, "default", "s1")  # not bound yet
    g.set_pod("default", "p", pod("p", "a", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    assert g.reaches("a", SECRET, "default", "s1")
    assert not g.reaches("b", SECRET, "default", "s1")
    assert not g.reaches("a", SECRET, "other", "s1")
    # Two pods use the secret: it stays reachable until both are gone.
    g.set_pod("default", "q", pod("q", "a", volumes=[{"name": "s", "secret": {"secretName": "s1"}}]))
    g.set_pod("default", "p", None)
    assert g.reaches("a", SECRET, "default", "s1")
    g.set_pod("default", "q", pod("q", "a"))
    assert not g.reaches("a", SECRET, "default", "s1")
    assert g.pod_node("default", "q") == "a"


def test_status_writes_keep_the_references_but_binding_and_claim_statuses_change_them():
    before = pod("p", "", volumes=[{"name": "s", "secret": {"secretName": "s1"}}])
    running = {**before, "status": {"phase": "Running", "podIP": "10.0.0.5"}}
    assert same_pod_references(before, running)
    bound = {**before, "spec": {**before["spec"], "nodeName": "a"}}
    assert not same_pod_references(before, bound)
    claimed = {**before, "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p-gpu"}]}}
    assert not same_pod_references(before, claimed)


def test_a_volume_is_reached_through_its_claim_and_its_secret_through_the_volume():
    g = NodeGraph()
    g.set_pod("default", "p", pod("p", "a", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}]))
    g.set_volume("pv1", {"spec": {"claimRef": {"namespace": "default", "name": "c"},
                                  "csi": {"driver": "x", "nodePublishSecretRef": {"namespace": "vault", "name": "k"}}}})
    assert g.reaches("a", PV, "", "pv1")
    assert g.reaches("a", SECRET, "vault", "k")
    assert not g.reaches("b", PV, "", "pv1")
    g.set_volume("pv1", None)
    assert not g.reaches("a", PV, "", "pv1")
    assert not g.reaches("a", SECRET, "vault", "k")


def graph_with_two_nodes() -> NodeGraph:
    g = NodeGraph()
    g.set_pod("default", "pa", pod("pa", "a", volumes=[{"name": "s", "secret": {"secretName": "sa"}}]))
    g.set_pod("default", "pb", pod("pb", "b", serviceAccountName="robot",
                                   volumes=[{"name": "s", "secret": {"secretName": "sb"}}]))
    return g


def test_secrets_only_of_the_nodes_own_pods_and_only_read():
    g = graph_with_two_nodes()
    assert node_authorize(g, "a", node_attrs("a", "get", "secrets", "sa", "default")).allowed
    # A single object may be watched by name (field selector metadata.name).
    assert node_authorize(g, "a", node_attrs("a", "watch", "secrets", "sa", "default")).allowed
    denied = node_authorize(g, "a", node_attrs("a", "get", "secrets", "sb", "default"))
    assert not denied.allowed and denied.reason == "no relationship found between node 'a' and this object"
    assert node_authorize(g, "a", node_attrs("a", "list", "secrets", "", "default")).reason == "No Object name found"
    assert node_authorize(g, "a", node_attrs("a", "update", "secrets", "sa", "default")).reason == \
        "can only read resources of this type"


def test_token_requests_only_for_the_service_accounts_of_its_pods():
    g = graph_with_two_nodes()
    assert node_authorize(g, "b", node_attrs("b", "create", "serviceaccounts", "robot", "default", sub="token")).allowed
    assert not node_authorize(g, "a", node_attrs("a", "create", "serviceaccounts", "robot", "default",
                                                 sub="token")).allowed
    assert node_authorize(g, "b", node_attrs("b", "get", "serviceaccounts", "robot", "default")).reason == \
        "can only create tokens for individual service accounts"


def test_own_node_lease_and_pods_by_field_selector():
    g = graph_with_two_nodes()
    assert node_authorize(g, "a", node_attrs("a", "get", "nodes", "a")).allowed
    assert node_authorize(g, "a", node_attrs("a", "get", "nodes", "b")).reason == \
        "node 'a' cannot read 'b', only its own Node object"
    assert node_authorize(g, "a", node_attrs("a", "list", "nodes")).reason == \
        "node 'a' cannot read all nodes, only its own Node object"
    assert node_authorize(g, "a", node_attrs("a", "patch", "nodes", "b", sub="status")).allowed  # NodeRestriction
    lease = node_attrs("a", "update", "leases", "a", "kube-node-lease", "coordination.k8s.io")
    assert node_authorize(g, "a", lease).allowed
    other = node_attrs("a", "update", "leases", "b", "kube-node-lease", "coordination.k8s.io")
    assert node_authorize(g, "a", other).reason == \
        "can only access node lease with the same name as the requesting node"
    assert node_authorize(g, "a", node_attrs("a", "watch", "pods", ns=""), "spec.nodeName=a").allowed
    assert not node_authorize(g, "a", node_attrs("a", "watch", "pods", ns=""), "spec.nodeName=b").allowed
    assert not node_authorize(g, "a", node_attrs("a", "list", "pods", ns="")).allowed
    assert node_authorize(g, "a", node_attrs("a", "get", "pods", "pa", "default")).allowed
    assert not node_authorize(g, "a", node_attrs("a", "get", "pods", "pb", "default")).allowed


def test_other_resources_follow_the_system_node_rules():
    g = NodeGraph()
    assert node_authorize(g, "a", node_attrs("a", "create", "events", ns="default")).allowed
    assert node_authorize(g, "a", node_attrs("a", "list", "services")).allowed
    assert node_authorize(g, "a", node_attrs("a", "create", "certificatesigningrequests",
                                             group="certificates.k8s.io")).allowed
    assert node_authorize(g, "a", node_attrs("a", "create", "tokenreviews", group="authentication.k8s.io")).allowed
    assert not node_authorize(g, "a", node_attrs("a", "list", "deployments", ns="default", group="apps")).allowed
    assert not node_authorize(g, "a", node_attrs("a", "delete", "namespaces", "default")).allowed


@pytest.mark.parametrize("selector,expected", [
    ("spec.nodeName=a", True), ("spec.nodeName==a", True), ("status.phase!=Failed,spec.nodeName=a", True),
    ("spec.nodeName!=a", False), ("spec.nodeName=ab", False), ("", False)])
def test_field_selector_requires(selector, expected):
    assert field_selector_requires(selector, "spec.nodeName", "a") is expected


# -- NodeRestriction ----------------------------------------------------------------------


def test_a_node_writes_only_its_own_node_and_not_its_role_labels_or_taints():
    old = {"metadata": {"name": "a", "labels": {"kubernetes.io/hostname": "a"}},
           "spec": {"taints": [{"key": "k", "effect": "NoSchedule"}]}}
    assert nr.admit_node("a", "update", "b", old, old) == 'node "a" is not allowed to modify node "b"'
    relabel = {**old, "metadata": {"name": "a", "labels": {"kubernetes.io/hostname": "a",
                                                           "node-restriction.kubernetes.io/x": "y",
                                                           "node-role.kubernetes.io/control-plane": ""}}}
    assert nr.admit_node("a", "update", "a", relabel, old) == (
        "is not allowed to modify labels: node-restriction.kubernetes.io/x, node-role.kubernetes.io/control-plane")
    fine = {**old, "metadata": {"name": "a", "labels": {"kubernetes.io/hostname": "a", "team": "x",
                                                        "node.kubernetes.io/exclude-from-external-load-balancers":
                                                            ""}}}
    assert nr.admit_node("a", "update", "a", fine, old) is None
    untaint = {**old, "spec": {}}
    assert nr.admit_node("a", "update", "a", untaint, old) == 'node "a" is not allowed to modify taints'
    create = {"metadata": {"name": "a", "labels": {"example.node-restriction.kubernetes.io/zone": "z"}}}
    assert nr.admit_node("a", "create", "a", create, None) == (
        'node "a" is not allowed to set the following labels: example.node-restriction.kubernetes.io/zone')


def test_a_node_creates_only_mirror_pods_of_its_own():
    plain = pod("m", "a")
    assert "can only create mirror pods" in nr.admit_pod_create("a", plain, "uid-a")
    mirror = pod("m", "a")
    mirror["metadata"]["annotations"] = {nr.MIRROR_POD_ANNOTATION: "x"}
    mirror["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "Node", "name": "a", "uid": "uid-a",
                                              "controller": True}]
    assert nr.admit_pod_create("a", mirror, "uid-a") is None
    assert nr.admit_pod_create("b", {**mirror, "spec": {**mirror["spec"], "nodeName": "b"}}, "uid-b") == \
        'node "b" can only create pods with an owner reference set to itself'
    with_secret = {**mirror, "spec": {**mirror["spec"], "volumes": [{"name": "s", "secret": {"secretName": "x"}}]}}
    assert nr.admit_pod_create("a", with_secret, "uid-a") == 'node "a" can not create pods that reference secrets'


def test_pod_status_delete_and_eviction_only_for_the_nodes_pods():
    mine, theirs = pod("p", "a"), pod("q", "b")
    assert nr.admit_pod_status("a", mine, mine) is None
    assert nr.admit_pod_status("a", theirs, theirs) == \
        'node "a" can only update pod status for pods with spec.nodeName set to itself'
    relabelled = {**mine, "metadata": {**mine["metadata"], "labels": {"x": "y"}}}
    assert nr.admit_pod_status("a", relabelled, mine) == 'node "a" cannot update labels through pod status'
    assert nr.admit_pod_delete("a", theirs) == 'node "a" can only delete pods with spec.nodeName set to itself'
    assert nr.admit_pod_eviction("a", theirs) == "node a can only evict pods with spec.nodeName set to itself"
    assert nr.admit_pod_delete("a", mine) is None


def test_token_requests_must_be_bound_to_a_pod_of_the_node():
    pods = {("default", "p"): pod("p", "a"), ("default", "q"): pod("q", "b")}

    def tr(name: str, uid: str) -> dict[str, Any]:
        return {"spec": {"boundObjectRef": {"apiVersion": "v1", "kind": "Pod", "name": name, "uid": uid}}}

    lookup = lambda ns, name: pods.get((ns, name))  # noqa: E731
    assert nr.admit_token_request("a", "default", tr("p", "uid-p"), lookup) is None
    assert nr.admit_token_request("a", "default", {"spec": {}}, lookup) == "node requested token not bound to a pod"
    assert nr.admit_token_request("a", "default", tr("q", "uid-q"), lookup) == \
        "node requested token bound to a pod scheduled on a different node"
    assert "does not match the UID in record" in nr.admit_token_request("a", "default", tr("p", "old"), lookup)


def test_lease_and_claim_status_rules():
    assert nr.admit_lease("a", "kube-node-lease", "a") is None
    assert nr.admit_lease("a", "default", "a") == 'can only access leases in the "kube-node-lease" system namespace'
    old = {"metadata": {"name": "c", "resourceVersion": "1"}, "spec": {"x": 1}, "status": {"phase": "Bound"}}
    grown = {"metadata": {"name": "c", "resourceVersion": "2"}, "spec": {"x": 1},
             "status": {"phase": "Bound", "capacity": {"storage": "2Gi"}}}
    assert nr.admit_pvc_status("a", grown, old) is None
    unbound = {**grown, "status": {"phase": "Lost"}}
    assert "is not allowed to update fields other than" in nr.admit_pvc_status("a", unbound, old)


def test_a_node_writes_only_volumes_pinned_to_itself_and_its_own_dns_slice():
    def pv(*terms: list[str]) -> dict[str, Any]:
        return {"spec": {"nodeAffinity": {"required": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": vals}]}
            for vals in terms]}}}}

    assert nr.admit_volume("a", pv(["a"])) is None
    refused = 'node "a" can only create and delete persistentvolumes whose node affinity selects itself'
    assert nr.admit_volume("a", pv(["b"])) == refused
    assert nr.admit_volume("a", pv(["a", "b"])) == refused
    assert nr.admit_volume("a", pv(["a"], ["b"])) == refused  # terms are ORed: usable on b too
    assert nr.admit_volume("a", {"spec": {"hostPath": {"path": "/"}}}) == refused
    assert nr.admit_endpoint_slice("a", "kube-system", "kube-dns-a") is None
    assert nr.admit_endpoint_slice("a", "kube-system", "kube-dns-b") == \
        'node "a" can only write its own DNS EndpointSlice kube-system/kube-dns-a'
    assert nr.admit_endpoint_slice("a", "default", "kube-dns-a") is not None
