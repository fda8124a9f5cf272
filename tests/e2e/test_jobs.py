"""Jobs on real containers, driven by real kubectl: completions and parallelism,
Indexed Jobs, the backoff limit, a pod failure policy, TTL after finished, and a
controller manager restarted in the middle of a Job."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import process_argvs

NS = "jobs-e2e"
NODE = "job-node"
POD_CIDR = "10.42.221.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server, node_name=NODE, bridge="kybj0", proxy_table="kyb-job", pod_cidr=POD_CIDR)
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    kubectl("delete", "jobs", "-n", NS, "--all", "--wait=false")
    kubectl("delete", "namespace", NS, "--wait=false")
    proc.cleanup()


def on_agent(job: dict[str, Any]) -> dict[str, Any]:
    """The Job's pods go to this module's agent only."""
    spec = job["spec"]["template"]["spec"]
    spec["tolerations"] = [{"key": TEST_TAINT, "operator": "Exists"}]
    spec["nodeSelector"] = {"kubernetes.io/hostname": NODE}
    spec["terminationGracePeriodSeconds"] = 1
    job["metadata"]["namespace"] = NS
    return job


def job_manifest(name: str, script: str, **spec: Any) -> dict[str, Any]:
    return on_agent({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                     "spec": {**spec, "template": {"spec": {
                         "restartPolicy": "Never",
                         "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", script]}]}}}})


def get(kubectl, *args: str) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "-n", NS, *args, "-o", "json"))


def job_pods(kubectl, name: str) -> list[dict[str, Any]]:
    return get(kubectl, "pods", "-l", f"batch.kubernetes.io/job-name={name}")["items"]


def wait_for(kubectl, name: str, condition: str, timeout: int = 150) -> dict[str, Any]:
    r = kubectl("wait", "-n", NS, f"--for=condition={condition}", f"job/{name}", f"--timeout={timeout}s",
                timeout=timeout + 30)
    assert r.returncode == 0, (f"job/{name} never reached {condition}: {r.stderr}\n"
                               + kubectl("get", "-n", NS, "job", name, "-o", "yaml").stdout
                               + kubectl("get", "-n", NS, "pods", "-o", "wide").stdout)
    return get(kubectl, "job", name)


def condition(job: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in job["status"]["conditions"] if c["type"] == type_)


def test_kubectl_create_job_completes_and_its_logs_and_columns_are_right(agent, kubectl):
    manifest = json.loads(kubectl.ok("create", "job", "hello", f"--image={IMAGE}", "--dry-run=client", "-o", "json",
                                     "--", "sh", "-c", "echo hi"))
    kubectl.ok("create", "-f", "-", stdin=json.dumps(on_agent(manifest)))
    job = wait_for(kubectl, "hello", "complete")
    assert job["status"]["succeeded"] == 1 and job["status"].get("failed") is None
    assert condition(job, "Complete")["reason"] == "CompletionsReached"
    assert job["status"]["completionTime"] >= job["status"]["startTime"]
    assert kubectl.ok("logs", "-n", NS, "job/hello").strip() == "hi"
    header, row = kubectl.ok("get", "jobs", "-n", NS, "hello").splitlines()
    assert header.split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    name, status, completions, duration, _age = row.split()
    assert (name, status, completions) == ("hello", "Complete", "1/1")
    assert duration.endswith("s")
    [pod] = job_pods(kubectl, "hello")
    assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])
    described = " ".join(kubectl.ok("describe", "-n", NS, "job", "hello").split())
    assert "Pods Statuses: 0 Active (0 Ready) / 1 Succeeded / 0 Failed" in described
    assert "SuccessfulCreate" in described and f"Created pod: {pod['metadata']['name']}" in described
    assert "Completed" in described and "Job completed" in described


def test_five_completions_two_at_a_time(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("five", "sleep 1; echo done", completions=5,
                                                                  parallelism=2)))
    most = 0
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        job = get(kubectl, "job", "five")
        most = max(most, len([p for p in job_pods(kubectl, "five")
                              if p.get("status", {}).get("phase") in (None, "Pending", "Running")]))
        if any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions") or []):
            break
        time.sleep(0.5)
    job = wait_for(kubectl, "five", "complete")
    assert job["status"]["succeeded"] == 5 and not job["status"].get("failed")
    assert job["status"]["uncountedTerminatedPods"] == {}
    pods = job_pods(kubectl, "five")
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 5
    assert 1 <= most <= 2
    assert "5/5" in kubectl.ok("get", "jobs", "-n", NS, "five")


def test_indexed_job_pods_see_their_index_and_hostname(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest(
        "idx", 'echo "index=$JOB_COMPLETION_INDEX host=$(hostname)"', completions=3, parallelism=3,
        completionMode="Indexed")))
    job = wait_for(kubectl, "idx", "complete")
    assert job["status"]["completedIndexes"] == "0-2" and job["status"]["succeeded"] == 3
    pods = job_pods(kubectl, "idx")
    assert len(pods) == 3
    for pod in pods:
        index = pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert pod["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] == index
        assert pod["metadata"]["name"].startswith(f"idx-{index}-")
        out = kubectl.ok("logs", "-n", NS, pod["metadata"]["name"]).strip()
        assert out == f"index={index} host=idx-{index}"


def test_a_failing_job_fails_after_its_backoff_limit(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("fails", "exit 1", backoffLimit=1)))
    job = wait_for(kubectl, "fails", "failed", timeout=120)
    failed = condition(job, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert job["status"]["failed"] == 2 and "completionTime" not in job["status"]
    assert condition(job, "FailureTarget")["reason"] == "BackoffLimitExceeded"
    assert len(job_pods(kubectl, "fails")) == 2
    assert "Failed" in kubectl.ok("get", "jobs", "-n", NS, "fails")


def test_pod_failure_policy_on_exit_code_42_fails_the_job_at_once(agent, kubectl):
    policy = {"rules": [{"action": "FailJob", "onExitCodes": {"containerName": "main", "operator": "In",
                                                               "values": [42]}}]}
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("answer", "exit 42", backoffLimit=6,
                                                                  podFailurePolicy=policy)))
    job = wait_for(kubectl, "answer", "failed", timeout=90)
    failed = condition(job, "Failed")
    [pod] = job_pods(kubectl, "answer")
    assert failed["reason"] == "PodFailurePolicy"
    assert failed["message"] == (f"Container main for pod {NS}/{pod['metadata']['name']} failed with exit code 42 "
                                 "matching FailJob rule at index 0")
    assert job["status"]["failed"] == 1


def test_ttl_deletes_a_finished_job_and_its_pods(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("brief", "echo bye", ttlSecondsAfterFinished=2)))
    deadline = time.monotonic() + 150
    seen_pods = False
    while time.monotonic() < deadline:
        seen_pods = seen_pods or bool(job_pods(kubectl, "brief"))
        r = kubectl("get", "-n", NS, "job", "brief", "-o", "json")
        if r.returncode != 0 and "NotFound" in r.stderr:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the finished Job was never deleted: "
                             + kubectl("get", "-n", NS, "job", "brief", "-o", "yaml").stdout)
    assert seen_pods
    deadline = time.monotonic() + 60
    while job_pods(kubectl, "brief") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_pods(kubectl, "brief") == []


def _controller_manager_pid(server) -> int | None:
    for pid, argv in process_argvs():
        # Its kubeconfig is under the server's data dir (its own identity's, not the admin's).
        if b"controller-manager" in argv and any(a.startswith(server.data_dir.encode() + b"/") for a in argv):
            return pid
    return None


def _leader_lease(kubectl) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "lease", "-n", "kube-system", "kube-controller-manager", "-o", "json"))["spec"]


def test_a_controller_manager_restart_mid_job_neither_loses_nor_double_counts(agent, server, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("steady", "sleep 2; echo ok", completions=6,
                                                                  parallelism=2)))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        succeeded = get(kubectl, "job", "steady").get("status", {}).get("succeeded") or 0
        if succeeded >= 1:
            break
        time.sleep(0.3)
    assert succeeded < 6, "the Job finished before the restart"
    pid = _controller_manager_pid(server)
    assert pid is not None
    lease = _leader_lease(kubectl)
    # A crash, not a clean stop: the server starts a new one, under the name the lease already
    # carries, so it leads again without waiting out the dead one's lease.
    os.kill(pid, signal.SIGKILL)
    job = wait_for(kubectl, "steady", "complete", timeout=180)
    assert _controller_manager_pid(server) not in (None, pid)
    after = _leader_lease(kubectl)
    assert (after["holderIdentity"], after["leaseTransitions"]) == (lease["holderIdentity"], lease["leaseTransitions"])
    assert job["status"]["succeeded"] == 6 and not job["status"].get("failed")
    pods = job_pods(kubectl, "steady")
    assert sorted(p["status"]["phase"] for p in pods) == ["Succeeded"] * 6
    assert all("batch.kubernetes.io/job-tracking" not in (p["metadata"].get("finalizers") or []) for p in pods)


def test_a_suspended_job_starts_when_resumed(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("later", "echo now", suspend=True)))
    job = wait_for(kubectl, "later", "suspended", timeout=60)
    suspended = condition(job, "Suspended")
    assert (suspended["reason"], suspended["message"]) == ("JobSuspended", "Job suspended")
    assert "startTime" not in job["status"] and job_pods(kubectl, "later") == []
    assert "Suspended" in kubectl.ok("get", "jobs", "-n", NS, "later")
    kubectl.ok("patch", "-n", NS, "job", "later", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    job = wait_for(kubectl, "later", "complete")
    resumed = condition(job, "Suspended")
    assert (resumed["status"], resumed["reason"], resumed["message"]) == ("False", "JobResumed", "Job resumed")
    assert job["status"]["succeeded"] == 1


def test_deleting_a_running_job_takes_its_pods_with_it(agent, kubectl):
    kubectl.ok("create", "-f", "-", stdin=json.dumps(job_manifest("forever", "sleep 300", parallelism=2,
                                                                  completions=2)))
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        running = [p for p in job_pods(kubectl, "forever") if p.get("status", {}).get("phase") == "Running"]
        if len(running) == 2:
            break
        time.sleep(0.5)
    assert len(running) == 2
    kubectl.ok("delete", "-n", NS, "job", "forever", timeout=90)
    deadline = time.monotonic() + 60
    while job_pods(kubectl, "forever") and time.monotonic() < deadline:
        time.sleep(0.5)
    # The tracking finalizer does not keep the pods of a deleted Job around.
    assert job_pods(kubectl, "forever") == []
