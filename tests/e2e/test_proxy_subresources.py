"""The proxy subresources end to end: `pods/proxy`, `services/proxy` and `nodes/proxy`
reach a real busybox httpd pod on a real node agent, with every HTTP method, query
strings and bodies passed on, redirects rewritten to go through the proxy, and the
addresses kube-apiserver refuses to dial refused here too (checked against a listener
that must never see a connection)."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import free_port

NS = "proxy-e2e"
NODE = "proxy-node"
SIM_NODE = "proxy-sim-node"
POD_CIDR = "10.42.213.0/24"
IMAGE = "docker.io/library/busybox:1.35"
BIG = 8 * 1024 * 1024
VERBS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")

# The CGI script answers every method with what it received (busybox httpd passes a body to POST only).
SETUP = r"""
mkdir -p /www/cgi-bin /www/dir
echo 'hello from busybox' > /www/index.html
echo '<a href="/dir/x">x</a>' > /www/links.html
yes 0123456789abcdef | head -c BIG_SIZE > /www/big
cat > /www/cgi-bin/echo <<'EOF'
#!/bin/sh
printf 'Content-Type: application/json\r\n\r\n'
body=$(head -c "${CONTENT_LENGTH:-0}")
printf '{"Method":"%s","Body":"%s","Query":"%s","Path":"%s","Auth":"%s"}' "$REQUEST_METHOD" "$body" \
  "$QUERY_STRING" "$PATH_INFO" "$HTTP_AUTHORIZATION"
EOF
chmod +x /www/cgi-bin/echo
exec httpd -f -p 80 -h /www
""".replace("BIG_SIZE", str(BIG))

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


def _obj(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest)


@pytest.fixture(scope="module")
def agent(server, kubectl):
    # A pod CIDR of its own: the host must route the pod's address to this agent's bridge.
    proc = AgentProcess(server, node_name=NODE, bridge="kybp0", proxy_table="kyb-proxy", pod_cidr=POD_CIDR)
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    # The simulated node's pod has no agent to confirm its end.
    kubectl("delete", "pod", "-n", NS, "sneaky", "--grace-period=0", "--force", "--ignore-not-found")
    kubectl("delete", "namespace", NS, "--wait=false")
    kubectl("delete", "node", SIM_NODE, "proxy-lo-node", "proxy-localhost-node", "--ignore-not-found")
    proc.cleanup()


@pytest.fixture(scope="module")
def web(agent, kubectl) -> dict[str, Any]:
    """A running httpd pod and a Service in front of it, with ready endpoints."""
    kubectl.ok("apply", "-f", "-", stdin=_obj({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web"}},
        "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                 "nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "httpd", "image": IMAGE, "command": ["sh", "-c", SETUP],
                                 "ports": [{"name": "http", "containerPort": 80}],
                                 "readinessProbe": {"httpGet": {"path": "/index.html", "port": 80},
                                                    "periodSeconds": 1}}]}}))
    kubectl.ok("apply", "-f", "-", stdin=_obj({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 8080, "targetPort": 80}]}}))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        r = kubectl("get", "endpoints", "-n", NS, "web", "-o", "json")
        if r.returncode == 0 and any(s.get("addresses") for s in json.loads(r.stdout).get("subsets") or []):
            return json.loads(kubectl.ok("get", "pod", "-n", NS, "web", "-o", "json"))
        time.sleep(0.5)
    raise AssertionError("the web pod never became a ready endpoint: "
                         + kubectl("get", "pod", "-n", NS, "web", "-o", "yaml").stdout)


def raw(k8s_client, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None):
    """One request with the client's credentials, redirects not followed."""
    cfg = k8s_client.configuration
    hdrs = dict(headers or {})
    if cfg.api_key.get("authorization"):
        hdrs["Authorization"] = cfg.api_key["authorization"]
    return k8s_client.rest_client.pool_manager.request(method, cfg.host + path, body=body, headers=hdrs,
                                                       redirect=False, preload_content=True, timeout=60)


POD = f"/api/v1/namespaces/{NS}/pods"
SVC = f"/api/v1/namespaces/{NS}/services"


def test_kubectl_get_raw_through_a_pod_and_a_service(web, kubectl):
    for name in ("web", "web:80", "web:http", "http:web:80"):
        assert kubectl.ok("get", "--raw", f"{POD}/{name}/proxy/") == "hello from busybox\n"
    for name in ("web:http", "web:8080", "http:web:http"):
        assert kubectl.ok("get", "--raw", f"{SVC}/{name}/proxy/index.html") == "hello from busybox\n"
    # Without a port, the service port without a name is meant (as upstream): this one has a name.
    r = kubectl("get", "--raw", f"{SVC}/web/proxy/index.html")
    assert r.returncode != 0 and 'no endpoints available for service "web"' in r.stderr


@pytest.mark.parametrize("base", [f"{POD}/web", f"{SVC}/web:http", f"{SVC}/web:8080"])
def test_every_method_query_and_body_reach_the_backend(web, k8s_client, base):
    for verb in VERBS:
        # The body with POST only: busybox httpd leaves any other method's body unread and
        # closes, and the kernel then resets the connection, at times before the proxy has
        # read the answer (a 503, as kube-apiserver would give).
        body = b"payload" if verb == "POST" else None
        r = raw(k8s_client, verb, f"{base}/proxy/cgi-bin/echo/some/path?x=1&y=a%20b", body=body,
                headers={"Content-Type": "text/plain"})
        assert r.status == 200, (verb, r.status, r.data)
        if verb == "HEAD":
            assert r.data == b""
            continue
        got = json.loads(r.data)
        assert (got["Method"], got["Query"], got["Path"]) == (verb, "x=1&y=a%20b", "/some/path")
        # The API request's credentials never reach the workload.
        assert got["Auth"] == ""
        if verb == "POST":
            assert got["Body"] == "payload"


def test_python_client_connect_calls(web, k8s_client):
    from kubernetes import client

    core = client.CoreV1Api(k8s_client)
    assert core.connect_get_namespaced_pod_proxy_with_path("web", NS, "index.html") == "hello from busybox\n"
    # A JSON answer comes back as the str() of what the client decoded from it.
    out = core.connect_post_namespaced_service_proxy_with_path("web:http", NS, "cgi-bin/echo")
    assert json.loads(out.replace("'", '"'))["Method"] == "POST"
    out = core.connect_delete_namespaced_pod_proxy_with_path("web", NS, "cgi-bin/echo")
    assert json.loads(out.replace("'", '"'))["Method"] == "DELETE"


def test_large_answer_is_streamed_whole(web, k8s_client):
    r = raw(k8s_client, "GET", f"{POD}/web/proxy/big")
    assert r.status == 200 and len(r.data) == BIG
    assert r.data == (b"0123456789abcdef\n" * (BIG // 17 + 1))[:BIG]


def test_large_request_body_is_passed_on(web, k8s_client):
    body = b"x" * (512 * 1024)
    r = raw(k8s_client, "POST", f"{SVC}/web:http/proxy/cgi-bin/echo", body=body)
    assert r.status == 200 and json.loads(r.data)["Body"] == body.decode()


def test_root_without_slash_redirects_and_backend_redirects_go_through_the_proxy(web, k8s_client):
    for base in (f"{POD}/web", f"{SVC}/web:8080"):
        for verb in ("GET", "HEAD"):
            r = raw(k8s_client, verb, f"{base}/proxy?a=1")
            assert r.status == 301 and r.headers["Location"] == f"{base}/proxy/?a=1"
        # Other methods go to the backend's root.
        r = raw(k8s_client, "POST", f"{base}/proxy")
        assert r.status != 301
    # busybox answers a directory without its slash with a redirect to /dir/: passed
    # back, not followed, and pointing through the proxy.
    r = raw(k8s_client, "GET", f"{POD}/web/proxy/dir")
    assert r.status == 302 and r.headers["Location"] == f"{POD}/web/proxy/dir/"


def test_html_links_are_rewritten_to_go_through_the_proxy(web, kubectl):
    page = kubectl.ok("get", "--raw", f"{POD}/web:80/proxy/links.html")
    assert page == f'<a href="{POD}/web:80/proxy/dir/x">x</a>\n'


def test_node_proxy_reaches_the_agent(agent, kubectl):
    assert kubectl.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz") == "ok"
    assert kubectl.ok("get", "--raw", f"/api/v1/nodes/{NODE}:{agent.port}/proxy/healthz") == "ok"
    listing = kubectl.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/logs/")
    assert "Index of" in listing and f"/api/v1/nodes/{NODE}/proxy/logs/" in listing


def test_node_proxy_pods_lists_what_the_agent_runs(web, kubectl):
    """/pods of the node, as the kubelet's: the pods bound to it as the agent knows them."""
    listed = json.loads(kubectl.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/pods"))
    assert listed["kind"] == "PodList"
    names = {(p["metadata"]["namespace"], p["metadata"]["name"]) for p in listed["items"]}
    assert (NS, "web") in names
    assert all(p["spec"]["nodeName"] == NODE for p in listed["items"])


def test_errors_for_missing_targets_and_services_without_endpoints(web, kubectl):
    r = kubectl("get", "--raw", f"{POD}/nosuch/proxy/")
    assert r.returncode != 0 and 'pods "nosuch" not found' in r.stderr
    r = kubectl("get", "--raw", f"{SVC}/web:9999/proxy/")
    assert r.returncode != 0 and 'no service port 9999 found for service "web"' in r.stderr
    kubectl.ok("apply", "-f", "-", stdin=_obj({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "empty", "namespace": NS},
        "spec": {"selector": {"app": "nothing"}, "ports": [{"port": 80}]}}))
    deadline = time.monotonic() + 30
    while kubectl("get", "endpoints", "-n", NS, "empty").returncode != 0 and time.monotonic() < deadline:
        time.sleep(0.3)
    r = kubectl("get", "--raw", f"{SVC}/empty/proxy/")
    assert r.returncode != 0 and 'no endpoints available for service "empty"' in r.stderr, r.stderr


class Listener:
    """A loopback TCP listener that counts the connections it gets."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.accepted = 0
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stopped = True
        self.thread.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    lst = Listener()
    yield lst
    lst.close()


def _sim_node(kubectl, name: str, address: str, address_type: str, port: int) -> None:
    kubectl.ok("apply", "-f", "-", stdin=_obj({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
        "spec": {"taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]}}))
    kubectl.ok("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({
        "status": {"addresses": [{"type": address_type, "address": address}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))


def test_loopback_and_link_local_pod_ips_are_refused_not_dialled(agent, kubectl, listener):
    _sim_node(kubectl, SIM_NODE, "192.0.2.10", "InternalIP", 10250)
    kubectl.ok("apply", "-f", "-", stdin=_obj({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sneaky", "namespace": NS},
        "spec": {"nodeName": SIM_NODE, "containers": [{"name": "c", "image": IMAGE}]}}))
    for ip in ("127.0.0.1", "169.254.169.254", "0.0.0.0"):
        kubectl.ok("patch", "pod", "-n", NS, "sneaky", "--subresource=status", "--type=merge", "-p",
                   json.dumps({"status": {"podIP": ip, "podIPs": [{"ip": ip}]}}))
        r = kubectl("get", "--raw", f"{POD}/sneaky:{listener.port}/proxy/")
        assert r.returncode != 0 and "address not allowed" in r.stderr, (ip, r.stderr)
    assert listener.accepted == 0


def test_nodes_whose_address_is_or_resolves_to_loopback_are_refused(agent, kubectl, listener):
    _sim_node(kubectl, "proxy-lo-node", "127.0.0.1", "InternalIP", listener.port)
    _sim_node(kubectl, "proxy-localhost-node", "localhost", "Hostname", listener.port)
    for name in ("proxy-lo-node", "proxy-localhost-node", f"proxy-lo-node:{listener.port}"):
        r = kubectl("get", "--raw", f"/api/v1/nodes/{name}/proxy/healthz")
        assert r.returncode != 0 and "address not allowed" in r.stderr, (name, r.stderr)
    assert listener.accepted == 0
