"""Resource quota accounting (kybernetes/api/quota.py): what objects use, which quotas
see them, and when a create goes over."""

from __future__ import annotations

from decimal import Decimal

from kybernetes.api import quota as q


def pod(requests=None, limits=None, **spec):
    res = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "resources": res}], **spec}}


def quota(hard, scopes=None):
    spec = {"hard": hard}
    if scopes:
        spec["scopes"] = scopes
    return {"metadata": {"name": "q"}, "spec": spec}


def test_pod_usage_counts_requests_limits_and_extended_resources():
    p = pod({"cpu": "500m", "memory": "252Mi", "example.com/dongle": "2"}, {"example.com/dongle": "2", "cpu": "1"})
    used = q.pod_usage(p)
    assert used["pods"] == 1
    assert used["cpu"] == used["requests.cpu"] == Decimal("0.5")
    assert used["limits.cpu"] == 1
    assert used["requests.example.com/dongle"] == 2
    assert "limits.example.com/dongle" not in used


def test_finished_pods_use_nothing_but_their_count():
    p = pod({"cpu": "1"})
    p["status"] = {"phase": "Succeeded"}
    # count/pods counts every stored pod, as upstream's evaluator does
    assert q.pod_usage(p) == {"count/pods": 1}


def test_namespace_usage_reports_every_hard_name_in_canonical_form():
    objs = {("", "pods"): [pod({"cpu": "250m", "memory": "126Mi"}), pod({"cpu": "250m", "memory": "126Mi"})],
            ("", "configmaps"): [{"metadata": {"name": "a"}}],
            ("apps", "replicasets"): []}
    used = q.namespace_usage(quota({"pods": "5", "cpu": "1", "memory": "1Gi", "configmaps": "3",
                                    "count/replicasets.apps": "5", "secrets": "1"}), objs)
    assert used == {"pods": "2", "cpu": "500m", "memory": "252Mi", "configmaps": "1",
                    "count/replicasets.apps": "0", "secrets": "0"}


def test_services_use_node_ports_and_load_balancers():
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "allocateLoadBalancerNodePorts": True}}
    np = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 81}]}}
    assert q.service_usage(lb)["services.nodeports"] == 1
    assert q.service_usage(lb)["services.loadbalancers"] == 1
    assert q.service_usage(np)["services.nodeports"] == 2
    no_np = {"spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "allocateLoadBalancerNodePorts": False}}
    assert "services.nodeports" not in q.service_usage(no_np)


def test_scopes_select_pods():
    best_effort, burstable = pod(), pod({"cpu": "100m"}, {"cpu": "200m"})
    terminating = pod({"cpu": "100m"}, activeDeadlineSeconds=3600)
    be = quota({"pods": "5"}, ["BestEffort"])
    assert q.quota_sees(be, "", "pods", best_effort)
    assert not q.quota_sees(be, "", "pods", burstable)
    assert q.quota_sees(quota({"pods": "5"}, ["NotBestEffort"]), "", "pods", burstable)
    assert q.quota_sees(quota({"pods": "5"}, ["Terminating"]), "", "pods", terminating)
    assert not q.quota_sees(quota({"pods": "5"}, ["NotTerminating"]), "", "pods", terminating)
    # A scoped quota counts pods only.
    assert not q.quota_sees(be, "", "configmaps", {"metadata": {}})


def test_exceeded_names_what_goes_over():
    qt = quota({"cpu": "1", "pods": "5"})
    over = q.exceeded(qt, {"cpu": Decimal("0.5"), "pods": Decimal(1)}, q.pod_usage(pod({"cpu": "600m"})))
    assert over == [("cpu", Decimal("0.6"), Decimal("0.5"), Decimal(1))]
    assert q.exceeded(qt, {"cpu": Decimal("0.5")}, q.pod_usage(pod({"cpu": "500m"}))) == []
    # several names over: in sorted order, whatever the quota's order
    qt = quota({"pods": "1", "cpu": "1"})
    over = q.exceeded(qt, {"cpu": Decimal(1), "pods": Decimal(1)}, q.pod_usage(pod({"cpu": "1"})))
    assert [name for name, *_ in over] == ["cpu", "pods"]


def test_a_pod_must_set_what_a_quota_limits():
    qt = quota({"cpu": "1", "limits.memory": "1Gi", "ephemeral-storage": "1Gi"})
    # upstream's wording: each resource with the containers that miss it; never ephemeral-storage
    assert q.missing_requests(qt, pod()) == ["cpu for: c", "limits.memory for: c"]
    two = {"spec": {"containers": [{"name": "b", "resources": {"requests": {"cpu": "1"}}}, {"name": "a"}],
                    "initContainers": [{"name": "init"}]}}
    assert q.missing_requests(qt, two) == ["cpu for: a,init", "limits.memory for: a,b,init"]
    assert q.missing_requests(qt, pod({"cpu": "1"}, {"memory": "1Gi"})) == []


def test_count_names_map_to_resources():
    assert q.parse_count_name("count/replicasets.apps") == ("apps", "replicasets")
    assert q.parse_count_name("count/pods") == ("", "pods")
    assert q.resources_of_hard(["cpu", "services.nodeports", "count/widgets.example.com", "secrets"]) == {
        ("", "pods"), ("", "services"), ("example.com", "widgets"), ("", "secrets")}
