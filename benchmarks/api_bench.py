"""API server benchmark: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/api_bench.py [--objects 10000] [--watchers 1000] [--api-workers N]

Starts a real `kyb server` (SQLite, fsync on) in a subprocess on a fresh data
dir, then measures from this process over HTTPS with the admin token:
ready time, creates/s (sequential and 16 concurrent clients), GET/s of one
object, LIST latency at 1,000 and 10,000 objects, watch delivery latency with
many concurrent watchers, and server RSS idle and loaded.
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

from kybernetes.testing.cluster import ServerProcess, rss_mb  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def server_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by process `pid` and its children (the API
    worker processes): steadier than wall-clock rates when other work shares the cores."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / _TICK
    return total


def pct(values: list[float], p: float) -> float:
    """The `p`th percentile of `values` (nan for none): the benchmarks' one definition."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


class Client:
    """HTTPS to the server as the admin (its bearer token), or as whoever the client
    certificate `cert` (certificate and key paths) names."""

    def __init__(self, server: ServerProcess, cert: tuple[str, str] | None = None) -> None:
        self.ssl = ssl.create_default_context(cafile=os.path.join(server.data_dir, "pki", "ca.crt"))
        self.base = server.url
        self.headers = {"Content-Type": "application/json"}
        if cert is not None:
            self.ssl.load_cert_chain(*cert)
        else:
            token = open(os.path.join(server.data_dir, "pki", "admin.token")).read().strip()
            self.headers["Authorization"] = f"Bearer {token}"
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        conn = aiohttp.TCPConnector(ssl=self.ssl, limit=2000)
        self.session = aiohttp.ClientSession(connector=conn, headers=self.headers,
                                             timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def post(self, path: str, body: dict) -> int:
        assert self.session is not None
        async with self.session.post(self.base + path, data=orjson.dumps(body)) as r:
            await r.read()
            return r.status

    async def get(self, path: str) -> bytes:
        assert self.session is not None
        async with self.session.get(self.base + path) as r:
            data = await r.read()
            if r.status != 200:
                raise RuntimeError(f"GET {path}: {r.status} {data[:200]!r}")
            return data


def configmap(name: str, i: int) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"bench": "yes"}},
            "data": {"index": str(i), "payload": "x" * 200}}


async def ensure_ns(c: Client, ns: str) -> None:
    await c.post("/api/v1/namespaces", {"metadata": {"name": ns}})


async def bench_creates(c: Client, ns: str, n: int, concurrency: int) -> float:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            status = await c.post(path, configmap(f"cm-{concurrency}-{i}", i))
            if status != 201:
                raise RuntimeError(f"create failed: {status}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - t0)


async def bench_gets(c: Client, path: str, seconds: float, concurrency: int) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await c.get(path)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def bench_list(c: Client, ns: str, runs: int = 5) -> tuple[float, int]:
    times = []
    count = 0
    for _ in range(runs):
        t0 = time.perf_counter()
        data = await c.get(f"/api/v1/namespaces/{ns}/configmaps")
        times.append(time.perf_counter() - t0)
        count = len(orjson.loads(data)["items"])
    return statistics.median(times), count


async def bench_watch(c: Client, ns: str, watchers: int, events: int) -> tuple[float, float, int]:
    assert c.session is not None
    path = f"/api/v1/namespaces/{ns}/configmaps"
    rv = orjson.loads(await c.get(path + "?limit=1"))["metadata"]["resourceVersion"]
    latencies: list[float] = []
    ready = 0
    all_ready = asyncio.Event()

    async def watch_one() -> None:
        nonlocal ready
        assert c.session is not None
        url = f"{c.base}{path}?watch=true&resourceVersion={rv}&timeoutSeconds=120"
        async with c.session.get(url) as r:
            ready += 1
            if ready == watchers:
                all_ready.set()
            got = 0
            async for line in r.content:
                now = time.perf_counter()
                ev = orjson.loads(line)
                sent = float(ev["object"]["data"]["sent"])
                latencies.append(now - sent)
                got += 1
                if got >= events:
                    return

    tasks = [asyncio.create_task(watch_one()) for _ in range(watchers)]
    await asyncio.wait_for(all_ready.wait(), 60)
    await asyncio.sleep(0.5)
    for i in range(events):
        await c.post(path, {"metadata": {"name": f"w-{i}"}, "data": {"sent": repr(time.perf_counter())}})
        await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*tasks), 120)
    return pct(latencies, 50), pct(latencies, 99), len(latencies)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10000)
    ap.add_argument("--watchers", type=int, default=1000)
    ap.add_argument("--creates", type=int, default=3000)
    ap.add_argument("--api-workers", type=int, default=None,
                    help="the server's --api-workers (default: its own, one process per core up to two)")
    args = ap.parse_args()
    # The API server alone: the control plane would add its own load to the figures.
    workers = ["--api-workers", str(args.api_workers)] if args.api_workers else []
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler", *workers])
    ready = srv.start()
    pid = srv.proc.pid  # type: ignore[union-attr]
    try:
        print(f"ready: {ready:.2f} s (start to /readyz ok)")
        await asyncio.sleep(1.0)
        print(f"RSS idle: {rss_mb(pid):.1f} MB")
        async with Client(srv) as c:
            await ensure_ns(c, "b-seq")
            await ensure_ns(c, "b-par")
            n_seq = min(args.creates, 2000)
            cpu0 = server_cpu(pid)
            seq = await bench_creates(c, "b-seq", n_seq, 1)
            print(f"creates/s sequential: {seq:.0f} (server CPU {(server_cpu(pid) - cpu0) * 1000 / n_seq:.3f} ms "
                  f"per create)")
            cpu0 = server_cpu(pid)
            par = await bench_creates(c, "b-par", args.creates, 16)
            print(f"creates/s 16 clients: {par:.0f} (server CPU {(server_cpu(pid) - cpu0) * 1000 / args.creates:.3f} "
                  f"ms per create)")
            one = "/api/v1/namespaces/b-seq/configmaps/cm-1-0"
            print(f"GET/s one object (16 clients): {await bench_gets(c, one, 5.0, 16):.0f}")
            print(f"GET/s one object (1 client): {await bench_gets(c, one, 3.0, 1):.0f}")
            await ensure_ns(c, "l1k")
            await bench_creates(c, "l1k", 1000, 16)
            t, n = await bench_list(c, "l1k")
            print(f"LIST {n} objects: median {t * 1000:.1f} ms")
            await ensure_ns(c, "l10k")
            await bench_creates(c, "l10k", args.objects, 16)
            t, n = await bench_list(c, "l10k")
            print(f"LIST {n} objects: median {t * 1000:.1f} ms")
            await asyncio.sleep(1.0)
            print(f"RSS with {args.objects + 1000 + args.creates + min(args.creates, 2000)} objects: "
                  f"{rss_mb(pid):.1f} MB")
            await ensure_ns(c, "wat")
            p50, p99, n = await bench_watch(c, "wat", args.watchers, 20)
            print(f"watch delivery with {args.watchers} watchers ({n} deliveries): p50 {p50 * 1000:.1f} ms, "
                  f"p99 {p99 * 1000:.1f} ms")
    finally:
        srv.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
