"""`kubectl debug` on a real node agent: the ephemeral container it adds runs in the pod's
sandbox seeing its target's processes, reports its status, serves `logs -c`, and the
pods/ephemeralcontainers subresource refuses what Kubernetes refuses."""

from __future__ import annotations

import json
import time

import pytest
from kubernetes import client, config

from kybernetes.testing.agent import TEST_TAINT, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "debug-e2e"
NODE = "kyb-debug-node"
POD_CIDR = "10.42.231.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb231", POD_CIDR, NS) as pair:
        yield pair


def _wait(srv: ServerProcess, name: str, ok, what: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
        if r.returncode == 0:
            pod = json.loads(r.stdout)
            if ok(pod):
                return pod
        time.sleep(1)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(pod.get('status'))}")


def _ephemeral_state(pod: dict, name: str) -> dict:
    for s in (pod.get("status") or {}).get("ephemeralContainerStatuses") or []:
        if s.get("name") == name:
            return s.get("state") or {}
    return {}


def _core(srv: ServerProcess) -> client.CoreV1Api:
    cfg = client.Configuration()
    config.load_kube_config(config_file=srv.kubeconfig, client_configuration=cfg)
    return client.CoreV1Api(client.ApiClient(cfg))


@pytest.fixture(scope="module")
def target(cluster):
    srv, agent = cluster
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app", "namespace": NS},
           "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                    "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                    "containers": [{"name": "c", "image": IMAGE,
                                    "command": ["sh", "-c", "exec sleep 3600"]}]}}
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(pod))
    assert r.returncode == 0, r.stderr
    _wait(srv, "app", lambda p: p.get("status", {}).get("phase") == "Running", "ran")
    return srv, agent


def test_kubectl_debug_adds_an_ephemeral_container_that_sees_its_target(target):
    srv, agent = target
    r = srv.kubectl("-n", NS, "debug", "app", f"--image={IMAGE}", "--target=c", "--container=dbg",
                    "--", "sh", "-c", "ps; sleep 5")
    assert r.returncode == 0, r.stderr
    pod = json.loads(srv.kubectl("-n", NS, "get", "pod", "app", "-o", "json").stdout)
    (ec,) = pod["spec"]["ephemeralContainers"]
    assert ec["name"] == "dbg" and ec["targetContainerName"] == "c" and ec["image"] == IMAGE
    running = _wait(srv, "app", lambda p: "running" in _ephemeral_state(p, "dbg")
                    or "terminated" in _ephemeral_state(p, "dbg"), "ran its ephemeral container")
    status = next(s for s in running["status"]["ephemeralContainerStatuses"] if s["name"] == "dbg")
    assert status["image"] == "docker.io/library/busybox:1.35" and status["containerID"].startswith("containerd://"), status
    assert status["imageID"], status
    # The target's processes are in view: its sleep is listed by the debugger's ps.
    deadline = time.monotonic() + 30
    logs = ""
    while time.monotonic() < deadline and "sleep 3600" not in logs:
        logs = srv.kubectl("-n", NS, "logs", "app", "-c", "dbg").stdout
        time.sleep(0.5)
    assert "sleep 3600" in logs, (logs, agent.log_tail(1500))
    done = _wait(srv, "app", lambda p: "terminated" in _ephemeral_state(p, "dbg"), "finished its debugger", 60)
    term = _ephemeral_state(done, "dbg")["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    # Never restarted, and the pod's own container goes on.
    time.sleep(3)
    again = json.loads(srv.kubectl("-n", NS, "get", "pod", "app", "-o", "json").stdout)
    assert "terminated" in _ephemeral_state(again, "dbg")
    jp = srv.kubectl("-n", NS, "get", "pod", "app", "-o",
                     "jsonpath={.status.ephemeralContainerStatuses[0].state.terminated.reason}")
    assert jp.stdout == "Completed"
    assert again["status"]["phase"] == "Running" and again["status"]["containerStatuses"][0]["restartCount"] == 0


def test_exec_into_a_running_ephemeral_container(target):
    srv, _agent = target
    r = srv.kubectl("-n", NS, "debug", "app", f"--image={IMAGE}", "--container=shell", "--", "sleep", "300")
    assert r.returncode == 0, r.stderr
    _wait(srv, "app", lambda p: "running" in _ephemeral_state(p, "shell"), "ran its shell container")
    r = srv.kubectl("-n", NS, "exec", "app", "-c", "shell", "--", "echo", "from-shell")
    assert r.returncode == 0 and r.stdout.strip() == "from-shell", r.stderr


def test_refusals_as_kubernetes_words_them(target):
    srv, _agent = target
    core = _core(srv)
    pod = core.read_namespaced_pod_ephemeralcontainers("app", NS)
    names = [c.name for c in pod.spec.ephemeral_containers]
    assert "dbg" in names
    # Changing one that exists.
    body = {"spec": {"ephemeralContainers": [
        {**c, "image": "busybox:1.36"} if c["name"] == "dbg" else c
        for c in client.ApiClient().sanitize_for_serialization(pod.spec.ephemeral_containers)]}}
    with pytest.raises(client.ApiException) as e:
        core.patch_namespaced_pod_ephemeralcontainers("app", NS, body)
    assert e.value.status == 422
    message = json.loads(e.value.body)["message"]
    assert 'Pod "app" is invalid: spec.ephemeralContainers: Forbidden: existing ephemeral containers "dbg" ' \
           "may not be changed" in message, message
    # A name another container has.
    r = srv.kubectl("-n", NS, "debug", "app", f"--image={IMAGE}", "--container=c", "--", "true")
    assert r.returncode != 0
    assert 'spec.ephemeralContainers[2].name: Duplicate value: "c"' in r.stderr, r.stderr
    # A port on one.
    current = client.ApiClient().sanitize_for_serialization(
        core.read_namespaced_pod_ephemeralcontainers("app", NS).spec.ephemeral_containers)
    extra = {"name": "web", "image": IMAGE, "ports": [{"containerPort": 80}]}
    r = srv.kubectl("-n", NS, "replace", "--raw", f"/api/v1/namespaces/{NS}/pods/app/ephemeralcontainers", "-f", "-",
                    stdin=json.dumps({"apiVersion": "v1", "kind": "Pod",
                                      "metadata": {"name": "app", "namespace": NS},
                                      "spec": {"containers": [{"name": "c", "image": IMAGE}],
                                               "ephemeralContainers": [*current, extra]}}))
    assert r.returncode != 0
    assert "spec.ephemeralContainers[2].ports: Forbidden: cannot be set for an Ephemeral Container" in r.stderr, \
        r.stderr
    after = core.read_namespaced_pod("app", NS)
    assert [c.name for c in after.spec.ephemeral_containers] == names


def test_kubectl_debug_node_runs_a_host_pod_on_that_node(cluster):
    srv, _agent = cluster
    r = srv.kubectl("-n", NS, "debug", f"node/{NODE}", f"--image={IMAGE}", "--", "sh", "-c", "ls /host/proc/1")
    assert r.returncode == 0, r.stderr
    name = next(w for w in r.stdout.split() if w.startswith(f"node-debugger-{NODE}-"))
    done = _wait(srv, name, lambda p: p.get("status", {}).get("phase") in ("Succeeded", "Failed"), "finished")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["spec"]["nodeName"] == NODE and done["spec"]["hostPID"] is True
    assert "cmdline" in srv.kubectl("-n", NS, "logs", name).stdout.split()
