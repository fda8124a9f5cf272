"""In-place pod resize without a server: the Pod strategy's pods/resize write (what it
takes from the request, ValidatePodResize and its messages), the requests a pod being
resized holds (scheduler and agent), and the agent's admission and actuation decisions."""

from __future__ import annotations

import copy

from kybernetes.api import resize
from kybernetes.api.kinds.pod import PodStrategy
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with

PODS = Registry().get("", "v1", "pods")
STRATEGY = PodStrategy()


def stored_pod(**container_fields) -> dict:
    container = {"name": "c", "image": "busybox:1.35",
                 "resources": {"requests": {"cpu": "100m", "memory": "64Mi"},
                               "limits": {"cpu": "200m", "memory": "64Mi"}}, **container_fields}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5", "generation": 1},
           "spec": {"containers": [container],
                    "initContainers": [
                        {"name": "init", "image": "busybox:1.35",
                         "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "10m"}}},
                        {"name": "side", "image": "busybox:1.35", "restartPolicy": "Always",
                         "resources": {"requests": {"cpu": "10m"}, "limits": {"cpu": "20m"}}}]},
           "status": {"phase": "Pending"}}
    STRATEGY.default(PODS, pod)
    return pod


def resize_write(old: dict, change) -> tuple[dict, list[str]]:
    """A PUT of pods/resize: the body is the stored pod changed by `change`; returns the
    pod to store and the errors, as field: message."""
    body = copy.deepcopy(old)
    change(body["spec"])
    policy = STRATEGY.write_policy(PODS, "resize")
    new = policy.merge(old, body, False)
    STRATEGY.default(PODS, new)
    return new, [f"{e.field}: {e.message()}" for e in validate_with(STRATEGY, PODS, new, old, policy)]


def containers(spec: dict) -> dict:
    return spec["containers"][0]


def test_cpu_and_memory_and_resize_policy_change_and_nothing_else():
    def change(spec):
        c = containers(spec)
        c["resources"] = {"requests": {"cpu": "150m", "memory": "64Mi"}, "limits": {"cpu": "300m", "memory": "64Mi"}}
        c["resizePolicy"] = [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]
        c["image"] = "busybox:1.36"
        spec["activeDeadlineSeconds"] = 5
    new, errs = resize_write(stored_pod(), change)
    assert errs == []
    c = containers(new["spec"])
    assert c["resources"]["limits"]["cpu"] == "300m"
    assert c["resizePolicy"] == [{"resourceName": "memory", "restartPolicy": "RestartContainer"}]
    # Other changes in the request are dropped, as upstream's dropNonResizeUpdates does.
    assert c["image"] == "busybox:1.35"
    assert "activeDeadlineSeconds" not in new["spec"]


def test_a_plain_update_may_still_not_change_resources():
    old = stored_pod()
    new = copy.deepcopy(old)
    containers(new["spec"])["resources"]["limits"]["cpu"] = "300m"
    errs = [f"{e.field}: {e.message()}" for e in validate_with(STRATEGY, PODS, new, old)]
    assert len(errs) == 1 and errs[0].startswith("spec: Forbidden: pod updates may not change fields")


def test_refusals_carry_upstream_messages():
    def set_res(**res):
        return lambda spec: containers(spec).__setitem__("resources", res)
    old = stored_pod()
    # (A request only removed comes back from its limit: pods default requests from limits.)
    assert resize_write(old, set_res(requests={"cpu": "100m"}, limits={"cpu": "200m"}))[1] == [
        "spec.containers[0].resources.requests: Forbidden: resource requests cannot be removed",
        "spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed"]
    assert resize_write(old, set_res(requests={"cpu": "100m", "memory": "64Mi"}, limits={"memory": "64Mi"}))[1] == [
        "spec.containers[0].resources.limits: Forbidden: resource limits cannot be removed"]
    assert resize_write(old, set_res(requests={"cpu": "100m", "memory": "64Mi"},
                                     limits={"cpu": "200m", "memory": "64Mi", "ephemeral-storage": "1Gi"}))[1] == [
        "spec: Forbidden: only cpu and memory resources are mutable"]
    # Burstable -> Guaranteed (for a pod of one container).
    lone = copy.deepcopy(old)
    del lone["spec"]["initContainers"]
    assert resize_write(lone, set_res(requests={"cpu": "200m", "memory": "64Mi"},
                                     limits={"cpu": "200m", "memory": "64Mi"}))[1] == [
        'spec: Invalid value: "Guaranteed": Pod QOS Class may not change as a result of resizing']
    # The resized spec is validated as any pod's.
    errs = resize_write(old, set_res(requests={"cpu": "500m", "memory": "64Mi"},
                                     limits={"cpu": "200m", "memory": "64Mi"}))[1]
    assert errs == ['spec.containers[0].resources.requests: Invalid value: "500m": '
                    "must be less than or equal to cpu limit of 200m"]


def test_init_containers_only_sidecars_resize():
    old = stored_pod()

    def init(spec):
        spec["initContainers"][0]["resources"] = {"requests": {"cpu": "20m"}, "limits": {"cpu": "20m"}}
    assert resize_write(old, init)[1] == ["spec: Forbidden: resources for non-sidecar init containers are immutable"]

    def side(spec):
        spec["initContainers"][1]["resources"] = {"requests": {"cpu": "20m"}, "limits": {"cpu": "40m"}}
    new, errs = resize_write(old, side)
    assert errs == [] and new["spec"]["initContainers"][1]["resources"]["limits"]["cpu"] == "40m"


def test_static_pods_and_nodes_without_resize_support():
    old = stored_pod()
    old["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "x"}
    assert resize_write(old, lambda s: containers(s)["resources"]["limits"].update(cpu="300m"))[1] == [
        ": Forbidden: static pods cannot be resized"]
    old = stored_pod()
    old["status"]["containerStatuses"] = [{"name": "c", "state": {"running": {}}}]
    assert resize_write(old, lambda s: containers(s)["resources"]["limits"].update(cpu="300m"))[1] == [
        "spec: Forbidden: Pod running on node without support for resize"]
    old["status"]["containerStatuses"][0]["resources"] = {"limits": {"cpu": "200m"}}
    assert resize_write(old, lambda s: containers(s)["resources"]["limits"].update(cpu="300m"))[1] == []


def test_accounted_spec_counts_the_larger_of_desired_and_allocated():
    pod = stored_pod()
    assert resize.accounted_spec(pod) is pod["spec"]
    pod["status"]["containerStatuses"] = [{"name": "c", "allocatedResources": {"cpu": "500m", "memory": "64Mi"},
                                           "resources": {"requests": {"cpu": "500m", "memory": "64Mi"}}}]
    assert containers(resize.accounted_spec(pod))["resources"]["requests"] == {"cpu": "500m", "memory": "64Mi"}
    assert containers(pod["spec"])["resources"]["requests"]["cpu"] == "100m"  # not written into
    containers(pod["spec"])["resources"]["requests"]["cpu"] = "2"
    assert containers(resize.accounted_spec(pod))["resources"]["requests"]["cpu"] == "2"
    # While Infeasible, the node holds only what it allocated.
    pod["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Infeasible"}]
    assert containers(resize.accounted_spec(pod))["resources"]["requests"]["cpu"] == "500m"
