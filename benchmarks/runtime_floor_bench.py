"""The runtime's own floor for a burst of container starts, without kybernetes (issue 4).

    .venv/bin/python benchmarks/runtime_floor_bench.py [--containers 50]

Starts a private containerd (the agent's config, its own temp dir), imports the
offline busybox image and runs `--containers` busybox containers with `ctr run -d`
all at once, then one at a time: no API server, no agent, no pod sandbox, no CNI.
Each figure is the time from launching `ctr run` until it returns (the task is
started). What a pod costs on top (a sandbox container, CNI, the API) only adds to
this. Everything it started is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from kybernetes.agent import images  # noqa: E402
from kybernetes.agent.containerd import ContainerdLayout, PrivateContainerd, missing_prerequisites  # noqa: E402

NAMESPACE = "floor-bench"
IMAGE = "docker.io/library/busybox:1.35"


def cpu_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def ctr(socket: str, *args: str) -> float:
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec("ctr", "-a", socket, "-n", NAMESPACE, *args,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: {err.decode().strip()}")
    return time.monotonic() - start


def summary(times: list[float]) -> str:
    s = sorted(times)
    p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
    return f"p50 {statistics.median(s):.3f} s, p99 {p99:.3f} s, max {s[-1]:.3f} s"


async def main(n: int) -> None:
    base = tempfile.mkdtemp(prefix="kyb-floor-")
    runtime = PrivateContainerd(ContainerdLayout(os.path.join(base, "containerd")))
    await runtime.start()
    sock = runtime.layout.socket
    try:
        images.build_all(os.path.join(base, "images"))
        await ctr(sock, "images", "import", os.path.join(base, "images", "busybox.tar"))

        def run(name: str) -> list[str]:
            return ["run", "-d", IMAGE, name, "sleep", "3600"]

        await ctr(sock, *run("warm-up"))
        before_cpu, before = cpu_seconds(), time.monotonic()
        burst = await asyncio.gather(*(ctr(sock, *run(f"burst-{i}")) for i in range(n)))
        wall, used = time.monotonic() - before, cpu_seconds() - before_cpu
        print(f"{n} ctr run at once         {summary(burst)}; all started after {wall:.2f} s")
        print(f"  CPU                      {used:.1f} s of {wall * os.cpu_count():.1f} s available "
              f"({used / n * 1000:.0f} ms per container)")
        serial = [await ctr(sock, *run(f"serial-{i}")) for i in range(n)]
        print(f"{n} ctr run one at a time   {summary(serial)}")
    finally:
        names = subprocess.run(["ctr", "-a", sock, "-n", NAMESPACE, "containers", "ls", "-q"],
                               capture_output=True, text=True).stdout.split()
        for name in names:
            subprocess.run(["ctr", "-a", sock, "-n", NAMESPACE, "tasks", "kill", "-s", "KILL", name],
                           capture_output=True)
        for name in names:
            for _ in range(50):
                if subprocess.run(["ctr", "-a", sock, "-n", NAMESPACE, "tasks", "rm", "-f", name],
                                  capture_output=True).returncode == 0:
                    break
                time.sleep(0.1)
            subprocess.run(["ctr", "-a", sock, "-n", NAMESPACE, "containers", "rm", name], capture_output=True)
        await runtime.stop()
        mounts = [line.split()[4] for line in open("/proc/self/mountinfo") if base in line.split()[4]]
        for m in sorted(mounts, reverse=True):
            subprocess.run(["umount", "-l", m], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--containers", type=int, default=50)
    missing = missing_prerequisites()
    if missing:
        sys.exit(f"cannot run: {missing}")
    asyncio.run(main(parser.parse_args().containers))
