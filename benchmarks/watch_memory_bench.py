"""Watch memory benchmark: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/watch_memory_bench.py [--updates 100000] [--size 1024]

Starts a real `kyb server` (API server only, SQLite with fsync) on a fresh data
dir, opens one watch on ConfigMaps from a raw TLS socket that never reads after
the response headers (a stalled watcher), and one healthy watch that keeps
reading, then writes `--updates` merge patches of `--size`-byte values from 16
concurrent clients. Prints the server's RSS before, at its peak and at the end,
whether the server closed the stalled watch, and how many events the healthy
watch received.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import ssl
import sys
import time

import aiohttp
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.testing.cluster import ServerProcess, rss_mb  # noqa: E402

NS = "wmem"


def open_stalled_watch(srv: ServerProcess, token: str, path: str) -> ssl.SSLSocket:
    """A watch whose client reads the response headers and then nothing more."""
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    raw = socket.create_connection(("127.0.0.1", srv.port))
    # A small receive buffer, so the server's writes block soon, as with a real slow client.
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                 f"Accept: application/json\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise RuntimeError("server closed the watch before answering")
        head += chunk
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"watch refused: {head[:200]!r}")
    return sock


def watch_was_closed(server_port: int, sock: ssl.SSLSocket, timeout: float = 30.0) -> bool:
    """Whether the server closed its end of the stalled watch within `timeout` (read from
    /proc/net/tcp: draining what its kernel still buffers through the small window
    could take minutes)."""
    client_port = sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/net/tcp") as f:
            states = [ln.split()[3] for ln in f.readlines()[1:]
                      if int(ln.split()[1].split(":")[1], 16) == server_port
                      and int(ln.split()[2].split(":")[1], 16) == client_port]
        if "01" not in states:  # no longer ESTABLISHED on the server's side
            return True
        time.sleep(0.2)
    return False


async def healthy_watch(session: aiohttp.ClientSession, url: str, seen: list[int], ready: asyncio.Event) -> None:
    async with session.get(url, params={"watch": "1", "resourceVersion": "0"}) as r:
        ready.set()
        # Chunks, not lines: an event of a large object is longer than aiohttp's line limit.
        async for chunk in r.content.iter_any():
            seen[0] += chunk.count(b"\n")


async def run(srv: ServerProcess, updates: int, size: int, objects: int) -> dict[str, float | int | bool]:
    token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    headers = {"Authorization": f"Bearer {token}"}
    conn = aiohttp.TCPConnector(ssl=ctx, limit=64)
    assert srv.proc is not None
    out: dict[str, float | int | bool] = {}
    async with aiohttp.ClientSession(connector=conn, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None)) as session:
        base = f"{srv.url}/api/v1/namespaces/{NS}/configmaps"
        async with session.post(f"{srv.url}/api/v1/namespaces", json={"metadata": {"name": NS}}) as r:
            assert r.status in (201, 409), await r.text()
        for i in range(objects):
            async with session.post(base, json={"metadata": {"name": f"cm-{i}"}, "data": {"v": ""}}) as r:
                assert r.status == 201, await r.text()
        seen = [0]
        ready = asyncio.Event()
        healthy = asyncio.create_task(healthy_watch(session, base, seen, ready))
        await ready.wait()
        stalled = await asyncio.to_thread(open_stalled_watch, srv, token,
                                          f"/api/v1/namespaces/{NS}/configmaps?watch=1")
        out["rss_before_mb"] = rss_mb(srv.proc.pid)
        peak = out["rss_before_mb"]
        counter = iter(range(updates))
        patch_headers = {"Content-Type": "application/merge-patch+json"}
        started = time.monotonic()

        async def writer() -> None:
            for i in counter:
                body = orjson.dumps({"data": {"v": f"{i:08d}" + "x" * (size - 8)}})
                async with session.patch(f"{base}/cm-{i % objects}", data=body, headers=patch_headers) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"patch: {r.status}")

        async def sampler() -> None:
            nonlocal peak
            while True:
                peak = max(peak, rss_mb(srv.proc.pid))
                await asyncio.sleep(0.2)

        sample = asyncio.create_task(sampler())
        await asyncio.gather(*(writer() for _ in range(16)))
        out["updates_per_s"] = updates / (time.monotonic() - started)
        await asyncio.sleep(2.0)
        sample.cancel()
        out["rss_peak_mb"] = max(peak, rss_mb(srv.proc.pid))
        out["rss_end_mb"] = rss_mb(srv.proc.pid)
        out["stalled_watch_closed"] = await asyncio.to_thread(watch_was_closed, srv.port, stalled)
        stalled.close()
        out["healthy_watch_events"] = seen[0]
        healthy.cancel()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--updates", type=int, default=100_000)
    ap.add_argument("--size", type=int, default=1024, help="bytes of each update's value")
    ap.add_argument("--objects", type=int, default=100)
    args = ap.parse_args()
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler"])
    try:
        srv.start()
        res = asyncio.run(run(srv, args.updates, args.size, args.objects))
    finally:
        srv.cleanup()
    print(f"{args.updates} updates of {args.size} B over {args.objects} ConfigMaps, "
          f"one stalled watcher and one healthy watcher")
    print(f"updates/s: {res['updates_per_s']:.0f}")
    print(f"RSS before: {res['rss_before_mb']:.1f} MB, peak: {res['rss_peak_mb']:.1f} MB, "
          f"end: {res['rss_end_mb']:.1f} MB")
    print(f"stalled watch closed by the server: {res['stalled_watch_closed']}")
    print(f"healthy watch events: {res['healthy_watch_events']}")


if __name__ == "__main__":
    main()
