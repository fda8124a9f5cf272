"""A real `kyb server` in a subprocess, for tests and benchmarks.

`ServerProcess` starts the server on a free port with its own data dir, waits
for `/readyz`, and offers a `kubectl` runner bound to the admin kubeconfig and
a private discovery cache. It stops only the process it started.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from kybernetes.api.children import popen_dying_with_parent

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class KubectlResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def file_tail(path: str, n: int = 4000) -> str:
    """The last `n` bytes of a log file, for error messages."""
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode(errors="replace")
    except OSError:
        return ""


def wait_for(predicate: Callable[[], T], timeout: float = 60.0, interval: float = 0.25,
             what: str = "condition") -> T:
    """Poll `predicate` until it returns something truthy, and return that; fail the test
    with the last value seen if it never does within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last={last!r}")


def stop_process(proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after `timeout` seconds: a child this harness started."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def etcd_member_pids(data_dir: str) -> list[int]:
    """Pids of the etcd processes running on the member data of the server with `data_dir`."""
    flag = f"--data-dir={os.path.join(data_dir, 'etcd')}".encode()
    return [pid for pid, argv in process_argvs() if argv and argv[0].endswith(b"etcd") and flag in argv]


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_argvs() -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every process that can be read."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                out.append((int(entry), f.read().split(b"\0")))
        except OSError:
            continue
    return out


def child_pids() -> dict[int, list[int]]:
    """Every process's children, by parent pid (from one /proc scan)."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int) -> list[int]:
    """`root` and every live process below it."""
    kids = child_pids()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def kubectl_binary() -> str:
    here = os.path.dirname(sys.executable)
    candidate = os.path.join(here, "kubectl")
    return candidate if os.path.exists(candidate) else shutil.which("kubectl") or "kubectl"


class ServerProcess:
    def __init__(self, data_dir: str | None = None, port: int | None = None, extra_args: list[str] | None = None,
                 agent: bool = False, bind_address: str = "127.0.0.1", wrap: list[str] | None = None):
        """A `kyb server` on a fresh data dir. Without `agent` the server runs no node
        agent of its own: tests and benchmarks add real or simulated nodes themselves.
        `wrap` prefixes its command (e.g. nsenter into a test host's network namespace,
        kybernetes/testing/hosts.py), where it listens on `bind_address`."""
        self.bind_address = bind_address
        self.wrap = wrap or []
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kyb-test-")
        self.port = port or free_port()
        self.extra_args = (extra_args or []) + ([] if agent else ["--disable-agent"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.cache_dir = os.path.join(self.data_dir, "kubectl-cache")
        self.log_path = os.path.join(self.data_dir, "server.log")

    @property
    def url(self) -> str:
        return f"https://{self.bind_address}:{self.port}"

    @property
    def kubeconfig(self) -> str:
        return os.path.join(self.data_dir, "kubeconfig.yaml")

    def start(self, timeout: float = 30.0) -> float:
        """Start the server; returns seconds until /readyz answered ok."""
        started = time.monotonic()
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it for its lifetime
        self.proc = popen_dying_with_parent(
            [*self.launcher(), "server", "--data-dir", self.data_dir,
             "--port", str(self.port), "--bind-address", self.bind_address, *self.extra_args],
            stdout=log, stderr=log)
        log.close()
        self.wait_ready(timeout)
        return time.monotonic() - started

    def launcher(self) -> list[str]:
        """The command that runs `kyb` (the server's arguments follow it)."""
        return [*self.wrap, sys.executable, "-m", "kybernetes.cli.main"]

    def wait_ready(self, timeout: float = 30.0) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kyb server exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/readyz", context=ctx, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"kyb server not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return file_tail(self.log_path, n)

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, 10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kubectl_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": self.kubeconfig, "HOME": self.data_dir, **(extra or {})}

    def kubectl(self, *args: str, stdin: str | None = None, timeout: float = 60.0,
                env: dict[str, str] | None = None) -> KubectlResult:
        p = subprocess.run([kubectl_binary(), "--cache-dir", self.cache_dir, *args], input=stdin,
                           capture_output=True, text=True, timeout=timeout, env=self.kubectl_env(env))
        return KubectlResult(p.returncode, p.stdout, p.stderr)

    def kubectl_ok(self, *args: str, stdin: str | None = None, timeout: float = 60.0) -> str:
        """kubectl's output, failing the test (with kubectl's words) when it fails."""
        r = self.kubectl(*args, stdin=stdin, timeout=timeout)
        assert r.ok, f"kubectl {' '.join(args)} on {self.url}: {r.stderr}{r.stdout}"
        return r.stdout

    def kubectl_background(self, *args: str) -> subprocess.Popen[str]:
        """A kubectl that keeps running (a watch), its output on a text pipe."""
        return subprocess.Popen([kubectl_binary(), "--cache-dir", self.cache_dir, *args], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=self.kubectl_env())


# `kyb` with a cProfile profiler on its main thread (the event loop that serves every request;
# other threads are not profiled): SIGUSR1 starts it, SIGUSR2 stops it and writes the stats
# to the path given first.
_PROFILED_KYB = """
import cProfile, runpy, signal, sys
out = sys.argv.pop(1)
prof = cProfile.Profile()
signal.signal(signal.SIGUSR1, lambda *_: prof.enable())
signal.signal(signal.SIGUSR2, lambda *_: (prof.disable(), prof.dump_stats(out)))
runpy.run_module("kybernetes.cli.main", run_name="__main__")
"""


class ProfiledServer(ServerProcess):
    """A `kyb server` whose event loop cProfile profiles between `profile(True)` and
    `profile(False)`, which writes the stats to `stats_path`."""

    def __init__(self, stats_path: str, extra_args: list[str] | None = None) -> None:
        super().__init__(extra_args=extra_args)
        self.stats_path = stats_path

    def launcher(self) -> list[str]:
        return [sys.executable, "-c", _PROFILED_KYB, self.stats_path]

    def profile(self, on: bool) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGUSR1 if on else signal.SIGUSR2)


def delete_namespace(server: ServerProcess, namespace: str) -> None:
    """Delete `namespace` without waiting: its pods at once (their node may be going away),
    its claims, and the PersistentVolumes bound to them, which a test's agent may not be
    there to reclaim."""
    server.kubectl("delete", "pods", "-n", namespace, "--all", "--grace-period=0", "--force", "--wait=false")
    server.kubectl("delete", "pvc", "-n", namespace, "--all", "--wait=false")
    server.kubectl("delete", "namespace", namespace, "--wait=false")
    r = server.kubectl("get", "pv", "-o", "json")
    for pv in json.loads(r.stdout)["items"] if r.returncode == 0 else ():
        if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == namespace:
            server.kubectl("delete", "pv", pv["metadata"]["name"], "--wait=false")


def ready_nodes(server: ServerProcess, selector: str) -> list[str]:
    """The names of the nodes labelled `selector` whose Ready condition is True, sorted."""
    r = server.kubectl("get", "nodes", "-l", selector, "-o", "json")
    if r.returncode != 0:
        raise RuntimeError(f"kubectl get nodes failed: {r.stderr}")
    return sorted(n["metadata"]["name"] for n in json.loads(r.stdout)["items"]
                  if any(c["type"] == "Ready" and c["status"] == "True"
                         for c in (n.get("status") or {}).get("conditions") or []))


def start_sim_nodes(server: ServerProcess, prefix: str, count: int, *extra: str, cpu: str = "4",
                    start_delay: float = 0.2) -> subprocess.Popen[bytes]:
    """`kyb sim-nodes` against `server`: `count` simulated nodes named `prefix`0.. with
    `cpu` CPUs and 8Gi each, quick leases, status and container delays for tests, logging to
    sim-`prefix`.log in the server's data dir. The caller terminates it."""
    log = open(os.path.join(server.data_dir, f"sim-{prefix}.log"), "ab")  # noqa: SIM115 - the child owns it
    proc = popen_dying_with_parent(
        [sys.executable, "-m", "kybernetes.cli.main", "sim-nodes", "--kubeconfig", server.kubeconfig,
         "--count", str(count), "--name-prefix", prefix, "--lease-interval", "1", "--node-status-interval", "5",
         "--start-delay", str(start_delay), "--delete-delay", "0.2", "--cpu", cpu, "--memory", "8Gi", *extra],
        stdout=log, stderr=log)
    log.close()
    return proc
