"""The official Python client's typed APIs, whose models refuse an object without a field
Kubernetes always writes, read what the server stores; DELETE answers as kube-apiserver's."""

from __future__ import annotations

from kubernetes import client

NS = "default"
TEMPLATE = {"metadata": {"labels": {"app": "strict"}},
            "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "command": ["sleep", "3600"]}]}}


def test_a_daemonset_reads_back_through_the_typed_api(k8s_client):
    apps = client.AppsV1Api(k8s_client)
    apps.create_namespaced_daemon_set(NS, {
        "metadata": {"name": "strict-ds"},
        "spec": {"selector": {"matchLabels": {"app": "strict"}}, "template": TEMPLATE}})
    try:
        got = apps.read_namespaced_daemon_set("strict-ds", NS)
        status = got.status
        assert (status.current_number_scheduled, status.number_misscheduled,
                status.desired_number_scheduled) == (0, 0, 0)
        assert status.number_ready == 0
        listed = apps.list_namespaced_daemon_set(NS, field_selector="metadata.name=strict-ds").items
        assert [d.status.number_misscheduled for d in listed] == [0]
    finally:
        answer = apps.delete_namespaced_daemon_set("strict-ds", NS)
    # kube-apiserver's daemonset registry answers a DELETE with a Status (the client
    # leaves an answer it has no single type for as a dict).
    assert (answer["kind"], answer["status"]) == ("Status", "Success")


def test_a_replication_controller_reads_back_and_its_delete_returns_it(k8s_client):
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_replication_controller(NS, {
        "metadata": {"name": "strict-rc"},
        "spec": {"replicas": 0, "selector": {"app": "strict-rc"},
                 "template": {**TEMPLATE, "metadata": {"labels": {"app": "strict-rc"}}}}})
    got = core.read_namespaced_replication_controller("strict-rc", NS)
    assert got.status.replicas == 0
    listed = core.list_namespaced_replication_controller(NS, field_selector="metadata.name=strict-rc").items
    assert [rc.status.replicas for rc in listed] == [0]
    answer = core.delete_namespaced_replication_controller("strict-rc", NS)
    assert answer["kind"] == "ReplicationController" and answer["metadata"]["name"] == "strict-rc"
    assert answer["status"]["replicas"] == 0


def test_a_service_has_a_load_balancer_status_and_its_delete_returns_it(k8s_client):
    core = client.CoreV1Api(k8s_client)
    created = core.create_namespaced_service(NS, {
        "metadata": {"name": "strict-svc"},
        "spec": {"selector": {"app": "strict"}, "ports": [{"port": 80}]}})
    assert created.status.load_balancer is not None
    got = core.read_namespaced_service("strict-svc", NS)
    assert got.status.load_balancer.to_dict() == {"ingress": None}
    listed = core.list_namespaced_service(NS, field_selector="metadata.name=strict-svc").items
    assert [s.status.load_balancer is not None for s in listed] == [True]
    answer = core.delete_namespaced_service("strict-svc", NS)
    # As the recorded 1.28 answer: the deleted Service itself, not a Status.
    assert answer.kind == "Service"
    assert answer.metadata.name == "strict-svc" and answer.metadata.uid == created.metadata.uid
    assert answer.spec.ports[0].port == 80


def test_a_config_map_delete_answers_with_a_status(k8s_client):
    core = client.CoreV1Api(k8s_client)
    core.create_namespaced_config_map(NS, {"metadata": {"name": "strict-cm"}, "data": {"a": "1"}})
    answer = core.delete_namespaced_config_map("strict-cm", NS)
    assert (answer["kind"], answer["status"]) == ("Status", "Success")
    assert answer["details"]["name"] == "strict-cm"
