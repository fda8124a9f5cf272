"""Services on a real node: the seed's example ("run two web containers and open port
80") applied with kubectl, traffic through the node's service proxy (nftables) from
the host and from pods, node ports, the built-in load balancer, readiness, and no
rule left behind."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from kybernetes.testing.agent import (
    TEST_TAINT,
    AgentProcess,
    agent_prerequisites,
    iptables_chains,
    nft_tables,
)

EXAMPLE = pathlib.Path(__file__).resolve().parents[2] / "examples" / "web.yaml"
NS = "svc-e2e"
IMAGE = "docker.io/library/busybox:1.35"
PLACEMENT = {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
             "nodeSelector": {"kubernetes.io/hostname": "svc-node"}, "terminationGracePeriodSeconds": 5}
WEB = "echo $HOSTNAME > /www/index.html; httpd -f -p 80 -h /www"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


def manifest(*objects: dict[str, Any]) -> str:
    """Several objects as one multi-document YAML stream (JSON is YAML)."""
    return "\n---\n".join(json.dumps(o) for o in objects)


def deployment(name: str, replicas: int, labels: dict[str, str], script: str = WEB, **container: Any) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": NS,
                                                                        "labels": labels},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": labels["app"]}},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {**PLACEMENT, "containers": [
                                      {"name": "web", "image": IMAGE, "command": ["sh", "-c", f"mkdir -p /www; {script}"],
                                       "ports": [{"containerPort": 80}], **container}]}}}}


def service(name: str, app: str, type_: str = "ClusterIP", **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"type": type_, "selector": {"app": app}, "ports": [{"port": 80, "targetPort": 80}], **spec}}


@pytest.fixture(scope="module")
def node(server, kubectl):
    proc = AgentProcess(server, node_name="svc-node", bridge="kybs0")
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    kubectl("delete", "namespace", NS, "--wait=false")
    proc.cleanup()
    # Clean-up leaves the host's rule set as it was: the proxy's table is gone, and
    # so are the pod network's chains.
    assert subprocess.run(["nft", "list", "table", "ip", proc.proxy_table], capture_output=True).returncode != 0
    for table, before in proc.chains_before.items():
        assert iptables_chains(table, "CNI-") <= before
    assert nft_tables() <= proc.nft_tables_before


def wait_until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (OSError, AssertionError, KeyError, ValueError) as e:
            last = e
        time.sleep(0.3)
    raise AssertionError(f"{what} not true after {timeout}s (last: {last!r})")


def http_get(url: str, timeout: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read().decode().strip()


def get_json(kubectl, *args: str) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "-n", NS, *args, "-o", "json"))


def ready_pods(kubectl, app: str) -> list[str]:
    pods = get_json(kubectl, "pods", "-l", f"app={app}")["items"]
    return sorted(p["metadata"]["name"] for p in pods
                  if not p["metadata"].get("deletionTimestamp")
                  and any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", [])))


def node_ip(kubectl, name: str = "svc-node") -> str:
    n = json.loads(kubectl.ok("get", "node", name, "-o", "json"))
    return next(a["address"] for a in n["status"]["addresses"] if a["type"] == "InternalIP")


def answers(url: str, n: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _ in range(n):
        who = http_get(url)
        counts[who] = counts.get(who, 0) + 1
    return counts


def rules(proc: AgentProcess) -> str:
    return subprocess.run(["nft", "list", "table", "ip", proc.proxy_table], capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def web(node, kubectl) -> dict[str, Any]:
    """The seed's example as the repository ships it (examples/web.yaml): Deployment
    `web` (type=app, app=web, 2 replicas) and a LoadBalancer Service `web` on port 80."""
    docs = list(yaml.safe_load_all(EXAMPLE.read_text()))
    for doc in docs:
        doc["metadata"]["namespace"] = NS
        if doc["kind"] == "Deployment":
            # Only onto this test's node (tainted so other tests' pods stay off it).
            doc["spec"]["template"]["spec"].update({k: v for k, v in PLACEMENT.items()
                                                   if k != "terminationGracePeriodSeconds"})
    kubectl.ok("apply", "-f", "-", stdin=manifest(*docs))
    wait_until("two web pods ready", lambda: len(ready_pods(kubectl, "web")) == 2, 90)
    svc = wait_until("the load balancer's ingress",
                     lambda: (s := get_json(kubectl, "service", "web"))["status"]["loadBalancer"].get("ingress") and s)
    return svc


def test_seed_example_answers_on_the_cluster_ip_and_the_node(node, kubectl, web):
    ip = web["spec"]["clusterIP"]
    assert web["status"]["loadBalancer"]["ingress"] == [{"ip": node_ip(kubectl), "ipMode": "VIP"}]
    pods = ready_pods(kubectl, "web")
    wait_until("the cluster IP answers", lambda: http_get(f"http://{ip}/index.html") in pods)
    counts = answers(f"http://{ip}/index.html", 50)
    assert set(counts) == set(pods), counts  # both pods answer
    counts = answers(f"http://{node_ip(kubectl)}:80/index.html", 50)
    assert set(counts) == set(pods), counts
    out = kubectl.ok("get", "service", "-n", NS, "web")
    assert ip in out and node_ip(kubectl) in out and "LoadBalancer" in out


def test_a_pod_reaches_the_service_and_itself_through_it(node, kubectl, web):
    ip = web["spec"]["clusterIP"]
    pods = ready_pods(kubectl, "web")
    script = f"for i in $(seq 1 20); do wget -qO- http://{ip}/index.html; done"
    out = kubectl.ok("exec", "-n", NS, pods[0], "--", "sh", "-c", script)
    # Half the answers come from the asking pod itself (hairpin), half from the other.
    assert set(out.split()) == set(pods), out


def test_node_port(node, kubectl, web):
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("web-np", "web", "NodePort")))
    svc = get_json(kubectl, "service", "web-np")
    port = svc["spec"]["ports"][0]["nodePort"]
    assert 30000 <= port <= 32767
    pods = ready_pods(kubectl, "web")
    wait_until("the node port answers", lambda: http_get(f"http://{node_ip(kubectl)}:{port}/index.html") in pods)
    assert set(answers(f"http://{node_ip(kubectl)}:{port}/index.html", 30)) == set(pods)
    kubectl.ok("delete", "service", "-n", NS, "web-np")
    wait_until("the node port's rules to go", lambda: f"{port}" not in rules(node))
    with pytest.raises(OSError):
        http_get(f"http://{node_ip(kubectl)}:{port}/index.html", timeout=2)


def test_client_ip_affinity_sticks_to_one_pod(node, kubectl, web):
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("web-sticky", "web", sessionAffinity="ClientIP")))
    ip = get_json(kubectl, "service", "web-sticky")["spec"]["clusterIP"]
    wait_until("the sticky service answers", lambda: http_get(f"http://{ip}/index.html"))
    assert len(answers(f"http://{ip}/index.html", 20)) == 1


def test_a_service_without_endpoints_refuses_at_once(node, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("nobody", "nobody")))
    ip = get_json(kubectl, "service", "nobody")["spec"]["clusterIP"]
    wait_until("the reject rule", lambda: ip in rules(node))
    started = time.monotonic()
    with pytest.raises(OSError) as info:
        http_get(f"http://{ip}/", timeout=10)
    assert time.monotonic() - started < 3, info.value  # refused, not timed out


def test_not_ready_pods_get_no_traffic(node, kubectl):
    probe = {"readinessProbe": {"exec": {"command": ["test", "-e", "/ready"]}, "periodSeconds": 1}}
    kubectl.ok("apply", "-f", "-", stdin=manifest(
        deployment("mixed", 2, {"app": "mixed"}, f"touch /ready; {WEB}", **probe),
        service("mixed", "mixed")))
    wait_until("two mixed pods ready", lambda: len(ready_pods(kubectl, "mixed")) == 2, 90)
    ip = get_json(kubectl, "service", "mixed")["spec"]["clusterIP"]
    pods = ready_pods(kubectl, "mixed")
    wait_until("both answer", lambda: set(answers(f"http://{ip}/index.html", 20)) == set(pods))
    kubectl.ok("exec", "-n", NS, pods[0], "--", "rm", "/ready")
    wait_until("the unready pod leaves", lambda: ready_pods(kubectl, "mixed") == pods[1:])
    wait_until("only the ready pod answers", lambda: set(answers(f"http://{ip}/index.html", 20)) == {pods[1]})


def test_deleting_and_scaling_change_the_rotation(node, kubectl, web):
    ip = web["spec"]["clusterIP"]
    url = f"http://{ip}/index.html"
    before = ready_pods(kubectl, "web")
    kubectl.ok("delete", "pod", "-n", NS, before[0], "--wait=false")
    # The service keeps answering while one pod goes and its replacement comes.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert http_get(url) in set(before) | set(ready_pods(kubectl, "web"))
        now = ready_pods(kubectl, "web")
        if len(now) == 2 and before[0] not in now:
            break
        time.sleep(0.2)
    after = ready_pods(kubectl, "web")
    assert before[0] not in after and len(after) == 2
    wait_until("the replacement answers", lambda: set(answers(url, 30)) == set(after))
    kubectl.ok("scale", "deployment", "-n", NS, "web", "--replicas=3")
    wait_until("three pods ready", lambda: len(ready_pods(kubectl, "web")) == 3, 90)
    three = ready_pods(kubectl, "web")
    wait_until("the third pod joins", lambda: set(answers(url, 40)) == set(three))


def test_a_restarted_proxy_rebuilds_from_the_api(node, kubectl, web):
    """Services keep answering while the agent is down (the rules are the kernel's),
    and what changed meanwhile is put right when it comes back: no stale rule."""
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("while-down", "web")))
    gone_ip = get_json(kubectl, "service", "while-down")["spec"]["clusterIP"]
    wait_until("its rule", lambda: gone_ip in rules(node))
    node.stop()
    try:
        assert http_get(f"http://{web['spec']['clusterIP']}/index.html") in ready_pods(kubectl, "web")
        kubectl.ok("delete", "service", "-n", NS, "while-down")
        assert gone_ip in rules(node)
    finally:
        node.start()
    wait_until("the stale rule to go", lambda: gone_ip not in rules(node))
    assert http_get(f"http://{web['spec']['clusterIP']}/index.html") in ready_pods(kubectl, "web")


def test_deleting_a_service_removes_its_rules(node, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("short-lived", "web", "NodePort")))
    svc = get_json(kubectl, "service", "short-lived")
    ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["nodePort"]
    wait_until("its rules", lambda: ip in rules(node) and str(port) in rules(node))
    kubectl.ok("delete", "service", "-n", NS, "short-lived")
    wait_until("its rules to go", lambda: ip not in rules(node) and f" {port} " not in rules(node))


def client_pod(name: str, **spec: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, "labels": {"app": name}},
            "spec": {**PLACEMENT, **spec, "containers": [{"name": "main", "image": IMAGE,
                                                          "command": ["sleep", "3600"]}]}}


@pytest.fixture(scope="module")
def client(node, kubectl) -> str:
    """Another pod, the one that asks."""
    kubectl.ok("apply", "-f", "-", stdin=manifest(client_pod("client")))
    wait_until("the client pod", lambda: ready_pods(kubectl, "client"))
    return "client"


def test_pods_resolve_services_through_cluster_dns(node, kubectl, web, client):
    pods = ready_pods(kubectl, "web")
    conf = kubectl.ok("exec", "-n", NS, "client", "--", "cat", "/etc/resolv.conf")
    dns_ip = json.loads(kubectl.ok("get", "service", "-n", "kube-system", "kube-dns", "-o", "json"))["spec"]["clusterIP"]
    assert f"nameserver {dns_ip}" in conf
    assert f"search {NS}.svc.cluster.local svc.cluster.local cluster.local" in conf and "ndots:5" in conf
    # This node's DNS server is a kube-dns endpoint.
    slices = json.loads(kubectl.ok("get", "endpointslices", "-n", "kube-system", "-l",
                                   "kubernetes.io/service-name=kube-dns", "-o", "json"))["items"]
    assert any(e.get("nodeName") == "svc-node" for s in slices for e in s["endpoints"])
    for url in ("http://web/index.html", f"http://web.{NS}.svc.cluster.local/index.html"):
        # (busybox 1.35's `wget -T` crashes: the exec's own timeout bounds it instead)
        out = wait_until(f"{url} from a pod", lambda u=url: kubectl("exec", "-n", NS, "client", "--", "wget", "-qO-",
                                                                    u, timeout=10).stdout.strip())
        assert out in pods
    ip = web["spec"]["clusterIP"]
    looked_up = kubectl.ok("exec", "-n", NS, "client", "--", "nslookup", f"web.{NS}.svc.cluster.local")
    assert ip in looked_up
    missing = kubectl("exec", "-n", NS, "client", "--", "nslookup", f"nothing-here.{NS}.svc.cluster.local")
    assert missing.returncode != 0 and "NXDOMAIN" in missing.stdout + missing.stderr
    # SRV for the named port, and the pod-IP form.
    srv = kubectl.ok("exec", "-n", NS, "client", "--", "nslookup", "-type=srv", f"_http._tcp.web.{NS}.svc.cluster.local")
    assert f"web.{NS}.svc.cluster.local" in srv and " 80 " in srv, srv
    client_ip = get_json(kubectl, "pod", "client")["status"]["podIP"]
    dashed = kubectl.ok("exec", "-n", NS, "client", "--", "nslookup", f"{client_ip.replace('.', '-')}.{NS}.pod.cluster.local")
    assert client_ip in dashed.split("Name:")[-1]


def test_dns_policy_none_takes_the_pods_dns_config(node, kubectl):
    cfg = {"nameservers": ["192.0.2.53"], "searches": ["example.test"], "options": [{"name": "ndots", "value": "2"}]}
    kubectl.ok("apply", "-f", "-", stdin=manifest(client_pod("own-dns", dnsPolicy="None", dnsConfig=cfg)))
    wait_until("the pod", lambda: ready_pods(kubectl, "own-dns"))
    conf = kubectl.ok("exec", "-n", NS, "own-dns", "--", "cat", "/etc/resolv.conf").split("\n")
    assert "nameserver 192.0.2.53" in conf and "search example.test" in conf and "options ndots:2" in conf


def test_a_headless_service_resolves_to_its_pods(node, kubectl, web, client):
    kubectl.ok("apply", "-f", "-", stdin=manifest(service("web-headless", "web", clusterIP="None")))
    pod_ips = sorted(p["status"]["podIP"] for p in get_json(kubectl, "pods", "-l", "app=web")["items"]
                     if p["metadata"]["name"] in ready_pods(kubectl, "web"))
    asker = client

    def resolved() -> list[str]:
        out = kubectl("exec", "-n", NS, asker, "--", "nslookup", "-type=a",
                      f"web-headless.{NS}.svc.cluster.local").stdout
        found = sorted(line.split()[-1] for line in out.splitlines()
                       if line.startswith("Address") and line.split()[-1] in pod_ips)
        return found if found == pod_ips else []

    assert wait_until("the headless name resolves to every ready pod", resolved) == pod_ips
