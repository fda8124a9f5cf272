"""CriClient against a real, private containerd: images, a pod sandbox on a CNI bridge,
containers with CRI logs, exec, localhost between containers, stop and removal; crun
run from a read-only mount of itself that lives as long as containerd.

Needs root and the Debian packages containerd, runc, containernetworking-plugins and
busybox-static; the module is skipped otherwise. Everything lives under a short temp dir
(the containerd state dir holds unix sockets), and the bridge, mounts and processes this
module makes are removed at the end."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field

import grpc
import pytest
import pytest_asyncio

from kybernetes.agent.containerd import (
    CNI_BIN_DIRS,
    ContainerdLayout,
    PrivateContainerd,
    RuntimeUnavailableError,
)
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import CriClient, CriError
from kybernetes.testing.agent import mounts_under
from kybernetes.testing.cluster import process_argvs

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BRIDGE = "kybtest0"
SUBNET = ipaddress.ip_network("10.199.0.0/24")
BUSYBOX = "docker.io/library/busybox:1.35"
PAUSE = "registry.k8s.io/pause:3.10"
CRI_LOG_LINE = re.compile(r"^\S+ (stdout|stderr) ([FP]) (.*)$")


def _missing_prerequisite() -> str | None:
    if os.geteuid() != 0:
        return "needs root (runs a private containerd with CNI networking)"
    for tool, package in (("containerd", "containerd"), ("runc", "runc"), ("ctr", "containerd"),
                          ("ip", "iproute2"), ("busybox", "busybox-static")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    if not any(os.path.exists(os.path.join(d, "bridge")) for d in CNI_BIN_DIRS):
        return "CNI plugins are not installed (Debian package containernetworking-plugins)"
    return None


def _cni_conflist(ipam_dir: str) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": "kyb-test",
        "plugins": [
            {"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": str(SUBNET)}]], "dataDir": ipam_dir}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def _run(*cmd: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def _tail(path: str, lines: int = 30) -> str:
    """The end of a log file that the teardown is about to delete."""
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError as e:
        return f"({e})"


def _bridge_ports() -> list[str]:
    if not os.path.exists(f"/sys/class/net/{BRIDGE}"):
        return []
    return [ln for ln in _run("ip", "-o", "link", "show", "master", BRIDGE).stdout.splitlines() if ln.strip()]


def _shim_pids(socket: str) -> list[int]:
    """containerd-shim processes started by the containerd listening on `socket`."""
    return [pid for pid, argv in process_argvs() if argv and b"containerd-shim" in argv[0] and socket.encode() in argv]


@dataclass
class Env:
    base: str
    layout: ContainerdLayout
    cri: CriClient
    netns_paths: set[str] = field(default_factory=set)

    @property
    def pod_logs(self) -> str:
        return os.path.join(self.base, "pods")


async def _remove_all(cri: CriClient) -> None:
    for c in await cri.list_containers():
        for step in (cri.stop_container(c.id, 0), cri.remove_container(c.id)):
            try:
                await step
            except CriError as e:
                if not e.not_found:
                    print(f"cleanup: container {c.id}: {e}", file=sys.stderr)
    for s in await cri.list_pod_sandboxes():
        for step in (cri.stop_pod_sandbox(s.id), cri.remove_pod_sandbox(s.id)):
            try:
                await step
            except CriError as e:
                if not e.not_found:
                    print(f"cleanup: sandbox {s.id}: {e}", file=sys.stderr)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env():
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="kyb-test-cri-", dir="/tmp")
    layout = ContainerdLayout(base)
    ctd = PrivateContainerd(layout)
    cri = CriClient()
    netns_paths: set[str] = set()
    try:
        os.makedirs(layout.cni_conf_dir, exist_ok=True)
        with open(os.path.join(layout.cni_conf_dir, "10-kyb-test.conflist"), "w") as f:
            json.dump(_cni_conflist(os.path.join(base, "ipam")), f, indent=2)
        try:
            await ctd.start()
        except RuntimeUnavailableError as e:
            raise RuntimeUnavailableError(f"{e}:\n{_tail(layout.log)}") from e
        images = os.path.join(base, "images")
        _run(sys.executable, os.path.join(REPO, "scripts", "build-images.py"), images)
        for tar in ("busybox.tar", "pause.tar"):
            _run("ctr", "-a", layout.socket, "-n", "k8s.io", "images", "import", os.path.join(images, tar))
        shutil.rmtree(images)
        await cri.connect(layout.socket, timeout=20)
        e = Env(base, layout, cri, netns_paths)
        yield e
    finally:
        await _teardown(base, layout, ctd, cri, netns_paths)


async def _teardown(base: str, layout: ContainerdLayout, ctd: PrivateContainerd, cri: CriClient,
                    netns_paths: set[str]) -> None:
    try:
        if cri.socket_path:
            await _remove_all(cri)
    finally:
        await cri.close()
        await ctd.stop()
        # Shims outlive containerd; after the removals above there should be none.
        for pid in _shim_pids(layout.socket):
            print(f"cleanup: killing leftover shim {pid}", file=sys.stderr)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if os.path.exists(f"/sys/class/net/{BRIDGE}"):
            _run("ip", "link", "del", BRIDGE, check=False)
        for path in sorted(netns_paths):
            if os.path.exists(path):
                _run("umount", "-l", path, check=False)
                try:
                    os.unlink(path)
                except OSError:
                    pass
        for point in sorted(mounts_under(base), key=len, reverse=True):
            _run("umount", "-l", point, check=False)
        shutil.rmtree(base, ignore_errors=True)


def _sandbox_config(env: Env, name: str) -> pb.PodSandboxConfig:
    uid = f"uid-{name}-{os.getpid()}"
    log_dir = os.path.join(env.pod_logs, f"test_{name}_{uid}")
    os.makedirs(log_dir, exist_ok=True)
    return pb.PodSandboxConfig(
        metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="test", attempt=0),
        hostname=f"kyb-{name}",
        log_directory=log_dir,
        labels={"kyb-test": "1", "pod": name},
        linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext()),
    )


def _container_config(name: str, script: str) -> pb.ContainerConfig:
    return pb.ContainerConfig(
        metadata=pb.ContainerMetadata(name=name),
        image=pb.ImageSpec(image=BUSYBOX),
        command=["sh", "-c", script],
        log_path=f"{name}/0.log",
        labels={"kyb-test": "1", "container": name},
        # As the kubelet does for pods: own PID namespace, pod network and IPC.
        linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
            namespace_options=pb.NamespaceOption(network=pb.POD, pid=pb.CONTAINER, ipc=pb.POD))),
    )


async def _start(env: Env, sandbox_id: str, sandbox: pb.PodSandboxConfig, name: str, script: str) -> str:
    cid = await env.cri.create_container(sandbox_id, _container_config(name, script), sandbox)
    await env.cri.start_container(cid)
    return cid


async def _wait_state(cri: CriClient, cid: str, state: int, timeout: float = 30) -> pb.ContainerStatus:
    deadline = time.monotonic() + timeout
    while True:
        st = (await cri.container_status(cid)).status
        if st.state == state or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.1)


async def _wait_log(path: str, text: str, timeout: float = 20) -> list[tuple[str, str, str]]:
    """The parsed CRI log lines of `path` once one of them carries `text`."""
    deadline = time.monotonic() + timeout
    entries: list[tuple[str, str, str]] = []
    while time.monotonic() < deadline:
        if os.path.exists(path):
            with open(path) as f:
                entries = [m.groups() for m in map(CRI_LOG_LINE.match, f.read().splitlines()) if m]
            if any(msg == text for _, _, msg in entries):
                return entries
        await asyncio.sleep(0.1)
    raise AssertionError(f"{text!r} not logged in {path} within {timeout}s; lines: {entries}")


def _netns_path(info: dict[str, str]) -> str:
    spec = json.loads(info["info"])["runtimeSpec"]
    return next(ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network")


@dataclass
class Pod:
    id: str
    config: pb.PodSandboxConfig
    containers: dict[str, str] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pod(env: Env) -> Pod:
    config = _sandbox_config(env, "web")
    sid = await env.cri.run_pod_sandbox(config)
    resp = await env.cri.pod_sandbox_status(sid, verbose=True)
    env.netns_paths.add(_netns_path(dict(resp.info)))
    return Pod(sid, config)


# ---------------------------------------------------------------------------- tests


async def test_crun_runs_from_a_read_only_mount_that_goes_with_containerd() -> None:
    reason = _missing_prerequisite() or (None if shutil.which("crun") else "crun is not installed (Debian package crun)")
    if reason:
        pytest.skip(reason)
    base = tempfile.mkdtemp(prefix="kyb-test-crun-", dir="/tmp")
    layout = ContainerdLayout(base)
    ctd = PrivateContainerd(layout)
    try:
        await ctd.start()
        with open(layout.config, "rb") as f:
            runtimes = tomllib.load(f)["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]
        assert runtimes["crun"]["options"]["BinaryName"] == layout.crun_binary
        # Beside crun's binary: the tmpfs of containerd's volatile dirs (its state, as /run).
        assert sorted(mounts_under(base)) == sorted([layout.crun_binary, *layout.volatile_dirs])
        r = subprocess.run([layout.crun_binary, "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith("crun version"), r.stderr
        with pytest.raises(OSError):
            open(layout.crun_binary, "ab").close()  # noqa: SIM115 - the write is what must fail
    finally:
        await ctd.stop()
        left = mounts_under(base)
        for point in sorted(left, key=len, reverse=True):
            _run("umount", "-l", point, check=False)
        shutil.rmtree(base, ignore_errors=True)
    # crun's mount goes with containerd, and so do the volatile dirs' tmpfs: no container
    # is left to use them.
    assert left == []


async def test_version(env: Env) -> None:
    v = await env.cri.version()
    assert v.runtime_name == "containerd"
    assert v.runtime_version and v.runtime_api_version
    st = await env.cri.status()
    conditions = {c.type: c.status for c in st.status.conditions}
    assert conditions.get("RuntimeReady") is True, st
    assert conditions.get("NetworkReady") is True, st


async def test_images(env: Env) -> None:
    img = await env.cri.image_status(BUSYBOX)
    assert img is not None and BUSYBOX in img.repo_tags and img.size > 0
    assert await env.cri.image_status("docker.io/library/not-here:0") is None
    tags = {t for i in await env.cri.list_images() for t in i.repo_tags}
    assert {BUSYBOX, PAUSE} <= tags


async def test_pull_from_unreachable_registry_fails(env: Env) -> None:
    with pytest.raises(CriError) as exc:
        await env.cri.pull_image("127.0.0.1:1/nothing:1", timeout=60)
    assert exc.value.code != grpc.StatusCode.OK and not exc.value.not_found
    assert exc.value.details


async def test_sandbox_ready_with_pod_ip(env: Env, pod: Pod) -> None:
    st = (await env.cri.pod_sandbox_status(pod.id)).status
    assert st.id == pod.id and st.state == pb.SANDBOX_READY
    assert (st.metadata.name, st.metadata.namespace, st.metadata.uid) == ("web", "test", pod.config.metadata.uid)
    assert ipaddress.ip_address(st.network.ip) in SUBNET
    assert st.labels["pod"] == "web"
    listed = await env.cri.list_pod_sandboxes(label_selector={"pod": "web"}, state=pb.SANDBOX_READY)
    assert [s.id for s in listed] == [pod.id]
    assert len(_bridge_ports()) == 1


async def test_container_runs_and_logs(env: Env, pod: Pod) -> None:
    cid = await _start(env, pod.id, pod.config, "main", "echo hello; sleep 3600")
    pod.containers["main"] = cid
    st = await _wait_state(env.cri, cid, pb.CONTAINER_RUNNING)
    assert st.state == pb.CONTAINER_RUNNING, st
    assert st.metadata.name == "main" and st.started_at > 0
    log = os.path.join(pod.config.log_directory, "main", "0.log")
    assert st.log_path == log
    entries = await _wait_log(log, "hello")
    assert ("stdout", "F", "hello") in entries
    listed = await env.cri.list_containers(sandbox_id=pod.id, state=pb.CONTAINER_RUNNING)
    assert cid in [c.id for c in listed]


async def test_exec_sync(env: Env, pod: Pod) -> None:
    cid = pod.containers["main"]
    code, out, err = await env.cri.exec_sync(cid, ["cat", "/etc/hostname"], timeout=10)
    assert (code, out.decode().strip(), err) == (0, "kyb-web", b"")
    code, out, err = await env.cri.exec_sync(cid, ["sh", "-c", "echo oops >&2; exit 3"], timeout=10)
    assert (code, out, err.decode().strip()) == (3, b"", "oops")


async def test_streaming_urls(env: Env, pod: Pod) -> None:
    cid = pod.containers["main"]
    for url in (await env.cri.exec(cid, ["sh"], stdin=True), await env.cri.attach(cid),
                await env.cri.port_forward(pod.id, [8080])):
        assert url.startswith("http://") or url.startswith("https://"), url


async def test_containers_share_localhost(env: Env, pod: Pod) -> None:
    pod.containers["server"] = await _start(
        env, pod.id, pod.config, "server",
        "echo hi-from-server > /var/www/index.html && exec httpd -f -p 127.0.0.1:8080 -h /var/www")
    client = await _start(
        env, pod.id, pod.config, "client",
        "for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:8080/index.html && exit 0; sleep 0.2; done;"
        " exit 1")
    pod.containers["client"] = client
    st = await _wait_state(env.cri, client, pb.CONTAINER_EXITED, timeout=40)
    assert (st.state, st.exit_code) == (pb.CONTAINER_EXITED, 0), st
    await _wait_log(os.path.join(pod.config.log_directory, "client", "0.log"), "hi-from-server")


async def test_stop_container_reports_exit(env: Env, pod: Pod) -> None:
    cid = pod.containers["main"]
    started = time.monotonic()
    # The shell is PID 1 of its own PID namespace and has no TERM handler, so SIGTERM is
    # ignored and the runtime kills it when the grace period is over.
    await env.cri.stop_container(cid, timeout_seconds=1)
    assert 1 <= time.monotonic() - started < 30
    st = (await env.cri.container_status(cid)).status
    assert st.state == pb.CONTAINER_EXITED and st.finished_at >= st.started_at > 0
    assert st.exit_code == 128 + signal.SIGKILL, st


async def test_remove_everything(env: Env, pod: Pod) -> None:
    netns = _netns_path(dict((await env.cri.pod_sandbox_status(pod.id, verbose=True)).info))
    assert os.path.exists(netns) and _bridge_ports()
    for cid in pod.containers.values():
        await env.cri.stop_container(cid, 0)
        await env.cri.remove_container(cid)
    await env.cri.stop_pod_sandbox(pod.id)
    await env.cri.stop_pod_sandbox(pod.id)  # idempotent
    await env.cri.remove_pod_sandbox(pod.id)
    assert await env.cri.list_containers() == []
    assert await env.cri.list_pod_sandboxes() == []
    with pytest.raises(CriError) as exc:
        await env.cri.container_status(pod.containers["main"])
    assert exc.value.not_found
    with pytest.raises(CriError) as exc:
        await env.cri.pod_sandbox_status(pod.id)
    assert exc.value.not_found
    assert not os.path.exists(netns)
    assert _bridge_ports() == []
    # host-local keeps one file per allocated address: the pod's must be released.
    leases = [f for f in os.listdir(os.path.join(env.base, "ipam", "kyb-test")) if re.fullmatch(r"[\d.]+", f)]
    assert leases == []
