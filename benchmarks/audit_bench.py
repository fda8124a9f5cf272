"""The audit log (issue 15): what the default policy costs a create and a GET. Run by hand:

    .venv/bin/python benchmarks/audit_bench.py [--rounds 5] [--objects 400] [--clients 8]

Starts two real `kyb server`s (API only, SQLite with fsync): one as `kyb server` runs by
default (audit on, the default policy: writes at Metadata into <data-dir>/audit.log) and
one with `--audit-log-path ""` (no auditing). Rounds alternate between them; each creates
`--objects` ConfigMaps from `--clients` concurrent HTTPS clients, then GETs each of them
(reads are level None: what the hook costs a request it does not record). Prints the
median creates/s and GETs/s of each server, the server's CPU time per request (all its
threads, from /proc/<pid>/task/*/schedstat: steadier than throughput on a shared box),
and the events the audited one wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import time

import aiohttp
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.testing.cluster import ServerProcess  # noqa: E402

API_ONLY = ["--disable-controllers", "--disable-scheduler"]


def cpu_seconds(pid: int) -> float:
    """CPU time of every thread of the process so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that ended
    return total / 1e9


async def one_round(srv: ServerProcess, tag: str, n: int, clients: int) -> tuple[float, float, float, float]:
    token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    base = f"{srv.url}/api/v1/namespaces/default/configmaps"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    names = [f"{tag}-{i}" for i in range(n)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=clients),
                                     headers=headers) as session:
        async def create(name: str) -> None:
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "bench"}},
                    "data": {"k": "v" * 200}}
            async with session.post(base, data=orjson.dumps(body)) as r:
                await r.read()
                assert r.status == 201, r.status

        async def get(name: str) -> None:
            async with session.get(f"{base}/{name}") as r:
                await r.read()
                assert r.status == 200, r.status

        async def run(fn, items) -> tuple[float, float]:
            queue = list(items)

            async def worker() -> None:
                while queue:
                    await fn(queue.pop())

            assert srv.proc is not None
            cpu, t = cpu_seconds(srv.proc.pid), time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            elapsed = time.perf_counter() - t
            return len(items) / elapsed, (cpu_seconds(srv.proc.pid) - cpu) / len(items) * 1e6

        (creates, create_cpu), (gets, get_cpu) = await run(create, names), await run(get, names)
        return creates, gets, create_cpu, get_cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--objects", type=int, default=400)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    servers = {"audit on (default policy)": ServerProcess(extra_args=API_ONLY),
               "audit off": ServerProcess(extra_args=[*API_ONLY, "--audit-log-path", ""])}
    results: dict[str, tuple[list[float], ...]] = {k: ([], [], [], []) for k in servers}
    try:
        for srv in servers.values():
            srv.start()
        for r in range(args.rounds):
            for label, srv in servers.items():
                for i, x in enumerate(asyncio.run(one_round(srv, f"r{r}", args.objects, args.clients))):
                    results[label][i].append(x)
        on = servers["audit on (default policy)"]
        time.sleep(0.5)
        log = os.path.join(on.data_dir, "audit.log")
        lines = sum(1 for _ in open(log)) if os.path.exists(log) else 0
        for label, (creates, gets, create_cpu, get_cpu) in results.items():
            print(f"{label:26s} creates/s {statistics.median(creates):6.0f}  GETs/s {statistics.median(gets):6.0f}  "
                  f"server CPU per create {statistics.median(create_cpu):5.0f} us, per GET "
                  f"{statistics.median(get_cpu):4.0f} us  (creates/s {', '.join(f'{x:.0f}' for x in creates)})")
        print(f"events in the audited server's log: {lines} "
              f"({args.rounds * args.objects} creates; reads not recorded)")
    finally:
        for srv in servers.values():
            srv.cleanup()


if __name__ == "__main__":
    main()
