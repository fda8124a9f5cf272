"""Control plane benchmark (issue 3): run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/controlplane_bench.py [--nodes 1000] [--pods 10000] [--stretch-pods 30000]
    .venv/bin/python benchmarks/controlplane_bench.py --bind-directly   # simulator + API only, no scheduler
    .venv/bin/python benchmarks/controlplane_bench.py --preempt 200     # then 200 pods that must preempt
    .venv/bin/python benchmarks/controlplane_bench.py --scheduler-only  # pods first, then the scheduler alone

Starts a real `kyb server` (API server, controllers and scheduler) on a fresh
data dir and a simulated-node process (`python -m kybernetes.simnodes`) with
`--nodes` nodes, waits until they are Ready, then creates Deployments totalling
`--pods` replicas (500 per Deployment) and measures, from a watch on the pods:

* time until every pod is Running, and end-to-end pods/s (first create → last Running);
* scheduler pods/s (first → last binding, and the median/p99 of per-second binding rates);
* per-pod latency created → bound → Running (median, p99);
* API latency of a GET probe loop during the burst (median, p99);
* peak and final RSS of the server process tree and of the simulator.

With `--stretch-pods N` the Deployments are then scaled up to N pods in total
and the same figures are taken for the added pods. `--bind-directly` skips the
control plane: it creates bare pods already bound round-robin to the nodes,
which isolates the simulator and the API server.

`SERVER_PROFILE=/path.prof` runs the `kyb server` process (API server; its controller
manager and scheduler are child processes and are not profiled) under cProfile,
switched on for the first measured phase only; read the stats with `pstats`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import pct  # noqa: E402
from simcluster import ensure_namespace, follow, sim_cluster, wait_nodes_ready  # noqa: E402

from kybernetes.api.children import popen_dying_with_parent  # noqa: E402
from kybernetes.client import ApiClient, ApiError  # noqa: E402
from kybernetes.client.resources import DEPLOYMENTS, PODS, Resource  # noqa: E402
from kybernetes.testing.cluster import ProfiledServer, ServerProcess, child_pids, rss_mb  # noqa: E402

NAMESPACE = "bench"
PER_DEPLOYMENT = 500


# -- process measurements ------------------------------------------------------------------


def tree_rss_mb(pid: int, descendants: bool = True) -> float:
    """RSS of a process and, unless told otherwise, all its descendants (the server runs
    components as children)."""
    kids = child_pids() if descendants else {}
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        total += rss_mb(p)
        todo.extend(kids.get(p, []))
    return total


def tree_cpu_seconds(pid: int, descendants: bool = True) -> float:
    """User+system CPU time of a process tree (live descendants only)."""
    kids = child_pids() if descendants else {}
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(kids.get(p, []))
    return total


def process_rss_mb(pid: int) -> float:
    return tree_rss_mb(pid, descendants=False)


def control_plane_processes(server_pid: int) -> dict[str, int]:
    """The server and its component children, by role (from their command lines)."""
    out = {"  API server": server_pid}
    for kid in child_pids().get(server_pid, []):
        try:
            with open(f"/proc/{kid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        for role in (b"controller-manager", b"scheduler"):
            if role in argv:
                out["  " + role.decode()] = kid
    return out


# -- pod tracking ---------------------------------------------------------------------------


@dataclass
class PodTimes:
    created: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    running: dict[str, float] = field(default_factory=dict)
    deleted: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def see(self, obj: dict[str, Any], now: float) -> None:
        uid = obj["metadata"]["uid"]
        self.created.setdefault(uid, now)
        if obj.get("spec", {}).get("nodeName"):
            self.bound.setdefault(uid, now)
        if (obj.get("status") or {}).get("phase") == "Running":
            if uid not in self.running:
                self.running[uid] = now
                self.changed.set()


async def track_pods(client: ApiClient, times: PodTimes) -> None:
    def see(type_: str, obj: dict[str, Any], now: float) -> None:
        if type_ == "DELETED":
            times.deleted += 1
        else:
            times.see(obj, now)

    await follow(client, PODS, NAMESPACE, see)


async def probe(client: ApiClient, samples: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        t = time.monotonic()
        try:
            await client.request("GET", "/api/v1/namespaces/default")
            samples.append(time.monotonic() - t)
        except (ApiError, OSError, TimeoutError):
            samples.append(time.monotonic() - t)
        await asyncio.sleep(0.02)


async def sample_rss(pids: dict[str, int], parts: dict[str, int], peaks: dict[str, float],
                     stop: asyncio.Event) -> None:
    while not stop.is_set():
        for name, pid in pids.items():
            peaks[name] = max(peaks.get(name, 0.0), tree_rss_mb(pid))
        for name, pid in parts.items():
            peaks[name] = max(peaks.get(name, 0.0), process_rss_mb(pid))
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            pass


# -- workload -------------------------------------------------------------------------------


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": {"containers": [{
                         "name": "app", "image": "registry.k8s.io/pause:3.10",
                         "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def bare_pod(name: str, node: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "direct"}},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}


async def create_bound_pods(client: ApiClient, start: int, count: int, nodes: list[str]) -> None:
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await client.create(PODS, NAMESPACE, bare_pod(f"direct-{i}", nodes[i % len(nodes)]))

    await asyncio.gather(*(one(i) for i in range(start, start + count)))


# -- one measured phase ---------------------------------------------------------------------


async def phase(label: str, client: ApiClient, times: PodTimes, target: int, launch: Any, pids: dict[str, int],
                timeout: float) -> None:
    before = set(times.created)
    probes: list[float] = []
    peaks: dict[str, float] = {}
    stop = asyncio.Event()
    parts = control_plane_processes(pids["server (process tree)"])
    helpers = [asyncio.create_task(probe(client, probes, stop)),
               asyncio.create_task(sample_rss(pids, parts, peaks, stop))]
    cpu0 = {name: tree_cpu_seconds(pid) for name, pid in pids.items()}
    cpu0.update({name: tree_cpu_seconds(pid, descendants=False) for name, pid in parts.items()})
    # The server and the simulator are this process's children: count it alone.
    cpu0["benchmark client"] = tree_cpu_seconds(os.getpid(), descendants=False)
    t0 = time.monotonic()
    await launch()
    created_done = time.monotonic()
    deadline = t0 + timeout
    last_report = t0
    while len(times.running) < target:
        times.changed.clear()
        try:
            await asyncio.wait_for(times.changed.wait(), 1.0)
        except TimeoutError:
            pass
        now = time.monotonic()
        if now - last_report >= 10:
            last_report = now
            print(f"  {now - t0:6.1f}s created={len(times.created)} bound={len(times.bound)} "
                  f"running={len(times.running)}", file=sys.stderr)
        if now > deadline:
            print(f"  TIMEOUT after {timeout:.0f}s: running {len(times.running)}/{target}", file=sys.stderr)
            break
    t_end = time.monotonic()
    stop.set()
    await asyncio.gather(*helpers)
    final_rss = {name: tree_rss_mb(pid) for name, pid in pids.items()}
    final_rss.update({name: process_rss_mb(pid) for name, pid in parts.items()})
    cpu = {name: tree_cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
    cpu.update({name: tree_cpu_seconds(pid, descendants=False) - cpu0[name] for name, pid in parts.items()})
    cpu["benchmark client"] = tree_cpu_seconds(os.getpid(), descendants=False) - cpu0["benchmark client"]

    new = [u for u in times.created if u not in before]
    bound = sorted(times.bound[u] for u in new if u in times.bound)
    running = sorted(times.running[u] for u in new if u in times.running)
    n_new = len(running)
    bind_span = (bound[-1] - bound[0]) if len(bound) > 1 else float("nan")
    per_second: dict[int, int] = {}
    for t in bound:
        per_second[int(t - t0)] = per_second.get(int(t - t0), 0) + 1
    busy = [float(v) for v in per_second.values()]
    to_bound = [times.bound[u] - times.created[u] for u in new if u in times.bound]
    to_running = [times.running[u] - times.created[u] for u in new if u in times.running]
    e2e = n_new / (running[-1] - t0) if running else 0.0

    print(f"\n== {label}")
    print(f"pods Running                {n_new} of {target - len(before)} new "
          f"({len(times.running)} total) in {t_end - t0:.1f}s (creates issued in {created_done - t0:.1f}s)")
    print(f"end-to-end                  {e2e:.0f} pods/s (first create -> last Running)")
    if bound:
        print(f"scheduler                   {len(bound) / bind_span if bind_span > 0 else float('nan'):.0f} pods/s "
              f"over the binding span ({len(bound)} bound in {bind_span:.1f}s); per-second median "
              f"{statistics.median(busy):.0f}, p99 {pct(busy, 99):.0f}")
        print(f"created -> bound            median {statistics.median(to_bound) * 1000:.0f} ms, "
              f"p99 {pct(to_bound, 99) * 1000:.0f} ms")
    if to_running:
        print(f"created -> Running          median {statistics.median(to_running):.2f} s, "
              f"p99 {pct(to_running, 99):.2f} s")
    if probes:
        print(f"API GET probe during burst  median {statistics.median(probes) * 1000:.1f} ms, "
              f"p99 {pct(probes, 99) * 1000:.1f} ms, max {max(probes) * 1000:.0f} ms ({len(probes)} probes)")
    for name in [*pids, *parts]:
        print(f"RSS {name:<23} peak {peaks.get(name, 0):.0f} MB, after {final_rss[name]:.0f} MB")
    for name, secs in cpu.items():
        print(f"CPU {name:<23} {secs:.1f} s ({secs / max(t_end - t0, 1e-9) * 100:.0f}% of one core)")


# -- preemption (issue 12) ------------------------------------------------------------------


URGENT_CLASS = {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "bench-urgent"},
                "value": 1000}


async def preempt_phase(client: ApiClient, times: PodTimes, count: int, request: str, pids: dict[str, int],
                        timeout: float) -> None:
    """`count` pods of a high PriorityClass, each asking for nearly a whole node: every one
    must evict the low-priority pods on some node (their ReplicaSets put them back elsewhere)."""
    parts = control_plane_processes(pids["server (process tree)"])
    try:
        await client.create(Resource.for_kind("scheduling.k8s.io/v1", "PriorityClass"), None, URGENT_CLASS)
    except ApiError as e:
        if e.code != 409:
            raise
    urgent = deployment("urgent", count)
    urgent["spec"]["template"]["spec"]["priorityClassName"] = "bench-urgent"
    urgent["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = request
    cpu0 = {name: tree_cpu_seconds(pid, descendants=False) for name, pid in parts.items()}
    deleted0 = times.deleted
    t0 = time.monotonic()
    await client.create(DEPLOYMENTS, NAMESPACE, urgent)
    first_running: dict[str, float] = {}
    nominated: set[str] = set()
    while len(first_running) < count and time.monotonic() - t0 < timeout:
        page = await client.list(PODS, NAMESPACE, label_selector="app=urgent")
        now = time.monotonic()
        for obj in page.get("items") or []:
            uid = obj["metadata"]["uid"]
            if (obj.get("status") or {}).get("nominatedNodeName"):
                nominated.add(uid)
            if (obj.get("status") or {}).get("phase") == "Running":
                first_running.setdefault(uid, now)
        await asyncio.sleep(0.5)
    span = (max(first_running.values()) - t0) if first_running else float("nan")
    cpu = {name: tree_cpu_seconds(pid, descendants=False) - cpu0[name] for name, pid in parts.items()}
    print(f"\n== preemption: {count} high-priority pods, each needing a node's room ({request} CPU)")
    print(f"urgent pods Running         {len(first_running)} of {count} in {span:.1f}s "
          f"({len(first_running) / span if span > 0 else float('nan'):.0f} pods/s); "
          f"{len(nominated)} seen nominated; {times.deleted - deleted0} pods deleted (victims)")
    for name, secs in cpu.items():
        print(f"CPU {name:<23} {secs:.1f} s")


# -- the scheduler alone (issue 12) ----------------------------------------------------------


def pending_pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "pending"}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


async def scheduler_only(args: argparse.Namespace, client: ApiClient, server: ServerProcess, times: PodTimes,
                         pids: dict[str, int]) -> None:
    """As kube-scheduler's scheduler_perf measures it: the pods exist before the scheduler
    starts, and nothing else works meanwhile (the simulated nodes start containers only
    after an hour, so no status updates compete for the API server)."""
    sem = asyncio.Semaphore(32)

    async def one(i: int) -> None:
        async with sem:
            await client.create(PODS, NAMESPACE, pending_pod(f"pending-{i}"))

    t = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(args.pods)))
    while len(times.created) < args.pods:
        await asyncio.sleep(0.2)
    print(f"{args.pods} pending pods created in {time.monotonic() - t:.1f}s")
    log = open(os.path.join(server.data_dir, "scheduler.log"), "ab")  # noqa: SIM115 - child owns it
    api_cpu0 = tree_cpu_seconds(pids["server (process tree)"], descendants=False)
    t0 = time.monotonic()
    profile = os.environ.get("SCHEDULER_PROFILE")  # a path: run the scheduler under cProfile
    runner = ["-m", "cProfile", "-o", profile] if profile else []
    sched = popen_dying_with_parent([sys.executable, *runner, "-m", "kybernetes.cli.main", "scheduler",
                                     "--kubeconfig", server.kubeconfig, "--no-leader-elect"],
                                    cwd=os.path.join(os.path.dirname(__file__), ".."), stdout=log, stderr=log)
    log.close()
    try:
        while len(times.bound) < args.pods and time.monotonic() - t0 < args.timeout:
            times.changed.clear()
            await asyncio.sleep(0.5)
        sched_cpu = tree_cpu_seconds(sched.pid, descendants=False)
    finally:
        sched.send_signal(signal.SIGINT)  # a clean exit (and the profile written)
        sched.wait(15)
    api_cpu = tree_cpu_seconds(pids["server (process tree)"], descendants=False) - api_cpu0
    bound = sorted(times.bound.values())
    span = bound[-1] - bound[0] if len(bound) > 1 else float("nan")
    print(f"\n== scheduler alone: {args.pods} pending pods, {args.nodes} nodes")
    print(f"bound                       {len(bound)} of {args.pods}; first binding {bound[0] - t0:.1f}s after the "
          f"scheduler started (informer sync)")
    print(f"scheduler                   {len(bound) / span if span > 0 else float('nan'):.0f} pods/s over the "
          f"binding span ({span:.1f}s)")
    print(f"CPU scheduler {sched_cpu:.1f} s ({sched_cpu / len(bound) * 1000:.2f} ms per pod), API server "
          f"{api_cpu:.1f} s ({api_cpu / len(bound) * 1000:.2f} ms per pod)")


# -- main -----------------------------------------------------------------------------------


async def run(args: argparse.Namespace, server: ServerProcess, sim: subprocess.Popen[bytes]) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="controlplane-bench", max_connections=64)
    assert server.proc is not None
    pids = {"server (process tree)": server.proc.pid, "simulated nodes": sim.pid}
    try:
        t = time.monotonic()
        nodes = await wait_nodes_ready(client, args.nodes, timeout=300)
        print(f"{args.nodes} simulated nodes Ready in {time.monotonic() - t:.1f}s; "
              f"RSS server {tree_rss_mb(server.proc.pid):.0f} MB, simulator {tree_rss_mb(sim.pid):.0f} MB")
        await ensure_namespace(client, NAMESPACE)
        times = PodTimes()
        watcher = asyncio.create_task(track_pods(client, times))
        await asyncio.sleep(0.5)

        if args.scheduler_only:
            await scheduler_only(args, client, server, times, pids)
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            return
        if args.bind_directly:
            async def launch() -> None:
                await create_bound_pods(client, 0, args.pods, nodes)
        else:
            sizes = split(args.pods)

            async def launch() -> None:
                await asyncio.gather(*(client.create(DEPLOYMENTS, NAMESPACE, deployment(f"web-{i}", n))
                                       for i, n in enumerate(sizes)))
        if isinstance(server, ProfiledServer):
            server.profile(True)
        await phase(f"{args.pods} pods on {args.nodes} nodes", client, times, args.pods, launch, pids, args.timeout)
        if isinstance(server, ProfiledServer):
            server.profile(False)
            print(f"API server profile written to {server.stats_path}")

        if args.stretch_pods > args.pods:
            extra = args.stretch_pods - args.pods
            if args.bind_directly:
                async def grow() -> None:
                    await create_bound_pods(client, args.pods, extra, nodes)
            else:
                old, new = split(args.pods), split(args.stretch_pods)

                async def grow() -> None:
                    ops = []
                    for i, n in enumerate(new):
                        if i < len(old):
                            ops.append(client.patch(DEPLOYMENTS, NAMESPACE, f"web-{i}", {"spec": {"replicas": n}}))
                        else:
                            ops.append(client.create(DEPLOYMENTS, NAMESPACE, deployment(f"web-{i}", n)))
                    await asyncio.gather(*ops)
            await phase(f"stretch: {args.pods} -> {args.stretch_pods} pods", client, times, args.stretch_pods,
                        grow, pids, args.timeout)
        if args.preempt:
            await preempt_phase(client, times, args.preempt, args.preempt_cpu, pids, args.timeout)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    finally:
        await client.close()


def split(total: int) -> list[int]:
    n = max(1, math.ceil(total / PER_DEPLOYMENT))
    sizes = [total // n] * n
    for i in range(total - sum(sizes)):
        sizes[i] += 1
    return sizes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--pods", type=int, default=10000)
    ap.add_argument("--stretch-pods", type=int, default=0, help="then scale up to this many pods (e.g. 30000)")
    ap.add_argument("--start-delay", type=float, default=1.0, help="simulated container start delay (s)")
    ap.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    ap.add_argument("--bind-directly", action="store_true", help="bare pods pre-bound to nodes (no scheduler)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra argument for `kyb server`")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (server and simulator logs)")
    ap.add_argument("--scheduler-only", action="store_true",
                    help="pods created first, then the scheduler started alone; no containers started")
    ap.add_argument("--preempt", type=int, default=0,
                    help="then create this many high-priority pods that must preempt (issue 12)")
    ap.add_argument("--preempt-cpu", default="31950m",
                    help="CPU each of those asks for (the simulated nodes have 32; the low pods 10m each)")
    args = ap.parse_args()

    # 1,000 nodes need more /24 node subnets than the default 10.42.0.0/16 holds (256).
    if args.scheduler_only:
        args.server_arg.append("--disable-scheduler")
        args.start_delay = 3600.0
    server_args = ["--cluster-cidr", "10.64.0.0/12", *args.server_arg]
    profile = os.environ.get("SERVER_PROFILE")  # a path: run the API server under cProfile
    server = ProfiledServer(profile, server_args) if profile else ServerProcess(extra_args=server_args)
    with sim_cluster(args.nodes, args.start_delay, ["--stats-interval", "10"], args.keep, server) as (_, sim):
        asyncio.run(run(args, server, sim))


if __name__ == "__main__":
    main()
