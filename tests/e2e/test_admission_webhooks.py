"""Admission webhooks end to end: a real webhook server (aiohttp, kybernetes.testing.
webhook_server) runs as a pod on a real node agent behind a Service, with a serving
certificate signed by a CA made here and given as the configurations' caBundle. A
mutating webhook labels every pod it sees and warns (kubectl prints the warning), a
validating one refuses a name; stopping the webhook pod exercises failurePolicy Fail
(upstream's error) and Ignore (the write goes through)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

import pytest

import kybernetes
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.webhook_server import MUTATE_WARNING, SEEN_LABEL, write_tls

HOOK_NS = "webhook-e2e"
TARGET_NS = "webhook-target"
NODE = "kyb-webhook-node"
POD_CIDR = "10.42.230.0/24"
IMAGE = "busybox:1.35"
SELECT = {"matchLabels": {"webhook-e2e": "on"}}
MUTATE = "label.webhook.kyb.test"
VALIDATE = "deny.webhook.kyb.test"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")

# The pod runs this machine's Python (the offline images hold only busybox): host
# directories are mounted read-only into it.
PYTHON = os.path.abspath(sys.executable)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(kybernetes.__file__)))
_WANTED = {"/usr", "/lib", "/lib64", os.path.dirname(os.path.dirname(os.path.realpath(sys.executable))),
           os.path.dirname(os.path.dirname(os.path.abspath(sys.executable))),
           REPO}
HOST_DIRS = sorted(d for d in _WANTED if not any(d != o and d.startswith(o + "/") for o in _WANTED))


def _json(obj: dict[str, Any]) -> str:
    return json.dumps(obj)


@pytest.fixture(scope="module")
def agent(server, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=_json({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}},
        "spec": {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR],
                 "taints": [{"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"}]}}))
    proc = AgentProcess(server, node_name=NODE, bridge="kyb230", proxy_table="kyb230")
    proc.start()
    kubectl.ok("create", "namespace", HOOK_NS)
    kubectl.ok("apply", "-f", "-", stdin=_json({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": TARGET_NS, "labels": {"webhook-e2e": "on"}}}))
    yield proc
    kubectl("delete", "mutatingwebhookconfiguration", "kyb-e2e-mutate", "--ignore-not-found")
    kubectl("delete", "validatingwebhookconfiguration", "kyb-e2e-validate", "--ignore-not-found")
    kubectl("delete", "namespace", HOOK_NS, TARGET_NS, "--wait=false")
    proc.cleanup()


def _webhook_pod(tls_dir: str) -> dict[str, Any]:
    mounts = [{"name": f"host{i}", "mountPath": d, "readOnly": True} for i, d in enumerate(HOST_DIRS)]
    volumes = [{"name": f"host{i}", "hostPath": {"path": d}} for i, d in enumerate(HOST_DIRS)]
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hooks", "namespace": HOOK_NS, "labels": {"app": "hooks"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "nodeSelector": {"kubernetes.io/hostname": NODE},
                 "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                 "volumes": [*volumes, {"name": "tls", "hostPath": {"path": tls_dir}}],
                 "containers": [{
                     "name": "hooks", "image": IMAGE,
                     "command": [PYTHON, "-m", "kybernetes.testing.webhook_server", "--cert", "/tls/tls.crt",
                                 "--key", "/tls/tls.key", "--port", "8443", "--deny-name", "forbidden-name"],
                     "env": [{"name": "PYTHONPATH", "value": REPO}],
                     "ports": [{"name": "https", "containerPort": 8443}],
                     "readinessProbe": {"tcpSocket": {"port": 8443}, "periodSeconds": 1},
                     "volumeMounts": [*mounts, {"name": "tls", "mountPath": "/tls", "readOnly": True}]}]}}


def _ready_endpoints(kubectl) -> list[str]:
    r = kubectl("get", "endpointslices", "-n", HOOK_NS, "-l", "kubernetes.io/service-name=hooks", "-o", "json")
    if r.returncode != 0:
        return []
    return [a for s in json.loads(r.stdout).get("items") or [] for ep in s.get("endpoints") or []
            if (ep.get("conditions") or {}).get("ready") is not False for a in ep.get("addresses") or []]


@pytest.fixture(scope="module")
def ca_bundle(agent, kubectl):
    """The webhook pod running and ready behind its Service; the CA that signed its certificate."""
    tls_dir = tempfile.mkdtemp(prefix="kyb-webhook-tls-")
    os.chmod(tls_dir, 0o755)
    ca, _cert, _key = write_tls(tls_dir, [f"hooks.{HOOK_NS}.svc"])
    kubectl.ok("apply", "-f", "-", stdin=_json(_webhook_pod(tls_dir)))
    kubectl.ok("apply", "-f", "-", stdin=_json({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "hooks", "namespace": HOOK_NS},
        "spec": {"selector": {"app": "hooks"}, "ports": [{"name": "https", "port": 443, "targetPort": 8443}]}}))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not _ready_endpoints(kubectl):
        time.sleep(0.5)
    assert _ready_endpoints(kubectl), (kubectl("get", "pod", "-n", HOOK_NS, "hooks", "-o", "yaml").stdout,
                                       kubectl("logs", "-n", HOOK_NS, "hooks").stdout, agent.log_tail(1500))
    yield base64.b64encode(ca).decode()
    shutil.rmtree(tls_dir, ignore_errors=True)


def _configuration(kind: str, name: str, hook: str, path: str, resources: list[str], ca: str,
                   policy: str = "Fail") -> str:
    return _json({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
        "webhooks": [{
            "name": hook, "sideEffects": "None", "admissionReviewVersions": ["v1"], "failurePolicy": policy,
            "timeoutSeconds": 5, "namespaceSelector": SELECT,
            "clientConfig": {"service": {"namespace": HOOK_NS, "name": "hooks", "path": path}, "caBundle": ca},
            "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"], "resources": resources}]}]})


def _pod(name: str) -> str:
    # Never scheduled (no node carries the label it selects): admission is what is tested.
    return _json({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": TARGET_NS},
                  "spec": {"nodeSelector": {"kyb.test/nowhere": "true"},
                           "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "60"]}]}})


def _labels(kubectl, name: str) -> dict[str, str]:
    return json.loads(kubectl.ok("get", "pod", "-n", TARGET_NS, name, "-o", "json"))["metadata"].get("labels") or {}


@pytest.fixture(scope="module")
def configured(ca_bundle, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=_configuration(
        "MutatingWebhookConfiguration", "kyb-e2e-mutate", MUTATE, "/mutate", ["pods"], ca_bundle))
    kubectl.ok("apply", "-f", "-", stdin=_configuration(
        "ValidatingWebhookConfiguration", "kyb-e2e-validate", VALIDATE, "/validate", ["configmaps"], ca_bundle))
    return ca_bundle


def test_a_mutating_webhook_pod_labels_every_pod_and_kubectl_shows_its_warning(configured, kubectl):
    r = kubectl("apply", "-f", "-", stdin=_pod("first"))
    assert r.returncode == 0, r.stderr
    assert f"Warning: {MUTATE_WARNING}" in r.stderr
    assert _labels(kubectl, "first").get(SEEN_LABEL) == "yes"
    # A pod with labels of its own keeps them and gains the webhook's.
    r = kubectl("-n", TARGET_NS, "run", "second", "--image", IMAGE, "--labels", "app=mine",
                "--overrides", '{"spec": {"nodeSelector": {"kyb.test/nowhere": "true"}}}')
    assert r.returncode == 0, r.stderr
    assert _labels(kubectl, "second") == {"app": "mine", SEEN_LABEL: "yes"}
    # Outside the namespaces its namespaceSelector picks, the webhook is not called.
    r = kubectl("-n", HOOK_NS, "run", "elsewhere", "--image", IMAGE,
                "--overrides", '{"spec": {"nodeSelector": {"kyb.test/nowhere": "true"}}}')
    assert r.returncode == 0 and MUTATE_WARNING not in r.stderr, r.stderr
    pod = json.loads(kubectl.ok("get", "pod", "-n", HOOK_NS, "elsewhere", "-o", "json"))
    assert SEEN_LABEL not in (pod["metadata"].get("labels") or {})


def test_a_validating_webhook_refuses_a_name_with_its_message(configured, kubectl):
    r = kubectl("-n", TARGET_NS, "create", "configmap", "forbidden-name", "--from-literal=a=b")
    assert r.returncode != 0
    assert (f"admission webhook \"{VALIDATE}\" denied the request: the name 'forbidden-name' is reserved"
            in r.stderr), r.stderr
    assert kubectl("-n", TARGET_NS, "get", "configmap", "forbidden-name").returncode != 0
    assert kubectl("-n", TARGET_NS, "create", "configmap", "allowed-name").returncode == 0
    # A server-side dry run is sent too (sideEffects None) and refused alike.
    r = kubectl("-n", TARGET_NS, "create", "configmap", "forbidden-name", "--dry-run=server")
    assert r.returncode != 0 and "denied the request" in r.stderr


def test_a_validating_webhook_on_connect_refuses_exec_and_attach_before_the_node_is_dialled(configured, kubectl):
    config = json.loads(_configuration("ValidatingWebhookConfiguration", "kyb-e2e-connect", "connect." + VALIDATE,
                                       "/validate", ["pods/exec", "pods/attach"], configured))
    config["webhooks"][0]["rules"][0]["operations"] = ["CONNECT"]
    kubectl.ok("apply", "-f", "-", stdin=_json(config))
    try:
        for name in ("forbidden-name", "allowed-exec"):
            pod = json.loads(_pod(name))
            pod["spec"] = {"nodeName": NODE, "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "300"]}]}
            kubectl.ok("apply", "-f", "-", stdin=_json(pod))
        kubectl.ok("-n", TARGET_NS, "wait", "--for=condition=Ready", "pod/allowed-exec", "--timeout=60s", timeout=90)
        # The webhook sees the pod's name (its PodExecOptions / PodAttachOptions as the object).
        for verb in (["exec", "forbidden-name", "--", "true"], ["attach", "forbidden-name", "-i=false"]):
            r = kubectl("-n", TARGET_NS, *verb, timeout=30)
            assert r.returncode != 0
            assert (f"admission webhook \"connect.{VALIDATE}\" denied the request: the name 'forbidden-name' is "
                    "reserved" in r.stderr), r.stderr
        assert kubectl.ok("-n", TARGET_NS, "exec", "allowed-exec", "--", "echo", "through").strip() == "through"
    finally:
        kubectl.ok("delete", "validatingwebhookconfiguration", "kyb-e2e-connect")
        kubectl.ok("-n", TARGET_NS, "delete", "pod", "forbidden-name", "allowed-exec", "--wait=false")


def test_a_stopped_webhook_fails_closed_under_fail_and_open_under_ignore(configured, kubectl):
    kubectl.ok("delete", "pod", "-n", HOOK_NS, "hooks", "--wait=true", timeout=90)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _ready_endpoints(kubectl):
        time.sleep(0.5)
    assert not _ready_endpoints(kubectl)
    # Fail: the write is refused with upstream's words, naming the webhook and its URL.
    r = kubectl("apply", "-f", "-", stdin=_pod("while-down"))
    assert r.returncode != 0
    assert (f'Internal error occurred: failed calling webhook "{MUTATE}": failed to call webhook: Post '
            f'"https://hooks.{HOOK_NS}.svc:443/mutate?timeout=5s": no endpoints available for service "hooks"'
            in r.stderr), r.stderr
    assert kubectl("get", "pod", "-n", TARGET_NS, "while-down").returncode != 0
    r = kubectl("-n", TARGET_NS, "create", "configmap", "forbidden-name")
    assert r.returncode != 0 and f'failed calling webhook "{VALIDATE}"' in r.stderr, r.stderr
    # Ignore: the same writes go through, unmutated and unvalidated.
    for kind, name in (("mutatingwebhookconfiguration", "kyb-e2e-mutate"),
                       ("validatingwebhookconfiguration", "kyb-e2e-validate")):
        kubectl.ok("patch", kind, name, "--type=json",
                   "-p", '[{"op": "replace", "path": "/webhooks/0/failurePolicy", "value": "Ignore"}]')
    r = kubectl("apply", "-f", "-", stdin=_pod("while-down"))
    assert r.returncode == 0, r.stderr
    assert SEEN_LABEL not in _labels(kubectl, "while-down")
    assert kubectl("-n", TARGET_NS, "create", "configmap", "forbidden-name").returncode == 0
