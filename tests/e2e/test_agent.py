"""Real pods on a real node agent: `kyb agent` with its private containerd, runc and CNI
bridge, joined to the session's `kyb server`, driven by kubectl. The node is tainted so
that only these tests' pods (which tolerate it) run real containers."""

from __future__ import annotations

import concurrent.futures
import hashlib
import ipaddress
import json
import os
import subprocess
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites, iptables_chains

NS = "agent-e2e"
HOST_PORT = 18777
IMAGE = "docker.io/library/busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server)
    proc.start()
    kubectl.ok("create", "namespace", NS)
    yield proc
    kubectl("delete", "namespace", NS, "--wait=false")
    proc.cleanup()
    assert not os.path.exists(proc.data_dir)
    assert subprocess.run(["ip", "link", "show", proc.bridge], capture_output=True).returncode != 0
    for table, before in proc.chains_before.items():
        assert iptables_chains(table, "CNI-") <= before


def pod(name: str, containers: list[dict[str, Any]], **spec: Any) -> str:
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
           "spec": {"tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                    "nodeSelector": {"kubernetes.io/hostname": "agent-node"},
                    "terminationGracePeriodSeconds": 5, "containers": containers, **spec}}
    return json.dumps(obj)


def sh(name: str, script: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": IMAGE, "command": ["sh", "-c", script], **extra}


def get(kubectl, name: str) -> dict[str, Any]:
    return json.loads(kubectl.ok("get", "pod", "-n", NS, name, "-o", "json"))


def wait_for(kubectl, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        r = kubectl("get", "pod", "-n", NS, name, "-o", "json")
        if r.returncode == 0:
            last = json.loads(r.stdout)
            if check(last):
                return last
        time.sleep(0.3)
    raise AssertionError(f"pod {name} did not get there in {timeout}s: {json.dumps(last.get('status'))}")


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: (p.get("status") or {}).get("phase") in phases


def statuses(p: dict[str, Any], key: str = "containerStatuses") -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in (p.get("status") or {}).get(key) or []}


def test_node_registers_with_host_resources(agent, kubectl):
    node = json.loads(kubectl.ok("get", "node", "agent-node", "-o", "json"))
    status = node["status"]
    assert int(status["capacity"]["cpu"]) == os.cpu_count()
    assert status["capacity"]["pods"] == "110"
    assert status["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")
    assert status["nodeInfo"]["kernelVersion"] == os.uname().release
    assert {c["type"]: c["status"] for c in status["conditions"]} == {
        "MemoryPressure": "False", "DiskPressure": "False", "PIDPressure": "False", "Ready": "True"}
    assert node["spec"]["podCIDR"]
    assert {"key": TEST_TAINT, "value": "true", "effect": "NoSchedule"} in node["spec"]["taints"]
    lease = json.loads(kubectl.ok("get", "lease", "-n", "kube-node-lease", "agent-node", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == "agent-node"


def test_busybox_pod_runs_with_an_ip_from_the_node_cidr(agent, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=pod("hello", [sh("main", "echo hello from $(hostname); sleep 3600")]))
    p = wait_for(kubectl, "hello", lambda p: phase_is("Running")(p) and statuses(p)["main"]["ready"])
    cidr = json.loads(kubectl.ok("get", "node", "agent-node", "-o", "json"))["spec"]["podCIDR"]
    st = p["status"]
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(cidr)
    assert st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["hostIP"] and st["startTime"] and st["qosClass"] == "BestEffort"
    main = statuses(p)["main"]
    assert main["containerID"].startswith("containerd://") and main["imageID"].startswith("docker.io/library/busybox@sha256:")
    assert main["started"] is True and main["restartCount"] == 0 and "running" in main["state"]
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "PodScheduled": "True", "PodReadyToStartContainers": "True", "Initialized": "True",
        "ContainersReady": "True", "Ready": "True"}
    out = kubectl.ok("get", "pods", "-n", NS, "hello", "-o", "wide")
    assert "Running" in out and "agent-node" in out and st["podIP"] in out
    described = kubectl.ok("describe", "pod", "-n", NS, "hello")
    for line in ("Successfully assigned agent-e2e/hello to agent-node", 'already present on machine',
                 "Created container main", "Started container main"):
        assert line in described, described


def test_kubectl_logs(agent, kubectl):
    script = "for i in 1 2 3 4 5; do echo line-$i; done; echo err-line >&2; printf 'no-newline'; sleep 3600"
    kubectl.ok("apply", "-f", "-", stdin=pod("talker", [sh("main", script), sh("side", "echo from-side; sleep 3600")]))
    wait_for(kubectl, "talker", phase_is("Running"))
    deadline = time.monotonic() + 20
    out = ""
    while time.monotonic() < deadline and "err-line" not in out:
        out = kubectl.ok("logs", "-n", NS, "talker", "-c", "main")
        time.sleep(0.3)
    # stdout and stderr are separate pipes: their order against each other is not kept
    lines = out.splitlines()
    assert [ln for ln in lines if ln.startswith("line-")] == ["line-1", "line-2", "line-3", "line-4", "line-5"]
    assert "err-line" in lines
    tail = kubectl.ok("logs", "-n", NS, "talker", "-c", "main", "--tail=2").splitlines()
    assert len(tail) == 2 and set(tail) <= {"line-4", "line-5", "err-line", "no-newline"}
    stamped = kubectl.ok("logs", "-n", NS, "talker", "-c", "main", "--timestamps", "--tail=1")
    assert stamped.split(" ", 1)[1].strip() == tail[-1] and stamped[:4].isdigit() and "T" in stamped.split()[0]
    assert kubectl.ok("logs", "-n", NS, "talker", "-c", "side").strip() == "from-side"
    # kubectl picks the first container when none is named, as it tells the user
    r = kubectl("logs", "-n", NS, "talker")
    assert r.returncode == 0 and "line-1" in r.stdout
    r = kubectl("logs", "-n", NS, "talker", "-c", "nope")
    assert r.returncode != 0 and "container nope is not valid for pod talker" in r.stderr
    r = kubectl("logs", "-n", NS, "talker", "-c", "main", "--previous")
    assert r.returncode != 0 and 'previous terminated container "main" in pod "talker" not found' in r.stderr


def test_kubectl_logs_follow_and_previous(agent, kubectl):
    ticker = sh("main", "for i in 1 2 3 4 5 6; do echo tick-$i; sleep 0.5; done; exit 2")
    kubectl.ok("apply", "-f", "-", stdin=pod("ticker", [ticker]))
    wait_for(kubectl, "ticker", lambda p: statuses(p).get("main", {}).get("started") is True)
    t = time.monotonic()
    followed = kubectl.ok("logs", "-n", NS, "ticker", "-f", timeout=60)
    assert [ln for ln in followed.splitlines() if ln.startswith("tick-")][-1] == "tick-6"
    assert time.monotonic() - t < 30  # the stream ends when the container exits
    wait_for(kubectl, "ticker", lambda p: statuses(p)["main"]["restartCount"] >= 1)
    previous = kubectl.ok("logs", "-n", NS, "ticker", "--previous")
    assert previous.splitlines() == [f"tick-{i}" for i in range(1, 7)]


def test_containers_share_localhost_and_init_containers_run_first(agent, kubectl):
    server = sh("server", "mkdir -p /www && echo hi-from-server > /www/index.html && httpd -f -p 8080 -h /www")
    client = sh("client", 'for i in 1 2 3 4 5 6 7 8 9 10; do '
                          'wget -qO- http://127.0.0.1:8080/ | grep -q hi-from-server && exit 0; sleep 0.5; done; exit 1')
    init = sh("init", "sleep 1")
    kubectl.ok("apply", "-f", "-", stdin=pod("pair", [server, client], initContainers=[init], restartPolicy="Never"))
    p = wait_for(kubectl, "pair", lambda p: statuses(p).get("client", {}).get("state", {}).get("terminated")
                 is not None)
    done = statuses(p)["client"]["state"]["terminated"]
    assert done["exitCode"] == 0, done
    init_done = statuses(p, "initContainerStatuses")["init"]["state"]["terminated"]
    assert init_done["exitCode"] == 0 and init_done["reason"] == "Completed"
    started = statuses(p)["server"]["state"]["running"]["startedAt"]
    assert started >= init_done["finishedAt"]


def test_crashing_container_backs_off_and_restarts(agent, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=pod("crash", [sh("main", "echo boom; exit 3")]))
    p = wait_for(kubectl, "crash", lambda p: statuses(p).get("main", {}).get("restartCount", 0) >= 2, timeout=60)
    main = statuses(p)["main"]
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["lastState"]["terminated"]["reason"] == "Error"
    p = wait_for(kubectl, "crash", lambda p: statuses(p)["main"]["state"].get("waiting", {}).get("reason")
                 == "CrashLoopBackOff", timeout=30)
    assert "back-off" in statuses(p)["main"]["state"]["waiting"]["message"]
    assert "CrashLoopBackOff" in kubectl.ok("get", "pod", "-n", NS, "crash")


def test_env_from_configmap_secret_and_fields(agent, kubectl):
    kubectl.ok("create", "configmap", "-n", NS, "settings", "--from-literal=color=blue", "--from-literal=size=L")
    kubectl.ok("create", "secret", "generic", "-n", NS, "creds", "--from-literal=password=s3cr3t")
    check = ('test "$COLOR" = blue && test "$PASSWORD" = s3cr3t && test "$CFG_size" = L && '
             'test "$MY_NAME" = envtest && test "$GREETING" = "hello blue" && test "$MEM" = 64')
    container = sh("main", check, env=[
        {"name": "COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "password"}}},
        {"name": "MY_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "GREETING", "value": "hello $(COLOR)"},
        {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}}],
        envFrom=[{"prefix": "CFG_", "configMapRef": {"name": "settings"}}],
        resources={"limits": {"memory": "64Mi", "cpu": "200m"}})
    kubectl.ok("apply", "-f", "-", stdin=pod("envtest", [container], restartPolicy="Never"))
    p = wait_for(kubectl, "envtest", phase_is("Succeeded", "Failed"))
    assert p["status"]["phase"] == "Succeeded", statuses(p)
    assert p["status"]["qosClass"] == "Guaranteed"

    missing = sh("main", "true", env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k"}}}])
    kubectl.ok("apply", "-f", "-", stdin=pod("envmissing", [missing]))
    p = wait_for(kubectl, "envmissing", lambda p: statuses(p).get("main", {}).get("state", {}).get(
        "waiting", {}).get("reason") == "CreateContainerConfigError")
    assert 'configmap "nope" not found' in statuses(p)["main"]["state"]["waiting"]["message"]


def test_unpullable_image_backs_off_with_the_reason(agent, kubectl, k8s_client):
    from kubernetes import client, watch

    bad = {"name": "main", "image": "127.0.0.1:1/nothing/here:1"}
    kubectl.ok("apply", "-f", "-", stdin=pod("badimage", [bad]))
    seen: list[str] = []
    w = watch.Watch()
    for ev in w.stream(client.CoreV1Api(k8s_client).list_namespaced_pod, NS, field_selector="metadata.name=badimage",
                       timeout_seconds=40):
        for st in ev["object"].status.container_statuses or []:
            if st.state.waiting is not None and st.state.waiting.reason not in seen[-1:]:
                seen.append(st.state.waiting.reason)
                if st.state.waiting.reason == "ErrImagePull":
                    assert "127.0.0.1:1/nothing/here:1" in (st.state.waiting.message or "")
        # Three alternations hold a retry after the back-off, whichever the watch saw first.
        if len(seen) >= 3:
            w.stop()
    events = kubectl.ok("get", "events", "-n", NS, "--field-selector", "involvedObject.name=badimage")
    assert 'Pulling image "127.0.0.1:1/nothing/here:1"' in events and "Failed to pull image" in events
    # The pull is retried after a back-off; in between the pod says ImagePullBackOff.
    assert set(seen) == {"ErrImagePull", "ImagePullBackOff"} and len(seen) >= 3, seen
    assert get(kubectl, "badimage")["status"]["phase"] == "Pending"


def test_graceful_deletion_honours_the_grace_period(agent, kubectl):
    # `sleep` as PID 1 ignores SIGTERM: the agent must wait out the grace period, then kill.
    kubectl.ok("apply", "-f", "-", stdin=pod("stubborn", [sh("main", "sleep 3600")]))
    wait_for(kubectl, "stubborn", phase_is("Running"))
    t = time.monotonic()
    kubectl.ok("delete", "pod", "-n", NS, "stubborn", "--grace-period=3", timeout=60)
    took = time.monotonic() - t
    assert 2.5 <= took < 15, took
    # A container that handles SIGTERM ends at once.
    kubectl.ok("apply", "-f", "-", stdin=pod("polite", [sh("main", "trap 'exit 0' TERM; sleep 3600 & wait")]))
    wait_for(kubectl, "polite", phase_is("Running"))
    t = time.monotonic()
    kubectl.ok("delete", "pod", "-n", NS, "polite", "--grace-period=30", timeout=60)
    assert time.monotonic() - t < 10


def test_a_deleted_pods_readiness_is_probed_until_it_stops(agent, kubectl):
    # On SIGTERM the app stops being ready but takes 6 s to exit: the readiness probe keeps
    # running, so the deleted pod turns not Ready (and Services stop sending to it) before it goes.
    script = "trap 'rm -f /tmp/ready; sleep 6; exit 0' TERM; touch /tmp/ready; while true; do sleep 1; done"
    probe = {"exec": {"command": ["cat", "/tmp/ready"]}, "periodSeconds": 1, "failureThreshold": 1}
    manifest = json.loads(pod("draining", [sh("main", script, readinessProbe=probe)], terminationGracePeriodSeconds=20))
    manifest["metadata"]["labels"] = {"app": "draining"}
    kubectl.ok("apply", "-f", "-", stdin=json.dumps(manifest))
    kubectl.ok("create", "service", "clusterip", "draining", "-n", NS, "--tcp=80:80")
    kubectl.ok("set", "selector", "service", "draining", "-n", NS, "app=draining")

    def ready(p: dict[str, Any]) -> str:
        return next((c["status"] for c in (p.get("status") or {}).get("conditions") or [] if c["type"] == "Ready"), "")

    def endpoint_conditions() -> dict[str, bool]:
        slices = json.loads(kubectl.ok("get", "endpointslices", "-n", NS, "-l",
                                       "kubernetes.io/service-name=draining", "-o", "json"))["items"]
        return next((ep.get("conditions") or {} for sl in slices for ep in sl.get("endpoints") or []), {})

    wait_for(kubectl, "draining", lambda p: ready(p) == "True")
    kubectl.ok("delete", "pod", "-n", NS, "draining", "--wait=false")
    p = wait_for(kubectl, "draining", lambda p: ready(p) == "False", timeout=10)
    assert p["metadata"].get("deletionTimestamp")
    assert statuses(p)["main"]["ready"] is False and "running" in statuses(p)["main"]["state"]
    # The Service's endpoint goes on showing the terminating pod, no longer serving.
    deadline = time.monotonic() + 10
    while endpoint_conditions() != {"ready": False, "serving": False, "terminating": True}:
        assert time.monotonic() < deadline, endpoint_conditions()
        time.sleep(0.3)
    t = time.monotonic()
    kubectl.ok("wait", "--for=delete", "pod/draining", "-n", NS, "--timeout=30s", timeout=40)
    assert time.monotonic() - t < 15  # the app's own 6 s, not the 20 s grace period
    kubectl.ok("delete", "service", "draining", "-n", NS)


def test_pre_stop_hook_runs_before_the_container_stops(agent, kubectl, tmp_path):
    out = tmp_path / "hook"
    main = sh("main", "trap 'echo term >> /out/log; exit 0' TERM; sleep 3600 & wait",
              lifecycle={"preStop": {"exec": {"command": ["sh", "-c", "echo pre-stop >> /out/log"]}}},
              volumeMounts=[{"name": "out", "mountPath": "/out"}])
    kubectl.ok("apply", "-f", "-", stdin=pod("hooked", [main], volumes=[
        {"name": "out", "hostPath": {"path": str(out), "type": "DirectoryOrCreate"}}]))
    wait_for(kubectl, "hooked", phase_is("Running"))
    kubectl.ok("delete", "pod", "-n", NS, "hooked", "--grace-period=10", timeout=60)
    assert (out / "log").read_text().splitlines() == ["pre-stop", "term"]


def test_agent_restart_keeps_pods_running(agent, kubectl):
    kubectl.ok("apply", "-f", "-", stdin=pod("survivor", [sh("main", "sleep 3600")]))
    before = statuses(wait_for(kubectl, "survivor", phase_is("Running")))["main"]
    agent.stop()
    agent.start()
    time.sleep(2)
    after = statuses(get(kubectl, "survivor"))["main"]
    assert after["containerID"] == before["containerID"]
    assert after["restartCount"] == 0 and "running" in after["state"]
    assert get(kubectl, "survivor")["status"]["phase"] == "Running"


def test_agent_restart_keeps_ready_pods_ready_until_a_probe_fails(agent, kubectl):
    """A restarted agent does not withdraw ready pods from their Services (as the
    kubelet since 1.35); its probes still run and a failure still counts."""
    web = sh("main", "mkdir -p /www && echo ok > /www/ready && httpd -f -p 8080 -h /www",
             readinessProbe={"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1})
    kubectl.ok("apply", "-f", "-", stdin=pod("steady", [web]))
    wait_for(kubectl, "steady", lambda p: statuses(p).get("main", {}).get("ready") is True)
    watch = kubectl.server.kubectl_background("get", "pod", "-n", NS, "steady", "--watch-only", "-o",
                                             "jsonpath={.status.containerStatuses[0].ready}{\"\\n\"}")
    try:
        agent.stop()
        agent.start()
        time.sleep(4)  # the agent has re-listed the pod and probed it a few times by now
        kubectl.ok("exec", "-n", NS, "steady", "--", "rm", "/www/ready")
        wait_for(kubectl, "steady", lambda p: statuses(p)["main"]["ready"] is False, timeout=30)
    finally:
        watch.terminate()
    seen = watch.communicate(timeout=10)[0].split()
    assert seen[-1] == "false" and "false" not in seen[:-1], seen


def node_ip(kubectl) -> str:
    node = json.loads(kubectl.ok("get", "node", "agent-node", "-o", "json"))
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def http_get(url: str, timeout: float = 10.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.read()


def nat_rules() -> str:
    return subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True).stdout


def test_deleting_pods_leaves_nothing_behind(agent, kubectl):
    # One container publishes a hostPort (CNI portmap): reachable on the node's
    # address, and its NAT rules go with the pod.
    web = sh("a", "echo via-host-port > /tmp/index.html; httpd -f -p 8080 -h /tmp",
             ports=[{"containerPort": 8080, "hostPort": HOST_PORT}])
    kubectl.ok("apply", "-f", "-", stdin=pod("transient", [web, sh("b", "sleep 3600")]))
    wait_for(kubectl, "transient", phase_is("Running"))
    deadline = time.monotonic() + 20
    while True:
        try:
            assert http_get(f"http://{node_ip(kubectl)}:{HOST_PORT}/index.html") == b"via-host-port\n"
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    assert f"--dport {HOST_PORT}" in nat_rules()
    kubectl.ok("delete", "pods", "-n", NS, "--all", "--grace-period=1", timeout=120)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and agent.runtime_containers():
        time.sleep(0.3)
    assert agent.runtime_containers() == []
    veths = subprocess.run(["ip", "-o", "link", "show", "master", agent.bridge], capture_output=True, text=True)
    assert veths.stdout.strip() == ""
    netns_dir = os.path.join(agent.data_dir, "containerd", "st")
    leftovers = [m for m in open("/proc/self/mountinfo").read().splitlines() if "netns" in m and netns_dir in m]
    assert leftovers == []
    ipam = os.path.join(agent.data_dir, "cni-ipam", "kybernetes")
    leases = [f for f in os.listdir(ipam) if f[0].isdigit()] if os.path.isdir(ipam) else []
    assert leases == []
    assert f"--dport {HOST_PORT}" not in nat_rules()



def test_volumes_emptydir_hostpath_configmap_secret_downward(agent, kubectl, tmp_path):
    host_dir = str(tmp_path / "host-share")
    kubectl.ok("create", "configmap", "-n", NS, "webconf", "--from-literal=index.html=v1",
               "--from-literal=other=x")
    kubectl.ok("create", "secret", "generic", "-n", NS, "tls", "--from-literal=key=k3y")
    writer = sh("writer", "echo shared-data > /shared/file; echo on-host > /host/out; "
                          "mount | grep ' /mem ' > /shared/memmount; sleep 3600",
                volumeMounts=[{"name": "shared", "mountPath": "/shared"}, {"name": "mem", "mountPath": "/mem"},
                              {"name": "host", "mountPath": "/host"}])
    reader = sh("reader", "sleep 3600", volumeMounts=[
        {"name": "shared", "mountPath": "/data", "readOnly": True},
        {"name": "conf", "mountPath": "/conf"},
        {"name": "tls", "mountPath": "/tls", "readOnly": True},
        {"name": "info", "mountPath": "/info"},
        {"name": "conf", "mountPath": "/single/index.html", "subPath": "..data/index.html"}])
    volumes = [{"name": "shared", "emptyDir": {}}, {"name": "mem", "emptyDir": {"medium": "Memory"}},
               {"name": "host", "hostPath": {"path": host_dir, "type": "DirectoryOrCreate"}},
               {"name": "conf", "configMap": {"name": "webconf", "items": [{"key": "index.html", "path": "index.html"}],
                                              "defaultMode": 0o600}},
               {"name": "tls", "secret": {"secretName": "tls"}},
               {"name": "info", "downwardAPI": {"items": [
                   {"path": "name", "fieldRef": {"fieldPath": "metadata.name"}},
                   {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]}}]
    kubectl.ok("apply", "-f", "-", stdin=pod("vols", [writer, reader], volumes=volumes))
    wait_for(kubectl, "vols", lambda p: phase_is("Running")(p) and all(s["ready"] for s in statuses(p).values()))

    def in_reader(command: str) -> str:
        # exec is not proxied yet: read through a short-lived helper container's log instead
        return agent_exec(agent, "vols", "reader", command)

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not os.path.exists(os.path.join(host_dir, "out")):
        time.sleep(0.2)
    with open(os.path.join(host_dir, "out")) as f:
        assert f.read() == "on-host\n"
    assert in_reader("cat /data/file") == "shared-data\n"
    assert "tmpfs" in in_reader("cat /data/memmount")
    assert in_reader("cat /conf/index.html") == "v1"
    assert in_reader("ls /conf") == "index.html\n"
    assert in_reader("stat -L -c %a /conf/index.html") == "600\n"
    assert in_reader("cat /tls/key") == "k3y"
    assert in_reader("cat /info/name") == "vols"
    assert in_reader("touch /data/x 2>&1 || echo read-only").strip().endswith("read-only")
    kubectl.ok("patch", "configmap", "-n", NS, "webconf", "--type=merge", "-p", '{"data":{"index.html":"v2"}}')
    # The agent watches the ConfigMap: the file follows within moments, not at the pod's
    # next periodic sync (a minute, as the kubelet's).
    patched = time.monotonic()
    while time.monotonic() < patched + 30 and in_reader("cat /conf/index.html") != "v2":
        time.sleep(0.2)
    assert in_reader("cat /conf/index.html") == "v2"
    assert time.monotonic() - patched < 5

    bad = sh("main", "true", volumeMounts=[{"name": "missing", "mountPath": "/m"}])
    kubectl.ok("apply", "-f", "-", stdin=pod("badvol", [bad], volumes=[
        {"name": "missing", "hostPath": {"path": str(tmp_path / "does-not-exist"), "type": "Directory"}}]))
    p = wait_for(kubectl, "badvol", lambda p: "hostPath type check failed" in json.dumps(p.get("status")))
    assert p["status"]["phase"] == "Pending"


def agent_exec(agent: AgentProcess, pod_name: str, container: str, command: str) -> str:
    """Run `command` in a container through the runtime (ctr), as `kubectl exec` will."""
    ctr = ["ctr", "-a", agent.containerd_socket, "-n", "k8s.io"]
    ids = []
    for cid in agent.runtime_containers():
        info = subprocess.run([*ctr, "containers", "info", cid], capture_output=True, text=True, timeout=30)
        labels = json.loads(info.stdout or "{}").get("Labels") or {}
        if labels.get("io.kubernetes.pod.name") == pod_name and \
                labels.get("io.kubernetes.container.name") == container:
            tasks = subprocess.run([*ctr, "tasks", "ls"], capture_output=True, text=True, timeout=30).stdout
            if any(line.startswith(cid) and "RUNNING" in line for line in tasks.splitlines()):
                ids.append(cid)
    r = subprocess.run(["ctr", "-a", agent.containerd_socket, "-n", "k8s.io", "tasks", "exec", "--exec-id",
                        f"t{time.monotonic_ns()}", ids[-1], "sh", "-c", command],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 or r.stdout, r.stderr
    return r.stdout


def test_probes_restart_unhealthy_and_gate_readiness(agent, kubectl):
    live = sh("main", "touch /tmp/healthy; sleep 2; rm /tmp/healthy; sleep 3600",
              livenessProbe={"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1, "failureThreshold": 2})
    kubectl.ok("apply", "-f", "-", stdin=pod("liveness", [live]))
    p = wait_for(kubectl, "liveness", lambda p: statuses(p).get("main", {}).get("restartCount", 0) >= 1, timeout=60)
    assert statuses(p)["main"]["lastState"]["terminated"]["exitCode"] == 137
    events = kubectl.ok("get", "events", "-n", NS, "--field-selector", "involvedObject.name=liveness")
    assert "Unhealthy" in events and "Liveness probe failed" in events and "Killing" in events

    web = sh("web", "mkdir -p /www && echo ok > /www/ready && httpd -f -p 8080 -h /www",
             ports=[{"name": "http", "containerPort": 8080}],
             readinessProbe={"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 1},
             startupProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1, "failureThreshold": 30})
    never = sh("never", "sleep 3600", readinessProbe={"tcpSocket": {"port": 9999}, "periodSeconds": 1})
    kubectl.ok("apply", "-f", "-", stdin=pod("readiness", [web, never]))
    p = wait_for(kubectl, "readiness", lambda p: statuses(p).get("web", {}).get("ready") is True, timeout=60)
    assert statuses(p)["web"]["started"] is True
    assert statuses(p)["never"]["ready"] is False and "running" in statuses(p)["never"]["state"]
    conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
    assert conds["Ready"] == "False" and conds["ContainersReady"] == "False"
    assert "1/2" in kubectl.ok("get", "pod", "-n", NS, "readiness")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from kybernetes.agent.images import build_all
    from kybernetes.testing.registry import RegistryProcess

    reg = RegistryProcess(user="puller", password="s3cret-pass")
    reg.start()
    images = str(tmp_path_factory.mktemp("images"))
    build_all(images)
    for tag in ("from-registry", "from-registry-2"):
        reg.push_oci_tar(os.path.join(images, "busybox.tar"), "kyb/busybox", tag)
    yield reg
    reg.stop()


def test_pull_from_a_registry_with_image_pull_secrets(agent, kubectl, registry):
    image = f"{registry.host}/kyb/busybox:from-registry"
    config = {"auths": {registry.host: {"username": "puller", "password": "s3cret-pass"}}}
    kubectl.ok("create", "secret", "generic", "-n", NS, "regcred", "--type=kubernetes.io/dockerconfigjson",
               f"--from-literal=.dockerconfigjson={json.dumps(config)}")
    kubectl.ok("apply", "-f", "-", stdin=pod("pulled", [{"name": "main", "image": image,
                                                         "command": ["sh", "-c", "echo pulled-ok; sleep 3600"]}],
                                             imagePullSecrets=[{"name": "regcred"}]))
    p = wait_for(kubectl, "pulled", phase_is("Running"), timeout=90)
    assert statuses(p)["main"]["imageID"].startswith("sha256:") or "@sha256:" in statuses(p)["main"]["imageID"]
    described = kubectl.ok("describe", "pod", "-n", NS, "pulled")
    assert f'Pulling image "{image}"' in described and f'Successfully pulled image "{image}"' in described

    # Without the secret the same registry refuses.
    other = f"{registry.host}/kyb/busybox:from-registry-2"
    kubectl.ok("apply", "-f", "-", stdin=pod("denied", [{"name": "main", "image": other}]))
    p = wait_for(kubectl, "denied", lambda p: statuses(p).get("main", {}).get("state", {}).get("waiting", {}).get(
        "reason") in ("ErrImagePull", "ImagePullBackOff"), timeout=60)
    events = kubectl.ok("get", "events", "-n", NS, "--field-selector", "involvedObject.name=denied")
    assert "Failed to pull image" in events and ("401" in events or "unauthorized" in events.lower())


def test_kubectl_exec_and_cp_from_a_pod(agent, kubectl, tmp_path):
    kubectl.ok("apply", "-f", "-", stdin=pod("shell", [sh("main", "echo content > /tmp/file.txt; sleep 3600"),
                                                       sh("side", "sleep 3600")]))
    wait_for(kubectl, "shell", phase_is("Running"))
    assert kubectl.ok("exec", "-n", NS, "shell", "-c", "main", "--", "cat", "/tmp/file.txt") == "content\n"
    assert kubectl.ok("exec", "-n", NS, "shell", "-c", "main", "--", "sh", "-c", "echo $HOSTNAME") == "shell\n"
    r = kubectl("exec", "-n", NS, "shell", "-c", "main", "--", "sh", "-c", "echo to-err >&2; exit 3")
    assert r.returncode == 3 and "to-err" in r.stderr
    r = kubectl("exec", "-n", NS, "shell", "-c", "nope", "--", "true")
    assert r.returncode != 0 and "container nope is not valid for pod shell" in r.stderr
    # A TTY needs kubectl itself on a terminal: run it under `script`.
    from kybernetes.testing.cluster import kubectl_binary

    cmd = (f"{kubectl_binary()} --kubeconfig {agent.server.kubeconfig} exec -it -n {NS} shell -c side -- "
           "tty")
    tty = subprocess.run(["script", "-q", "-c", cmd, "/dev/null"], capture_output=True, text=True, timeout=60,
                         stdin=subprocess.DEVNULL)
    assert "/dev/pts/" in tty.stdout, tty.stdout + tty.stderr
    # kubectl sends its terminal's size on the resize channel; the process sees it
    # once it has arrived.
    cmd = (f"stty rows 41 cols 103; {kubectl_binary()} --kubeconfig {agent.server.kubeconfig} exec -it -n {NS} "
           "shell -c side -- sh -c 'sleep 1; stty size'")
    sized = subprocess.run(["script", "-q", "-c", cmd, "/dev/null"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
    assert "41 103" in sized.stdout, sized.stdout + sized.stderr
    kubectl.ok("cp", "-c", "main", f"{NS}/shell:/tmp/file.txt", str(tmp_path / "copied.txt"))
    assert (tmp_path / "copied.txt").read_text() == "content\n"
    (tmp_path / "upload.txt").write_text("uploaded\n")
    kubectl.ok("cp", "-c", "main", str(tmp_path / "upload.txt"), f"{NS}/shell:/tmp/upload.txt", timeout=30)
    assert kubectl.ok("exec", "-n", NS, "shell", "-c", "main", "--", "cat", "/tmp/upload.txt") == "uploaded\n"
    piped = kubectl.ok("exec", "-i", "-n", NS, "shell", "-c", "main", "--", "head", "-n", "1", stdin="from-stdin\n")
    assert piped == "from-stdin\n"


class PortForward:
    """`kubectl port-forward` running in the background; the local port it picked."""

    def __init__(self, agent: AgentProcess, *ports: str) -> None:
        from kybernetes.testing.cluster import kubectl_binary

        self.proc = subprocess.Popen(
            [kubectl_binary(), "--kubeconfig", agent.server.kubeconfig, "port-forward", "-n", NS, "pod/forwarded",
             *ports], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.local: list[int] = []
        assert self.proc.stdout is not None
        while len(self.local) < len(ports):
            line = self.proc.stdout.readline()
            assert line, f"kubectl port-forward ended: {self.proc.stderr.read() if self.proc.stderr else ''}"
            if line.startswith("Forwarding from 127.0.0.1:"):
                self.local.append(int(line.split(":")[1].split()[0]))

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        _, err = self.proc.communicate(timeout=10)
        return err


@pytest.fixture(scope="module")
def forwarded(agent, kubectl) -> str:
    """A web server on the pod's loopback only: forwarding must dial inside its namespace."""
    script = ("echo forwarded > /www/index.html; head -c 3000000 /dev/urandom > /www/big; "
              "md5sum /www/big | cut -d' ' -f1 > /www/big.md5; httpd -f -p 127.0.0.1:8080 -h /www")
    kubectl.ok("apply", "-f", "-", stdin=pod("forwarded", [sh("main", f"mkdir /www; {script}")]))
    wait_for(kubectl, "forwarded", phase_is("Running"))
    return "forwarded"


def test_kubectl_port_forward(agent, kubectl, forwarded):
    pf = PortForward(agent, ":8080")
    try:
        url = f"http://127.0.0.1:{pf.local[0]}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert http_get(f"{url}/index.html") == b"forwarded\n"
                break
            except (OSError, AssertionError):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        big = http_get(f"{url}/big", timeout=30)
        assert len(big) == 3000000
        assert hashlib.md5(big).hexdigest() == http_get(f"{url}/big.md5").decode().strip()
        # Several connections at once share the session.
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: http_get(f"{url}/index.html"), range(16)))
        assert answers == [b"forwarded\n"] * 16
    finally:
        err = pf.stop()
    assert "error" not in err.lower(), err
    # Nothing listens on 9090: the runtime's refusal reaches the user.
    pf = PortForward(agent, ":9090")
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{pf.local[0]}/", timeout=10)
    pf.proc.wait(timeout=20)
    err = pf.stop()
    assert "connection refused" in err and "lost connection to pod" in err, err


def test_python_client_port_forward(agent, kubectl, k8s_client, forwarded):
    from kubernetes import client
    from kubernetes.stream import portforward

    api = client.CoreV1Api(k8s_client)
    pf = portforward(api.connect_get_namespaced_pod_portforward, "forwarded", NS, ports="8080")
    try:
        sock = pf.socket(8080)
        sock.setblocking(True)
        sock.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert data.startswith(b"HTTP/1.") and data.endswith(b"\r\n\r\nforwarded\n"), data
        assert pf.error(8080) is None
        sock.close()
    finally:
        pf.close()
