"""A control plane on simulated nodes for the benchmarks that measure it (controlplane,
DaemonSet, Job): a real `kyb server` on a fresh data dir plus one simulated-node process
(`python -m kybernetes.simnodes`), started and torn down the same way, and the waits every
such benchmark begins with (all simulated nodes Ready, its namespace there), a resuming
watch that feeds what it measures (`follow`) and the wait on what that watch saw
(`wait_changed`)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.api.children import popen_dying_with_parent  # noqa: E402
from kybernetes.client import ApiClient, ApiError  # noqa: E402
from kybernetes.client.resources import NAMESPACES, NODES, Resource  # noqa: E402
from kybernetes.testing.cluster import ServerProcess  # noqa: E402

REPO = os.path.join(os.path.dirname(__file__), "..")
# 1,000 nodes need more /24 node subnets than the default 10.42.0.0/16 holds (256).
SERVER_ARGS = ("--cluster-cidr", "10.64.0.0/12")


def start_server(server: ServerProcess) -> ServerProcess:
    t = time.monotonic()
    server.start(timeout=60)
    print(f"kyb server ready in {time.monotonic() - t:.2f}s (data dir {server.data_dir})")
    return server


def start_simnodes(server: ServerProcess, nodes: int, start_delay: float,
                   extra_args: list[str]) -> subprocess.Popen[bytes]:
    """The simulator, logging to simnodes.log in the server's data dir."""
    sim_log = open(os.path.join(server.data_dir, "simnodes.log"), "ab")  # noqa: SIM115 - child owns it
    sim = popen_dying_with_parent([sys.executable, "-m", "kybernetes.simnodes", "--kubeconfig", server.kubeconfig,
                                   "--count", str(nodes), "--start-delay", str(start_delay), *extra_args],
                                  cwd=REPO, stdout=sim_log, stderr=sim_log)
    sim_log.close()
    return sim


def stop(server: ServerProcess, sim: subprocess.Popen[bytes], keep: bool) -> None:
    """Stop both; the data dir (server and simulator logs) stays only if `keep`."""
    sim.terminate()
    try:
        sim.wait(15)
    except subprocess.TimeoutExpired:
        sim.kill()
    if keep:
        server.stop()
        print(f"kept {server.data_dir}")
    else:
        server.cleanup()


@contextmanager
def sim_cluster(nodes: int, start_delay: float, sim_args: list[str], keep: bool,
                server: ServerProcess | None = None) -> Iterator[tuple[ServerProcess, subprocess.Popen[bytes]]]:
    """`server` (by default one with `SERVER_ARGS`) started, then `nodes` simulated nodes."""
    server = start_server(server or ServerProcess(extra_args=list(SERVER_ARGS)))
    sim = start_simnodes(server, nodes, start_delay, sim_args)
    try:
        yield server, sim
    finally:
        stop(server, sim, keep)


def _ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


async def wait_nodes_ready(client: ApiClient, count: int, timeout: float) -> list[str]:
    """The names of the Ready simulated nodes, once there are at least `count`."""
    deadline = time.monotonic() + timeout
    while True:
        page = await client.list(NODES, label_selector="kybernetes.io/simulated=true")
        ready = [n["metadata"]["name"] for n in page.get("items") or [] if _ready(n)]
        if len(ready) >= count:
            return ready
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {len(ready)}/{count} simulated nodes Ready")
        await asyncio.sleep(0.5)


async def follow(client: ApiClient, res: Resource, namespace: str,
                 see: Callable[[str, dict[str, Any], float], None]) -> None:
    """Feed `see(type, object, when)` everything in `namespace`, listed objects as ADDED,
    until cancelled: the watch resumes where it stopped and relists when it has expired."""
    rv = ""
    while True:
        try:
            if not rv:
                page = await client.list(res, namespace)
                now = time.monotonic()
                for obj in page.get("items") or []:
                    see("ADDED", obj, now)
                rv = page["metadata"]["resourceVersion"]
            async for type_, obj in client.watch(res, namespace, resource_version=rv, timeout_seconds=3600):
                rv = obj["metadata"].get("resourceVersion", rv)
                if type_ != "BOOKMARK":
                    see(type_, obj, time.monotonic())
        except ApiError as e:
            if e.code == 410:
                rv = ""
            else:
                await asyncio.sleep(0.5)
        except (OSError, TimeoutError) as e:
            print(f"  {res.kind.lower()} watch interrupted: {e}", file=sys.stderr)
            await asyncio.sleep(0.5)


async def wait_changed(changed: asyncio.Event, predicate: Callable[[], bool], timeout: float, what: str) -> float:
    """When `predicate()` first holds, checked each time `changed` is set (a watch saw
    something) and at least once a second."""
    deadline = time.monotonic() + timeout
    while not predicate():
        changed.clear()
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out waiting for {what}")
        try:
            await asyncio.wait_for(changed.wait(), min(left, 1.0))
        except TimeoutError:
            pass
    return time.monotonic()


async def ensure_namespace(client: ApiClient, name: str) -> None:
    try:
        await client.create(NAMESPACES, None, {"metadata": {"name": name}})
    except ApiError as e:
        if e.code != 409:
            raise
