"""Facts about the machine the agent runs on: CPUs, memory, disk, addresses, OS and
kernel, machine and boot ids. Read once at start (and the pressure figures on each
status report); everything here reads files or sockets and decides nothing."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HostFacts:
    hostname: str
    cpus: int
    memory_bytes: int
    storage_bytes: int
    internal_ip: str
    kernel: str
    os_image: str
    architecture: str
    machine_id: str
    boot_id: str
    extra_ips: tuple[str, ...] = field(default_factory=tuple)


def read_text(path: str, default: str = "") -> str:
    """The file's text, stripped; `default` when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def memory_total_bytes() -> int:
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def memory_available_bytes() -> int:
    for line in read_text("/proc/meminfo").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def disk_bytes(path: str) -> tuple[int, int]:
    """(total, available) bytes of the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize


def os_image() -> str:
    for line in read_text("/etc/os-release").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def primary_ip() -> str:
    """The address this host uses to reach other machines (no packet is sent)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
    finally:
        s.close()


def apparmor_enabled() -> bool:
    """Whether the kernel enforces AppArmor (what runc checks)."""
    return read_text("/sys/module/apparmor/parameters/enabled").startswith("Y")


def read_host_facts(data_dir: str, node_ip: str | None = None, hostname: str | None = None) -> HostFacts:
    machine = os.uname().machine
    total, _ = disk_bytes(data_dir)
    return HostFacts(
        hostname=(hostname or socket.gethostname()).lower(),
        cpus=os.cpu_count() or 1,
        memory_bytes=memory_total_bytes(),
        storage_bytes=total,
        internal_ip=node_ip or primary_ip(),
        kernel=os.uname().release,
        os_image=os_image(),
        architecture={"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine),
        machine_id=read_text("/etc/machine-id") or read_text("/var/lib/dbus/machine-id"),
        boot_id=read_text("/proc/sys/kernel/random/boot_id"),
    )
