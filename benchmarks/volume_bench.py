"""Volume benchmark (issue 13): local-path claims on a real agent, run by hand as root.

    .venv/bin/python benchmarks/volume_bench.py [--runs 20]

Starts a real `kyb server` and a real `kyb agent` (private containerd, CNI bridge
`kybv0`), warms the image up, then `--runs` times, one after the other:

* a pod without volumes: create → a watch sees it Running;
* a claim of the default `local-path` class (WaitForFirstConsumer) and a pod using it,
  created together: create → claim Bound (scheduler picks the node, the node's agent
  makes the directory and the PV, the binder binds), and create → pod Running.

Prints medians and p99s, the extra time a fresh volume costs, and, after the pods are
gone, how long deleting the claims takes until every directory and PV is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from realagent import PhaseTracker, report, sleeper_pod, with_agent  # noqa: E402

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import NAMESPACES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS  # noqa: E402
from kybernetes.testing.agent import AgentProcess  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NAMESPACE = "volume-bench"
NODE = "kyb-vol-node"
POD_CIDR = "10.42.223.0/24"


def bench_pod(name: str, claim: str = "") -> dict[str, Any]:
    return sleeper_pod(name, NODE, {"bench": "volume"}, claim)


def bench_claim(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}


async def wait_until(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, server: ServerProcess, agent: AgentProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="volume-bench")
    tracker = PhaseTracker(NAMESPACE)
    tracker.watch(client, PODS, "pod", "Running")
    tracker.watch(client, PERSISTENTVOLUMECLAIMS, "pvc", "Bound")
    try:
        await client.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
        await asyncio.sleep(0.5)
        created = time.monotonic()
        await client.create(PODS, NAMESPACE, bench_pod("warmup"))
        await tracker.wait([("pod", "warmup")])
        print(f"warm-up pod Running after            {tracker.seen[('pod', 'warmup')] - created:.3f} s")

        plain, bound, with_volume = [], [], []
        for i in range(args.runs):
            start = time.monotonic()
            await client.create(PODS, NAMESPACE, bench_pod(f"plain-{i}"))
            await tracker.wait([("pod", f"plain-{i}")])
            plain.append(tracker.seen[("pod", f"plain-{i}")] - start)

            start = time.monotonic()
            await asyncio.gather(client.create(PERSISTENTVOLUMECLAIMS, NAMESPACE, bench_claim(f"data-{i}")),
                                 client.create(PODS, NAMESPACE, bench_pod(f"vol-{i}", f"data-{i}")))
            await tracker.wait([("pvc", f"data-{i}"), ("pod", f"vol-{i}")])
            bound.append(tracker.seen[("pvc", f"data-{i}")] - start)
            with_volume.append(tracker.seen[("pod", f"vol-{i}")] - start)

        print(f"{args.runs} runs, one at a time, load average {os.getloadavg()[0]:.2f} "
              f"on {os.cpu_count()} cores")
        report("pod without volume → Running", plain)
        report("claim + pod → claim Bound", bound)
        report("claim + pod → pod Running", with_volume)
        extra = [v - p for v, p in zip(with_volume, plain, strict=True)]
        print(f"{'fresh volume costs (pairwise)':<36} median {statistics.median(extra):+.3f} s; "
              f"medians {statistics.median(with_volume) - statistics.median(plain):+.3f} s")

        # Reclaim: pods gone first (the claims are protected while in use), then the claims.
        await client.delete_collection(PODS, NAMESPACE, label_selector="bench=volume")

        async def no_pods() -> bool:
            return not (await client.list(PODS, NAMESPACE))["items"]
        await wait_until(no_pods, 180)
        start = time.monotonic()
        await client.delete_collection(PERSISTENTVOLUMECLAIMS, NAMESPACE)

        async def no_volumes() -> bool:
            return not [pv for pv in (await client.list(PERSISTENTVOLUMES))["items"]
                        if (pv["spec"].get("claimRef") or {}).get("namespace") == NAMESPACE]
        await wait_until(no_volumes, 180)
        left = os.listdir(os.path.join(agent.data_dir, "storage"))
        print(f"{args.runs} claims deleted → PVs and directories gone after {time.monotonic() - start:.2f} s "
              f"({len(left)} directories left)")
    finally:
        await tracker.close()
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with_agent(NODE, POD_CIDR, "kybv0", "kyb-vol", lambda server, agent: run(args, server, agent))


if __name__ == "__main__":
    main()
