"""Simulated nodes: object builders, pod status transitions, timing decisions,
the timer heap, and the async shell against an in-memory fake API."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import ipaddress
import random
from typing import Any

import pytest

from kybernetes.client import InformerFactory
from kybernetes.client.resources import NODES, PODS
from kybernetes.simnodes import model
from kybernetes.simnodes.sim import SimulatedNodes
from kybernetes.simnodes.timers import TimerHeap
from kybernetes.testing import fakes
from kybernetes.testing.fakes import FakeClient, until

NOW = "2026-01-02T03:04:05Z"
T0 = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def ids() -> Any:
    counter = iter(range(1, 1000))
    return lambda: f"{next(counter):064x}"


def pod(name: str = "p", node: str = "sim-node-0", phase: str | None = "Pending", **spec: Any) -> dict[str, Any]:
    """A pod the scheduler has bound to `node`."""
    return fakes.pod(name, node=node, phase=phase, containers=[{"name": "app", "image": "busybox:1.36"}],
                     status={"qosClass": "BestEffort"},
                     conditions=[{"type": "PodScheduled", "status": "True",
                                  "lastTransitionTime": "2026-01-01T00:00:00Z"}], **spec)


# -- time and addresses ---------------------------------------------------------------------


def test_micro_time_has_six_fraction_digits_and_rfc3339_none():
    t = dt.datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=dt.UTC)
    assert model.micro_time(t) == "2026-01-02T03:04:05.000120Z"
    assert model.rfc3339(t) == "2026-01-02T03:04:05Z"
    assert model.parse_time("2026-01-02T03:04:05Z") == T0.replace(microsecond=0)
    assert model.parse_time("garbage") is None


def test_node_ips_and_fallback_ranges_are_distinct_and_disjoint():
    ips = {model.node_internal_ip(i) for i in range(2000)}
    assert len(ips) == 2000
    assert model.node_internal_ip(0) == "10.100.0.1"
    cidrs = [ipaddress.ip_network(model.fallback_pod_cidr(i)) for i in range(0, 2000, 97)]
    assert model.fallback_pod_cidr(1) == "10.128.1.0/24"
    for a in cidrs:
        assert not a.overlaps(model.NODE_IP_BLOCK)
        assert not a.overlaps(ipaddress.ip_network("10.244.0.0/16"))
    assert len({str(c) for c in cidrs}) == len(cidrs)
    with pytest.raises(ValueError):
        model.fallback_pod_cidr(1 << 20)


def test_pod_ip_pool_skips_reserved_addresses_and_reuses_released():
    pool = model.PodIpPool("10.244.3.0/29")  # hosts .1-.6; .1 is the bridge
    got = [pool.allocate(f"u{i}") for i in range(5)]
    assert got == ["10.244.3.2", "10.244.3.3", "10.244.3.4", "10.244.3.5", "10.244.3.6"]
    assert pool.allocate("u0") == "10.244.3.2"  # stable per uid
    assert pool.allocate("extra") is None
    pool.release("u2")
    assert pool.allocate("extra") == "10.244.3.4"


def test_pod_ip_pool_reserve_prevents_handing_out_a_known_address():
    pool = model.PodIpPool("10.244.3.0/24")
    pool.reserve("old", "10.244.3.2")
    pool.reserve("foreign", "192.168.0.9")  # not ours: ignored
    assert pool.allocate("new") == "10.244.3.3"
    assert pool.allocate("foreign") == "10.244.3.4"


# -- nodes and leases -----------------------------------------------------------------------


def test_build_node_reports_capacity_conditions_addresses_and_info():
    tmpl = model.NodeTemplate(cpu="8", memory="16Gi", pods=50, labels={"zone": "a"},
                              taints=[{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
    node = model.build_node("sim-node-7", 7, tmpl, NOW)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "sim-node-7"
    assert labels[model.SIMULATED_LABEL] == "true"
    assert labels["zone"] == "a"
    assert labels["node.kubernetes.io/instance-type"] == model.INSTANCE_TYPE
    assert node["spec"]["taints"] == [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
    st = node["status"]
    assert st["capacity"]["cpu"] == "8" and st["capacity"]["pods"] == "50"
    assert st["allocatable"] == st["capacity"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "Ready": "True", "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False"}
    assert all(c["lastHeartbeatTime"] == NOW for c in st["conditions"])
    assert st["addresses"][0] == {"type": "InternalIP", "address": model.node_internal_ip(7)}
    info = st["nodeInfo"]
    assert info["kubeletVersion"] == "v1.37.0-kyb-sim"
    assert info["containerRuntimeVersion"] == "sim://1.0"
    assert (info["architecture"], info["operatingSystem"]) == ("amd64", "linux")
    assert "taints" not in model.build_node("n", 0, model.NodeTemplate(), NOW)["spec"]


def test_node_conditions_keep_transition_time_unless_status_changes():
    first = model.node_conditions("2026-01-01T00:00:00Z")
    prev = copy.deepcopy(first)
    for c in prev:
        if c["type"] == "Ready":
            c["status"] = "Unknown"  # what the node lifecycle controller writes
    later = model.node_conditions(NOW, prev)
    by = {c["type"]: c for c in later}
    assert by["Ready"]["lastTransitionTime"] == NOW and by["Ready"]["status"] == "True"
    assert by["MemoryPressure"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert by["MemoryPressure"]["lastHeartbeatTime"] == NOW


def test_lease_is_owned_by_node_and_renewal_patch_updates_renew_time():
    lease = model.build_lease("n1", "uid-1", "2026-01-02T03:04:05.000001Z")
    assert lease["metadata"]["namespace"] == "kube-node-lease"
    assert lease["spec"] == {"holderIdentity": "n1", "leaseDurationSeconds": 40,
                             "renewTime": "2026-01-02T03:04:05.000001Z"}
    assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert "ownerReferences" not in model.build_lease("n1", "", NOW)["metadata"]
    assert model.lease_renewal("n1", "X")["spec"]["renewTime"] == "X"


def test_spread_offsets_and_next_periodic_tick():
    offs = model.spread_offsets(4, 10.0)
    assert offs == [0.0, 2.5, 5.0, 7.5]
    assert model.spread_offsets(0, 10.0) == []
    assert model.next_periodic(3.0, 5.0, 10.0) == 5.0
    assert model.next_periodic(5.0, 5.0, 10.0) == 15.0
    assert model.next_periodic(27.0, 5.0, 10.0) == 35.0


# -- pod transitions --------------------------------------------------------------------------


@pytest.mark.parametrize("phase,policy,deleting,complete,want", [
    ("Pending", "Always", False, True, model.START),
    (None, "Always", False, True, model.START),
    ("Running", "Always", False, True, None),
    ("Running", "Never", False, True, model.COMPLETE),
    ("Running", "OnFailure", False, True, model.COMPLETE),
    ("Running", "Never", False, False, None),
    ("Succeeded", "Never", False, True, None),
    ("Failed", "Never", False, True, None),
    ("Running", "Always", True, True, model.FINISH_DELETE),
    ("Succeeded", "Never", True, True, model.FINISH_DELETE),
])
def test_pod_action(phase, policy, deleting, complete, want):
    p = pod(phase=phase, restartPolicy=policy)
    if deleting:
        p["metadata"]["deletionTimestamp"] = NOW
    assert model.pod_action(p, complete_jobs=complete) == want


def test_action_delays_follow_configuration():
    rnd = random.Random(1)
    assert model.action_delay(model.START, pod(), T0, 1.0, 2.0, 0.5, 0.0, rnd) == 1.0
    assert model.action_delay(model.FINISH_DELETE, pod(), T0, 1.0, 2.0, 0.5, 0.0, rnd) == 0.5
    running = pod(phase="Running")
    running["status"]["startTime"] = "2026-01-02T03:04:04Z"  # started 1 s before T0
    assert model.action_delay(model.COMPLETE, running, T0, 1.0, 2.0, 0.5, 0.0, rnd) == pytest.approx(1.0)
    running["status"]["startTime"] = "2026-01-02T02:00:00Z"
    assert model.action_delay(model.COMPLETE, running, T0, 1.0, 2.0, 0.5, 0.0, rnd) == 0.0
    spread = [model.action_delay(model.START, pod(), T0, 1.0, 2.0, 0.5, 0.2, rnd) for _ in range(200)]
    assert 0.8 <= min(spread) < 0.9 and 1.1 < max(spread) <= 1.2
    assert model.jittered(0.0, 0.5, rnd) == 0.0


def test_running_status_has_kubelet_fields():
    p = pod(initContainers=[{"name": "init", "image": "alpine"},
                            {"name": "side", "image": "envoy", "restartPolicy": "Always"}])
    st = model.running_pod_status(p, "10.100.0.1", "10.244.0.5", NOW, ids())
    assert st["phase"] == "Running"
    conds = {c["type"]: c for c in st["conditions"]}
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in conds.values())
    assert conds["PodScheduled"]["lastTransitionTime"] == "2026-01-01T00:00:00Z"  # kept from the scheduler
    assert conds["Ready"]["lastTransitionTime"] == NOW
    assert (st["hostIP"], st["podIP"]) == ("10.100.0.1", "10.244.0.5")
    assert st["podIPs"] == [{"ip": "10.244.0.5"}] and st["hostIPs"] == [{"ip": "10.100.0.1"}]
    assert st["startTime"] == NOW and st["qosClass"] == "BestEffort"
    [cs] = st["containerStatuses"]
    assert cs["name"] == "app" and cs["image"] == "busybox:1.36" and cs["imageID"] == "sim://busybox:1.36"
    assert cs["containerID"].startswith("sim://") and len(cs["containerID"]) == 6 + 64
    assert (cs["ready"], cs["started"], cs["restartCount"]) == (True, True, 0)
    assert cs["state"] == {"running": {"startedAt": NOW}}
    init, side = st["initContainerStatuses"]
    assert init["state"]["terminated"]["reason"] == "Completed" and init["state"]["terminated"]["exitCode"] == 0
    assert init["started"] is False
    assert "running" in side["state"] and side["ready"] is True
    assert len({cs["containerID"], init["containerID"], side["containerID"]}) == 3


def test_running_status_without_init_containers_or_scheduled_condition():
    p = pod()
    p["status"] = {}
    st = model.running_pod_status(p, "h", "i", NOW, ids())
    assert "initContainerStatuses" not in st
    assert any(c["type"] == "PodScheduled" and c["status"] == "True" for c in st["conditions"])


def test_running_status_respects_readiness_gates():
    p = pod(readinessGates=[{"conditionType": "example.com/lb"}])
    st = model.running_pod_status(p, "h", "i", NOW, ids())
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady"
    p["status"]["conditions"].append({"type": "example.com/lb", "status": "True"})
    st = model.running_pod_status(p, "h", "i", NOW, ids())
    assert next(c for c in st["conditions"] if c["type"] == "Ready")["status"] == "True"


def test_running_status_keeps_container_ids_on_rewrite():
    p = pod()
    first = model.running_pod_status(p, "h", "i", "2026-01-01T00:00:00Z", ids())
    p["status"] = first
    again = model.running_pod_status(p, "h", "i", NOW, ids())
    assert again["containerStatuses"][0]["containerID"] == first["containerStatuses"][0]["containerID"]
    assert again["startTime"] == "2026-01-01T00:00:00Z"


def test_succeeded_status_terminates_containers():
    p = pod(restartPolicy="Never")
    p["status"] = model.running_pod_status(p, "h", "10.0.0.2", "2026-01-02T03:04:00Z", ids())
    st = model.succeeded_pod_status(p, NOW)
    assert st["phase"] == "Succeeded" and st["podIP"] == "10.0.0.2"
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Ready"]["status"] == "False" and conds["Ready"]["reason"] == "PodCompleted"
    assert conds["ContainersReady"]["reason"] == "PodCompleted"
    assert conds["Initialized"]["status"] == "True"
    [cs] = st["containerStatuses"]
    term = cs["state"]["terminated"]
    assert (term["exitCode"], term["reason"], term["finishedAt"]) == (0, "Completed", NOW)
    assert term["startedAt"] == "2026-01-02T03:04:00Z" and term["containerID"] == cs["containerID"]
    assert cs["ready"] is False


def test_parse_label_and_taint():
    assert model.parse_label("zone=a") == ("zone", "a")
    assert model.parse_label("empty=") == ("empty", "")
    with pytest.raises(ValueError):
        model.parse_label("novalue")
    assert model.parse_taint("k=v:NoSchedule") == {"key": "k", "value": "v", "effect": "NoSchedule"}
    assert model.parse_taint("example.com/k:NoExecute") == {"key": "example.com/k", "effect": "NoExecute"}
    for bad in ("k=v", "k=v:Sometimes", ":NoSchedule", "=v:NoSchedule"):
        with pytest.raises(ValueError):
            model.parse_taint(bad)


# -- timer heap -------------------------------------------------------------------------------


def test_timer_heap_orders_replaces_and_cancels():
    h = TimerHeap()
    h.schedule("a", 3.0, "x")
    h.schedule("b", 1.0, "y")
    h.schedule("c", 2.0, "z")
    h.schedule("a", 0.5, "x2")  # replaces the old deadline of a
    h.cancel("c")
    assert h.next_due() == 0.5 and len(h) == 2
    assert h.pop_due(1.0) == [("a", "x2"), ("b", "y")]
    assert h.pop_due(10.0) == [] and h.next_due() is None


def test_timer_heap_keep_earlier_only_for_same_payload():
    h = TimerHeap()
    h.schedule("p", 1.0, "start")
    assert h.schedule("p", 5.0, "start", keep_earlier=True) is False
    assert h.due_of("p") == 1.0
    assert h.schedule("p", 5.0, "delete", keep_earlier=True) is True
    assert (h.due_of("p"), h.payload_of("p")) == (5.0, "delete")
    assert h.schedule("p", 0.5, "delete", keep_earlier=True) is True
    assert h.due_of("p") == 0.5


def test_timer_heap_limit_and_compaction():
    h = TimerHeap()
    for round_ in range(10):
        for i in range(500):
            h.schedule(i, float(round_ * 1000 + i))
    assert len(h) == 500 and len(h._heap) <= 4 * 500 + 500
    first = h.pop_due(1e9, limit=3)
    assert [k for k, _ in first] == [0, 1, 2]
    assert len(h.pop_due(1e9)) == 497


# -- the async shell against the fake API -------------------------------------------------------


async def start_sim(api: FakeClient, count: int = 3, **kw: Any) -> tuple[SimulatedNodes, InformerFactory,
                                                                          asyncio.Task[None]]:
    """The simulator with real informers, listing and watching the fake API."""
    factory = InformerFactory(api)
    sim = SimulatedNodes(api, factory, count, start_delay=0.05, lease_interval=0.2, jitter=0.0,
                         delete_delay=0.01, seed=1, **kw)
    await factory.start()
    await factory.wait_synced(2)
    task = asyncio.get_running_loop().create_task(sim.run())
    await sim.wait_registered(3)
    return sim, factory, task


async def stop_sim(factory: InformerFactory, task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await factory.stop()


async def test_sim_registers_nodes_and_renews_leases():
    api = FakeClient()
    sim, factory, task = await start_sim(api, count=3, labels={"zone": "a"})
    try:
        assert sorted(n for (p, _, n) in api.objects if p == "nodes") == ["sim-node-0", "sim-node-1", "sim-node-2"]
        assert api.objects[("nodes", None, "sim-node-1")]["metadata"]["labels"]["zone"] == "a"
        await until(lambda: sum(1 for (p, _, _) in api.objects if p == "leases") == 3)
        lease = api.objects[("leases", "kube-node-lease", "sim-node-0")]
        assert lease["metadata"]["ownerReferences"][0]["uid"] == "uid-sim-node-0"
        first = lease["spec"]["renewTime"]
        # Leases get created once and then only patched, every lease_interval.
        await until(lambda: sim.stats["lease_renewals"] >= 9)
        assert api.objects[("leases", "kube-node-lease", "sim-node-0")]["spec"]["renewTime"] > first
        assert len(api.calls_of("create", "leases")) == 3
    finally:
        await stop_sim(factory, task)


async def test_sim_starts_completes_and_deletes_pods():
    api = FakeClient()
    sim, factory, task = await start_sim(api, count=2, job_duration=0.05)
    try:
        api.add(PODS, pod("web", "sim-node-1"), pod("job", "sim-node-0", restartPolicy="Never"),
                pod("elsewhere", "real-node"))
        await until(lambda: api.objects[("pods", "default", "web")]["status"].get("phase") == "Running")
        web = api.objects[("pods", "default", "web")]
        assert web["status"]["hostIP"] == model.node_internal_ip(1)
        assert web["status"]["podIP"] == "10.128.1.2"  # fallback range: no podCIDR on the node
        await until(lambda: api.objects[("pods", "default", "job")]["status"].get("phase") == "Succeeded")
        # Not a node of this simulator: untouched.
        assert api.objects[("pods", "default", "elsewhere")]["status"]["phase"] == "Pending"
        deleting = copy.deepcopy(api.objects[("pods", "default", "web")])
        deleting["metadata"]["deletionTimestamp"] = NOW
        api.add(PODS, deleting)
        await until(lambda: ("pods", "default", "web") not in api.objects)
        assert sim.stats["deleted"] == 1 and sim.stats["started"] == 2 and sim.stats["completed"] == 1
    finally:
        await stop_sim(factory, task)


async def test_sim_uses_pod_cidr_and_retries_after_conflict():
    api = FakeClient(lag=["pods"])  # the test says when the pod watch catches up
    sim, factory, task = await start_sim(api, count=1)
    try:
        node = copy.deepcopy(api.objects[("nodes", None, "sim-node-0")])
        node["spec"]["podCIDR"] = "10.244.7.0/24"
        api.add(NODES, node)
        await until(lambda: sim._nodes.get(None, "sim-node-0")["spec"].get("podCIDR"))
        p = pod("web", "sim-node-0")
        api.add(PODS, p)
        api.deliver(PODS)
        api.add(PODS, p)  # the server is ahead of the cache
        await asyncio.sleep(0.15)
        assert sim.stats["conflicts"] >= 1
        assert api.objects[("pods", "default", "web")]["status"].get("phase") == "Pending"
        api.deliver(PODS)
        await until(lambda: api.objects[("pods", "default", "web")]["status"].get("phase") == "Running")
        assert api.objects[("pods", "default", "web")]["status"]["podIP"] == "10.244.7.2"
    finally:
        await stop_sim(factory, task)


async def test_paused_node_stops_heartbeats_and_pod_progress_until_resumed():
    api = FakeClient()
    sim, factory, task = await start_sim(api, count=2)
    try:
        await until(lambda: sum(1 for (p, _, _) in api.objects if p == "leases") == 2)
        sim.pause_heartbeats("sim-node-0")
        assert sim.is_paused("sim-node-0")
        await asyncio.sleep(0.05)
        frozen = api.objects[("leases", "kube-node-lease", "sim-node-0")]["spec"]["renewTime"]
        api.add(PODS, pod("web", "sim-node-0"))
        await asyncio.sleep(0.5)
        assert api.objects[("leases", "kube-node-lease", "sim-node-0")]["spec"]["renewTime"] == frozen
        assert api.objects[("leases", "kube-node-lease", "sim-node-1")]["spec"]["renewTime"] > frozen
        assert api.objects[("pods", "default", "web")]["status"]["phase"] == "Pending"
        sim.resume_heartbeats("sim-node-0")
        await until(lambda: api.objects[("leases", "kube-node-lease", "sim-node-0")]["spec"]["renewTime"] > frozen)
        await until(lambda: api.objects[("pods", "default", "web")]["status"].get("phase") == "Running")
        with pytest.raises(KeyError):
            sim.pause_heartbeats("not-mine")
    finally:
        await stop_sim(factory, task)


async def test_sim_takes_over_existing_node_and_cleans_up():
    api = FakeClient()
    old = model.build_node("sim-node-0", 0, model.NodeTemplate(), "2025-01-01T00:00:00Z")
    old["metadata"]["uid"] = "old-uid"
    old["metadata"]["resourceVersion"] = "3"
    api.add(NODES, old)
    sim, factory, task = await start_sim(api, count=1)
    try:
        assert not api.calls_of("create", "nodes")
        ready = next(c for c in api.objects[("nodes", None, "sim-node-0")]["status"]["conditions"]
                     if c["type"] == "Ready")
        assert ready["lastHeartbeatTime"] > "2025-01-01T00:00:00Z"
        assert ready["lastTransitionTime"] == "2025-01-01T00:00:00Z"
        await until(lambda: ("leases", "kube-node-lease", "sim-node-0") in api.objects)
        assert api.objects[("leases", "kube-node-lease", "sim-node-0")]["metadata"]["ownerReferences"][0][
            "uid"] == "old-uid"
    finally:
        await stop_sim(factory, task)
    await sim.delete_nodes()
    assert not [k for k in api.objects if k[0] in ("nodes", "leases")]


async def test_pause_and_resume_by_node_annotation():
    api = FakeClient()
    sim, factory, task = await start_sim(api, count=2)

    async def update_node(node: dict[str, Any]) -> None:
        """A change to the node by someone else, once the simulator's informer has it."""
        rv = api.add(NODES, node)[0]["metadata"]["resourceVersion"]
        name = node["metadata"]["name"]
        await until(lambda: int(sim._nodes.get(None, name)["metadata"]["resourceVersion"]) >= int(rv))

    try:
        node = copy.deepcopy(api.objects[("nodes", None, "sim-node-1")])
        node["metadata"]["annotations"][model.PAUSE_ANNOTATION] = model.PAUSED
        await update_node(node)
        assert sim.is_paused("sim-node-1") and not sim.is_paused("sim-node-0")
        del node["metadata"]["annotations"][model.PAUSE_ANNOTATION]
        await update_node(node)
        assert not sim.is_paused("sim-node-1")
        # A pause from code is not undone by a node update without the annotation.
        sim.pause_heartbeats("sim-node-0")
        await update_node(copy.deepcopy(api.objects[("nodes", None, "sim-node-0")]))
        assert sim.is_paused("sim-node-0")
    finally:
        await stop_sim(factory, task)
