"""Admission webhook latency benchmark: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/webhook_bench.py [--creates 500] [--rounds 3]

Starts a real `kyb server` and the test webhook server (kybernetes.testing.webhook_server,
HTTPS with a CA made here) as a local process on this host's first non-loopback address
(the server refuses to dial loopback for a webhook, as for any address a client names),
then times ConfigMap creates one at a time (no concurrency: latency, not throughput)
in three setups, alternating, `--rounds` times: no webhook; one validating webhook
(`/allow`, allows without a word); one mutating webhook (`/mutate`, a JSON patch adding
a label). Prints p50/p99 per setup and the latency each webhook adds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, configmap  # noqa: E402

from kybernetes.testing.cluster import ServerProcess, free_port  # noqa: E402
from kybernetes.testing.webhook_server import write_tls  # noqa: E402

NS = "default"
ADMISSION = "/apis/admissionregistration.k8s.io/v1"


def host_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # no packet is sent: the route picks the source address
        return str(s.getsockname()[0])


def configuration(mutating: bool, url: str, ca: bytes) -> dict:
    hook = {"name": "bench.webhook.kyb.test", "sideEffects": "None", "admissionReviewVersions": ["v1"],
            "clientConfig": {"url": url, "caBundle": base64.b64encode(ca).decode()},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                       "resources": ["configmaps"]}]}
    kind = "MutatingWebhookConfiguration" if mutating else "ValidatingWebhookConfiguration"
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": "bench"},
            "webhooks": [hook]}


async def timed_creates(c: Client, prefix: str, n: int) -> list[float]:
    assert c.session is not None
    took: list[float] = []
    for i in range(n):
        t = time.perf_counter()
        status = await c.post(f"/api/v1/namespaces/{NS}/configmaps", configmap(f"{prefix}-{i}", i))
        took.append(time.perf_counter() - t)
        if status != 201:
            raise RuntimeError(f"create answered {status}")
    return took


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def run(server: ServerProcess, url: str, ca: bytes, creates: int, rounds: int) -> None:
    setups = {"none": None, "validating": configuration(False, url + "/allow", ca),
              "mutating": configuration(True, url + "/mutate", ca)}
    results: dict[str, list[float]] = {k: [] for k in setups}
    async with Client(server) as c:
        assert c.session is not None
        await timed_creates(c, "warm", 50)
        for r in range(rounds):
            for name, config in setups.items():
                if config is not None:
                    plural = config["kind"].lower() + "s"
                    await c.post(f"{ADMISSION}/{plural}", config)
                    await timed_creates(c, f"warm-{name}-{r}", 20)  # the first call opens the connection
                results[name] += await timed_creates(c, f"{name}-{r}", creates)
                if config is not None:
                    async with c.session.delete(f"{server.url}{ADMISSION}/{plural}/bench") as resp:
                        await resp.read()
                await asyncio.sleep(0.2)
    base50, base99 = pct(results["none"], 0.5), pct(results["none"], 0.99)
    for name, took in results.items():
        p50, p99 = pct(took, 0.5), pct(took, 0.99)
        extra = "" if name == "none" else f"  added p50 {p50 - base50:+.2f} ms, p99 {p99 - base99:+.2f} ms"
        print(f"{name:11s} creates={len(took)} p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
              f"mean {statistics.mean(took) * 1000:.2f} ms{extra}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--creates", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="kyb-webhook-bench-")
    address = host_address()
    ca, cert, key = write_tls(tmp, ["webhook.bench"], (address,))
    port = free_port()
    hook = subprocess.Popen([sys.executable, "-m", "kybernetes.testing.webhook_server", "--cert", cert, "--key", key,
                             "--host", address, "--port", str(port)], stdout=subprocess.DEVNULL)
    server = ServerProcess()
    try:
        server.start()
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection((address, port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        asyncio.run(run(server, f"https://{address}:{port}", ca, args.creates, args.rounds))
        print("load average:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        hook.terminate()
        hook.wait()
        server.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
