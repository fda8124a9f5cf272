"""The request-forgery reproduction of issue 14 (the CVE-2022-3294 / CVE-2020-8559 class),
end to end, and the node agent's own HTTPS API with a real agent.

Any user who may write Nodes could point a node's address at the API server itself
(`127.0.0.1:PORT/api/v1/namespaces/default/secrets?x=`), bind a pod to it and read
the SecretList through `kubectl logs`, signed by the server's own credential. Now the
address is refused when stored, the server refuses to dial loopback or its own port,
verifies the agent's serving certificate for the node's name and identity, and the
agent refuses callers that are not authenticated."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
from typing import Any

import aiohttp
import pytest
from cryptography import x509

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import wait_for

NS = "forgery-e2e"
NODE = "kyb-sec-node"
POD_CIDR = "10.42.226.0/24"
IMAGE = "docker.io/library/busybox:1.35"
MARKER = "the-crown-jewels-4f1c"
FORGED_NODES = ("forged-lo-node", "forged-self-node", "forged-name-node", "forged-host-node")

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


def _apply(kubectl, obj: dict[str, Any]) -> None:
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(obj))


def _node(kubectl, name: str, addresses: list[dict[str, str]], port: int) -> None:
    _apply(kubectl, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                     "spec": {"taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]}})
    kubectl.ok("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({
        "status": {"addresses": addresses, "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))


def _bound_pod(kubectl, name: str, node: str) -> None:
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                     "spec": {"nodeName": node, "tolerations": [{"operator": "Exists"}],
                              "containers": [{"name": "c", "image": IMAGE}]}})


def _pki(server, name: str) -> str:
    return os.path.join(server.data_dir, "pki", name)


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server, node_name=NODE, bridge="kybsec0", proxy_table="kyb-sec", pod_cidr=POD_CIDR)
    proc.start()
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("create", "secret", "generic", "jewels", "-n", "default", f"--from-literal=k={MARKER}")
    yield proc
    for pod in ("victim", "impostor-pod", *(f"{n}-pod" for n in FORGED_NODES)):
        kubectl("delete", "pod", "-n", NS, pod, "--grace-period=0", "--force", "--ignore-not-found")
    kubectl("delete", "namespace", NS, "--wait=false")
    kubectl("delete", "secret", "-n", "default", "jewels", "--ignore-not-found")
    kubectl("delete", "node", "kyb-sec-impostor", *FORGED_NODES, "--ignore-not-found")
    proc.cleanup()


@pytest.fixture(scope="module")
def victim(agent, kubectl) -> str:
    """A running pod on the real agent that writes one line of log."""
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim", "namespace": NS},
                     "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": 1,
                              "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                              "containers": [{"name": "c", "image": IMAGE,
                                              "command": ["sh", "-c", "echo victim-log-line; sleep 3600"]}]}})
    kubectl.ok("wait", "-n", NS, "--for=condition=Ready", "pod/victim", "--timeout=120s")
    return "victim"


def test_a_node_address_with_a_port_path_or_query_is_refused(agent, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                     "metadata": {"name": "forged-lo-node"}}))
    forged = f"127.0.0.1:{kubectl.server.port}/api/v1/namespaces/default/secrets?x="
    for kind in ("InternalIP", "Hostname"):
        r = kubectl("patch", "node", "forged-lo-node", "--subresource=status", "--type=merge", "-p", json.dumps({
            "status": {"addresses": [{"type": kind, "address": forged}]}}))
        assert r.returncode != 0, r.stdout
        assert "status.addresses[0].address: Invalid value" in r.stderr, r.stderr
    stored = json.loads(kubectl.ok("get", "node", "forged-lo-node", "-o", "json"))
    assert forged not in json.dumps(stored)


def _refused(r, *wanted: str) -> None:
    assert r.returncode != 0, r.stdout
    assert MARKER not in r.stdout + r.stderr and "SecretList" not in r.stdout + r.stderr
    assert any(w in r.stderr for w in wanted), r.stderr


def test_the_api_server_never_dials_itself_for_logs_exec_or_proxy(agent, kubectl, server):
    """Addresses validation lets through: loopback, a name resolving to it, the host's
    own address on the API server's port. None of them is dialled."""
    host_ip = json.loads(kubectl.ok("get", "node", NODE, "-o", "json"))["status"]["addresses"][0]["address"]
    _node(kubectl, "forged-lo-node", [{"type": "InternalIP", "address": "127.0.0.1"}], server.port)
    _node(kubectl, "forged-self-node", [{"type": "InternalIP", "address": host_ip}], server.port)
    _node(kubectl, "forged-host-node", [{"type": "Hostname", "address": "localhost"}], server.port)
    for node in ("forged-lo-node", "forged-self-node", "forged-host-node"):
        pod = f"{node}-pod"
        _bound_pod(kubectl, pod, node)
        _refused(kubectl("logs", "-n", NS, pod), "address not allowed")
        _refused(kubectl("exec", "-n", NS, pod, "--", "true"), "address not allowed")
        _refused(kubectl("get", "--raw", f"/api/v1/nodes/{node}/proxy/api/v1/namespaces/default/secrets"),
                 "address not allowed")
        _refused(kubectl("get", "--raw", f"/api/v1/nodes/{node}:{server.port}/proxy/api/v1/secrets"),
                 "address not allowed")
    # pods/proxy to the API server's port on the host's address (a hostNetwork pod's IP).
    kubectl.ok("patch", "pod", "-n", NS, "forged-self-node-pod", "--subresource=status", "--type=merge", "-p",
               json.dumps({"status": {"podIP": host_ip, "podIPs": [{"ip": host_ip}]}}))
    _refused(kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods/https:forged-self-node-pod:{server.port}"
                                     "/proxy/api/v1/secrets"), "address not allowed")


def test_port_forward_to_a_forged_node_is_refused(agent, kubectl, server):
    _node(kubectl, "forged-lo-node", [{"type": "InternalIP", "address": "127.0.0.1"}], server.port)
    _bound_pod(kubectl, "forged-lo-node-pod", "forged-lo-node")
    ctx = ssl.create_default_context(cafile=_pki(server, "ca.crt"))
    ctx.load_cert_chain(_pki(server, "admin.crt"), _pki(server, "admin.key"))

    async def attempt() -> int:
        async with aiohttp.ClientSession() as s:
            with pytest.raises(aiohttp.WSServerHandshakeError) as e:
                await s.ws_connect(f"{server.url}/api/v1/namespaces/{NS}/pods/forged-lo-node-pod/portforward",
                                   params={"ports": "80"}, protocols=("v4.channel.k8s.io",), ssl=ctx)
            return e.value.status

    assert asyncio.run(attempt()) == 400


def test_an_agent_answering_for_another_node_is_not_trusted(agent, kubectl, victim):
    """Same address and port as the real agent, another node's name: the agent's serving
    certificate names kyb-sec-node only, so the API server refuses the connection."""
    real = json.loads(kubectl.ok("get", "node", NODE, "-o", "json"))["status"]
    _node(kubectl, "kyb-sec-impostor", real["addresses"][:1], real["daemonEndpoints"]["kubeletEndpoint"]["Port"])
    _apply(kubectl, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "impostor-pod", "namespace": NS},
                     "spec": {"nodeName": "kyb-sec-impostor", "tolerations": [{"operator": "Exists"}],
                              "containers": [{"name": "c", "image": IMAGE}]}})
    r = kubectl("logs", "-n", NS, "impostor-pod")
    assert r.returncode != 0 and "not reachable" in r.stderr, r.stderr
    r = kubectl("get", "--raw", "/api/v1/nodes/kyb-sec-impostor/proxy/healthz")
    assert r.returncode != 0 and "error trying to reach service" in r.stderr, r.stderr


def test_logs_exec_and_node_proxy_still_work_through_the_api_server(victim, kubectl):
    wait_for(lambda: "victim-log-line" in kubectl("logs", "-n", NS, victim).stdout, timeout=30)
    assert kubectl.ok("exec", "-n", NS, victim, "--", "echo", "exec-ok").strip() == "exec-ok"
    assert kubectl.ok("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz") == "ok"


def _agent_call(agent: AgentProcess, path: str, cert: tuple[str, str] | None = None, token: str | None = None,
                ca: str | None = None) -> tuple[int, str, x509.Certificate]:
    """One GET straight to the agent's port; with `ca`, its certificate is
    verified as the API server verifies it (for the node's name)."""
    ctx = ssl.create_default_context(cafile=ca)
    if ca is None:
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    if cert is not None:
        ctx.load_cert_chain(*cert)
    with socket.create_connection(("127.0.0.1", agent.port), timeout=30) as raw, \
            ctx.wrap_socket(raw, server_hostname=NODE) as tls:
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {NODE}\r\nConnection: close\r\n{auth}\r\n".encode())
        peer = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True) or b"")
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode(errors="replace"), peer


def test_the_agent_port_refuses_anonymous_and_unknown_tokens_and_serves_the_api_server(agent, server, victim):
    logs = f"/containerLogs/{NS}/{victim}/c"
    status, body, _ = _agent_call(agent, logs)
    assert status == 401 and "victim-log-line" not in body
    status, body, _ = _agent_call(agent, logs, token="not-a-real-token")
    assert status == 401 and "victim-log-line" not in body
    apiserver = (_pki(server, "apiserver-kubelet-client.crt"), _pki(server, "apiserver-kubelet-client.key"))
    status, body, peer = _agent_call(agent, logs, cert=apiserver, ca=_pki(server, "ca.crt"))
    assert (status, "victim-log-line" in body) == (200, True), body
    assert peer.subject.rfc4514_string() == f"CN=system:node:{NODE},O=system:nodes"
    with open(_pki(server, "admin.token")) as f:
        token = f.read().strip()
    status, body, _ = _agent_call(agent, "/healthz", token=token)
    assert (status, body) == (200, "ok")


def test_the_agents_serving_certificate_came_from_an_approved_request(agent, kubectl):
    csrs = json.loads(kubectl.ok("get", "csr", "-l", f"kybernetes.io/serving-node={NODE}", "-o", "json"))["items"]
    assert csrs and all(c["spec"]["signerName"] == "kubernetes.io/kubelet-serving" for c in csrs)
    assert any(c["status"].get("certificate") for c in csrs)


def test_the_agent_authorizes_token_callers_per_node_subresource(agent, kubectl, victim):
    """A ServiceAccount's token: authenticated through TokenReview, then each path is
    authorized as its nodes/<subresource> (SubjectAccessReview against RBAC)."""
    kubectl.ok("create", "serviceaccount", "-n", NS, "log-reader")
    token = kubectl.ok("create", "token", "-n", NS, "log-reader").strip()
    user = f"system:serviceaccount:{NS}:log-reader"
    status, body, _ = _agent_call(agent, f"/containerLogs/{NS}/{victim}/c", token=token)
    assert (status, body.strip()) == (
        403, f"Forbidden (user={user}, verb=get, resource=nodes, subresource(s)=[proxy])"), body
    kubectl.ok("create", "clusterrole", "node-log-reader", "--verb=get", "--resource=nodes/log")
    kubectl.ok("create", "clusterrolebinding", "node-log-reader", "--clusterrole=node-log-reader",
               f"--serviceaccount={NS}:log-reader")
    try:
        wait_for(lambda: _agent_call(agent, "/logs/", token=token)[0] == 200, timeout=30)
        status, body, _ = _agent_call(agent, f"/containerLogs/{NS}/{victim}/c", token=token)
        assert status == 403 and "victim-log-line" not in body
    finally:
        kubectl("delete", "clusterrolebinding", "node-log-reader", "--ignore-not-found")
        kubectl("delete", "clusterrole", "node-log-reader", "--ignore-not-found")
