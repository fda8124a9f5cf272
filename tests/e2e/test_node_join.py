"""Joining nodes with bootstrap tokens, against a real server with real kubectl:
`kyb token create`, what a token may do (kubectl auth whoami / can-i) and its expiry, a
node client certificate approved and issued automatically, and a real agent that joins
with `--token --ca-cert-hash` and registers its Node under its own certificate."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kybernetes.testing.agent import AgentProcess, agent_prerequisites

NODE = "kyb-join-node"
POD_CIDR = "10.42.228.0/24"


def kyb(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli.main", *args, "--kubeconfig", server.kubeconfig],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def workdir() -> Iterator[str]:
    d = tempfile.mkdtemp(prefix="kyb-join-")
    yield d
    subprocess.run(["rm", "-rf", d], check=False)


def kubeconfig_for(server: Any, path: str, user: dict[str, str]) -> str:
    with open(server.kubeconfig) as f:
        admin = yaml.safe_load(f)
    cluster = admin["clusters"][0]["cluster"]
    cfg = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
           "clusters": [{"name": "c", "cluster": {"server": cluster["server"],
                                                  "certificate-authority-data":
                                                      cluster["certificate-authority-data"]}}],
           "users": [{"name": "u", "user": user}],
           "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    return path


def as_user(kubectl: Any, config: str, *args: str, stdin: str | None = None) -> Any:
    return kubectl(*args, stdin=stdin, env={"KUBECONFIG": config})


def whoami(kubectl: Any, config: str) -> dict[str, Any]:
    r = as_user(kubectl, config, "auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["status"]["userInfo"]


@pytest.fixture(scope="module")
def join_token(server: Any) -> tuple[str, str]:
    r = kyb(server, "token", "create", "--ttl", "1h", "--description", "e2e join", "--print-join-command")
    assert r.returncode == 0, r.stderr
    words = r.stdout.split()
    return words[words.index("--token") + 1], words[words.index("--ca-cert-hash") + 1]


def test_token_create_prints_a_token_that_authenticates_as_its_bootstrap_user(server, kubectl, workdir,
                                                                               join_token) -> None:
    token, pin = join_token
    token_id = token.split(".")[0]
    assert pin.startswith("sha256:")
    listed = kyb(server, "token", "list")
    assert listed.returncode == 0 and f"{token_id}.<secret>" in listed.stdout and "e2e join" in listed.stdout
    assert token.split(".")[1] not in listed.stdout
    config = kubeconfig_for(server, os.path.join(workdir, "bootstrap.yaml"), {"token": token})
    user = whoami(kubectl, config)
    assert user["username"] == f"system:bootstrap:{token_id}"
    assert {"system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token",
            "system:authenticated"} <= set(user["groups"])
    wrong = kubeconfig_for(server, os.path.join(workdir, "wrong.yaml"), {"token": token_id + ".0000000000000000"})
    r = as_user(kubectl, wrong, "auth", "whoami")
    assert r.returncode != 0 and "Unauthorized" in r.stderr


@pytest.mark.parametrize(("args", "want"), [
    (("create", "certificatesigningrequests.certificates.k8s.io"), "yes"),
    (("get", "certificatesigningrequests.certificates.k8s.io"), "yes"),
    (("create", "certificatesigningrequests.certificates.k8s.io", "--subresource", "nodeclient"), "yes"),
    (("update", "certificatesigningrequests.certificates.k8s.io", "--subresource", "approval"), "no"),
    (("list", "secrets", "-n", "kube-system"), "no"),
    (("get", "nodes"), "no"),
    (("create", "pods"), "no"),
])
def test_a_bootstrap_token_may_ask_for_a_certificate_and_nothing_else(server, kubectl, workdir, join_token, args,
                                                                      want) -> None:
    config = kubeconfig_for(server, os.path.join(workdir, "bootstrap.yaml"), {"token": join_token[0]})
    r = as_user(kubectl, config, "auth", "can-i", *args)
    assert r.stdout.strip() == want, r.stderr
    if args[0] in ("list", "get") and want == "no":
        r = as_user(kubectl, config, "get", *args[1:])
        assert r.returncode != 0 and "Forbidden" in r.stderr


def test_an_expired_token_is_refused_and_cleaned_up(server, kubectl, workdir) -> None:
    r = kyb(server, "token", "create", "--ttl", "3s")
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    config = kubeconfig_for(server, os.path.join(workdir, "short.yaml"), {"token": token})
    assert whoami(kubectl, config)["username"] == f"system:bootstrap:{token.split('.')[0]}"
    time.sleep(3.5)
    r = as_user(kubectl, config, "auth", "whoami")
    assert r.returncode != 0 and "Unauthorized" in r.stderr
    secret = f"bootstrap-token-{token.split('.')[0]}"
    deadline = time.monotonic() + 30
    while kubectl("get", "secret", "-n", "kube-system", secret).returncode == 0:
        assert time.monotonic() < deadline, "the token cleaner did not delete the expired token's Secret"
        time.sleep(0.5)


def test_bad_token_options_are_refused(server) -> None:
    r = kyb(server, "token", "create", "--ttl", "soon")
    assert r.returncode != 0 and "invalid duration" in r.stderr
    r = kyb(server, "token", "create", "--groups", "system:masters")
    assert r.returncode != 0 and "system:bootstrappers" in r.stderr


def wait_issued(kubectl: Any, name: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        got = json.loads(kubectl.ok("get", "csr", name, "-o", "json"))
        if (got.get("status") or {}).get("certificate"):
            return got
        assert time.monotonic() < deadline, f"{name} not issued: {got.get('status')}"
        time.sleep(0.3)


def _csr(cn: str, orgs: list[str], name: str) -> tuple[dict[str, Any], bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([*(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in orgs),
                         x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    pem = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256()).public_bytes(
        serialization.Encoding.PEM)
    obj = {"apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest", "metadata": {"name": name},
           "spec": {"request": base64.b64encode(pem).decode(), "usages": ["digital signature", "client auth"],
                    "signerName": "kubernetes.io/kube-apiserver-client-kubelet"}}
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return obj, key_pem


def test_a_bootstrappers_node_client_request_is_approved_issued_and_authenticates_as_the_node(
        server, kubectl, workdir, join_token) -> None:
    config = kubeconfig_for(server, os.path.join(workdir, "bootstrap.yaml"), {"token": join_token[0]})
    bad, _ = _csr("system:node:e2e-bad", ["system:masters"], "e2e-join-bad")
    good, key_pem = _csr("system:node:e2e-joined", ["system:nodes"], "e2e-join-good")
    for obj in (bad, good):
        r = as_user(kubectl, config, "create", "-f", "-", stdin=json.dumps(obj))
        assert r.returncode == 0, r.stderr
    got = wait_issued(kubectl, "e2e-join-good")
    approved = [c for c in got["status"]["conditions"] if c["type"] == "Approved"]
    assert approved and approved[0]["reason"] == "AutoApproved"
    assert got["spec"]["username"] == f"system:bootstrap:{join_token[0].split('.')[0]}"
    cert = os.path.join(workdir, "node.crt")
    key = os.path.join(workdir, "node.key")
    with open(cert, "wb") as f:
        f.write(base64.b64decode(got["status"]["certificate"]))
    with open(key, "wb") as f:
        f.write(key_pem)
    node_config = kubeconfig_for(server, os.path.join(workdir, "node.yaml"),
                                 {"client-certificate": cert, "client-key": key})
    user = whoami(kubectl, node_config)
    assert user["username"] == "system:node:e2e-joined" and "system:nodes" in user["groups"]
    # The node renews its own certificate: approved as selfnodeclient.
    renewal, _ = _csr("system:node:e2e-joined", ["system:nodes"], "e2e-join-renewal")
    r = as_user(kubectl, node_config, "create", "-f", "-", stdin=json.dumps(renewal))
    assert r.returncode == 0, r.stderr
    renewed = wait_issued(kubectl, "e2e-join-renewal")
    assert [c["message"] for c in renewed["status"]["conditions"] if c["type"] == "Approved"] == [
        "Auto approving self kubelet client certificate after SubjectAccessReview."]
    # A request a node may not have (a system:masters organization) is never approved.
    bad_now = json.loads(kubectl.ok("get", "csr", "e2e-join-bad", "-o", "json"))
    assert not (bad_now.get("status") or {}).get("conditions")
    # ... though an administrator may still decide it by hand.
    kubectl.ok("certificate", "deny", "e2e-join-bad")
    kubectl("delete", "csr", "e2e-join-bad", "e2e-join-good", "e2e-join-renewal")


def test_an_agent_without_a_ca_pin_refuses_to_join(server, join_token, workdir) -> None:
    r = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "agent", "--server", server.url,
                        "--token", join_token[0], "--node-name", "kyb-join-unpinned", "--data-dir",
                        os.path.join(workdir, "unpinned"), "--containerd-socket", "/nonexistent.sock"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "unverified" in r.stderr + r.stdout


@pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")
def test_an_agent_joins_with_a_token_and_registers_its_node(server, kubectl, join_token) -> None:
    token, pin = join_token
    proc = AgentProcess(server, node_name=NODE, bridge="kybj1", proxy_table="kyb-join", pod_cidr=POD_CIDR,
                        auth_args=["--server", server.url, "--token", token, "--ca-cert-hash", pin])
    try:
        proc.start(timeout=150)
        pki = os.path.join(proc.data_dir, "pki")
        config = os.path.join(pki, "kubelet.kubeconfig")
        for f in (config, os.path.join(pki, "kubelet-client.key")):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
        user = whoami(kubectl, config)
        assert user["username"] == f"system:node:{NODE}" and "system:nodes" in user["groups"]
        csrs = json.loads(kubectl.ok("get", "csr", "-o", "json"))["items"]
        mine = [c for c in csrs if c["spec"]["username"] in (f"system:bootstrap:{token.split('.')[0]}",
                                                             f"system:node:{NODE}")]
        by_signer = {c["spec"]["signerName"]: c for c in mine}
        client_csr = by_signer["kubernetes.io/kube-apiserver-client-kubelet"]
        assert client_csr["spec"]["username"] == f"system:bootstrap:{token.split('.')[0]}"
        serving = by_signer["kubernetes.io/kubelet-serving"]
        assert serving["spec"]["username"] == f"system:node:{NODE}"
        # Approved by the controller manager: the node's own identity may not approve anything.
        for c in (client_csr, serving):
            assert [x["reason"] for x in c["status"]["conditions"] if x["type"] == "Approved"] == ["AutoApproved"]
        node = json.loads(kubectl.ok("get", "node", NODE, "-o", "json"))
        assert node["status"]["nodeInfo"]["containerRuntimeVersion"]
        # The API server reaches the agent with its verified serving certificate.
        r = kubectl("get", "--raw", f"/api/v1/nodes/{NODE}/proxy/healthz")
        assert r.returncode == 0 and "ok" in r.stdout, r.stderr
    finally:
        proc.cleanup()
