"""The agent's pod lifecycle decisions: native sidecars (ordered start, restarts, stop
once the regular containers finished, status), PodInitializing, activeDeadlineSeconds,
readiness gates, and lifecycle hook handlers."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from kybernetes.agent import podsync
from kybernetes.agent.probes import run_hook
from kybernetes.api.pods import readiness_gates_message
from kybernetes.testing import fakes

SANDBOX = podsync.SandboxState("sb", True, 0, 90.0, "10.42.0.5", ["10.42.0.5"])
SIDECAR = {"name": "side", "image": "busybox:1.35", "restartPolicy": "Always"}
PROBED_SIDECAR = {**SIDECAR, "startupProbe": {"exec": {"command": ["true"]}}}
INIT = {"name": "setup", "image": "busybox:1.35"}


def pod(*, status=None, **spec):
    return fakes.pod("p", "ns", uid="u1", image="busybox:1.35", status=status, **spec)


def state(name, st=podsync.RUNNING, *, init=False, code=0, restarts=0, finished=0.0, cid=None):
    return podsync.ContainerState(cid or f"id-{name}-{restarts}", name, st, restarts, "", init=init,
                                  started_at=100.0, finished_at=finished, exit_code=code)


def names(plan):
    return [c["name"] for c, _init, _n in plan.start]


def test_a_sidecar_starts_in_init_order_and_the_next_waits_until_it_has_started():
    p = pod(initContainers=[PROBED_SIDECAR, INIT])
    assert names(podsync.plan_pod(p, SANDBOX, [], 100)) == ["side"]
    running = [state("side", init=True)]
    # Running but its startupProbe has not passed: nothing else starts.
    assert names(podsync.plan_pod(p, SANDBOX, running, 101, {"side": False})) == []
    assert names(podsync.plan_pod(p, SANDBOX, running, 102, {"side": True})) == ["setup"]
    done = running + [state("setup", podsync.EXITED, init=True, finished=105.0)]
    assert names(podsync.plan_pod(p, SANDBOX, done, 106, {"side": True})) == ["c"]
    # Without a startupProbe, running is started.
    p2 = pod(initContainers=[SIDECAR])
    assert names(podsync.plan_pod(p2, SANDBOX, [state("side", init=True)], 101)) == ["c"]


def test_a_sidecar_that_exits_is_restarted_with_back_off_whatever_the_restart_policy():
    p = pod(restartPolicy="Never", initContainers=[SIDECAR])
    crashed = [state("side", podsync.EXITED, init=True, code=1, restarts=1, finished=200.0), state("c")]
    plan = podsync.plan_pod(p, SANDBOX, crashed, 205)
    assert plan.start == [] and plan.waiting["side"][0] == "CrashLoopBackOff" and plan.requeue_after == 5.0
    assert [(c["name"], n) for c, _i, n in podsync.plan_pod(p, SANDBOX, crashed, 211).start] == [("side", 2)]
    # The regular container keeps running meanwhile: the pod stays initialized and Running.
    status = podsync.pod_status(p, SANDBOX, crashed, plan, "h", 205)
    assert status["phase"] == "Running"
    assert {c["type"]: c["status"] for c in status["conditions"]}["Initialized"] == "True"
    assert status["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_when_the_regular_containers_finish_the_sidecars_stop_and_they_decide_the_phase():
    p = pod(restartPolicy="Never", initContainers=[SIDECAR])
    finished = [state("side", init=True), state("c", podsync.EXITED, code=0, finished=150.0)]
    plan = podsync.plan_pod(p, SANDBOX, finished, 151)
    assert plan.kill_pod and plan.start == []
    # Until the sidecar has stopped the pod is not terminal; then only "c" counts (the
    # sidecar's SIGTERM exit code does not fail it).
    assert podsync.pod_status(p, SANDBOX, finished, plan, "h", 151)["phase"] == "Running"
    stopped = [state("side", podsync.EXITED, init=True, code=143, finished=152.0), finished[1]]
    assert not podsync.plan_pod(p, SANDBOX, stopped, 153).start
    st = podsync.pod_status(p, SANDBOX, stopped, podsync.Plan(), "h", 153)
    assert st["phase"] == "Succeeded"
    failed = [stopped[0], state("c", podsync.EXITED, code=2, finished=150.0)]
    assert podsync.pod_status(p, SANDBOX, failed, podsync.Plan(), "h", 153)["phase"] == "Failed"
    # With restartPolicy Always the pod never finishes: the regular container restarts.
    always = pod(initContainers=[SIDECAR])
    assert not podsync.plan_pod(always, SANDBOX, finished, 200).kill_pod


def test_sidecar_status_started_ready_and_the_pod_conditions():
    p = pod(initContainers=[{**PROBED_SIDECAR, "readinessProbe": {"exec": {"command": ["true"]}}}])
    cs = [state("side", init=True)]
    st = podsync.pod_status(p, SANDBOX, cs, podsync.Plan(), "h", 120, {"side": (False, False)})
    side = st["initContainerStatuses"][0]
    assert side["started"] is False and side["ready"] is False and "running" in side["state"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [side]"
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "PodInitializing"
    assert st["phase"] == "Pending"
    cs.append(state("c"))
    # Started but not ready: initialized, but the pod is not Ready on the sidecar's account.
    st = podsync.pod_status(p, SANDBOX, cs, podsync.Plan(), "h", 130, {"side": (False, True)})
    conds = {c["type"]: c for c in st["conditions"]}
    assert st["phase"] == "Running" and conds["Initialized"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["ContainersReady"]["status"] == "False"
    assert conds["ContainersReady"]["message"] == "containers with unready status: [side]"
    st = podsync.pod_status(p, SANDBOX, cs, podsync.Plan(), "h", 140, {"side": (True, True)})
    conds = {c["type"]: c["status"] for c in st["conditions"]}
    assert conds["Ready"] == "True" and conds["ContainersReady"] == "True"
    assert st["initContainerStatuses"][0]["ready"] and st["initContainerStatuses"][0]["started"]


def test_containers_wait_with_pod_initializing_while_init_containers_run():
    p = pod(initContainers=[INIT, {"name": "second", "image": "busybox:1.35"}])
    plan = podsync.plan_pod(p, SANDBOX, [state("setup", init=True)], 100)
    st = podsync.pod_status(p, SANDBOX, [state("setup", init=True)], plan, "h", 100)
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert st["initContainerStatuses"][1]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert "running" in st["initContainerStatuses"][0]["state"]
    # Without init containers, a container not there yet is ContainerCreating.
    st = podsync.pod_status(pod(), SANDBOX, [], podsync.Plan(), "h", 100)
    assert st["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"


def test_active_deadline_kills_the_pod_and_fails_it_for_good():
    started = {"phase": "Running", "startTime": "1970-01-01T00:01:40Z"}  # t = 100
    p = pod(activeDeadlineSeconds=30, status=started)
    plan = podsync.plan_pod(p, SANDBOX, [state("c")], 110)
    assert not plan.kill_pod and plan.requeue_after == 20.0
    plan = podsync.plan_pod(p, SANDBOX, [state("c")], 131)
    assert plan.kill_pod and plan.deadline_exceeded
    killed = [state("c", podsync.EXITED, code=137, finished=131.0)]
    st = podsync.pod_status(p, SANDBOX, killed, plan, "h", 131)
    assert (st["phase"], st["reason"], st["message"]) == (
        "Failed", "DeadlineExceeded", "Pod was active on the node longer than the specified deadline")
    # Later syncs keep it so, though restartPolicy Always would restart the container.
    p["status"] = st
    again = podsync.plan_pod(p, SANDBOX, killed, 140)
    assert again.kill_pod and not again.start
    st2 = podsync.pod_status(p, SANDBOX, killed, again, "h", 140)
    assert (st2["phase"], st2["reason"]) == ("Failed", "DeadlineExceeded")
    # No deadline, or not started yet: nothing to count.
    assert podsync.deadline_exceeded(pod(status=started), 10_000) is None
    assert podsync.deadline_exceeded(pod(activeDeadlineSeconds=5), 10_000) is None


def test_readiness_gates_hold_ready_but_not_containers_ready():
    gates = [{"conditionType": "example.com/lb"}, {"conditionType": "example.com/dns"}]
    p = pod(readinessGates=gates, status={"conditions": [{"type": "example.com/dns", "status": "False"}]})
    st = podsync.pod_status(p, SANDBOX, [state("c")], podsync.Plan(), "h", 120)
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["ContainersReady"]["status"] == "True"
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "ReadinessGatesNotReady"
    assert conds["Ready"]["message"] == (
        'corresponding condition of pod readiness gate "example.com/lb" does not exist., '
        'the status of pod readiness gate "example.com/dns" is not "True", but False')
    # Foreign conditions are kept as they are.
    assert conds["example.com/dns"]["status"] == "False"
    p["status"]["conditions"] = [{"type": "example.com/dns", "status": "True"},
                                 {"type": "example.com/lb", "status": "True"}]
    st = podsync.pod_status(p, SANDBOX, [state("c")], podsync.Plan(), "h", 130)
    assert {c["type"]: c["status"] for c in st["conditions"]}["Ready"] == "True"
    assert readiness_gates_message(pod(), []) == ""


async def test_lifecycle_hook_handlers():
    calls = []

    async def exec_fn(cmd, timeout):
        calls.append(cmd)
        return (0, b"", b"") if cmd[0] == "true" else (3, b"out", b"err")

    hits = []

    async def handler(request):
        hits.append((request.path, request.headers.get("X-Hook")))
        return web.Response(status=500)  # any answer is a delivered hook, as for the kubelet

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # noqa: SLF001 - the bound ephemeral port
    try:
        async with aiohttp.ClientSession() as session:
            assert await run_hook({"exec": {"command": ["true"]}}, {}, "", exec_fn, session, 5) == ""
            failure = await run_hook({"exec": {"command": ["false"]}}, {}, "", exec_fn, session, 5)
            assert "exited with 3" in failure and "outerr" in failure
            hook = {"httpGet": {"host": "127.0.0.1", "port": "web", "path": "started",
                                "httpHeaders": [{"name": "X-Hook", "value": "yes"}]}}
            assert await run_hook(hook, {"ports": [{"name": "web", "containerPort": port}]}, "10.0.0.9",
                                  exec_fn, session, 5) == ""
            assert hits == [("/started", "yes")]
            # Nothing listening: the hook failed, with the kubelet's wording.
            closed = {"httpGet": {"port": 1, "path": "/x"}}
            assert (await run_hook(closed, {}, "127.0.0.1", exec_fn, session, 2)).startswith(
                "HTTP lifecycle hook (/x) failed - error:")
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("policy", ["Never", "OnFailure"])
def test_a_finished_pod_does_not_restart_its_stopped_sidecar(policy):
    p = pod(restartPolicy=policy, initContainers=[SIDECAR])
    stopped = [state("side", podsync.EXITED, init=True, code=143, finished=152.0),
               state("c", podsync.EXITED, code=0, finished=150.0)]
    plan = podsync.plan_pod(p, SANDBOX, stopped, 400)
    assert plan.start == [] and not plan.kill_pod


@pytest.mark.parametrize("policy", ["Always", "OnFailure", "Never"])
def test_a_container_left_created_but_never_started_gets_a_new_attempt(policy):
    # An agent or runtime failure between CreateContainer and StartContainer leaves one in
    # "created": as the kubelet, it is started anew (next attempt), never waited on for ever
    # and never taken for a failure.
    p = pod(restartPolicy=policy, initContainers=[INIT])
    plan = podsync.plan_pod(p, SANDBOX, [state("setup", podsync.CREATED, init=True)], 100)
    assert [(c["name"], n) for c, _i, n in plan.start] == [("setup", 1)] and not plan.failed
    done = [state("setup", podsync.EXITED, init=True, finished=99.0)]
    plan = podsync.plan_pod(p, SANDBOX, done + [state("c", podsync.CREATED, restarts=2)], 100)
    assert [(c["name"], n) for c, _i, n in plan.start] == [("c", 3)]
    side = pod(restartPolicy=policy, initContainers=[SIDECAR])
    plan = podsync.plan_pod(side, SANDBOX, [state("side", podsync.CREATED, init=True), state("c")], 100)
    assert [(c["name"], n) for c, _i, n in plan.start] == [("side", 1)]
