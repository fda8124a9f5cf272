"""PersistentVolumes, claims and StorageClasses against a real `kyb server`, driven by real
kubectl: the default `local-path` class, binding both ways and the phases kubectl shows,
release and reclaim, in-use protection (a pod on a simulated node), expansion, the
WaitForFirstConsumer event in `kubectl describe pvc`, and bad input refused with a 4xx."""

from __future__ import annotations

import json

import pytest

from kybernetes.testing.cluster import start_sim_nodes, wait_for

NS = "pv-e2e"
NODE = "sim-pv-0"


@pytest.fixture(scope="module")
def ns(kubectl):
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("apply", "-f", "-", stdin=_yaml({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "e2e-manual"},
        "provisioner": "kubernetes.io/no-provisioner", "volumeBindingMode": "Immediate"}))
    kubectl.ok("apply", "-f", "-", stdin=_yaml({
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "e2e-growing"},
        "provisioner": "example.com/external", "volumeBindingMode": "Immediate", "allowVolumeExpansion": True}))
    yield NS
    kubectl("delete", "namespace", NS, "--wait=false")
    kubectl("delete", "storageclass", "e2e-manual", "e2e-growing", "--ignore-not-found")
    names = [n for n in kubectl.ok("get", "pv", "-o", "name").split() if n.startswith("persistentvolume/e2e-")]
    if names:
        kubectl("delete", *names, "--wait=false")


@pytest.fixture(scope="module")
def sim_node(server, kubectl):
    p = start_sim_nodes(server, "sim-pv-", 1, "--cleanup")
    try:
        wait_for(lambda: kubectl("get", "nodes", NODE, "-o",
                                 "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}").stdout == "True",
                 30, what="the simulated node Ready")
        yield NODE
    finally:
        p.terminate()
        p.wait(10)


def _yaml(obj: dict) -> str:
    return json.dumps(obj)


def _get(kubectl, kind: str, name: str, ns: str | None = NS) -> dict:
    args = ["get", kind, name, "-o", "json"] + (["-n", ns] if ns else [])
    return json.loads(kubectl.ok(*args))


def _claim(name: str, size: str = "1Gi", cls: str | None = "e2e-manual", **spec) -> str:
    body: dict = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}, **spec}
    if cls is not None:
        body["storageClassName"] = cls
    return _yaml({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": NS},
                  "spec": body})


def _volume(name: str, size: str = "1Gi", cls: str = "e2e-manual", reclaim: str = "Retain", **spec) -> str:
    body = {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"], "storageClassName": cls,
            "persistentVolumeReclaimPolicy": reclaim, "hostPath": {"path": f"/tmp/kyb-e2e/{name}"}, **spec}
    return _yaml({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": body})


def _phase(kubectl, kind: str, name: str, ns: str | None = NS) -> str:
    args = ["get", kind, name, "-o", "jsonpath={.status.phase}"] + (["-n", ns] if ns else [])
    r = kubectl(*args)
    return r.stdout if r.returncode == 0 else f"<{r.stderr.strip()}>"


def _rows(kubectl, *args: str) -> list[list[str]]:
    lines = kubectl.ok("get", *args).splitlines()
    return [line.split() for line in lines]


def test_the_default_class_is_local_path(kubectl, ns):
    rows = _rows(kubectl, "storageclass", "local-path")
    assert rows[0] == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"]
    assert rows[1][:5] == ["local-path", "(default)", "kybernetes.io/local-path", "Delete", "WaitForFirstConsumer"]
    kubectl.ok("apply", "-f", "-", stdin=_claim("plain", cls=None))
    claim = _get(kubectl, "pvc", "plain")
    assert claim["spec"]["storageClassName"] == "local-path"
    assert claim["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    # An explicit empty class means "no class": the default is not applied.
    kubectl.ok("apply", "-f", "-", stdin=_claim("classless", cls=""))
    assert _get(kubectl, "pvc", "classless")["spec"]["storageClassName"] == ""


def test_a_waiting_claim_says_why_in_describe(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_claim("waiting", cls="local-path"))

    def described() -> str:
        out = kubectl.ok("describe", "pvc", "waiting", "-n", NS)
        return out if "WaitForFirstConsumer" in out else ""

    out = wait_for(described, 20, what="the WaitForFirstConsumer event")
    assert "waiting for first consumer to be created before binding" in out
    assert "persistentvolume-controller" in out
    rows = _rows(kubectl, "pvc", "waiting", "-n", NS)
    assert rows[0] == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES", "STORAGECLASS",
                       "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert rows[1][:4] == ["waiting", "Pending", "local-path", "<unset>"]
    annotations = _get(kubectl, "pvc", "waiting")["metadata"]["annotations"]
    assert annotations["volume.kubernetes.io/storage-provisioner"] == "kybernetes.io/local-path"


def test_a_static_volume_and_an_immediate_claim_bind_both_ways(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-big", "5Gi"))
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-small", "2Gi"))
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-small", None) == "Available", 20, what="the PV Available")
    kubectl.ok("apply", "-f", "-", stdin=_claim("data", "1Gi"))
    wait_for(lambda: _phase(kubectl, "pvc", "data") == "Bound", 20, what="the claim Bound")
    claim = _get(kubectl, "pvc", "data")
    assert claim["spec"]["volumeName"] == "e2e-pv-small"  # the smallest that fits
    assert claim["status"]["capacity"] == {"storage": "2Gi"}
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    pv = _get(kubectl, "pv", "e2e-pv-small", None)
    assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-small", None) == "Bound", 20, what="the PV Bound")
    rows = _rows(kubectl, "pvc", "data", "-n", NS)
    assert rows[1][:6] == ["data", "Bound", "e2e-pv-small", "2Gi", "RWO", "e2e-manual"]
    pv_rows = _rows(kubectl, "pv", "e2e-pv-small")
    assert pv_rows[0][:7] == ["NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS"]
    assert pv_rows[1][:6] == ["e2e-pv-small", "2Gi", "RWO", "Retain", "Bound", f"{NS}/data"]
    assert _phase(kubectl, "pv", "e2e-pv-big", None) == "Available"


def test_a_claim_naming_a_volume_gets_that_volume(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-named", "3Gi"))
    kubectl.ok("apply", "-f", "-", stdin=_claim("named", "1Gi", volumeName="e2e-pv-named"))
    wait_for(lambda: _phase(kubectl, "pvc", "named") == "Bound", 20, what="the named claim Bound")
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-named", None) == "Bound", 20, what="the named PV Bound")


def test_a_retained_volume_is_released_then_made_available_by_the_admin(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-retain", "1Gi", cls="e2e-retain"))
    kubectl.ok("apply", "-f", "-", stdin=_claim("keep", "1Gi", cls="e2e-retain"))
    wait_for(lambda: _phase(kubectl, "pvc", "keep") == "Bound", 20, what="the claim Bound")
    kubectl.ok("delete", "pvc", "keep", "-n", NS, timeout=30)
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-retain", None) == "Released", 20, what="the PV Released")
    assert _rows(kubectl, "pv", "e2e-pv-retain")[1][4] == "Released"
    kubectl.ok("patch", "pv", "e2e-pv-retain", "--type=json", "-p", '[{"op":"remove","path":"/spec/claimRef"}]')
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-retain", None) == "Available", 20, what="the PV Available again")


def test_a_static_volume_with_reclaim_delete_fails(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-delete", "1Gi", cls="e2e-delete", reclaim="Delete"))
    kubectl.ok("apply", "-f", "-", stdin=_claim("gone", "1Gi", cls="e2e-delete"))
    wait_for(lambda: _phase(kubectl, "pvc", "gone") == "Bound", 20, what="the claim Bound")
    kubectl.ok("delete", "pvc", "gone", "-n", NS, timeout=30)
    wait_for(lambda: _phase(kubectl, "pv", "e2e-pv-delete", None) == "Failed", 20, what="the PV Failed")
    pv = _get(kubectl, "pv", "e2e-pv-delete", None)
    assert pv["status"]["message"] == ('error getting deleter volume plugin for volume "e2e-pv-delete": '
                                       "no deletable volume plugin matched")
    described = kubectl.ok("describe", "pv", "e2e-pv-delete")
    assert "VolumeFailedDelete" in described
    # Not Bound: the protection finalizer does not hold its deletion.
    kubectl.ok("delete", "pv", "e2e-pv-delete", timeout=30)
    assert kubectl("get", "pv", "e2e-pv-delete").returncode != 0


def test_a_claim_in_use_stays_until_its_pod_is_gone(kubectl, ns, sim_node):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-used", "1Gi", cls="e2e-used"))
    kubectl.ok("apply", "-f", "-", stdin=_claim("used", "1Gi", cls="e2e-used"))
    wait_for(lambda: _phase(kubectl, "pvc", "used") == "Bound", 20, what="the claim Bound")
    kubectl.ok("apply", "-f", "-", stdin=_yaml({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": NS},
        "spec": {"nodeName": sim_node, "containers": [{"name": "c", "image": "busybox",
                                                         "volumeMounts": [{"name": "d", "mountPath": "/data"}]}],
                 "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "used"}}]}}))
    wait_for(lambda: _phase(kubectl, "pod", "user") == "Running", 30, what="the pod Running")
    kubectl.ok("delete", "pvc", "used", "-n", NS, "--wait=false")
    claim = _get(kubectl, "pvc", "used")
    assert claim["metadata"].get("deletionTimestamp")
    assert _rows(kubectl, "pvc", "used", "-n", NS)[1][1] == "Terminating"
    # The bound volume cannot go either.
    kubectl.ok("delete", "pv", "e2e-pv-used", "--wait=false")
    assert _get(kubectl, "pv", "e2e-pv-used", None)["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    assert kubectl("get", "pvc", "used", "-n", NS).returncode == 0
    kubectl.ok("delete", "pod", "user", "-n", NS, timeout=60)
    wait_for(lambda: kubectl("get", "pvc", "used", "-n", NS).returncode != 0, 30, what="the claim removed")
    wait_for(lambda: kubectl("get", "pv", "e2e-pv-used").returncode != 0, 30, what="the volume removed")


def test_expansion_where_the_class_allows_it(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_volume("e2e-pv-fixed", "1Gi", cls="e2e-fixed"))
    kubectl.ok("apply", "-f", "-", stdin=_claim("fixed", "1Gi", cls="e2e-fixed"))
    wait_for(lambda: _phase(kubectl, "pvc", "fixed") == "Bound", 20, what="the claim Bound")
    r = kubectl("patch", "pvc", "fixed", "-n", NS, "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')
    assert r.returncode != 0
    assert ('persistentvolumeclaims "fixed" is forbidden: only dynamically provisioned pvc can be resized and the '
            "storageclass that provisions the pvc must support resize") in r.stderr
    r = kubectl("patch", "pvc", "fixed", "-n", NS, "-p", '{"spec":{"resources":{"requests":{"storage":"500Mi"}}}}')
    assert r.returncode != 0 and "field can not be less than status.capacity" in r.stderr
    # A local-path volume (as the node agent provisions it, pre-bound to the claim) grows.
    kubectl.ok("apply", "-f", "-", stdin=_claim("grow", "1Gi", cls="local-path"))
    uid = _get(kubectl, "pvc", "grow")["metadata"]["uid"]
    kubectl.ok("apply", "-f", "-", stdin=_yaml({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": "e2e-pv-grow", "annotations": {"pv.kubernetes.io/provisioned-by": "kybernetes.io/local-path"}},
        "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                 "persistentVolumeReclaimPolicy": "Retain", "local": {"path": "/nowhere"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["e2e-no-such-node"]}]}]}},
                 "claimRef": {"namespace": NS, "name": "grow", "uid": uid}}}))
    wait_for(lambda: _phase(kubectl, "pvc", "grow") == "Bound", 20, what="the local-path claim Bound")
    kubectl.ok("patch", "pvc", "grow", "-n", NS, "-p", '{"spec":{"resources":{"requests":{"storage":"3Gi"}}}}')
    wait_for(lambda: _get(kubectl, "pvc", "grow")["status"].get("capacity", {}).get("storage") == "3Gi", 20,
             what="the claim's capacity grown")
    assert _get(kubectl, "pv", "e2e-pv-grow", None)["spec"]["capacity"]["storage"] == "3Gi"
    described = wait_for(lambda: (lambda out: out if "VolumeResizeSuccessful" in out else "")(
        kubectl.ok("describe", "pvc", "grow", "-n", NS)), 20, what="the resize events")
    assert "Resizing" in described and "External resizer is resizing volume e2e-pv-grow" in described


@pytest.mark.parametrize("body, status, fragment", [
    (_claim("bad-modes", accessModes=[]), 422, "spec.accessModes: Required value"),
    (_claim("bad-mode", accessModes=["ReadWriteSometimes"]), 422, 'Unsupported value: "ReadWriteSometimes"'),
    (_yaml({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "bad-size", "namespace": NS},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "lots"}}}}), 400, ""),
    (_yaml({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "e2e-bad-local"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "local": {"path": "/x"}}}),
     422, "spec.nodeAffinity: Required value: Local volume requires node affinity"),
])
def test_bad_input_is_refused(kubectl, ns, body, status, fragment):
    r = kubectl("create", "-f", "-", "-v=6", stdin=body)
    assert r.returncode != 0
    assert str(status) in r.stderr or (status == 400 and "quantities must match" in r.stderr), r.stderr
    assert fragment in r.stderr


def test_a_claims_spec_is_immutable(kubectl, ns):
    kubectl.ok("apply", "-f", "-", stdin=_claim("frozen", "1Gi", cls="e2e-nothing"))
    r = kubectl("patch", "pvc", "frozen", "-n", NS, "-p", '{"spec":{"accessModes":["ReadWriteMany"]}}')
    assert r.returncode != 0
    assert "spec is immutable after creation except resources.requests" in r.stderr
    r = kubectl("patch", "pvc", "frozen", "-n", NS, "-p", '{"spec":{"resources":{"requests":{"storage":"2Gi"}}}}')
    assert r.returncode != 0 and "spec is immutable" in r.stderr  # not bound: no expansion either
