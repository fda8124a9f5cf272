"""Network-namespace hosts (kybernetes/testing/hosts.py): hosts reach each other over
their LAN bridge; a server in one host and an agent in another that joins it with a
bootstrap token run a pod that kubectl can exec into; nothing is left behind."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from kybernetes.testing.cluster import process_argvs, wait_for
from kybernetes.testing.hosts import Lan, hosts_prerequisites, join_token, leftovers, pids_in_netns

pytestmark = pytest.mark.skipif(hosts_prerequisites() is not None, reason=hosts_prerequisites() or "")

LAN = "kyblan0"
IMAGE = "docker.io/library/busybox:1.35"


@pytest.fixture(scope="module")
def lan() -> Iterator[Lan]:
    net = Lan(LAN, "10.77.0.0/24")
    net.up()
    dirs: list[str] = []
    try:
        yield net
    finally:
        dirs = [d for h in net.hosts for d in h.state()["dirs"]]
        netns = [h.netns for h in net.hosts]
        net.down()
    assert leftovers(LAN) == []
    assert all(not pids_in_netns(n) for n in netns)
    ours = [pid for pid, argv in process_argvs() if any(d.encode() in a for d in dirs for a in argv)]
    assert ours == [], f"processes left: {ours}"
    with open("/proc/self/mountinfo") as f:
        mounts = f.read()
    assert not [d for d in dirs if d in mounts], "mounts left"
    assert not [d for d in dirs if os.path.exists(d)], "data dirs left"


def test_hosts_have_their_own_address_and_reach_each_other_over_the_lan(lan: Lan) -> None:
    a, b = lan.host("a"), lan.host("b")
    assert (a.ip, b.ip) == ("10.77.0.2", "10.77.0.3")
    addrs = a.exec(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
    assert addrs.returncode == 0 and "10.77.0.2/24" in addrs.stdout and b.ip not in addrs.stdout
    ping = a.exec(["/bin/busybox", "ping", "-c", "1", "-W", "3", b.ip])
    assert ping.returncode == 0 and "1 packets received" in ping.stdout, ping.stdout + ping.stderr
    # Not the machine's own namespace: its interfaces (the LAN bridge) are not there.
    assert LAN not in a.exec(["ip", "-o", "link"]).stdout


def test_an_agent_in_another_host_joins_with_a_token_and_runs_a_pod(lan: Lan) -> None:
    a, b = lan.hosts[0], lan.hosts[1]
    srv = a.server()
    assert srv.url.startswith(f"https://{a.ip}:")
    token, pin = join_token(srv)
    agent = b.agent(srv, node_name="kyb-host-b", token=token, ca_cert_hash=pin)
    node = json.loads(srv.kubectl("get", "node", "kyb-host-b", "-o", "json").stdout)
    assert {"type": "InternalIP", "address": b.ip} in node["status"]["addresses"]
    assert node["spec"]["podCIDR"] == agent.pod_cidr
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "on-b", "namespace": "default"},
           "spec": {"terminationGracePeriodSeconds": 0,
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}
    made = srv.kubectl("create", "-f", "-", stdin=json.dumps(pod))
    assert made.returncode == 0, made.stderr

    def running() -> dict | None:
        got = json.loads(srv.kubectl("get", "pod", "on-b", "-o", "json").stdout or "{}")
        return got if (got.get("status") or {}).get("phase") == "Running" else None

    got = wait_for(running, timeout=60, what="pod on-b Running")
    assert got["spec"]["nodeName"] == "kyb-host-b" and got["status"]["hostIP"] == b.ip
    # The API server in host a reaches the agent in host b over the LAN.
    r = srv.kubectl("exec", "on-b", "--", "sh", "-c", "echo hello from $(hostname)")
    assert r.returncode == 0 and r.stdout.strip() == "hello from on-b", r.stderr
    assert agent.runtime_containers()


def test_a_crashed_host_leaves_its_node_not_ready_and_is_cleaned_up(lan: Lan) -> None:
    srv, b = lan.hosts[0].servers[0], lan.hosts[1]
    agent = b.agents[0]
    containers = agent.runtime_containers()
    assert containers, agent.log_tail()
    b.crash()
    left = pids_in_netns(b.netns)
    assert not left, [open(f"/proc/{p}/cmdline").read() for p in left if os.path.exists(f"/proc/{p}")]

    def not_ready() -> bool:
        r = srv.kubectl("get", "node", "kyb-host-b", "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}")
        return r.stdout.strip() == "Unknown"

    wait_for(not_ready, timeout=40, what="node kyb-host-b NotReady (Unknown)")
    b.stop_agents()
    assert not os.path.exists(agent.data_dir), os.listdir(agent.data_dir)
    with open("/proc/self/mountinfo") as f:
        mounts = [line.split()[4] for line in f if agent.data_dir in line]
    assert not mounts, mounts
    cgroups = [os.path.join(root, "k8s.io", c) for root in ("/sys/fs/cgroup", *(
        os.path.join("/sys/fs/cgroup", d) for d in os.listdir("/sys/fs/cgroup"))) for c in containers]
    assert not [c for c in cgroups if os.path.exists(c)], "cgroups left"
