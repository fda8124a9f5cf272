"""Reads the node's resource samples for `agent.stats`: the runtime names the running
sandboxes and containers and their processes, the processes' cgroups give CPU and
memory (as cadvisor reads them), /proc gives the node's and the agent's own figures.

`StatsReader` also keeps the CPU windows: a housekeeping loop samples every
`HOUSEKEEPING_SECONDS`, so the first scrape already has a CPU rate, and scrapes close
together share one round of samples."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import resource
import time
from dataclasses import dataclass, replace
from typing import Any

from kybernetes.agent import stats
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import CriError
from kybernetes.agent.cri.protocol import Runtime

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 10.0
# A scrape within this long of the last round reuses it.
FRESH_SECONDS = 1.0
# Walking a writable layer costs more than reading a cgroup: as cadvisor, not every round.
ROOTFS_REFRESH_SECONDS = 60.0


@dataclass(frozen=True)
class _Proc:
    """What the runtime told of a container or sandbox once: it does not change while it runs."""

    pid: int
    start_time: float
    log_path: str = ""
    image: str = ""


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _int(path: str) -> int | None:
    text = _read(path).strip()
    if text.isdigit():
        return int(text)
    return None


def _statvfs(path: str, time_ns: int, used: int | None = None) -> stats.FsSample | None:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return stats.FsSample(time_ns, capacity=st.f_blocks * st.f_frsize, available=st.f_bavail * st.f_frsize,
                          used=used if used is not None else (st.f_blocks - st.f_bfree) * st.f_frsize,
                          inodes=st.f_files, inodes_free=st.f_ffree, inodes_used=st.f_files - st.f_ffree)


def _dir_usage(path: str) -> tuple[int, int]:
    """Bytes on disk and inodes under `path` (as `du`), not crossing into other filesystems."""
    used = inodes = 0
    try:
        dev = os.lstat(path).st_dev
    except OSError:
        return 0, 0
    stack = [path]
    while stack:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for e in entries:
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev:
                continue
            used += st.st_blocks * 512
            inodes += 1
            if e.is_dir(follow_symlinks=False):
                stack.append(e.path)
    return used, inodes


def _pid_of(info: Any) -> int:
    try:
        return int(json.loads(info.get("info", "{}")).get("pid") or 0)
    except (ValueError, TypeError, AttributeError):
        return 0


def bundle_pid(task_dir: str, runtime_id: str) -> int:
    """The pid of a sandbox's or container's first process from the `init.pid` that
    containerd's runc shim keeps in its bundle under `task_dir`; 0 when it cannot be read."""
    if not task_dir or not runtime_id or "/" in runtime_id or runtime_id.startswith("."):
        return 0
    text = _read(os.path.join(task_dir, runtime_id, "init.pid")).strip()
    return int(text) if text.isdigit() else 0


class StatsReader:
    """`task_dir` is where the runtime keeps its task bundles for Kubernetes' namespace
    (containerd: `<state>/io.containerd.runtime.v2.task/k8s.io`). With it, a new
    container's pid comes from its bundle; otherwise from a verbose status call, whose
    answer carries the whole OCI spec as JSON, which the runtime encodes and we decode
    for one number: ~120 of them in a burst every round after 40 pod starts."""

    def __init__(self, cri: Runtime, node_name: str, fs_root: str = "/", proc: str = "/proc",
                 task_dir: str = "") -> None:
        self.cri = cri
        self.task_dir = task_dir
        self.node_name = node_name
        self.fs_root = fs_root
        self.proc = proc
        self.clock_ticks = os.sysconf("SC_CLK_TCK")
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self.windows: dict[str, stats.CpuWindow] = {}
        self._known: dict[str, _Proc] = {}
        # Container id -> (monotonic time measured, bytes, inodes) of its writable layer.
        self._rootfs: dict[str, tuple[float, int, int]] = {}
        # Runtime id -> its first process's cgroup dirs, and a container's writable layer:
        # neither changes while it runs, and reading them again every round cost more than
        # the figures themselves (~1 ms of a thread holding the agent's GIL per pod at 100 pods).
        self._cgroups: dict[str, dict[str, str]] = {}
        self._uppers: dict[str, str] = {}
        self._mountinfo = ""
        self._last: stats.Snapshot | None = None
        self._last_at = 0.0
        self._lock = asyncio.Lock()

    async def snapshot(self, fresh_seconds: float = FRESH_SECONDS) -> stats.Snapshot:
        """A round of samples no older than `fresh_seconds`, the CPU windows advanced by it."""
        async with self._lock:
            if self._last is not None and time.monotonic() - self._last_at < fresh_seconds:
                return self._last
            snap = await self._sample()
            self.windows = stats.advance_all(self.windows, stats.cpu_counters(snap))
            self._last, self._last_at = snap, time.monotonic()
            return snap

    async def run(self, interval: float = HOUSEKEEPING_SECONDS) -> None:
        while True:
            try:
                await self.snapshot(fresh_seconds=interval / 2)
            except (CriError, OSError) as e:
                log.warning("stats housekeeping: %s", e)
            await asyncio.sleep(interval)

    async def _proc_of(self, key: str, ask: Any) -> _Proc | None:
        known = self._known.get(key)
        if known is not None:
            return known
        try:
            known = await ask()
        except CriError as e:
            if not e.not_found:
                raise
            return None
        if known is not None and known.pid > 0:
            self._known[key] = known
        return known

    async def _sandbox_proc(self, sandbox: pb.PodSandbox) -> _Proc | None:
        async def ask() -> _Proc:
            if pid := bundle_pid(self.task_dir, sandbox.id):
                return _Proc(pid, sandbox.created_at / stats.NS_PER_S)
            resp = await self.cri.pod_sandbox_status(sandbox.id, verbose=True)
            return _Proc(_pid_of(resp.info), resp.status.created_at / stats.NS_PER_S)
        return await self._proc_of(sandbox.id, ask)

    async def _container_proc(self, container_id: str) -> _Proc | None:
        async def ask() -> _Proc:
            pid = bundle_pid(self.task_dir, container_id)
            resp = await self.cri.container_status(container_id, verbose=not pid)
            st = resp.status
            return _Proc(pid or _pid_of(resp.info), (st.started_at or st.created_at) / stats.NS_PER_S, st.log_path,
                         st.image.image or st.image_ref)
        return await self._proc_of(container_id, ask)

    async def _sample(self) -> stats.Snapshot:
        sandboxes = await self.cri.list_pod_sandboxes(state=pb.SANDBOX_READY)
        containers = await self.cri.list_containers(state=pb.CONTAINER_RUNNING)
        procs: dict[str, _Proc] = {}
        for sb in sandboxes:
            p = await self._sandbox_proc(sb)
            if p is not None:
                procs[sb.id] = p
        for c in containers:
            p = await self._container_proc(c.id)
            if p is not None:
                procs[c.id] = p
        # Forget what is gone: ids are never reused.
        self._known = {k: v for k, v in self._known.items() if k in procs}
        self._rootfs = {k: v for k, v in self._rootfs.items() if k in procs}
        self._cgroups = {k: v for k, v in self._cgroups.items() if k in procs}
        self._uppers = {k: v for k, v in self._uppers.items() if k in procs}
        image_fs: tuple[str, int | None, int | None] | None = None
        try:
            info = await self.cri.image_fs_info()
            if info.image_filesystems:
                f = info.image_filesystems[0]
                image_fs = (f.fs_id.mountpoint, f.used_bytes.value if f.HasField("used_bytes") else None,
                            f.inodes_used.value if f.HasField("inodes_used") else None)
        except CriError:
            pass
        return await asyncio.to_thread(self._read_host, sandboxes, containers, procs, image_fs)

    # -- blocking reads (in a thread) -------------------------------------------------------

    def _cgroup_figures(self, runtime_id: str, pid: int, limit_default: int = 0
                        ) -> tuple[stats.CpuSample | None, stats.MemorySample | None]:
        dirs = self._cgroups.get(runtime_id)
        if dirs is None:
            proc_cgroup = _read(f"{self.proc}/{pid}/cgroup")
            if not proc_cgroup:
                return None, None
            if not self._mountinfo:
                self._mountinfo = _read(f"{self.proc}/self/mountinfo")
            dirs = self._cgroups[runtime_id] = stats.cgroup_dirs(self._mountinfo, proc_cgroup)
        now = time.time_ns()
        cpu = mem = None
        if "cpuacct" in dirs and (usage := _int(dirs["cpuacct"] + "/cpuacct.usage")) is not None:
            cpu = stats.CpuSample(now, usage)
        elif "unified" in dirs:
            usec = stats.parse_flat_keyed(_read(dirs["unified"] + "/cpu.stat")).get("usage_usec")
            if usec is not None:
                cpu = stats.CpuSample(now, usec * 1000)
        if "memory" in dirs and (usage := _int(dirs["memory"] + "/memory.usage_in_bytes")) is not None:
            mstat = stats.parse_flat_keyed(_read(dirs["memory"] + "/memory.stat"))
            mem = stats.memory_v1(usage, mstat, _int(dirs["memory"] + "/memory.limit_in_bytes") or 0, now)
        elif "unified" in dirs and (current := _int(dirs["unified"] + "/memory.current")) is not None:
            mstat = stats.parse_flat_keyed(_read(dirs["unified"] + "/memory.stat"))
            mem = stats.memory_v2(current, mstat, _int(dirs["unified"] + "/memory.max") or limit_default, now)
        return cpu, mem

    def _rootfs_usage(self, container_id: str, pid: int, start_time: float) -> tuple[int | None, int | None]:
        cached = self._rootfs.get(container_id)
        # A container in its first minute is still writing what it starts with: measured every round.
        young = time.time() - start_time < ROOTFS_REFRESH_SECONDS
        if cached is not None and not young and time.monotonic() - cached[0] < ROOTFS_REFRESH_SECONDS:
            return cached[1], cached[2]
        upper = self._uppers.get(container_id) or stats.overlay_upperdir(_read(f"{self.proc}/{pid}/mountinfo"))
        if upper is None:
            return None, None
        self._uppers[container_id] = upper
        used, inodes = _dir_usage(upper)
        self._rootfs[container_id] = (time.monotonic(), used, inodes)
        return used, inodes

    def _read_host(self, sandboxes: list[pb.PodSandbox], containers: list[pb.Container],
                   procs: dict[str, _Proc], image_fs: tuple[str, int | None, int | None] | None) -> stats.Snapshot:
        now = time.time_ns()
        proc_stat = _read(f"{self.proc}/stat")
        btime = stats.boot_time(proc_stat)
        image_sample = None
        if image_fs is not None:
            image_sample = _statvfs(image_fs[0], now, image_fs[1])
            if image_sample is not None and image_fs[2] is not None:
                image_sample = replace(image_sample, inodes_used=image_fs[2])
        by_sandbox: dict[str, list[stats.ContainerSample]] = {}
        errors = 0
        for c in containers:
            p = procs.get(c.id)
            if p is None:
                continue
            cpu, mem = self._cgroup_figures(c.id, p.pid)
            if cpu is None and mem is None and os.path.exists(f"{self.proc}/{p.pid}"):
                # Running, yet its cgroup could not be read.
                errors += 1
            logs = None
            if p.log_path:
                try:
                    size = os.stat(p.log_path).st_size
                except OSError:
                    size = None
                logs = _statvfs(os.path.dirname(p.log_path), now, size)
                if logs is not None:
                    logs = replace(logs, inodes_used=1 if size is not None else 0)
            rootfs = None
            if image_sample is not None:
                used, inodes_used = self._rootfs_usage(c.id, p.pid, p.start_time)
                rootfs = stats.FsSample(now, capacity=image_sample.capacity, available=image_sample.available,
                                        used=used, inodes=image_sample.inodes, inodes_free=image_sample.inodes_free,
                                        inodes_used=inodes_used)
            by_sandbox.setdefault(c.pod_sandbox_id, []).append(
                stats.ContainerSample(c.metadata.name, c.id, p.start_time, cpu, mem, rootfs, logs))
        pods = []
        for sb in sandboxes:
            p = procs.get(sb.id)
            cpu = mem = net = None
            start = sb.created_at / stats.NS_PER_S
            if p is not None:
                cpu, mem = self._cgroup_figures(sb.id, p.pid)
                dev = _read(f"{self.proc}/{p.pid}/net/dev")
                if dev:
                    net = stats.parse_net_dev(dev, now)
            pods.append(stats.PodSample(sb.metadata.name, sb.metadata.namespace, sb.metadata.uid, start,
                                        tuple(sorted(by_sandbox.get(sb.id, []), key=lambda c: c.name)),
                                        cpu, mem, net))
        pods.sort(key=lambda p: (p.namespace, p.name))
        agent_cpu = agent_mem = None
        agent_start = 0.0
        self_stat, statm = _read(f"{self.proc}/self/stat"), _read(f"{self.proc}/self/statm")
        if self_stat and statm:
            ps = stats.process_sample(self_stat, statm, self.page_size, self.clock_ticks, btime, 0, 0)
            agent_cpu = stats.CpuSample(now, int(ps.cpu_seconds * stats.NS_PER_S))
            agent_mem = stats.MemorySample(now, ps.resident_bytes, ps.resident_bytes, ps.resident_bytes)
            agent_start = ps.start_time
        try:
            cur_proc = sum(1 for d in os.listdir(self.proc) if d.isdigit())
        except OSError:
            cur_proc = None
        node = stats.NodeSample(
            self.node_name, btime, stats.node_cpu(proc_stat, now, self.clock_ticks),
            stats.node_memory(stats.parse_meminfo(_read(f"{self.proc}/meminfo")),
                              stats.parse_flat_keyed(_read(f"{self.proc}/vmstat")), now),
            stats.parse_net_dev(_read(f"{self.proc}/net/dev"), now,
                                stats.default_interface(_read(f"{self.proc}/net/route"))),
            _statvfs(self.fs_root, now), image_sample, _int(f"{self.proc}/sys/kernel/pid_max"), cur_proc, now,
            agent_cpu, agent_mem, agent_start)
        return stats.Snapshot(node, tuple(pods), errors)

    def images(self) -> dict[str, str]:
        """The image of each running container sampled last."""
        return {k: v.image for k, v in self._known.items() if v.image}

    def process(self) -> stats.ProcessSample:
        """The agent's own process, for `/metrics`."""
        proc_stat = _read(f"{self.proc}/stat")
        try:
            fds = len(os.listdir(f"{self.proc}/self/fd"))
        except OSError:
            fds = 0
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return stats.process_sample(_read(f"{self.proc}/self/stat"), _read(f"{self.proc}/self/statm"),
                                    self.page_size, self.clock_ticks, stats.boot_time(proc_stat), fds, soft)
