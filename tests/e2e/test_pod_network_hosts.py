"""The pod network across nodes on real kernels.

First the agent's netlink shell (agent/overlay.py) alone, on two "hosts" made here: network
namespaces joined by a veth pair (the LAN, 10.77.2.0/24), each with a CNI-like bridge
(kybo1, kybo2) holding its pod CIDR's gateway and a "pod" namespace behind it. Then whole
agents: a server and two agents on namespace-hosts (kybernetes/testing/hosts.py, LAN
kyblan2), a busybox pod on each, reaching each other by IP, through a ClusterIP Service and by
the Service's DNS name, with the source address kept, and the Service's node port on one agent
reaching the pod on the other. Everything made is removed and that is checked."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from kybernetes.agent import egress, overlay

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("busybox") is None,
                                reason="needs root, iproute2 and busybox")

PREFIX = "kybov"  # every namespace made here starts with it


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {r.stderr.strip()}")
    return r


def netns_list() -> set[str]:
    return {line.split()[0] for line in sh("ip", "netns", "list").stdout.splitlines() if line.strip()}


@dataclass
class NsHost:
    name: str
    lan_ip: str
    pod_cidr: str
    bridge: str

    @property
    def netns(self) -> str:
        return f"{PREFIX}-{self.name}"

    @property
    def pod_netns(self) -> str:
        return f"{PREFIX}-{self.name}-pod"

    @property
    def pod_ip(self) -> str:
        return self.pod_cidr.rsplit(".", 1)[0] + ".2"

    def node(self, mac: str) -> dict:
        return {"metadata": {"name": self.name, "annotations": overlay.own_annotations("vxlan", self.lan_ip, mac)},
                "spec": {"podCIDR": self.pod_cidr}}

    def pod_exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", self.pod_netns, *argv, check=False)


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[NsHost, NsHost]]:
    hosts = (NsHost("a", "10.77.2.11", "10.42.249.0/24", "kybo1"), NsHost("b", "10.77.2.12", "10.42.250.0/24", "kybo2"))
    try:
        for h in hosts:
            sh("ip", "netns", "add", h.netns)
            sh("ip", "netns", "add", h.pod_netns)
        a, b = hosts
        sh("ip", "link", "add", "eth0", "netns", a.netns, "type", "veth", "peer", "name", "eth0", "netns", b.netns)
        for h in hosts:
            gateway = h.pod_cidr.rsplit(".", 1)[0] + ".1"
            for argv in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{h.lan_ip}/24", "dev", "eth0"],
                         ["ip", "link", "set", "eth0", "up"], ["sysctl", "-qw", "net.ipv4.ip_forward=1"],
                         ["ip", "link", "add", h.bridge, "type", "bridge"],
                         ["ip", "addr", "add", f"{gateway}/24", "dev", h.bridge], ["ip", "link", "set", h.bridge, "up"],
                         ["ip", "link", "add", "pod0", "type", "veth", "peer", "name", "eth0", "netns", h.pod_netns],
                         ["ip", "link", "set", "pod0", "master", h.bridge, "up"]):
                sh("ip", "netns", "exec", h.netns, *argv)
            for argv in (["ip", "link", "set", "lo", "up"], ["ip", "addr", "add", f"{h.pod_ip}/24", "dev", "eth0"],
                         ["ip", "link", "set", "eth0", "up"], ["ip", "route", "add", "default", "via", gateway]):
                sh("ip", "netns", "exec", h.pod_netns, *argv)
        yield hosts
    finally:
        for h in hosts:
            for ns in (h.pod_netns, h.netns):
                sh("ip", "netns", "del", ns, check=False)


def ping(src: NsHost, ip: str) -> bool:
    return src.pod_exec("busybox", "ping", "-c", "1", "-W", "2", ip).returncode == 0


def nft(host: NsHost, script: str) -> None:
    r = subprocess.run(["ip", "netns", "exec", host.netns, "nft", "-f", "-"], input=script, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


@contextlib.contextmanager
def remote_addr_server(netns: str, ip: str, tmp_path) -> Iterator[str]:  # noqa: ANN001
    """An HTTP server in `netns` answering with the address it was reached from."""
    cgi = tmp_path / "www" / "cgi-bin"
    cgi.mkdir(parents=True, exist_ok=True)
    (cgi / "ip").write_text('#!/bin/sh\nprintf "Content-Type: text/plain\\r\\n\\r\\n%s" "$REMOTE_ADDR"\n')
    (cgi / "ip").chmod(0o755)
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "busybox", "httpd", "-f", "-p", f"{ip}:8080",
                             "-h", str(tmp_path / "www")])
    try:
        yield f"http://{ip}:8080/cgi-bin/ip"
    finally:
        proc.kill()
        proc.wait()


def fetch(src: NsHost, url: str) -> str:
    why = ""
    for _ in range(20):
        # Not wget -T: Debian's busybox 1.35 crashes on it.
        try:
            r = subprocess.run(["ip", "netns", "exec", src.pod_netns, "busybox", "wget", "-q", "-O", "-", url],
                               capture_output=True, text=True, timeout=5)
        except subprocess.TimeoutExpired:
            why = "timed out"
            continue
        if r.returncode == 0:
            return r.stdout.strip()
        why = r.stderr
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer from {src.name}: {why}")


def converge(backend: str, hosts: tuple[NsHost, ...], nodes: list[dict]) -> None:
    for h in hosts:
        shell = overlay.Netlink(h.netns)
        want = overlay.desired(backend, h.name, nodes)
        shell.apply(overlay.diff(want, shell.observed()))
        # What the kernel holds now reads back as exactly what was planned.
        assert shell.observed() == want


def test_vxlan_links_pods_on_two_hosts_and_forgets_a_node_that_goes(tmp_path):
    before = netns_list()
    with two_hosts() as (a, b):
        assert not ping(a, b.pod_ip)  # nothing routes pod CIDRs between the hosts yet
        macs = {h.name: overlay.Netlink(h.netns).ensure_vtep(h.lan_ip, h.pod_cidr) for h in (a, b)}
        assert all(mtu == 1500 - overlay.VXLAN_OVERHEAD for _mac, mtu in macs.values())
        # Idempotent: a second call (an agent restart) keeps the device and its MAC.
        assert overlay.Netlink(a.netns).ensure_vtep(a.lan_ip, a.pod_cidr) == macs["a"]
        nodes = [a.node(macs["a"][0]), b.node(macs["b"][0])]
        converge("vxlan", (a, b), nodes)
        route = sh("ip", "-n", a.netns, "route", "show", b.pod_cidr).stdout
        assert f"via {overlay.vtep_ip(b.pod_cidr)} dev {overlay.DEVICE}" in route and "onlink" in route
        assert ping(a, b.pod_ip) and ping(b, a.pod_ip)
        # With the node's egress masquerade in place, pod to pod across nodes keeps its
        # source address (the rule without the other nodes' CIDRs would hide it).
        with remote_addr_server(b.pod_netns, b.pod_ip, tmp_path) as pod_url, \
                remote_addr_server(b.netns, b.lan_ip, tmp_path) as host_url:
            nft(a, egress.masquerade_script("kybov-egress", a.pod_cidr))
            assert fetch(a, pod_url) == overlay.vtep_ip(a.pod_cidr)
            nft(a, egress.masquerade_script("kybov-egress", a.pod_cidr, overlay.cluster_cidrs(nodes)))
            assert fetch(a, pod_url) == a.pod_ip
            assert fetch(a, host_url) == a.lan_ip  # leaving the pod network: masqueraded
        # b leaves the cluster: a's route, neighbour and FDB entry for it go.
        converge("vxlan", (a,), nodes[:1])
        assert sh("ip", "-n", a.netns, "route", "show", b.pod_cidr).stdout.strip() == ""
        assert macs["b"][0] not in sh("bridge", "-n", a.netns, "fdb", "show", "dev", overlay.DEVICE).stdout
        assert not ping(a, b.pod_ip)
        # A device someone removed is made again, with our VTEP address.
        sh("ip", "-n", a.netns, "link", "del", overlay.DEVICE)
        overlay.Netlink(a.netns).ensure_vtep(a.lan_ip, a.pod_cidr)
        assert f"inet {overlay.vtep_ip(a.pod_cidr)}/32" in sh("ip", "-n", a.netns, "addr", "show", overlay.DEVICE).stdout
        assert overlay.Netlink(a.netns).remove_vtep()
        assert sh("ip", "-n", a.netns, "link", "show", overlay.DEVICE, check=False).returncode != 0
    assert netns_list() == before


def test_host_gw_routes_pods_via_the_other_hosts_lan_address():
    before = netns_list()
    with two_hosts() as (a, b):
        nodes = [{"metadata": {"name": h.name}, "spec": {"podCIDR": h.pod_cidr},
                  "status": {"addresses": [{"type": "InternalIP", "address": h.lan_ip}]}} for h in (a, b)]
        converge("host-gw", (a, b), nodes)
        assert f"via {b.lan_ip} dev eth0" in sh("ip", "-n", a.netns, "route", "show", b.pod_cidr).stdout
        assert ping(a, b.pod_ip) and ping(b, a.pod_ip)
        # Our routes, and only ours, are removed (the kernel's own link routes stay).
        assert overlay.Netlink(a.netns).remove_routes() == 1
        assert not ping(a, b.pod_ip)
        assert a.lan_ip in sh("ip", "-n", a.netns, "route").stdout
    assert netns_list() == before


# -- whole agents on namespace-hosts ------------------------------------------------------------

LAN = "kyblan2"
IMAGE = "docker.io/library/busybox:1.35"
# Answers with the address the request came from: what a pod on another node sees of us.
WHOAMI = ("mkdir -p /www/cgi-bin; "
          "printf '#!/bin/sh\\nprintf \"Content-Type: text/plain\\\\r\\\\n\\\\r\\\\n%%s\" \"$REMOTE_ADDR\"\\n' "
          "> /www/cgi-bin/ip; chmod +x /www/cgi-bin/ip; httpd -f -p 80 -h /www")


def pod(name: str, node: str, command: str, labels: dict | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "labels": labels or {}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command]}]}}


@pytest.mark.parametrize("backend", ["vxlan", "host-gw"])
def test_a_pod_on_one_agent_reaches_a_pod_on_another_by_ip_and_through_a_service(backend: str) -> None:
    from kybernetes.testing.agent import AgentProcess
    from kybernetes.testing.cluster import process_argvs, wait_for
    from kybernetes.testing.hosts import Lan, hosts_prerequisites, join_token, leftovers, pids_in_netns
    if hosts_prerequisites():
        pytest.skip(hosts_prerequisites() or "")
    import json
    net = Lan(LAN, "10.77.2.0/24")
    net.up()
    dirs: list[str] = []
    try:
        srv = net.host("srv").server()
        token, pin = join_token(srv)
        agents = {}
        for i, name in ((3, "ag1"), (4, "ag2")):
            host = net.host(name)
            agent = AgentProcess(srv, node_name=name, bridge=f"kybo{i}", taint=False, proxy_table=f"kybo{i}",
                                 auth_args=["--server", srv.url, "--token", token, "--ca-cert-hash", pin],
                                 pod_cidr=f"10.42.{248 + i}.0/24", wrap=host.wrap,
                                 extra_args=["--node-ip", host.ip, "--flannel-backend", backend])
            host.agents.append(agent)
            agents[name] = (host, agent)
        net.save_state()
        # Side by side: each spends most of its start waiting for its containerd. Not from
        # threads: an agent gets SIGTERM when the thread that started it ends (PDEATHSIG).
        for _host, agent in agents.values():
            agent.wait_ready = lambda timeout: None  # type: ignore[method-assign]
            agent.start()
            del agent.wait_ready
        for _host, agent in agents.values():
            agent.wait_ready(150)
        dirs = [d for h in net.hosts for d in h.state()["dirs"]]

        def node(name: str) -> dict:
            return json.loads(srv.kubectl("get", "node", name, "-o", "json").stdout or "{}")

        for name, (host, _agent) in agents.items():
            annotations = wait_for(lambda n=name: (node(n)["metadata"].get("annotations") or {}).get(
                overlay.ANNOTATION_PUBLIC_IP) and node(n)["metadata"]["annotations"], timeout=30,
                what=f"{name}'s pod network annotations")
            assert annotations[overlay.ANNOTATION_PUBLIC_IP] == host.ip
            assert annotations[overlay.ANNOTATION_BACKEND] == backend
            assert (overlay.ANNOTATION_VTEP_MAC in annotations) == (backend == "vxlan")
        made = srv.kubectl("create", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in (
            pod("web-b", "ag2", WHOAMI, {"app": "whoami"}), pod("client-a", "ag1", "sleep 3600"),
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "whoami", "namespace": "default"},
             "spec": {"type": "NodePort", "selector": {"app": "whoami"}, "ports": [{"port": 80, "targetPort": 80}]}})))
        assert made.returncode == 0, made.stderr

        def pod_ip(name: str) -> str:
            got = json.loads(srv.kubectl("get", "pod", name, "-o", "json").stdout or "{}")
            return (got.get("status") or {}).get("phase") == "Running" and got["status"].get("podIP")

        try:
            web_ip = wait_for(lambda: pod_ip("web-b"), timeout=60, what="web-b Running")
            client_ip = wait_for(lambda: pod_ip("client-a"), timeout=60, what="client-a Running")
        except AssertionError as e:
            raise AssertionError(f"{e}\n{srv.kubectl('describe', 'pods').stdout}\n"
                                 f"{agents['ag2'][1].log_tail()}") from None
        assert web_ip.startswith("10.42.252.") and client_ip.startswith("10.42.251.")

        def from_client(*argv: str) -> str | None:
            r = srv.kubectl("exec", "client-a", "--", *argv)
            # httpd on [::] names an IPv4 peer [::ffff:a.b.c.d].
            return r.stdout.strip().removeprefix("[::ffff:").removesuffix("]") if r.returncode == 0 else None

        ping = wait_for(lambda: from_client("ping", "-c", "1", "-W", "2", web_ip), timeout=30,
                        what="client-a pings web-b")
        assert "1 packets received" in ping
        # By IP, the far pod sees the client's own address (no masquerade inside the cluster).
        assert wait_for(lambda: from_client("wget", "-q", "-O", "-", f"http://{web_ip}/cgi-bin/ip"),
                        timeout=30, what="web-b answers client-a") == client_ip
        service_ip = json.loads(srv.kubectl("get", "service", "whoami", "-o", "json").stdout)["spec"]["clusterIP"]
        assert wait_for(lambda: from_client("wget", "-q", "-O", "-", f"http://{service_ip}/cgi-bin/ip"),
                        timeout=30, what="the whoami Service answers client-a") == client_ip
        # By name, through the cluster DNS (served on each node) and the Service.
        by_name = "http://whoami.default.svc.cluster.local/cgi-bin/ip"
        assert wait_for(lambda: from_client("wget", "-q", "-O", "-", by_name),
                        timeout=30, what="whoami.default.svc.cluster.local answers client-a") == client_ip
        # A node port on ag1 reaches the pod on ag2; from outside the cluster, so masqueraded
        # (behind ag1's VTEP address or, host-gw, its LAN address) for the answer to come back.
        node_port = json.loads(srv.kubectl("get", "service", "whoami", "-o", "json").stdout)["spec"]["ports"][0][
            "nodePort"]
        ag1_host = agents["ag1"][0]

        def via_node_port() -> str | None:
            r = net.hosts[0].exec(["busybox", "wget", "-q", "-O", "-", f"http://{ag1_host.ip}:{node_port}/cgi-bin/ip"],
                                  timeout=10)
            return r.stdout.strip().removeprefix("[::ffff:").removesuffix("]") if r.returncode == 0 else None

        seen = wait_for(via_node_port, timeout=30, what="ag1's node port answers from ag2's pod")
        assert seen == (overlay.vtep_ip("10.42.251.0/24") if backend == "vxlan" else ag1_host.ip)
        # ag2 leaves: ag1 forgets its pod CIDR (route, and for vxlan the FDB entry).
        ag1 = agents["ag1"][0]
        assert ag1.exec(["ip", "route", "show", "10.42.252.0/24"]).stdout.strip()
        agents["ag2"][1].cleanup()
        agents["ag2"][0].agents.clear()
        wait_for(lambda: not ag1.exec(["ip", "route", "show", "10.42.252.0/24"]).stdout.strip(), timeout=30,
                 what="ag1's route to ag2's pods removed")
        if backend == "vxlan":
            assert agents["ag2"][0].ip not in ag1.exec(["bridge", "fdb", "show", "dev", overlay.DEVICE]).stdout
    finally:
        dirs = dirs or [d for h in net.hosts for d in h.state()["dirs"]]
        netns = [h.netns for h in net.hosts]
        net.down()
    assert leftovers(LAN) == []
    assert all(not pids_in_netns(n) for n in netns)
    assert [pid for pid, argv in process_argvs() if any(d.encode() in a for d in dirs for a in argv)] == []
    assert not [d for d in dirs if os.path.exists(d)], "data dirs left"
