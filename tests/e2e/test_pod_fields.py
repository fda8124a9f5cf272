"""Pod fields of the field-by-field audit (issue 16) on a real node agent: the hostname a
container sees (setHostnameAsFQDN, hostnameOverride, also in /etc/hosts), a FQDN longer
than the kernel allows failing the sandbox with the kubelet's words, a liveness probe's own
grace period when it kills, block devices refused on the node; and through the API an alpha
field of a 1.35 server dropped, fields the nodes cannot honour refused with their reason."""

from __future__ import annotations

import json
import time

import pytest

from kybernetes.testing.agent import TEST_TAINT, agent_prerequisites, node_cluster
from kybernetes.testing.cluster import ServerProcess

NS = "podfields-e2e"
NODE = "kyb-h8-node"
POD_CIDR = "10.42.238.0/24"
IMAGE = "busybox:1.35"

pytestmark = pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")


@pytest.fixture(scope="module")
def cluster():
    with node_cluster(NODE, "kyb238", POD_CIDR, NS) as pair:
        yield pair


def _pod(name: str, command: str, **spec: object) -> dict:
    body = {"terminationGracePeriodSeconds": 1, "nodeSelector": {"kubernetes.io/hostname": NODE},
            "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
            "containers": [{"name": "c", "image": IMAGE, "command": ["sh", "-c", command]}]}
    body.update(spec)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS}, "spec": body}


def _apply(srv: ServerProcess, obj: dict):
    return srv.kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def _get(srv: ServerProcess, name: str) -> dict:
    r = srv.kubectl("-n", NS, "get", "pod", name, "-o", "json")
    return json.loads(r.stdout) if r.returncode == 0 else {}


def _wait(srv: ServerProcess, name: str, ok, what: str, timeout: float = 90) -> dict:
    deadline = time.monotonic() + timeout
    pod: dict = {}
    while time.monotonic() < deadline:
        pod = _get(srv, name)
        if pod and ok(pod):
            return pod
        time.sleep(1)
    raise AssertionError(f"pod {name} never {what}: {json.dumps(pod.get('status'))}")


def _events(srv: ServerProcess, name: str, reason: str) -> list[str]:
    r = srv.kubectl("-n", NS, "get", "events", "--field-selector", f"involvedObject.name={name},reason={reason}",
                    "-o", "json")
    return [e.get("message", "") for e in json.loads(r.stdout).get("items", [])] if r.returncode == 0 else []


def _running(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


@pytest.fixture(scope="module")
def pods(cluster):
    """Every pod of the module at once, so their starts overlap."""
    srv, agent = cluster
    sleep = "trap 'echo ignoring TERM' TERM; while true; do sleep 1; done"
    for obj in (
        _pod("fqdn", "exec sleep 3600", hostname="web", subdomain="shop", setHostnameAsFQDN=True),
        _pod("override", "exec sleep 3600", hostname="web", subdomain="shop", hostnameOverride="www.example.com"),
        _pod("toolong", "exec sleep 3600", hostname="h" * 40, subdomain="s" * 20, setHostnameAsFQDN=True),
        _pod("liveness", sleep, terminationGracePeriodSeconds=600),
        _pod("block", "exec sleep 3600", volumes=[{"name": "disk", "persistentVolumeClaim": {"claimName": "disk"}}]),
        _pod("ephemeral", "exec sleep 3600", securityContext={"fsGroup": 4321, "fsGroupChangePolicy": "OnRootMismatch"},
             volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {
                 "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}}}]),
    ):
        if obj["metadata"]["name"] == "liveness":
            obj["spec"]["containers"][0]["livenessProbe"] = {
                "exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1,
                "terminationGracePeriodSeconds": 1}
        if obj["metadata"]["name"] == "ephemeral":
            obj["spec"]["containers"][0]["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
        if obj["metadata"]["name"] == "block":
            obj["spec"]["containers"][0]["volumeDevices"] = [{"name": "disk", "devicePath": "/dev/xvda"}]
            # Bound by hand: the scheduler would wait for the claim, which does not matter here.
            obj["spec"]["nodeName"] = NODE
        r = _apply(srv, obj)
        assert r.returncode == 0, r.stderr
    return srv, agent


def test_set_hostname_as_fqdn_names_the_pod_by_its_fqdn(pods):
    srv, _agent = pods
    _wait(srv, "fqdn", _running, "ran")
    r = srv.kubectl("-n", NS, "exec", "fqdn", "--", "hostname")
    assert r.returncode == 0 and r.stdout.strip() == f"web.shop.{NS}.svc.cluster.local", (r.stdout, r.stderr)


def test_hostname_override_is_the_pods_hostname_and_in_etc_hosts(pods):
    srv, _agent = pods
    pod = _wait(srv, "override", _running, "ran")
    r = srv.kubectl("-n", NS, "exec", "override", "--", "sh", "-c", "hostname; cat /etc/hosts")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "www.example.com"
    assert f"{pod['status']['podIP']}\twww.example.com" in lines, r.stdout


def test_a_fqdn_longer_than_64_characters_fails_the_sandbox(pods):
    srv, _agent = pods
    fqdn = f"{'h' * 40}.{'s' * 20}.{NS}.svc.cluster.local"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _events(srv, "toolong", "FailedCreatePodSandBox"):
        time.sleep(1)
    messages = _events(srv, "toolong", "FailedCreatePodSandBox")
    assert messages and messages[0] == (
        f"Failed to create pod sandbox: failed to construct FQDN from pod hostname and cluster domain, FQDN {fqdn} "
        f"is too long (64 characters is the max, {len(fqdn)} characters requested)"), messages
    assert _get(srv, "toolong")["status"]["phase"] == "Pending"


def test_a_liveness_probe_kills_with_its_own_grace_period(pods):
    srv, _agent = pods
    # The container ignores SIGTERM and the pod's grace period is 600 s: only the probe's
    # 1 s lets it be restarted within the wait.
    pod = _wait(srv, "liveness", lambda p: any(s.get("restartCount", 0) >= 1 for s in
                                               (p.get("status") or {}).get("containerStatuses") or []),
                "restarted", timeout=60)
    last = pod["status"]["containerStatuses"][0]["lastState"]["terminated"]
    assert last["exitCode"] == 137, last


def test_block_devices_are_refused_on_the_node(pods):
    srv, _agent = pods
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not _events(srv, "block", "FailedMount"):
        time.sleep(1)
    assert _events(srv, "block", "FailedMount")[0] == (
        'MapVolume.MapPodDevice failed for volume "disk" : block volumes (volumeDevices of container c) are not '
        "supported by this node")
    assert _get(srv, "block")["status"]["phase"] == "Pending"


def test_a_generic_ephemeral_volume_gets_its_claim_owned_by_the_fs_group(pods):
    srv, _agent = pods
    pod = _wait(srv, "ephemeral", _running, "ran")
    claim = json.loads(srv.kubectl("-n", NS, "get", "pvc", "ephemeral-scratch", "-o", "json").stdout)
    (owner,) = claim["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "Pod", "ephemeral", pod["metadata"]["uid"], True)
    assert claim["status"]["phase"] == "Bound"
    r = srv.kubectl("-n", NS, "exec", "ephemeral", "--", "sh", "-c",
                    "stat -c '%g %A' /scratch; touch /scratch/f && stat -c %g /scratch/f")
    assert r.returncode == 0, r.stderr
    root, made = r.stdout.splitlines()
    # The kubelet's ownership change: the group, group rwx, setgid (new files inherit it).
    assert root.split()[0] == "4321" and root.split()[1][4:7] == "rws", root
    assert made == "4321"


def test_the_api_drops_alpha_fields_and_refuses_what_nodes_cannot_honour(cluster):
    srv, _agent = cluster
    pod = _pod("api-stop", "true")
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "nowhere"}
    pod["spec"]["containers"][0]["lifecycle"] = {"stopSignal": "SIGUSR1"}
    pod["spec"]["os"] = {"name": "linux"}
    r = _apply(srv, pod)
    assert r.returncode == 0, r.stderr
    assert "lifecycle" not in _get(srv, "api-stop")["spec"]["containers"][0]

    pod = _pod("api-res", "true", resources={"limits": {"cpu": "1"}})
    r = _apply(srv, pod)
    assert r.returncode != 0 and "spec.resources: Forbidden: pod-level resources are not supported" in r.stderr
    pod = _pod("api-dra", "true", resourceClaims=[{"name": "gpu", "resourceClaimName": "gpu"}])
    r = _apply(srv, pod)
    assert r.returncode != 0 and "spec.resourceClaims: Forbidden: dynamic resource allocation" in r.stderr
    pod = _pod("api-restart", "true")
    pod["spec"]["containers"][0]["restartPolicy"] = "Never"
    r = _apply(srv, pod)
    assert r.returncode != 0 and "spec.containers[0].restartPolicy: Forbidden: may not be set for non-init" \
        in r.stderr
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api-dep", "namespace": NS},
                  "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                      "metadata": {"labels": {"a": "b"}}, "spec": _pod("x", "true", resources={
                          "requests": {"memory": "1Gi"}})["spec"]}}}
    r = _apply(srv, deployment)
    assert r.returncode != 0 and "spec.template.spec.resources: Forbidden" in r.stderr, r.stderr
    for name in ("api-res", "api-dra", "api-restart"):
        assert not _get(srv, name)
    template = _pod("x", "true")["spec"]
    template["containers"][0]["lifecycle"] = {"stopSignal": "SIGUSR1"}
    template["os"] = {"name": "linux"}
    deployment["metadata"]["name"] = "api-dep-stop"
    deployment["spec"]["replicas"] = 0
    deployment["spec"]["template"]["spec"] = template
    r = _apply(srv, deployment)
    assert r.returncode == 0, r.stderr
    stored = json.loads(srv.kubectl("-n", NS, "get", "deployment", "api-dep-stop", "-o", "json").stdout)
    assert "lifecycle" not in stored["spec"]["template"]["spec"]["containers"][0]
