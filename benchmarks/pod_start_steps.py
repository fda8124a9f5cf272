"""Where a pod's start goes inside the runtime (issue 16), from the kernel's own record of
every program containerd runs: run by hand, as root.

    .venv/bin/python benchmarks/pod_start_steps.py [agent_bench.py arguments]

Runs `benchmarks/agent_bench.py --only sidecar` (40 pods unless told otherwise) with the
kernel's `sched_process_exec` / `sched_process_exit` trace events on (tracefs; they cost
nothing measurable), then finds each pod's start in the trace (the CNI plugins, the runc
shim's start command and its daemon, crun create and start for the pause container, then a
start command and crun create and start for the sidecar and for the app) and prints each
step's median and 90th percentile over the pods. Programs are known by their file names,
so the figures are the runtime's (containerd 1.6, crun, the CNI plugins), apart from the
API server and the agent, which `agent_bench.py --phases` times from outside.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys

TRACING = "/sys/kernel/tracing"
EVENTS = ("sched/sched_process_exec", "sched/sched_process_exit")
CNI = {"bridge", "loopback", "host-local", "portmap"}
LINE = re.compile(r"\s(\d+\.\d+): (sched_process_exec|sched_process_exit): (.*)")


def _write(path: str, value: str) -> None:
    with open(os.path.join(TRACING, path), "w") as f:
        f.write(value)


def traced(argv: list[str]) -> str:
    """The trace of exec and exit events while `argv` runs (its output passes through)."""
    _write("tracing_on", "0")
    _write("trace", "")
    _write("buffer_size_kb", "16384")
    try:
        for event in EVENTS:
            _write(f"events/{event}/enable", "1")
        _write("tracing_on", "1")
        subprocess.run(argv, check=False)
        _write("tracing_on", "0")
        with open(os.path.join(TRACING, "trace")) as f:
            return f.read()
    finally:
        _write("tracing_on", "0")
        for event in EVENTS:
            _write(f"events/{event}/enable", "0")
        _write("trace", "")


def processes(trace: str) -> list[tuple[float, str, float | None]]:
    """(first exec, program's file name, exit or None) of each traced process, in exec
    order, for the programs a pod's start runs."""
    execs: dict[int, tuple[float, str]] = {}
    exits: dict[int, float] = {}
    for line in trace.splitlines():
        m = LINE.search(line)
        if not m:
            continue
        pid = int(re.search(r"\bpid=(\d+)", m.group(3)).group(1))
        if m.group(2) == "sched_process_exec":
            name = re.search(r"filename=(\S+)", m.group(3)).group(1).rsplit("/", 1)[-1]
            execs.setdefault(pid, (float(m.group(1)), name))
        else:
            exits.setdefault(pid, float(m.group(1)))
    wanted = CNI | {"containerd-shim-runc-v2", "crun"}
    return sorted((t, name, exits.get(pid)) for pid, (t, name) in execs.items() if name in wanted)


def _kind(name: str) -> str:
    return "cni" if name in CNI else "shim" if name.startswith("containerd-shim") else "crun"


# After the CNI plugins: the shim's start command and its daemon, crun create and start of
# the pause container, then a start command, crun create and crun start per container.
START = ["shim", "shim", "crun", "crun", "shim", "crun", "crun", "shim", "crun", "crun"]


def pod_steps(procs: list[tuple[float, str, float | None]]) -> dict[str, list[float]]:
    """Each step's durations (ms) over the pod starts found in `procs`."""
    steps: dict[str, list[float]] = {}

    def add(step: str, seconds: float) -> None:
        steps.setdefault(step, []).append(seconds * 1000)

    i = 0
    while i < len(procs):
        if _kind(procs[i][1]) != "cni":
            i += 1
            continue
        j = i
        while j < len(procs) and _kind(procs[j][1]) == "cni":
            j += 1
        cni, seq = procs[i:j], procs[j:j + len(START)]
        # Every step's process has exited, but the shim's daemon (it serves the pod on).
        if [_kind(p[1]) for p in seq] != START or None in [p[2] for p in cni + seq[:1] + seq[2:]]:
            i = j  # a teardown or a partial start: not a pod's start
            continue
        begin = min(p[0] for p in cni)
        add("sandbox: CNI plugins (first start to last exit)", max(p[2] for p in cni) - begin)
        for p in cni:
            add(f"  {p[1]}", p[2] - p[0])
        add("sandbox: shim start command", seq[0][2] - seq[0][0])
        add("sandbox: shim start command -> crun create", seq[2][0] - seq[0][0])
        add("pause: crun create", seq[2][2] - seq[2][0])
        add("pause: crun start", seq[3][2] - seq[3][0])
        for name, k in (("sidecar", 4), ("app", 7)):
            start, create, run = seq[k], seq[k + 1], seq[k + 2]
            add(f"{name}: shim start command", start[2] - start[0])
            add(f"{name}: shim start command -> crun create", create[0] - start[0])
            add(f"{name}: crun create", create[2] - create[0])
            add(f"{name}: crun start", run[2] - run[0])
        add("first CNI plugin -> the app's crun start done", seq[-1][2] - begin)
        i = j + len(START)
    return steps


def main() -> None:
    if os.geteuid() != 0 or not os.path.isdir(TRACING):
        sys.exit("needs root and tracefs at " + TRACING)
    if not os.path.exists(os.path.join(TRACING, "tracing_on")):
        # A fresh boot may have the directory without the file system on it.
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACING], check=True)
    args = sys.argv[1:] or ["--pods", "40"]
    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agent_bench.py")
    steps = pod_steps(processes(traced([sys.executable, bench, "--only", "sidecar", *args])))
    if not steps:
        sys.exit("no pod start found in the trace")
    print(f"runtime steps of {len(steps['pause: crun create'])} pod starts (ms): median, p90; "
          "then the median of the first and of the last quarter of the pods (does a step slow as pods accumulate?)")
    for step, values in steps.items():
        quarter = max(1, len(values) // 4)
        first, last = statistics.median(values[:quarter]), statistics.median(values[-quarter:])
        ordered = sorted(values)
        print(f"  {step:50s} {statistics.median(ordered):6.1f} {ordered[int(len(ordered) * 0.9)]:6.1f}"
              f"   {first:6.1f} {last:6.1f}")


if __name__ == "__main__":
    main()
