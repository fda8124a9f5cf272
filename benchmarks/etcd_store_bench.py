"""The etcd client path alone: `EtcdStore.create` against a throwaway etcd, no API server.
Run by hand; prints figures for benchmarks/README.md (issue 17, "kyb server on etcd vs SQLite").

    flock /tmp/kyb-bench.lock .venv/bin/python benchmarks/etcd_store_bench.py [--creates 4000] [--tls | --unix] [--no-watch]

`--unix` reaches etcd over a unix socket (as a server reaches its embedded member), `--tls` over
TCP with client certificates, neither over plain TCP. etcd inherits the environment: set
GOMAXPROCS=1 for the embedded member's setting on 2 cores.

Creates 400-byte values from 16 tasks, then from 1, while one watch of the whole prefix is
consumed (as the API server's watch cache does, so each create also waits for its event to
reach that consumer); `--no-watch` watches an unrelated prefix instead. Prints creates/s and
the CPU per create of this process (gRPC's threads included) and of the etcd member. For
comparison it then times bare `KV.Txn` calls on a grpc.aio stub, without EtcdStore around them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

import uvloop

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.storage.etcd import EtcdStore  # noqa: E402
from kybernetes.storage.etcdpb import rpc_pb2  # noqa: E402
from kybernetes.testing.etcd import EtcdProcess  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def create_txn(key: bytes) -> rpc_pb2.TxnRequest:
    return rpc_pb2.TxnRequest(
        compare=[rpc_pb2.Compare(key=key, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                                 create_revision=0)],
        success=[rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=b"x" * 400))])


async def timed(label: str, n: int, concurrency: int, one: object, etcd_pid: int) -> None:
    it = iter(range(n))

    async def worker() -> None:
        for i in it:
            await one(i)  # type: ignore[operator]

    c0, e0, t0 = time.process_time(), cpu_of(etcd_pid), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    print(f"  {label:28s} {concurrency:2d} clients: {n / dt:6.0f}/s   client {(time.process_time() - c0) / n * 1000:.3f}"
          f" ms CPU/create   etcd {(cpu_of(etcd_pid) - e0) / n * 1000:.3f} ms CPU/create", flush=True)


async def run(etcd: EtcdProcess, creates: int, watch_all: bool) -> None:
    assert etcd.proc is not None
    tls = etcd.tls
    kw = dict(ca_file=tls.ca_file, cert_file=tls.client_cert, key_file=tls.client_key) if tls else {}
    store = EtcdStore([etcd.socket_url if etcd.unix_socket else etcd.url], prefix="/registry/", **kw)
    await store.start()
    watch = store.watch("" if watch_all else "elsewhere/", store.current_revision())

    async def consume() -> None:
        async for _ in watch:
            pass

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.3)
    try:
        for round_, conc in enumerate((16, 16, 1)):  # the first is a warm-up
            n = creates if conc == 16 else creates // 4

            async def create(i: int, p: str = f"r{round_}") -> None:
                await store.create(f"{p}/{i}", b"x" * 400)

            await timed("EtcdStore.create" + (" (warm-up)" if round_ == 0 else ""), n, conc, create, etcd.proc.pid)
        for round_, conc in enumerate((16, 1)):
            n = creates if conc == 16 else creates // 4

            async def bare(i: int, p: str = f"/bare{round_}/") -> None:
                await store.rpc(lambda s: s.kv.Txn(create_txn(f"{p}{i}".encode()), timeout=store.call_timeout))

            await timed("bare KV.Txn via grpc.aio", n, conc, bare, etcd.proc.pid)
    finally:
        consumer.cancel()
        await watch.aclose()
        await store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--creates", type=int, default=4000)
    how = ap.add_mutually_exclusive_group()
    how.add_argument("--tls", action="store_true", help="TCP with TLS and client certificates")
    how.add_argument("--unix", action="store_true", help="a unix socket, as a server reaches its own member")
    ap.add_argument("--no-watch", action="store_true", help="no watch covers the keys written (no write waits)")
    args = ap.parse_args()
    load = os.getloadavg()[0]
    with EtcdProcess(tls=args.tls, unix_socket=args.unix) as etcd:
        uvloop.run(run(etcd, args.creates, not args.no_watch))
    print(f"load average 1 min: {load:.2f} before, {os.getloadavg()[0]:.2f} after; {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
