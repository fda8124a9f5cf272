"""A real `kyb agent` (with its private containerd) for tests and benchmarks, and the
clean-up that leaves the host as it was: no containers, shims, mounts, network
namespaces, bridge or address leases of its own."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

from kybernetes.agent import egress
from kybernetes.agent.containerd import missing_prerequisites
from kybernetes.api.children import popen_dying_with_parent
from kybernetes.apiserver import pki
from kybernetes.testing.cluster import (
    ServerProcess,
    file_tail,
    free_port,
    process_argvs,
    stop_process,
)

TEST_TAINT = "kybernetes.io/test-agent"


def agent_prerequisites() -> str | None:
    """Why a real agent cannot run here, or None."""
    why = missing_prerequisites()
    if why is None and not os.path.exists("/bin/busybox"):
        why = "busybox-static is not installed (the test images are built from it)"
    return why


@contextlib.contextmanager
def node_cluster(node: str, bridge: str, pod_cidr: str, namespace: str) -> Iterator[tuple[ServerProcess, AgentProcess]]:
    """A `kyb server` of its own with one real agent (bridge and proxy table named `bridge`,
    pods from `pod_cidr`) and `namespace` made; all of it removed afterwards. An e2e
    module's fixture: one per module keeps the suite short."""
    srv = ServerProcess()
    srv.start()
    agent = None
    try:
        agent = AgentProcess(srv, node_name=node, bridge=bridge, proxy_table=bridge, pod_cidr=pod_cidr)
        agent.start()
        made = srv.kubectl("create", "namespace", namespace)
        assert made.returncode == 0, made.stderr
        yield srv, agent
    finally:
        srv.kubectl("delete", "namespace", namespace, "--wait=false")
        if agent is not None:
            agent.cleanup()
        srv.cleanup()


class AgentProcess:
    """`kyb agent` registered as `node_name`, tainted so that only pods tolerating
    TEST_TAINT land on it (other tests' pods keep to simulated nodes).

    With `pod_cidr`, `start()` first creates the Node with that pod CIDR (and `labels`):
    another cluster on this host routes the first CIDR every cluster hands out, so each
    real agent of the tests takes a range of its own; `cleanup()` deletes that Node."""

    def __init__(self, server: ServerProcess, node_name: str = "agent-node", bridge: str = "kybt0",
                 taint: bool = True, proxy_table: str = "kyb-test", proxy_mode: str = "nftables",
                 auth_args: list[str] | None = None, pod_cidr: str | None = None,
                 labels: dict[str, str] | None = None, wrap: list[str] | None = None,
                 extra_args: list[str] | None = None) -> None:
        self.server = server
        # A command prefix (nsenter into a test host's network namespace, testing/hosts.py):
        # the agent runs there, and the bridge, tables and chains cleaned up are that namespace's.
        self.wrap = wrap or []
        self.extra_args = extra_args or []
        self.pod_cidr = pod_cidr
        self.labels = labels or {}
        # How the agent reaches the API server: the admin kubeconfig unless given (e.g. --token to join).
        self.auth_args = auth_args
        self.node_name = node_name
        self.bridge = bridge
        self.taint = taint
        # Short: containerd keeps unix sockets under it (108-byte limit).
        self.data_dir = tempfile.mkdtemp(prefix="kyb-ag-", dir="/tmp")
        self.log_path = os.path.join(self.data_dir, "agent.log")
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.proxy_table = proxy_table
        self.proxy_mode = proxy_mode
        self.dns_port = free_port()
        # CNI chains the host had before: the ones this agent's pods add are removed.
        self.chains_before = {t: iptables_chains(t, "CNI-", self.wrap) for t in ("nat", "filter")}
        self.nft_tables_before = nft_tables(self.wrap)

    @property
    def containerd_socket(self) -> str:
        return os.path.join(self.data_dir, "containerd", "containerd.sock")

    def node_object(self) -> dict[str, Any]:
        """The Node this agent registers as, with its own pod CIDR (see the class)."""
        assert self.pod_cidr, "a node of its own needs a pod CIDR"
        spec: dict[str, Any] = {"podCIDR": self.pod_cidr, "podCIDRs": [self.pod_cidr]}
        if self.taint:
            spec["taints"] = [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]
        return {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": self.node_name, "labels": {"kubernetes.io/hostname": self.node_name,
                                                                 **self.labels}},
                "spec": spec}

    def start(self, timeout: float = 60.0, wait: bool = True) -> None:
        """Start the agent and (with `wait`) wait until its node is Ready; several agents
        start side by side when each is started without waiting, then waited for."""
        if self.pod_cidr:
            r = self.server.kubectl("apply", "-f", "-", stdin=json.dumps(self.node_object()))
            if r.returncode != 0:
                raise RuntimeError(f"cannot create node {self.node_name}: {r.stderr}")
        auth = self.auth_args if self.auth_args is not None else ["--kubeconfig", self.node_kubeconfig()]
        args = [*self.wrap, sys.executable, "-m", "kybernetes.cli.main", "agent", *auth,
                "--node-name", self.node_name, "--data-dir", self.data_dir, "--cni-bridge", self.bridge,
                "--containerd-socket", os.path.join(self.data_dir, "no-system-containerd.sock"),
                # The test server declares nodes dead after 4 s without a heartbeat.
                "--node-lease-duration-seconds", "4", "--port", str(self.port),
                # Its own table: a cluster already running on this host keeps its rules.
                "--proxy-table", self.proxy_table, "--proxy-mode", self.proxy_mode, "--dns-port", str(self.dns_port)]
        if self.taint:
            args += ["--register-with-taints", f"{TEST_TAINT}=true:NoSchedule"]
        args += self.extra_args
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = popen_dying_with_parent(args, stdout=log, stderr=log)
        log.close()
        if wait:
            self.wait_ready(timeout)

    def node_kubeconfig(self) -> str:
        """A kubeconfig with this node's own identity (`system:node:<name>`), signed by the
        server's CA: what `kyb server` gives its embedded agent."""
        path = os.path.join(self.data_dir, "node-kubeconfig.yaml")
        pki.write_node_kubeconfig(pki.pki_paths(self.server.data_dir), path, self.server.url, self.node_name)
        return path

    def wait_ready(self, timeout: float) -> None:
        """Until this agent (not an earlier one) has reported the node Ready."""
        since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 1))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"kyb agent exited with {self.proc.returncode}: {self.log_tail()}")
            r = self.server.kubectl("get", "node", self.node_name, "-o",
                                    "jsonpath={.status.conditions[?(@.type=='Ready')]}")
            if r.returncode == 0 and r.stdout.strip():
                ready = json.loads(r.stdout)
                # Its Lease too: the agent reports Ready at registration, before its serving
                # certificate is approved and its heartbeat loop starts.
                if ready.get("status") == "True" and ready.get("lastHeartbeatTime", "") >= since and \
                        self.server.kubectl("get", "lease", "-n", "kube-node-lease", self.node_name).returncode == 0:
                    return
            time.sleep(0.3)
        raise TimeoutError(f"node {self.node_name} not Ready after {timeout}s: {self.log_tail()}")

    def log_tail(self, n: int = 4000) -> str:
        return file_tail(self.log_path, n)

    def stop(self) -> None:
        """Stop the agent (and its containerd); running containers stay, as on a real
        agent restart."""
        stop_process(self.proc, 20)
        self.proc = None

    def runtime_containers(self) -> list[str]:
        """Ids of the containers containerd knows (sandboxes included)."""
        r = subprocess.run(["ctr", "-a", self.containerd_socket, "-n", "k8s.io", "containers", "ls", "-q"],
                           capture_output=True, text=True, timeout=30)
        return r.stdout.split()

    def cleanup(self) -> None:
        """Remove every pod of the node through the API (the agent stops them), stop the
        agent, then remove what is left of it on the host."""
        if self.proc is not None and self.proc.poll() is None:
            # A grace period of one second, not a forced delete: the agent would still give a
            # force-deleted pod's containers their whole grace period (as the kubelet does), and
            # a test's `sleep` as PID 1 ignores SIGTERM.
            self.server.kubectl("delete", "pods", "--all-namespaces", "--field-selector",
                                f"spec.nodeName={self.node_name}", "--grace-period=1", "--wait=false")
            started = time.monotonic()
            killed = False
            while time.monotonic() - started < 60 and (left := self.runtime_containers()):
                if not killed and time.monotonic() - started > 3:
                    # Pods a test force-deleted before (or a namespace's, deleted with their
                    # grace period) still get their whole grace period on the node, and a test's
                    # `sleep` as PID 1 ignores SIGTERM: their processes are killed, and the agent
                    # removes what is left of the pods as usual.
                    self._kill_tasks(left)
                    killed = True
                time.sleep(0.5)
        self.stop()
        self._kill_leftover_shims()
        for mount in sorted(mounts_under(self.data_dir), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        w = self.wrap
        subprocess.run([*w, "ip", "link", "del", self.bridge], capture_output=True)
        for table, before in self.chains_before.items():
            remove_iptables_chains(table, iptables_chains(table, "CNI-", w) - before, w)
        if shutil.which("nft"):
            subprocess.run([*w, "nft", "delete", "table", "ip", self.proxy_table], capture_output=True)
            subprocess.run([*w, "nft", "delete", "table", "ip", egress.table_name(self.bridge)], capture_output=True)
        if self.proxy_mode == "iptables":
            for table in ("nat", "filter"):
                remove_iptables_chains(table, iptables_chains(table, "KYB-", w), w)
        # iptables (nf_tables flavour) leaves the tables it had to create behind, empty.
        for family, name in nft_tables(w) - self.nft_tables_before:
            listed = subprocess.run([*w, "nft", "list", "table", family, name], capture_output=True, text=True).stdout
            if not [line for line in listed.splitlines()
                    if line.strip() and not line.strip().startswith(("table ", "chain ", "type ", "}"))]:
                subprocess.run([*w, "nft", "delete", "table", family, name], capture_output=True)
        if self.pod_cidr:
            self.server.kubectl("delete", "node", self.node_name, "--ignore-not-found", "--wait=false")
        keep = os.environ.get("KYB_KEEP_AGENT_LOG")
        if keep:
            shutil.copy(self.log_path, keep)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _kill_tasks(self, container_ids: list[str]) -> None:
        for cid in container_ids:
            subprocess.run(["ctr", "-a", self.containerd_socket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL",
                            cid], capture_output=True, timeout=30)

    def _kill_leftover_shims(self) -> None:
        # Shims of containers the agent could not stop outlive containerd; they (and
        # a containerd left by an agent that died) serve this agent's state dir
        # only, so they are ours to end.
        for pid, argv in process_argvs():
            # Shims, and a containerd whose agent died before stopping it.
            if any(b"containerd" in a for a in argv[:1]) and any(self.data_dir.encode() in a for a in argv):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def nft_tables(wrap: Sequence[str] = ()) -> set[tuple[str, str]]:
    """(family, name) of every nftables table on the host (in the namespace `wrap` enters)."""
    if shutil.which("nft") is None:
        return set()
    out = subprocess.run([*wrap, "nft", "list", "tables"], capture_output=True, text=True).stdout
    return {(w[1], w[2]) for w in (line.split() for line in out.splitlines()) if len(w) == 3 and w[0] == "table"}


def iptables_chains(table: str, prefix: str, wrap: Sequence[str] = ()) -> set[str]:
    if shutil.which("iptables") is None:
        return set()
    r = subprocess.run([*wrap, "iptables", "-t", table, "-S"], capture_output=True, text=True)
    return {line.split()[1] for line in r.stdout.splitlines() if line.startswith(f"-N {prefix}")}


def remove_iptables_chains(table: str, chains: set[str], wrap: Sequence[str] = ()) -> None:
    """Delete the rules that jump to `chains` from elsewhere, then the chains."""
    if not chains:
        return
    ipt = [*wrap, "iptables", "-t", table]
    rules = subprocess.run([*ipt, "-S"], capture_output=True, text=True).stdout.splitlines()
    for rule in rules:
        words = shlex.split(rule)
        if words[:1] == ["-A"] and words[1] not in chains and "-j" in words and words[words.index("-j") + 1] in chains:
            subprocess.run([*ipt, "-D", *words[1:]], capture_output=True)
    for chain in chains:
        subprocess.run([*ipt, "-F", chain], capture_output=True)
    for chain in chains:
        subprocess.run([*ipt, "-X", chain], capture_output=True)


def mounts_under(path: str) -> list[str]:
    """Mount points below `path` (not `path` itself)."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4]
            if mount_point.startswith(path.rstrip("/") + "/"):
                out.append(mount_point)
    return out
