"""StatefulSet benchmark (issue 13): run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/statefulset_bench.py [--replicas 100] [--nodes 10] [--start-delay 1.0]

Starts a real `kyb server` (API server, controllers and scheduler) on a fresh data dir and
a simulated-node process with `--nodes` nodes, waits until they are Ready, then creates
two StatefulSets with Parallel pod management, one after the other, and measures from a
watch on its pods the seconds until every replica is Running and Ready (and when the
status said so):

1. without volumes;
2. with a volumeClaimTemplate: each pod's claim is created by the StatefulSet controller,
   provisioned by the simulated node's local-path provisioner once the scheduler picks
   the node, and bound; also reported: when every claim was Bound.
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
from kybernetes.client.resources import PERSISTENTVOLUMECLAIMS, PODS, STATEFULSETS  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NAMESPACE = "bench"


def statefulset(name: str, replicas: int, claims: bool) -> dict[str, Any]:
    labels = {"app": name}
    container: dict[str, Any] = {"name": "c", "image": "registry.k8s.io/pause:3.10",
                                 "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}
    spec: dict[str, Any] = {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                            "selector": {"matchLabels": labels},
                            "template": {"metadata": {"labels": labels}, "spec": {"containers": [container]}}}
    if claims:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name}, "spec": spec}


def _ready(obj: dict[str, Any]) -> bool:
    status = obj.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ())


@dataclass
class Watched:
    """Pods (or claims) of one app as the watch shows them, with when the first appeared."""

    app: str
    live: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seen: float | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, type_: str, obj: dict[str, Any], now: float) -> None:
        if (obj["metadata"].get("labels") or {}).get("app") != self.app:
            return
        name = obj["metadata"]["name"]
        if type_ == "DELETED":
            self.live.pop(name, None)
        else:
            if self.first_seen is None:
                self.first_seen = now
            self.live[name] = obj
        self.changed.set()

    def ready(self) -> int:
        return sum(1 for p in self.live.values() if _ready(p))

    def bound(self) -> int:
        return sum(1 for c in self.live.values() if (c.get("status") or {}).get("phase") == "Bound")


async def wait_status(client: ApiClient, name: str, replicas: int, timeout: float) -> float:
    deadline = time.monotonic() + timeout
    while True:
        sts = await client.get(STATEFULSETS, NAMESPACE, name)
        if (sts.get("status") or {}).get("readyReplicas") == replicas:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"status never got there: {sts.get('status')}")
        await asyncio.sleep(0.1)


async def one(client: ApiClient, name: str, replicas: int, claims: bool, timeout: float) -> dict[str, float]:
    pods, pvcs = Watched(name), Watched(name)
    watchers = [asyncio.create_task(follow(client, PODS, NAMESPACE, pods.see)),
                asyncio.create_task(follow(client, PERSISTENTVOLUMECLAIMS, NAMESPACE, pvcs.see))]
    await asyncio.sleep(1.0)
    try:
        t0 = time.monotonic()
        await client.create(STATEFULSETS, NAMESPACE, statefulset(name, replicas, claims))
        t_ready = await wait_changed(pods.changed, lambda: pods.ready() >= replicas, timeout, f"{replicas} ready pods")
        t_status = await wait_status(client, name, replicas, timeout)
        out = {"ready": t_ready - t0, "status": t_status - t0, "first_pod": (pods.first_seen or t0) - t0}
        if claims:
            t_bound = await wait_changed(pvcs.changed, lambda: pvcs.bound() >= replicas, timeout, f"{replicas} bound claims")
            out["bound"] = t_bound - t0
        return out
    finally:
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)


async def run(args: argparse.Namespace, server: ServerProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="statefulset-bench", max_connections=32)
    try:
        t = time.monotonic()
        nodes = await wait_nodes_ready(client, args.nodes, timeout=300)
        print(f"{len(nodes)} simulated nodes Ready in {time.monotonic() - t:.1f}s")
        await ensure_namespace(client, NAMESPACE)
        for name, claims in (("plain", False), ("vol", True)):
            r = await one(client, name, args.replicas, claims, args.timeout)
            what = "with a volumeClaimTemplate" if claims else "without volumes"
            extra = f", every claim Bound at {r['bound']:.2f}s" if claims else ""
            print(f"{args.replicas}-replica Parallel StatefulSet {what}: all Ready in {r['ready']:.2f}s "
                  f"(first pod at {r['first_pod']:.2f}s, status readyReplicas={args.replicas} at "
                  f"{r['status']:.2f}s{extra})")
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--replicas", type=int, default=100)
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--start-delay", type=float, default=1.0, help="simulated container start delay (s)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per phase, seconds")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (server and simulator logs)")
    args = ap.parse_args()

    with sim_cluster(args.nodes, args.start_delay, ["--delete-delay", "0.5"], args.keep) as (server, _):
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
