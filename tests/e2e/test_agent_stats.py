"""The kubelet's resource endpoints on a real node agent: a busybox pod burning CPU shows
up in `/stats/summary` with a CPU rate and memory, and in the Prometheus text of
`/metrics/resource` (what metrics-server reads), `/metrics/cadvisor` and `/metrics`,
read through the API server's node proxy with real kubectl; and straight on the agent's
port each path is authorized as its own `nodes/stats` or `nodes/metrics` subresource."""

from __future__ import annotations

import json
import os
import socket
import ssl
import time
from typing import Any

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import wait_for

NS = "stats-e2e"
NODE = "kyb-stats-node"
POD_CIDR = "10.42.229.0/24"
IMAGE = "busybox:1.35"
PROXY = f"/api/v1/nodes/{NODE}/proxy"
# What the pod writes into its writable layer.
WRITTEN = 300_000

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


def _apply(kubectl, manifest: dict[str, Any]) -> None:
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))


@pytest.fixture(scope="module")
def agent(server, kubectl):
    # The Node first, with a pod CIDR of its own (another cluster on this host routes the first one).
    _apply(kubectl, {"apiVersion": "v1", "kind": "Node",
                     "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
                     "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR],
                              "taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]}})
    proc = AgentProcess(server, node_name=NODE, bridge="kyb229", proxy_table="kyb229")
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    kubectl("delete", "namespace", NS, "--wait=false")
    for kind, name in (("clusterrolebinding", "stats-e2e-stats"), ("clusterrole", "stats-e2e-stats"),
                       ("clusterrolebinding", "stats-e2e-proxy"), ("clusterrole", "stats-e2e-proxy")):
        kubectl("delete", kind, name, "--ignore-not-found")
    proc.cleanup()


@pytest.fixture(scope="module")
def burner(agent, kubectl) -> dict[str, Any]:
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "burner", "namespace": NS},
                     "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                              "nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 0,
                              "containers": [{"name": "burn", "image": IMAGE,
                                              "command": ["sh", "-c", f"head -c {WRITTEN} /dev/zero > /written; while :; do :; done"]}]}})
    kubectl.ok("wait", "-n", NS, "pod/burner", "--for=condition=Ready", "--timeout=90s", timeout=100)
    return json.loads(kubectl.ok("get", "pod", "-n", NS, "burner", "-o", "json"))


def _summary(kubectl) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "--raw", f"{PROXY}/stats/summary"))


def _burner_stats(doc: dict[str, Any]) -> dict[str, Any] | None:
    return next((p for p in doc["pods"] if p["podRef"]["namespace"] == NS and p["podRef"]["name"] == "burner"), None)


def _sample_value(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix):].split()[0])
    return None


def test_stats_summary_through_the_api_server_has_the_burning_pods_cpu_rate_and_memory(burner, kubectl):
    def burning() -> dict[str, Any] | None:
        pod = _burner_stats(_summary(kubectl))
        if pod and pod["containers"] and pod["containers"][0].get("cpu", {}).get("usageNanoCores", 0) > 0:
            return pod
        time.sleep(1.0)
        return None

    pod = wait_for(burning, timeout=60)
    assert pod["podRef"]["uid"] == burner["metadata"]["uid"]
    (c,) = pod["containers"]
    assert c["name"] == "burn"
    assert c["cpu"]["usageCoreNanoSeconds"] > 0 and c["memory"]["workingSetBytes"] > 0
    assert c["memory"]["usageBytes"] >= c["memory"]["workingSetBytes"]
    assert "logs" in c and c["logs"]["capacityBytes"] > 0
    assert c["rootfs"]["capacityBytes"] > 0 and c["rootfs"]["usedBytes"] >= WRITTEN, c["rootfs"]
    assert pod["ephemeral-storage"]["usedBytes"] >= WRITTEN
    assert pod["cpu"]["usageNanoCores"] > 0 and pod["memory"]["workingSetBytes"] >= c["memory"]["workingSetBytes"]
    assert any(i["name"] == "eth0" for i in pod["network"]["interfaces"])
    doc = _summary(kubectl)
    node = doc["node"]
    assert node["nodeName"] == NODE
    assert node["cpu"]["usageNanoCores"] > 0 and node["cpu"]["usageCoreNanoSeconds"] > 0
    assert 0 < node["memory"]["workingSetBytes"] <= node["memory"]["usageBytes"]
    assert node["memory"]["availableBytes"] > 0
    assert node["fs"]["capacityBytes"] > node["fs"]["availableBytes"] > 0
    # containerd counts the images' bytes on its own schedule: only the filesystem is sure.
    assert node["runtime"]["imageFs"]["capacityBytes"] > 0 and "usedBytes" in node["runtime"]["imageFs"]
    assert node["rlimit"]["maxpid"] > node["rlimit"]["curproc"] > 0
    # The counter keeps counting.
    later = _burner_stats(doc)
    assert later is not None and later["containers"][0]["cpu"]["usageCoreNanoSeconds"] >= c["cpu"]["usageCoreNanoSeconds"]
    only = json.loads(kubectl.ok("get", "--raw", f"{PROXY}/stats/summary?only_cpu_and_memory=true"))
    assert "fs" not in only["node"] and "cpu" in only["node"] and _burner_stats(only) is not None


def test_resource_metrics_through_the_api_server(burner, kubectl):
    text = kubectl.ok("get", "--raw", f"{PROXY}/metrics/resource")
    labels = f'container="burn",namespace="{NS}",pod="burner"'
    assert (_sample_value(text, f"container_cpu_usage_seconds_total{{{labels}}} ") or 0) > 0, text
    assert (_sample_value(text, f"container_memory_working_set_bytes{{{labels}}} ") or 0) > 0, text
    start = _sample_value(text, f"container_start_time_seconds{{{labels}}} ")
    assert start is not None and abs(start - time.time()) < 3600
    assert (_sample_value(text, f'pod_cpu_usage_seconds_total{{namespace="{NS}",pod="burner"}} ') or 0) > 0
    assert (_sample_value(text, "node_cpu_usage_seconds_total ") or 0) > 0
    assert (_sample_value(text, "node_memory_working_set_bytes ") or 0) > 0
    assert _sample_value(text, "resource_scrape_error ") == 0
    assert "# TYPE container_cpu_usage_seconds_total counter" in text
    cadvisor = kubectl.ok("get", "--raw", f"{PROXY}/metrics/cadvisor")
    line = next((ln for ln in cadvisor.splitlines() if ln.startswith("container_cpu_usage_seconds_total{")
                 and 'pod="burner"' in ln), "")
    assert 'container="burn"' in line and 'cpu="total"' in line and float(line.split()[1]) > 0, cadvisor
    own = kubectl.ok("get", "--raw", f"{PROXY}/metrics")
    assert (_sample_value(own, "kubelet_running_pods ") or 0) >= 1
    assert (_sample_value(own, 'kubelet_running_containers{container_state="running"} ') or 0) >= 1
    assert (_sample_value(own, "process_resident_memory_bytes ") or 0) > 0
    assert (_sample_value(own, "process_start_time_seconds ") or 0) > 0


def _agent_get(server, agent: AgentProcess, path: str, token: str) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=os.path.join(server.data_dir, "pki", "ca.crt"))
    with socket.create_connection(("127.0.0.1", agent.port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname=NODE) as tls:
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {NODE}\r\nConnection: close\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace")


def test_each_path_is_authorized_as_its_own_node_subresource(burner, agent, server, kubectl):
    # Two accounts: the agent keeps a denial for 10 s, so the one refused first is not the one
    # granted later.
    for name in ("scraper", "outsider"):
        kubectl.ok("create", "serviceaccount", "-n", NS, name)
    outsider = kubectl.ok("create", "token", "-n", NS, "outsider").strip()
    status, body = _agent_get(server, agent, "/stats/summary", outsider)
    assert (status, body.strip()) == (
        403, f"Forbidden (user=system:serviceaccount:{NS}:outsider, verb=get, resource=nodes, "
             "subresource(s)=[stats])"), body
    token = kubectl.ok("create", "token", "-n", NS, "scraper").strip()
    user = f"system:serviceaccount:{NS}:scraper"
    kubectl.ok("create", "clusterrole", "stats-e2e-stats", "--verb=get", "--resource=nodes/stats")
    kubectl.ok("create", "clusterrolebinding", "stats-e2e-stats", "--clusterrole=stats-e2e-stats",
               f"--serviceaccount={NS}:scraper")
    wait_for(lambda: _agent_get(server, agent, "/stats/summary", token)[0] == 200, timeout=30)
    status, body = _agent_get(server, agent, "/stats/summary", token)
    assert _burner_stats(json.loads(body)) is not None
    # nodes/stats is not nodes/metrics.
    status, body = _agent_get(server, agent, "/metrics/resource", token)
    assert (status, body.strip()) == (
        403, f"Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[metrics])"), body
    # Through the API server, the caller needs nodes/proxy (the agent sees the API server's own identity).
    r = kubectl("get", "--raw", f"{PROXY}/stats/summary", f"--as={user}")
    assert r.returncode != 0 and f'User "{user}" cannot get resource "nodes/proxy"' in r.stderr, r.stderr
    kubectl.ok("create", "clusterrole", "stats-e2e-proxy", "--verb=get", "--resource=nodes/proxy")
    kubectl.ok("create", "clusterrolebinding", "stats-e2e-proxy", "--clusterrole=stats-e2e-proxy",
               f"--serviceaccount={NS}:scraper")
    wait_for(lambda: kubectl("get", "--raw", f"{PROXY}/metrics/resource", f"--as={user}").returncode == 0,
             timeout=30)
    assert "resource_scrape_error 0" in kubectl.ok("get", "--raw", f"{PROXY}/metrics/resource", f"--as={user}")
