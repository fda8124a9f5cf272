"""Node authorization and NodeRestriction end to end with real kubectl: two node
identities (client certificates `system:node:<name>` / `system:nodes` signed by the
server's CA) each reach only their own Node, the pods bound to them and what those pods
use; `kubectl auth can-i` agrees."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import time
from pathlib import Path

import pytest
import yaml
from cryptography import x509

from kybernetes.apiserver import pki
from kybernetes.apiserver.servicealloc import service_network
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import delete_namespace, free_port

NS = "node-authz-e2e"
A, B = "na-node-a", "na-node-b"


def _node_kubeconfig(server, path: Path, node: str) -> str:
    paths = pki.pki_paths(server.data_dir)
    cert, key = pki.issue_client_cert(paths, f"system:node:{node}", ["system:nodes"])
    doc = pki.kubeconfig_dict(pki.read_ca_pem(paths), server.url, client_cert_pem=cert, client_key_pem=key)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


def _pod(name: str, node: str, secret: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
        "spec": {"nodeName": node, "automountServiceAccountToken": False,
                 "tolerations": [{"operator": "Exists"}],
                 "containers": [{"name": "c", "image": "busybox", "command": ["sleep", "3600"]}],
                 "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})


@pytest.fixture(scope="module")
def nodes(server, kubectl, tmp_path_factory):
    d = tmp_path_factory.mktemp("node-authz")
    configs = {n: _node_kubeconfig(server, d / f"{n}.kc", n) for n in (A, B)}
    kubectl.ok("create", "namespace", NS)
    for n in (A, B):
        kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump({"apiVersion": "v1", "kind": "Node",
                                                              "metadata": {"name": n, "labels": {"role": "test"}}}))
    for s in ("secret-a", "secret-b", "secret-late"):
        kubectl.ok("create", "secret", "generic", s, "--from-literal=k=v", "-n", NS)
    kubectl.ok("apply", "-f", "-", stdin=_pod("pod-a", A, "secret-a"))
    kubectl.ok("apply", "-f", "-", stdin=_pod("pod-b", B, "secret-b"))
    yield configs
    kubectl("delete", "namespace", NS, "--wait=false")
    kubectl("delete", "node", A, B, "--wait=false")


def _as(kubectl, nodes, node: str, *args: str, stdin: str | None = None):
    return kubectl("--kubeconfig", nodes[node], *args, stdin=stdin)


def _wait_until(check, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(what)


def test_a_node_reads_the_secret_of_its_own_pod_but_not_another_nodes(kubectl, nodes):
    assert _as(kubectl, nodes, A, "get", "secret", "secret-a", "-n", NS, "-o", "name").stdout.strip() == \
        "secret/secret-a"
    r = _as(kubectl, nodes, A, "get", "secret", "secret-b", "-n", NS)
    assert r.returncode != 0
    assert (f'secrets "secret-b" is forbidden: User "system:node:{A}" cannot get resource "secrets" in API group "" '
            f"in the namespace \"{NS}\": no relationship found between node '{A}' and this object") in r.stderr
    # Node B is the mirror image.
    assert _as(kubectl, nodes, B, "get", "secret", "secret-b", "-n", NS).returncode == 0
    assert _as(kubectl, nodes, B, "get", "secret", "secret-a", "-n", NS).returncode != 0
    # No node lists secrets.
    r = _as(kubectl, nodes, A, "get", "secrets", "-n", NS)
    assert r.returncode != 0 and "No Object name found" in r.stderr


def test_auth_can_i_agrees(kubectl, nodes):
    assert _as(kubectl, nodes, A, "auth", "can-i", "get", "secret/secret-a", "-n", NS).stdout.strip() == "yes"
    r = _as(kubectl, nodes, A, "auth", "can-i", "get", "secret/secret-b", "-n", NS)
    # kubectl shows the authorizer's reason after the answer, as with kube-apiserver.
    assert r.returncode == 1 and r.stdout.strip() == f"no - no relationship found between node '{A}' and this object"
    assert _as(kubectl, nodes, A, "auth", "can-i", "get", f"node/{A}").stdout.strip() == "yes"
    assert _as(kubectl, nodes, A, "auth", "can-i", "get", f"node/{B}").stdout.startswith("no")
    assert _as(kubectl, nodes, A, "auth", "can-i", "list", "deployments.apps", "-n", NS).stdout.strip() == "no"
    # The admin asking about a node (SubjectAccessReview through --as) hears the same.
    assert kubectl("auth", "can-i", "get", "secret/secret-b", "-n", NS, "--as", f"system:node:{A}",
                   "--as-group", "system:nodes").stdout.startswith("no")
    assert kubectl("auth", "can-i", "get", "secret/secret-a", "-n", NS, "--as", f"system:node:{A}",
                   "--as-group", "system:nodes").stdout.strip() == "yes"


def test_the_graph_follows_pods_bound_and_deleted(kubectl, nodes):
    def can_read() -> bool:
        return _as(kubectl, nodes, A, "get", "secret", "secret-late", "-n", NS).returncode == 0

    assert not can_read()
    kubectl.ok("apply", "-f", "-", stdin=_pod("pod-late", A, "secret-late"))
    _wait_until(can_read, "node A never could read the secret of a pod bound to it")
    kubectl.ok("delete", "pod", "pod-late", "-n", NS, "--grace-period=0", "--force")
    _wait_until(lambda: not can_read(), "node A still reads the secret of a pod that is gone")


def test_a_node_reads_only_its_own_node_and_pods(kubectl, nodes):
    assert _as(kubectl, nodes, A, "get", "node", A, "-o", "name").stdout.strip() == f"node/{A}"
    r = _as(kubectl, nodes, A, "get", "node", B)
    assert r.returncode != 0 and f"node '{A}' cannot read '{B}', only its own Node object" in r.stderr
    pods = _as(kubectl, nodes, A, "get", "pods", "-A", f"--field-selector=spec.nodeName={A}", "-o", "name")
    assert pods.returncode == 0 and pods.stdout.split() == ["pod/pod-a"]
    r = _as(kubectl, nodes, A, "get", "pods", "-A")
    assert r.returncode != 0 and "can only list/watch pods with spec.nodeName field selector" in r.stderr
    r = _as(kubectl, nodes, A, "get", "pod", "pod-b", "-n", NS)
    assert r.returncode != 0 and "no relationship found" in r.stderr


def test_node_restriction_on_labels_and_other_nodes(kubectl, nodes):
    r = _as(kubectl, nodes, A, "label", "node", A, "node-restriction.kubernetes.io/x=y")
    assert r.returncode != 0
    assert f'nodes "{A}" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/x' in r.stderr
    r = _as(kubectl, nodes, A, "label", "node", A, "node-role.kubernetes.io/control-plane=")
    assert r.returncode != 0 and "is not allowed to modify labels: node-role.kubernetes.io/control-plane" in r.stderr
    # Labels outside the kubernetes.io / k8s.io namespaces stay the node's to set.
    assert _as(kubectl, nodes, A, "label", "node", A, "team=storage").returncode == 0
    assert kubectl.ok("get", "node", A, "-o", "jsonpath={.metadata.labels.team}") == "storage"
    assert "node-restriction.kubernetes.io/x" not in kubectl.ok("get", "node", A, "--show-labels")
    # kubectl label reads the Node first (refused: not its own); a PUT goes straight to admission.
    assert "only its own Node object" in _as(kubectl, nodes, A, "label", "node", B, "team=stolen").stderr
    stolen = yaml.safe_dump({"apiVersion": "v1", "kind": "Node", "metadata": {"name": B, "labels": {"team": "stolen"}}})
    r = kubectl("--kubeconfig", nodes[A], "replace", "--raw", f"/api/v1/nodes/{B}", "-f", "-", stdin=stolen)
    assert r.returncode != 0 and f'node "{A}" is not allowed to modify node "{B}"' in r.stderr
    assert kubectl.ok("get", "node", B, "-o", "jsonpath={.metadata.labels.team}") == ""
    r = _as(kubectl, nodes, A, "taint", "node", A, "x=y:NoSchedule")
    assert r.returncode != 0 and f'node "{A}" is not allowed to modify taints' in r.stderr


def test_node_restriction_on_pods(kubectl, nodes):
    r = _as(kubectl, nodes, A, "delete", "pod", "pod-b", "-n", NS, "--wait=false")
    assert r.returncode != 0
    assert f'pods "pod-b" is forbidden: node "{A}" can only delete pods with spec.nodeName set to itself' in r.stderr
    assert kubectl("get", "pod", "pod-b", "-n", NS).returncode == 0
    # A node creates only mirror pods.
    r = kubectl("--kubeconfig", nodes[A], "run", "sneaky", "--image=busybox", "-n", NS,
                f"--overrides={{\"spec\": {{\"nodeName\": \"{A}\"}}}}")
    assert r.returncode != 0 and f'node "{A}" can only create mirror pods' in r.stderr
    assert kubectl("get", "pod", "sneaky", "-n", NS).returncode != 0


def _volume(name: str, node: str) -> str:
    return yaml.safe_dump({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
        "spec": {"capacity": {"storage": "1Mi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/tmp/x"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}}})


def test_a_node_provisions_and_removes_only_volumes_on_itself(kubectl, nodes):
    # The agent's local-path provisioner runs with the node's identity.
    assert _as(kubectl, nodes, A, "create", "-f", "-", stdin=_volume("na-pv-a", A)).returncode == 0
    r = _as(kubectl, nodes, A, "create", "-f", "-", stdin=_volume("na-pv-b", B))
    assert r.returncode != 0 and (f'node "{A}" can only create and delete persistentvolumes whose node affinity '
                                  "selects itself") in r.stderr
    kubectl.ok("create", "-f", "-", stdin=_volume("na-pv-b", B))
    r = _as(kubectl, nodes, A, "delete", "pv", "na-pv-b", "--wait=false")
    assert r.returncode != 0 and "whose node affinity selects itself" in r.stderr
    assert _as(kubectl, nodes, A, "delete", "pv", "na-pv-a", "--wait=false").returncode == 0
    kubectl.ok("delete", "pv", "na-pv-b", "--wait=false")


def test_a_node_publishes_only_its_own_dns_endpoint_slice(kubectl, nodes):
    def sl(node: str) -> str:
        return yaml.safe_dump({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                               "metadata": {"name": f"kube-dns-{node}", "namespace": "kube-system"},
                               "endpoints": [{"addresses": ["10.99.0.1"]}]})

    r = _as(kubectl, nodes, A, "create", "-f", "-", stdin=sl(B))
    assert r.returncode != 0
    assert f'node "{A}" can only write its own DNS EndpointSlice kube-system/kube-dns-{A}' in r.stderr
    assert _as(kubectl, nodes, A, "create", "-f", "-", stdin=sl(A)).returncode == 0
    assert _as(kubectl, nodes, A, "delete", "endpointslice", f"kube-dns-{A}", "-n", "kube-system").returncode == 0


# -- a real agent as its node identity ------------------------------------------------------

AGENT_NODE, AGENT_NS, AGENT_CIDR = "kyb-na-node", "node-authz-agent", "10.42.227.0/24"


@pytest.fixture(scope="module")
def agent(server, kubectl):
    if agent_prerequisites() is not None:
        pytest.skip(agent_prerequisites() or "")
    proc = AgentProcess(server, node_name=AGENT_NODE, bridge="kybna0", proxy_table="kyb-na", pod_cidr=AGENT_CIDR)
    try:
        proc.start()
        kubectl.ok("create", "namespace", AGENT_NS)
        yield proc
    finally:
        delete_namespace(server, AGENT_NS)
        proc.cleanup()


def test_a_real_agent_runs_pods_as_its_node_identity(kubectl, agent):
    # The credential the agent was started with.
    kc = yaml.safe_load((Path(agent.data_dir) / "node-kubeconfig.yaml").read_text())
    cert = x509.load_pem_x509_certificate(base64.b64decode(kc["users"][0]["user"]["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == f"CN=system:node:{AGENT_NODE},O=system:nodes"
    kubectl.ok("create", "secret", "generic", "app-secret", "--from-literal=word=hidden", "-n", AGENT_NS)
    kubectl.ok("create", "configmap", "app-config", "--from-literal=greeting=hello", "-n", AGENT_NS)
    kubectl.ok("apply", "-f", "-", stdin=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": AGENT_NS},
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "8Mi"}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": AGENT_NS},
         "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                  "nodeSelector": {"kubernetes.io/hostname": AGENT_NODE}, "terminationGracePeriodSeconds": 1,
                  "containers": [{
                      "name": "main", "image": "busybox:1.35",
                      "command": ["sh", "-c", "echo $GREETING $(cat /s/word) > /data/out; test -s "
                                  "/var/run/secrets/kubernetes.io/serviceaccount/token && echo token >> /data/out; "
                                  "cat /data/out; sleep 3600"],
                      "env": [{"name": "GREETING",
                               "valueFrom": {"configMapKeyRef": {"name": "app-config", "key": "greeting"}}}],
                      "volumeMounts": [{"name": "s", "mountPath": "/s"}, {"name": "data", "mountPath": "/data"}]}],
                  "volumes": [{"name": "s", "secret": {"secretName": "app-secret"}},
                              {"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}}]))
    # Secret, ConfigMap, the provisioned claim and the ServiceAccount token all reached the pod.
    _wait_until(lambda: kubectl("logs", "app", "-n", AGENT_NS).stdout.split() == ["hello", "hidden", "token"],
                f"the pod never ran with its volumes: {kubectl('describe', 'pod', 'app', '-n', AGENT_NS).stdout}"
                f"\n{agent.log_tail()}", timeout=90)
    assert kubectl.ok("get", "pvc", "data", "-n", AGENT_NS, "-o", "jsonpath={.status.phase}") == "Bound"
    lease = kubectl.ok("get", "lease", AGENT_NODE, "-n", "kube-node-lease", "-o", "jsonpath={.spec.holderIdentity}")
    assert lease == AGENT_NODE
    assert "forbidden" not in agent.log_tail(200_000).lower()


async def test_kyb_server_writes_its_embedded_agent_a_node_kubeconfig(tmp_path):
    """`kyb server` gives the agent it starts a certificate of its own node identity."""
    from kybernetes.cli.main import _run_server

    stop = asyncio.Event()
    path = tmp_path / "agent" / "kubeconfig.yaml"
    task = asyncio.create_task(_run_server(stop, str(tmp_path), free_port(), "127.0.0.1", [], 300, 1000, [],
                                           service_network(), "127.0.0.1", node_kubeconfig=("emb-node", str(path))))
    try:
        for _ in range(300):
            if path.exists() or task.done():
                break
            await asyncio.sleep(0.1)
        assert path.exists(), "no node kubeconfig written"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    user = yaml.safe_load(path.read_text())["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.subject.rfc4514_string() == "CN=system:node:emb-node,O=system:nodes"


def test_a_nodes_rules_are_reported_incomplete(kubectl, nodes):
    r = _as(kubectl, nodes, A, "auth", "can-i", "--list", "-n", NS)
    assert r.returncode == 0
    assert "the list may be incomplete: node authorizer does not support user rule resolution" in r.stdout + r.stderr
