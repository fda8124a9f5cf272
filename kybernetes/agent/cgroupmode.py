"""Which OCI runtime the agent's private containerd runs containers with, and the one
host change that choice may need.

crun (a C program) creates a container ~15 ms sooner than runc, which re-executes
itself and copies its own ~9 MB binary for every container. crun refuses a hybrid cgroup host
(v1 controllers beside a v2 tree) whose v2 tree holds controllers, though; systemd's
hybrid mode leaves it empty, but a host that never mounted some controller on v1 (this
project's CI VM leaves `hugetlb` there) does not. Such a controller is idle in the v2 tree
unless something enabled it for child groups, so the agent mounts it as a v1 hierarchy of
its own, as systemd would have. When that is not possible, or crun is not installed,
containers run on runc. Both stay configured, so RuntimeClass handlers `runc` and `crun`
pick either."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass

from kybernetes.agent.host import read_text

log = logging.getLogger(__name__)

CGROUP_ROOT = "/sys/fs/cgroup"
# A v2 controller's v1 hierarchy goes by another name only for the block I/O one.
_V1_NAME = {"io": "blkio"}


@dataclass(frozen=True)
class CgroupLayout:
    """What cgroup file systems the host mounts under /sys/fs/cgroup."""

    mode: str  # "unified" (v2 only), "hybrid" (v1 plus a v2 tree) or "legacy" (v1 only)
    v2_controllers: tuple[str, ...] = ()  # hybrid: the controllers the v2 tree holds


def cgroup2_mounts(mounts: str) -> list[str]:
    """Where cgroup2 file systems are mounted, from /proc/self/mounts."""
    return [f[1] for f in (line.split() for line in mounts.splitlines()) if len(f) >= 3 and f[2] == "cgroup2"]


def hybrid_v2_dir(mounts: str, root: str = CGROUP_ROOT) -> str:
    """A hybrid host's v2 tree under `root` ("" on other hosts)."""
    return next((p for p in cgroup2_mounts(mounts) if p.startswith(root + "/")), "")


def cgroup_layout(mounts: str, v2_controllers: str, root: str = CGROUP_ROOT) -> CgroupLayout:
    """The layout, given /proc/self/mounts and, on a hybrid host, its v2 tree's
    `cgroup.controllers`."""
    if root in cgroup2_mounts(mounts):
        return CgroupLayout("unified")
    if hybrid_v2_dir(mounts, root):
        return CgroupLayout("hybrid", tuple(v2_controllers.split()))
    return CgroupLayout("legacy")


def controllers_to_claim(layout: CgroupLayout, v1_subsystems: set[str]) -> list[str] | None:
    """The v1 hierarchies to mount so that crun accepts the host ([] when none are
    needed), or None when some controller of the v2 tree has no v1 form here."""
    if layout.mode != "hybrid":
        return []
    names = [_V1_NAME.get(c, c) for c in layout.v2_controllers]
    return names if all(n in v1_subsystems for n in names) else None


def v1_subsystems(proc_cgroups: str) -> set[str]:
    """The kernel's v1 controllers that are enabled, from /proc/cgroups."""
    out = set()
    for line in proc_cgroups.splitlines():
        fields = line.split()
        if len(fields) == 4 and not line.startswith("#") and fields[3] == "1":
            out.add(fields[0])
    return out


def containerd_runtime_name(crun_installed: bool, to_claim: list[str] | None) -> str:
    """The runtime the private containerd should default to."""
    return "crun" if crun_installed and to_claim is not None else "runc"


def v1_hierarchy(proc_cgroups: str, name: str) -> int:
    """The v1 hierarchy id controller `name` is mounted on (0: none), from /proc/cgroups."""
    for line in proc_cgroups.splitlines():
        fields = line.split()
        if len(fields) == 4 and fields[0] == name and fields[1].isdigit():
            return int(fields[1])
    return 0


def claim_v1(name: str, root: str = CGROUP_ROOT) -> bool:
    """Mount controller `name` as a v1 hierarchy at `<root>/<name>` unless it has one
    already (another agent on this host may have just mounted it); False when the
    kernel refuses (it does while the v2 tree has the controller enabled for child
    groups)."""
    if v1_hierarchy(read_text("/proc/cgroups"), name):
        return True
    point = os.path.join(root, name)
    made = not os.path.isdir(point)
    try:
        os.makedirs(point, exist_ok=True)
        subprocess.run(["mount", "-t", "cgroup", "-o", name, "cgroup", point], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        err = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        log.info("cannot mount the %s cgroup controller on v1 (%s); containers run on runc", name, err)
        if made:
            with contextlib.suppress(OSError):  # not empty after all: leave it
                os.rmdir(point)
        return False
    log.info("mounted the %s cgroup controller, idle in the v2 tree, as a v1 hierarchy at %s", name, point)
    return True


def choose_runtime(root: str = CGROUP_ROOT) -> str:
    """The private containerd's default runtime on this host ("crun" or "runc"), after
    mounting what crun needs mounted; see the module docstring."""
    if shutil.which("crun") is None:
        return "runc"
    mounts = read_text("/proc/self/mounts")
    v2_dir = hybrid_v2_dir(mounts, root)
    layout = cgroup_layout(mounts, read_text(os.path.join(v2_dir, "cgroup.controllers")) if v2_dir else "", root)
    to_claim = controllers_to_claim(layout, v1_subsystems(read_text("/proc/cgroups")))
    if to_claim and not all(claim_v1(name, root) for name in to_claim):
        to_claim = None
    runtime = containerd_runtime_name(True, to_claim)
    if runtime == "runc":
        log.info("crun refuses this host's cgroup layout (%s); containers run on runc", layout)
    return runtime
