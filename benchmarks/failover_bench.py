"""API unavailability when one of three API servers is killed, seen by a client that knows all
three (issue 17; target <= 5 s): run by hand, prints figures for benchmarks/README.md.

    flock /tmp/kyb-bench.lock .venv/bin/python benchmarks/failover_bench.py [--rounds 3] [--servers 3]

Each round starts an etcd and N `kyb server`s on it (API only, each bound to and advertising
its own loopback address, 127.0.0.2..., on one port, as N machines would). One
`ApiClient`, given only the first server's URL, learns the others from the `kubernetes`
Endpoints (as a node agent does), then readers (GET of one object) and writers (creates)
run back to back through it. After a steady second, the server the client uses is killed
with -9. For readers and writers the gap is the time from the last success before the kill
to the first success after it; a writer whose create failed (cut off, maybe applied) tries
again with a new name, as a caller would, and those failures are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import aiohttp  # noqa: E402

from kybernetes.api.errors import ApiError  # noqa: E402
from kybernetes.client import apiservers  # noqa: E402
from kybernetes.client.api import ApiClient, kubeconfig_entries, ssl_context_from_kubeconfig  # noqa: E402
from kybernetes.client.resources import CONFIGMAPS, NAMESPACES  # noqa: E402
from kybernetes.testing.cluster import ServerProcess, free_port  # noqa: E402
from kybernetes.testing.etcd import EtcdProcess  # noqa: E402

NS = "failover-bench"


class LoopbackServer(ServerProcess):
    def __init__(self, ip: str, etcd_url: str, port: int, data_dir: str | None, extra: list[str]) -> None:
        super().__init__(data_dir=data_dir, port=port, extra_args=[
            "--bind-address", ip, "--advertise-address", ip, "--datastore-endpoint", etcd_url,
            "--disable-controllers", "--disable-scheduler", *extra])
        self.ip = ip

    @property
    def url(self) -> str:
        return f"https://{self.ip}:{self.port}"


@dataclass
class Log:
    ok: list[float] = field(default_factory=list)
    failed: list[float] = field(default_factory=list)

    def gap(self, killed_at: float) -> float:
        before = [t for t in self.ok if t <= killed_at]
        after = [t for t in self.ok if t > killed_at]
        if not before or not after:
            return float("inf")
        return min(after) - max(before)


def start_servers(n: int, etcd_url: str) -> tuple[list[LoopbackServer], list[str]]:
    port = free_port()
    first = LoopbackServer("127.0.0.2", etcd_url, port, None, [])
    first.start(timeout=60)
    servers, dirs = [first], []
    token_file = os.path.join(first.data_dir, "token")
    for i in range(1, n):
        d = tempfile.mkdtemp(prefix="kyb-bench-")
        dirs.append(d)
        if os.path.exists(token_file):
            with open(token_file) as f:
                extra = ["--token", f.read().strip()]
        else:  # a server without shared bootstrap data: the same CA and keys by copy
            extra = []
            shutil.copytree(os.path.join(first.data_dir, "pki"), os.path.join(d, "pki"))
        s = LoopbackServer(f"127.0.0.{2 + i}", etcd_url, port, d, extra)
        s.start(timeout=60)
        servers.append(s)
    return servers, dirs


async def reader(client: ApiClient, log: Log, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            await client.get(CONFIGMAPS, NS, "probe")
            log.ok.append(time.monotonic())
        except (ApiError, aiohttp.ClientError, TimeoutError):
            log.failed.append(time.monotonic())
            await asyncio.sleep(0.01)


async def writer(client: ApiClient, who: int, log: Log, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        try:
            await client.create(CONFIGMAPS, NS, {"metadata": {"name": f"w{who}-{n}"}})
            log.ok.append(time.monotonic())
        except (ApiError, aiohttp.ClientError, TimeoutError):
            log.failed.append(time.monotonic())
            await asyncio.sleep(0.01)


async def one_round(n_servers: int, readers: int, writers: int) -> dict[str, float]:
    etcd = EtcdProcess()
    etcd.start()
    servers: list[LoopbackServer] = []
    dirs: list[str] = []
    try:
        servers, dirs = start_servers(n_servers, etcd.url)
        first = servers[0]
        cluster, user = kubeconfig_entries(first.kubeconfig)
        ctx = ssl_context_from_kubeconfig(cluster, user, os.path.dirname(first.kubeconfig))
        client = ApiClient(first.url, ctx, user_agent="failover-bench")
        try:
            deadline = time.monotonic() + 30
            while len(await apiservers.refresh_servers(client, first.url)) < n_servers:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Endpoints list {client.servers}")
                await asyncio.sleep(0.2)
            await client.create(NAMESPACES, None, {"metadata": {"name": NS}})
            await client.create(CONFIGMAPS, NS, {"metadata": {"name": "probe"}})
            reads, writes = Log(), Log()
            stop = asyncio.Event()
            tasks = [asyncio.create_task(reader(client, reads, stop)) for _ in range(readers)]
            tasks += [asyncio.create_task(writer(client, w, writes, stop)) for w in range(writers)]
            await asyncio.sleep(1.0)
            victim = next(s for s in servers if s.url == client.base_url)
            killed_at = time.monotonic()
            await asyncio.to_thread(victim.kill9)
            await asyncio.sleep(3.0)
            stop.set()
            await asyncio.gather(*tasks)
            after = [t for t in writes.failed if t > killed_at]
            return {"read gap s": reads.gap(killed_at), "write gap s": writes.gap(killed_at),
                    "failed writes": float(len(after)),
                    "reads/s": len(reads.ok) / (reads.ok[-1] - reads.ok[0]) if len(reads.ok) > 1 else 0.0}
        finally:
            await client.close()
    finally:
        for s in servers:
            s.cleanup()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        etcd.stop()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--servers", type=int, default=3)
    ap.add_argument("--readers", type=int, default=4)
    ap.add_argument("--writers", type=int, default=2)
    args = ap.parse_args()
    rounds = []
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        res = await one_round(args.servers, args.readers, args.writers)
        rounds.append(res)
        print(f"round {r + 1}: " + ", ".join(f"{k} {v:.3f}" for k, v in res.items()), flush=True)
    print(f"medians of {args.rounds} rounds, {args.servers} servers, {args.readers} readers, "
          f"{args.writers} writers:")
    for k in rounds[0]:
        vals = [x[k] for x in rounds]
        print(f"  {k}: median {statistics.median(vals):.3f}, max {max(vals):.3f}")
    print(f"load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    asyncio.run(main())
