"""The agent syncs every pod again on the pod's own clock, not all pods at once."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.agent.agent import RESYNC_INTERVAL, RESYNC_JITTER, Agent, resync_delay
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
