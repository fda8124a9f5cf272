"""The service proxy on a host that is told to use iptables (hosts without nftables):
cluster IP, node port, hairpin, rejection without endpoints, and no `KYB-*` chain
left behind."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from kybernetes.proxy.model import short_id
from kybernetes.testing.agent import (
    TEST_TAINT,
    AgentProcess,
    agent_prerequisites,
    iptables_chains,
    nft_tables,
)
from tests.e2e.test_services import http_get, wait_until

NS = "svc-ipt-e2e"
NODE = "ipt-node"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def node(server, kubectl):
    proc = AgentProcess(server, node_name=NODE, bridge="kybi0", proxy_mode="iptables")
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    kubectl("delete", "namespace", NS, "--wait=false")
    proc.cleanup()
    for table in ("nat", "filter"):
        assert iptables_chains(table, "KYB-") == set()
    assert nft_tables() <= proc.nft_tables_before


def apply(kubectl, *objects: dict) -> None:
    kubectl.ok("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": "ipt"}},
            "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], "terminationGracePeriodSeconds": 1,
                     "nodeSelector": {"kubernetes.io/hostname": NODE},
                     "containers": [{"name": "web", "image": "docker.io/library/busybox:1.35",
                                     "command": ["sh", "-c", "echo $HOSTNAME > /tmp/index.html; "
                                                 "httpd -f -p 80 -h /tmp"]}]}}


def svc(name: str, app: str, type_: str = "ClusterIP") -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": type_, "selector": {"app": app}, "ports": [{"port": 80}]}}


def test_services_through_iptables(node, kubectl):
    apply(kubectl, pod("ipt-a"), pod("ipt-b"), svc("ipt", "ipt", "NodePort"), svc("none", "nobody"))
    r = kubectl("wait", "-n", NS, "--for=condition=Ready", "pod/ipt-a", "pod/ipt-b", "--timeout=90s", timeout=100)
    # Seen once in a full run (ipt-b never Ready): what the pods and the agent said then.
    assert r.returncode == 0, (r.stderr + kubectl("describe", "pods", "-n", NS).stdout
                               + kubectl("get", "events", "-n", NS).stdout + node.log_tail(6000))
    s = json.loads(kubectl.ok("get", "service", "-n", NS, "ipt", "-o", "json"))
    ip, port = s["spec"]["clusterIP"], s["spec"]["ports"][0]["nodePort"]
    host = next(a["address"] for a in json.loads(kubectl.ok("get", "node", NODE, "-o", "json"))["status"]["addresses"]
                if a["type"] == "InternalIP")
    for url in (f"http://{ip}/index.html", f"http://{host}:{port}/index.html"):
        wait_until(f"{url} answers from both pods",
                   lambda u=url: {http_get(u) for _ in range(30)} == {"ipt-a", "ipt-b"})
    out = kubectl.ok("exec", "-n", NS, "ipt-a", "--", "sh", "-c",
                     f"for i in $(seq 1 20); do wget -qO- http://{ip}/index.html; done")
    assert set(out.split()) == {"ipt-a", "ipt-b"}  # including itself, through the service
    chain = f"KYB-SVC-{short_id(f'{NS}/ipt:80/tcp').upper()}"
    assert chain in iptables_chains("nat", "KYB-")
    none_ip = json.loads(kubectl.ok("get", "service", "-n", NS, "none", "-o", "json"))["spec"]["clusterIP"]
    wait_until("the reject rule", lambda: none_ip in subprocess.run(["iptables", "-S", "KYB-REJECT"],
                                                                     capture_output=True, text=True).stdout)
    started = time.monotonic()
    with pytest.raises(OSError):
        http_get(f"http://{none_ip}/", timeout=10)
    assert time.monotonic() - started < 3
    kubectl.ok("delete", "service", "-n", NS, "ipt")
    wait_until("the service's chain to go", lambda: chain not in iptables_chains("nat", "KYB-"))
    assert f"--dport {port}" not in subprocess.run(["iptables", "-t", "nat", "-S", "KYB-SERVICES"],
                                                   capture_output=True, text=True).stdout
