"""The container runtime the agent talks to: an existing containerd at a socket, or a
private one (Debian `containerd` with `runc`, and `crun` where installed) started with
a config written into the agent's data dir and stopped with the agent.

The private containerd's CRI plugin runs CNI plugins from `cni_bin_dir` with the
network configuration the agent writes into `cni_conf_dir`. A pod that publishes no host
port runs on a twin of its runtime handler (`nohostport_handlers`), whose network
(`cni_nohostport_conf_dir`) lacks the portmap plugin: such pods are spared its run at every
sandbox's start and stop. The handlers themselves keep the network with portmap, so that a
sandbox made before the twins existed is torn down with the network it was set up with."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

from kybernetes.agent.images import import_args
from kybernetes.agent.seccompfilters import ANNOTATION as SECCOMP_FILTER_ANNOTATION

log = logging.getLogger(__name__)

SANDBOX_IMAGE = "registry.k8s.io/pause:3.10"
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
# The CRI handler of a runtime's twin for pods without host ports: "runc" -> "runc-nohostport".
NO_HOSTPORT_SUFFIX = "-nohostport"


class RuntimeUnavailableError(RuntimeError):
    """containerd could not be reached or started."""


def missing_prerequisites() -> str | None:
    """Why the agent cannot run pods on this machine, or None."""
    if os.geteuid() != 0:
        return "the node agent needs root"
    for tool in ("containerd", "runc", "ctr", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/install.sh installs it)"
    if not any(os.path.exists(os.path.join(d, "bridge")) for d in CNI_BIN_DIRS):
        return "CNI plugins are not installed (Debian package containernetworking-plugins)"
    return None


def find_cni_bin_dir() -> str:
    for d in CNI_BIN_DIRS:
        if os.path.exists(os.path.join(d, "bridge")):
            return d
    raise RuntimeUnavailableError("no CNI plugins found in " + " or ".join(CNI_BIN_DIRS)
                                  + " (Debian package containernetworking-plugins)")


def task_dir_of(state_dir: str) -> str:
    """Where containerd with state dir `state_dir` keeps the task bundles (each with its
    shim's `init.pid`) of the CRI plugin's namespace."""
    return os.path.join(state_dir, "io.containerd.runtime.v2.task", "k8s.io")


@dataclass(frozen=True)
class ContainerdLayout:
    """Where a private containerd keeps its state, under the agent's data dir."""

    base: str

    @property
    def socket(self) -> str:
        return os.path.join(self.base, "containerd.sock")

    @property
    def config(self) -> str:
        return os.path.join(self.base, "config.toml")

    @property
    def root(self) -> str:
        return os.path.join(self.base, "root")

    @property
    def state(self) -> str:
        # Short: runc's socket paths under the state dir must stay within 108 bytes.
        return os.path.join(self.base, "st")

    @property
    def volatile_dirs(self) -> tuple[str, ...]:
        """What containerd keeps only while its containers run: its state dir (shim bundles,
        crun's state, network namespaces, /dev/shm of pods) and the CRI plugin's per-pod
        files and container status, rewritten at every step of a container. A system
        containerd has the first in /run (tmpfs)."""
        return (self.state, os.path.join(self.root, "io.containerd.grpc.v1.cri"))

    @property
    def task_dir(self) -> str:
        """The runc shim's task bundles for Kubernetes' namespace."""
        return task_dir_of(self.state)

    @property
    def crun_dir(self) -> str:
        """crun's state for Kubernetes' namespace (the runc shim appends it to `Root`)."""
        return os.path.join(self.state, "crun", "k8s.io")

    @property
    def crun_binary(self) -> str:
        """Where crun is run from: a read-only bind mount of the host's crun."""
        return os.path.join(self.base, "bin", "crun")

    @property
    def cni_conf_dir(self) -> str:
        return os.path.join(self.base, "cni")

    @property
    def cni_nohostport_conf_dir(self) -> str:
        """The network of the runtimes' twins for pods without host ports (no portmap)."""
        return os.path.join(self.base, "cni-nohostport")

    @property
    def log(self) -> str:
        return os.path.join(self.base, "containerd.log")


def containerd_config(layout: ContainerdLayout, cni_bin_dir: str, sandbox_image: str = SANDBOX_IMAGE,
                      crun: str = "", default_runtime: str = "runc") -> str:
    """The TOML config of a private containerd (config version 2, containerd 1.6+): the
    runtimes (CRI handlers) `runc` and, given crun's path, `crun`, both through the runc
    shim, each with its twin for pods without host ports; pods without a RuntimeClass run on
    `default_runtime`."""
    # runc's own state apart from any system containerd's /run/containerd/runc.
    runtimes = [("runc", f'Root = "{layout.state}/runc"', "")]
    if crun:
        runtimes.append(("crun", f'BinaryName = "{crun}"\nRoot = "{os.path.dirname(layout.crun_dir)}"',
                         # The agent hands crun the seccomp filters crun compiled for earlier
                         # containers and pause containers (agent/seccompfilters.py). A
                         # sandbox's reaches only its pause container: the agent leaves it out
                         # of the sandbox config it creates the pod's containers with.
                         f'container_annotations = ["{SECCOMP_FILTER_ANNOTATION}"]\n'
                         f'pod_annotations = ["{SECCOMP_FILTER_ANNOTATION}"]'))
    sections = []
    for name, options, extra in runtimes:
        twin_network = f'cni_conf_dir = "{layout.cni_nohostport_conf_dir}"\ncni_max_conf_num = 1'
        for handler, network in ((name, ""), (name + NO_HOSTPORT_SUFFIX, twin_network)):
            table = f'plugins."io.containerd.grpc.v1.cri".containerd.runtimes.{handler}'
            body = "\n".join(line for line in ('runtime_type = "io.containerd.runc.v2"', extra, network) if line)
            sections.append(f"[{table}]\n{body}\n[{table}.options]\n{options}\n")
    return f'''version = 2
root = "{layout.root}"
state = "{layout.state}"

[grpc]
  address = "{layout.socket}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  enable_selinux = false
  # Never ask for an oom_score_adj below containerd's own: the sandbox's default
  # (-998) needs CAP_SYS_RESOURCE, which VMs and containers often withhold.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state dir, not the host-wide /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{layout.cni_conf_dir}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "{default_runtime}"

''' + "\n".join(sections)


def crun_handlers(crun: str, default_runtime: str) -> tuple[str, ...]:
    """The CRI handlers of `containerd_config` that run crun ("" for the default)."""
    if not crun:
        return ()
    own = ("crun", "crun" + NO_HOSTPORT_SUFFIX)
    return (*own, "") if default_runtime == "crun" else own


def nohostport_handlers(crun: str, default_runtime: str) -> dict[str, str]:
    """The twin of each CRI handler of `containerd_config` ("" for the default) that pods
    without host ports run on instead."""
    names = ("runc", "crun") if crun else ("runc",)
    return {"": default_runtime + NO_HOSTPORT_SUFFIX, **{n: n + NO_HOSTPORT_SUFFIX for n in names}}


def read_only_binary(real: str, target: str) -> str:
    """`real` bind-mounted read-only at `target` (a mount an earlier agent left behind is
    kept while it still shows the same file), or `real` itself when it cannot be.

    crun (as runc) copies itself into a sealed memfd and executes that copy at every call
    (a bind mount of itself, a file in /tmp and a second exec with all its libraries), so
    that a container cannot overwrite the host's binary through /proc/self/exe
    (CVE-2019-5736). A binary on a read-only mount cannot be written through that link
    either, and crun skips the copy for it: ~2 ms less per call."""
    try:
        real_stat = os.stat(real)
        if os.path.exists(target):
            if _read_only_copy_of(real_stat, target):
                return target
            # A mount of a binary since replaced (an upgrade), or a half-made one.
            subprocess.run(["umount", "-l", target], capture_output=True)
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if not os.path.exists(target):
            with open(target, "x"):
                pass
        subprocess.run(["mount", "--bind", "-o", "ro", real, target], check=True, capture_output=True)
        if _read_only_copy_of(real_stat, target):
            return target
        subprocess.run(["umount", "-l", target], capture_output=True)
        log.info("%s did not become a read-only mount of %s; %s copies itself at every call", target, real, real)
    except (OSError, subprocess.CalledProcessError) as e:
        err = e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
        log.info("cannot bind-mount %s read-only (%s); it copies itself at every call", real, err)
    return real


def mount_tmpfs_if_empty(path: str, mountinfo: str) -> str:
    """Mount a tmpfs (mode 0711, as containerd makes its state dir) at `path` unless it is a
    mount point already or holds anything (a dir an older agent's running containers use
    stays as it is); what was done: "mounted", "mounted before", or why not."""
    if any(len(f) > 4 and f[4] == path for f in (line.split() for line in mountinfo.splitlines())):
        return "mounted before"
    os.makedirs(path, mode=0o711, exist_ok=True)
    if os.listdir(path):
        return "in use on disk"
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0711,nosuid,nodev", "tmpfs", path], check=True,
                       capture_output=True)
    except (OSError, subprocess.CalledProcessError) as e:
        return e.stderr.decode(errors="replace").strip() if isinstance(e, subprocess.CalledProcessError) else str(e)
    return "mounted"


def _entries(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read_only_copy_of(real: os.stat_result, target: str) -> bool:
    """Whether `target` is the very file `real` describes, on a read-only mount."""
    here = os.stat(target)
    return (here.st_dev, here.st_ino) == (real.st_dev, real.st_ino) and bool(os.statvfs(target).f_flag & os.ST_RDONLY)


class PrivateContainerd:
    """A containerd process owned by the agent."""

    def __init__(self, layout: ContainerdLayout, cni_bin_dir: str | None = None, default_runtime: str = "runc") -> None:
        self.layout = layout
        self.cni_bin_dir = cni_bin_dir or find_cni_bin_dir()
        self.default_runtime = default_runtime
        self.proc: subprocess.Popen[bytes] | None = None
        # The CRI handlers that run crun, and the twins for pods without host ports, once started.
        self.crun_handlers: tuple[str, ...] = ()
        self.nohostport_handlers: dict[str, str] = {}
        # The read-only mount of crun made for this containerd's shims ("" for none).
        self._crun_mount = ""
        # The volatile dirs on tmpfs: unmounted on stop when no container is left to use them.
        self._tmpfs: list[str] = []

    async def start(self, timeout: float = 20.0) -> None:
        binary = shutil.which("containerd")
        if binary is None:
            raise RuntimeUnavailableError("containerd is not installed (Debian package containerd)")
        for d in (self.layout.base, self.layout.root, self.layout.state, self.layout.cni_conf_dir,
                  self.layout.cni_nohostport_conf_dir):
            os.makedirs(d, exist_ok=True)
        with open("/proc/self/mountinfo") as f:
            mountinfo = f.read()
        for d in self.layout.volatile_dirs:
            # Creating a file costs ext4 more than tmpfs, and much more on a file system
            # without a journal (some VMs' root), where ext4 passes over every inode freed
            # in the last 30 s to find a free one: these dirs' files come and go with every
            # container.
            outcome = await asyncio.to_thread(mount_tmpfs_if_empty, d, mountinfo)
            log.info("%s on tmpfs: %s", d, outcome)
            if outcome in ("mounted", "mounted before"):
                self._tmpfs.append(d)
        crun = shutil.which("crun") or ""
        if self.default_runtime == "crun" and not crun:
            raise RuntimeUnavailableError("crun is not installed (Debian package crun)")
        if crun:
            crun = await asyncio.to_thread(read_only_binary, os.path.realpath(crun), self.layout.crun_binary)
            self._crun_mount = crun if crun == self.layout.crun_binary else ""
        with open(self.layout.config, "w") as f:
            f.write(containerd_config(self.layout, self.cni_bin_dir, crun=crun, default_runtime=self.default_runtime))
        self.crun_handlers = crun_handlers(crun, self.default_runtime)
        self.nohostport_handlers = nohostport_handlers(crun, self.default_runtime)
        if os.path.exists(self.layout.socket):
            os.unlink(self.layout.socket)
        log_file = open(self.layout.log, "ab")  # noqa: SIM115 - the child owns it
        try:
            # The shims pass containerd's environment on to crun: newer crun releases skip
            # their self-copy for a read-only binary only when this says so (runc, on a
            # writable file, copies itself as before).
            env = {**os.environ, "_LIBCONTAINER_CLONED_BINARY": "1"}
            self.proc = subprocess.Popen([binary, "--config", self.layout.config], stdout=log_file,
                                         stderr=log_file, start_new_session=True, env=env)
        finally:
            log_file.close()
        deadline = time.monotonic() + timeout
        while not os.path.exists(self.layout.socket):
            if self.proc.poll() is not None:
                raise RuntimeUnavailableError(f"containerd exited with {self.proc.returncode}; see {self.layout.log}")
            if time.monotonic() > deadline:
                await self.stop()
                raise RuntimeUnavailableError(f"containerd did not open {self.layout.socket}; see {self.layout.log}")
            await asyncio.sleep(0.05)
        log.info("started private containerd (pid %d) at %s", self.proc.pid, self.layout.socket)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop containerd. Containers keep running under their shims (as with a
        system containerd restart); the agent removes its pods before calling this
        when it shuts the node down for good.

        crun's read-only mount goes with containerd: a shim calls crun only when
        containerd asks it to, and the next start mounts crun again before containerd runs.
        The volatile dirs' tmpfs go too when no container is left (an agent that never ran a
        pod, or one that removed its pods); else they stay for the shims, as /run does."""
        proc, self.proc = self.proc, None
        try:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        finally:
            if self._crun_mount:
                mount, self._crun_mount = self._crun_mount, ""
                await asyncio.to_thread(subprocess.run, ["umount", "-l", mount], capture_output=True)
            tmpfs, self._tmpfs = self._tmpfs, []
            if tmpfs and not _entries(self.layout.task_dir):
                for d in reversed(tmpfs):
                    # Not lazy: a mount still in use (a sandbox's network namespace) keeps it.
                    await asyncio.to_thread(subprocess.run, ["umount", d], capture_output=True)


async def import_images(socket_path: str, tarballs: list[str]) -> None:
    """Import OCI image tarballs into containerd's Kubernetes namespace (`ctr`, part of
    the containerd package: CRI has no import call)."""
    ctr = shutil.which("ctr")
    if ctr is None:
        raise RuntimeUnavailableError("ctr is not installed (Debian package containerd)")
    for path in tarballs:
        proc = await asyncio.create_subprocess_exec(ctr, "-a", socket_path, "-n", "k8s.io", "images", "import",
                                                    *import_args(path), path, stdout=asyncio.subprocess.DEVNULL,
                                                    stderr=asyncio.subprocess.PIPE)
        _, err = await proc.communicate()
        if proc.returncode != 0:
            raise RuntimeUnavailableError(f"importing {path} failed: {err.decode(errors='replace').strip()}")
