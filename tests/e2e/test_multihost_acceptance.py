"""Issue 17's acceptance on namespace hosts (kybernetes/testing/hosts.py, LAN kyblan3).

One cluster for the whole module: three servers on embedded etcd (the first founds it with
--cluster-init, two join with its server token) and two agents that joined with a bootstrap
token, each in its own host. On it, in order:

- the seed's example (examples/web.yaml), spread over both agents, answers on port 80 of
  every node with both pods in rotation;
- a pod on one agent reaches the pod on the other by IP and through the Service's DNS name;
- the server holding the controller manager's lease dies (`Host.crash()`: kill -9 of it and
  its etcd member) while a client that knows every server writes ConfigMaps: every
  acknowledged write survives, kubectl on another server carries on, the agents' heartbeats
  go on, the controller manager and scheduler move (a Deployment scaled after the kill gets
  its pods); the server restarts on its data dir and serves what was written meanwhile;
- a crashed agent's Node goes NotReady and its pods come back on the other agent;
- an agent with a wrong or an expired bootstrap token is refused;
- a snapshot of a member restored into a fresh one-member server gives back every object;
- nothing of the LAN is left afterwards.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from kybernetes.client import apiservers
from kybernetes.client.resources import CONFIGMAPS
from kybernetes.testing.agent import AgentProcess
from kybernetes.testing.cluster import ServerProcess, etcd_member_pids, process_argvs, process_tree, wait_for
from kybernetes.testing.etcd import etcd_binary
from kybernetes.testing.hosts import (
    Host,
    Lan,
    cluster,
    hosts_prerequisites,
    join_token,
    leftovers,
    pids_in_netns,
)
from tests.e2e.test_api_failover import client_for
from tests.e2e.test_node_join import kubeconfig_for, whoami
from tests.e2e.test_services import EXAMPLE, http_get, manifest
from tests.e2e.test_snapshots import port_in

pytestmark = [pytest.mark.skipif(hosts_prerequisites() is not None, reason=hosts_prerequisites() or ""),
              pytest.mark.skipif(etcd_binary() is None, reason="no etcd binary (Debian package etcd-server)")]

LAN = "kyblan3"
CIDR = "10.77.3.0/24"
NS = "accept-e2e"
# Pods on a node found unreachable are evicted 2 s later instead of 300 s.
SERVER_ARGS = ["--default-toleration-seconds", "2"]
# Kinds nothing rewrites on its own: restored with the very resourceVersion they had.
STATIC = {"ConfigMap", "Secret", "ServiceAccount"}


@dataclass
class Cluster:
    lan: Lan
    servers: list[ServerProcess]
    agents: list[AgentProcess]
    written: list[str] = field(default_factory=list)

    def host_of(self, proc: ServerProcess | AgentProcess) -> Host:
        return next(h for h in self.lan.hosts if proc in h.servers or proc in h.agents)

    def live(self) -> ServerProcess:
        return next(s for s in self.servers if s.proc is not None and s.proc.poll() is None)


def get_json(srv: ServerProcess, *args: str) -> dict[str, Any]:
    return json.loads(srv.kubectl_ok("get", *args, "-o", "json"))


def web_pods(srv: ServerProcess) -> list[dict[str, Any]]:
    """The web pods that are Ready and not going away."""
    items = get_json(srv, "-n", NS, "pods", "-l", "app=web")["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions") or [])]


def node_ready(srv: ServerProcess, node: str) -> str:
    r = srv.kubectl("get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
    return r.stdout.strip() if r.ok else ""


def voters(hc: Cluster, srv: ServerProcess) -> list[str]:
    """The voting members as `srv`'s own etcd member lists them (run in its host)."""
    r = hc.host_of(srv).exec([sys.executable, "-m", "kybernetes.cli.main", "etcd", "member-list", "--data-dir",
                              srv.data_dir])
    assert r.returncode == 0, r.stderr
    return [line for line in r.stdout.splitlines() if "\tvoter\t" in line]


@pytest.fixture(scope="module")
def hc() -> Iterator[Cluster]:
    dirs: list[str] = []
    netns: list[str] = []
    with cluster(agents=2, lan=LAN, cidr=CIDR, servers=3, server_args=SERVER_ARGS) as (net, _srv, agents):
        try:
            yield Cluster(net, [h.servers[0] for h in net.hosts if h.servers], agents)
        finally:
            dirs = [d for h in net.hosts for d in h.state()["dirs"]]
            netns = [h.netns for h in net.hosts]
    assert leftovers(LAN) == []
    assert all(not pids_in_netns(n) for n in netns)
    ours = [pid for pid, argv in process_argvs() if any(d.encode() in a for d in dirs for a in argv)]
    assert ours == [], f"processes left: {ours}"
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert not [d for d in dirs if d in mounts], "mounts left"
    assert not [d for d in dirs if os.path.exists(d)], "data dirs left"


def test_three_servers_and_two_agents_form_one_cluster(hc: Cluster) -> None:
    srv = hc.servers[0]
    server_ips = {hc.host_of(s).ip for s in hc.servers}
    assert len(server_ips) == 3
    # The joiners came in as learners and were promoted: three votes.
    assert len(voters(hc, hc.servers[2])) == 3
    # Every server lists itself, on the one port they share, for the agents to fail over to.
    eps = wait_for(lambda: (e := get_json(srv, "endpoints", "kubernetes"))
                   and {a["ip"] for s in e.get("subsets") or [] for a in s.get("addresses") or []} == server_ips
                   and e, timeout=30, what="three servers in the kubernetes Endpoints")
    assert [p["port"] for s in eps["subsets"] for p in s["ports"]] == [srv.port]
    for a in hc.agents:
        assert node_ready(srv, a.node_name) == "True"
        saved = os.path.join(a.data_dir, "apiservers.json")
        wait_for(lambda saved=saved: set(apiservers.load_servers(saved)) >= {s.url for s in hc.servers},
                 timeout=30, what=f"{a.node_name} to know every server")
    srv.kubectl_ok("create", "namespace", NS)


def test_the_seed_example_spread_over_both_agents_answers_on_port_80_of_every_node(hc: Cluster) -> None:
    srv = hc.servers[0]
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = NS
        if doc["kind"] == "Deployment":
            # One pod per node; a node that is tainted (gone) is no place to spread to.
            doc["spec"]["template"]["spec"]["topologySpreadConstraints"] = [
                {"maxSkew": 1, "topologyKey": "kubernetes.io/hostname", "whenUnsatisfiable": "DoNotSchedule",
                 "nodeTaintsPolicy": "Honor", "labelSelector": {"matchLabels": {"app": "web"}}}]
    srv.kubectl_ok("apply", "-f", "-", stdin=manifest(*docs))
    pods = wait_for(lambda: len(p := web_pods(srv)) == 2 and p, timeout=90, what="two web pods ready")
    assert {p["spec"]["nodeName"] for p in pods} == {a.node_name for a in hc.agents}
    names = {p["metadata"]["name"] for p in pods}
    for a in hc.agents:
        url = f"http://{hc.host_of(a).ip}:80/index.html"
        # Until the node's proxy has both endpoints (the second pod has only just become ready).
        wait_for(lambda url=url: {_get(url) for _ in range(20)} == names, timeout=30,
                 what=f"both pods answering on port 80 of {a.node_name}")


def _get(url: str) -> str | None:
    try:
        return http_get(url, timeout=3)
    except OSError:
        return None


def test_a_pod_on_one_agent_reaches_the_pod_on_the_other_by_ip_and_by_service_name(hc: Cluster) -> None:
    srv = hc.servers[0]
    by_node = {p["spec"]["nodeName"]: p for p in web_pods(srv)}
    a, b = (by_node[ag.node_name] for ag in hc.agents)
    a_name, b_name = a["metadata"]["name"], b["metadata"]["name"]

    def from_a(script: str) -> str | None:
        r = srv.kubectl("exec", "-n", NS, a_name, "--", "sh", "-c", script, timeout=30)
        return r.stdout if r.ok else None

    assert wait_for(lambda: from_a(f"wget -qO- http://{b['status']['podIP']}/index.html"), timeout=30,
                    what=f"{a_name} reaches {b_name} by IP").strip() == b_name
    by_name = f"http://web.{NS}.svc.cluster.local/index.html"
    wait_for(lambda: from_a(f"wget -qO- {by_name}"), timeout=30, what="the Service by name")
    # Both pods answer through the name (the asking pod itself too, hairpin).
    out = from_a(f"for i in $(seq 1 20); do wget -qO- {by_name}; done")
    assert out is not None and set(out.split()) == {a_name, b_name}, out


def _holder_server(hc: Cluster, srv: ServerProcess, lease: str) -> ServerProcess | None:
    """The server whose child holds kube-system/`lease` (identity host_pid)."""
    holder = get_json(srv, "lease", "-n", "kube-system", lease)["spec"].get("holderIdentity") or ""
    pid = int(holder.rpartition("_")[2] or 0)
    return next((s for s in hc.servers if s.proc is not None and pid in process_tree(s.proc.pid)), None)


class Writer:
    """ConfigMaps written one after another through a client that knows every server, in a
    thread of its own; `acked` holds those the API acknowledged."""

    def __init__(self, kubeconfig: str, urls: list[str]) -> None:
        self.kubeconfig, self.urls = kubeconfig, urls
        self.acked: list[str] = []
        self.failed = 0
        self.last_url = ""
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        client = client_for(self.kubeconfig, self.urls)
        try:
            while not self.stop.is_set():
                # A new name for each try: a write that failed may have been stored anyway.
                name = f"w-{uuid.uuid4().hex[:8]}"
                try:
                    await client.create(CONFIGMAPS, NS, {"metadata": {"name": name}, "data": {"v": name}})
                    self.acked.append(name)
                except Exception:  # noqa: BLE001 - unacknowledged: not counted
                    self.failed += 1
                    await asyncio.sleep(0.1)
        finally:
            self.last_url = client.base_url
            await client.close()


def test_kill_9_of_a_server_loses_no_acknowledged_write_and_it_rejoins(hc: Cluster) -> None:
    first = hc.servers[0]
    victim = wait_for(lambda: _holder_server(hc, first, "kube-controller-manager"), timeout=30,
                      what="the controller manager's leader")
    others = [s for s in hc.servers if s is not victim]
    writer = Writer(victim.kubeconfig, [victim.url, *(s.url for s in others)])
    writer.thread.start()
    try:
        wait_for(lambda: len(writer.acked) >= 10, timeout=30, what="ten writes before the kill")
        before = len(writer.acked)
        killed_at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        assert len(etcd_member_pids(victim.data_dir)) == 1
        hc.host_of(victim).crash()
        assert not etcd_member_pids(victim.data_dir)  # its etcd member died with it
        # Scaled at once: only a controller manager and scheduler that took over can act on it.
        others[0].kubectl_ok("-n", NS, "scale", "deployment", "web", "--replicas=3")
        wait_for(lambda: len(writer.acked) >= before + 10, timeout=30, what="ten writes after the kill")
    finally:
        writer.stop.set()
        writer.thread.join(30)
    stored = {i["metadata"]["name"] for i in get_json(others[1], "-n", NS, "configmaps")["items"]}
    lost = [n for n in writer.acked if n not in stored]
    assert not lost, f"{len(lost)} acknowledged writes lost of {len(writer.acked)}"
    assert writer.last_url in {s.url for s in others}  # it wrote on through another server
    hc.written = list(writer.acked)
    # The agents' heartbeats go on through the servers left.
    for a in hc.agents:
        wait_for(lambda a=a: others[1].kubectl("get", "lease", "-n", "kube-node-lease", a.node_name, "-o",
                                               "jsonpath={.spec.renewTime}").stdout[:19] > killed_at,
                 timeout=20, what=f"{a.node_name}'s lease renewed after the kill")
        assert node_ready(others[0], a.node_name) == "True"
        assert a.proc is not None and a.proc.poll() is None, a.log_tail()
    wait_for(lambda: len(web_pods(others[0])) == 3, timeout=60, what="the third web pod after the kill")
    for lease in ("kube-controller-manager", "kube-scheduler"):
        assert _holder_server(hc, others[0], lease) in others, lease
    # Back on its data dir: its member rejoins and it serves what was written without it.
    victim.start(timeout=60)
    assert "etcd member restarted on its data" in victim.log_tail(20000)
    assert len(voters(hc, victim)) == 3
    stored = {i["metadata"]["name"] for i in get_json(victim, "-n", NS, "configmaps")["items"]}
    assert set(writer.acked) <= stored
    assert get_json(victim, "-n", NS, "deployment", "web")["spec"]["replicas"] == 3


def test_a_crashed_agents_pods_come_back_on_the_other_agent(hc: Cluster) -> None:
    srv = hc.live()
    gone, kept = hc.agents[1], hc.agents[0]
    assert any(p["spec"]["nodeName"] == gone.node_name for p in web_pods(srv))
    hc.host_of(gone).crash()
    wait_for(lambda: node_ready(srv, gone.node_name) == "Unknown", timeout=40,
             what=f"{gone.node_name} NotReady (Unknown)")
    pods = wait_for(lambda: len(p := web_pods(srv)) == 3 and {x["spec"]["nodeName"] for x in p} == {kept.node_name}
                    and p, timeout=60, what=f"three web pods ready on {kept.node_name}")
    assert len(pods) == 3


def _refused_agent(srv: ServerProcess, token: str, pin: str, node: str) -> str:
    work = tempfile.mkdtemp(prefix="kyb-refused-")
    try:
        r = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "agent", "--server", srv.url,
                            "--token", token, "--ca-cert-hash", pin, "--node-name", node, "--data-dir", work,
                            "--containerd-socket", "/nonexistent.sock"], capture_output=True, text=True, timeout=60)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert r.returncode != 0
    assert srv.kubectl("get", "node", node).returncode != 0, f"node {node} registered"
    return r.stderr + r.stdout


def test_an_agent_with_a_wrong_or_expired_token_is_refused(hc: Cluster) -> None:
    srv = hc.live()
    token, pin = join_token(srv, ttl="4s")
    expires = time.monotonic() + 4
    # A good token until it expires.
    work = tempfile.mkdtemp(prefix="kyb-token-")
    try:
        config = kubeconfig_for(srv, os.path.join(work, "bootstrap.yaml"), {"token": token})
        assert whoami(srv.kubectl, config)["username"] == f"system:bootstrap:{token.split('.')[0]}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    wrong = token.split(".")[0] + ".0000000000000000"
    assert "refused the bootstrap token" in _refused_agent(srv, wrong, pin, "kyb-wrong-token")
    time.sleep(max(0.0, expires + 0.5 - time.monotonic()))
    assert "refused the bootstrap token" in _refused_agent(srv, token, pin, "kyb-expired-token")


def test_a_snapshot_restored_into_a_fresh_server_gives_back_every_object(hc: Cluster) -> None:
    srv = hc.live()
    host = hc.host_of(srv)
    kinds = "namespaces,configmaps,secrets,services,deployments,serviceaccounts"

    def objects(s: ServerProcess) -> dict[tuple[str, str, str], str]:
        items = get_json(s, kinds, "-A")["items"]
        return {(i["kind"], i["metadata"].get("namespace", ""), i["metadata"]["name"]):
                i["metadata"]["resourceVersion"] for i in items}

    r = host.exec([sys.executable, "-m", "kybernetes.cli.main", "snapshot", "save", "--data-dir", srv.data_dir])
    assert r.returncode == 0, r.stderr
    path = r.stdout.strip()
    before = objects(srv)
    srv.kubectl_ok("-n", NS, "create", "configmap", "after-snapshot")
    assert set(hc.written) <= {n for _k, ns, n in before if ns == NS}
    parent = tempfile.mkdtemp(prefix="kyb-accept-restore-")
    client, peer = port_in(23300, 23400), port_in(23300, 23400)
    restored = ServerProcess(data_dir=os.path.join(parent, "data"), port=port_in(27400, 27500), extra_args=[
        "--cluster-init", "--etcd-client-port", str(client), "--etcd-peer-port", str(peer),
        "--disable-scheduler", "--disable-controllers", "--snapshot-schedule", "off"])
    try:
        r = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "snapshot", "restore", path, "--data-dir",
                            restored.data_dir, "--etcd-peer-port", str(peer)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        restored.start(timeout=90)
        after = objects(restored)
        # Every object back, those without a status as they were (the others may have
        # moved on between the snapshot and the listing); nothing written after it.
        missing = [k for k in before if k not in after]
        assert not missing, missing
        changed = [k for k, rv in before.items() if k[0] in STATIC and after[k] != rv]
        assert not changed, changed
        assert ("ConfigMap", NS, "after-snapshot") not in after
    finally:
        restored.stop()
        wait_for(lambda: not [p for p, argv in process_argvs() if argv and argv[0].endswith(b"etcd")
                              and any(restored.data_dir.encode() in a for a in argv)],
                 timeout=20, what="the restored member to exit")
        shutil.rmtree(parent, ignore_errors=True)
