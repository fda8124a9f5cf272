"""Several "hosts" on this one machine, for multi-node tests and for trying a cluster out.

A host is a network namespace with a veth on a shared Linux bridge (the LAN, e.g.
`kyblan0` with 10.77.0.0/24; the bridge itself holds the first address, so this
machine reaches every host and each host's default route goes through it). Programs run
in a host through `nsenter --net`: only the network is the host's own; the file system,
mount table and cgroup tree stay the machine's (a containerd needs the real /sys/fs/cgroup,
which `ip netns exec` would hide behind a fresh /sys). So each agent keeps distinct
paths: its own data dir (containerd root, state, socket, CNI config), CNI bridge, proxy
table and pod CIDR, from the slots below.

`Lan` owns the bridge and its hosts; `Host.server()` / `Host.agent()` start a `kyb server`
or a `kyb agent` in a host with the ServerProcess / AgentProcess of the other harness
modules. `Lan.down()` (or leaving its `with` block) removes everything: agents' pods,
processes (by PID: each host's processes and everything below them, containerd shims
included), mounts, namespaces, veths, the bridge, the NAT table. What a LAN holds is
also written to a state file, so `down(name)` clears what a crashed run left behind.

`python -m kybernetes.testing.hosts up --hosts 3` brings up one server and two agents
and stays in the foreground; `... down` removes them (scripts/up-hosts.sh wraps both).
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kybernetes.api.children import popen_dying_with_parent
from kybernetes.testing.agent import AgentProcess, agent_prerequisites, mounts_under
from kybernetes.testing.cluster import ServerProcess, process_tree

STATE_DIR = "/run/kyb-hosts"
NETNS_DIR = "/run/netns"
_NAME = re.compile(r"^[a-z0-9]{1,6}$")


@dataclass(frozen=True)
class AgentSlot:
    """What one agent on this machine must not share with another: its CNI bridge, its
    service proxy's nftables table and its pods' CIDR."""

    index: int

    @property
    def bridge(self) -> str:
        return f"kybh{self.index}"

    @property
    def proxy_table(self) -> str:
        return f"kybh{self.index}"

    @property
    def pod_cidr(self) -> str:
        return f"10.42.{242 + self.index}.0/24"


AGENT_SLOTS = tuple(AgentSlot(i) for i in range(1, 7))
_slots_in_use: set[int] = set()


def _take_slot() -> AgentSlot:
    for slot in AGENT_SLOTS:
        if slot.index not in _slots_in_use:
            _slots_in_use.add(slot.index)
            return slot
    raise RuntimeError(f"at most {len(AGENT_SLOTS)} host agents at once (bridges kybh1..kybh{len(AGENT_SLOTS)})")


def hosts_prerequisites() -> str | None:
    """Why hosts with agents cannot run here, or None."""
    why = agent_prerequisites()
    if why is None and shutil.which("nsenter") is None:
        why = "nsenter is not installed (Debian package util-linux)"
    return why


def _run(argv: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()}")
    return r


def netns_inode(netns: str) -> int | None:
    try:
        return os.stat(os.path.join(NETNS_DIR, netns)).st_ino
    except OSError:
        return None


def pids_in_netns(netns: str) -> list[int]:
    """Processes whose network namespace is `netns` (every one of them a host's own; zombies
    too, until their parent reaps them)."""
    inode = netns_inode(netns)
    if inode is None:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                    out.append(int(entry))
            except OSError:
                continue
    return out


def kill_netns_processes(netns: str, timeout: float = 10.0) -> None:
    """SIGKILL every process in `netns` and everything below them (containers run in pod
    namespaces under their shims), then wait until they are gone."""
    deadline = time.monotonic() + timeout
    # Again until none is left: a process forked while the others were being killed.
    while time.monotonic() < deadline:
        doomed: set[int] = set()
        for pid in pids_in_netns(netns):
            doomed.update(p for p in process_tree(pid) if not _zombie(p))
        if not doomed:
            return
        for pid in doomed:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while time.monotonic() < deadline and any(not _zombie(p) for p in doomed):
            time.sleep(0.05)


def _running(server: ServerProcess) -> bool:
    return server.proc is not None and server.proc.poll() is None


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _state_path(lan: str) -> str:
    return os.path.join(STATE_DIR, f"{lan}.json")


def read_state(lan: str) -> dict[str, Any]:
    try:
        with open(_state_path(lan)) as f:
            return dict(json.load(f))
    except (OSError, ValueError):
        return {}


class Host:
    """One network namespace on the LAN, with its address and the servers and agents
    started in it."""

    def __init__(self, lan: Lan, name: str, ip: str, index: int) -> None:
        self.lan = lan
        self.name = name
        self.ip = ip
        self.netns = f"{lan.name}-{name}"
        # The machine's end of the host's veth (15 characters at most).
        self.veth = f"{lan.name}h{index}"
        self.servers: list[ServerProcess] = []
        self.agents: list[AgentProcess] = []
        self._slots: list[AgentSlot] = []
        # Containers of agents that crashed: their cgroups stay behind, empty, until removed.
        self._crashed_containers: set[str] = set()

    @property
    def wrap(self) -> list[str]:
        """The command prefix that runs a program in this host."""
        return ["nsenter", f"--net={os.path.join(NETNS_DIR, self.netns)}"]

    def create(self) -> None:
        _run(["ip", "netns", "add", self.netns])
        _run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name", "eth0", "netns", self.netns])
        _run(["ip", "link", "set", self.veth, "master", self.lan.name, "up"])
        prefix = ipaddress.ip_network(self.lan.cidr).prefixlen
        for argv in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{self.ip}/{prefix}", "dev", "eth0"],
                     ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", self.lan.gateway],
                     # A node routes its pods' packets, as any Kubernetes host must.
                     ["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]):
            _run([*self.wrap, *argv])

    def run(self, argv: Sequence[str], env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[Any]:
        """Start `argv` in this host; it gets SIGTERM when the calling process dies."""
        return popen_dying_with_parent([*self.wrap, *argv], env=env, **popen)

    def exec(self, argv: Sequence[str], timeout: float = 60.0, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `argv` in this host to completion (text output captured)."""
        return subprocess.run([*self.wrap, *argv], input=stdin, capture_output=True, text=True, timeout=timeout)

    def server(self, extra_args: Sequence[str] = (), data_dir: str | None = None, start: bool = True,
               timeout: float = 60.0, port: int | None = None) -> ServerProcess:
        """A `kyb server` in this host, listening on the host's address (its kubeconfig names
        that address, which this machine reaches over the LAN bridge), on `port` (default: a
        free one)."""
        # Nodes are declared dead after 10 s without a heartbeat (agents here renew every second);
        # another server's controller manager and scheduler take over 8 s after a server dies.
        srv = ServerProcess(data_dir=data_dir, port=port, bind_address=self.ip, wrap=self.wrap,
                            extra_args=["--node-monitor-grace-period", "10", "--leader-elect-lease-duration", "8s",
                                        "--leader-elect-renew-deadline", "5s", "--leader-elect-retry-period", "1s",
                                        *extra_args])
        self.servers.append(srv)
        self.lan.save_state()
        if start:
            srv.start(timeout)
        return srv

    def agent(self, server: ServerProcess, node_name: str | None = None, token: str | None = None,
              ca_cert_hash: str | None = None, server_url: str | None = None, taint: bool = False,
              labels: dict[str, str] | None = None, extra_args: Sequence[str] = (), start: bool = True,
              timeout: float = 150.0) -> AgentProcess:
        """A `kyb agent` in this host with its own private containerd, CNI bridge, proxy
        table and pod CIDR (an AgentSlot), registered as `node_name` (default: the host's
        name). With `token` it joins `server_url` (default: `server`'s) as a new machine would
        (`kyb token create`, see join_token); otherwise it uses a node kubeconfig signed with
        `server`'s CA. `server` is the admin's way in: it creates the Node with the slot's
        pod CIDR first and watches it become Ready."""
        slot = _take_slot()
        self._slots.append(slot)
        url = server_url or server.url
        auth = None
        if token:
            auth = ["--server", url, "--token", token, *(["--ca-cert-hash", ca_cert_hash] if ca_cert_hash else [])]
        agent = AgentProcess(server, node_name=node_name or self.name, bridge=slot.bridge, taint=taint,
                             proxy_table=slot.proxy_table, auth_args=auth, pod_cidr=slot.pod_cidr, labels=labels,
                             wrap=self.wrap, extra_args=["--node-ip", self.ip, *extra_args])
        self.agents.append(agent)
        self.lan.save_state()
        if start:
            agent.start(timeout)
        return agent

    def crash(self) -> None:
        """The machine dies: SIGKILL every process in the host (servers, agents, containerd,
        shims, containers) at once; nothing is told. Their objects are left as they were
        (a dead node's Node, its pods); `remove()` or the LAN's `down()` clears the rest."""
        for agent in self.agents:
            with contextlib.suppress(Exception):
                self._crashed_containers.update(agent.runtime_containers())
        kill_netns_processes(self.netns)
        for p in [*self.servers, *self.agents]:
            if p.proc is not None:
                p.proc.wait(10)

    def disconnect(self) -> None:
        """Unplug the host from the LAN (its processes keep running)."""
        _run(["ip", "link", "set", self.veth, "down"])

    def reconnect(self) -> None:
        _run(["ip", "link", "set", self.veth, "up"])

    def stop_agents(self) -> None:
        """Remove every agent's pods (through its server), then the agents. An agent whose
        server is gone cannot be told to stop its pods: the host's processes are ended."""
        for agent in self.agents:
            if not _running(agent.server):
                kill_netns_processes(self.netns)
            agent.cleanup()
        self.agents.clear()
        remove_cgroups(self._crashed_containers)
        self._crashed_containers.clear()
        for slot in self._slots:
            _slots_in_use.discard(slot.index)
        self._slots.clear()

    def stop_servers(self) -> None:
        for srv in self.servers:
            srv.cleanup()
        self.servers.clear()

    def remove(self) -> None:
        """Whatever still runs in the host, then the host itself."""
        remove_host(self.netns, self.veth)

    def state(self) -> dict[str, Any]:
        return {"ip": self.ip, "netns": self.netns, "veth": self.veth,
                "dirs": [p.data_dir for p in [*self.servers, *self.agents]]}


def remove_cgroups(container_ids: set[str]) -> None:
    """The (empty) cgroups of containers whose processes were killed under runc's feet."""
    roots = [os.path.join("/sys/fs/cgroup", d) for d in ("", *os.listdir("/sys/fs/cgroup"))]
    for cid in container_ids:
        for root in roots:
            with contextlib.suppress(OSError):
                os.rmdir(os.path.join(root, "k8s.io", cid))


def remove_host(netns: str, veth: str | None, dirs: Sequence[str] = ()) -> None:
    kill_netns_processes(netns)
    for d in dirs:
        for mount in sorted(mounts_under(d), reverse=True):
            _run(["umount", "-l", mount], check=False)
        shutil.rmtree(d, ignore_errors=True)
    if veth:
        _run(["ip", "link", "del", veth], check=False)
    _run(["ip", "netns", "del", netns], check=False)


class Lan:
    """A Linux bridge named `name` holding the first address of `cidr`, and the hosts on it.
    With `nat`, hosts reach beyond this machine (masqueraded behind its address)."""

    def __init__(self, name: str = "kyblan0", cidr: str = "10.77.0.0/24", nat: bool = False) -> None:
        if len(name) > 8:
            raise ValueError("a LAN name has at most 8 characters (its veths add up to 7 more)")
        self.name = name
        self.cidr = cidr
        net = ipaddress.ip_network(cidr)
        self.gateway = str(net[1])
        self.nat = nat
        self.hosts: list[Host] = []
        self.supervisor: int | None = None

    def __enter__(self) -> Lan:
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    def up(self) -> None:
        down(self.name)  # what a run that died left behind
        prefix = ipaddress.ip_network(self.cidr).prefixlen
        _run(["ip", "link", "add", self.name, "type", "bridge"])
        self.save_state()
        _run(["ip", "addr", "add", f"{self.gateway}/{prefix}", "dev", self.name])
        _run(["ip", "link", "set", self.name, "up"])
        if self.nat:
            rules = (f"table ip {self.name} {{\n chain post {{\n  type nat hook postrouting priority srcnat;\n"
                     f"  ip saddr {self.cidr} oifname != \"{self.name}\" masquerade\n }}\n}}\n")
            r = subprocess.run(["nft", "-f", "-"], input=rules, capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"nft: {r.stderr.strip()}")

    def host(self, name: str) -> Host:
        """A new host on this LAN with the next free address."""
        if not _NAME.match(name):
            raise ValueError(f"host name {name!r}: 1-6 lower-case letters or digits")
        if any(h.name == name for h in self.hosts):
            raise ValueError(f"host {name!r} exists")
        index = len(self.hosts) + 2
        host = Host(self, name, str(ipaddress.ip_network(self.cidr)[index]), index)
        self.hosts.append(host)
        self.save_state()
        host.create()
        return host

    def down(self) -> None:
        """Agents first (their servers remove their pods), then servers, then the hosts and
        the bridge."""
        try:
            # Cordoned first: the pods a workload recreates while its nodes go find none. Then
            # their pods deleted with a short grace (a force delete leaves the agent the pod's
            # own, often 30 s), the hosts' agents removed side by side.
            live = [a for h in self.hosts for a in h.agents if _running(a.server)]
            for agent in live:
                agent.server.kubectl("cordon", agent.node_name, timeout=20)
            for agent in live:
                agent.server.kubectl("delete", "pods", "--all-namespaces", "--field-selector",
                                     f"spec.nodeName={agent.node_name}", "--grace-period=1", "--wait=false",
                                     timeout=20)
            with ThreadPoolExecutor(max(1, len(self.hosts))) as pool:
                list(pool.map(Host.stop_agents, self.hosts))
                # Together: etcd members stopped one by one would wait on a lost quorum.
                list(pool.map(Host.stop_servers, self.hosts))
        finally:
            down(self.name)
            self.hosts.clear()

    def save_state(self) -> None:
        os.makedirs(STATE_DIR, exist_ok=True)
        state = {"name": self.name, "cidr": self.cidr, "nat": self.nat, "supervisor": self.supervisor,
                 "hosts": {h.name: h.state() for h in self.hosts}}
        tmp = _state_path(self.name) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(state, f, indent=1)
        os.replace(tmp, _state_path(self.name))


def down(lan: str) -> None:
    """Remove LAN `lan`: every host namespace named `<lan>-*` with what runs in it, the
    mounts and dirs its state file lists, the veths, the bridge and the NAT table."""
    state = read_state(lan)
    hosts = state.get("hosts") or {}
    listed = _run(["ip", "netns", "list"], check=False).stdout.split()
    names = {h["netns"] for h in hosts.values()} | {n for n in listed if n.startswith(f"{lan}-")}
    veths = {h["netns"]: h.get("veth") for h in hosts.values()}
    dirs = {h["netns"]: h.get("dirs") or [] for h in hosts.values()}
    for netns in sorted(names):
        remove_host(netns, veths.get(netns), dirs.get(netns, []))
    _run(["ip", "link", "del", lan], check=False)
    if shutil.which("nft"):
        _run(["nft", "delete", "table", "ip", lan], check=False)
    with contextlib.suppress(OSError):
        os.unlink(_state_path(lan))


def leftovers(lan: str) -> list[str]:
    """What of LAN `lan` is still on this machine (empty once it is down)."""
    out = [f"netns {n}" for n in _run(["ip", "netns", "list"], check=False).stdout.split() if n.startswith(f"{lan}-")]
    links = _run(["ip", "-o", "link", "show"], check=False).stdout
    out += [f"link {m}" for m in re.findall(rf"^\d+: ({re.escape(lan)}(?:h\d+)?)[@:]", links, re.M)]
    if os.path.exists(_state_path(lan)):
        out.append(f"state {_state_path(lan)}")
    return out


def server_token(server: ServerProcess) -> str:
    """The cluster's server token (another server joins with it), as the first server made it."""
    with open(os.path.join(server.data_dir, "token"), encoding="utf-8") as f:
        return f.read().strip()


def join_token(server: ServerProcess, ttl: str = "1h") -> tuple[str, str]:
    """A bootstrap token and the CA pin (`sha256:...`) an agent joins `server` with."""
    r = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "token", "create", "--ttl", ttl,
                        "--print-join-command", "--kubeconfig", server.kubeconfig],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"kyb token create failed: {r.stderr}")
    words = r.stdout.split()
    return words[words.index("--token") + 1], words[words.index("--ca-cert-hash") + 1]


@contextlib.contextmanager
def cluster(agents: int = 2, lan: str = "kyblan0", cidr: str = "10.77.0.0/24", nat: bool = False,
            server_args: Sequence[str] = (), agent_args: Sequence[str] = (), servers: int = 1
            ) -> Iterator[tuple[Lan, ServerProcess, list[AgentProcess]]]:
    """A LAN with hosts `srv1`.. running servers and hosts `ag1`.. each running an agent that
    joined the first server with a bootstrap token; all of it removed afterwards. One server
    keeps SQLite; several run embedded etcd, the first with --cluster-init, the others
    joining it with its server token (`kyb server --server URL --token T`). Yields the first
    server; the others are `net.hosts[i].servers[0]`."""
    with Lan(lan, cidr, nat=nat) as net:
        srv = net.host("srv1").server(extra_args=[*(["--cluster-init"] if servers > 1 else []), *server_args])
        for i in range(2, servers + 1):
            # On the first's port, as on separate machines: the `kubernetes` Endpoints carry one
            # port for every address, and agents fail over to the servers they list.
            net.host(f"srv{i}").server(extra_args=["--server", srv.url, "--token", server_token(srv), *server_args],
                                       port=srv.port)
        token, pin = join_token(srv)
        started = [net.host(f"ag{i}").agent(srv, token=token, ca_cert_hash=pin, extra_args=agent_args, start=False)
                   for i in range(1, agents + 1)]
        # Side by side: each spends most of its start waiting for its own containerd.
        for agent in started:
            agent.start(wait=False)
        for agent in started:
            agent.wait_ready(150)
        yield net, srv, started


def _up(args: argparse.Namespace) -> int:
    why = hosts_prerequisites()
    if why:
        print(f"cannot run hosts here: {why}", file=sys.stderr)
        return 1
    stop = {"now": False}

    def on_signal(*_: object) -> None:
        stop["now"] = True

    pid = _supervisor(args.lan)
    if pid:
        print(f"LAN {args.lan} is up already (supervisor pid {pid}); take it down first (down)", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with cluster(args.hosts - args.servers, args.lan, args.cidr, args.nat, shlex.split(args.server_args),
                 shlex.split(args.agent_args), args.servers) as (net, srv, agents):
        net.supervisor = os.getpid()
        net.save_state()
        print("servers: " + ", ".join(f"{p.url} (host {h.name})" for h in net.hosts for p in h.servers), flush=True)
        print("agents: " + ", ".join(f"{a.node_name} ({h.ip})" for h in net.hosts for a in h.agents),
              flush=True)
        print(f"export KUBECONFIG={srv.kubeconfig}", flush=True)
        print(f"run a command in a host: nsenter --net={NETNS_DIR}/{args.lan}-ag1 <command>", flush=True)
        print(f"READY {srv.kubeconfig}", flush=True)
        while not stop["now"]:
            time.sleep(0.5)
        print("removing the hosts", flush=True)
    return 0


def _supervisor(lan: str) -> int | None:
    """The pid of the `up` that holds LAN `lan`, if it runs."""
    pid = read_state(lan).get("supervisor")
    return int(pid) if pid and os.path.exists(f"/proc/{pid}") and not _zombie(int(pid)) else None


def _down(args: argparse.Namespace) -> int:
    pid = read_state(args.lan).get("supervisor")
    if pid:
        # Its own down removes the agents' pods through the server before the hosts go.
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}") and not _zombie(int(pid)):
            time.sleep(0.2)
    down(args.lan)
    left = leftovers(args.lan)
    if left:
        print("left behind: " + ", ".join(left), file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kybernetes.testing.hosts",
                                description="Network-namespace hosts on a LAN bridge running kyb server and agents.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="1 server + N-1 agents; stays in the foreground until SIGTERM/SIGINT")
    up.add_argument("--hosts", type=int, default=3, help="hosts in all (the first --servers run servers)")
    up.add_argument("--servers", type=int, default=1,
                    help="servers among them (several: embedded etcd, joined with the first's server token)")
    up.add_argument("--lan", default="kyblan0", help="bridge name (at most 8 characters)")
    up.add_argument("--cidr", default="10.77.0.0/24")
    up.add_argument("--nat", action="store_true", help="let the hosts reach beyond this machine")
    up.add_argument("--server-args", default="", help="more kyb server arguments (one string)")
    up.add_argument("--agent-args", default="", help="more kyb agent arguments (one string)")
    dn = sub.add_parser("down", help="remove a LAN and everything on it")
    dn.add_argument("--lan", default="kyblan0")
    dn.add_argument("--timeout", type=float, default=120.0)
    st = sub.add_parser("status", help="what a LAN holds (exit status 0 if it is up, 3 if not)")
    st.add_argument("--lan", default="kyblan0")
    args = p.parse_args(argv)
    if args.cmd == "up":
        if not 1 <= args.servers <= args.hosts <= len(AGENT_SLOTS) + args.servers:
            p.error(f"--servers: 1 to --hosts; --hosts: at most {len(AGENT_SLOTS)} more than --servers")
        return _up(args)
    if args.cmd == "down":
        return _down(args)
    print(json.dumps(read_state(args.lan), indent=1) if read_state(args.lan) else f"no LAN {args.lan}")
    return 0 if _supervisor(args.lan) else 3


if __name__ == "__main__":
    sys.exit(main())
