"""LIST flood benchmark: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/list_flood_bench.py [--objects 20000] [--clients 10] [--seconds 20]
        [--chunk 0] [--server-arg=--max-requests-inflight=0 ...]

Starts a real `kyb server` (API server only) on a fresh data dir, creates `--objects`
ConfigMaps, then lets `--clients` clients LIST all of them as a Table (what `kubectl get
cm -A` asks for; `--chunk 500` pages as kubectl does by default, `--chunk 0` asks for the
whole list at once, as `--chunk-size=0` and most other clients do) in a loop for
`--seconds`. Meanwhile a probe GETs `/readyz` and another client GETs one ConfigMap, every
20 ms each. Prints their latency percentiles, LISTs served and refused (429), and the
server's RSS before, at its peak, and after. The flooding clients run in a process of their
own, so the probes' figures are not delayed by this process reading the floods' bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time

import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

from api_bench import Client, configmap, ensure_ns, pct  # noqa: E402

from kybernetes.testing.cluster import ServerProcess, rss_mb  # noqa: E402

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"


async def fill(c: Client, ns: str, n: int) -> None:
    path = f"/api/v1/namespaces/{ns}/configmaps"
    todo = iter(range(n))

    async def worker() -> None:
        for i in todo:
            while await c.post(path, configmap(f"cm-{i:06d}", i)) == 429:
                await asyncio.sleep(0.1)

    await asyncio.gather(*(worker() for _ in range(16)))


async def flood(c: Client, path: str, chunk: int, stop: asyncio.Event, counts: dict[int, int]) -> None:
    assert c.session is not None
    while not stop.is_set():
        cont = ""
        while True:
            q = f"?limit={chunk}" + (f"&continue={cont}" if cont else "") if chunk else ""
            async with c.session.get(c.base + path + q, headers={"Accept": TABLE}) as r:
                body = await r.read()
                counts[r.status] = counts.get(r.status, 0) + 1
                if r.status == 429:
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                    break
                if r.status != 200:
                    raise RuntimeError(f"LIST: {r.status} {body[:200]!r}")
            cont = orjson.loads(body)["metadata"].get("continue", "") if chunk else ""
            if not cont or stop.is_set():
                break


def flood_process(srv: ServerProcess, clients: int, chunk: int, seconds: float, out: multiprocessing.Queue) -> None:
    async def run() -> dict[int, int]:
        stop = asyncio.Event()
        counts: dict[int, int] = {}
        sessions = [Client(srv) for _ in range(clients)]
        for c in sessions:
            await c.__aenter__()
        try:
            tasks = [asyncio.create_task(flood(c, "/api/v1/configmaps", chunk, stop, counts)) for c in sessions]
            await asyncio.sleep(seconds)
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            for c in sessions:
                await c.__aexit__(None, None, None)
        return counts

    out.put(asyncio.run(run()))


async def probe(c: Client, path: str, stop: asyncio.Event, out: list[float], errors: list[int]) -> None:
    assert c.session is not None
    while not stop.is_set():
        t = time.perf_counter()
        async with c.session.get(c.base + path) as r:
            await r.read()
            if r.status != 200:
                errors.append(r.status)
        out.append(time.perf_counter() - t)
        await asyncio.sleep(0.02)


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[float]) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], rss_mb(pid))
        await asyncio.sleep(0.2)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=20000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--chunk", type=int, default=0, help="page size of each LIST (0: the whole list)")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `kyb server` flag (repeatable)")
    args = ap.parse_args()
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler", *args.server_arg])
    srv.start()
    try:
        assert srv.proc is not None
        pid = srv.proc.pid
        async with Client(srv) as filler:
            await ensure_ns(filler, "flood")
            t = time.monotonic()
            await fill(filler, "flood", args.objects)
            print(f"created {args.objects} ConfigMaps in {time.monotonic() - t:.1f} s")
        rss_before = rss_mb(pid)
        print(f"RSS before the flood: {rss_before:.0f} MB")
        stop = asyncio.Event()
        ready: list[float] = []
        gets: list[float] = []
        errors: list[int] = []
        peak = [rss_before]
        results: multiprocessing.Queue = multiprocessing.Queue()
        flooder = multiprocessing.get_context("fork").Process(
            target=flood_process, args=(srv, args.clients, args.chunk, args.seconds, results))
        flooder.start()
        async with Client(srv) as watcher:
            await asyncio.sleep(0.5)  # let the flood start
            tasks = [asyncio.create_task(probe(watcher, "/readyz", stop, ready, errors)),
                     asyncio.create_task(probe(watcher, "/api/v1/namespaces/flood/configmaps/cm-000001", stop,
                                               gets, errors)),
                     asyncio.create_task(sample_rss(pid, stop, peak))]
            await asyncio.sleep(args.seconds - 1.0)
            stop.set()
            await asyncio.gather(*tasks)
        counts = await asyncio.to_thread(results.get)
        flooder.join()
        await asyncio.sleep(2.0)
        print(f"flood: {args.clients} clients x {args.seconds:.0f} s, LIST {args.objects} as Table, "
              f"chunk {args.chunk or 'none'}: responses {dict(sorted(counts.items()))}")
        for name, values in (("/readyz", ready), ("GET one ConfigMap", gets)):
            print(f"{name}: n={len(values)} p50 {pct(values, 50) * 1000:.1f} ms, p99 {pct(values, 99) * 1000:.1f} ms, "
                  f"max {max(values) * 1000:.1f} ms")
        if errors:
            print(f"probe/GET errors: {errors[:10]} ({len(errors)})")
        print(f"RSS: before {rss_before:.0f} MB, peak {peak[0]:.0f} MB, after {rss_mb(pid):.0f} MB")
        print(f"load average: {os.getloadavg()[0]:.1f}")
    finally:
        srv.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
