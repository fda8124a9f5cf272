"""The pod rules every component shares (kybernetes/api/pods.py): QoS class as
Kubernetes' ComputePodQOS, ToleratesTaint, phase and condition helpers, pod_key."""

from __future__ import annotations

import pytest

from kybernetes.api.pods import (
    Taint,
    Toleration,
    pod_is_active,
    pod_is_ready,
    pod_is_terminal,
    pod_key,
    qos_class,
    tolerates,
    toleration_matches,
)


def _pod(*containers: dict, init: tuple[dict, ...] = (), pod_resources: dict | None = None) -> dict:
    spec: dict = {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(containers)]}
    if init:
        spec["initContainers"] = [{"name": f"i{i}", "resources": r} for i, r in enumerate(init)]
    if pod_resources is not None:
        spec["resources"] = pod_resources
    return {"metadata": {"name": "p", "namespace": "ns"}, "spec": spec}


def _rr(cpu: str | None = None, mem: str | None = None, **extra: str) -> dict:
    out = dict(extra)
    if cpu is not None:
        out["cpu"] = cpu
    if mem is not None:
        out["memory"] = mem
    return out


GUARANTEED = {"requests": _rr("1", "1Gi"), "limits": _rr("1", "1Gi")}


@pytest.mark.parametrize(("pod", "want"), [
    (_pod({}), "BestEffort"),
    (_pod({}, {}), "BestEffort"),
    # Only cpu and memory decide: other resources and zero amounts do not make a pod Burstable.
    (_pod({"requests": {"ephemeral-storage": "1Gi"}, "limits": {"nvidia.com/gpu": "1"}}), "BestEffort"),
    (_pod({"requests": _rr("0", "0")}), "BestEffort"),
    (_pod(GUARANTEED), "Guaranteed"),
    (_pod(GUARANTEED, GUARANTEED), "Guaranteed"),
    # Quantities compare by value, not by spelling.
    (_pod({"requests": _rr("1000m", "1024Mi"), "limits": _rr("1", "1Gi")}), "Guaranteed"),
    # A zero request is ignored, so the cpu limit has no request to equal.
    (_pod({"requests": _rr("0", "1Gi"), "limits": _rr("1", "1Gi")}), "Burstable"),
    (_pod({"requests": _rr("500m", "1Gi"), "limits": _rr("1", "1Gi")}), "Burstable"),
    (_pod({"requests": _rr("1", "1Gi"), "limits": _rr("1")}), "Burstable"),
    (_pod(GUARANTEED, {}), "Burstable"),
    # Init containers count as well.
    (_pod(GUARANTEED, init=({"requests": _rr("100m")},)), "Burstable"),
    (_pod(GUARANTEED, init=(GUARANTEED,)), "Guaranteed"),
    # Extra resources beside cpu and memory do not stop a pod being Guaranteed.
    (_pod({"requests": _rr("1", "1Gi", **{"nvidia.com/gpu": "1"}), "limits": _rr("1", "1Gi")}), "Guaranteed"),
    # Pod-level resources decide alone when set.
    (_pod({}, pod_resources={"requests": _rr("1", "1Gi"), "limits": _rr("1", "1Gi")}), "Guaranteed"),
    (_pod(GUARANTEED, pod_resources={"requests": _rr("1", "1Gi"), "limits": _rr("2", "1Gi")}), "Burstable"),
    (_pod(GUARANTEED, pod_resources={"limits": _rr("1")}), "Burstable"),
])
def test_qos_class_follows_kubernetes(pod: dict, want: str) -> None:
    assert qos_class(pod) == want


@pytest.mark.parametrize(("tol", "taint", "want"), [
    ({"key": "k", "operator": "Equal", "value": "v", "effect": "NoSchedule"},
     {"key": "k", "value": "v", "effect": "NoSchedule"}, True),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "v", "effect": "NoExecute"}, True),  # any effect
    ({"key": "k", "value": "v", "effect": "NoSchedule"}, {"key": "k", "value": "v", "effect": "NoExecute"}, False),
    ({"key": "k", "value": "v"}, {"key": "k", "value": "w", "effect": "NoSchedule"}, False),
    ({"key": "k", "operator": "Exists"}, {"key": "k", "value": "w", "effect": "NoSchedule"}, True),
    ({"key": "k", "operator": "Exists"}, {"key": "other", "effect": "NoSchedule"}, False),
    ({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"}, True),
    ({"operator": "Exists", "effect": "NoSchedule"}, {"key": "a", "effect": "NoExecute"}, False),
    ({"key": "k", "operator": "Lt", "value": "5"}, {"key": "k", "value": "3", "effect": "NoSchedule"}, False),
])
def test_toleration_matches_as_tolerates_taint(tol: dict, taint: dict, want: bool) -> None:
    assert toleration_matches(tol, taint) is want
    assert tolerates(Toleration.of(tol), Taint.of(taint)) is want


def test_phase_and_conditions() -> None:
    pod = {"metadata": {"name": "a", "namespace": "x"},
           "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}}
    assert pod_key(pod) == "x/a"
    assert pod_is_ready(pod) and pod_is_active(pod) and not pod_is_terminal(pod)
    pod["status"]["phase"] = "Succeeded"
    assert pod_is_terminal(pod) and not pod_is_active(pod)
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert not pod_is_ready(pod) and not pod_is_active(pod)
