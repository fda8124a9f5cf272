"""A real `kyb server` and a real `kyb agent` for the benchmarks that measure one (agent,
volume), run by hand as root: started on fresh data dirs with the agent's own Node, pod CIDR,
bridge and proxy table, and torn down so the host is left as it was; the pod they run, the
watch that records when each object first reached a phase, and the latency line they print."""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import pct  # noqa: E402

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402


def sleeper_pod(name: str, node: str, labels: dict[str, str], claim: str = "") -> dict[str, Any]:
    """A busybox pod that sleeps until told to stop, on `node` only, mounting `claim` at
    /data when given."""
    spec: dict[str, Any] = {
        "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/hostname": node}, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "docker.io/library/busybox:1.35",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}
    if claim:
        spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": dict(labels)}, "spec": spec}


class PhaseTracker:
    """When a watch first saw each object reach a phase, by (kind, name). `watch` starts a
    watch in the background; `close` ends them all."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def watch(self, client: ApiClient, res: Any, kind: str, phase: str, label_selector: str = "") -> None:
        self._tasks.append(asyncio.create_task(self.follow(client, res, kind, phase, label_selector)))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def follow(self, client: ApiClient, res: Any, kind: str, phase: str, label_selector: str = "") -> None:
        async for type_, obj in client.watch(res, self.namespace, "", label_selector, "", 3600):
            if type_ in ("ADDED", "MODIFIED") and (obj.get("status") or {}).get("phase") == phase:
                key = (kind, obj["metadata"]["name"])
                if key not in self.seen:
                    self.seen[key] = time.monotonic()
                    self.changed.set()

    async def wait(self, keys: list[tuple[str, str]], timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not all(k in self.seen for k in keys):
            self.changed.clear()
            if time.monotonic() > deadline:
                missing = [k for k in keys if k not in self.seen]
                raise TimeoutError(f"{len(keys) - len(missing)}/{len(keys)} seen; not: {missing[:10]}")
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass


def report(label: str, values: list[float]) -> None:
    print(f"{label:<36} median {statistics.median(values):.3f} s, p99 {pct(values, 99):.3f} s, "
          f"min {min(values):.3f} s, max {max(values):.3f} s, mean {statistics.mean(values):.3f} s")


def with_agent(node: str, pod_cidr: str, bridge: str, proxy_table: str,
               run: Callable[[ServerProcess, AgentProcess], Awaitable[None]]) -> None:
    """Start a server and an agent registered as `node`, await `run(server, agent)`, and
    tear both down; the agent's log goes to stderr when anything fails."""
    why = agent_prerequisites()
    if why:
        sys.exit(f"cannot run: {why}")
    server = ServerProcess()
    server.start(timeout=60)
    agent = AgentProcess(server, node_name=node, bridge=bridge, proxy_table=proxy_table, pod_cidr=pod_cidr)
    try:
        agent.start()
        asyncio.run(run(server, agent))
    except Exception:
        print(json.dumps({"agent log": agent.log_tail(3000)}), file=sys.stderr)
        raise
    finally:
        agent.cleanup()
        server.cleanup()
