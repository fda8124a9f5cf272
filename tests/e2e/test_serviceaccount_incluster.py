"""In-cluster access on a real node agent: a pod reads the token, CA and namespace the
ServiceAccount admission mounted, calls the API server through the `kubernetes`
Service with them, and is authenticated as its ServiceAccount (and refused by RBAC
what its account may not do)."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest
from cryptography import x509

import kybernetes
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import ServerProcess

NS = "sa-incluster"
NODE = "kyb-sa-node"
POD_CIDR = "10.42.225.0/24"
IMAGE = "busybox:1.35"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")

# The pod runs this machine's Python with the official client (the offline images hold
# only busybox, whose TLS cannot talk to a modern server): host directories are mounted
# read-only, and the process stays in the pod's network namespace and mounts.
PYTHON = os.path.abspath(sys.executable)  # the venv's, which links to the interpreter below
_WANTED = {"/usr", "/lib", "/lib64", os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
           os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))),
           os.path.dirname(os.path.dirname(os.path.abspath(kybernetes.__file__)))}
HOST_DIRS = sorted(d for d in _WANTED if not any(d != o and d.startswith(o + "/") for o in _WANTED))
IN_CLUSTER = """
import json, sys
from kubernetes import client, config
config.load_incluster_config()
api = client.ApiClient()
who = client.AuthenticationV1Api(api).create_self_subject_review(
    client.V1SelfSubjectReview(metadata=client.V1ObjectMeta()))
print("whoami=" + json.dumps(api.sanitize_for_serialization(who)))
ns = open("%(dir)s/namespace").read()
print("ns=" + ns)
for name, call in (("pods", client.CoreV1Api(api).list_namespaced_pod),
                   ("secrets", client.CoreV1Api(api).list_namespaced_secret)):
    try:
        call(ns)
        print(name + "=200")
    except client.ApiException as e:
        print(name + "=" + str(e.status) + " " + json.loads(e.body)["message"])
print("ca-begin"); print(open("%(dir)s/ca.crt").read().strip()); print("ca-end")
""".replace("%(dir)s", SA_DIR)


@pytest.fixture(scope="module")
def cluster():
    # Its own server, listening beyond loopback: pods reach it at the address the
    # `kubernetes` Service's endpoints name.
    srv = ServerProcess(extra_args=["--bind-address", "0.0.0.0"])
    srv.start()
    agent = None
    try:
        agent = AgentProcess(srv, node_name=NODE, bridge="kybsa0", proxy_table="kyb-sa", pod_cidr=POD_CIDR)
        agent.start()
        assert srv.kubectl("create", "namespace", NS).returncode == 0
        assert srv.kubectl("-n", NS, "create", "serviceaccount", "reader").returncode == 0
        yield srv, agent
    finally:
        srv.kubectl("delete", "namespace", NS, "--wait=false")
        if agent is not None:
            agent.cleanup()
        srv.cleanup()


def _wait_succeeded(srv: ServerProcess, name: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
        if r.returncode == 0:
            pod = json.loads(r.stdout)
            if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
                return pod
        time.sleep(1)
    raise AssertionError(f"pod {name} did not finish: {json.dumps(pod.get('status'))}")


def _can_i(srv: ServerProcess, verb: str, resource: str) -> bool:
    r = srv.kubectl("auth", "can-i", verb, resource, "-n", NS, "--as", f"system:serviceaccount:{NS}:reader")
    return r.stdout.strip() == "yes"


def test_a_pod_uses_load_incluster_config_as_its_service_account(cluster):
    srv, agent = cluster
    assert srv.kubectl("-n", NS, "create", "role", "pod-reader", "--verb=list", "--resource=pods").returncode == 0
    assert srv.kubectl("-n", NS, "create", "rolebinding", "reader-pods", "--role=pod-reader",
                       f"--serviceaccount={NS}:reader").returncode == 0
    mounts = [{"name": f"host{i}", "mountPath": d, "readOnly": True} for i, d in enumerate(HOST_DIRS)]
    volumes = [{"name": f"host{i}", "hostPath": {"path": d}} for i, d in enumerate(HOST_DIRS)]
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "caller", "namespace": NS},
           "spec": {"serviceAccountName": "reader", "restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], "volumes": volumes,
                    "containers": [{"name": "c", "image": IMAGE, "command": [PYTHON, "-c", IN_CLUSTER],
                                    "env": [{"name": "PYTHONPATH", "value": ""}], "volumeMounts": mounts}]}}
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    assert r.returncode == 0, r.stderr
    done = _wait_succeeded(srv, "caller")
    logs = srv.kubectl("-n", NS, "logs", "caller").stdout
    assert done["status"]["phase"] == "Succeeded", (json.dumps(done["status"]), logs, agent.log_tail(1500))
    lines = logs.splitlines()
    assert f"ns={NS}" in lines
    whoami = json.loads(next(line for line in lines if line.startswith("whoami=")).split("=", 1)[1])
    info = whoami["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{NS}:reader", logs
    assert info["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
    # The token is the projected one, bound to the pod that holds it.
    assert info["extra"]["authentication.kubernetes.io/pod-name"] == ["caller"]
    assert info["extra"]["authentication.kubernetes.io/pod-uid"] == [done["metadata"]["uid"]]
    # What the account may do works; the rest is refused, as `kubectl auth can-i` says.
    assert "pods=200" in lines, logs
    secrets = next(line for line in lines if line.startswith("secrets="))
    if _can_i(srv, "list", "secrets"):
        assert secrets == "secrets=200", logs
    else:
        assert secrets.startswith("secrets=403 ") and f"system:serviceaccount:{NS}:reader" in secrets, logs
    # The mounted CA is the cluster CA, and the API server's certificate chains to it for
    # the `kubernetes` Service's address the client used.
    mounted = logs.split("ca-begin\n", 1)[1].split("ca-end", 1)[0].strip()
    with open(os.path.join(srv.data_dir, "pki", "ca.crt")) as f:
        assert mounted == f.read().strip()
    ca = x509.load_pem_x509_certificate(mounted.encode())
    with open(os.path.join(srv.data_dir, "pki", "server.crt"), "rb") as f:
        serving = x509.load_pem_x509_certificate(f.read())
    serving.verify_directly_issued_by(ca)
    svc = json.loads(srv.kubectl("-n", "default", "get", "service", "kubernetes", "-o", "json").stdout)
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert svc["spec"]["clusterIP"] in {str(ip) for ip in sans.get_values_for_type(x509.IPAddress)}
    assert "kubernetes.default.svc" in sans.get_values_for_type(x509.DNSName)


def test_a_projected_token_with_an_audience_is_written_and_dies_with_the_pod(cluster):
    srv, agent = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder", "namespace": NS},
           "spec": {"serviceAccountName": "reader", "terminationGracePeriodSeconds": 1,
                    "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                    "volumes": [{"name": "short", "projected": {"sources": [{"serviceAccountToken": {
                        "path": "vault-token", "audience": "vault", "expirationSeconds": 600}}]}}],
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                                    "volumeMounts": [{"name": "short", "mountPath": "/vault"}]}]}}
    assert srv.kubectl("apply", "-f", "-", stdin=json.dumps(pod)).returncode == 0
    r = srv.kubectl("-n", NS, "wait", "--for=condition=Ready", "pod/holder", "--timeout=120s", timeout=150)
    assert r.returncode == 0, (r.stderr, agent.log_tail())
    token = srv.kubectl("-n", NS, "exec", "holder", "--", "cat", "/vault/vault-token").stdout.strip()
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": ["vault"]}}
    out = json.loads(srv.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review)).stdout)
    assert out["status"]["authenticated"] is True and out["status"]["audiences"] == ["vault"]
    assert out["status"]["user"]["extra"]["authentication.kubernetes.io/pod-name"] == ["holder"]
    assert srv.kubectl("-n", NS, "delete", "pod", "holder", "--wait=true", timeout=90).returncode == 0
    out = json.loads(srv.kubectl("create", "-o", "json", "-f", "-", stdin=json.dumps(review)).stdout)
    assert out["status"]["authenticated"] is False
