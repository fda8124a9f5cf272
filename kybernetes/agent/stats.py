"""The node's resource figures as the kubelet reports them: the statsapi `Summary`
(`/stats/summary`), the Prometheus text of `/metrics/resource` (what metrics-server
reads), a subset of `/metrics/cadvisor` and the agent's own `/metrics`.

Everything here is pure: samples in (read from /proc, cgroups and the runtime by
`agent.statsreader`), documents out. CPU usage in cores needs two samples of a
cumulative counter; `CpuWindow` keeps the previous one per container, pod and node,
as the kubelet's cadvisor cache does.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

NS_PER_S = 1_000_000_000
# Shorter windows make the rate jumpy: a scrape this soon after the last sample keeps
# the rate measured then (cadvisor's housekeeping interval is 10-15 s).
MIN_RATE_WINDOW_NS = NS_PER_S
NODE_KEY = "node"
# The "pods" system container: every pod together.
PODS_KEY = "pods"
# Interfaces cadvisor leaves out of the node's network figures.
IGNORED_INTERFACE_PREFIXES = ("lo", "veth", "docker", "cni", "flannel", "nerdctl")
# Container states as the kubelet's `kubelet_running_containers` names them.
CONTAINER_STATES = ("created", "running", "exited", "unknown")


# -- samples ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuSample:
    """A cumulative CPU counter read at `time_ns` (unix nanoseconds)."""

    time_ns: int
    usage_core_ns: int


@dataclass(frozen=True)
class MemorySample:
    time_ns: int
    usage: int
    working_set: int
    rss: int
    page_faults: int = 0
    major_page_faults: int = 0
    # The limit the working set counts against: the node's capacity, a container's
    # memory limit, or 0 for none.
    limit: int = 0


@dataclass(frozen=True)
class InterfaceSample:
    name: str
    rx_bytes: int
    rx_errors: int
    tx_bytes: int
    tx_errors: int


@dataclass(frozen=True)
class NetworkSample:
    time_ns: int
    interfaces: tuple[InterfaceSample, ...]
    # The interface the figures at the top level are of (the kubelet's "eth0").
    default: str = "eth0"


@dataclass(frozen=True)
class FsSample:
    time_ns: int
    capacity: int | None = None
    available: int | None = None
    used: int | None = None
    inodes: int | None = None
    inodes_free: int | None = None
    inodes_used: int | None = None


@dataclass(frozen=True)
class ContainerSample:
    name: str
    container_id: str
    start_time: float
    cpu: CpuSample | None = None
    memory: MemorySample | None = None
    rootfs: FsSample | None = None
    logs: FsSample | None = None


@dataclass(frozen=True)
class PodSample:
    name: str
    namespace: str
    uid: str
    start_time: float
    containers: tuple[ContainerSample, ...] = ()
    # The sandbox's own cgroup (its pause process): part of the pod's figures, not a container's.
    sandbox_cpu: CpuSample | None = None
    sandbox_memory: MemorySample | None = None
    network: NetworkSample | None = None

    @property
    def key(self) -> str:
        return "pod/" + self.uid


@dataclass(frozen=True)
class NodeSample:
    name: str
    start_time: float
    cpu: CpuSample | None = None
    memory: MemorySample | None = None
    network: NetworkSample | None = None
    fs: FsSample | None = None
    image_fs: FsSample | None = None
    max_pid: int | None = None
    cur_proc: int | None = None
    rlimit_time_ns: int = 0
    # The agent's own process, reported as the "kubelet" system container.
    agent_cpu: CpuSample | None = None
    agent_memory: MemorySample | None = None
    agent_start_time: float = 0.0


@dataclass(frozen=True)
class Snapshot:
    """One round of samples of the whole node."""

    node: NodeSample
    pods: tuple[PodSample, ...] = ()
    # 0 when every container could be read (the kubelet's `resource_scrape_error`).
    errors: int = 0


# -- CPU rates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CpuWindow:
    """The last sample of one counter and the rate measured when it was taken."""

    latest: CpuSample
    nano_cores: int | None = None


def advance(window: CpuWindow | None, sample: CpuSample, min_window_ns: int = MIN_RATE_WINDOW_NS) -> CpuWindow:
    """The window after `sample`: the rate over the time since the previous sample, once
    at least `min_window_ns` has passed; a counter that went back starts over."""
    if window is None:
        return CpuWindow(sample)
    elapsed = sample.time_ns - window.latest.time_ns
    used = sample.usage_core_ns - window.latest.usage_core_ns
    if used < 0 or elapsed < 0:
        return CpuWindow(sample)
    if elapsed < min_window_ns:
        return window
    return CpuWindow(sample, used * NS_PER_S // elapsed)


def sum_cpu(samples: Iterable[CpuSample | None]) -> CpuSample | None:
    """Several cgroups' counters as one (a pod's containers and sandbox)."""
    found = [s for s in samples if s is not None]
    if not found:
        return None
    return CpuSample(max(s.time_ns for s in found), sum(s.usage_core_ns for s in found))


def sum_memory(samples: Iterable[MemorySample | None]) -> MemorySample | None:
    found = [s for s in samples if s is not None]
    if not found:
        return None
    return MemorySample(max(s.time_ns for s in found), sum(s.usage for s in found),
                        sum(s.working_set for s in found), sum(s.rss for s in found),
                        sum(s.page_faults for s in found), sum(s.major_page_faults for s in found))


def pod_cpu(pod: PodSample) -> CpuSample | None:
    return sum_cpu([pod.sandbox_cpu, *(c.cpu for c in pod.containers)])


def pod_memory(pod: PodSample) -> MemorySample | None:
    return sum_memory([pod.sandbox_memory, *(c.memory for c in pod.containers)])


def cpu_counters(snapshot: Snapshot) -> dict[str, CpuSample]:
    """Every counter of a snapshot whose rate is reported, by window key."""
    out: dict[str, CpuSample] = {}
    if snapshot.node.cpu is not None:
        out[NODE_KEY] = snapshot.node.cpu
    all_pods = sum_cpu(pod_cpu(p) for p in snapshot.pods)
    if all_pods is not None:
        out[PODS_KEY] = all_pods
    for pod in snapshot.pods:
        total = pod_cpu(pod)
        if total is not None:
            out[pod.key] = total
        for c in pod.containers:
            if c.cpu is not None:
                out[c.container_id] = c.cpu
    return out


def advance_all(windows: Mapping[str, CpuWindow], counters: Mapping[str, CpuSample],
                min_window_ns: int = MIN_RATE_WINDOW_NS) -> dict[str, CpuWindow]:
    """The windows after one round of samples; counters no longer sampled (a container
    gone) are dropped."""
    return {key: advance(windows.get(key), sample, min_window_ns) for key, sample in counters.items()}


# -- the statsapi Summary --------------------------------------------------------------------


def rfc3339(seconds: float) -> str:
    """metav1.Time's wire form (whole seconds, UTC)."""
    return dt.datetime.fromtimestamp(int(seconds), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(ns: int) -> str:
    return rfc3339(ns / NS_PER_S)


def cpu_stats(sample: CpuSample | None, window: CpuWindow | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    out: dict[str, Any] = {"time": _time(sample.time_ns)}
    if window is not None and window.nano_cores is not None:
        out["usageNanoCores"] = window.nano_cores
    out["usageCoreNanoSeconds"] = sample.usage_core_ns
    return out


def memory_stats(sample: MemorySample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    out: dict[str, Any] = {"time": _time(sample.time_ns)}
    if sample.limit > 0:
        out["availableBytes"] = max(sample.limit - sample.working_set, 0)
    out.update(usageBytes=sample.usage, workingSetBytes=sample.working_set, rssBytes=sample.rss,
               pageFaults=sample.page_faults, majorPageFaults=sample.major_page_faults)
    return out


def _interface(i: InterfaceSample) -> dict[str, Any]:
    return {"name": i.name, "rxBytes": i.rx_bytes, "rxErrors": i.rx_errors, "txBytes": i.tx_bytes,
            "txErrors": i.tx_errors}


def network_stats(sample: NetworkSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    out: dict[str, Any] = {"time": _time(sample.time_ns)}
    main = next((i for i in sample.interfaces if i.name == sample.default), None)
    if main is not None:
        out.update(_interface(main))
    out["interfaces"] = [_interface(i) for i in sample.interfaces]
    return out


_FS_FIELDS = (("availableBytes", "available"), ("capacityBytes", "capacity"), ("usedBytes", "used"),
              ("inodesFree", "inodes_free"), ("inodes", "inodes"), ("inodesUsed", "inodes_used"))


def fs_stats(sample: FsSample | None) -> dict[str, Any] | None:
    if sample is None:
        return None
    out: dict[str, Any] = {"time": _time(sample.time_ns)}
    for wire, attr in _FS_FIELDS:
        value = getattr(sample, attr)
        if value is not None:
            out[wire] = value
    return out


def _put(out: dict[str, Any], key: str, value: Any) -> None:
    if value is not None:
        out[key] = value


def container_stats(c: ContainerSample, windows: Mapping[str, CpuWindow], cpu_and_memory_only: bool = False
                    ) -> dict[str, Any]:
    out: dict[str, Any] = {"name": c.name, "startTime": rfc3339(c.start_time)}
    _put(out, "cpu", cpu_stats(c.cpu, windows.get(c.container_id)))
    _put(out, "memory", memory_stats(c.memory))
    if not cpu_and_memory_only:
        _put(out, "rootfs", fs_stats(c.rootfs))
        _put(out, "logs", fs_stats(c.logs))
    return out


def ephemeral_storage(pod: PodSample, node_fs: FsSample | None) -> FsSample | None:
    """A pod's writable layers and logs, on the node's filesystem."""
    parts = [f for c in pod.containers for f in (c.rootfs, c.logs) if f is not None]
    if not parts:
        return None
    used = [f.used for f in parts if f.used is not None]
    base = node_fs or FsSample(max(f.time_ns for f in parts))
    return replace(base, time_ns=max(f.time_ns for f in parts), used=sum(used) if used else None,
                   inodes_used=None)


def pod_stats(pod: PodSample, windows: Mapping[str, CpuWindow], node_fs: FsSample | None = None,
              cpu_and_memory_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"podRef": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
                           "startTime": rfc3339(pod.start_time),
                           "containers": [container_stats(c, windows, cpu_and_memory_only) for c in pod.containers]}
    _put(out, "cpu", cpu_stats(pod_cpu(pod), windows.get(pod.key)))
    _put(out, "memory", memory_stats(pod_memory(pod)))
    if not cpu_and_memory_only:
        _put(out, "network", network_stats(pod.network))
        _put(out, "ephemeral-storage", fs_stats(ephemeral_storage(pod, node_fs)))
    return out


def node_stats(node: NodeSample, windows: Mapping[str, CpuWindow], pods: Iterable[PodSample] = (),
               cpu_and_memory_only: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {"nodeName": node.name}
    system: list[dict[str, Any]] = []
    if node.agent_cpu is not None or node.agent_memory is not None:
        agent: dict[str, Any] = {"name": "kubelet", "startTime": rfc3339(node.agent_start_time or node.start_time)}
        _put(agent, "cpu", cpu_stats(node.agent_cpu, None))
        _put(agent, "memory", memory_stats(node.agent_memory))
        system.append(agent)
    pods = list(pods)
    all_pods: dict[str, Any] = {"name": "pods", "startTime": rfc3339(node.start_time)}
    _put(all_pods, "cpu", cpu_stats(sum_cpu(pod_cpu(p) for p in pods), windows.get(PODS_KEY)))
    _put(all_pods, "memory", memory_stats(sum_memory(pod_memory(p) for p in pods)))
    system.append(all_pods)
    out["systemContainers"] = system
    out["startTime"] = rfc3339(node.start_time)
    _put(out, "cpu", cpu_stats(node.cpu, windows.get(NODE_KEY)))
    _put(out, "memory", memory_stats(node.memory))
    if not cpu_and_memory_only:
        _put(out, "network", network_stats(node.network))
        _put(out, "fs", fs_stats(node.fs))
        if node.image_fs is not None:
            image_fs = fs_stats(node.image_fs)
            out["runtime"] = {"imageFs": image_fs, "containerFs": image_fs}
        if node.max_pid is not None:
            rlimit: dict[str, Any] = {"time": _time(node.rlimit_time_ns), "maxpid": node.max_pid}
            _put(rlimit, "curproc", node.cur_proc)
            out["rlimit"] = rlimit
    return out


def summary(snapshot: Snapshot, windows: Mapping[str, CpuWindow], cpu_and_memory_only: bool = False
            ) -> dict[str, Any]:
    """The kubelet's `/stats/summary` document."""
    return {"node": node_stats(snapshot.node, windows, snapshot.pods, cpu_and_memory_only),
            "pods": [pod_stats(p, windows, snapshot.node.fs, cpu_and_memory_only) for p in snapshot.pods]}


# -- Prometheus text format ------------------------------------------------------------------


@dataclass
class Family:
    """One metric family: its samples are (labels, value, timestamp in ms or None)."""

    name: str
    help: str
    type: str = "gauge"
    samples: list[tuple[dict[str, str], float, int | None]] = field(default_factory=list)

    def add(self, value: float, labels: Mapping[str, str] | None = None, timestamp_ns: int | None = None) -> None:
        self.samples.append((dict(labels or {}), value,
                             timestamp_ns // 1_000_000 if timestamp_ns is not None else None))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """As Go's expfmt writes a float: integers without a fraction, +Inf/-Inf/NaN by name."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> str:
    """The text exposition format (version 0.0.4), families sorted by name as a
    Prometheus registry gathers them, labels sorted within each sample."""
    lines: list[str] = []
    for fam in sorted(families, key=lambda f: f.name):
        if not fam.samples:
            continue
        lines.append(f"# HELP {fam.name} " + fam.help.replace("\\", "\\\\").replace("\n", "\\n"))
        lines.append(f"# TYPE {fam.name} {fam.type}")
        for labels, value, ts in fam.samples:
            text = fam.name
            if labels:
                text += "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in sorted(labels.items())) + "}"
            text += " " + format_value(value)
            if ts is not None:
                text += f" {ts}"
            lines.append(text)
    return "\n".join(lines) + "\n" if lines else ""


PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def resource_metrics(snapshot: Snapshot) -> str:
    """`/metrics/resource`, as the kubelet's resource metrics collector writes it."""
    node_cpu = Family("node_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the node in core-seconds",
                      "counter")
    node_mem = Family("node_memory_working_set_bytes", "[STABLE] Current working set of the node in bytes")
    c_cpu = Family("container_cpu_usage_seconds_total",
                   "[STABLE] Cumulative cpu time consumed by the container in core-seconds", "counter")
    c_mem = Family("container_memory_working_set_bytes", "[STABLE] Current working set of the container in bytes")
    c_start = Family("container_start_time_seconds", "[STABLE] Start time of the container since unix epoch in seconds")
    p_cpu = Family("pod_cpu_usage_seconds_total", "[STABLE] Cumulative cpu time consumed by the pod in core-seconds",
                   "counter")
    p_mem = Family("pod_memory_working_set_bytes", "[STABLE] Current working set of the pod in bytes")
    errors = [Family(name, f"{level} 1 if there was an error while getting container metrics, 0 otherwise")
              for name, level in (("scrape_error", "[ALPHA]"), ("resource_scrape_error", "[STABLE]"))]
    node = snapshot.node
    if node.cpu is not None:
        node_cpu.add(node.cpu.usage_core_ns / NS_PER_S, timestamp_ns=node.cpu.time_ns)
    if node.memory is not None:
        node_mem.add(node.memory.working_set, timestamp_ns=node.memory.time_ns)
    for pod in snapshot.pods:
        for c in pod.containers:
            labels = {"container": c.name, "pod": pod.name, "namespace": pod.namespace}
            if c.start_time > 0:
                c_start.add(c.start_time, labels)
            if c.cpu is not None:
                c_cpu.add(c.cpu.usage_core_ns / NS_PER_S, labels, c.cpu.time_ns)
            if c.memory is not None:
                c_mem.add(c.memory.working_set, labels, c.memory.time_ns)
        labels = {"pod": pod.name, "namespace": pod.namespace}
        cpu, mem = pod_cpu(pod), pod_memory(pod)
        if cpu is not None:
            p_cpu.add(cpu.usage_core_ns / NS_PER_S, labels, cpu.time_ns)
        if mem is not None:
            p_mem.add(mem.working_set, labels, mem.time_ns)
    for e in errors:
        e.add(float(snapshot.errors > 0))
    return render([node_cpu, node_mem, c_cpu, c_mem, c_start, p_cpu, p_mem, *errors])


def cadvisor_metrics(snapshot: Snapshot, cores: int, images: Mapping[str, str] | None = None) -> str:
    """A subset of `/metrics/cadvisor`: per-container CPU, memory, network and start time,
    and the machine's size."""
    images = images or {}
    cpu = Family("container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", "counter")
    ws = Family("container_memory_working_set_bytes", "Current working set in bytes.")
    usage = Family("container_memory_usage_bytes", "Current memory usage in bytes, including all memory regardless "
                   "of when it was accessed")
    rss = Family("container_memory_rss", "Size of RSS in bytes.")
    rx = Family("container_network_receive_bytes_total", "Cumulative count of bytes received", "counter")
    tx = Family("container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", "counter")
    start = Family("container_start_time_seconds", "Start time of the container since unix epoch in seconds.")
    machine_cores = Family("machine_cpu_cores", "Number of logical CPU cores.")
    machine_mem = Family("machine_memory_bytes", "Amount of memory installed on the machine.")
    machine_cores.add(cores)
    if snapshot.node.memory is not None and snapshot.node.memory.limit:
        machine_mem.add(snapshot.node.memory.limit)
    for pod in snapshot.pods:
        for c in pod.containers:
            labels = {"container": c.name, "pod": pod.name, "namespace": pod.namespace, "id": c.container_id,
                      "image": images.get(c.container_id, ""), "name": c.container_id}
            start.add(c.start_time, labels)
            if c.cpu is not None:
                cpu.add(c.cpu.usage_core_ns / NS_PER_S, {**labels, "cpu": "total"}, c.cpu.time_ns)
            if c.memory is not None:
                ws.add(c.memory.working_set, labels, c.memory.time_ns)
                usage.add(c.memory.usage, labels, c.memory.time_ns)
                rss.add(c.memory.rss, labels, c.memory.time_ns)
        if pod.network is not None:
            labels = {"container": "POD", "pod": pod.name, "namespace": pod.namespace}
            for i in pod.network.interfaces:
                rx.add(i.rx_bytes, {**labels, "interface": i.name}, pod.network.time_ns)
                tx.add(i.tx_bytes, {**labels, "interface": i.name}, pod.network.time_ns)
    return render([cpu, ws, usage, rss, rx, tx, start, machine_cores, machine_mem])


@dataclass(frozen=True)
class ProcessSample:
    """The agent's own process."""

    cpu_seconds: float
    resident_bytes: int
    virtual_bytes: int
    start_time: float
    open_fds: int
    max_fds: int


def agent_metrics(node_name: str, process: ProcessSample, running_pods: int,
                  containers_by_state: Mapping[str, int]) -> str:
    """`/metrics`: the process collector's figures and the kubelet's pod and container counts."""
    fams = [Family("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", "counter"),
            Family("process_resident_memory_bytes", "Resident memory size in bytes."),
            Family("process_virtual_memory_bytes", "Virtual memory size in bytes."),
            Family("process_start_time_seconds", "Start time of the process since unix epoch in seconds."),
            Family("process_open_fds", "Number of open file descriptors."),
            Family("process_max_fds", "Maximum number of open file descriptors.")]
    for fam, value in zip(fams, (process.cpu_seconds, process.resident_bytes, process.virtual_bytes,
                                 process.start_time, process.open_fds, process.max_fds), strict=True):
        fam.add(value)
    pods = Family("kubelet_running_pods", "[ALPHA] Number of pods that have a running pod sandbox")
    pods.add(running_pods)
    containers = Family("kubelet_running_containers", "[ALPHA] Number of containers currently running")
    for state in CONTAINER_STATES:
        containers.add(containers_by_state.get(state, 0), {"container_state": state})
    name = Family("kubelet_node_name", "[ALPHA] The node's name. The count is always 1.")
    name.add(1, {"node": node_name})
    return render([*fams, pods, containers, name])


# -- parsing /proc and cgroup files ----------------------------------------------------------


def parse_flat_keyed(text: str) -> dict[str, int]:
    """`key value` lines (memory.stat, cpu.stat, /proc/vmstat)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def node_memory(meminfo: Mapping[str, int], vmstat: Mapping[str, int], time_ns: int) -> MemorySample:
    """The node's memory as cadvisor reads the root cgroup: usage is what is not free,
    the working set leaves out inactive page cache, available is the rest of capacity."""
    total = meminfo.get("MemTotal", 0)
    usage = max(total - meminfo.get("MemFree", 0), 0)
    working_set = max(usage - meminfo.get("Inactive(file)", 0), 0)
    return MemorySample(time_ns, usage, working_set, meminfo.get("AnonPages", 0), vmstat.get("pgfault", 0),
                        vmstat.get("pgmajfault", 0), total)


def node_cpu(proc_stat: str, time_ns: int, clock_ticks: int = 100) -> CpuSample | None:
    """Busy time of all CPUs from /proc/stat's `cpu` line (guest time is within user time)."""
    for line in proc_stat.splitlines():
        parts = line.split()
        if parts and parts[0] == "cpu":
            values = [int(v) for v in parts[1:]] + [0] * 8
            user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
            busy = user + nice + system + irq + softirq + steal
            return CpuSample(time_ns, busy * NS_PER_S // clock_ticks)
    return None


def boot_time(proc_stat: str) -> float:
    for line in proc_stat.splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def parse_net_dev(text: str, time_ns: int, default: str = "eth0",
                  ignored: tuple[str, ...] = IGNORED_INTERFACE_PREFIXES) -> NetworkSample:
    """/proc/<pid>/net/dev: receive bytes, errs are columns 0 and 2, transmit 8 and 10."""
    interfaces = []
    for line in text.splitlines()[2:]:
        name, _, rest = line.partition(":")
        name = name.strip()
        cols = rest.split()
        if not name or len(cols) < 11 or name.startswith(ignored):
            continue
        interfaces.append(InterfaceSample(name, int(cols[0]), int(cols[2]), int(cols[8]), int(cols[10])))
    interfaces.sort(key=lambda i: i.name)
    return NetworkSample(time_ns, tuple(interfaces), default)


def default_interface(route: str) -> str:
    """The interface of the default IPv4 route in /proc/net/route, else eth0."""
    for line in route.splitlines()[1:]:
        cols = line.split()
        if len(cols) > 2 and cols[1] == "00000000":
            return cols[0]
    return "eth0"


def cgroup_dirs(mountinfo: str, proc_cgroup: str) -> dict[str, str]:
    """Where a process's CPU and memory cgroups are: `{"cpuacct": dir, "memory": dir}`
    on cgroup v1, `{"unified": dir}` on v2 (or both, on a hybrid host), given
    /proc/self/mountinfo and /proc/<pid>/cgroup."""
    mounts = cgroup_mounts(mountinfo)
    out: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        names = controllers.split(",") if controllers else ["unified"]
        for name in names:
            if name in mounts and name not in out:
                root, point = mounts[name]
                rel = path
                if root != "/" and (path == root or path.startswith(root.rstrip("/") + "/")):
                    rel = path[len(root.rstrip("/")):]
                out[name] = point.rstrip("/") + "/" + rel.lstrip("/") if rel.strip("/") else point
    return out


@functools.lru_cache(maxsize=4)
def cgroup_mounts(mountinfo: str) -> Mapping[str, tuple[str, str]]:
    """The (root, mount point) of the cpuacct, memory and unified cgroup hierarchies, from
    /proc/self/mountinfo. Remembered: a stats round asks for every process of every pod with
    the same table, whose lines grow with the pods' own mounts."""
    mounts: dict[str, tuple[str, str]] = {}
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lf, rf = left.split(), right.split()
        if len(lf) < 5 or len(rf) < 3:
            continue
        root, point, fstype = lf[3], lf[4], rf[0]
        if fstype == "cgroup2":
            mounts.setdefault("unified", (root, point))
        elif fstype == "cgroup":
            for opt in rf[2].split(","):
                if opt in ("cpuacct", "memory"):
                    mounts.setdefault(opt, (root, point))
    return types.MappingProxyType(mounts)


def overlay_upperdir(mountinfo: str) -> str | None:
    """The writable layer of a container's root filesystem, from its process's
    /proc/<pid>/mountinfo (an overlay mounted at `/`)."""
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        lf, rf = left.split(), right.split()
        if not sep or len(lf) < 5 or len(rf) < 3 or lf[4] != "/" or rf[0] != "overlay":
            continue
        for opt in rf[2].split(","):
            if opt.startswith("upperdir="):
                return opt[len("upperdir="):]
    return None


def memory_v1(usage: int, stat: Mapping[str, int], limit: int, time_ns: int) -> MemorySample:
    working_set = max(usage - stat.get("total_inactive_file", 0), 0)
    # cgroup v1 writes a page-rounded LLONG_MAX for "no limit".
    limit = limit if 0 < limit < 1 << 62 else 0
    return MemorySample(time_ns, usage, working_set, stat.get("total_rss", 0), stat.get("total_pgfault", 0),
                        stat.get("total_pgmajfault", 0), limit)


def memory_v2(current: int, stat: Mapping[str, int], limit: int, time_ns: int) -> MemorySample:
    working_set = max(current - stat.get("inactive_file", 0), 0)
    return MemorySample(time_ns, current, working_set, stat.get("anon", 0), stat.get("pgfault", 0),
                        stat.get("pgmajfault", 0), limit)


def process_sample(stat: str, statm: str, page_size: int, clock_ticks: int, btime: float, open_fds: int,
                   max_fds: int) -> ProcessSample:
    """The process collector's figures from /proc/self/stat and statm."""
    # The command name may hold spaces and parentheses: fields count from its end.
    fields = stat[stat.rfind(")") + 2:].split()
    utime, stime, start_ticks, vsize = int(fields[11]), int(fields[12]), int(fields[19]), int(fields[20])
    rss_pages = int(statm.split()[1])
    return ProcessSample((utime + stime) / clock_ticks, rss_pages * page_size, vsize,
                         btime + start_ticks / clock_ticks, open_fds, max_fds)
