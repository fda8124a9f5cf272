"""Fairness under load: limits on requests in flight, priority levels, a fair queue per flow.

A small cousin of kube-apiserver's API Priority and Fairness (APF). Each request is
classified by its method and URL (`request_shape`) and its user (`priority_level`) as

* exempt: health probes (`/healthz`, `/livez`, `/readyz`), as upstream's `probes`
  FlowSchema sends them to the `exempt` level; and long-running requests (watches,
  exec/attach/port-forward/proxy, followed logs), which upstream also keeps out of the
  in-flight limits once started. These are never counted or queued.
* a priority level, in one of two pools like `--max-requests-inflight` (read-only) and
  `--max-mutating-requests-inflight` (everything else):
  - `node-high`: nodes and Leases (heartbeats, leader election) and any user in
    `system:nodes`, as upstream's `system-node-high` and `leader-election` schemas;
  - `workload-high`: the controller manager and the scheduler;
  - `global-default`: everyone else.
  Each level owns a share of its pool's seats (`LEVEL_SHARES`), so a greedy LIST flood in
  `global-default` cannot take the seats Lease renewals need.
* a flow inside its level: the user, the client program (the User-Agent's product: the
  components may share the admin identity, `--privileged-components`) and the kind of request (list, get,
  write), like APF's by-user flow distinguisher. Waiting requests are dispatched
  round-robin over flows, so one client's flood waits behind its own queue, not in front
  of everyone.

A LIST costs more than one seat: its width grows with the number of objects it may
return (`list_width`), as APF's work estimator does, up to `max_seats`.

Unlike upstream, `system:masters` is not exempt: the admin kubeconfig is in that group,
and with `--privileged-components` every built-in component too, so exempting it could
exempt everything.

A request that finds its flow's queue full, or waits longer than the queue wait, gets
429 TooManyRequests with `Retry-After`; client-go and kubectl retry those by themselves.

`PriorityLevel` is the pure core (seats, queues, round-robin); `FlowController` is the
asyncio shell that parks requests on futures and turns refusals into `ApiError`s.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import NamedTuple

from kybernetes.api.errors import ApiError

NODE_HIGH = "node-high"
WORKLOAD_HIGH = "workload-high"
GLOBAL_DEFAULT = "global-default"
LEVEL_SHARES = {NODE_HIGH: 30, WORKLOAD_HIGH: 30, GLOBAL_DEFAULT: 40}

_PROBES = frozenset(("healthz", "livez", "readyz"))
_READ_METHODS = frozenset(("GET", "HEAD", "OPTIONS"))
_STREAM_SUBRESOURCES = frozenset(("exec", "attach", "portforward", "proxy"))
_TRUE = ("true", "1", "True")
_CONTROL_PLANE_USERS = frozenset(("system:kube-controller-manager", "system:kube-scheduler"))
_CONTROL_PLANE_AGENTS = ("kyb-controller-manager", "kyb-scheduler")
NODES_GROUP = "system:nodes"


@dataclass(frozen=True)
class FlowControlConfig:
    """Server flags. A limit of 0 turns flow control off for that pool."""

    # A quarter of kube-apiserver's 400 read seats: this server answers on one event loop,
    # where a 20k-object LIST is 10 seats and ~1 s of CPU; 100 seats let three such LISTs run
    # at once in global-default, not fifteen (benchmarks/README.md). Writes mostly wait for
    # their commit, and concurrent ones share it, so they keep upstream's 200.
    max_requests_inflight: int = 100
    max_mutating_requests_inflight: int = 200
    queue_length: int = 50  # waiting requests per flow (upstream's queueLengthLimit)
    queue_wait: float = 15.0  # seconds a request may wait (upstream: request timeout / 4)
    max_seats: int = 10  # widest request, in seats (upstream's maximum seats)
    objects_per_seat: int = 100


class RequestShape(NamedTuple):
    """What flow control needs to know about a request, read from its method and URL."""

    verb: str  # "probe", "long", "list", "get" or "write"
    group: str = ""
    version: str = ""
    resource: str = ""


_GET = RequestShape("get")
_WRITE = RequestShape("write")
_PROBE = RequestShape("probe")


def request_shape(method: str, path: str, query: collections.abc.Mapping[str, str]) -> RequestShape:
    """Classify a request by method and URL alone (no registry: this runs before routing)."""
    write = method not in _READ_METHODS
    parts = path.split("/")
    n = len(parts)
    if n > 3 and parts[1] == "api":
        group, version, i = "", parts[2], 3
    elif n > 4 and parts[1] == "apis":
        group, version, i = parts[2], parts[3], 4
    elif n > 1 and parts[1] in _PROBES:
        return _PROBE
    else:
        return _WRITE if write else _GET
    if parts[-1] == "":
        n -= 1
    if i >= n:
        return _WRITE if write else _GET
    if parts[i] == "watch":
        return RequestShape("long", group, version)
    if n - i >= 3 and parts[i] == "namespaces" and not (n - i == 3 and parts[i + 2] in ("status", "finalize")):
        i += 2
    resource = parts[i]
    sub = parts[i + 2] if n - i > 2 else ""
    if sub in _STREAM_SUBRESOURCES:
        return RequestShape("long", group, version, resource)
    if write:
        return RequestShape("write", group, version, resource)
    if sub == "log" and query.get("follow") in _TRUE or query.get("watch") in _TRUE:
        return RequestShape("long", group, version, resource)
    return RequestShape("list" if n - i == 1 else "get", group, version, resource)


def priority_level(shape: RequestShape, username: str, groups: collections.abc.Sequence[str],
                   user_agent: str) -> str:
    """The priority level of a non-exempt request."""
    if shape.resource in ("leases", "nodes") and shape.group in ("coordination.k8s.io", ""):
        return NODE_HIGH
    if NODES_GROUP in groups or username.startswith("system:node:"):
        return NODE_HIGH
    if username in _CONTROL_PLANE_USERS or user_agent.startswith(_CONTROL_PLANE_AGENTS):
        return WORKLOAD_HIGH
    return GLOBAL_DEFAULT


def list_width(objects: int, limit: int, objects_per_seat: int, max_seats: int) -> int:
    """Seats a LIST occupies: one per `objects_per_seat` objects it may return."""
    if limit > 0:
        objects = min(objects, limit)
    return max(1, min(max_seats, -(-objects // objects_per_seat)))


def level_seats(total: int, shares: dict[str, int]) -> dict[str, int]:
    """Split a pool's seats among levels by share; every level gets at least one."""
    whole = sum(shares.values())
    return {name: max(1, total * share // whole) for name, share in shares.items()}


class Ticket:
    """One request's claim on a level: its flow, its width, and where it stands."""

    __slots__ = ("flow", "width", "level", "state", "fut")

    def __init__(self, level: PriorityLevel, flow: Hashable, width: int) -> None:
        self.level = level
        self.flow = flow
        self.width = width if width <= 1 else min(width, level.seats - level.reserve)
        self.state = "new"  # new -> queued -> started -> done, or queued -> gone
        self.fut: asyncio.Future[None] | None = None


class PriorityLevel:
    """Seats and per-flow FIFO queues of one priority level; no I/O, no clock.

    A request starts at once when nothing waits and its width fits; otherwise it joins its
    flow's queue. Freed seats go to queued requests round-robin over flows: each flow whose
    head fits starts that head and moves to the back of the line. A head that does not fit
    yet is skipped for that round (narrow requests of other flows may pass it) and keeps its
    place, so it starts as soon as enough seats are free on its turn.

    Wide requests (width > 1) never take the last `reserve` seats: on one event loop a GET
    is quick and a big LIST is not, so a flood of LISTs filling every seat would make each
    GET wait for a whole LIST to finish.
    """

    def __init__(self, name: str, seats: int, queue_length: int, reserve: int = 0) -> None:
        self.name = name
        self.seats = max(1, seats)
        self.reserve = max(0, min(reserve, self.seats - 1))
        self.queue_length = queue_length
        self.in_use = 0
        self.waiting = 0
        self.queues: dict[Hashable, collections.deque[Ticket]] = {}
        self.rejected = 0

    def fits(self, width: int) -> bool:
        return self.in_use + width <= (self.seats if width == 1 else self.seats - self.reserve)

    def try_start(self, ticket: Ticket) -> bool:
        if self.waiting == 0 and self.fits(ticket.width):
            self.in_use += ticket.width
            ticket.state = "started"
            return True
        return False

    def enqueue(self, ticket: Ticket) -> bool:
        """Queue a ticket behind its flow; False when that flow's queue is full."""
        q = self.queues.get(ticket.flow)
        if q is None:
            if self.queue_length <= 0:
                self.rejected += 1
                return False
            q = self.queues[ticket.flow] = collections.deque()
        elif len(q) >= self.queue_length:
            self.rejected += 1
            return False
        q.append(ticket)
        ticket.state = "queued"
        self.waiting += 1
        return True

    def cancel(self, ticket: Ticket) -> None:
        """Take a queued ticket out (it timed out or its client left)."""
        if ticket.state != "queued":
            return
        q = self.queues.get(ticket.flow)
        if q is not None:
            q.remove(ticket)
            if not q:
                del self.queues[ticket.flow]
        self.waiting -= 1
        ticket.state = "gone"

    def release(self, ticket: Ticket) -> list[Ticket]:
        """A started ticket is done; returns the tickets that start in its place."""
        if ticket.state != "started":
            return []
        ticket.state = "done"
        self.in_use -= ticket.width
        return self.dispatch()

    def dispatch(self) -> list[Ticket]:
        started: list[Ticket] = []
        progressed = True
        while self.waiting and progressed and self.in_use < self.seats:
            progressed = False
            for flow in list(self.queues):
                q = self.queues[flow]
                head = q[0]
                if not self.fits(head.width):
                    continue
                q.popleft()
                self.waiting -= 1
                self.in_use += head.width
                head.state = "started"
                started.append(head)
                del self.queues[flow]
                if q:
                    self.queues[flow] = q  # to the back of the round
                progressed = True
                if self.in_use >= self.seats:
                    break
        return started


def too_many_requests(retry_after: int = 1) -> ApiError:
    return ApiError(429, "TooManyRequests", "Too many requests, please try again later.",
                    {"retryAfterSeconds": retry_after}, {"Retry-After": str(retry_after)})


class FlowController:
    """The asyncio shell: admits, parks and wakes requests on their priority levels."""

    def __init__(self, config: FlowControlConfig | None = None,
                 count_objects: Callable[[str, str, str], int] | None = None) -> None:
        self.config = config or FlowControlConfig()
        self.count_objects = count_objects
        self.pools: dict[bool, dict[str, PriorityLevel]] = {}
        for mutating, total in ((False, self.config.max_requests_inflight),
                                (True, self.config.max_mutating_requests_inflight)):
            if total > 0:
                self.pools[mutating] = {
                    name: PriorityLevel(name, seats, self.config.queue_length, min(self.config.max_seats, seats // 4))
                    for name, seats in level_seats(total, LEVEL_SHARES).items()}

    def ticket(self, method: str, path: str, query: collections.abc.Mapping[str, str], username: str,
               groups: collections.abc.Sequence[str], user_agent: str) -> Ticket | None:
        """The request's claim, or None when it is exempt (or its pool is unlimited)."""
        shape = request_shape(method, path, query)
        if shape.verb in ("probe", "long"):
            return None
        levels = self.pools.get(shape.verb == "write")
        if levels is None:
            return None
        level = levels[priority_level(shape, username, groups, user_agent)]
        width = 1
        if shape.verb == "list" and self.count_objects is not None:
            limit = query.get("limit", "")
            width = list_width(self.count_objects(shape.group, shape.version, shape.resource),
                               int(limit) if limit.isdigit() else 0,
                               self.config.objects_per_seat, self.config.max_seats)
        return Ticket(level, (username, user_agent.split("/", 1)[0], shape.verb), width)

    def try_start(self, ticket: Ticket) -> bool:
        return ticket.level.try_start(ticket)

    async def wait(self, ticket: Ticket) -> None:
        """Wait for seats; raises 429 when the flow's queue is full or the wait is too long."""
        level = ticket.level
        fut = ticket.fut = asyncio.get_running_loop().create_future()
        if not level.enqueue(ticket):
            raise too_many_requests()
        # Seats may be free for this one although others wait (their heads are wider).
        self._wake(level.dispatch())
        try:
            async with asyncio.timeout(self.config.queue_wait):
                await fut
        except TimeoutError:
            if ticket.state == "started":
                self.finish(ticket)
            else:
                level.cancel(ticket)
                level.rejected += 1
            raise too_many_requests() from None
        except asyncio.CancelledError:
            if ticket.state == "started":
                self.finish(ticket)
            else:
                level.cancel(ticket)
            raise

    def finish(self, ticket: Ticket) -> None:
        self._wake(ticket.level.release(ticket))

    def _wake(self, started: list[Ticket]) -> None:
        while started:
            more: list[Ticket] = []
            for t in started:
                fut = t.fut
                if fut is not None and not fut.done():
                    fut.set_result(None)
                else:
                    # Its waiter is already gone (cancelled in the same loop turn): give the
                    # seats back to the next in line.
                    more.extend(t.level.release(t))
            started = more

    def dump(self) -> str:
        """The state of every level, one line each, like kube-apiserver's
        `/debug/api_priority_and_fairness/dump_priority_levels`."""
        lines = ["PriorityLevelName, Pool, Seats, SeatsInUse, ActiveQueues, WaitingRequests, RejectedRequests"]
        for mutating, levels in self.pools.items():
            for name, lv in levels.items():
                lines.append(f"{name}, {'mutating' if mutating else 'readonly'}, {lv.seats}, {lv.in_use}, "
                             f"{len(lv.queues)}, {lv.waiting}, {lv.rejected}")
        return "\n".join(lines) + "\n"
