"""GET scaling over API worker processes: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/get_scaling_bench.py [--workers 1 2] [--rounds 2] [--seconds 10] [--clients 32]

On a machine shared with other work, run it at a higher priority (`nice -n -10`, as
root): the server, its workers and wrk inherit it, and the figures approach a quiet
machine's.

For each `--api-workers` value: starts a real `kyb server` (SQLite, fsync on, no
controllers or scheduler) on a fresh data dir, creates one ConfigMap, then measures
GET/s of that object with 32 kept-alive TLS clients, with `wrk` (C, when installed:
the load generator then costs little CPU) and with the Python aiohttp client (which
itself needs about a core), the server's CPU (all its processes) during the wrk run,
and sequential creates/s (one client, new objects) so writes forwarded from a worker
to the primary are seen not to collapse.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, bench_creates, bench_gets, ensure_ns  # noqa: E402

from kybernetes.testing.cluster import ServerProcess, process_tree  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, IndexError, ValueError):
            continue
    return total / _TICK


def parse_wrk_rate(out: str) -> float:
    """Requests/sec from wrk's summary."""
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m is None:
        raise RuntimeError(f"no rate in wrk output: {out[-400:]}")
    return float(m.group(1))


def wrk_gets(url: str, token: str, seconds: int, clients: int) -> tuple[float, str, float]:
    """GET/s, p99 latency, and the CPU seconds wrk itself used."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--latency",
                          "-H", f"Authorization: Bearer {token}", url],
                         capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk got {errors.group(1)} error responses")
    p99 = re.search(r"99%\s+(\S+)", out)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return parse_wrk_rate(out), p99.group(1) if p99 else "?", cpu


async def measure(workers: int, seconds: int, clients: int, creates: int) -> dict[str, float | str]:
    extra = ["--disable-controllers", "--disable-scheduler"]
    if workers:  # 0: the server's default
        extra += ["--api-workers", str(workers)]
    srv = ServerProcess(extra_args=extra)
    srv.start(60)
    pid = srv.proc.pid  # type: ignore[union-attr]
    result: dict[str, float | str] = {}
    try:
        await asyncio.sleep(2.0)  # workers finish their start-up
        token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
        async with Client(srv) as c:
            await ensure_ns(c, "bench")
            await bench_creates(c, "bench", 1, 1)
            path = "/api/v1/namespaces/bench/configmaps/cm-1-0"
            if shutil.which("wrk"):
                wrk_gets(srv.url + path, token, 2, clients)  # warm every process's connections
                pids = process_tree(pid)
                cpu0, t0 = cpu_seconds(pids), time.monotonic()
                rate, p99, wrk_cpu = wrk_gets(srv.url + path, token, seconds, clients)
                elapsed = time.monotonic() - t0
                result["wrk GET/s"] = rate
                result["wrk GET p99"] = p99
                result["server CPU (cores)"] = (cpu_seconds(pids) - cpu0) / elapsed
                result["wrk CPU (cores)"] = wrk_cpu / elapsed
                # Robust to other load on the machine: what one GET costs the server.
                result["server CPU us/GET"] = float(result["server CPU (cores)"]) / rate * 1e6
            pids = process_tree(pid)
            cpu0, t0 = cpu_seconds(pids), time.monotonic()
            result["aiohttp GET/s"] = await bench_gets(c, path, float(seconds), clients)
            result["server CPU, aiohttp run"] = (cpu_seconds(pids) - cpu0) / (time.monotonic() - t0)
        # A fresh client: each create may land on any process of the server.
        async with Client(srv) as c:
            await ensure_ns(c, "seq")
            result["sequential creates/s"] = await bench_creates(c, "seq", creates, 1)
    finally:
        srv.cleanup()
    return result


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=2, help="Runs of each setting, interleaved (medians reported).")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--creates", type=int, default=1000)
    args = ap.parse_args()
    with open("/proc/loadavg") as f:
        print(f"load average before: {f.read().split()[:3]}")
    runs: dict[int, list[dict[str, float | str]]] = {n: [] for n in args.workers}
    for _ in range(args.rounds):
        for n in args.workers:
            r = await measure(n, args.seconds, args.clients, args.creates)
            runs[n].append(r)
            print(f"--api-workers {n}: " + ", ".join(
                f"{k} {v:.2f}" if isinstance(v, float) and v < 10 else f"{k} {v:.0f}" if isinstance(v, float)
                else f"{k} {v}" for k, v in r.items()), flush=True)
    with open("/proc/loadavg") as f:
        print(f"load average after: {f.read().split()[:3]}")
    keys = ("wrk GET/s", "server CPU (cores)", "server CPU us/GET", "wrk CPU (cores)", "aiohttp GET/s", "sequential creates/s")
    medians = {n: {k: statistics.median(float(r[k]) for r in rs if k in r) for k in keys if any(k in r for r in rs)}
               for n, rs in runs.items()}
    for n, m in medians.items():
        print(f"median --api-workers {n}: " + ", ".join(f"{k} {v:.2f}" if v < 10 else f"{k} {v:.0f}"
                                                     for k, v in m.items()))
    base = medians.get(1)
    for n, m in medians.items():
        if base is None or n == 1:
            continue
        for k in ("wrk GET/s", "aiohttp GET/s", "sequential creates/s"):
            if k in m and k in base:
                print(f"{k}: {n} workers / 1 = {m[k] / base[k]:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
