"""Secrets at rest (issue 15): what encryption costs a Secret create and GET. Run by hand:

    .venv/bin/python benchmarks/encryption_bench.py [--rounds 5] [--secrets 300] [--clients 8]

Starts two real `kyb server`s (API only, SQLite with fsync): one with the default
configuration (Secrets under AES-CBC, a key generated in the data dir) and one whose
configuration is identity only (plain text). Rounds alternate between them; each
creates `--secrets` Secrets (1 KiB of data each) from `--clients` concurrent HTTPS
clients, then GETs each of them. Prints the median creates/s and GETs/s of each
server, and the envelope's own cost per 1 KiB object (encrypt, decrypt) per provider.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import ssl
import statistics
import sys
import tempfile
import time
import timeit

import aiohttp
import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.storage.encryption import config_from_dict  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

API_ONLY = ["--disable-controllers", "--disable-scheduler"]
PAYLOAD = base64.b64encode(os.urandom(768)).decode()  # 1 KiB of data


def identity_config(path: str) -> str:
    with open(path, "w") as f:
        f.write("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the server process: steadier than wall-clock rates when other
    work shares the two cores."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_round(srv: ServerProcess, tag: str, n: int, clients: int) -> tuple[float, float, float]:
    token = open(os.path.join(srv.data_dir, "pki", "admin.token")).read().strip()
    ctx = ssl.create_default_context(cafile=os.path.join(srv.data_dir, "pki", "ca.crt"))
    base = f"{srv.url}/api/v1/namespaces/default/secrets"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    names = [f"{tag}-{i}" for i in range(n)]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, limit=clients),
                                     headers=headers) as session:
        async def create(name: str) -> None:
            body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "data": {"k": PAYLOAD}}
            async with session.post(base, data=orjson.dumps(body)) as r:
                await r.read()
                assert r.status == 201, r.status

        async def get(name: str) -> None:
            async with session.get(f"{base}/{name}") as r:
                await r.read()
                assert r.status == 200, r.status

        async def run(fn, items: list[str]) -> float:
            queue = list(reversed(items))

            async def worker() -> None:
                while queue:
                    await fn(queue.pop())

            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(clients)))
            return len(items) / (time.perf_counter() - t0)

        await get_warm(session, base)
        assert srv.proc is not None
        cpu0 = cpu_seconds(srv.proc.pid)
        creates = await run(create, names)
        cpu = (cpu_seconds(srv.proc.pid) - cpu0) / n
        return creates, await run(get, names), cpu * 1e6


async def get_warm(session: aiohttp.ClientSession, base: str) -> None:
    async with session.get(base + "?limit=1") as r:
        await r.read()


def envelope_costs() -> dict[str, tuple[float, float]]:
    obj = orjson.dumps({"metadata": {"name": "s", "namespace": "default"}, "data": {"k": PAYLOAD}})
    key = "/registry/core/secrets/default/s"
    out = {}
    for provider in ("aescbc", "aesgcm", "secretbox"):
        t = config_from_dict({"apiVersion": "apiserver.config.k8s.io/v1", "kind": "EncryptionConfiguration",
                              "resources": [{"resources": ["secrets"], "providers": [{provider: {"keys": [
                                  {"name": "k", "secret": base64.b64encode(os.urandom(32)).decode()}]}}]}]}
                             ).for_key(key)
        assert t is not None
        stored = t.to_storage(key, obj)
        n = 20000
        enc = min(timeit.repeat(lambda t=t: t.to_storage(key, obj), number=n, repeat=3)) / n
        dec = min(timeit.repeat(lambda t=t, s=stored: t.from_storage(key, s), number=n, repeat=3)) / n
        out[provider] = (enc * 1e6, dec * 1e6)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--secrets", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="kyb-encbench-")
    servers = {
        "aescbc (default)": ServerProcess(extra_args=API_ONLY),
        "identity (plain)": ServerProcess(extra_args=[*API_ONLY, "--encryption-provider-config",
                                                      identity_config(os.path.join(tmp, "identity.yaml"))]),
    }
    results: dict[str, list[tuple[float, float, float]]] = {k: [] for k in servers}
    try:
        for srv in servers.values():
            srv.start()
        for r in range(args.rounds):
            order = list(servers.items()) if r % 2 == 0 else list(reversed(servers.items()))
            for label, srv in order:
                results[label].append(asyncio.run(one_round(srv, f"r{r}", args.secrets, args.clients)))
    finally:
        for srv in servers.values():
            srv.cleanup()
        os.remove(os.path.join(tmp, "identity.yaml"))
        os.rmdir(tmp)
    print(f"{args.secrets} Secrets (1 KiB data) per round, {args.clients} clients, {args.rounds} rounds, "
          f"median of rounds")
    print(f"{'configuration':<18} {'creates/s':>10} {'GETs/s':>10} {'server CPU µs/create':>21}")
    for label, rows in results.items():
        print(f"{label:<18} {statistics.median(r[0] for r in rows):>10.0f} {statistics.median(r[1] for r in rows):>10.0f}"
              f" {statistics.median(r[2] for r in rows):>21.0f}")
    print("envelope per 1 KiB object (µs): provider  encrypt  decrypt")
    for provider, (e, d) in envelope_costs().items():
        print(f"  {provider:<10} {e:7.1f}  {d:7.1f}")


if __name__ == "__main__":
    main()
