"""Protobuf vs JSON on the wire: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/protobuf_bench.py [--creates 1000] [--pods 10000]

Starts a real `kyb server` (SQLite, fsync on; no controllers or scheduler, so only the
requests measured touch the objects) and measures, as a Go client would talk to it:

- creates/s of a realistic Pod (the wire-1.28 sample) with a protobuf body and
  `Accept: application/vnd.kubernetes.protobuf,application/json`, against the same Pods
  in JSON; sequential (latency median and p99) and 8 concurrent clients;
- GET/s of one Pod in each encoding (1 client: median and p99; 8 clients: rate);
- LIST of 10,000 Pods in each encoding: time (first protobuf LIST, which encodes every
  object once, separately) and bytes;
- first, in process: decoding a request body (`codec.decode_object`, what a create
  pays) of the sampled Pod and of the Pod `kubectl run web --image=nginx` sends, in each
  encoding, and encoding the sampled Pod's protobuf reply.

Runs alternate between the encodings so background load on the machine hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import platform
import ssl
import statistics
import sys
import time
import timeit
from typing import Any

import aiohttp
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import pct, server_cpu  # noqa: E402

from kybernetes.api import protobuf as pb  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

PROTO = "application/vnd.kubernetes.protobuf"
GO_ACCEPT = f"{PROTO},application/json"
SAMPLE = pathlib.Path("/work/shared/compat/samples/wire-1.28/pod.json")


def pod_template() -> dict[str, Any]:
    """The sampled Pod as a client sends it (server-set fields removed)."""
    if SAMPLE.exists():
        pod = json.loads(SAMPLE.read_text())
    else:  # a smaller stand-in when the samples are not on this machine
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"labels": {"app": "web"}},
               "spec": {"containers": [{"name": "web", "image": "busybox:1.35", "command": ["sh", "-c", "sleep 1d"],
                                        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}}
    pod.pop("status", None)
    for key in ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "namespace"):
        pod["metadata"].pop(key, None)
    pod["spec"].pop("nodeName", None)
    return pod


def bodies(template: dict[str, Any], prefix: str, n: int, protobuf: bool) -> list[bytes]:
    out = []
    for i in range(n):
        pod = json.loads(json.dumps(template))
        pod["metadata"]["name"] = f"{prefix}-{i}"
        out.append(pb.encode_k8s_protobuf(pod) if protobuf else orjson.dumps(pod))
    return out


def kubectl_run_pod() -> dict[str, Any]:
    """The Pod `kubectl run web --image=nginx` sends."""
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "creationTimestamp": None, "labels": {"run": "web"}},
            "spec": {"containers": [{"name": "web", "image": "nginx", "resources": {}}],
                     "restartPolicy": "Always", "dnsPolicy": "ClusterFirst"}, "status": {}}


def in_process(template: dict[str, Any]) -> None:
    """Microseconds per body decode and per reply encode, best of 7 runs."""
    from kybernetes.apiserver import codec

    def us(fn: Any, n: int = 2000) -> float:
        return min(timeit.repeat(fn, number=n, repeat=7)) / n * 1e6

    print("in process, best of 7 (us per call):")
    for name, pod in (("sampled Pod", template), ("kubectl run Pod", kubectl_run_pod())):
        as_json, as_pb = orjson.dumps(pod), pb.encode_k8s_protobuf(pod)
        js = us(lambda b=as_json: codec.decode_object(b, "application/json", "Pod", []))
        pbv = us(lambda b=as_pb: codec.decode_object(b, PROTO, "Pod", []))
        print(line(f"decode body, {name} ({len(as_json)} / {len(as_pb)} B)", js, pbv, "us", False))
    print(f"  encode the sampled Pod's protobuf message: {us(lambda: pb.encode_object_message(template)):.1f} us")


class Client:
    def __init__(self, server: ServerProcess) -> None:
        pki = os.path.join(server.data_dir, "pki")
        self.ssl = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        self.ssl.load_cert_chain(os.path.join(pki, "admin.crt"), os.path.join(pki, "admin.key"))
        self.base = server.url
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Client:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ssl, limit=100),
                                             timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    async def request(self, method: str, path: str, body: bytes | None, protobuf: bool) -> tuple[int, bytes]:
        assert self.session is not None
        headers = {"Accept": GO_ACCEPT if protobuf else "application/json",
                   "Content-Type": PROTO if protobuf else "application/json"}
        async with self.session.request(method, self.base + path, data=body, headers=headers) as r:
            data = await r.read()
            if protobuf and r.status < 300 and r.headers.get("Content-Type") != PROTO:
                raise RuntimeError(f"{method} {path}: answered {r.headers.get('Content-Type')}, not protobuf")
            return r.status, data


async def creates(c: Client, ns: str, payloads: list[bytes], protobuf: bool,
                  concurrency: int) -> tuple[float, list[float]]:
    path = f"/api/v1/namespaces/{ns}/pods"
    work = iter(payloads)
    latencies: list[float] = []

    async def worker() -> None:
        for body in work:
            t0 = time.perf_counter()
            status, data = await c.request("POST", path, body, protobuf)
            latencies.append(time.perf_counter() - t0)
            if status != 201:
                raise RuntimeError(f"create: {status} {data[:300]!r}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(payloads) / (time.perf_counter() - t0), latencies


async def gets(c: Client, path: str, protobuf: bool, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, _ = await c.request("GET", path, None, protobuf)
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                raise RuntimeError(f"GET {path}: {status}")

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies) / (time.perf_counter() - t0), latencies


def line(name: str, js: float, pbv: float, unit: str, higher_better: bool) -> str:
    ratio = pbv / js if js else float("nan")
    better = "protobuf better" if (ratio > 1) == higher_better and ratio != 1 else "JSON better"
    return f"  {name:<44} JSON {js:>10.2f} {unit:<6} protobuf {pbv:>10.2f} {unit:<6} ratio pb/JSON {ratio:.2f} ({better})"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--creates", type=int, default=1000, help="Pods created per encoding and pattern")
    ap.add_argument("--pods", type=int, default=10000, help="Pods in the listed namespace")
    ap.add_argument("--list-runs", type=int, default=5)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}")
    in_process(pod_template())
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler"])
    srv.start()
    pid = srv.proc.pid  # type: ignore[union-attr]
    template = pod_template()
    try:
        async with Client(srv) as c:
            for ns in ("seq", "par", "big"):
                await c.request("POST", "/api/v1/namespaces", orjson.dumps({"metadata": {"name": ns}}), False)
            # Warm up both paths (encoder compilation, connections).
            for protobuf in (False, True):
                await creates(c, "seq", bodies(template, f"warm{int(protobuf)}", 20, protobuf), protobuf, 1)
            print(f"Pod: {len(bodies(template, 'x', 1, False)[0])} bytes JSON, "
                  f"{len(bodies(template, 'x', 1, True)[0])} bytes protobuf")

            results: dict[str, dict[bool, Any]] = {}
            half = args.creates // 2
            for phase in range(2):  # JSON, protobuf, JSON, protobuf: background load hits both
                for protobuf in (False, True):
                    tag = f"{phase}{int(protobuf)}"
                    cpu0 = server_cpu(pid)
                    rate, lat = await creates(c, "seq", bodies(template, f"s{tag}", half, protobuf), protobuf, 1)
                    cpu = (server_cpu(pid) - cpu0) / half
                    r = results.setdefault("seq", {}).setdefault(protobuf, {"rate": [], "lat": [], "cpu": []})
                    r["rate"].append(rate), r["lat"].extend(lat), r["cpu"].append(cpu)
                    rate, lat = await creates(c, "par", bodies(template, f"p{tag}", half, protobuf), protobuf, 8)
                    r = results.setdefault("par", {}).setdefault(protobuf, {"rate": [], "lat": []})
                    r["rate"].append(rate), r["lat"].extend(lat)
            print(f"creates of a Pod ({args.creates} per encoding and pattern):")
            seq, par = results["seq"], results["par"]
            print(line("sequential creates/s", statistics.mean(seq[False]["rate"]),
                       statistics.mean(seq[True]["rate"]), "/s", True))
            for p in (50, 99):
                print(line(f"sequential create latency p{p}", pct(seq[False]["lat"], p) * 1000,
                           pct(seq[True]["lat"], p) * 1000, "ms", False))
            print(line("server CPU per create", statistics.mean(seq[False]["cpu"]) * 1000,
                       statistics.mean(seq[True]["cpu"]) * 1000, "ms", False))
            print(line("8 clients creates/s", statistics.mean(par[False]["rate"]),
                       statistics.mean(par[True]["rate"]), "/s", True))
            print(line("8 clients create latency p99", pct(par[False]["lat"], 99) * 1000,
                       pct(par[True]["lat"], 99) * 1000, "ms", False))

            one = "/api/v1/namespaces/seq/pods/s00-0"
            g: dict[str, dict[bool, Any]] = {"one": {False: [], True: []}, "eight": {False: [], True: []},
                                             "lat": {False: [], True: []}, "cpu": {False: [], True: []}}
            for _ in range(3):
                for protobuf in (False, True):
                    rate, lat = await gets(c, one, protobuf, 2.0, 1)
                    g["one"][protobuf].append(rate)
                    g["lat"][protobuf].extend(lat)
                    cpu0 = server_cpu(pid)
                    rate, lat = await gets(c, one, protobuf, 2.0, 8)
                    g["cpu"][protobuf].append((server_cpu(pid) - cpu0) / len(lat))
                    g["eight"][protobuf].append(rate)
            print("GET of one Pod:")
            print(line("GET/s, 1 client", statistics.mean(g["one"][False]), statistics.mean(g["one"][True]),
                       "/s", True))
            for p in (50, 99):
                print(line(f"GET latency p{p}, 1 client", pct(g["lat"][False], p) * 1000,
                           pct(g["lat"][True], p) * 1000, "ms", False))
            print(line("GET/s, 8 clients", statistics.mean(g["eight"][False]), statistics.mean(g["eight"][True]),
                       "/s", True))
            print(line("server CPU per GET, 8 clients", statistics.mean(g["cpu"][False]) * 1e6,
                       statistics.mean(g["cpu"][True]) * 1e6, "us", False))

            print(f"filling namespace 'big' with {args.pods} Pods ...", flush=True)
            big = bodies(template, "big", args.pods, False)
            await creates(c, "big", big, False, 16)
            del big
            path = "/api/v1/namespaces/big/pods"
            t0 = time.perf_counter()
            status, data = await c.request("GET", path, None, True)
            first = time.perf_counter() - t0
            assert status == 200 and len(pb.decode_k8s_protobuf(data)["items"]) == args.pods
            times: dict[bool, list[float]] = {False: [], True: []}
            size: dict[bool, int] = {}
            for _ in range(args.list_runs):
                for protobuf in (False, True):
                    t0 = time.perf_counter()
                    status, data = await c.request("GET", path, None, protobuf)
                    times[protobuf].append(time.perf_counter() - t0)
                    size[protobuf] = len(data)
            print(f"LIST of {args.pods} Pods ({args.list_runs} runs each):")
            print(f"  first protobuf LIST (encodes every Pod once): {first * 1000:.0f} ms")
            for p in (50, 99):
                print(line(f"LIST time p{p}", pct(times[False], p) * 1000, pct(times[True], p) * 1000, "ms", False))
            print(line("LIST bytes", size[False] / 1e6, size[True] / 1e6, "MB", False))
    finally:
        srv.cleanup()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for row in f:
                if row.startswith("model name"):
                    return row.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    asyncio.run(main())
