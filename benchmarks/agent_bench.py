"""Node agent benchmark (issue 4): pod startup latency on a real agent, run by hand.

    .venv/bin/python benchmarks/agent_bench.py [--pods 50] [--only sidecar] [--bridge B --proxy-table T --pod-cidr C]

Starts a real `kyb server` and a real `kyb agent` (private containerd, runc, CNI
bridge `kybab0`, pod CIDR 10.42.232.0/24 unless told others, so that it can run beside
another real agent) on a fresh data dir, as root. With the busybox image present, it measures
the time from each pod's create request to the moment a watch sees it Running:

* `--pods` pods created at once (p50, p99, max, and how long until all ran);
* `--pods` pods one at a time (each created after the previous one runs);
* `--pods` pods one at a time with a native sidecar (an init container with
  `restartPolicy: Always`, which must run before the app starts) and a restricted
  security context (runAsNonRoot, runAsUser 1000, no privilege escalation, every
  capability dropped, the runtime's default seccomp profile); target p99 <= 0.25 s;
* the agent's RSS with `--pods` pods running (and its containerd's, apart).

`--only burst|seq|sidecar` runs just that part. Each figure is printed with the load
average at its end: the box may be shared. `--phases` also prints where the sidecar pods'
starts went, phase by phase (median and p99), from the API's side and from the agent's log
(it runs the agent with `KYB_CRI_TIMING=1`, which costs the agent a little); with
`KYB_BENCH_AGENT_LOG=FILE` the agent's whole log of that part is kept in FILE.

Every pod is deleted at the end and the agent leaves nothing behind. On a root file system
without a journal, leave 90 s between runs: for 30 s after the last run's teardown removed its
files, ext4 steps over each of them whenever it creates one (benchmarks/README.md, stop 32).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from api_bench import pct  # noqa: E402
from realagent import PhaseTracker, report, sleeper_pod, with_agent  # noqa: E402

from kybernetes.client import ApiClient  # noqa: E402
from kybernetes.client.resources import NAMESPACES, PODS  # noqa: E402
from kybernetes.testing.agent import AgentProcess  # noqa: E402
from kybernetes.testing.cluster import ServerProcess, rss_mb  # noqa: E402

NAMESPACE = "agent-bench"
NODE = "kyb-bench-agent"
POD_CIDR = "10.42.232.0/24"
LABELS = {"bench": "agent"}


def agent_processes(agent: AgentProcess, program: bytes) -> list[int]:
    """The pids of `program` (a file name) running for the agent's data dir."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(program) and any(agent.data_dir.encode() in a for a in argv):
                pids.append(int(entry))
    return pids


def containerd_pid(agent: AgentProcess) -> int | None:
    return next(iter(agent_processes(agent, b"containerd")), None)


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process (its reaped children, such as runc and CNI plugins
    that containerd waited for, included)."""
    if not pid:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU time all cores spent not idle, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(x) for x in f.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_by_process(server: ServerProcess, agent: AgentProcess) -> dict[str, float]:
    """CPU seconds so far of the agent, its containerd (with the runc, shim and CNI plugin
    children it waited for) and the API server's process tree."""
    assert agent.proc is not None
    return {"agent": cpu_seconds(agent.proc.pid), "containerd": cpu_seconds(containerd_pid(agent) or 0),
            "API server": cpu_seconds(server.proc.pid) if server.proc else 0.0}


async def idle_cost(seconds: float, server: ServerProcess, agent: AgentProcess) -> None:
    """What the node costs while its pods just run: the share of a core each part uses,
    with every pod of the run still there (work that grows with the pods slows each start)."""
    shims = agent_processes(agent, b"containerd-shim-runc-v2")  # daemons: not containerd's children
    before = cpu_by_process(server, agent), sum(cpu_seconds(p) for p in shims), machine_busy_seconds()
    await asyncio.sleep(seconds)
    after = cpu_by_process(server, agent), sum(cpu_seconds(p) for p in shims), machine_busy_seconds()
    parts = {k: (after[0][k] - before[0][k]) / seconds * 100 for k in after[0]}
    parts[f"{len(shims)} shims"] = (after[1] - before[1]) / seconds * 100
    print(f"  idle for {seconds:.0f} s with the pods running: machine {(after[2] - before[2]) / seconds * 100:.1f} % "
          "of one core; " + ", ".join(f"{k} {v:.1f} %" for k, v in parts.items()))


def load_average() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def bench_pod(name: str) -> dict:
    return sleeper_pod(name, NODE, LABELS)


RESTRICTED = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def sidecar_pod(name: str) -> dict:
    """The bench pod with a native sidecar before its app, both as restricted as the
    Pod Security Standards' "restricted" profile asks."""
    pod = sleeper_pod(name, NODE, LABELS)
    spec = pod["spec"]
    (app,) = spec["containers"]
    app["securityContext"] = dict(RESTRICTED)
    spec["initContainers"] = [{**app, "name": "sidecar", "restartPolicy": "Always"}]
    spec["securityContext"] = {"runAsNonRoot": True, "runAsUser": 1000,
                               "seccompProfile": {"type": "RuntimeDefault"}}
    return pod


@dataclass
class PodStart:
    """When (wall clock, seconds) one pod's create was sent and answered, a watch saw it
    bound and Running; the agent's log lines of its start go in `log`."""

    name: str
    sent: float
    created: float = 0.0
    bound: float = 0.0
    running: float = 0.0
    log: list[tuple[float, str]] = field(default_factory=list)


LOG_LINE = re.compile(r'time=(\S+ \S+) level=\w+ logger=\S+ msg="(.*)"')


def agent_log_events(lines: list[str]) -> list[tuple[float, str]]:
    """(wall clock, message) of each line of the agent's log (times to the millisecond)."""
    out = []
    for line in lines:
        m = LOG_LINE.match(line)
        if m:
            out.append((dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), m.group(2)))
    return out


def start_phases(pod: PodStart, namespace: str) -> dict[str, float]:
    """A sidecar pod's start cut into phases (seconds), from its times and the agent's
    `KYB_CRI_TIMING` lines logged while it started; phases not found are left out."""
    key = f"{namespace}/{pod.name}"
    out = {"create request": pod.created - pod.sent, "scheduled (bound)": pod.bound - pod.created}
    # (The agent's watch may see the binding before the bench's does.)
    sync = next((t for t, m in pod.log if m == f"sync {key}" and t >= pod.created - 0.002), None)
    if sync is None:
        return out
    out["bound -> agent's sync"] = sync - pod.bound
    calls = []  # (method, start, end) of the CRI calls after the sync began
    for t, m in pod.log:
        parts = m.split()
        if t >= sync and len(parts) == 4 and parts[0] == "CRI" and parts[3] == "ms":
            calls.append((parts[1], t - float(parts[2]) / 1000, t))
    sandbox = next((c for c in calls if c[0] == "RunPodSandbox"), None)
    if sandbox is None:
        return out
    out["sync -> RunPodSandbox"] = sandbox[1] - sync
    out["RunPodSandbox"] = sandbox[2] - sandbox[1]
    starts = [c for c in calls if c[0] == "StartContainer" and c[1] >= sandbox[2] - 0.002]
    if len(starts) < 2:
        return out
    (_, s1, e1), (_, s2, e2) = starts[:2]
    out["sandbox -> sidecar start (CreateContainer)"] = s1 - sandbox[2]
    create = next((c for c in calls if c[0] == "CreateContainer" and sandbox[2] - 0.002 <= c[1] <= s1), None)
    if create is not None:
        out["  of which the CRI CreateContainer call"] = create[2] - create[1]
    out["sidecar StartContainer"] = e1 - s1
    out["sidecar -> app start"] = s2 - e1
    out["app StartContainer"] = e2 - s2
    status = next((t for t, m in pod.log if m == f"status {key} Running" and t >= e2 - 0.002), None)
    if status is not None:
        out["app started -> status write"] = status - e2
        out["status write -> watch sees Running"] = pod.running - status
    return out


def report_phases(pods: list[PodStart], namespace: str) -> None:
    rows: dict[str, list[float]] = {}
    for pod in pods:
        for name, value in start_phases(pod, namespace).items():
            rows.setdefault(name, []).append(value)
    rows["total"] = [p.running - p.sent for p in pods]
    for name, values in rows.items():
        quarter = max(1, len(values) // 4)
        print(f"    {name:<44} median {statistics.median(values) * 1000:6.1f} ms, "
              f"p99 {pct(values, 99) * 1000:6.1f} ms ({len(values)} pods); first / last quarter's median "
              f"{statistics.median(values[:quarter]) * 1000:6.1f} / {statistics.median(values[-quarter:]) * 1000:6.1f} ms")
    # The tail, pod by pod: which phase grew.
    for pod in sorted(pods, key=lambda p: p.sent - p.running)[:3]:
        print(f"    slow: {pod.name} {(pod.running - pod.sent) * 1000:.0f} ms: " + ", ".join(
            f"{name} {value * 1000:.0f}" for name, value in start_phases(pod, namespace).items()))


async def run(args: argparse.Namespace, server: ServerProcess, agent: AgentProcess) -> None:
    client = await ApiClient.from_kubeconfig(server.kubeconfig, user_agent="agent-bench")
    tracker = PhaseTracker(NAMESPACE)
    tracker.watch(client, PODS, "pod", "Running", "bench=agent")
    try:
        await client.create(NAMESPACES, None, {"metadata": {"name": NAMESPACE}})
        await asyncio.sleep(0.5)
        # Warm-up: the first pod pays for the image unpack and the bridge.
        created = time.monotonic()
        await client.create(PODS, NAMESPACE, bench_pod("warmup"))
        await tracker.wait([("pod", "warmup")])
        print(f"warm-up pod Running after   {tracker.seen[('pod', 'warmup')] - created:.3f} s")

        if args.only in ("", "burst"):
            await burst(args, client, tracker, server, agent)
        if args.only in ("", "seq"):
            await one_at_a_time(args, client, tracker, agent)
        if args.only in ("", "sidecar"):
            await with_sidecar(args, client, tracker, server, agent)
        if args.idle:
            await idle_cost(args.idle, server, agent)
    finally:
        await tracker.close()
        await client.close()


async def burst(args: argparse.Namespace, client: ApiClient, tracker: PhaseTracker, server: ServerProcess,
                agent: AgentProcess) -> None:
    names = [f"burst-{i}" for i in range(args.pods)]
    starts: dict[str, float] = {}

    async def create(name: str) -> None:
        starts[name] = time.monotonic()
        await client.create(PODS, NAMESPACE, bench_pod(name))

    assert agent.proc is not None
    cpu0 = {"agent": cpu_seconds(agent.proc.pid), "containerd": cpu_seconds(containerd_pid(agent) or 0),
            "API server process tree": cpu_seconds(server.proc.pid) if server.proc else 0.0}
    busy0 = machine_busy_seconds()
    t0 = time.monotonic()
    await asyncio.gather(*(create(n) for n in names))
    await tracker.wait([("pod", n) for n in names])
    all_done = max(tracker.seen[("pod", n)] for n in names) - t0
    busy = machine_busy_seconds() - busy0
    used = {"agent": cpu_seconds(agent.proc.pid) - cpu0["agent"],
            "containerd": cpu_seconds(containerd_pid(agent) or 0) - cpu0["containerd"],
            "API server process tree": (cpu_seconds(server.proc.pid) if server.proc else 0.0)
            - cpu0["API server process tree"]}
    report(f"{args.pods} at once", [tracker.seen[("pod", n)] - starts[n] for n in names])
    print(f"{'  all Running after':<28} {all_done:.2f} s; {load_average()}")
    print(f"{'  CPU during the burst':<28} machine {busy:.1f} s of {2 * all_done:.1f} s available; "
          + ", ".join(f"{k} {v:.1f} s" for k, v in used.items())
          + f"; the rest (runc, shims, CNI plugins, kernel) {busy - sum(used.values()):.1f} s")
    pid = containerd_pid(agent)
    print(f"RSS with {args.pods + 1} pods: agent {rss_mb(agent.proc.pid):.0f} MB"
          + (f", its containerd {rss_mb(pid):.0f} MB" if pid else ""))


async def one_at_a_time(args: argparse.Namespace, client: ApiClient, tracker: PhaseTracker,
                        agent: AgentProcess) -> None:
    one = []
    for i in range(args.pods):
        name = f"seq-{i}"
        start = time.monotonic()
        await client.create(PODS, NAMESPACE, bench_pod(name))
        await tracker.wait([("pod", name)])
        one.append(tracker.seen[("pod", name)] - start)
    report(f"{args.pods} one at a time", one)
    assert agent.proc is not None
    print(f"  {load_average()}; RSS with the pods so far: agent {rss_mb(agent.proc.pid):.0f} MB")


async def with_sidecar(args: argparse.Namespace, client: ApiClient, tracker: PhaseTracker, server: ServerProcess,
                       agent: AgentProcess) -> None:
    # A node runs at most 110 pods: the burst's go first.
    burst = [f"burst-{i}" for i in range(args.pods)]
    pods = (await client.list(PODS, NAMESPACE, label_selector="bench=agent")).get("items") or []
    doomed = [p["metadata"]["name"] for p in pods if p["metadata"]["name"] in burst]
    await asyncio.gather(*(client.delete(PODS, NAMESPACE, n) for n in doomed))
    while len((await client.list(PODS, NAMESPACE, label_selector="bench=agent")).get("items") or []) \
            > len(pods) - len(doomed):
        await asyncio.sleep(0.5)
    side = []
    starts: list[PodStart] = []
    bound: dict[str, float] = {}

    async def follow_binding() -> None:
        async for _type, obj in client.watch(PODS, NAMESPACE, "", "bench=agent", "", 3600):
            if (obj.get("spec") or {}).get("nodeName"):
                bound.setdefault(obj["metadata"]["name"], time.time())

    binding = asyncio.create_task(follow_binding())
    wall = time.time() - time.monotonic()
    cpu0 = cpu_by_process(server, agent)
    for i in range(args.pods):
        name = f"sidecar-{i}"
        start = time.monotonic()
        pod = PodStart(name, start + wall)
        await client.create(PODS, NAMESPACE, sidecar_pod(name))
        pod.created = time.monotonic() + wall
        await tracker.wait([("pod", name)])
        side.append(tracker.seen[("pod", name)] - start)
        pod.running = tracker.seen[("pod", name)] + wall
        starts.append(pod)
    binding.cancel()
    await asyncio.gather(binding, return_exceptions=True)
    report(f"{args.pods} one at a time, sidecar + restricted", side)
    # Whether a start slows as running pods accumulate (mounts, resyncs, relists).
    quarter = max(1, len(side) // 4)
    print("    by quarter of the run, median / max: " + ", ".join(
        f"{statistics.median(q):.3f} / {max(q):.3f} s"
        for q in (side[i:i + quarter] for i in range(0, len(side), quarter)) if q))
    if args.phases:
        with open(agent.log_path, errors="replace") as f:
            lines = f.readlines()
        if os.environ.get("KYB_BENCH_AGENT_LOG"):
            fd = os.open(os.environ["KYB_BENCH_AGENT_LOG"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w") as f:
                f.writelines(lines)
        events = agent_log_events(lines)
        for pod in starts:
            pod.bound = bound.get(pod.name, pod.created)
            pod.log = [(t, m) for t, m in events if pod.sent - 0.002 <= t <= pod.running + 0.002]
        report_phases(starts, NAMESPACE)
    # CPU per pod, by process: a figure the other load on a shared box does not move much.
    used = {k: (v - cpu0[k]) * 1000 / args.pods for k, v in cpu_by_process(server, agent).items()}
    print(f"  {load_average()}; CPU per pod: " + ", ".join(f"{k} {v:.0f} ms" for k, v in used.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=50)
    ap.add_argument("--only", choices=("", "burst", "seq", "sidecar"), default="")
    ap.add_argument("--bridge", default="kybab0")
    ap.add_argument("--proxy-table", default="kyb-agent-bench")
    ap.add_argument("--pod-cidr", default=POD_CIDR)
    ap.add_argument("--phases", action="store_true", help="where the sidecar pods' starts go, phase by phase")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="then this many seconds with the pods running: the CPU the node uses meanwhile")
    args = ap.parse_args()
    if args.phases:
        os.environ["KYB_CRI_TIMING"] = "1"  # the agent inherits it
    with_agent(NODE, args.pod_cidr, args.bridge, args.proxy_table, lambda server, agent: run(args, server, agent))


if __name__ == "__main__":
    main()
