"""Every control-plane component runs as its own least-privileged user.

`kyb server` writes the controller manager's and the scheduler's kubeconfigs under its data
dir with client certificates of `system:kube-controller-manager` and `system:kube-scheduler`
(no group); the bootstrap policy binds each to what it does. The admin kubeconfig is the
only `system:masters` credential the server writes.
"""

from __future__ import annotations

import base64
import json
import os
import stat

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from kybernetes.testing.cluster import start_sim_nodes, wait_for

ROLE = "system:kybernetes:controller-manager"
# What a component's API client logs when the server refuses it (kybernetes/client/api.py).
CLIENT_REFUSED = 'logger=kybernetes.client.api msg="forbidden:'


def _subject(cert: x509.Certificate) -> tuple[str, list[str]]:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return (str(cns[0].value) if cns else "", [str(o.value) for o in orgs])


def _kubeconfig_users(data_dir: str) -> dict[str, tuple[str, list[str]]]:
    """Relative path -> (user, groups) of every kubeconfig with a client certificate under the data dir."""
    out = {}
    for root, _dirs, files in os.walk(data_dir):
        for f in files:
            if not f.endswith((".yaml", ".kubeconfig")):
                continue
            path = os.path.join(root, f)
            try:
                with open(path, encoding="utf-8") as fh:
                    doc = yaml.safe_load(fh)
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                continue
            if not isinstance(doc, dict) or doc.get("kind") != "Config":
                continue
            for u in doc.get("users") or []:
                data = (u.get("user") or {}).get("client-certificate-data")
                if data:
                    out[os.path.relpath(path, data_dir)] = _subject(x509.load_pem_x509_certificate(
                        base64.b64decode(data)))
    return out


def _can_i(kubectl, user: str, *args: str) -> bool:
    r = kubectl("auth", "can-i", *args, "--as", user)
    return r.stdout.strip() == "yes"


def test_components_have_their_own_kubeconfigs(server):
    users = _kubeconfig_users(server.data_dir)
    assert users["controller-manager/kubeconfig.yaml"] == ("system:kube-controller-manager", [])
    assert users["scheduler/kubeconfig.yaml"] == ("system:kube-scheduler", [])
    for rel in ("controller-manager/kubeconfig.yaml", "scheduler/kubeconfig.yaml"):
        assert stat.S_IMODE(os.stat(os.path.join(server.data_dir, rel)).st_mode) == 0o600
    # The admin's is the only system:masters kubeconfig ...
    masters = sorted(rel for rel, (_user, groups) in users.items() if "system:masters" in groups)
    assert masters == ["kubeconfig.yaml"]
    # ... and admin.crt the only system:masters certificate in the PKI.
    pki = os.path.join(server.data_dir, "pki")
    in_masters = []
    for f in sorted(os.listdir(pki)):
        if f.endswith(".crt"):
            with open(os.path.join(pki, f), "rb") as fh:
                if "system:masters" in _subject(x509.load_pem_x509_certificate(fh.read()))[1]:
                    in_masters.append(f)
    assert in_masters == ["admin.crt"]


def test_controller_manager_and_scheduler_hold_their_leases(kubectl):
    # Leader election in kube-system works under their own users (get, create, update by name).
    def holders():
        leases = json.loads(kubectl.ok("get", "leases", "-n", "kube-system", "-o", "json"))["items"]
        return {lease["metadata"]["name"]: lease["spec"].get("holderIdentity") for lease in leases}

    found = wait_for(lambda: (h := holders()).get("kube-controller-manager") and h.get("kube-scheduler") and h,
                     30, what="leader leases")
    assert found["kube-controller-manager"] and found["kube-scheduler"]


@pytest.mark.parametrize(("args", "allowed"), [
    (("create", "pods"), False),
    (("create", "pods", "--subresource=binding"), True),
    (("create", "bindings"), True),
    (("patch", "pods", "--subresource=status"), True),
    (("delete", "pods"), True),
    (("list", "nodes"), True),
    (("update", "nodes"), False),
    (("get", "secrets"), False),
    (("list", "persistentvolumeclaims"), True),
    (("patch", "persistentvolumes"), True),
    (("list", "storageclasses.storage.k8s.io"), True),
    (("update", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system"), True),
    (("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"), False),
])
def test_scheduler_may_do_what_it_does_only(kubectl, args, allowed):
    assert _can_i(kubectl, "system:kube-scheduler", *args) is allowed


@pytest.mark.parametrize(("args", "allowed"), [
    (("create", "pods"), True),
    (("delete", "pods"), True),
    (("deletecollection", "configmaps"), True),
    (("create", "replicasets.apps"), True),
    (("update", "certificatesigningrequests.certificates.k8s.io", "--subresource=approval"), True),
    (("escalate", "clusterroles.rbac.authorization.k8s.io"), True),
    (("update", "leases.coordination.k8s.io/kube-controller-manager", "-n", "kube-system"), True),
    # Not an admin: no new RBAC bindings, no impersonation, no nodes of its own.
    (("create", "clusterrolebindings.rbac.authorization.k8s.io"), False),
    (("impersonate", "users"), False),
    (("create", "nodes"), False),
    (("create", "pods", "--subresource=exec"), False),
])
def test_controller_manager_may_do_what_its_controllers_do_only(kubectl, args, allowed):
    assert _can_i(kubectl, "system:kube-controller-manager", *args) is allowed


def _reviewed(kubectl, user: str, verb: str, group: str, resource: str, name: str) -> bool:
    # kubectl auth can-i cannot name signers (no such served resource): ask with a SubjectAccessReview.
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
              "spec": {"user": user, "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                                             "name": name}}}
    out = json.loads(kubectl.ok("create", "-f", "-", "-o", "json", stdin=json.dumps(review)))
    return bool(out["status"].get("allowed"))


@pytest.mark.parametrize(("verb", "signer", "allowed"), [
    ("sign", "kubernetes.io/kube-apiserver-client", True),
    ("sign", "kubernetes.io/kubelet-serving", True),
    ("approve", "kubernetes.io/kube-apiserver-client-kubelet", True),
    # Client certificates for arbitrary users are approved by an admin, never by the controllers.
    ("approve", "kubernetes.io/kube-apiserver-client", False),
    ("sign", "example.com/other", False),
])
def test_controller_manager_signs_and_approves_for_its_signers_only(kubectl, verb, signer, allowed):
    assert _reviewed(kubectl, "system:kube-controller-manager", verb, "certificates.k8s.io", "signers",
                     signer) is allowed


def _log_from(server, name: str, offset: int) -> str:
    with open(os.path.join(server.data_dir, name), encoding="utf-8", errors="replace") as f:
        f.seek(offset)
        return f.read()


def _size(server, name: str) -> int:
    return os.path.getsize(os.path.join(server.data_dir, name))


def test_the_controller_manager_acts_under_its_role(server, kubectl):
    """Take a rule from its role and a controller is refused (and says so in its log);
    give it back and the controller catches up."""
    role = json.loads(kubectl.ok("get", "clusterrole", ROLE, "-o", "json"))
    rules = role["rules"]
    configmaps = [r for r in rules if r.get("resources") == ["configmaps"]]
    assert configmaps and "create" in configmaps[0]["verbs"]
    offset = _size(server, "controller-manager.log")
    kept = [r for r in rules if r not in configmaps]
    kubectl.ok("patch", "clusterrole", ROLE, "--type=json",
               "-p", json.dumps([{"op": "replace", "path": "/rules", "value": kept}]))
    try:
        kubectl.ok("create", "namespace", "ident-cm")
        wait_for(lambda: f"{CLIENT_REFUSED} POST /api/v1/namespaces/ident-cm/configmaps" in _log_from(
            server, "controller-manager.log", offset), 30, what="the root CA controller refused")
        assert kubectl("get", "configmap", "kube-root-ca.crt", "-n", "ident-cm").returncode != 0
    finally:
        kubectl.ok("patch", "clusterrole", ROLE, "--type=json",
                   "-p", json.dumps([{"op": "replace", "path": "/rules", "value": rules}]))
    try:
        wait_for(lambda: kubectl("get", "configmap", "kube-root-ca.crt", "-n", "ident-cm").returncode == 0, 90,
                 what="kube-root-ca.crt once the rule is back")
    finally:
        kubectl("delete", "namespace", "ident-cm", "--wait=false")


def test_controllers_and_scheduler_are_never_refused(server, kubectl):
    """A workload's life through the controllers and the scheduler, under their own
    users: nothing they do is refused by authorization."""
    logs = ("controller-manager.log", "scheduler.log")
    offsets = {name: _size(server, name) for name in logs}
    nodes = start_sim_nodes(server, "sim-ident-", 1)
    ns = "ident-work"
    try:
        wait_for(lambda: "node/sim-ident-0" in kubectl.ok("get", "nodes", "-o", "name"), 30, what="the node")
        kubectl.ok("create", "namespace", ns)
        kubectl.ok("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", ns)
        kubectl.ok("expose", "deployment", "web", "--port=80", "-n", ns)
        kubectl.ok("create", "job", "once", "--image=busybox", "-n", ns, "--", "true")
        kubectl.ok("create", "poddisruptionbudget", "web", "--selector=app=web", "--min-available=1", "-n", ns)
        kubectl.ok("apply", "-f", "-", stdin=json.dumps({
            "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": "db", "replicas": 1, "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}))
        wait_for(lambda: kubectl.ok("get", "deployment", "web", "-n", ns, "-o",
                                    "jsonpath={.status.availableReplicas}") == "2", 60, what="deployment available")
        wait_for(lambda: kubectl.ok("get", "job", "once", "-n", ns, "-o",
                                    "jsonpath={.status.succeeded}") == "1", 60, what="job done")
        wait_for(lambda: kubectl.ok("get", "statefulset", "db", "-n", ns, "-o",
                                    "jsonpath={.status.readyReplicas}") == "1", 60, what="statefulset ready")
        wait_for(lambda: kubectl.ok("get", "pdb", "web", "-n", ns, "-o",
                                    "jsonpath={.status.disruptionsAllowed}") == "1", 60, what="PDB status")
        wait_for(lambda: kubectl.ok("get", "endpointslices", "-n", ns, "-l", "kubernetes.io/service-name=web",
                                    "-o", "jsonpath={.items[*].endpoints[*].addresses[0]}").count(".") == 6,
                 60, what="the Service's endpoints")
        kubectl.ok("delete", "deployment", "web", "-n", ns, "--cascade=foreground", "--wait=false")
        wait_for(lambda: kubectl.ok("get", "replicasets,pods", "-n", ns, "-l", "app=web", "-o", "name") == "", 60,
                 what="the garbage collector to remove the deployment's ReplicaSet and pods")
        kubectl.ok("delete", "namespace", ns, "--wait=false")
        wait_for(lambda: kubectl("get", "namespace", ns).returncode != 0, 90, what="the namespace gone")
    finally:
        nodes.terminate()
        nodes.wait(10)
        kubectl("delete", "namespace", ns, "--wait=false")
        kubectl("delete", "node", "sim-ident-0")
    for name in logs:
        refused = [line for line in _log_from(server, name, offsets[name]).splitlines() if CLIENT_REFUSED in line]
        assert refused == [], f"{name}: {refused[:5]}"
