"""The agent syncs every pod again on the pod's own clock (not all pods at once), and reads
a pod's runtime state with its calls to the runtime sent together."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from kybernetes.agent import podsync, runtime
from kybernetes.agent.agent import RESYNC_INTERVAL, RESYNC_JITTER, Agent, resync_delay
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import CriError
from kybernetes.client import WorkQueue


def test_resync_comes_within_the_interval_and_spread_over_its_last_quarter() -> None:
    delays = [resync_delay(r / 100) for r in range(100)]
    assert max(delays) == RESYNC_INTERVAL
    assert min(delays) > RESYNC_INTERVAL * (1 - RESYNC_JITTER)
    # Pods synced together come back apart.
    assert len(set(delays)) == 100


class _Pods:
    def __init__(self, *keys: str) -> None:
        self.keys = set(keys)

    def get(self, namespace: str | None, name: str) -> dict[str, Any] | None:
        return {"metadata": {"name": name}} if f"{namespace or ''}/{name}" in self.keys else None


def _agent(pods: _Pods, sync_error: Exception | None = None) -> Agent:
    agent = Agent.__new__(Agent)
    agent.queue = WorkQueue("test")
    agent.pods = pods  # type: ignore[assignment]
    synced: list[str] = []
    agent.synced = synced  # type: ignore[attr-defined]

    async def fake_sync(key: str) -> None:
        synced.append(key)
        if sync_error is not None:
            raise sync_error

    agent._sync = fake_sync  # type: ignore[method-assign]
    return agent


async def test_a_synced_pod_is_synced_again_later_on_its_own() -> None:
    agent = _agent(_Pods("ns/web"))
    await agent.sync("ns/web")
    assert agent.synced == ["ns/web"]  # type: ignore[attr-defined]
    # Not at once (nothing waits in the queue) but due later.
    assert len(agent.queue) == 0
    assert agent.queue.pending("ns/web")
    agent.queue.shutdown()


async def test_a_sync_that_failed_still_leaves_the_pod_due_again() -> None:
    agent = _agent(_Pods("ns/web"), RuntimeError("runtime down"))
    with pytest.raises(RuntimeError):
        await agent.sync("ns/web")
    assert agent.queue.pending("ns/web")
    agent.queue.shutdown()


async def test_a_pod_gone_from_the_node_is_not_synced_again() -> None:
    agent = _agent(_Pods())
    await agent.sync("ns/gone")
    await agent.sync("uid:1234")  # a runtime leftover with no pod
    assert not agent.queue.pending("ns/gone")
    assert not agent.queue.pending("uid:1234")
    agent.queue.shutdown()


class _Runtime:
    """Answers the four calls `_runtime_state` makes; counts how many are in flight at once."""

    def __init__(self, containers: dict[str, str], gone: set[str]) -> None:
        self.containers = containers  # id -> name
        self.gone = gone
        self.in_flight = 0
        self.most_in_flight = 0

    async def _call(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1

    async def list_pod_sandboxes(self, **_: Any) -> list[pb.PodSandbox]:
        await self._call()
        return [pb.PodSandbox(id="sb1", metadata=pb.PodSandboxMetadata(attempt=0), state=pb.SANDBOX_READY)]

    async def pod_sandbox_status(self, sid: str) -> pb.PodSandboxStatusResponse:
        await self._call()
        return pb.PodSandboxStatusResponse(status=pb.PodSandboxStatus(
            id=sid, state=pb.SANDBOX_READY, network=pb.PodSandboxNetworkStatus(ip="10.42.0.7")))

    async def list_containers(self, **_: Any) -> list[pb.Container]:
        await self._call()
        return [pb.Container(id=cid) for cid in self.containers]

    async def container_status(self, cid: str) -> pb.ContainerStatusResponse:
        await self._call()
        if cid in self.gone:
            raise CriError("ContainerStatus", grpc.StatusCode.NOT_FOUND, "gone")
        return pb.ContainerStatusResponse(status=pb.ContainerStatus(
            id=cid, state=pb.CONTAINER_RUNNING, labels={runtime.CONTAINER_NAME: self.containers[cid]}))


async def test_runtime_state_reads_containers_together_in_order_without_the_gone_ones() -> None:
    agent = Agent.__new__(Agent)
    agent.cri = _Runtime({"c1": "sidecar", "c2": "gone", "c3": "main"}, {"c2"})  # type: ignore[assignment]
    sandbox, containers, stale = await agent._runtime_state("uid-1")
    assert sandbox is not None and sandbox.ready and sandbox.ip == "10.42.0.7"
    assert [(c.id, c.name, c.state) for c in containers] == [("c1", "sidecar", podsync.RUNNING),
                                                              ("c3", "main", podsync.RUNNING)]
    assert stale == []
    assert agent.cri.most_in_flight >= 2  # type: ignore[attr-defined]


async def test_runtime_state_of_a_pod_without_sandbox() -> None:
    class Empty(_Runtime):
        async def list_pod_sandboxes(self, **_: Any) -> list[pb.PodSandbox]:
            return []

    agent = Agent.__new__(Agent)
    agent.cri = Empty({}, set())  # type: ignore[assignment]
    assert await agent._runtime_state("uid-1") == (None, [], [])
