"""Local ephemeral storage limits on a real node agent: a pod whose disk-backed emptyDir
outgrows its sizeLimit, or whose container's writable layer outgrows its
`ephemeral-storage` limit, is evicted as the kubelet evicts it (phase Failed, reason
Evicted, the kubelet's message, a warning event, never started again); a pod within its
limits runs on."""

from __future__ import annotations

import json
import os
import time

import pytest

from kybernetes.agent.evictor import INTERVAL_ENV
from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "storage-e2e"
NODE = "kyb-h10-node"
POD_CIDR = "10.42.240.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    old = os.environ.get(INTERVAL_ENV)
    # Measured every 2 s rather than the kubelet's 10 s: the module stays short.
    os.environ[INTERVAL_ENV] = "2"
    try:
        with node_cluster(NODE, "kyb240", POD_CIDR, NS) as pair:
            yield pair
    finally:
        if old is None:
            os.environ.pop(INTERVAL_ENV, None)
        else:
            os.environ[INTERVAL_ENV] = old


def _pod(name: str, containers: list[dict], volumes: list[dict] | None = None, grace: int = 30) -> dict:
    # The default grace period (30 s): an evicted pod is killed within the kubelet's 1 s anyway.
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
            "spec": {"nodeSelector": {"kubernetes.io/hostname": NODE}, "terminationGracePeriodSeconds": grace,
                     "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                     "containers": containers, "volumes": volumes or []}}


def _writer(name: str, script: str, limit: str | None = None, mounts: list[dict] | None = None) -> dict:
    c: dict = {"name": name, "image": IMAGE, "command": ["sh", "-c", f"{script}; exec sleep 3600"],
               "volumeMounts": mounts or []}
    if limit:
        c["resources"] = {"limits": {"ephemeral-storage": limit, "memory": "64Mi"}}
    return c


def _get(srv: ServerProcess, name: str) -> dict:
    r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def _wait(srv: ServerProcess, name: str, ok, what: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        pod = _get(srv, name)
        if pod and ok(pod):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(pod.get('status'))}")


@pytest.fixture(scope="module")
def pods(cluster):
    srv, agent = cluster
    mi5 = "dd if=/dev/zero of={} bs=1024 count=5120"
    specs = [
        _pod("scratch", [_writer("w", mi5.format("/scratch/f"), mounts=[{"name": "scratch", "mountPath": "/scratch"}])],
             [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]),
        # Two containers: the pod's total limit (101Mi) holds, the writer's own does not.
        _pod("hog", [_writer("hog", mi5.format("/tmp/f"), limit="1Mi"), _writer("quiet", "true", limit="100Mi")]),
        _pod("calm", [_writer("c", "dd if=/dev/zero of=/data/f bs=1024 count=100; " + mi5.format("/tmp/f"),
                              limit="50Mi", mounts=[{"name": "data", "mountPath": "/data"},
                                                    {"name": "mem", "mountPath": "/mem"}])],
             [{"name": "data", "emptyDir": {"sizeLimit": "10Mi"}},
              {"name": "mem", "emptyDir": {"medium": "Memory"}}], grace=1),
    ]
    for spec in specs:
        r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(spec))
        assert r.returncode == 0, r.stderr
    return srv, agent


def _assert_evicted(srv: ServerProcess, agent: AgentProcess, name: str, message: str) -> None:
    pod = _wait(srv, name, lambda p: p.get("status", {}).get("phase") == "Failed", "was evicted")
    status = pod["status"]
    assert status.get("reason") == "Evicted" and status.get("message") == message, (status, agent.log_tail(1500))
    # Its containers were killed and stay down: a Failed pod is not started again.
    pod = _wait(srv, name, lambda p: all("terminated" in (s.get("state") or {})
                                          for s in p["status"].get("containerStatuses") or [{}]), "stopped", 30)
    time.sleep(3)
    again = _get(srv, name)
    assert again["status"]["phase"] == "Failed" and again["status"]["reason"] == "Evicted"
    for s in again["status"]["containerStatuses"]:
        assert "terminated" in s["state"] and s["restartCount"] == 0, s
    r = srv.kubectl("-n", NS, "get", "events", "--field-selector",
                    f"involvedObject.name={name},reason=Evicted", "-o", "json")
    events = json.loads(r.stdout)["items"]
    assert events and events[0]["type"] == "Warning" and events[0]["message"] == message, events


def test_an_empty_dir_over_its_size_limit_gets_the_pod_evicted(pods):
    srv, agent = pods
    _assert_evicted(srv, agent, "scratch", 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". ')


def test_a_container_over_its_ephemeral_storage_limit_gets_the_pod_evicted(pods):
    srv, agent = pods
    _assert_evicted(srv, agent, "hog", 'Container hog exceeded its local ephemeral storage limit "1Mi". ')


def test_a_pod_within_its_limits_keeps_running(pods):
    srv, _agent = pods
    _wait(srv, "calm", lambda p: p.get("status", {}).get("phase") == "Running", "ran")
    # Several measuring rounds later (every 2 s here) it still runs.
    time.sleep(6)
    pod = _get(srv, "calm")
    assert pod["status"]["phase"] == "Running" and "reason" not in pod["status"], pod["status"]
    assert pod["status"]["containerStatuses"][0]["restartCount"] == 0


def test_a_memory_empty_dir_is_a_tmpfs_sized_to_the_pods_memory_limit(pods):
    srv, _agent = pods
    _wait(srv, "calm", lambda p: p.get("status", {}).get("phase") == "Running", "ran")
    r = srv.kubectl("-n", NS, "exec", "calm", "--", "df", "-k", "/mem")
    assert r.returncode == 0, r.stderr
    fs, size = r.stdout.splitlines()[-1].split()[:2]
    assert fs == "tmpfs" and int(size) == 64 * 1024, r.stdout
