"""Pod creates/s through the built-in admission chain: run by hand, prints figures for
benchmarks/README.md ("Issue 15 — admission chain").

    .venv/bin/python benchmarks/admission_bench.py [--creates 1500] [--rounds 3] [--clients 16]

A real `kyb server` (no agent, no scheduler: pods stay Pending and only the API server
works), admin token, `--clients` concurrent creators. Alternating rounds, each in a fresh
namespace:
- plain: an unlabelled namespace (PodSecurity privileged, no LimitRange, no quota);
- chain: a LimitRange filling in container defaults and bounding them, a ResourceQuota
  counting pods and cpu, and the namespace labelled `pod-security.kubernetes.io/warn=restricted`
  with pods that break it (every create answers with a Warning header).
Prints each round, then the medians of creates/s and of server CPU ms per create. In
chain mode the LimitRange adds resources and an annotation to each pod (bigger objects
to store and send); `--sized` sends pods that already set them, to see the plugins alone.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, server_cpu  # noqa: E402

SIZED = {"requests": {"cpu": "5m", "memory": "16Mi"}, "limits": {"cpu": "10m", "memory": "16Mi"}}


def pod(name: str, sized: bool = False) -> dict:
    c: dict = {"name": "c", "image": "pause"}
    if sized:
        c["resources"] = SIZED
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [c]}}


LIMITS = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "limits"},
          "spec": {"limits": [{"type": "Container", "default": {"cpu": "10m", "memory": "16Mi"},
                               "defaultRequest": {"cpu": "5m", "memory": "16Mi"},
                               "max": {"cpu": "1", "memory": "1Gi"}, "min": {"cpu": "1m"}}]}}


def quota(n: int) -> dict:
    return {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "quota"},
            "spec": {"hard": {"pods": str(n * 2), "requests.cpu": "1000"}}}


async def creates(c: Client, ns: str, n: int, clients: int, sized: bool = False) -> tuple[float, int]:
    path = f"/api/v1/namespaces/{ns}/pods"
    counter = iter(range(n))
    warned = 0
    assert c.session is not None

    async def worker() -> None:
        nonlocal warned
        assert c.session is not None
        for i in counter:
            async with c.session.post(c.base + path, json=pod(f"p-{i}", sized)) as r:
                await r.read()
                if r.status != 201:
                    raise RuntimeError(f"create failed: {r.status}")
                warned += "Warning" in r.headers

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(clients)))
    return n / (time.perf_counter() - t0), warned


async def bench(n: int, rounds: int, clients: int, sized: bool) -> None:
    from kybernetes.testing.cluster import ServerProcess

    server = ServerProcess(extra_args=["--disable-scheduler"])
    server.start(60)
    try:
        async with Client(server) as c:
            pid = server.proc.pid if server.proc is not None else 0
            rate: dict[str, list[float]] = {"plain": [], "chain": []}
            cpu: dict[str, list[float]] = {"plain": [], "chain": []}
            for rnd in range(rounds):
                for mode in ("plain", "chain"):
                    ns = f"adm-{mode}-{rnd}"
                    labels = {"pod-security.kubernetes.io/warn": "restricted"} if mode == "chain" else {}
                    assert await c.post("/api/v1/namespaces", {"metadata": {"name": ns, "labels": labels}}) == 201
                    if mode == "chain":
                        assert await c.post(f"/api/v1/namespaces/{ns}/limitranges", LIMITS) == 201
                        assert await c.post(f"/api/v1/namespaces/{ns}/resourcequotas", quota(n)) == 201
                        await asyncio.sleep(0.5)
                    cpu0 = server_cpu(pid)
                    r, warned = await creates(c, ns, n, clients, sized)
                    if mode == "chain" and warned != n:
                        raise RuntimeError(f"only {warned} of {n} creates were warned")
                    cpu[mode].append((server_cpu(pid) - cpu0) * 1000 / n)
                    rate[mode].append(r)
                    print(f"round {rnd + 1} {mode}: {r:.0f} pod creates/s, server CPU {cpu[mode][-1]:.3f} ms per create")
            plain, chain = statistics.median(rate["plain"]), statistics.median(rate["chain"])
            print(f"median pod creates/s: plain {plain:.0f}, chain {chain:.0f} "
                  f"({(plain - chain) / plain * 100:+.1f}% slower)")
            plain, chain = statistics.median(cpu["plain"]), statistics.median(cpu["chain"])
            print(f"median server CPU per create: plain {plain:.3f} ms, chain {chain:.3f} ms "
                  f"({(chain - plain) / plain * 100:+.1f}%)")
    finally:
        server.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--creates", type=int, default=1500)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--sized", action="store_true",
                    help="pods that set their own requests and limits (the LimitRange only checks them), so both "
                         "modes store the same pods")
    args = ap.parse_args()
    asyncio.run(bench(args.creates, args.rounds, args.clients, args.sized))


if __name__ == "__main__":
    main()
