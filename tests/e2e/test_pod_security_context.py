"""Security contexts on a real node agent, asserted from inside the containers: users and
groups, no_new_privs, capabilities, seccomp modes (RuntimeDefault, Localhost, Unconfined;
a filter crun compiled once confining later containers), a read-only root, privileged
containers, sysctls, the host's and a shared PID namespace,
a hostNetwork pod reaching a pod IP; and what the node refuses: runAsNonRoot with an image
running as root (CreateContainerConfigError), and pods it cannot run at all (unsafe
sysctls, AppArmor, supplementalGroupsPolicy Strict, user namespaces) set Failed."""

from __future__ import annotations

import json
import os
import time

import pytest

from kybernetes.agent.images import PAUSE_SCRIPT
from kybernetes.agent.seccompfilters import ANNOTATION as SECCOMP_FILTER_ANNOTATION
from kybernetes.testing.agent import TEST_TAINT, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "secctx-e2e"
NODE = "kyb-h3-node"
POD_CIDR = "10.42.235.0/24"
IMAGE = "busybox:1.35"
# Denies mkdir and nothing else: a Localhost profile whose effect a container can show.
NO_MKDIR = {"defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb235", POD_CIDR, NS) as (srv, agent):
        # Localhost profiles are files under <agent data dir>/seccomp.
        os.makedirs(os.path.join(agent.data_dir, "seccomp", "profiles"), exist_ok=True)
        with open(os.path.join(agent.data_dir, "seccomp", "profiles", "no-mkdir.json"), "w") as f:
            json.dump(NO_MKDIR, f)
        yield srv, agent


def _pod(name: str, spec: dict, **meta) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS, **meta},
            "spec": {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
                     "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}], **spec}}


def _apply(srv: ServerProcess, *pods: dict) -> None:
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(pods)}))
    assert r.returncode == 0, r.stderr


def _wait(srv: ServerProcess, name: str, ok, what: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
        if r.returncode == 0:
            pod = json.loads(r.stdout)
            if ok(pod):
                return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(pod.get('status'))}")


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and all(
        "running" in (s.get("state") or {}) for s in pod["status"].get("containerStatuses") or [{}])


def _sh(srv: ServerProcess, pod: str, container: str, script: str) -> tuple[int, str]:
    r = srv.kubectl("-n", NS, "exec", pod, "-c", container, "--", "sh", "-c", script)
    return r.returncode, r.stdout + r.stderr


def _status(text: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in text.splitlines()) if v}


@pytest.fixture(scope="module")
def pods(cluster):
    srv, agent = cluster
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                  "readOnlyRootFilesystem": True}
    secured = _pod("secured", {
        "shareProcessNamespace": True,
        "securityContext": {"runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000],
                            "seccompProfile": {"type": "RuntimeDefault"},
                            "sysctls": [{"name": "net.ipv4.ip_local_port_range", "value": "20000 21000"},
                                        {"name": "kernel.shm_rmid_forced", "value": "1"}]},
        "containers": [
            {"name": "main", "image": IMAGE, "command": ["sleep", "3600"], "securityContext": restricted},
            {"name": "priv", "image": IMAGE, "securityContext": {"privileged": True, "runAsUser": 0},
             "command": ["sh", "-c", "mkdir -p /tmp/www && echo pod-ip-ok > /tmp/www/index.html && "
                                     "exec httpd -f -p 8080 -h /tmp/www"]},
            {"name": "local", "image": IMAGE, "command": ["sleep", "3601"],
             "securityContext": {"runAsUser": 2000, "capabilities": {"add": ["NET_ADMIN"]},
                                 "seccompProfile": {"type": "Localhost",
                                                    "localhostProfile": "profiles/no-mkdir.json"}}}]})
    host = _pod("host", {"hostNetwork": True, "hostPID": True, "hostIPC": True,
                         "securityContext": {"seccompProfile": {"type": "Unconfined"}},
                         "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]})
    non_root = _pod("non-root", {"restartPolicy": "Never", "securityContext": {"runAsNonRoot": True},
                                 "containers": [{"name": "app", "image": IMAGE, "command": ["true"]}]})
    rejected = [
        _pod("unsafe-sysctl", {"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]},
                               "containers": [{"name": "c", "image": IMAGE}]}),
        _pod("apparmor", {"containers": [{"name": "c", "image": IMAGE, "securityContext": {
            "appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-deny-write"}}}]}),
        _pod("strict-groups", {"securityContext": {"supplementalGroupsPolicy": "Strict"},
                               "containers": [{"name": "c", "image": IMAGE}]}),
        _pod("userns", {"hostUsers": False, "containers": [{"name": "c", "image": IMAGE}]}),
        # Bound by hand, past the scheduler: the node checks what the scheduler would have.
        _pod("too-big", {"nodeName": NODE, "containers": [{"name": "c", "image": IMAGE,
                                                           "resources": {"requests": {"cpu": "1000"}}}]}),
    ]
    # The first unprivileged RuntimeDefault sandbox (the test of compiled filters below).
    teacher = _pod("teacher", {"securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
                               "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"],
                                               "securityContext": restricted}]})
    _apply(srv, secured, teacher, host, non_root, *rejected)
    return srv, agent


def test_restricted_container_sees_its_user_no_new_privs_no_caps_seccomp_and_read_only_root(pods):
    srv, agent = pods
    _wait(srv, "secured", _running, "ran all its containers")
    code, out = _sh(srv, "secured", "main", "id; cat /proc/self/status; touch /x; echo touch=$?")
    assert code == 0, out
    ident = out.splitlines()[0]
    assert ident.startswith("uid=1000 gid=3000") and "4000" in ident.split("groups=")[1], ident
    status = _status(out)
    assert status["NoNewPrivs"] == "1" and status["CapEff"] == status["CapBnd"] == "0000000000000000", status
    assert status["Seccomp"] == "2", status  # RuntimeDefault from the pod
    assert "Read-only file system" in out and "touch=1" in out, out
    # Safe sysctls are set in the pod's namespaces.
    code, out = _sh(srv, "secured", "main",
                    "cat /proc/sys/net/ipv4/ip_local_port_range /proc/sys/kernel/shm_rmid_forced")
    assert code == 0 and out.split() == ["20000", "21000", "1"], out
    # shareProcessNamespace: the sandbox's pause is PID 1, the other containers' processes are in view.
    code, out = _sh(srv, "secured", "main", "ps -o pid,args")
    assert code == 0 and "sleep 3601" in out and "httpd -f -p 8080" in out, out
    pid1 = next(line for line in out.splitlines() if line.split()[:1] == ["1"])
    assert PAUSE_SCRIPT in pid1, out


def test_privileged_and_overriding_containers(pods):
    srv, _agent = pods
    _wait(srv, "secured", _running, "ran all its containers")
    code, out = _sh(srv, "secured", "priv", "id -u; cat /proc/self/status; ls /dev | wc -l; "
                                             "[ -c /proc/keys ] && echo masked || echo unmasked")
    assert code == 0, out
    status = _status(out)
    assert out.split()[0] == "0"
    assert int(status["CapEff"], 16) >= (1 << 38) - 1, status  # every capability
    assert status["Seccomp"] == "0" and status["NoNewPrivs"] == "0", status
    _, devices = _sh(srv, "secured", "main", "ls /dev | wc -l")
    assert int(out.split()[-2]) > int(devices.strip()), (out, devices)  # the host's devices
    assert out.split()[-1] == "unmasked", out  # no /proc path is hidden from it
    assert _sh(srv, "secured", "main", "[ -c /proc/keys ] && echo masked")[1].strip() == "masked"
    # The container's own user, the pod's group; a Localhost profile from the agent's seccomp dir.
    code, out = _sh(srv, "secured", "local", "id; cat /proc/self/status; mkdir /tmp/d; echo mkdir=$?")
    assert out.startswith("uid=2000 gid=3000"), out
    status = _status(out)
    assert status["Seccomp"] == "2" and status["NoNewPrivs"] == "0", status
    # CAP_NET_ADMIN added to the bounding set (a non-root process's effective set stays empty, as on Kubernetes).
    assert int(status["CapBnd"], 16) & (1 << 12) and status["CapEff"] == "0000000000000000", status
    assert "mkdir=1" in out and "Operation not permitted" in out, out


def _userns_allowed() -> bool:
    """Whether this host lets an unprivileged process make a user namespace."""
    for path, ok in (("/proc/sys/kernel/unprivileged_userns_clone", "1"), ("/proc/sys/user/max_user_namespaces", None)):
        try:
            with open(path) as f:
                value = f.read().strip()
        except OSError:
            continue
        if (ok is not None and value != ok) or value == "0":
            return False
    return True


def test_later_restricted_containers_are_confined_by_the_filter_crun_compiled_once(pods):
    # "secured"'s main container (RuntimeDefault, no capabilities) was the first such: crun
    # compiled its profile, and the agent hands that filter to later ones (seccompfilters).
    # "secured"'s sandbox is privileged (one of its containers is): "teacher"'s is the first
    # RuntimeDefault pause container, whose filter later sandboxes are given.
    srv, agent = pods
    _wait(srv, "secured", _running, "ran all its containers")
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    _wait(srv, "teacher", _running, "ran its container")
    _apply(srv, _pod("confined", {
        "securityContext": {"runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [
            *({"name": n, "image": IMAGE, "command": ["sleep", "3600"], "securityContext": restricted}
              for n in ("a", "b")),
            {"name": "open", "image": IMAGE, "command": ["sleep", "3600"],
             "securityContext": {**restricted, "seccompProfile": {"type": "Unconfined"}}}]}))
    pod = _wait(srv, "confined", _running, "ran all its containers")
    script = "grep Seccomp: /proc/self/status; unshare -r true; echo rc=$?"
    for name in ("a", "b"):
        code, out = _sh(srv, "confined", name, script)
        assert code == 0 and out.splitlines()[0].split() == ["Seccomp:", "2"], out
        # RuntimeDefault allows unshare only with CAP_SYS_ADMIN.
        assert "Operation not permitted" in out and "rc=0" not in out, out
    code, out = _sh(srv, "confined", "open", script)
    assert code == 0 and out.splitlines()[0].split() == ["Seccomp:", "0"], out
    if _userns_allowed():
        assert "rc=0" in out, out  # the same call without the filter
    state = os.path.join(agent.data_dir, "containerd", "st")
    tasks = os.path.join(state, "io.containerd.runtime.v2.task", "k8s.io")
    sandboxes = set()
    for s in pod["status"]["containerStatuses"]:
        assert s["restartCount"] == 0, s  # none was stopped by the agent's check of its filter
        cid = s["containerID"].split("://")[1]
        if os.path.isdir(os.path.join(state, "crun", "k8s.io", cid)):  # on crun, not runc
            with open(os.path.join(tasks, cid, "config.json")) as f:
                annotations = json.load(f).get("annotations") or {}
            # "open" is given none, and does not inherit its sandbox's.
            assert (SECCOMP_FILTER_ANNOTATION in annotations) == (s["name"] != "open"), s["name"]
            sandboxes.add(annotations["io.kubernetes.cri.sandbox-id"])
    for sid in sandboxes:
        # The pause container too runs with the filter crun compiled for "secured"'s, confined.
        with open(os.path.join(tasks, sid, "config.json")) as f:
            assert SECCOMP_FILTER_ANNOTATION in (json.load(f).get("annotations") or {})
        with open(os.path.join(tasks, sid, "init.pid")) as f, open(f"/proc/{f.read().strip()}/status") as g:
            assert _status(g.read())["Seccomp"] == "2"


def test_host_namespaces_and_a_host_network_pod_reaching_a_pod_ip(pods):
    srv, _agent = pods
    host = _wait(srv, "host", _running, "ran")
    secured = _wait(srv, "secured", _running, "ran all its containers")
    assert host["status"]["podIP"] == host["status"]["hostIP"]
    code, out = _sh(srv, "host", "c", "for n in net pid ipc; do readlink /proc/self/ns/$n; done; "
                                      "grep Seccomp: /proc/self/status; cat /proc/1/comm")
    assert code == 0, out
    lines = out.splitlines()
    assert lines[:3] == [os.readlink(f"/proc/self/ns/{ns}") for ns in ("net", "pid", "ipc")], out
    assert lines[3].split() == ["Seccomp:", "0"], out  # Unconfined
    # nc, not wget: the test image's static busybox wget crashes (in any pod).
    code, out = _sh(srv, "host", "c", f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {secured['status']['podIP']} 8080")
    assert code == 0 and out.splitlines()[-1] == "pod-ip-ok", out


def test_run_as_non_root_with_an_image_running_as_root_is_not_created(pods):
    srv, _agent = pods
    pod = _wait(srv, "non-root", lambda p: any(
        ((s.get("state") or {}).get("waiting") or {}).get("reason") == "CreateContainerConfigError"
        for s in (p.get("status") or {}).get("containerStatuses") or []), "said CreateContainerConfigError")
    waiting = pod["status"]["containerStatuses"][0]["state"]["waiting"]
    uid = pod["metadata"]["uid"]
    assert waiting["message"] == ("container has runAsNonRoot and image will run as root "
                                  f'(pod: "non-root_{NS}({uid})", container: app)'), waiting
    assert "containerID" not in pod["status"]["containerStatuses"][0]


@pytest.mark.parametrize(("name", "reason", "message"), [
    ("unsafe-sysctl", "SysctlForbidden", 'forbidden sysctl: "kernel.msgmax" not allowlisted'),
    ("apparmor", "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host"),
    ("strict-groups", "SupplementalGroupsPolicyNotSupported",
     "SupplementalGroupsPolicy=Strict is not supported in this node"),
    ("userns", "UserNamespacesNotSupported", 'RuntimeClass handler "" does not support user namespaces'),
    ("too-big", "OutOfcpu", "Node didn't have enough resource: cpu, requested: 1000000, used: 0, capacity: {cpu}"),
])
def test_the_node_rejects_pods_it_cannot_run(pods, name, reason, message):
    srv, _agent = pods
    pod = _wait(srv, name, lambda p: (p.get("status") or {}).get("phase") == "Failed", "failed")
    cpus = srv.kubectl("get", "node", NODE, "-o", "jsonpath={.status.allocatable.cpu}").stdout
    message = message.format(cpu=int(cpus) * 1000)
    assert pod["status"]["reason"] == reason and pod["status"]["message"] == f"Pod was rejected: {message}"
    assert not pod["status"].get("containerStatuses")
    row = srv.kubectl("-n", NS, "get", "pod", name, "--no-headers").stdout.split()
    assert row[2] == reason, row
    events = json.loads(srv.kubectl("-n", NS, "get", "events", "--field-selector",
                                    f"involvedObject.name={name}", "-o", "json").stdout)["items"]
    assert any(e["reason"] == reason and e["message"] == message and e["type"] == "Warning" for e in events), events
    assert not [e for e in events if e["reason"] in ("Pulled", "Created", "Started")], events
    # A rejected pod is deleted like any other (the agent confirms it gone).
    r = srv.kubectl("-n", NS, "delete", "pod", name, "--timeout=30s")
    assert r.returncode == 0, r.stderr


def test_the_api_refuses_invalid_sysctls_and_unmasked_proc_without_a_user_namespace(cluster):
    srv, _agent = cluster
    bad = _pod("bad-sysctls", {"hostNetwork": True, "securityContext": {"sysctls": [
        {"name": "foo-", "value": "bar"}, {"name": "kernel.shmmax", "value": "1"},
        {"name": "net.ipv4.tcp_syncookies", "value": "1"}]},
        "containers": [{"name": "c", "image": IMAGE, "securityContext": {"procMount": "Unmasked"}}]})
    r = srv.kubectl("apply", "-f", "-", stdin=json.dumps(bad))
    assert r.returncode != 0
    assert 'spec.securityContext.sysctls[0].name: Invalid value: "foo-"' in r.stderr, r.stderr
    assert "kernel.shmmax" not in r.stderr
    assert ('spec.securityContext.sysctls[2].name: Invalid value: "net.ipv4.tcp_syncookies": '
            "may not be specified when 'hostNetwork' is true") in r.stderr, r.stderr
    assert ('spec.containers[0].securityContext.procMount: Invalid value: "Unmasked": '
            "`hostUsers` must be false to use `Unmasked`") in r.stderr, r.stderr
    assert srv.kubectl("-n", NS, "get", "pod", "bad-sysctls").returncode != 0
