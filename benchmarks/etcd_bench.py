"""`kyb server` on its embedded etcd member vs on SQLite: run by hand, prints figures for
benchmarks/README.md (issue 17; target: etcd within 2x of SQLite).

    flock /tmp/kyb-bench.lock .venv/bin/python benchmarks/etcd_bench.py [--rounds 3] [--creates 1500]

Each round starts a fresh API-only server (`--disable-controllers --disable-scheduler`) on
SQLite and one with `--cluster-init` (its own etcd ports), and drives both with api_bench's
load generator: creates/s with 1 and 16 clients, GET/s of one object with 16 clients. Prints
every round, then the medians, the etcd/SQLite ratios and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, bench_creates, bench_gets, ensure_ns  # noqa: E402

from kybernetes.testing.cluster import ServerProcess, free_port  # noqa: E402

API_ONLY = ["--disable-controllers", "--disable-scheduler"]
FIGURES = ("creates/s 1 client", "creates/s 16 clients", "GET/s one object 16 clients")


def server_for(backend: str) -> ServerProcess:
    extra = [] if backend == "sqlite" else ["--cluster-init", "--etcd-client-port", str(free_port()),
                                            "--etcd-peer-port", str(free_port())]
    return ServerProcess(extra_args=[*API_ONLY, *extra])


async def one_round(backend: str, creates: int) -> dict[str, float]:
    srv = server_for(backend)
    srv.start(timeout=60)
    try:
        async with Client(srv) as c:
            await ensure_ns(c, "seq")
            await ensure_ns(c, "par")
            seq = await bench_creates(c, "seq", creates // 3, 1)
            par = await bench_creates(c, "par", creates, 16)
            gets = await bench_gets(c, "/api/v1/namespaces/seq/configmaps/cm-1-0", 5.0, 16)
        return dict(zip(FIGURES, (seq, par, gets), strict=True))
    finally:
        srv.cleanup()


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--creates", type=int, default=1500, help="creates of the 16-client run (1 client: a third)")
    args = ap.parse_args()
    results: dict[str, list[dict[str, float]]] = {"sqlite": [], "etcd": []}
    load_before = os.getloadavg()[0]
    for r in range(args.rounds):
        # Alternating the order spreads a drifting background load over both backends.
        for backend in ("sqlite", "etcd") if r % 2 == 0 else ("etcd", "sqlite"):
            got = await one_round(backend, args.creates)
            results[backend].append(got)
            print(f"round {r + 1} {backend:6s} " + "  ".join(f"{k}: {v:.0f}" for k, v in got.items()), flush=True)
    print(f"\nmedians of {args.rounds} rounds (load average 1 min: {load_before:.2f} before, "
          f"{os.getloadavg()[0]:.2f} after; {os.cpu_count()} cores):")
    for figure in FIGURES:
        lite = statistics.median(x[figure] for x in results["sqlite"])
        etcd = statistics.median(x[figure] for x in results["etcd"])
        print(f"  {figure:30s} SQLite {lite:8.0f}   etcd {etcd:8.0f}   etcd/SQLite {etcd / lite:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
