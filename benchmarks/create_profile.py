"""Where a create's time goes: run by hand, prints figures for benchmarks/README.md.

    .venv/bin/python benchmarks/create_profile.py seq [--creates 2000] [--rounds 3]
    .venv/bin/python benchmarks/create_profile.py gets [--clients 32] [--seconds 5]
    .venv/bin/python benchmarks/create_profile.py stages [--creates 3000] [--no-fsync]
    .venv/bin/python benchmarks/create_profile.py cprofile [--creates 4000] [--what create|get]

`seq` starts a real `kyb server` (API server alone, SQLite with fsync on, HTTPS
with a bearer token, as `api_bench.py`) and sends ConfigMap creates one at a
time. Besides creates/s it reports the CPU time the server process spent per
create (utime + stime from /proc), which stays meaningful when other work
shares the two cores and wall-clock figures do not.

`gets` measures GET/s of one object with many clients the same way.

`stages` runs the API server's write path in this process (no HTTP) and times
each step of `ResourceService.create` by wrapping it: unknown-field checks,
defaults, metadata bookkeeping, validation, managedFields, encoding, the store
commit and the watch cache.

`cprofile` runs the server under cProfile (its event-loop thread, switched on
for the measured requests only) and prints the inclusive time of each stage
per request and the hottest functions. The profiler inflates call-heavy code,
so read shares, not absolute times; `seq` gives the unprofiled CPU per create.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import orjson

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import Client, bench_gets, configmap, ensure_ns  # noqa: E402

from kybernetes.testing.cluster import ProfiledServer, ServerProcess  # noqa: E402

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process's main thread (the event loop), in seconds."""
    with open(f"/proc/{pid}/task/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def thread_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process's main thread, of all its other threads)."""
    main = cpu_seconds(pid)
    return main, process_cpu(pid) - main


def process_cpu(pid: int) -> float:
    """CPU seconds of all threads of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def child_pids(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except OSError:
                continue
    return out


def workers_cpu(pid: int) -> float:
    """CPU seconds of the server's child processes: its API workers (`--api-workers`)."""
    return sum(process_cpu(child) for child in child_pids(pid))


def self_cpu() -> float:
    t = os.times()
    return t.user + t.system


def start_server(env: dict[str, str] | None = None, api_workers: int | None = None) -> ServerProcess:
    workers = ["--api-workers", str(api_workers)] if api_workers else []
    srv = ServerProcess(extra_args=["--disable-controllers", "--disable-scheduler", *workers])
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        srv.start()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return srv


async def sequential(c: Client, pid: int, ns: str, n: int, tag: str) -> tuple[float, float, float, float, float]:
    """(creates/s, server CPU ms per create on its event-loop thread, on its other threads
    (the SQLite writer), in its API worker processes, client CPU ms per create) for `n`
    creates in a row."""
    path = f"/api/v1/namespaces/{ns}/configmaps"
    (m0, o0), w0, c0, t0 = thread_cpu(pid), workers_cpu(pid), self_cpu(), time.perf_counter()
    for i in range(n):
        status = await c.post(path, configmap(f"cm-{tag}-{i}", i))
        if status != 201:
            raise RuntimeError(f"create failed: {status}")
    wall = time.perf_counter() - t0
    m1, o1 = thread_cpu(pid)
    w1 = workers_cpu(pid)
    return (n / wall, (m1 - m0) * 1000 / n, (o1 - o0) * 1000 / n, (w1 - w0) * 1000 / n,
            (self_cpu() - c0) * 1000 / n)


async def gets(c: Client, pid: int, path: str, seconds: float, clients: int) -> tuple[float, float, float]:
    """(GET/s, server CPU ms per GET, client CPU ms per GET)."""
    s0, c0, t0 = process_cpu(pid) + workers_cpu(pid), self_cpu(), time.perf_counter()
    rate = await bench_gets(c, path, seconds, clients)
    n = max(rate * (time.perf_counter() - t0), 1)
    return rate, (process_cpu(pid) + workers_cpu(pid) - s0) * 1000 / n, (self_cpu() - c0) * 1000 / n


async def run_seq(args: argparse.Namespace) -> None:
    srv = start_server(api_workers=args.api_workers)
    pid = srv.proc.pid  # type: ignore[union-attr]
    try:
        async with Client(srv) as c:
            await ensure_ns(c, "seq")
            await sequential(c, pid, "seq", 200, "warm")
            for r in range(args.rounds):
                rate, loop_ms, other_ms, workers_ms, client_ms = await sequential(c, pid, "seq", args.creates,
                                                                                   str(r))
                print(f"round {r}: {rate:.0f} creates/s sequential ({1000 / rate:.3f} ms each); server CPU "
                      f"{loop_ms + other_ms + workers_ms:.3f} ms/create ({loop_ms:.3f} event loop, {other_ms:.3f} "
                      f"writer thread, {workers_ms:.3f} API workers), client CPU {client_ms:.3f} ms/create")
    finally:
        srv.cleanup()


async def run_gets(args: argparse.Namespace) -> None:
    srv = start_server(api_workers=args.api_workers)
    pid = srv.proc.pid  # type: ignore[union-attr]
    try:
        async with Client(srv) as c:
            await ensure_ns(c, "g")
            await c.post("/api/v1/namespaces/g/configmaps", configmap("one", 0))
            path = "/api/v1/namespaces/g/configmaps/one"
            await gets(c, pid, path, 1.0, args.clients)
            for r in range(args.rounds):
                rate, server_ms, client_ms = await gets(c, pid, path, args.seconds, args.clients)
                print(f"round {r}: {rate:.0f} GET/s with {args.clients} clients; server CPU {server_ms:.3f} ms/GET, "
                      f"client CPU {client_ms:.3f} ms/GET")
    finally:
        srv.cleanup()


# -- stages, in process ------------------------------------------------------------------


class StageTimer:
    """Wraps functions so that the time spent in each (inclusive) is summed per stage."""

    def __init__(self) -> None:
        self.total: dict[str, float] = collections.defaultdict(float)
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, attr: str, stage: str) -> None:
        fn = getattr(owner, attr)
        total = self.total

        if asyncio.iscoroutinefunction(fn):
            async def awrapped(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await fn(*a, **kw)
                finally:
                    total[stage] += time.perf_counter() - t0
            setattr(owner, attr, awrapped)
        else:
            def wrapped(*a: Any, **kw: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return fn(*a, **kw)
                finally:
                    total[stage] += time.perf_counter() - t0
            setattr(owner, attr, wrapped)
        self._undo.append((owner, attr, fn))


async def run_stages(args: argparse.Namespace) -> None:
    import gc

    from kybernetes.api import defaults, validation
    from kybernetes.apiserver import codec, resources
    from kybernetes.apiserver.app import ApiServer
    from kybernetes.apiserver.resources import ResourceService, WriteContext
    from kybernetes.storage.sqlite import SQLiteStore

    data = tempfile.mkdtemp(prefix="kyb-stages-")
    # Without fsync the store's commit shows what it costs besides the disk (SQLite, the
    # writer thread's hand-offs), which on a shared disk is hidden in the fsync's noise.
    store = SQLiteStore(os.path.join(data, "state.db"), fsync=not args.no_fsync)
    srv = ApiServer(data, store, port=0, bind="127.0.0.1")
    await srv.start()
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    try:
        info = srv.registry.get("", "v1", "configmaps")
        assert info is not None
        svc = srv.service
        await svc.create(srv.registry.get("", "v1", "namespaces"), None, {"metadata": {"name": "st"}},
                         WriteContext(field_manager="bench"))

        timer = StageTimer()
        timer.wrap(codec, "decode_object", "decode (orjson + depth check)")
        timer.wrap(ResourceService, "check_type_meta", "kind/namespace/metadata checks")
        timer.wrap(ResourceService, "check_metadata", "kind/namespace/metadata checks")
        timer.wrap(ResourceService, "check_namespace_open", "kind/namespace/metadata checks")
        timer.wrap(validation, "type_error_message", "structural: type checks")
        timer.wrap(validation, "unknown_fields", "structural: unknown fields")
        timer.wrap(ResourceService, "prepare_new", "metadata bookkeeping (uid, timestamps)")
        timer.wrap(defaults, "apply_defaults", "defaults")
        timer.wrap(ResourceService, "after_defaults", "defaults")
        timer.wrap(ResourceService, "validate", "validation (semantic)")
        timer.wrap(ResourceService, "_record_fields", "managedFields")
        timer.wrap(resources, "encode_for_store", "encode for store")
        timer.wrap(store, "create", "store commit (queue, SQLite txn + fsync, hand-back)")
        timer.wrap(ResourceService, "_written", "result bytes")
        body_path = time.perf_counter
        n = args.creates
        bodies = [orjson.dumps(configmap(f"cm-{i}", i)) for i in range(n)]
        ctx_proto = {"field_manager": "python-requests"}
        # Warm memos and the allocator before timing.
        for i in range(200):
            obj = codec.decode_object(orjson.dumps(configmap(f"w-{i}", i)), "application/json", "ConfigMap")
            await svc.create(info, "st", obj, WriteContext(**ctx_proto))
        timer.total.clear()
        cpu0, t0 = time.process_time(), body_path()
        for b in bodies:
            obj = codec.decode_object(b, "application/json", "ConfigMap")
            res = await svc.create(info, "st", obj, WriteContext(**ctx_proto))
            assert res.raw
        wall = body_path() - t0
        cpu = time.process_time() - cpu0
        print(f"{n} creates through ResourceService.create (no HTTP): {n / wall:.0f}/s, "
              f"{wall * 1e3 / n:.3f} ms wall and {cpu * 1e3 / n:.3f} ms CPU per create "
              f"(CPU includes the SQLite writer thread)")
        accounted = 0.0
        for stage, secs in sorted(timer.total.items(), key=lambda kv: -kv[1]):
            per = secs * 1e6 / n
            if "structural" not in stage:
                accounted += secs
            print(f"  {per:8.1f} µs  {stage}")
        print(f"  {(wall - accounted) * 1e6 / n:8.1f} µs  rest of create (await hand-offs, dispatch)")
    finally:
        await srv.stop()
        shutil.rmtree(data, ignore_errors=True)


# Stages of a request, as functions whose inclusive (cumulative) time cProfile reports.
# Keys are (file suffix, function name) as pstats records them.
_STAGES = [
    ("whole request in aiohttp's handler", "aiohttp/web_protocol.py", "_handle_request"),
    ("  our middleware (auth, errors) and below", "kybernetes/apiserver/app.py", "_middleware"),
    ("    authentication", "kybernetes/apiserver/app.py", "_authenticate"),
    ("    RestHandler.handle and below", "kybernetes/apiserver/rest.py", "handle"),
    ("      parse_target", "kybernetes/apiserver/rest.py", "parse_target"),
    ("      write_context", "kybernetes/apiserver/rest.py", "write_context"),
    ("      read body", "kybernetes/apiserver/rest.py", "_read_body"),
    ("      decode body", "kybernetes/apiserver/codec.py", "decode_object"),
    ("      json_response", "kybernetes/apiserver/rest.py", "json_response"),
    ("      ResourceService.create", "kybernetes/apiserver/resources.py", "create"),
    ("        kind/namespace checks", "kybernetes/apiserver/resources.py", "check_type_meta"),
    ("        metadata checks", "kybernetes/apiserver/resources.py", "check_metadata"),
    ("        namespace open", "kybernetes/apiserver/resources.py", "check_namespace_open"),
    ("        structural: type checks", "kybernetes/api/validation.py", "type_error_message"),
    ("        structural: unknown fields", "kybernetes/api/validation.py", "unknown_fields"),
    ("        metadata bookkeeping", "kybernetes/apiserver/resources.py", "prepare_new"),
    ("        defaults", "kybernetes/api/defaults.py", "apply_defaults"),
    ("        validation", "kybernetes/apiserver/resources.py", "validate"),
    ("        managedFields", "kybernetes/apiserver/resources.py", "_record_fields"),
    ("        encode for store", "kybernetes/apiserver/watchcache.py", "encode_for_store"),
    ("        store submit (event-loop side)", "kybernetes/storage/sqlite.py", "_submit"),
    ("        store delivery (event-loop side)", "kybernetes/storage/sqlite.py", "_deliver"),
    ("          watch cache apply", "kybernetes/apiserver/watchcache.py", "_on_events"),
    ("        result bytes", "kybernetes/apiserver/resources.py", "_written"),
    ("  aiohttp: finish_response", "aiohttp/web_protocol.py", "finish_response"),
    ("aiohttp: data_received (HTTP parsing)", "aiohttp/web_protocol.py", "data_received"),
    ("TLS read (SSLObject.read)", "ssl.py", "read"),
    ("TLS write (SSLObject.write)", "ssl.py", "write"),
]


def summarize_cprofile(stats_path: str, n: int, top: int) -> None:
    import pstats

    st = pstats.Stats(stats_path)
    entries = st.stats  # type: ignore[attr-defined]
    total_tt = sum(v[2] for v in entries.values())
    print(f"cProfile of the event-loop thread: {total_tt * 1e6 / n:.0f} µs per request in Python-visible "
          f"code (profiler overhead inflates call-heavy code)")
    for label, suffix, func in _STAGES:
        cum = sum(v[3] for (f, _, name), v in entries.items() if name == func and f.endswith(suffix))
        if cum:
            print(f"  {cum * 1e6 / n:8.1f} µs  {label}")
    print(f"hottest functions (own time per request, top {top}):")
    ranked = sorted(entries.items(), key=lambda kv: -kv[1][2])[:top]
    for (f, line, name), v in ranked:
        short = "/".join(f.split("/")[-2:])
        print(f"  {v[2] * 1e6 / n:8.1f} µs  {name} ({short}:{line}), {v[1] / n:.1f} calls")


async def run_cprofile(args: argparse.Namespace) -> None:
    stats = os.path.join(tempfile.mkdtemp(prefix="kyb-cprofile-"), "server.prof")
    # One process: the profiler sees the event loop that serves every request.
    srv = ProfiledServer(stats, ["--disable-controllers", "--disable-scheduler", "--api-workers", "1"])
    srv.start()
    pid = srv.proc.pid  # type: ignore[union-attr]
    n = args.creates
    try:
        async with Client(srv) as c:
            await ensure_ns(c, "p")
            await sequential(c, pid, "p", 300, "warm")
            await c.post("/api/v1/namespaces/p/configmaps", configmap("one", 0))
            path = "/api/v1/namespaces/p/configmaps/one"
            await gets(c, pid, path, 0.5, args.clients)
            srv.profile(True)
            await asyncio.sleep(0.2)
            if args.what == "create":
                rate, loop_ms, other_ms, _, _ = await sequential(c, pid, "p", n, "prof")
                print(f"under cProfile: {rate:.0f} creates/s, server CPU {loop_ms + other_ms:.3f} ms/create")
            else:
                done = 0
                while done < n:
                    await asyncio.gather(*(c.get(path) for _ in range(args.clients)))
                    done += args.clients
                n = done
            srv.profile(False)
            for _ in range(100):
                await asyncio.sleep(0.1)
                if os.path.exists(stats):
                    break
            await asyncio.sleep(0.5)
        summarize_cprofile(stats, n, args.top)
        if args.keep:
            shutil.copy(stats, args.keep)
    finally:
        srv.cleanup()
        shutil.rmtree(os.path.dirname(stats), ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["seq", "gets", "stages", "cprofile"])
    ap.add_argument("--creates", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--what", choices=["create", "get"], default="create")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--no-fsync", action="store_true", help="stages: a store without fsync (not durable)")
    ap.add_argument("--api-workers", type=int, default=None,
                    help="seq, gets: the server's --api-workers (default: the server's own default)")
    ap.add_argument("--keep", default="", help="cprofile: copy the stats file here")
    args = ap.parse_args()
    runner = {"seq": run_seq, "gets": run_gets, "stages": run_stages, "cprofile": run_cprofile}[args.mode]
    asyncio.run(runner(args))


if __name__ == "__main__":
    main()
