"""DaemonSet benchmark (issue 12): run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/daemonset_bench.py [--nodes 1000] [--max-unavailable 10%] [--start-delay 1.0]

Starts a real `kyb server` (API server, controllers and scheduler) on a fresh data dir
and a simulated-node process with `--nodes` nodes, waits until they are Ready, then:

1. creates one DaemonSet and measures, from a watch on its pods, the seconds until a
   pod is Running on every node (and the moments the first pod was created, the last
   bound, and the DaemonSet's status reported every pod available);
2. changes its image and measures the rolling update (RollingUpdate at
   `--max-unavailable`) until every node runs a Running pod of the new template and no
   old pod is left, with the most nodes seen without a ready pod at any moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from simcluster import ensure_namespace, follow, sim_cluster, wait_changed, wait_nodes_ready  # noqa: E402

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import DAEMONSETS, PODS  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NAMESPACE = "bench"
NAME = "node-agent"


def daemonset(max_unavailable: str) -> dict[str, Any]:
    labels = {"app": NAME}
    unavailable: int | str = int(max_unavailable) if max_unavailable.isdigit() else max_unavailable
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": NAME},
            "spec": {"selector": {"matchLabels": labels},
                     "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": unavailable}},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                         "name": "agent", "image": "registry.k8s.io/pause:3.10",
                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


@dataclass
class Pods:
    """The DaemonSet's pods as the watch shows them, with when things first happened."""

    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_created: float | None = None
    last_created: float | None = None
    last_bound: float | None = None
    worst_unready: int = 0
    node_names: set[str] = field(default_factory=set)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, type_: str, obj: dict[str, Any], now: float) -> None:
        name = obj["metadata"]["name"]
        if type_ == "DELETED":
            self.live.pop(name, None)
        else:
            if self.first_created is None:
                self.first_created = now
            if name not in self.live:
                self.last_created = now
            if obj.get("spec", {}).get("nodeName") and not (self.live.get(name) or {}).get("spec", {}).get("nodeName"):
                self.last_bound = now
            self.live[name] = obj
        self.worst_unready = max(self.worst_unready, len(self.node_names) - len(self.ready_nodes()))
        self.changed.set()

    def ready_nodes(self, image: str | None = None) -> set[str]:
        out = set()
        for p in self.live.values():
            if p["metadata"].get("deletionTimestamp") or (p.get("status") or {}).get("phase") != "Running":
                continue
            if image is not None and p["spec"]["containers"][0]["image"] != image:
                continue
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (p.get("status") or {}).get("conditions") or ()):
                out.add(p["spec"].get("nodeName"))
        return out

    def old_left(self, image: str) -> int:
        return sum(1 for p in self.live.values() if p["spec"]["containers"][0]["image"] != image)


async def wait_status(client: ApiClient, predicate: Any, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        ds = await client.get(DAEMONSETS, NAMESPACE, NAME)
        if predicate(ds.get("status") or {}, ds):
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"status never got there: {ds.get('status')}")
        await asyncio.sleep(0.1)


async def run(args: argparse.Namespace, server: ServerProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="daemonset-bench", max_connections=32)
    try:
        t = time.monotonic()
        nodes = await wait_nodes_ready(client, args.nodes, timeout=300)
        print(f"{len(nodes)} simulated nodes Ready in {time.monotonic() - t:.1f}s")
        await ensure_namespace(client, NAMESPACE)
        pods = Pods(node_names=set(nodes))
        watcher = asyncio.create_task(follow(client, PODS, NAMESPACE, pods.see))
        await asyncio.sleep(1.0)

        t0 = time.monotonic()
        await client.create(DAEMONSETS, NAMESPACE, daemonset(args.max_unavailable))
        t_all = await wait_changed(pods.changed, lambda: len(pods.ready_nodes()) >= len(nodes), args.timeout,
                                   "a Running pod on every node")
        t_status = await wait_status(client, lambda s, _: s.get("numberAvailable") == len(nodes), args.timeout)
        first = (pods.first_created or t0) - t0
        last = (pods.last_created or t0) - t0
        bound = (pods.last_bound or t_all) - t0
        print(f"create: a Running pod on all {len(nodes)} nodes in {t_all - t0:.2f}s "
              f"(pods created from {first:.2f}s to {last:.2f}s, last bound at {bound:.2f}s, "
              f"status numberAvailable={len(nodes)} at {t_status - t0:.2f}s); {len(pods.live)} pods")

        pods.worst_unready = 0
        image = "registry.k8s.io/pause:3.9"
        t1 = time.monotonic()
        await client.patch(DAEMONSETS, NAMESPACE, NAME, {"spec": {"template": {"spec": {"containers": [
            {"name": "agent", "image": image}]}}}}, "strategic")
        t_rolled = await wait_changed(pods.changed, lambda: len(pods.ready_nodes(image)) >= len(nodes) and not
                                      pods.old_left(image), args.timeout, "every node on the new template")
        t_status = await wait_status(
            client, lambda s, ds: s.get("updatedNumberScheduled") == len(nodes) and s.get("numberAvailable") ==
            len(nodes) and s.get("observedGeneration") == ds["metadata"].get("generation"), args.timeout)
        print(f"rolling update (maxUnavailable {args.max_unavailable}): every node on the new template in "
              f"{t_rolled - t1:.2f}s (status caught up at {t_status - t1:.2f}s); at most "
              f"{pods.worst_unready} nodes without a ready pod at once")
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--max-unavailable", default="10%", help="the rolling update's maxUnavailable")
    ap.add_argument("--start-delay", type=float, default=1.0, help="simulated container start delay (s)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (server and simulator logs)")
    args = ap.parse_args()

    with sim_cluster(args.nodes, args.start_delay, ["--delete-delay", "0.5", "--stats-interval", "10"],
                     args.keep) as (server, _):
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
