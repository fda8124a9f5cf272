"""API server CPU per write, by the kind of write a pod costs (issue 3): run by hand.

    .venv/bin/python benchmarks/server_ops_bench.py [--count 2000] [--concurrency 16]

Starts `kyb server` alone (no controllers, no scheduler) and, for each step, sends
`--count` requests of one kind with `--concurrency` in flight, then prints the API
server process's CPU time per request (user + system, from /proc) and the
requests/s. The steps are the writes one Deployment pod causes in the control-plane
benchmark: the ReplicaSet controller's create, the scheduler's binding and its
`Scheduled` event, the simulated kubelet's status patch, and a node Lease renewal.
Two pod watchers (like the controller manager's and the scheduler's informers) stay
open throughout, so every pod write is also encoded and sent to watchers.

`--profile PATH --profile-step LABEL` runs the server's event loop under cProfile for the
steps whose label starts with LABEL (e.g. "GET + status") and writes the stats to PATH
(read them with `python -m pstats PATH`); the CPU figures of a profiled step are inflated.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.timefmt import rfc3339, rfc3339_micro  # noqa: E402
from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import EVENTS, LEASES, NAMESPACES, NODES, PODS, SERVICEACCOUNTS  # noqa: E402
from kybernetes.simnodes import model  # noqa: E402
from kybernetes.testing.cluster import ProfiledServer, ServerProcess  # noqa: E402

NAMESPACE = "ops"


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def now() -> str:
    return rfc3339(dt.datetime.now(dt.UTC))


def now_micro() -> str:
    return rfc3339_micro(dt.datetime.now(dt.UTC))


def template_pod(i: int, rs_uid: str) -> dict[str, Any]:
    """A pod as the ReplicaSet controller creates it from the benchmark's template."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-abc-{i:05d}", "generateName": "web-abc-",
                         "labels": {"app": "web", "pod-template-hash": "abc"},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-abc",
                                              "uid": rs_uid, "controller": True, "blockOwnerDeletion": True}]},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


PROFILED: tuple[ProfiledServer, str] | None = None  # (server, label prefix) when --profile is given


async def step(label: str, pid: int, count: int, concurrency: int, one: Callable[[int], Awaitable[Any]]) -> None:
    sem = asyncio.Semaphore(concurrency)
    profiled = PROFILED is not None and label.startswith(PROFILED[1])
    if profiled:
        PROFILED[0].profile(True)

    async def guarded(i: int) -> None:
        async with sem:
            await one(i)

    c0, t0 = cpu_seconds(pid), time.monotonic()
    await asyncio.gather(*(guarded(i) for i in range(count)))
    # Let the watchers drain what the step produced before reading the CPU clock.
    await asyncio.sleep(0.3)
    cpu, wall = cpu_seconds(pid) - c0, time.monotonic() - t0 - 0.3
    if profiled:
        PROFILED[0].profile(False)  # type: ignore[index]
    print(f"{label:<28} {cpu / count * 1000:6.2f} ms CPU/request   {count / wall:7.0f} requests/s"
          + ("   (profiled)" if profiled else ""))


async def drain(client: ApiClient) -> None:
    async for _ in client.watch(PODS, NAMESPACE, resource_version="0"):
        pass


async def run(args: argparse.Namespace, server: ServerProcess) -> None:
    assert server.proc is not None
    pid = server.proc.pid
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="ops-bench", max_connections=64)
    watchers = [await ApiClient.from_kubeconfig(server.kubeconfig, user_agent=f"watcher-{i}") for i in range(args.watchers)]
    tasks = [asyncio.create_task(drain(w)) for w in watchers]
    try:
        await client.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
        # No controller manager here: the pods' `default` ServiceAccount is made by hand
        # (the ServiceAccount admission refuses pods whose account does not exist).
        await client.create(SERVICEACCOUNTS, NAMESPACE, {"metadata": {"name": "default"}})
        for i in range(50):
            await client.create(NODES, None, model.build_node(f"node-{i}", i, model.NodeTemplate(), now()))
        n = args.count
        pods: list[dict[str, Any]] = []

        async def create(i: int) -> None:
            pods.append(await client.create(PODS, NAMESPACE, template_pod(i, "8d1f3c1e-0000-4000-8000-000000000001"),
                                            field_manager="kube-controller-manager"))

        await step("pod create (controller)", pid, n, args.concurrency, create)
        pods.sort(key=lambda p: p["metadata"]["name"])

        async def bind(i: int) -> None:
            meta = pods[i]["metadata"]
            await client.create_subresource(PODS, NAMESPACE, meta["name"], "binding", {
                "apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": NAMESPACE, "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": f"node-{i % 50}"}})

        await step("pods/binding", pid, n, args.concurrency, bind)

        async def event(i: int) -> None:
            meta = pods[i]["metadata"]
            await client.create(EVENTS, NAMESPACE, {
                "metadata": {"generateName": meta["name"] + "."},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": NAMESPACE,
                                   "name": meta["name"], "uid": meta["uid"]},
                "reason": "Scheduled", "message": f"Successfully assigned {NAMESPACE}/{meta['name']} to node",
                "type": "Normal", "source": {"component": "default-scheduler"},
                "reportingComponent": "default-scheduler", "count": 1,
                "firstTimestamp": now(), "lastTimestamp": now()})

        await step("event create (Scheduled)", pid, n, args.concurrency, event)

        async def status(i: int) -> None:
            pod = await client.get(PODS, NAMESPACE, pods[i]["metadata"]["name"])
            body = {"metadata": {"resourceVersion": pod["metadata"]["resourceVersion"]},
                    "status": model.running_pod_status(pod, "10.0.0.1", f"10.1.{i // 250}.{i % 250 + 2}", now(),
                                                       lambda: f"{i:064x}")}
            await client.patch(PODS, NAMESPACE, pod["metadata"]["name"], body, patch_type="merge",
                               subresource="status", field_manager="kyb-sim-nodes")

        c0 = cpu_seconds(pid)
        gets = [await client.get(PODS, NAMESPACE, pods[i]["metadata"]["name"]) for i in range(min(n, 500))]
        get_cost = (cpu_seconds(pid) - c0) / len(gets)
        await step("GET + status patch", pid, n, args.concurrency, status)
        print(f"{'  (of which GET, alone)':<28} {get_cost * 1000:6.2f} ms CPU/request")

        for i in range(50):
            await client.create(LEASES, model.LEASE_NAMESPACE, model.build_lease(f"node-{i}", "", now_micro()))

        async def renew(i: int) -> None:
            name = f"node-{i % 50}"
            await client.patch(LEASES, model.LEASE_NAMESPACE, name, model.lease_renewal(name, now_micro()),
                               patch_type="merge", field_manager="kyb-sim-nodes")

        await step("lease renewal (merge patch)", pid, n, args.concurrency, renew)
    finally:
        await cancel_and_wait(tasks)
        for w in watchers:
            await w.close()
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--watchers", type=int, default=2, help="pod watchers open throughout (informers)")
    ap.add_argument("--profile", default="", metavar="PATH", help="cProfile stats of --profile-step go here")
    ap.add_argument("--profile-step", default="GET + status", metavar="LABEL")
    args = ap.parse_args()
    global PROFILED
    extra = ["--disable-controllers", "--disable-scheduler"]
    if args.profile:
        profiled = ProfiledServer(os.path.abspath(args.profile), extra_args=extra)
        PROFILED = (profiled, args.profile_step)
        server: ServerProcess = profiled
    else:
        server = ServerProcess(extra_args=extra)
    server.start(timeout=60)
    try:
        asyncio.run(run(args, server))
    finally:
        server.cleanup()


if __name__ == "__main__":
    main()
