"""Ephemeral containers (`kubectl debug`) without a server: the Pod strategy's rules for
pods/ephemeralcontainers (upstream's EphemeralContainersStrategy and validation), and the
agent's decisions (start once, never restart, share the target's PID namespace, status)."""

from __future__ import annotations

import copy

from kybernetes.agent import podspec, podsync, runtime
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.api.kinds.pod import PodStrategy
from kybernetes.api.registry import Registry
from kybernetes.api.validation import validate_with
from kybernetes.testing import fakes

PODS = Registry().get("", "v1", "pods")
STRATEGY = PodStrategy()


def stored_pod(ephemeral: list[dict] | None = None) -> dict:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": "default", "uid": "u1", "resourceVersion": "5"},
           "spec": {"containers": [{"name": "c", "image": "busybox:1.35"}],
                    "initContainers": [{"name": "init", "image": "busybox:1.35"}]},
           "status": {"phase": "Running"}}
    if ephemeral is not None:
        pod["spec"]["ephemeralContainers"] = ephemeral
    STRATEGY.default(PODS, pod)
    return pod


def debugger(**fields) -> dict:
    return {"name": "dbg", "image": "busybox:1.35", "targetContainerName": "c", **fields}


def write(old: dict, ephemeral: list[dict]) -> list[str]:
    """A PUT of pods/ephemeralcontainers carrying `ephemeral`: the errors, as field: message."""
    body = copy.deepcopy(old)
    body["spec"]["ephemeralContainers"] = ephemeral
    body["spec"]["containers"][0]["image"] = "ignored:1"  # the subresource changes nothing else
    new = STRATEGY.write_policy(PODS, "ephemeralcontainers").merge(old, body, False)
    assert new["spec"]["containers"][0]["image"] == "busybox:1.35"
    STRATEGY.default(PODS, new)
    return [f"{e.field}: {e.message()}" for e in validate_with(STRATEGY, PODS, new, old)]


def test_adding_an_ephemeral_container_is_accepted():
    assert write(stored_pod(), [debugger()]) == []
    assert write(stored_pod([debugger()]), [debugger(), debugger(name="dbg2", targetContainerName="")]) == []


def test_existing_ephemeral_containers_may_not_change_or_go():
    old = stored_pod([debugger()])
    changed = write(old, [{**old["spec"]["ephemeralContainers"][0], "image": "busybox:1.36"}])
    assert len(changed) == 1
    assert changed[0].startswith('spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" '
                                 'may not be changed\n')
    assert write(old, []) == ['spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" '
                              'may not be removed\n']


def test_names_are_unique_across_every_kind_of_container():
    for name in ("c", "init"):
        assert write(stored_pod(), [debugger(name=name)]) == \
            [f'spec.ephemeralContainers[0].name: Duplicate value: "{name}"']
    assert write(stored_pod(), [debugger(), debugger()]) == ['spec.ephemeralContainers[1].name: Duplicate value: "dbg"']


def test_fields_an_ephemeral_container_may_not_set():
    errs = write(stored_pod(), [debugger(ports=[{"containerPort": 80}],
                                         resources={"limits": {"cpu": "1"}},
                                         readinessProbe={"exec": {"command": ["true"]}},
                                         lifecycle={"preStop": {"exec": {"command": ["true"]}}})])
    assert sorted(errs) == sorted(f"spec.ephemeralContainers[0].{k}: Forbidden: cannot be set for an Ephemeral "
                                  "Container" for k in ("ports", "resources", "readinessProbe", "lifecycle"))


def test_the_target_must_be_a_regular_or_init_container():
    assert write(stored_pod(), [debugger(targetContainerName="nope")]) == \
        ['spec.ephemeralContainers[0].targetContainerName: Not found: "nope"']


def test_static_pods_take_no_ephemeral_containers():
    old = stored_pod()
    old["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc"}
    assert write(old, [debugger()]) == [": Forbidden: static pods do not support ephemeral containers"]


def test_a_pod_update_keeps_the_stored_ephemeral_containers():
    old = stored_pod([debugger()])
    body = copy.deepcopy(old)
    body["spec"]["ephemeralContainers"] = []
    body["metadata"]["labels"] = {"a": "b"}
    new = STRATEGY.write_policy(PODS, "").merge(old, body, False)
    assert new["spec"]["ephemeralContainers"] == old["spec"]["ephemeralContainers"]
    assert new["metadata"]["labels"] == {"a": "b"}


# -- the agent ------------------------------------------------------------------------------


SANDBOX = podsync.SandboxState("sb", True, 0, 90.0, "10.42.0.5", ["10.42.0.5"])


def agent_pod(**status) -> dict:
    p = fakes.pod("p", "ns", uid="u1", image="busybox:1.35")
    p["spec"]["ephemeralContainers"] = [debugger()]
    p["status"] = status
    return p


def state(name: str, st: str, **kw) -> podsync.ContainerState:
    return podsync.ContainerState(f"id-{name}", name, st, 0, "", started_at=100.0, **kw)


def test_an_ephemeral_container_starts_once_and_is_never_restarted_or_removed():
    plan = podsync.plan_pod(agent_pod(), SANDBOX, [state("c", podsync.RUNNING)], 200.0)
    assert [c["name"] for c, _, _ in plan.start] == ["dbg"]
    dbg = state("dbg", podsync.RUNNING, ephemeral=True)
    plan = podsync.plan_pod(agent_pod(), SANDBOX, [state("c", podsync.RUNNING), dbg], 200.0)
    assert plan.start == [] and plan.remove == []
    done = state("dbg", podsync.EXITED, ephemeral=True, exit_code=1, finished_at=150.0)
    plan = podsync.plan_pod(agent_pod(), SANDBOX, [state("c", podsync.RUNNING), done], 500.0)
    assert plan.start == [] and "dbg" not in plan.waiting
    # Gone from the runtime (a new sandbox) after it ran: not started again.
    ran = agent_pod(ephemeralContainerStatuses=[{"name": "dbg", "state": {"terminated": {"exitCode": 0}}}])
    assert podsync.plan_pod(ran, SANDBOX, [state("c", podsync.RUNNING)], 500.0).start == []


def test_ephemeral_status_and_pid_target():
    dbg = state("dbg", podsync.RUNNING, ephemeral=True, image_ref="sha256:abc")
    containers = [state("c", podsync.RUNNING), dbg]
    plan = podsync.plan_pod(agent_pod(), SANDBOX, containers, 200.0)
    status = podsync.pod_status(agent_pod(), SANDBOX, containers, plan, "10.0.0.1", 200.0)
    (eph,) = status["ephemeralContainerStatuses"]
    assert eph["name"] == "dbg" and "running" in eph["state"] and eph["containerID"] == "containerd://id-dbg"
    assert eph["imageID"] == "sha256:abc" and eph["ready"] is False and eph["image"] == "docker.io/library/busybox:1.35"
    assert status["phase"] == "Running" and [s["name"] for s in status["containerStatuses"]] == ["c"]
    assert podsync.pid_target(debugger(), containers) == "id-c"
    assert podsync.pid_target(debugger(targetContainerName=""), containers) == ""


def test_the_container_config_joins_the_targets_pid_namespace():
    p = agent_pod()
    spec = podspec.container_spec(p, p["spec"]["ephemeralContainers"][0], [], 0, "h")
    assert spec.annotations[podspec.EPHEMERAL] == "true"
    spec.pid_target_id = "id-c"
    ns = runtime.container_config(spec, False).linux.security_context.namespace_options
    assert (ns.pid, ns.target_id) == (pb.TARGET, "id-c")
    plain = podspec.container_spec(p, p["spec"]["containers"][0], [], 0, "h")
    assert podspec.EPHEMERAL not in plain.annotations
    assert runtime.container_config(plain, False).linux.security_context.namespace_options.pid == pb.CONTAINER
