"""One controller stuck on one object does not starve the others (issue 10).

Under Kubernetes' conformance specs the controller manager spun at 100% CPU on a
1-replica Deployment whose rollout had completed but whose only pod was no longer
ready: past its progress deadline the Deployment controller requeued it with no delay,
for ever, and no new namespace got its `default` ServiceAccount meanwhile. This
rebuilds that state against the session server (its controller manager, no node
agent): the pod can never be scheduled, so its readiness is written through the
status subresource as a kubelet would, ready first and then not ready.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest

from kybernetes.testing.cluster import process_argvs, wait_for

NS = "fairness-stuck"


def _get(kubectl, *args: str) -> dict:
    r = kubectl("get", *args, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def _condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), {})


def _set_ready(kubectl, pod: str, ready: bool) -> None:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = "True" if ready else "False"
    patch = {"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": status, "lastTransitionTime": now},
        {"type": "ContainersReady", "status": status, "lastTransitionTime": now}]}}
    kubectl.ok("patch", "pod", pod, "-n", NS, "--subresource=status", "--type=merge", "-p", json.dumps(patch))


def _controller_manager_pid(server) -> int | None:
    for pid, argv in process_argvs():
        # Its kubeconfig is under the server's data dir (its own identity's, not the admin's).
        if b"controller-manager" in argv and any(a.startswith(server.data_dir.encode() + b"/") for a in argv):
            return pid
    return None


def _runnable_seconds(pid: int) -> float | None:
    """Seconds the process's main thread (its event loop) has run or waited to run.
    Unlike CPU time this does not depend on how busy the machine is: a thread that
    spins is runnable all the time whether or not it gets a core."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            on_cpu, waiting, _ = f.read().split()
    except (OSError, ValueError):
        return None
    return (int(on_cpu) + int(waiting)) / 1e9


@pytest.fixture(scope="module")
def stuck_deployment(kubectl):
    """A 1-replica Deployment whose rollout completed (Progressing: NewReplicaSetAvailable)
    and whose only pod then stopped being ready, left well past its progress deadline."""
    kubectl.ok("create", "namespace", NS)
    manifest = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "sample-webhook-deployment", "namespace": NS},
        "spec": {"replicas": 1, "progressDeadlineSeconds": 1,
                 "selector": {"matchLabels": {"app": "sample-webhook"}},
                 "template": {"metadata": {"labels": {"app": "sample-webhook"}},
                              "spec": {"nodeSelector": {"kybernetes.test/no-such-node": "true"},
                                       "containers": [{"name": "webhook", "image": "busybox"}]}}}}
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    pod = wait_for(lambda: [p["metadata"]["name"] for p in _get(kubectl, "pods", "-n", NS).get("items", [])],
                   30, what="the Deployment's pod")[0]
    _set_ready(kubectl, pod, True)
    wait_for(lambda: _condition(_get(kubectl, "deploy", "-n", NS, "sample-webhook-deployment"),
                                "Progressing").get("reason") == "NewReplicaSetAvailable", 30,
             what="the rollout to complete")
    _set_ready(kubectl, pod, False)
    wait_for(lambda: _condition(_get(kubectl, "deploy", "-n", NS, "sample-webhook-deployment"),
                                "Available").get("status") == "False", 30, what="the Deployment to lose availability")
    # Past the 1 s progress deadline: this is where the old controller started spinning.
    time.sleep(2.5)
    yield pod
    kubectl("delete", "namespace", NS, "--wait=false")


def test_new_namespace_gets_its_service_account_while_a_deployment_is_stuck(kubectl, stuck_deployment):
    ns = f"fairness-{uuid.uuid4().hex[:6]}"
    kubectl.ok("create", "namespace", ns)
    try:
        # Normally well under a second; the old hot loop starved it for good.
        wait_for(lambda: kubectl("get", "serviceaccount", "default", "-n", ns).returncode == 0, 15,
                 what="the default ServiceAccount")
        # What Kubernetes' conformance framework waits for next in every new namespace.
        cm = wait_for(lambda: _get(kubectl, "configmap", "kube-root-ca.crt", "-n", ns), 15, what="kube-root-ca.crt")
        assert cm["data"]["ca.crt"].startswith("-----BEGIN CERTIFICATE-----")
    finally:
        kubectl("delete", "namespace", ns, "--wait=false")
    d = _get(kubectl, "deploy", "-n", NS, "sample-webhook-deployment")
    # The stuck Deployment keeps Kubernetes' conditions: the finished rollout is not
    # judged against its deadline again, availability is reported lost.
    assert _condition(d, "Progressing").get("reason") == "NewReplicaSetAvailable"
    assert _condition(d, "Available").get("status") == "False"


def test_the_stuck_deployment_still_answers_changes(kubectl, stuck_deployment):
    kubectl.ok("scale", "deploy/sample-webhook-deployment", "-n", NS, "--replicas=2")
    wait_for(lambda: len(_get(kubectl, "pods", "-n", NS).get("items", [])) == 2, 20, what="a second pod")
    kubectl.ok("scale", "deploy/sample-webhook-deployment", "-n", NS, "--replicas=1")
    wait_for(lambda: len([p for p in _get(kubectl, "pods", "-n", NS).get("items", [])
                          if not p["metadata"].get("deletionTimestamp")]) == 1, 20, what="back to one pod")


def test_controller_manager_is_not_spinning(server, kubectl, stuck_deployment):
    pid = _controller_manager_pid(server)
    before, t0 = (_runnable_seconds(pid) if pid else None), time.monotonic()
    if before is None:
        pytest.skip("the controller manager's scheduler statistics are not readable")
    time.sleep(4)
    after = _runnable_seconds(pid)
    assert after is not None, "the controller manager exited"
    share = (after - before) / (time.monotonic() - t0)
    # A hot loop is runnable all the time (about 1.0); an idle manager sleeps in epoll.
    assert share < 0.5, f"the controller manager's event loop was runnable {share:.0%} of the time while idle"
