"""Cluster DNS throughput and latency over UDP. Run by hand:

    .venv/bin/python benchmarks/dns_bench.py [--services 1000] [--seconds 10] [--in-flight 1 16 128]
                                             [--rate 5000] [--cache-size 0]

A `DnsServer` in a subprocess (its own core, uvloop) serves an index fed directly with
Services and EndpointSlices (no API server): 90% ClusterIP Services with two named
ports, 10% headless with 5 ready endpoints each. The client (this process, uvloop)
keeps a fixed number of queries in flight, sending the next as each answer arrives,
and measures every query from send to answer; then it sends at a fixed rate
(`--rate`, open loop: latency is not hidden behind the client's own pacing). `--cache-size 0`
turns the server's reply cache off, so every query is parsed, looked up and rendered. The mix is what pods ask: A of a
Service (60%), AAAA (20%, an empty NOERROR for these IPv4 Services), SRV of a named
port (10%), and names that do not exist (10%, the search-path misses).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dns.message  # noqa: E402
import uvloop  # noqa: E402

from kybernetes.dns.records import ClusterRecords  # noqa: E402
from kybernetes.dns.server import DnsServer  # noqa: E402

NAMESPACES = 20


def tune_gc() -> None:
    # As `kyb` does for its processes (kybernetes/cli/main.py): the objects made at start-up
    # are frozen out of the collector, and young collections run less often. Otherwise a
    # full collection walking the index is a pause of tens of milliseconds in the tail.
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)


def build_records(services: int) -> tuple[ClusterRecords, list[tuple[str, str, bool]]]:
    """The index, and (namespace, name, headless) of every Service in it."""
    records = ClusterRecords()
    made = []
    for i in range(services):
        ns, name = f"ns-{i % NAMESPACES}", f"svc-{i}"
        headless = i % 10 == 9
        ports = [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics", "port": 9090, "protocol": "TCP"}]
        spec = {"type": "ClusterIP", "ports": ports}
        if headless:
            spec["clusterIP"] = "None"
        else:
            ip = f"10.96.{i // 250}.{i % 250 + 1}"
            spec.update(clusterIP=ip, clusterIPs=[ip])
        records.upsert_service({"metadata": {"namespace": ns, "name": name}, "spec": spec})
        if headless:
            records.upsert_endpoint_slice({
                "metadata": {"namespace": ns, "name": f"{name}-abcde",
                             "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4",
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                "endpoints": [{"addresses": [f"10.244.{i // 250}.{(i % 250) * 5 % 250 + k}"],
                               "hostname": f"{name}-{k}", "conditions": {"ready": True}} for k in range(5)],
            })
        made.append((ns, name, headless))
    return records, made


def query_mix(made: list[tuple[str, str, bool]], count: int = 4096) -> list[bytes]:
    """`count` query messages (ID 0; the client stamps its own), in the mix above."""
    rng = random.Random(1)
    out = []
    for _ in range(count):
        ns, name, _headless = rng.choice(made)
        roll = rng.random()
        if roll < 0.6:
            q = dns.message.make_query(f"{name}.{ns}.svc.cluster.local", "A")
        elif roll < 0.8:
            q = dns.message.make_query(f"{name}.{ns}.svc.cluster.local", "AAAA")
        elif roll < 0.9:
            q = dns.message.make_query(f"_http._tcp.{name}.{ns}.svc.cluster.local", "SRV")
        else:
            q = dns.message.make_query(f"{name}.{ns}.svc.cluster.local.{ns}.svc.cluster.local", "A")
        q.id = 0
        out.append(q.to_wire())
    return out


# -- server side -----------------------------------------------------------------------------------


async def serve(services: int, cache_size: int) -> None:
    records, _ = build_records(services)
    server = DnsServer(records, "127.0.0.1", 0, upstreams=[], cache_size=cache_size)
    await server.start()
    tune_gc()
    print(server.port, flush=True)
    # Serve until the parent closes our stdin.
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()


# -- client side -----------------------------------------------------------------------------------


class Client(asyncio.DatagramProtocol):
    """Keeps `in_flight` queries outstanding; IDs index the send times."""

    def __init__(self, queries: list[bytes], closed_loop: bool) -> None:
        self.queries = queries
        self.closed_loop = closed_loop
        self.sent = 0
        self.sent_at: list[float] = [0.0] * 65536
        self.latencies: list[float] = []
        self.rcodes: dict[int, int] = {}
        self.next_id = 0
        self.recording = False
        self.transport: asyncio.DatagramTransport | None = None
        self.lost = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self) -> None:
        qid = self.next_id
        self.next_id = (qid + 1) & 0xFFFF
        wire = self.queries[qid % len(self.queries)]
        self.sent_at[qid] = time.perf_counter()
        assert self.transport is not None
        self.transport.sendto(qid.to_bytes(2, "big") + wire[2:])
        if self.recording:
            self.sent += 1

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        now = time.perf_counter()
        qid = int.from_bytes(data[:2], "big")
        if self.recording:
            self.latencies.append(now - self.sent_at[qid])
            rcode = data[3] & 0xF
            self.rcodes[rcode] = self.rcodes.get(rcode, 0) + 1
        if self.closed_loop:
            self.send()

    def error_received(self, exc: Exception) -> None:
        pass


async def measure(port: int, queries: list[bytes], seconds: float, in_flight: int = 0, rate: int = 0) -> None:
    """Closed loop with `in_flight` queries outstanding, or open loop at `rate` per second."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(lambda: Client(queries, closed_loop=not rate),
                                                            remote_addr=("127.0.0.1", port))

    async def pace(until: float) -> None:
        # Sends what the rate owes at each tick; ticks are ~1 ms apart.
        start = time.perf_counter()
        done = 0
        while (now := time.perf_counter()) < until:
            owed = int((now - start) * rate) - done
            for _ in range(owed):
                client.send()
            done += owed
            await asyncio.sleep(0.001)

    try:
        warm_until = time.perf_counter() + 1.0
        if rate:
            await pace(warm_until)
        else:
            for _ in range(in_flight):
                client.send()
            await asyncio.sleep(1.0)
        client.recording = True
        start = time.perf_counter()
        if rate:
            await pace(start + seconds)
        else:
            await asyncio.sleep(seconds)
        elapsed = time.perf_counter() - start
        if rate:
            await asyncio.sleep(0.5)  # the last answers
        client.recording = False
    finally:
        transport.close()
    label = f"rate {rate:6d}/s" if rate else f"in flight {in_flight:4d}"
    lat = sorted(client.latencies)
    if not lat:
        print(f"{label}: no answers")
        return
    qps = len(lat) / elapsed
    p50 = lat[len(lat) // 2] * 1000
    p99 = lat[int(len(lat) * 0.99)] * 1000
    rcodes = ", ".join(f"{dns.rcode.to_text(rc)} {n / len(lat):.0%}" for rc, n in sorted(client.rcodes.items()))
    lost = f"   lost {max(client.sent - len(lat), 0)}" if rate else ""
    print(f"{label}: {qps:8.0f} answers/s   p50 {p50:6.2f} ms   p99 {p99:6.2f} ms{lost}   ({rcodes})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 16, 128])
    parser.add_argument("--rate", type=int, nargs="*", default=[5000], help="open-loop rates (queries/s)")
    parser.add_argument("--cache-size", type=int, default=10_000, help="server reply cache; 0 turns it off")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        uvloop.run(serve(args.services, args.cache_size))
        return
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve", "--services", str(args.services),
                             "--cache-size", str(args.cache_size)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        _, made = build_records(args.services)
        queries = query_mix(made)
        del made
        tune_gc()
        print(f"{args.services} services, {len(queries)} distinct queries, reply cache {args.cache_size or 'off'}, "
              f"server pid {proc.pid} on 127.0.0.1:{port} (udp)")
        for in_flight in args.in_flight:
            uvloop.run(measure(port, queries, args.seconds, in_flight=in_flight))
        for rate in args.rate:
            uvloop.run(measure(port, queries, args.seconds, rate=rate))
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


if __name__ == "__main__":
    main()
