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
import json
import os
import statistics
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import (  # noqa: E402
    NAMESPACES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
)
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NAMESPACE = "volume-bench"
NODE = "kyb-vol-node"
POD_CIDR = "10.42.223.0/24"


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def bench_pod(name: str, claim: str = "") -> dict[str, Any]:
    spec: dict[str, Any] = {
        "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
        "nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 1,
        "containers": [{"name": "main", "image": "docker.io/library/busybox:1.35",
                        "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]}]}
    if claim:
        spec["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "volume"}},
            "spec": spec}


def bench_claim(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}


class Tracker:
    """When a watch first saw each pod Running and each claim Bound."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, str], float] = {}
        self.changed = asyncio.Event()

    async def follow(self, client: ApiClient, res: Any, kind: str, phase: str) -> None:
        async for type_, obj in client.watch(res, NAMESPACE, "", "", "", 3600):
            if type_ in ("ADDED", "MODIFIED") and (obj.get("status") or {}).get("phase") == phase:
                key = (kind, obj["metadata"]["name"])
                if key not in self.seen:
                    self.seen[key] = time.monotonic()
                    self.changed.set()

    async def wait(self, keys: list[tuple[str, str]], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not all(k in self.seen for k in keys):
            self.changed.clear()
            if time.monotonic() > deadline:
                raise TimeoutError(f"not seen: {[k for k in keys if k not in self.seen]}")
            try:
                await asyncio.wait_for(self.changed.wait(), 1.0)
            except TimeoutError:
                pass


def report(label: str, values: list[float]) -> None:
    print(f"{label:<36} median {statistics.median(values):.3f} s, p99 {pct(values, 99):.3f} s, "
          f"min {min(values):.3f} s, max {max(values):.3f} s")


async def wait_until(predicate: Any, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace, server: ServerProcess, agent: AgentProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="volume-bench")
    tracker = Tracker()
    followers = [asyncio.create_task(tracker.follow(client, PODS, "pod", "Running")),
                 asyncio.create_task(tracker.follow(client, PERSISTENTVOLUMECLAIMS, "pvc", "Bound"))]
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
        for f in followers:
            f.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        await client.close()


async def create_node(server: ServerProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="volume-bench")
    try:
        await client.create(NODES, None, {
            "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
            "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR],
                     "taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]}})
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    why = agent_prerequisites()
    if why:
        sys.exit(f"cannot run: {why}")
    server = ServerProcess()
    server.start(timeout=60)
    agent = AgentProcess(server, node_name=NODE, bridge="kybv0", proxy_table="kyb-vol")
    try:
        asyncio.run(create_node(server))
        agent.start()
        asyncio.run(run(args, server, agent))
    except Exception:
        print(json.dumps({"agent log": agent.log_tail(3000)}), file=sys.stderr)
        raise
    finally:
        agent.cleanup()
        server.cleanup()


if __name__ == "__main__":
    main()
