"""Flow control's pure decisions: classification, widths, seats and the fair queue."""

from __future__ import annotations

import asyncio

import pytest

from kybernetes.api.errors import ApiError
from kybernetes.apiserver.flowcontrol import (
    GLOBAL_DEFAULT,
    NODE_HIGH,
    WORKLOAD_HIGH,
    FlowControlConfig,
    FlowController,
    PriorityLevel,
    Ticket,
    level_seats,
    list_width,
    priority_level,
    request_shape,
)


@pytest.mark.parametrize("method,path,query,verb", [
    ("GET", "/readyz", {}, "probe"),
    ("GET", "/livez/ping", {}, "probe"),
    ("GET", "/healthz", {}, "probe"),
    ("GET", "/readyzz", {}, "get"),
    ("GET", "/api/v1/configmaps", {}, "list"),
    ("GET", "/api/v1/namespaces/default/configmaps", {}, "list"),
    ("GET", "/api/v1/namespaces/default/configmaps/", {}, "list"),
    ("GET", "/api/v1/namespaces/default/configmaps/x", {}, "get"),
    ("GET", "/api/v1/namespaces/default", {}, "get"),
    ("GET", "/api/v1/namespaces", {}, "list"),
    ("PUT", "/api/v1/namespaces/default/finalize", {}, "write"),
    ("GET", "/api/v1/namespaces/default/configmaps", {"watch": "true"}, "long"),
    ("GET", "/api/v1/watch/namespaces/default/configmaps", {}, "long"),
    ("GET", "/api/v1/namespaces/default/pods/p/log", {"follow": "true"}, "long"),
    ("GET", "/api/v1/namespaces/default/pods/p/log", {}, "get"),
    ("POST", "/api/v1/namespaces/default/pods/p/exec", {}, "long"),
    ("GET", "/api/v1/namespaces/default/pods/p/portforward", {}, "long"),
    ("POST", "/api/v1/namespaces/default/configmaps", {}, "write"),
    ("PATCH", "/apis/apps/v1/namespaces/d/deployments/web/scale", {}, "write"),
    ("GET", "/apis/apps/v1/deployments", {}, "list"),
    ("GET", "/apis", {}, "get"),
    ("GET", "/openapi/v3", {}, "get"),
])
def test_request_shape(method, path, query, verb):
    assert request_shape(method, path, query).verb == verb


def test_request_shape_names_the_resource():
    shape = request_shape("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {})
    assert (shape.group, shape.version, shape.resource) == ("coordination.k8s.io", "v1", "leases")


def test_priority_levels():
    lease = request_shape("PUT", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", {})
    cms = request_shape("GET", "/api/v1/configmaps", {})
    assert priority_level(lease, "kybernetes-admin", ["system:masters"], "kubectl/v1.37") == NODE_HIGH
    assert priority_level(cms, "system:node:n1", ["system:nodes"], "kubelet") == NODE_HIGH
    assert priority_level(cms, "admin", ["system:masters"], "kyb-controller-manager") == WORKLOAD_HIGH
    assert priority_level(cms, "system:kube-scheduler", [], "x") == WORKLOAD_HIGH
    assert priority_level(cms, "kybernetes-admin", ["system:masters"], "kubectl/v1.37") == GLOBAL_DEFAULT


def test_list_width_grows_with_objects_and_is_capped():
    assert list_width(0, 0, 100, 10) == 1
    assert list_width(150, 0, 100, 10) == 2
    assert list_width(20_000, 0, 100, 10) == 10
    assert list_width(20_000, 250, 100, 10) == 3


def test_level_seats_split_by_share_with_a_floor():
    assert level_seats(100, {"a": 30, "b": 70}) == {"a": 30, "b": 70}
    assert level_seats(2, {"a": 1, "b": 100}) == {"a": 1, "b": 1}


def _t(level, flow, width=1):
    return Ticket(level, flow, width)


def test_starts_at_once_while_seats_are_free():
    lv = PriorityLevel("l", 2, 5)
    a, b, c = _t(lv, "u"), _t(lv, "u"), _t(lv, "u")
    assert lv.try_start(a) and lv.try_start(b)
    assert not lv.try_start(c)
    assert lv.in_use == 2


def test_queue_per_flow_is_bounded():
    lv = PriorityLevel("l", 1, 2)
    assert lv.try_start(_t(lv, "busy"))
    assert lv.enqueue(_t(lv, "greedy")) and lv.enqueue(_t(lv, "greedy"))
    assert not lv.enqueue(_t(lv, "greedy"))
    # Another flow still has room of its own.
    assert lv.enqueue(_t(lv, "polite"))
    assert lv.rejected == 1


def test_freed_seats_go_round_robin_over_flows():
    lv = PriorityLevel("l", 1, 10)
    first = _t(lv, "greedy")
    assert lv.try_start(first)
    greedy = [_t(lv, "greedy") for _ in range(3)]
    for t in greedy:
        assert lv.enqueue(t)
    polite = _t(lv, "polite")
    assert lv.enqueue(polite)
    order = []
    current = first
    while True:
        started = lv.release(current)
        if not started:
            break
        assert len(started) == 1
        current = started[0]
        order.append(current.flow)
    # The polite flow arrived last but starts second, not behind the whole flood.
    assert order == ["greedy", "polite", "greedy", "greedy"]
    assert lv.in_use == 0 and lv.waiting == 0


def test_nothing_jumps_ahead_of_waiting_requests():
    lv = PriorityLevel("l", 2, 10)
    wide = _t(lv, "a", 2)
    assert lv.try_start(_t(lv, "x"))
    assert not lv.try_start(wide)
    assert lv.enqueue(wide)
    # A seat is free but someone waits: a newcomer queues too.
    assert not lv.try_start(_t(lv, "b"))


def test_a_wide_head_waits_for_enough_seats_while_narrow_ones_pass():
    lv = PriorityLevel("l", 4, 10)
    running = [_t(lv, "x") for _ in range(3)]
    for t in running:
        assert lv.try_start(t)
    wide = _t(lv, "lists", 3)
    narrow = _t(lv, "gets", 1)
    assert lv.enqueue(wide) and lv.enqueue(narrow)
    assert lv.release(running[0]) == [narrow]
    started = lv.release(running[1])
    assert started == [] and lv.in_use == 2
    started = lv.release(running[2])
    assert started == [wide]
    assert lv.in_use == 4


def test_width_is_capped_at_the_level_size():
    lv = PriorityLevel("l", 3, 10)
    t = _t(lv, "a", 10)
    assert t.width == 3 and lv.try_start(t)


def test_cancelled_ticket_leaves_its_queue():
    lv = PriorityLevel("l", 1, 10)
    busy = _t(lv, "x")
    assert lv.try_start(busy)
    gone = _t(lv, "a")
    assert lv.enqueue(gone)
    lv.cancel(gone)
    assert lv.waiting == 0 and not lv.queues
    assert lv.release(busy) == []


def _controller(**kw):
    cfg = FlowControlConfig(max_requests_inflight=kw.pop("reads", 10), max_mutating_requests_inflight=10,
                            queue_length=kw.pop("queue_length", 5), queue_wait=kw.pop("wait", 5.0))
    return FlowController(cfg, lambda g, v, r: kw.get("objects", 0))


def test_controller_exempts_probes_and_long_running():
    fc = _controller()
    assert fc.ticket("GET", "/readyz", {}, "system:anonymous", [], "") is None
    assert fc.ticket("GET", "/api/v1/pods", {"watch": "1"}, "admin", [], "") is None
    assert fc.ticket("GET", "/api/v1/pods", {}, "admin", [], "") is not None


def test_controller_without_limits_admits_everything():
    fc = FlowController(FlowControlConfig(max_requests_inflight=0, max_mutating_requests_inflight=0))
    assert fc.ticket("GET", "/api/v1/pods", {}, "admin", [], "") is None


async def test_waiting_request_starts_when_a_seat_frees():
    fc = _controller(reads=1)
    level = fc.pools[False][GLOBAL_DEFAULT]
    level.seats = 1
    a = fc.ticket("GET", "/api/v1/pods/x", {}, "u", [], "")
    b = fc.ticket("GET", "/api/v1/pods/y", {}, "u", [], "")
    assert fc.try_start(a) and not fc.try_start(b)
    waiter = asyncio.create_task(fc.wait(b))
    await asyncio.sleep(0)
    assert not waiter.done()
    fc.finish(a)
    await waiter
    assert b.state == "started"
    fc.finish(b)
    assert level.in_use == 0


async def test_full_queue_and_long_wait_get_429_with_retry_after():
    fc = _controller(queue_length=1, wait=0.05)
    level = fc.pools[False][GLOBAL_DEFAULT]
    level.seats = 1
    busy = fc.ticket("GET", "/api/v1/pods/x", {}, "u", [], "")
    assert fc.try_start(busy)
    queued = fc.ticket("GET", "/api/v1/pods/y", {}, "u", [], "")
    waiter = asyncio.create_task(fc.wait(queued))
    await asyncio.sleep(0)
    with pytest.raises(ApiError) as full:
        await fc.wait(fc.ticket("GET", "/api/v1/pods/z", {}, "u", [], ""))
    assert full.value.code == 429 and full.value.reason == "TooManyRequests"
    assert full.value.headers["Retry-After"] == "1"
    with pytest.raises(ApiError) as slow:
        await waiter
    assert slow.value.code == 429
    assert level.waiting == 0
    fc.finish(busy)
    assert level.in_use == 0


async def test_client_that_leaves_while_waiting_frees_its_place():
    fc = _controller()
    level = fc.pools[False][GLOBAL_DEFAULT]
    level.seats = 1
    busy = fc.ticket("GET", "/api/v1/pods/x", {}, "u", [], "")
    assert fc.try_start(busy)
    t = fc.ticket("GET", "/api/v1/pods/y", {}, "u", [], "")
    waiter = asyncio.create_task(fc.wait(t))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert level.waiting == 0
    fc.finish(busy)
    assert level.in_use == 0


def test_list_ticket_width_uses_object_count():
    fc = _controller(objects=5000, reads=100)
    t = fc.ticket("GET", "/api/v1/configmaps", {}, "u", [], "")
    assert t.width == 10
    t = fc.ticket("GET", "/api/v1/configmaps", {"limit": "500"}, "u", [], "")
    assert t.width == 5


def test_wide_requests_leave_a_reserve_for_narrow_ones():
    lv = PriorityLevel("l", 12, 10, reserve=2)
    wide = [_t(lv, "lists", 5) for _ in range(3)]
    assert lv.try_start(wide[0]) and lv.try_start(wide[1])
    # 10 of 12 seats taken: another wide one would eat the reserve.
    assert not lv.try_start(wide[2])
    assert lv.enqueue(wide[2])
    get = _t(lv, "gets", 1)
    assert lv.enqueue(get)
    assert lv.dispatch() == [get]


def test_wide_width_is_capped_below_the_reserve():
    lv = PriorityLevel("l", 12, 10, reserve=2)
    assert _t(lv, "a", 50).width == 10
    assert _t(lv, "a", 1).width == 1


async def test_newcomer_that_fits_starts_although_a_wide_one_waits():
    fc = _controller(reads=100)
    level = fc.pools[False][GLOBAL_DEFAULT]
    lists = [Ticket(level, ("u", "", "list"), 10) for _ in range(4)]
    assert fc.try_start(lists[0]) and fc.try_start(lists[1]) and fc.try_start(lists[2])
    blocked = asyncio.create_task(fc.wait(lists[3]))
    await asyncio.sleep(0)
    get = fc.ticket("GET", "/api/v1/pods/x", {}, "u", [], "")
    assert not fc.try_start(get)  # someone waits: no jumping the queue...
    await asyncio.wait_for(fc.wait(get), 1)  # ...but it starts at once on its turn
    assert get.state == "started" and not blocked.done()
    fc.finish(get)
    fc.finish(lists[0])
    await blocked
    for t in (lists[1], lists[2], lists[3]):
        fc.finish(t)
    assert level.in_use == 0


def test_dump_lists_every_level():
    fc = _controller(reads=100)
    t = fc.ticket("GET", "/api/v1/pods/x", {}, "u", [], "")
    assert fc.try_start(t)
    lines = fc.dump().splitlines()
    assert lines[0].startswith("PriorityLevelName, Pool, Seats, SeatsInUse")
    assert "global-default, readonly, 40, 1, 0, 0, 0" in lines
    assert len(lines) == 1 + 2 * 3
