"""Pod lifecycle on a real node agent: a native sidecar starts (and passes its startup
probe) before the app, keeps running, counts in READY, and is stopped after the app on
deletion; a Job whose pod has a sidecar completes; postStart hooks run before the
container counts as Running and a failing one kills it; activeDeadlineSeconds fails the
pod; init containers show Init:N/M and PodInitializing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time

import pytest

from kybernetes.testing.agent import TEST_TAINT, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "lifecycle-e2e"
NODE = "kyb-h1-node"
POD_CIDR = "10.42.233.0/24"
IMAGE = "busybox:1.35"
# Stops at once on SIGTERM (a shell as PID 1 ignores it without a trap).
SLEEP = "trap 'exit 0' TERM; sleep 3600 & wait"
GATE = "example.com/load-balancer"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


def _spec(**spec) -> dict:
    return {"nodeSelector": {"kubernetes.io/hostname": NODE},
            "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], "terminationGracePeriodSeconds": 10,
            **spec}


def _pod(name: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": _spec(**spec)}


def _sh(name: str, script: str, **extra) -> dict:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


def _manifests(log_dir: str) -> list[dict]:
    volumes = [{"name": "shared", "emptyDir": {}},
               {"name": "log", "hostPath": {"path": log_dir, "type": "Directory"}}]
    mounts = [{"name": "shared", "mountPath": "/shared"}, {"name": "log", "mountPath": "/log"}]
    # The sidecar is up only a second after it starts; its startup probe says when.
    sidecar = _sh("side", "trap 'echo side-stopped >> /log/order; exit 0' TERM; sleep 1; touch /shared/up; "
                  "sleep 3600 & echo $! > /tmp/sleep.pid; wait", restartPolicy="Always", volumeMounts=mounts,
                  startupProbe={"exec": {"command": ["test", "-f", "/shared/up"]}, "periodSeconds": 1,
                                "failureThreshold": 30})
    # The app takes a second to stop: a sidecar stopped alongside it would log first.
    app = _sh("app", "if [ -f /shared/up ]; then echo saw-sidecar; else echo no-sidecar; fi; "
              "trap 'sleep 1; echo app-stopped >> /log/order; exit 0' TERM; sleep 3600 & wait",
              volumeMounts=mounts,
              lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "sleep 1; echo hook-ran > /shared/hook"]}}})
    job_pod = _spec(restartPolicy="Never", initContainers=[_sh("proxy", SLEEP, restartPolicy="Always")],
                    containers=[_sh("main", "echo main-done")])
    return [
        _pod("web", volumes=volumes, initContainers=[sidecar], containers=[app]),
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "with-sidecar", "namespace": NS},
         "spec": {"backoffLimit": 0, "template": {"spec": job_pod}}},
        _pod("deadline", containers=[_sh("c", SLEEP)]),
        _pod("hookfail", restartPolicy="Never",
             containers=[_sh("c", "trap 'exit 1' TERM; sleep 3600 & wait",
                             lifecycle={"postStart": {"exec": {"command": ["sh", "-c", "exit 3"]}}})]),
        _pod("initwait", initContainers=[_sh("setup", SLEEP)], containers=[_sh("c", SLEEP)]),
        _pod("gated", readinessGates=[{"conditionType": GATE}], containers=[_sh("c", SLEEP)]),
    ]


@pytest.fixture(scope="module")
def cluster():
    log_dir = tempfile.mkdtemp(prefix="kyb-lifecycle-")
    os.chmod(log_dir, 0o777)
    try:
        with node_cluster(NODE, "kyb233", POD_CIDR, NS) as (srv, agent):
            # Every object at once: the pods start side by side while the tests look at them.
            items = {"apiVersion": "v1", "kind": "List", "items": _manifests(log_dir)}
            r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(items))
            assert r.returncode == 0, r.stderr
            yield srv, agent, log_dir
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)


def _get(srv: ServerProcess, *args: str) -> dict:
    r = srv.kubectl("-n", NS, "get", *args, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def _wait(srv: ServerProcess, kind: str, name: str, ok, what: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    obj: dict = {}
    while time.monotonic() < deadline:
        obj = _get(srv, kind, name)
        if obj and ok(obj):
            return obj
        time.sleep(0.5)
    raise AssertionError(f"{kind} {name} never {what}: {json.dumps(obj.get('status'))}")


def _row(srv: ServerProcess, name: str) -> list[str]:
    out = srv.kubectl("-n", NS, "get", "pod", name, "--no-headers").stdout.split()
    return out


def _running(pod: dict, name: str, field: str = "containerStatuses") -> bool:
    return any(s["name"] == name and "running" in s.get("state", {}) for s in pod["status"].get(field) or [])


def test_a_native_sidecar_runs_before_the_app_and_stops_after_it(cluster):
    srv, agent, log_dir = cluster
    pod = _wait(srv, "pod", "web", lambda p: _running(p, "app") and p["status"].get("phase") == "Running",
                "ran its app")
    # The postStart hook (it takes a second) had finished when the app was first reported running.
    r = srv.kubectl("-n", NS, "exec", "web", "-c", "app", "--", "cat", "/shared/hook")
    assert r.returncode == 0 and r.stdout.strip() == "hook-ran", (r.stdout, r.stderr)
    (side,) = pod["status"]["initContainerStatuses"]
    assert side["name"] == "side" and "running" in side["state"] and side["started"] is True, side
    # The app started only once the sidecar's startup probe passed.
    deadline = time.monotonic() + 20
    logs = ""
    while time.monotonic() < deadline and not logs:
        logs = srv.kubectl("-n", NS, "logs", "web", "-c", "app").stdout.strip()
        time.sleep(0.3)
    assert logs == "saw-sidecar", (logs, agent.log_tail(1500))
    ready = _wait(srv, "pod", "web", lambda p: any(c["type"] == "Ready" and c["status"] == "True"
                                                   for c in p["status"].get("conditions") or []), "became Ready")
    assert ready["status"]["initContainerStatuses"][0]["ready"] is True
    # kubectl counts the sidecar in READY, as against Kubernetes.
    assert _row(srv, "web")[1:3] == ["2/2", "Running"], _row(srv, "web")
    # A sidecar that exits is started again (restartPolicy Always is its own); the app runs on.
    r = srv.kubectl("-n", NS, "exec", "web", "-c", "side", "--", "sh", "-c", "kill $(cat /tmp/sleep.pid)")
    assert r.returncode == 0, r.stderr
    again = _wait(srv, "pod", "web", lambda p: p["status"]["initContainerStatuses"][0]["restartCount"] == 1
                  and _running(p, "side", "initContainerStatuses"), "restarted its sidecar", 30)
    assert again["status"]["containerStatuses"][0]["restartCount"] == 0
    assert _running(again, "app")
    r = srv.kubectl("-n", NS, "delete", "pod", "web", "--timeout=60s")
    assert r.returncode == 0, r.stderr
    with open(os.path.join(log_dir, "order")) as f:
        assert f.read().split() == ["app-stopped", "side-stopped"]


def test_a_job_whose_pod_has_a_sidecar_completes(cluster):
    srv, _agent, _log_dir = cluster
    job = _wait(srv, "job", "with-sidecar", lambda j: j.get("status", {}).get("succeeded") == 1, "completed", 90)
    assert any(c["type"] == "Complete" and c["status"] == "True" for c in job["status"].get("conditions") or [])
    pods = _get(srv, "pods", "-l", "job-name=with-sidecar")["items"]
    (pod,) = pods
    assert pod["status"]["phase"] == "Succeeded"
    (side,) = pod["status"]["initContainerStatuses"]
    assert "terminated" in side["state"], side
    (main,) = pod["status"]["containerStatuses"]
    assert main["state"]["terminated"]["exitCode"] == 0


def test_active_deadline_set_on_a_running_pod_fails_it(cluster):
    srv, _agent, _log_dir = cluster
    _wait(srv, "pod", "deadline", lambda p: _running(p, "c"), "ran")
    r = srv.kubectl("-n", NS, "patch", "pod", "deadline", "-p", '{"spec": {"activeDeadlineSeconds": 2}}')
    assert r.returncode == 0, r.stderr
    pod = _wait(srv, "pod", "deadline", lambda p: p["status"].get("phase") == "Failed", "failed", 60)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    assert "terminated" in pod["status"]["containerStatuses"][0]["state"]


def test_a_failing_post_start_hook_kills_the_container(cluster):
    srv, _agent, _log_dir = cluster
    pod = _wait(srv, "pod", "hookfail", lambda p: p["status"].get("phase") == "Failed", "failed", 60)
    state = pod["status"]["containerStatuses"][0]["state"]
    assert "terminated" in state, state
    events = _get(srv, "events", "--field-selector", "involvedObject.name=hookfail")["items"]
    assert any(e["reason"] == "FailedPostStartHook" for e in events), [e["reason"] for e in events]


def test_init_containers_show_init_progress_and_pod_initializing(cluster):
    srv, _agent, _log_dir = cluster
    pod = _wait(srv, "pod", "initwait", lambda p: _running(p, "setup", "initContainerStatuses"), "ran its init")
    assert pod["status"]["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}
    assert pod["status"]["phase"] == "Pending"
    assert _row(srv, "initwait")[1:3] == ["0/1", "Init:0/1"], _row(srv, "initwait")


def _conditions(pod: dict) -> dict[str, dict]:
    return {c["type"]: c for c in pod["status"].get("conditions") or []}


def test_readiness_gates_hold_the_pod_from_ready_until_their_condition_is_true(cluster):
    srv, _agent, _log_dir = cluster
    pod = _wait(srv, "pod", "gated", lambda p: _conditions(p).get("ContainersReady", {}).get("status") == "True",
                "had its containers ready")
    ready = _conditions(pod)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "ReadinessGatesNotReady", ready
    assert ready["message"] == f'corresponding condition of pod readiness gate "{GATE}" does not exist.'
    # What a load-balancer controller would do: set the gate's condition on the pod's status.
    patch = {"status": {"conditions": [*pod["status"]["conditions"], {"type": GATE, "status": "True"}]}}
    r = srv.kubectl("-n", NS, "patch", "pod", "gated", "--subresource=status", "--type=merge", "-p", json.dumps(patch))
    assert r.returncode == 0, r.stderr
    done = _wait(srv, "pod", "gated", lambda p: _conditions(p)["Ready"]["status"] == "True", "became Ready", 30)
    assert _conditions(done)[GATE]["status"] == "True"
    assert _row(srv, "gated")[1:3] == ["1/1", "Running"]
