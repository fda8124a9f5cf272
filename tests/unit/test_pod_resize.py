"""In-place pod resize without a server: the Pod strategy's pods/resize write (what it
takes from the request, ValidatePodResize and its messages), the requests a pod being
resized holds (scheduler and agent), and the agent's admission and actuation decisions."""

from __future__ import annotations

import copy

from kybernetes.agent import resize as agent_resize
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


# -- the agent's decisions ------------------------------------------------------------------------

def running_pod(cpu_limit: str = "200m", memory_policy: str = "NotRequired") -> dict:
    pod = stored_pod(resizePolicy=[{"resourceName": "memory", "restartPolicy": memory_policy}])
    del pod["spec"]["initContainers"]
    containers(pod["spec"])["resources"]["limits"]["cpu"] = cpu_limit
    return pod


def test_the_node_admits_a_resize_that_fits():
    allocation = agent_resize.Allocation(agent_resize.desired(running_pod()))
    assert agent_resize.admit(running_pod(), allocation, {"cpu": "2", "memory": "1Gi"}, {}) == agent_resize.Admission()
    pod = running_pod("400m")
    got = agent_resize.admit(pod, allocation, {"cpu": "2", "memory": "1Gi"}, {"cpu": 500, "memory": 0})
    assert got.pending is None and got.allocate["c"]["limits"]["cpu"] == "400m"


def test_infeasible_and_deferred_resizes_wait_with_the_kubelets_messages():
    allocation = agent_resize.Allocation(agent_resize.desired(running_pod()))
    pod = running_pod("3")
    containers(pod["spec"])["resources"]["requests"]["cpu"] = "3"
    assert agent_resize.admit(pod, allocation, {"cpu": "2", "memory": "1Gi"}, {}).pending == (
        "Infeasible", "Node didn't have enough capacity: cpu, requested: 3000, capacity: 2000")
    containers(pod["spec"])["resources"]["requests"]["cpu"] = "1500m"
    assert agent_resize.admit(pod, allocation, {"cpu": "2", "memory": "1Gi"}, {"cpu": 1000}).pending == (
        "Deferred", "Node didn't have enough resource: cpu, requested: 1500, used: 1000, capacity: 2000")


def test_actions_update_in_place_or_restart_per_resize_policy():
    pod = running_pod()
    allocation = agent_resize.Allocation(agent_resize.desired(pod), {"id1": agent_resize.linux_of(
        containers(pod["spec"])["resources"])})
    assert agent_resize.actions(pod, allocation, [("c", "id1")]) == []
    allocation.resources["c"] = containers(running_pod("400m")["spec"])["resources"]
    (action,) = agent_resize.actions(pod, allocation, [("c", "id1")])
    assert not action.restart and action.linux[1:3] == (40000, 100000)
    restarting = running_pod(memory_policy="RestartContainer")
    allocation.resources["c"] = {**containers(restarting["spec"])["resources"],
                                 "limits": {"cpu": "200m", "memory": "128Mi"}}
    (action,) = agent_resize.actions(restarting, allocation, [("c", "id1")])
    assert action.restart and action.linux[3] == 128 * 1024 * 1024
    # A container not started from the allocation yet is left alone.
    assert agent_resize.actions(pod, allocation, [("c", "id2")]) == []


def test_status_reports_allocation_conditions_and_observed_generation():
    pod = running_pod()
    pod["status"]["conditions"] = [{"type": "PodResizePending", "status": "True", "reason": "Deferred"}]
    allocation = agent_resize.Allocation(agent_resize.desired(pod))
    status = {"conditions": [{"type": "Ready", "status": "True"},
                             {"type": "PodResizePending", "status": "True", "reason": "Deferred"}],
              "containerStatuses": [{"name": "c", "state": {"running": {}}}]}
    agent_resize.decorate_status(status, pod, allocation, ("Infeasible", "too big"), "", "now")
    assert status["observedGeneration"] == 1
    cs = status["containerStatuses"][0]
    assert cs["allocatedResources"] == {"cpu": "100m", "memory": "64Mi"}
    assert cs["resources"] == {"limits": {"cpu": "200m", "memory": "64Mi"}, "requests": {"cpu": "100m", "memory": "64Mi"}}
    assert [(c["type"], c.get("reason"), c.get("message")) for c in status["conditions"]] == [
        ("Ready", None, None), ("PodResizePending", "Infeasible", "too big")]
    agent_resize.decorate_status(status, pod, allocation, None, "", "now")
    assert [c["type"] for c in status["conditions"]] == ["Ready"]


def test_allocation_checkpoint_round_trips():
    allocation = agent_resize.Allocation({"c": {"limits": {"cpu": "1"}}}, {"id": (2, 100000, 100000, 0)})
    assert agent_resize.Allocation.loads(allocation.dumps()) == allocation


def test_simulated_nodes_admit_a_resize_at_once():
    from kybernetes.simnodes import model
    pod = running_pod()
    pod["status"] = model.running_pod_status(pod, "10.0.0.1", "10.1.0.2", "now", lambda: "id")
    assert model.pod_action(pod) is None
    assert pod["status"]["containerStatuses"][0]["resources"]["limits"]["cpu"] == "200m"
    containers(pod["spec"])["resources"]["limits"]["cpu"] = "400m"
    pod["metadata"]["generation"] = 2
    assert model.pod_action(pod) == model.RESIZE
    pod["status"] = model.resized_pod_status(pod)
    assert pod["status"]["containerStatuses"][0]["resources"]["limits"]["cpu"] == "400m"
    assert pod["status"]["observedGeneration"] == 2
    assert model.pod_action(pod) is None


def test_a_memory_limit_is_not_lowered_below_what_the_container_uses():
    lower = agent_resize.Action("m", "id", (2, 0, 0, 24 << 20), restart=False)
    applied = (2, 0, 0, 64 << 20)
    assert agent_resize.memory_below_usage(lower, applied, 40 << 20) == (
        'attempting to set container "m" memory limit (25165824) below current usage (41943040)')
    assert agent_resize.memory_below_usage(lower, applied, 10 << 20) == ""
    assert agent_resize.memory_below_usage(lower, applied, None) == ""  # best effort
    raise_ = agent_resize.Action("m", "id", (2, 0, 0, 128 << 20), restart=False)
    assert agent_resize.memory_below_usage(raise_, applied, 100 << 20) == ""
    assert agent_resize.memory_below_usage(agent_resize.Action("m", "id", lower.linux, restart=True),
                                           applied, 40 << 20) == ""


def test_a_resize_allocated_but_not_applied_is_in_progress():
    pod = running_pod()
    allocation = agent_resize.Allocation(agent_resize.desired(running_pod("400m")))
    allocation.actuated["c"] = containers(pod["spec"])["resources"]
    status = {"containerStatuses": [{"name": "c", "state": {"running": {}}}]}
    agent_resize.decorate_status(status, pod, allocation, None, "", "now")
    assert [(c["type"], c.get("reason")) for c in status["conditions"]] == [("PodResizeInProgress", None)]
    assert status["containerStatuses"][0]["resources"]["limits"]["cpu"] == "200m"
    agent_resize.decorate_status(status, pod, allocation, None, "it failed", "now")
    assert [(c["type"], c.get("reason"), c.get("message")) for c in status["conditions"]] == [
        ("PodResizeInProgress", "Error", "it failed")]


def test_resize_policies_are_validated_as_upstream():
    def errors(policies, restart="Always"):
        pod = stored_pod(resizePolicy=policies)
        pod["spec"]["restartPolicy"] = restart
        return [f"{e.field}: {e.message()}" for e in validate_with(STRATEGY, PODS, pod, None)]
    assert errors([{"resourceName": "cpu", "restartPolicy": "RestartContainer"}]) == []
    assert errors([{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                   {"resourceName": "cpu", "restartPolicy": "NotRequired"}]) == [
        'spec.containers[0].resizePolicy[1]: Duplicate value: "cpu"']
    assert errors([{"resourceName": "gpu", "restartPolicy": "Sometimes"}]) == [
        'spec.containers[0].resizePolicy: Unsupported value: "gpu": supported values: "cpu", "memory"',
        'spec.containers[0].resizePolicy: Unsupported value: "Sometimes": supported values: '
        '"NotRequired", "RestartContainer"']
    assert errors([{"resourceName": "memory", "restartPolicy": "RestartContainer"}], "Never") == [
        "spec.containers[0].resizePolicy: Invalid value: \"RestartContainer\": "
        "must be 'NotRequired' when `restartPolicy` is 'Never'"]


def test_the_scheduler_counts_what_a_resized_pod_holds():
    from kybernetes.scheduler.cache import PodInfo
    pod = running_pod()
    pod["spec"]["nodeName"] = "n1"
    assert PodInfo(pod).cpu == 100
    # Resized down in the spec, the node still holds the old allocation until it applies it.
    pod["status"]["containerStatuses"] = [{"name": "c", "allocatedResources": {"cpu": "500m", "memory": "64Mi"}}]
    assert PodInfo(pod).cpu == 500
    containers(pod["spec"])["resources"]["requests"]["cpu"] = "800m"
    assert PodInfo(pod).cpu == 800


def test_the_node_counts_other_pods_with_what_it_allocated_them():
    from kybernetes.agent.admission import general_predicates
    node = {"status": {"allocatable": {"cpu": "2", "memory": "1Gi", "pods": "110"}}}
    waiting = running_pod()
    allocation = agent_resize.Allocation(agent_resize.desired(waiting))
    # Its resize to 100 cpus is Infeasible: the node still gives it 100m.
    containers(waiting["spec"])["resources"]["requests"]["cpu"] = "100"
    containers(waiting["spec"])["resources"]["limits"]["cpu"] = "100"
    new = running_pod()
    assert general_predicates(new, node, [waiting]) is not None
    assert general_predicates(new, node, [agent_resize.as_allocated(waiting, allocation)]) is None
    assert agent_resize.as_allocated(new, None) is new
