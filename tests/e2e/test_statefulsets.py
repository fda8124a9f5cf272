"""StatefulSets against a real `kyb server` with simulated nodes, driven by real kubectl and
the Python client: ordered creation, stable names and claims across scale down and up,
failed pods recreated with their name, a partitioned rolling update, rollout
history/undo, and the claim retention policy.

Three simulated nodes carry the label `sts-e2e=yes`; every StatefulSet here selects those
nodes only and lives in its own namespace, so other test modules stay out of it.
"""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest
from kubernetes import client as kclient
from kubernetes import watch

from kybernetes.testing.agent import TEST_TAINT, AgentProcess, agent_prerequisites
from kybernetes.testing.cluster import delete_namespace, ready_nodes, start_sim_nodes, wait_for

NS = "sts-e2e"
PREFIX = "sts-sim-"
NODES = [f"{PREFIX}{i}" for i in range(3)]
LABEL = "sts-e2e"
AGENT_NS = "sts-agent-e2e"
AGENT_NODE = "kyb-sts-node"
AGENT_CIDR = "10.42.224.0/24"
IMAGE = "busybox:1.35"


@pytest.fixture(scope="module")
def nodes(server, kubectl):
    # Pods take a second to start, so that an ordered rollout is visible.
    p: subprocess.Popen = start_sim_nodes(server, PREFIX, len(NODES), "--label", f"{LABEL}=yes", "--cleanup",
                                          start_delay=1.0)
    kubectl.ok("create", "namespace", NS)
    try:
        wait_for(lambda: ready_nodes(server, f"{LABEL}=yes") == NODES, 60, what="3 ready sim nodes")
        yield NODES
    finally:
        # The claims go first, while the simulated nodes are there to remove their volumes.
        kubectl("delete", "statefulsets", "-n", NS, "--all", "--wait=false")
        kubectl("delete", "pvc", "-n", NS, "--all", "--wait=false")
        try:
            wait_for(lambda: not any((pv["spec"].get("claimRef") or {}).get("namespace") == NS
                                     for pv in json.loads(kubectl.ok("get", "pv", "-o", "json"))["items"]),
                     60, what="the namespace's volumes removed")
        finally:
            kubectl("delete", "namespace", NS, "--wait=false")
            p.terminate()
            p.wait(10)


def manifest(name: str, replicas: int = 3, image: str = "busybox:1", *, policy: str = "OrderedReady",
             partition: int | None = None, claims: bool = True, retention: tuple[str, str] | None = None) -> str:
    spec: dict[str, Any] = {
        "replicas": replicas, "serviceName": name, "podManagementPolicy": policy,
        "selector": {"matchLabels": {"app": name}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"nodeSelector": {LABEL: "yes"}, "terminationGracePeriodSeconds": 1,
                              "containers": [{"name": "c", "image": image,
                                              "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                                              if claims else []}]}},
    }
    if partition is not None:
        spec["updateStrategy"] = {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}}
    if claims:
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"},
                                         "spec": {"accessModes": ["ReadWriteOnce"],
                                                  "resources": {"requests": {"storage": "1Gi"}}}}]
    if retention is not None:
        spec["persistentVolumeClaimRetentionPolicy"] = {"whenDeleted": retention[0], "whenScaled": retention[1]}
    return json.dumps({"apiVersion": "apps/v1", "kind": "StatefulSet",
                       "metadata": {"name": name, "namespace": NS}, "spec": spec})


def get(kubectl, *args: str) -> Any:
    return json.loads(kubectl.ok("get", "-n", NS, *args, "-o", "json"))


def pods(kubectl, app: str) -> dict[str, dict]:
    return {p["metadata"]["name"]: p for p in get(kubectl, "pods", "-l", f"app={app}")["items"]}


def claims(kubectl, app: str) -> dict[str, dict]:
    return {c["metadata"]["name"]: c for c in get(kubectl, "pvc", "-l", f"app={app}")["items"]}


def ready(pod: dict) -> bool:
    return pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def ready_names(kubectl, app: str) -> list[str]:
    return sorted(n for n, p in pods(kubectl, app).items() if ready(p))


def rollout_status(kubectl, name: str) -> str:
    return kubectl.ok("rollout", "status", "-n", NS, f"sts/{name}", "--timeout=120s", timeout=130)


class Recorder:
    """Pod events of one StatefulSet, in the order the API server sent them."""

    def __init__(self, k8s_client, app: str) -> None:
        self.core = kclient.CoreV1Api(k8s_client)
        self.app = app
        self.events: list[tuple[str, str, bool]] = []  # (type, name, ready)
        listed = self.core.list_namespaced_pod(NS, label_selector=f"app={app}")
        self._rv = listed.metadata.resource_version
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        w = watch.Watch()
        for ev in w.stream(self.core.list_namespaced_pod, NS, label_selector=f"app={self.app}",
                           resource_version=self._rv, timeout_seconds=120):
            obj = ev["object"].to_dict()
            is_ready = obj["status"].get("phase") == "Running" and any(
                c["type"] == "Ready" and c["status"] == "True" for c in obj["status"].get("conditions") or [])
            self.events.append((ev["type"], obj["metadata"]["name"], is_ready))
            if self._stop.is_set():
                w.stop()

    def stop(self) -> None:
        self._stop.set()


def test_pods_come_up_in_order_with_stable_identities_and_claims(kubectl, nodes, k8s_client):
    rec = Recorder(k8s_client, "web")
    kubectl.ok("apply", "-f", "-", stdin=manifest("web"))
    out = rollout_status(kubectl, "web")
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    rec.stop()
    found = pods(kubectl, "web")
    assert sorted(found) == ["web-0", "web-1", "web-2"]
    # Each pod is created only once its predecessor is Running and Ready.
    added = [name for type_, name, _ in rec.events if type_ == "ADDED"]
    assert added == ["web-0", "web-1", "web-2"], rec.events
    for i in (1, 2):
        first_add = next(k for k, e in enumerate(rec.events) if e[:2] == ("ADDED", f"web-{i}"))
        assert any(e[1] == f"web-{i - 1}" and e[2] for e in rec.events[:first_add]), rec.events
    for i in range(3):
        pod = found[f"web-{i}"]
        assert pod["spec"]["hostname"] == f"web-{i}" and pod["spec"]["subdomain"] == "web"
        labels = pod["metadata"]["labels"]
        assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert labels["apps.kubernetes.io/pod-index"] == str(i)
        assert labels["controller-revision-hash"].startswith("web-")
        volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
    assert sorted(claims(kubectl, "web")) == ["data-web-0", "data-web-1", "data-web-2"]
    # Provisioned (local-path) on the node each pod went to, and bound.
    wait_for(lambda: all(c["status"].get("phase") == "Bound" for c in claims(kubectl, "web").values()), 60,
             what="claims bound")
    for i in range(3):
        claim = claims(kubectl, "web")[f"data-web-{i}"]
        node = found[f"web-{i}"]["spec"]["nodeName"]
        assert claim["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    sts = get(kubectl, "sts", "web")
    status = sts["status"]
    assert status["replicas"] == 3 and status["readyReplicas"] == 3 and status["availableReplicas"] == 3
    assert status["currentRevision"] == status["updateRevision"] == found["web-0"]["metadata"]["labels"][
        "controller-revision-hash"]
    assert status["observedGeneration"] == sts["metadata"]["generation"]
    table = kubectl.ok("get", "sts", "web", "-n", NS)
    assert "3/3" in table


def test_scale_down_from_the_top_and_back_up_keeps_names_and_claims(kubectl, nodes, k8s_client):
    before = {n: c["metadata"]["uid"] for n, c in claims(kubectl, "web").items()}
    assert len(before) == 3
    rec = Recorder(k8s_client, "web")
    kubectl.ok("scale", "-n", NS, "sts/web", "--replicas=1")
    wait_for(lambda: sorted(pods(kubectl, "web")) == ["web-0"], 60, what="scaled down to web-0")
    rec.stop()
    deleted = [name for type_, name, _ in rec.events if type_ == "DELETED"]
    assert deleted == ["web-2", "web-1"], rec.events
    # Retain (the default): the claims stay.
    assert {n: c["metadata"]["uid"] for n, c in claims(kubectl, "web").items()} == before
    kubectl.ok("scale", "-n", NS, "sts/web", "--replicas=3")
    wait_for(lambda: ready_names(kubectl, "web") == ["web-0", "web-1", "web-2"], 60, what="scaled back up")
    found = pods(kubectl, "web")
    for i in (1, 2):
        volume = next(v for v in found[f"web-{i}"]["spec"]["volumes"] if v["name"] == "data")
        assert volume["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
    assert {n: c["metadata"]["uid"] for n, c in claims(kubectl, "web").items()} == before


def test_a_failed_pod_is_recreated_with_its_name(kubectl, nodes):
    old_uid = pods(kubectl, "web")["web-1"]["metadata"]["uid"]
    kubectl.ok("patch", "pod", "web-1", "-n", NS, "--subresource=status", "--type=merge", "-p",
               '{"status":{"phase":"Failed","conditions":[{"type":"Ready","status":"False"}]}}')
    wait_for(lambda: (p := pods(kubectl, "web").get("web-1")) is not None and p["metadata"]["uid"] != old_uid
             and ready(p), 60, what="web-1 recreated")


def test_partitioned_rolling_update_then_history_and_undo(kubectl, nodes):
    kubectl.ok("patch", "sts", "web", "-n", NS, "--type=merge", "-p",
               '{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}')
    kubectl.ok("set", "image", "-n", NS, "sts/web", "c=busybox:2")
    out = rollout_status(kubectl, "web")
    assert "partitioned roll out complete: 1 new pods have been updated" in out

    def images() -> dict[str, str]:
        return {n: p["spec"]["containers"][0]["image"] for n, p in pods(kubectl, "web").items()}

    wait_for(lambda: ready_names(kubectl, "web") == ["web-0", "web-1", "web-2"], 60, what="all ready")
    assert images() == {"web-0": "busybox:1", "web-1": "busybox:1", "web-2": "busybox:2"}
    sts = get(kubectl, "sts", "web")
    assert sts["status"]["updatedReplicas"] == 1 and sts["status"]["currentReplicas"] == 2
    assert sts["status"]["currentRevision"] != sts["status"]["updateRevision"]

    # A deleted pod below the partition comes back at the current revision.
    kubectl.ok("delete", "pod", "web-0", "-n", NS)
    wait_for(lambda: ready_names(kubectl, "web") == ["web-0", "web-1", "web-2"], 60, what="web-0 back")
    assert images()["web-0"] == "busybox:1"

    kubectl.ok("patch", "sts", "web", "-n", NS, "--type=merge", "-p",
               '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}')
    out = rollout_status(kubectl, "web")
    # A RollingUpdate always has a partition once defaulted, so kubectl words it this way.
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    assert set(images().values()) == {"busybox:2"}
    sts = get(kubectl, "sts", "web")
    assert sts["status"]["currentRevision"] == sts["status"]["updateRevision"]

    revisions = get(kubectl, "controllerrevisions", "-l", "app=web")["items"]
    assert sorted(r["revision"] for r in revisions) == [1, 2]
    assert all(r["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet" for r in revisions)
    history = kubectl.ok("rollout", "history", "-n", NS, "sts/web")
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["1", "2"]
    assert "busybox:1" in kubectl.ok("rollout", "history", "-n", NS, "sts/web", "--revision=1")

    out = kubectl.ok("rollout", "undo", "-n", NS, "sts/web")
    assert "rolled back" in out
    out = rollout_status(kubectl, "web")
    assert "partitioned roll out complete: 3 new pods have been updated" in out
    assert set(images().values()) == {"busybox:1"}
    history = kubectl.ok("rollout", "history", "-n", NS, "sts/web")
    # The rolled-back template is revision 1 renumbered to 3, as in Kubernetes.
    assert [line.split()[0] for line in history.splitlines()[2:] if line.strip()] == ["2", "3"]
    out = kubectl.ok("rollout", "undo", "-n", NS, "sts/web", "--to-revision=3")
    assert "skipped rollback (current template already matches revision 3)" in out
    # Identity fields may not change.
    r = kubectl("patch", "sts", "web", "-n", NS, "--type=merge", "-p", '{"spec":{"serviceName":"other"}}')
    assert r.returncode != 0 and "updates to statefulset spec for fields other than" in r.stderr


def test_retention_policy_delete_removes_claims_on_scale_down_and_set_deletion(kubectl, nodes):
    kubectl.ok("apply", "-f", "-", stdin=manifest("db", 2, policy="Parallel", retention=("Delete", "Delete")))
    wait_for(lambda: ready_names(kubectl, "db") == ["db-0", "db-1"], 60, what="db pods ready")
    found = claims(kubectl, "db")
    assert sorted(found) == ["data-db-0", "data-db-1"]
    sts_uid = get(kubectl, "sts", "db")["metadata"]["uid"]
    wait_for(lambda: all(any(r["uid"] == sts_uid for r in c["metadata"].get("ownerReferences") or [])
                         for c in claims(kubectl, "db").values()), 30, what="claims owned by the set")
    kubectl.ok("scale", "-n", NS, "sts/db", "--replicas=1")
    wait_for(lambda: sorted(claims(kubectl, "db")) == ["data-db-0"], 60, what="the scaled-down claim deleted")
    assert sorted(pods(kubectl, "db")) == ["db-0"]
    kubectl.ok("delete", "sts", "db", "-n", NS)
    wait_for(lambda: claims(kubectl, "db") == {} and pods(kubectl, "db") == {}, 60,
             what="claims deleted with their set")
    # Retain keeps them: web's claims are still there after its pods went and came back.
    assert sorted(claims(kubectl, "web")) == ["data-web-0", "data-web-1", "data-web-2"]


# -- on a real agent ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def agent(server, kubectl):
    proc = AgentProcess(server, node_name=AGENT_NODE, bridge="kybs0", proxy_table="kyb-sts", pod_cidr=AGENT_CIDR)
    try:
        proc.start()
        kubectl.ok("create", "namespace", AGENT_NS)
        yield proc
    finally:
        kubectl("delete", "statefulsets", "-n", AGENT_NS, "--all", "--wait=false")
        delete_namespace(server, AGENT_NS)
        proc.cleanup()


def agent_pods(kubectl) -> list[str]:
    return sorted(p["metadata"]["name"] for p in json.loads(kubectl.ok(
        "get", "pods", "-n", AGENT_NS, "-l", "app=web", "-o", "json"))["items"])


def in_pod(kubectl, pod: str, *command: str, timeout: float = 20.0):
    return kubectl("exec", "-n", AGENT_NS, pod, "--", *command, timeout=timeout)


@pytest.mark.skipif(agent_prerequisites() is not None, reason=agent_prerequisites() or "")
def test_real_pods_keep_their_own_data_and_resolve_each_other_by_name(kubectl, agent):
    # Each pod appends its name to a file on its claim and serves the claim over HTTP.
    script = "echo $(hostname) >> /data/names; exec httpd -f -p 80 -h /data"
    objects = [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": AGENT_NS},
         "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web", "namespace": AGENT_NS},
         "spec": {"replicas": 3, "serviceName": "web", "selector": {"matchLabels": {"app": "web"}},
                  "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                      "tolerations": [{"key": TEST_TAINT, "operator": "Exists"}],
                      "nodeSelector": {"kubernetes.io/hostname": AGENT_NODE},
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "web", "image": IMAGE, "command": ["sh", "-c", script],
                                      "ports": [{"containerPort": 80}],
                                      "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
                  "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                      "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}}]}},
    ]
    kubectl.ok("apply", "-f", "-", stdin="\n---\n".join(json.dumps(o) for o in objects))
    out = kubectl.ok("rollout", "status", "-n", AGENT_NS, "sts/web", "--timeout=180s", timeout=190)
    assert "3 new pods have been updated" in out
    found = {p["metadata"]["name"]: p for p in json.loads(kubectl.ok(
        "get", "pods", "-n", AGENT_NS, "-l", "app=web", "-o", "json"))["items"]}
    assert sorted(found) == ["web-0", "web-1", "web-2"]
    # The pods came up in order: each was created after its predecessor was ready.
    for prev, nxt in (("web-0", "web-1"), ("web-1", "web-2")):
        became_ready = next(c["lastTransitionTime"] for c in found[prev]["status"]["conditions"]
                            if c["type"] == "Ready")
        assert found[nxt]["metadata"]["creationTimestamp"] >= became_ready
    claims_now = json.loads(kubectl.ok("get", "pvc", "-n", AGENT_NS, "-o", "json"))["items"]
    assert sorted(c["metadata"]["name"] for c in claims_now) == ["data-web-0", "data-web-1", "data-web-2"]
    assert all(c["status"]["phase"] == "Bound" for c in claims_now)
    for name in found:
        assert in_pod(kubectl, name, "cat", "/data/names").stdout.split() == [name]

    # Deleted, web-1 comes back with its name and its own claim: its data is still there.
    old_uid = found["web-1"]["metadata"]["uid"]
    kubectl.ok("delete", "pod", "-n", AGENT_NS, "web-1")

    def back() -> bool:
        p = json.loads(kubectl.ok("get", "pods", "-n", AGENT_NS, "-l", "app=web", "-o", "json"))["items"]
        return any(x["metadata"]["name"] == "web-1" and x["metadata"]["uid"] != old_uid and ready(x) for x in p)

    wait_for(back, 120, what="web-1 recreated and ready")
    assert in_pod(kubectl, "web-1", "cat", "/data/names").stdout.split() == ["web-1", "web-1"]
    assert in_pod(kubectl, "web-2", "cat", "/data/names").stdout.split() == ["web-2"]

    # From another pod, web-1's name under the headless Service resolves to web-1. (busybox's
    # nslookup does not apply the search path, so it asks for the full name; wget does.)
    ip = json.loads(kubectl.ok("get", "pod", "-n", AGENT_NS, "web-1", "-o", "json"))["status"]["podIP"]
    fqdn = f"web-1.web.{AGENT_NS}.svc.cluster.local"
    last: list[str] = []

    def resolved() -> str:
        r = in_pod(kubectl, "web-0", "nslookup", fqdn)
        last[:] = [r.stdout + r.stderr]
        return r.stdout if r.returncode == 0 and ip in r.stdout.split("Name:")[-1] else ""

    wait_for(resolved, 60, interval=1.0, what=f"{fqdn} resolving to {ip}")
    others = {p["status"]["podIP"] for n, p in found.items() if n != "web-1"}
    assert not any(o in last[0] for o in others), last[0]

    def fetched() -> str:
        r = in_pod(kubectl, "web-0", "wget", "-qO-", "http://web-1.web/names")
        return r.stdout if r.returncode == 0 else ""

    assert wait_for(fetched, 60, interval=1.0, what="wget web-1.web").split() == ["web-1", "web-1"]

    # Scaled down to one and back up, web-1 and web-2 find their data again.
    kubectl.ok("scale", "-n", AGENT_NS, "sts/web", "--replicas=1")
    wait_for(lambda: agent_pods(kubectl) == ["web-0"], 120, what="scaled down to web-0")
    kubectl.ok("scale", "-n", AGENT_NS, "sts/web", "--replicas=3")
    kubectl.ok("rollout", "status", "-n", AGENT_NS, "sts/web", "--timeout=180s", timeout=190)
    assert in_pod(kubectl, "web-1", "cat", "/data/names").stdout.split() == ["web-1"] * 3
    assert in_pod(kubectl, "web-2", "cat", "/data/names").stdout.split() == ["web-2"] * 2
