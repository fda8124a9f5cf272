"""In-place pod resize (`pods/resize`, GA in Kubernetes 1.35) on a real node agent:
`kubectl patch --subresource resize` changes a running container's cgroup (cpu.max,
memory.max as the container itself reads them, or their cgroup v1 counterparts) without a restart, or with one where its
resizePolicy says RestartContainer; a resize the node can never fit stays pending as
Infeasible, one that waits for other pods to leave room as Deferred; the status shows allocatedResources, resources and observedGeneration; the
API refuses what Kubernetes refuses (plain updates of resources, other resources, QoS
changes, a LimitRange's maximum, a ResourceQuota exceeded)."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "resize-e2e"
NODE = "kyb-h5-node"
POD_CIDR = "10.42.237.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb237", POD_CIDR, NS) as pair:
        yield pair


def _get(srv: ServerProcess, name: str) -> dict:
    r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _wait(srv: ServerProcess, name: str, ok, what: str, agent: AgentProcess, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        pod = _get(srv, name)
        if ok(pod):
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(pod.get('status'))}\n{agent.log_tail(2000)}")


def _status(pod: dict, name: str = "c") -> dict:
    return next((s for s in (pod.get("status") or {}).get("containerStatuses") or [] if s.get("name") == name), {})


def _condition(pod: dict, type_: str) -> dict | None:
    return next((c for c in (pod.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def _resize(srv: ServerProcess, name: str, resources: dict, container: str = "c"):
    patch = {"spec": {"containers": [{"name": container, "resources": resources}]}}
    return srv.kubectl("-n", NS, "patch", "pod", name, "--subresource", "resize", "--patch", json.dumps(patch))


# What the container reads of its own cgroup: cgroup v2's files, or v1's where the host
# mounts v1 controllers (this one does), in v2's words ("quota period", bytes).
_READ_CGROUP = {
    "cpu.max": "if [ -e /sys/fs/cgroup/cpu.max ]; then cat /sys/fs/cgroup/cpu.max; else "
               "echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us); fi",
    "memory.max": "cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
}


def _cgroup(srv: ServerProcess, name: str, path: str, container: str = "c") -> str:
    r = srv.kubectl("-n", NS, "exec", name, "-c", container, "--", "sh", "-c", _READ_CGROUP[path])
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


@pytest.fixture(scope="module")
def pod(cluster):
    srv, agent = cluster
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "mem", "namespace": NS},
             "spec": {"hard": {"limits.memory": "200Mi"}}}
    limit_range = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "max", "namespace": NS},
                   "spec": {"limits": [{"type": "Container", "max": {"memory": "1Gi"}}]}}
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "rz", "namespace": NS},
                "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                         "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                         "containers": [{
                             "name": "c", "image": IMAGE, "command": ["sh", "-c", "exec sleep 3600"],
                             "resources": {"requests": {"cpu": "100m", "memory": "32Mi"},
                                           "limits": {"cpu": "200m", "memory": "64Mi"}},
                             "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"},
                                              {"resourceName": "memory", "restartPolicy": "RestartContainer"}]},
                             # Resized with the default policy (NotRequired).
                             {"name": "m", "image": IMAGE, "command": ["sh", "-c", "exec sleep 3600"],
                              "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                            "limits": {"cpu": "50m", "memory": "64Mi"}}}]}}
    for obj in (quota, limit_range, manifest):
        r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(obj))
        assert r.returncode == 0, r.stderr
    _wait(srv, "rz", lambda p: _status(p).get("ready") and _status(p, "m").get("ready"), "ran", agent)
    return srv, agent


def test_cpu_resizes_in_place_without_a_restart(pod):
    srv, agent = pod
    before = _get(srv, "rz")
    assert _status(before)["allocatedResources"] == {"cpu": "100m", "memory": "32Mi"}
    assert _status(before)["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
    assert _cgroup(srv, "rz", "cpu.max") == "20000 100000"
    generation = before["metadata"]["generation"]

    r = _resize(srv, "rz", {"requests": {"cpu": "300m"}, "limits": {"cpu": "400m"}})
    assert r.returncode == 0, r.stderr
    up = _wait(srv, "rz", lambda p: _status(p).get("resources", {}).get("limits", {}).get("cpu") == "400m",
               "reported its new cpu limit", agent)
    assert up["metadata"]["generation"] == generation + 1
    assert up["status"]["observedGeneration"] == generation + 1
    assert _status(up)["allocatedResources"]["cpu"] == "300m"
    assert _status(up)["restartCount"] == 0
    assert _cgroup(srv, "rz", "cpu.max") == "40000 100000"
    assert _condition(up, "PodResizePending") is None and _condition(up, "PodResizeInProgress") is None

    r = _resize(srv, "rz", {"requests": {"cpu": "100m"}, "limits": {"cpu": "150m"}})
    assert r.returncode == 0, r.stderr
    down = _wait(srv, "rz", lambda p: _status(p).get("resources", {}).get("limits", {}).get("cpu") == "150m",
                 "reported its smaller cpu limit", agent)
    assert _cgroup(srv, "rz", "cpu.max") == "15000 100000"
    assert _status(down)["restartCount"] == 0 and _status(down)["containerID"] == _status(before)["containerID"]
    # `kubectl get -o json` shows what the node allocated.
    jp = srv.kubectl("-n", NS, "get", "pod", "rz", "-o", "jsonpath={.status.containerStatuses[0].allocatedResources.cpu}")
    assert jp.stdout == "100m"


def test_memory_with_restart_container_policy_restarts_it(pod):
    srv, agent = pod
    r = _resize(srv, "rz", {"requests": {"memory": "48Mi"}, "limits": {"memory": "96Mi"}})
    assert r.returncode == 0, r.stderr
    after = _wait(srv, "rz", lambda p: _status(p).get("restartCount") == 1 and _status(p).get("ready")
                  and _status(p).get("resources", {}).get("limits", {}).get("memory") == "96Mi",
                  "restarted with its new memory limit", agent)
    assert _status(after)["allocatedResources"]["memory"] == "48Mi"
    assert _cgroup(srv, "rz", "memory.max") == str(96 * 1024 * 1024)
    # cpu kept what it had been given.
    assert _cgroup(srv, "rz", "cpu.max") == "15000 100000"


def test_a_memory_limit_below_usage_waits_until_the_container_uses_less(pod):
    srv, agent = pod
    # 40Mi of tmpfs pages, charged to the container's memory cgroup.
    r = srv.kubectl("-n", NS, "exec", "rz", "-c", "m", "--", "dd", "if=/dev/zero", "of=/dev/shm/fill", "bs=1M",
                    "count=40")
    assert r.returncode == 0, r.stderr
    r = _resize(srv, "rz", {"requests": {"memory": "24Mi"}, "limits": {"memory": "24Mi"}}, "m")
    assert r.returncode == 0, r.stderr
    stuck = _wait(srv, "rz", lambda p: _condition(p, "PodResizeInProgress") is not None,
                  "reported its resize in progress", agent)
    cond = _condition(stuck, "PodResizeInProgress")
    assert cond["reason"] == "Error" and 'memory limit (25165824) below current usage' in cond["message"], cond
    # Allocated, not applied: the container keeps its limit and runs on.
    assert _status(stuck, "m")["allocatedResources"]["memory"] == "24Mi"
    assert _status(stuck, "m")["resources"]["limits"]["memory"] == "64Mi"
    assert _cgroup(srv, "rz", "memory.max", "m") == str(64 * 1024 * 1024)
    r = srv.kubectl("-n", NS, "exec", "rz", "-c", "m", "--", "rm", "/dev/shm/fill")
    assert r.returncode == 0, r.stderr
    done = _wait(srv, "rz", lambda p: _condition(p, "PodResizeInProgress") is None, "applied its resize", agent)
    assert _status(done, "m")["resources"]["limits"]["memory"] == "24Mi"
    assert _status(done, "m")["restartCount"] == 0
    assert _cgroup(srv, "rz", "memory.max", "m") == str(24 * 1024 * 1024)


def test_a_resize_larger_than_the_node_is_infeasible(pod):
    srv, agent = pod
    r = _resize(srv, "rz", {"requests": {"cpu": "100"}, "limits": {"cpu": "100"}})
    assert r.returncode == 0, r.stderr
    pending = _wait(srv, "rz", lambda p: _condition(p, "PodResizePending") is not None,
                    "reported its resize pending", agent)
    cond = _condition(pending, "PodResizePending")
    assert cond["status"] == "True" and cond["reason"] == "Infeasible", cond
    assert cond["message"].startswith("Node didn't have enough capacity: cpu, requested: 100050, capacity: "), cond
    # (The pod asks 100 cpus for c and 50m for m.) The container keeps what it was allocated.
    assert _status(pending)["allocatedResources"]["cpu"] == "100m"
    assert _status(pending)["resources"]["limits"]["cpu"] == "150m"
    assert _cgroup(srv, "rz", "cpu.max") == "15000 100000"
    describe = srv.kubectl("-n", NS, "describe", "pod", "rz").stdout
    assert "PodResizePending" in describe
    # Asking for what fits again clears the condition.
    r = _resize(srv, "rz", {"requests": {"cpu": "100m"}, "limits": {"cpu": "150m"}})
    assert r.returncode == 0, r.stderr
    _wait(srv, "rz", lambda p: _condition(p, "PodResizePending") is None, "cleared its pending resize", agent)


def test_a_resize_is_deferred_while_other_pods_hold_the_room(pod):
    srv, agent = pod
    hog = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hog", "namespace": NS},
           "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                    "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", "exec sleep 3600"],
                                    "resources": {"requests": {"cpu": "1500m", "memory": "16Mi"},
                                                  "limits": {"cpu": "1500m", "memory": "16Mi"}}}]}}
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(hog))
    assert r.returncode == 0, r.stderr
    _wait(srv, "hog", lambda p: _status(p).get("ready"), "ran", agent)
    r = _resize(srv, "rz", {"requests": {"cpu": "600m"}, "limits": {"cpu": "600m"}})
    assert r.returncode == 0, r.stderr
    deferred = _wait(srv, "rz", lambda p: _condition(p, "PodResizePending") is not None,
                     "reported its resize pending", agent)
    cond = _condition(deferred, "PodResizePending")
    assert cond["reason"] == "Deferred", cond
    assert cond["message"] == "Node didn't have enough resource: cpu, requested: 650, used: 1500, capacity: 2000", cond
    # Once the other pod is gone, the resize goes through.
    assert srv.kubectl("-n", NS, "delete", "pod", "hog", "--wait=false").returncode == 0
    done = _wait(srv, "rz", lambda p: _condition(p, "PodResizePending") is None
                 and _status(p).get("resources", {}).get("limits", {}).get("cpu") == "600m",
                 "applied its deferred resize", agent)
    assert _status(done)["allocatedResources"]["cpu"] == "600m"
    assert _cgroup(srv, "rz", "cpu.max") == "60000 100000"


def test_the_api_refuses_what_kubernetes_refuses(pod):
    srv, _agent = pod
    plain = srv.kubectl("-n", NS, "patch", "pod", "rz", "--patch",
                        json.dumps({"spec": {"containers": [{"name": "c", "resources": {"limits": {"cpu": "1"}}}]}}))
    assert plain.returncode != 0 and "pod updates may not change fields" in plain.stderr, plain.stderr
    other = _resize(srv, "rz", {"limits": {"ephemeral-storage": "1Gi"}})
    assert other.returncode != 0 and "only cpu and memory resources are mutable" in other.stderr, other.stderr
    removed = srv.kubectl("-n", NS, "patch", "pod", "rz", "--subresource", "resize", "--type", "json", "--patch",
                          json.dumps([{"op": "remove", "path": "/spec/containers/0/resources/limits/cpu"}]))
    assert removed.returncode != 0 and "resource limits cannot be removed" in removed.stderr, removed.stderr
    # Both containers with requests equal to limits would make the pod Guaranteed.
    limits = _get(srv, "rz")["spec"]["containers"][0]["resources"]["limits"]
    qos = _resize(srv, "rz", {"requests": dict(limits)})
    assert qos.returncode != 0 and "Pod QOS Class may not change as a result of resizing" in qos.stderr, qos.stderr
    # LimitRanger and ResourceQuota judge the resized pod, as upstream's do for pods/resize.
    too_big = _resize(srv, "rz", {"limits": {"memory": "2Gi"}})
    assert too_big.returncode != 0 and "maximum memory usage per Container is 1Gi, but limit is 2Gi" in too_big.stderr, \
        too_big.stderr
    over = _resize(srv, "rz", {"limits": {"memory": "300Mi"}})
    assert over.returncode != 0 and "exceeded quota: mem" in over.stderr, over.stderr
    assert _get(srv, "rz")["spec"]["containers"][0]["resources"]["limits"]["memory"] == "96Mi"


def test_put_through_the_python_client(pod):
    srv, agent = pod
    cfg = client.Configuration()
    config.load_kube_config(config_file=srv.kubeconfig, client_configuration=cfg)
    core = client.CoreV1Api(client.ApiClient(cfg))
    current = core.read_namespaced_pod_resize("rz", NS)
    current.spec.containers[0].resources.requests["cpu"] = "180m"
    current.spec.containers[0].resources.limits["cpu"] = "180m"
    stale = current.metadata.resource_version
    core.replace_namespaced_pod_resize("rz", NS, current)
    _wait(srv, "rz", lambda p: _status(p).get("resources", {}).get("limits", {}).get("cpu") == "180m",
          "reported the limit put through pods/resize", agent)
    assert _cgroup(srv, "rz", "cpu.max") == "18000 100000"
    current.metadata.resource_version = stale
    with pytest.raises(client.ApiException) as e:
        core.replace_namespaced_pod_resize("rz", NS, current)
    assert e.value.status == 409
