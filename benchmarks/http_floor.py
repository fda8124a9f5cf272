"""The floor under a create: an HTTPS POST on this machine with nothing of kybernetes in it.

    .venv/bin/python benchmarks/http_floor.py [--requests 3000] [--rounds 3]

Serves POSTs from a bare aiohttp application in a subprocess (uvloop, TLS with the
cluster PKI's server certificate, as `kyb server`) and sends them one at a time
from this process with the client `api_bench.py` uses. Each handler decodes the
JSON body and answers 201 with a ConfigMap-sized body; the variants add what a
create's commit costs:

* `bare`: no storage at all;
* `sqlite-inline`: one INSERT + COMMIT (WAL, synchronous=FULL: an fsync per
  commit) on the event-loop thread;
* `sqlite-thread`: the same on a writer thread: the request waits on a future that
  the writer resolves with `call_soon_threadsafe` (two thread hand-offs, as the
  SQLite store does).

Prints requests/s and the server's CPU per request, split by thread, for each.
Then GETs of a fixed ~0.7 KiB body with 32 clients in flight (`get`): the server
CPU an aiohttp GET costs before any of kybernetes' own work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import configmap  # noqa: E402
from create_profile import self_cpu, thread_cpu  # noqa: E402

from kybernetes.testing.cluster import free_port  # noqa: E402

_SERVER = r'''
import asyncio, os, queue, sqlite3, sys, threading
import orjson, uvloop
from aiohttp import web
from kybernetes.apiserver import pki

data_dir, port = sys.argv[1], int(sys.argv[2])
p = pki.ensure_pki(data_dir, ["127.0.0.1"])
db = sqlite3.connect(os.path.join(data_dir, "floor.db"), isolation_level=None, check_same_thread=False)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("CREATE TABLE IF NOT EXISTS kv (id INTEGER PRIMARY KEY, name TEXT, value BLOB)")
db.execute("CREATE INDEX IF NOT EXISTS kv_name ON kv (name, id)")
q = queue.SimpleQueue()
rev = 0


def commit(name, value):
    global rev
    rev += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("SELECT id FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1", (name,)).fetchone()
    db.execute("INSERT INTO kv (id, name, value) VALUES (?, ?, ?)", (rev, name, value))
    db.execute("COMMIT")
    return rev


def writer(loop):
    while True:
        fut, name, value = q.get()
        r = commit(name, value)
        loop.call_soon_threadsafe(fut.set_result, r)


async def handle(request):
    body = orjson.loads(await request.read())
    mode = request.match_info["mode"]
    meta = body["metadata"]
    value = orjson.dumps(body)
    if mode == "sqlite-inline":
        commit(meta["name"], value)
    elif mode == "sqlite-thread":
        fut = asyncio.get_running_loop().create_future()
        q.put((fut, meta["name"], value))
        await fut
    meta["uid"] = "0" * 36
    meta["resourceVersion"] = "1"
    meta["managedFields"] = [{"manager": "python", "operation": "Update", "apiVersion": "v1",
                              "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {}}}]
    return web.Response(body=orjson.dumps(body), status=201, content_type="application/json")


_BODY = orjson.dumps({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "one"}, "data": {"payload": "x" * 500}})


async def get(request):
    return web.Response(body=_BODY, content_type="application/json")


async def main():
    loop = asyncio.get_running_loop()
    threading.Thread(target=writer, args=(loop,), daemon=True).start()
    app = web.Application()
    app.router.add_post("/{mode}", handle)
    app.router.add_get("/get", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=pki.server_ssl_context(p)).start()
    print("ready", flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
'''


async def run(args: argparse.Namespace) -> None:
    import aiohttp
    import orjson
    from api_bench import Client

    data = tempfile.mkdtemp(prefix="kyb-floor-")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, data, str(port)], stdout=subprocess.PIPE,
                            cwd=os.path.join(os.path.dirname(__file__), ".."))
    try:
        assert proc.stdout is not None
        proc.stdout.readline()

        class _Srv:
            data_dir = data
            url = f"https://127.0.0.1:{port}"

        with open(os.path.join(data, "pki", "admin.token"), "w") as f:
            f.write("unused")
        async with Client(_Srv()) as c:  # type: ignore[arg-type]
            assert isinstance(c.session, aiohttp.ClientSession)
            for mode in ("bare", "sqlite-inline", "sqlite-thread"):
                for r in range(args.rounds + 1):
                    n = args.requests if r else 300
                    (m0, o0), c0, t0 = thread_cpu(proc.pid), self_cpu(), time.perf_counter()
                    for i in range(n):
                        async with c.session.post(f"{c.base}/{mode}",
                                                  data=orjson.dumps(configmap(f"{mode}-{r}-{i}", i))) as resp:
                            await resp.read()
                            assert resp.status == 201
                    wall = time.perf_counter() - t0
                    m1, o1 = thread_cpu(proc.pid)
                    if r:
                        print(f"{mode}: {n / wall:.0f} requests/s ({wall * 1000 / n:.3f} ms each); server CPU "
                              f"{(m1 - m0) * 1000 / n:.3f} ms event loop + {(o1 - o0) * 1000 / n:.3f} ms other "
                              f"threads, client CPU {(self_cpu() - c0) * 1000 / n:.3f} ms")
            for r in range(args.rounds + 1):
                done = 0
                stop = time.perf_counter() + (5.0 if r else 1.0)

                async def worker(stop: float = stop) -> None:
                    nonlocal done
                    assert c.session is not None
                    while time.perf_counter() < stop:
                        async with c.session.get(f"{c.base}/get") as resp:
                            await resp.read()
                        done += 1

                (m0, o0), c0, t0 = thread_cpu(proc.pid), self_cpu(), time.perf_counter()
                await asyncio.gather(*(worker() for _ in range(32)))
                wall = time.perf_counter() - t0
                m1, _ = thread_cpu(proc.pid)
                if r:
                    print(f"get (32 clients): {done / wall:.0f} requests/s; server CPU {(m1 - m0) * 1000 / done:.3f} ms, "
                          f"client CPU {(self_cpu() - c0) * 1000 / done:.3f} ms per GET")
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
