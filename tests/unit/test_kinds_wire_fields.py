"""What strict clients read: fields Kubernetes always serializes are stored with their zero
value on every write, and a DELETE answers with the object or a Status as kube-apiserver
does for that kind (checked against the recorded 1.28 answers when they are at hand)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.kinds import DEFAULT
from kybernetes.api.kinds.base import StatusWrite, fill_always_present
from kybernetes.api.registry import Registry

REG = Registry()


def _samples_dir() -> Path | None:
    # CI lays shared/ beside the clone; a developer's machine has it under /work.
    for base in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")):
        candidate = base / "compat" / "samples" / "wire-1.28"
        if candidate.is_dir():
            return candidate
    return None


def created(group: str, plural: str, obj: dict[str, Any]) -> dict[str, Any]:
    """`obj` after the server-set steps of a create (as the write pipeline runs them)."""
    info = REG.get(group, "v1", plural) or REG.get(group, "v2", plural)
    assert info is not None
    strategy = DEFAULT.for_info(info)
    strategy.prepare_for_create(info, obj)
    strategy.default(info, obj)
    strategy.prepare_write(info, obj, None)
    return obj


def meta(name: str = "x") -> dict[str, Any]:
    return {"name": name, "namespace": "default"}


# -- always-present fields -----------------------------------------------------------------

def test_a_new_daemonset_has_its_four_counters_at_zero() -> None:
    ds = created("apps", "daemonsets", {"metadata": meta(), "spec": {}, "status": {"numberReady": 3}})
    assert ds["status"] == {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                            "desiredNumberScheduled": 0, "numberReady": 0}


@pytest.mark.parametrize(("group", "plural", "expected"), [
    ("", "replicationcontrollers", {"replicas": 0}),
    ("apps", "replicasets", {"replicas": 0}),
    ("apps", "statefulsets", {"replicas": 0, "availableReplicas": 0}),
    ("policy", "poddisruptionbudgets",
     {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0}),
    ("networking.k8s.io", "ingresses", {"loadBalancer": {}}),
])
def test_a_new_object_has_the_status_fields_kubernetes_always_writes(
        group: str, plural: str, expected: dict[str, Any]) -> None:
    obj = created(group, plural, {"metadata": meta(), "spec": {}})
    assert obj["status"] == expected


def test_a_created_service_has_an_empty_load_balancer_status() -> None:
    svc = created("", "services", {"metadata": meta(), "spec": {"ports": [{"port": 80}]}})
    assert svc["status"] == {"loadBalancer": {}}


def test_a_deployment_keeps_an_empty_status_as_kubernetes_does() -> None:
    dep = created("apps", "deployments", {"metadata": meta(), "spec": {}})
    assert dep["status"] == {}


def test_a_status_write_that_leaves_a_counter_out_stores_it_as_zero() -> None:
    info = REG.get("apps", "v1", "daemonsets")
    strategy = DEFAULT.for_info(info)
    old = created("apps", "daemonsets", {"metadata": meta(), "spec": {}})
    new = StatusWrite().merge(old, {"metadata": meta(), "status": {"numberReady": 2, "numberAvailable": 2}}, False)
    strategy.prepare_write(info, new, old)
    assert new["status"] == {"numberReady": 2, "numberAvailable": 2, "currentNumberScheduled": 0,
                             "numberMisscheduled": 0, "desiredNumberScheduled": 0}


def test_filling_never_writes_into_a_subtree_shared_with_the_stored_object() -> None:
    stored_status: dict[str, Any] = {"numberReady": 1}
    new = {"metadata": meta(), "status": stored_status}
    fill_always_present(new, {("status", "numberReady"): 0, ("status", "numberMisscheduled"): 0})
    assert new["status"] == {"numberReady": 1, "numberMisscheduled": 0}
    assert stored_status == {"numberReady": 1}


def test_a_null_field_is_stored_as_its_zero_and_a_wrong_shape_is_left_for_validation() -> None:
    obj: dict[str, Any] = {"status": {"replicas": None}, "spec": "oops"}
    fill_always_present(obj, {("status", "replicas"): 0, ("spec", "podSelector"): {}})
    assert obj == {"status": {"replicas": 0}, "spec": "oops"}


def test_each_filled_container_is_a_fresh_one() -> None:
    a: dict[str, Any] = {}
    b: dict[str, Any] = {}
    fields = {("status", "loadBalancer"): {}}
    fill_always_present(a, fields)
    fill_always_present(b, fields)
    a["status"]["loadBalancer"]["ingress"] = [{"ip": "1.2.3.4"}]
    assert b == {"status": {"loadBalancer": {}}}


def test_a_node_without_a_reported_status_reads_as_kubernetes_writes_it() -> None:
    node = created("", "nodes", {"metadata": {"name": "n1"}, "spec": {}})
    assert node["status"]["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 0}}
    assert node["status"]["nodeInfo"]["kubeletVersion"] == ""
    assert len(node["status"]["nodeInfo"]) == 10


@pytest.mark.parametrize(("sample", "group", "plural"), [
    ("daemonset", "apps", "daemonsets"),
    ("replicationcontroller", "", "replicationcontrollers"),
    ("statefulset", "apps", "statefulsets"),
    ("service", "", "services"),
    ("pdb", "policy", "poddisruptionbudgets"),
    ("ingress", "networking.k8s.io", "ingresses"),
])
def test_zero_status_fields_match_what_kube_apiserver_answered(sample: str, group: str, plural: str) -> None:
    directory = _samples_dir()
    if directory is None:
        pytest.skip("compat samples not available")
    recorded = json.loads((directory / f"{sample}.json").read_text())
    obj = created(group, plural, {"metadata": meta(), "spec": recorded.get("spec", {})})
    assert obj["status"] == recorded["status"]


# -- DELETE answers ------------------------------------------------------------------------

# What kube-apiserver 1.28 answered a DELETE with (samples' `*-delete.json`), by resource.
DELETE_ANSWERS = {
    "configmap": ("", "configmaps", "Status"),
    "deployment": ("apps", "deployments", "Status"),
    "job": ("batch", "jobs", "Job"),
    "lease": ("coordination.k8s.io", "leases", "Status"),
    "node": ("", "nodes", "Status"),
    "pod": ("", "pods", "Pod"),
    "pv": ("", "persistentvolumes", "PersistentVolume"),
    "pvc": ("", "persistentvolumeclaims", "PersistentVolumeClaim"),
    "rc": ("", "replicationcontrollers", "ReplicationController"),
    "role": ("rbac.authorization.k8s.io", "roles", "Status"),
    "secret": ("", "secrets", "Status"),
    "service": ("", "services", "Service"),
}


@pytest.mark.parametrize("sample", sorted(DELETE_ANSWERS))
def test_a_delete_answers_with_what_kube_apiserver_answers(sample: str) -> None:
    group, plural, answer_kind = DELETE_ANSWERS[sample]
    info = REG.get(group, "v1", plural)
    assert DEFAULT.for_info(info).delete_returns_object == (answer_kind != "Status")


@pytest.mark.parametrize("sample", sorted(DELETE_ANSWERS))
def test_the_delete_table_is_the_recorded_one(sample: str) -> None:
    directory = _samples_dir()
    if directory is None:
        pytest.skip("compat samples not available")
    recorded = json.loads((directory / f"{sample}-delete.json").read_text())
    assert recorded["kind"] == DELETE_ANSWERS[sample][2]


@pytest.mark.parametrize(("group", "plural", "returns_object"), [
    # Upstream registries with ReturnDeletedObject beyond the recorded twelve.
    ("", "namespaces", True), ("", "serviceaccounts", True), ("", "podtemplates", True),
    ("", "resourcequotas", True), ("storage.k8s.io", "storageclasses", True),
    ("apps", "replicasets", False), ("apps", "statefulsets", False), ("apps", "daemonsets", False),
    ("", "limitranges", False),
])
def test_other_kinds_answer_a_delete_as_their_upstream_registry(group: str, plural: str, returns_object: bool) -> None:
    assert DEFAULT.for_info(REG.get(group, "v1", plural)).delete_returns_object is returns_object
