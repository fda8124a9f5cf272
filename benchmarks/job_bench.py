"""Job benchmark (issue 12): run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/job_bench.py [--nodes 1000] [--jobs 1000] [--job-duration 2]

Starts a real `kyb server` (API server, controllers and scheduler) on a fresh data dir
and a simulated-node process with `--nodes` nodes (run-to-completion pods succeed
`--job-duration` seconds after they start), waits until they are Ready, creates
`--jobs` single-pod Jobs at once, and measures from a watch on the Jobs how long until
every one has its Complete condition: Jobs completed per second overall, and the
moments the first and the last completed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from simcluster import ensure_namespace, sim_cluster, wait_nodes_ready  # noqa: E402

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import JOBS  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

NAMESPACE = "bench"


def job(i: int) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": f"once-{i}"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "c", "image": "busybox:1.35", "command": ["true"],
                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}}}


def complete(obj: dict[str, Any]) -> bool:
    return any(c.get("type") == "Complete" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or ())


async def run(args: argparse.Namespace, server: ServerProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="job-bench", max_connections=32)
    try:
        t = time.monotonic()
        ready = await wait_nodes_ready(client, args.nodes, timeout=600)
        print(f"{len(ready)} simulated nodes Ready in {time.monotonic() - t:.1f}s")
        await ensure_namespace(client, NAMESPACE)
        done: dict[str, float] = {}
        page = await client.list(JOBS, NAMESPACE)
        rv = page["metadata"]["resourceVersion"]

        async def watch() -> None:
            async for type_, obj in client.watch(JOBS, NAMESPACE, resource_version=rv, timeout_seconds=3600):
                if type_ in ("ADDED", "MODIFIED") and complete(obj):
                    done.setdefault(obj["metadata"]["name"], time.monotonic())

        watcher = asyncio.create_task(watch())
        sem = asyncio.Semaphore(32)

        async def create(i: int) -> None:
            async with sem:
                await client.create(JOBS, NAMESPACE, job(i))

        t0 = time.monotonic()
        await asyncio.gather(*(create(i) for i in range(args.jobs)))
        created = time.monotonic() - t0
        deadline = t0 + args.timeout
        while len(done) < args.jobs and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        if len(done) < args.jobs:
            raise TimeoutError(f"only {len(done)}/{args.jobs} Jobs completed in {args.timeout}s")
        first, last = min(done.values()) - t0, max(done.values()) - t0
        print(f"{args.jobs} single-pod Jobs created in {created:.2f}s; all Complete after {last:.2f}s "
              f"(first at {first:.2f}s, pods run {args.job_duration}s): {args.jobs / last:.1f} Jobs completed/s")
    finally:
        await client.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--job-duration", type=float, default=2.0, help="seconds a simulated pod runs")
    ap.add_argument("--start-delay", type=float, default=1.0, help="simulated container start delay (s)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds")
    ap.add_argument("--keep", action="store_true", help="keep the data dir (server and simulator logs)")
    args = ap.parse_args()

    with sim_cluster(args.nodes, args.start_delay, ["--job-duration", str(args.job_duration),
                                                    "--delete-delay", "0.5"], args.keep) as (server, _):
        asyncio.run(run(args, server))


if __name__ == "__main__":
    main()
