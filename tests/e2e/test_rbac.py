"""RBAC end to end with real kubectl: identities by client certificate (signed with the
server's CA), bindings to the default roles, and what each identity meets — allowed
exactly where RBAC says, kube-apiserver's Forbidden message otherwise, `kubectl auth
can-i` agreeing; escalation prevention; impersonation; `kubectl auth reconcile`; the
aggregated roles filled by the controller."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from kybernetes.apiserver import pki
from kybernetes.testing.cluster import KubectlResult

NS = "rbac-e2e"
OTHER = "rbac-e2e-other"
EDITOR, VIEWER, NOBODY, NSADMIN = "rbac-editor", "rbac-viewer", "rbac-nobody", "rbac-nsadmin"
ROBOT = f"system:serviceaccount:{NS}:robot"
ANON = "anonymous"
HOSTLESS = "does not have a host assigned"


def _kubeconfig(server, path: Path, user: str, groups: list[str] = ()) -> str:
    paths = pki.pki_paths(server.data_dir)
    cert, key = pki.issue_client_cert(paths, user, list(groups))
    doc = pki.kubeconfig_dict(pki.read_ca_pem(paths), server.url, client_cert_pem=cert, client_key_pem=key)
    path.write_text(yaml.safe_dump(doc))
    return str(path)


@pytest.fixture(scope="module")
def users(server, kubectl, tmp_path_factory):
    d = tmp_path_factory.mktemp("rbac-users")
    configs = {name: _kubeconfig(server, d / f"{name}.kc", name) for name in (EDITOR, VIEWER, NOBODY, NSADMIN)}
    for ns in (NS, OTHER):
        kubectl.ok("create", "namespace", ns)
    kubectl.ok("create", "rolebinding", "editor", "--clusterrole=edit", f"--user={EDITOR}", "-n", NS)
    kubectl.ok("create", "rolebinding", "viewer", "--clusterrole=view", f"--user={VIEWER}", "-n", NS)
    kubectl.ok("create", "rolebinding", "nsadmin", "--clusterrole=admin", f"--user={NSADMIN}", "-n", NS)
    kubectl.ok("run", "p", "--image=busybox", "--restart=Never", "-n", NS)
    kubectl.ok("create", "secret", "generic", "s", "--from-literal=a=b", "-n", NS)
    # A ServiceAccount allowed to view, authenticated by a token the API issues.
    kubectl.ok("create", "serviceaccount", "robot", "-n", NS)
    kubectl.ok("create", "rolebinding", "robot", "--clusterrole=view", f"--serviceaccount={NS}:robot", "-n", NS)
    token = kubectl.ok("create", "token", "robot", "-n", NS).strip()
    paths = pki.pki_paths(server.data_dir)
    (d / "robot.kc").write_text(yaml.safe_dump(pki.kubeconfig_dict(pki.read_ca_pem(paths), server.url, token=token)))
    configs[ROBOT] = str(d / "robot.kc")
    _wait_until(lambda: kubectl("auth", "can-i", "list", "pods", "-n", NS, "--as", VIEWER).ok,
                "the view role was never filled by the aggregation controller")
    yield configs
    for ns in (NS, OTHER):
        kubectl("delete", "namespace", ns, "--wait=false")


def _wait_until(check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(what)


def _anonymous_get(server, path: str) -> KubectlResult:
    """kubectl prompts for a password without credentials: anonymous requests go over plain HTTPS."""
    ctx = ssl.create_default_context(cafile=pki.pki_paths(server.data_dir).ca_cert)
    ctx.check_hostname = False
    try:
        with urllib.request.urlopen(server.url + path, context=ctx, timeout=10) as r:
            return KubectlResult(0, r.read().decode(), "")
    except urllib.error.HTTPError as e:
        status = json.loads(e.read())
        assert status["code"] == e.code == 403 and status["reason"] == "Forbidden"
        return KubectlResult(1, "", status["message"])


def _as(kubectl, users, who: str, *args: str, stdin: str | None = None) -> KubectlResult:
    if who == ANON:
        return _anonymous_get(kubectl.server, args[-1])
    if who == "admin":
        return kubectl(*args, stdin=stdin)
    return kubectl("--kubeconfig", users[who], *args, stdin=stdin)


def _forbidden(user: str, verb: str, resource: str, ns: str = "", group: str = "", name: str = "",
               qualified: str = "") -> str:
    where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    head = qualified or resource.split("/")[0] + (f".{group}" if group else "")
    head = f'{head} "{name}"' if name else head
    return f'{head} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "{group}" {where}'


# (who, kubectl args, allowed, message when refused, can-i question or None)
MATRIX = [
    ("admin", ["get", "pods", "-n", NS], True, "", ["list", "pods", "-n", NS]),
    ("admin", ["get", "nodes"], True, "", ["list", "nodes"]),
    (EDITOR, ["get", "pods", "-n", NS], True, "", ["list", "pods", "-n", NS]),
    (EDITOR, ["get", "pods", "-n", OTHER], False, _forbidden(EDITOR, "list", "pods", OTHER),
     ["list", "pods", "-n", OTHER]),
    (EDITOR, ["get", "secret", "s", "-n", NS], True, "", ["get", "secrets", "-n", NS]),
    (EDITOR, ["create", "configmap", "cm", "-n", NS], True, "", ["create", "configmaps", "-n", NS]),
    (EDITOR, ["get", "nodes"], False, _forbidden(EDITOR, "list", "nodes"), ["list", "nodes"]),
    (EDITOR, ["exec", "p", "-n", NS, "--", "true"], True, "", ["create", "pods", "--subresource=exec", "-n", NS]),
    (EDITOR, ["get", "--raw", "/api/v1/nodes/n1/proxy/stats"], False,
     _forbidden(EDITOR, "get", "nodes/proxy", name="n1"), ["get", "nodes", "--subresource=proxy"]),
    (EDITOR, ["get", "roles", "-n", NS], False,
     _forbidden(EDITOR, "list", "roles", NS, "rbac.authorization.k8s.io"), ["list", "roles.rbac.authorization.k8s.io",
                                                                            "-n", NS]),
    (VIEWER, ["get", "pods", "-n", NS], True, "", ["list", "pods", "-n", NS]),
    (VIEWER, ["get", "deployments", "-n", NS], True, "", ["list", "deployments.apps", "-n", NS]),
    (VIEWER, ["get", "secrets", "-n", NS], False, _forbidden(VIEWER, "list", "secrets", NS),
     ["list", "secrets", "-n", NS]),
    (VIEWER, ["logs", "p", "-n", NS], True, "", ["get", "pods", "--subresource=log", "-n", NS]),
    (VIEWER, ["exec", "p", "-n", NS, "--", "true"], False, _forbidden(VIEWER, "create", "pods/exec", NS, name="p"),
     ["create", "pods", "--subresource=exec", "-n", NS]),
    (VIEWER, ["delete", "pod", "p", "-n", NS], False, _forbidden(VIEWER, "delete", "pods", NS, name="p"),
     ["delete", "pods", "-n", NS]),
    (VIEWER, ["create", "configmap", "cm2", "-n", NS], False, _forbidden(VIEWER, "create", "configmaps", NS),
     ["create", "configmaps", "-n", NS]),
    (ROBOT, ["get", "pods", "-n", NS], True, "", ["list", "pods", "-n", NS]),
    (ROBOT, ["get", "secrets", "-n", NS], False, _forbidden(ROBOT, "list", "secrets", NS),
     ["list", "secrets", "-n", NS]),
    (ROBOT, ["get", "pods", "-n", OTHER], False, _forbidden(ROBOT, "list", "pods", OTHER),
     ["list", "pods", "-n", OTHER]),
    (NOBODY, ["get", "pods", "-n", NS], False, _forbidden(NOBODY, "list", "pods", NS), ["list", "pods", "-n", NS]),
    (NOBODY, ["get", "secret", "s", "-n", NS], False, _forbidden(NOBODY, "get", "secrets", NS, name="s"),
     ["get", "secrets", "-n", NS]),
    (NOBODY, ["get", "--raw", "/apis"], True, "", None),
    (ANON, ["get", f"/api/v1/namespaces/{NS}/pods"], False, _forbidden("system:anonymous", "list", "pods", NS), None),
    (ANON, ["get", "/version"], True, "", None),
    (ANON, ["get", "/healthz"], True, "", None),
    (ANON, ["get", "/apis"], False, 'forbidden: User "system:anonymous" cannot get path "/apis"', None),
]


@pytest.mark.parametrize(("who", "args", "allowed", "message", "can_i"), MATRIX,
                         ids=[f"{m[0].rsplit(':', 1)[-1]}-{'-'.join(m[1][:2])}-{i}" for i, m in enumerate(MATRIX)])
def test_matrix_allowed_exactly_where_rbac_says(kubectl, users, who, args, allowed, message, can_i):
    r = _as(kubectl, users, who, *args)
    out = r.stdout + r.stderr
    if allowed:
        # Streaming subresources of an unscheduled pod get past authorization to the pod's own refusal.
        assert r.ok or HOSTLESS in out, f"{who} {args} refused: {out}"
        assert "forbidden" not in out.lower()
    else:
        assert not r.ok and message in out, f"{who} {args}: {out}"
    if can_i is not None:
        answer = _as(kubectl, users, who, "auth", "can-i", *can_i)
        assert answer.stdout.strip() == ("yes" if allowed else "no"), f"can-i {can_i} for {who}: {answer}"


def test_can_i_list_shows_the_rules_that_apply(kubectl, users):
    viewer = _as(kubectl, users, VIEWER, "auth", "can-i", "--list", "-n", NS)
    assert viewer.ok, viewer.stderr
    rows = {line.split()[0]: line for line in viewer.stdout.splitlines()[1:] if line and not line.startswith(" ")}
    assert "pods" in rows and "[get list watch]" in rows["pods"]
    assert "secrets" not in rows
    assert "selfsubjectaccessreviews.authorization.k8s.io" in rows
    elsewhere = _as(kubectl, users, VIEWER, "auth", "can-i", "--list", "-n", OTHER)
    assert "pods " not in elsewhere.stdout


def test_escalation_is_refused_unless_the_rules_are_held(kubectl, users):
    # An `edit` user cannot bind at all; a namespace admin can, but only what it holds.
    r = _as(kubectl, users, EDITOR, "create", "rolebinding", "esc", "--clusterrole=cluster-admin",
            f"--user={EDITOR}", "-n", NS)
    assert not r.ok and _forbidden(EDITOR, "create", "rolebindings", NS, "rbac.authorization.k8s.io") in r.stderr
    r = _as(kubectl, users, NSADMIN, "create", "rolebinding", "esc", "--clusterrole=cluster-admin",
            f"--user={EDITOR}", "-n", NS)
    assert not r.ok
    assert (f'rolebindings.rbac.authorization.k8s.io "esc" is forbidden: user "{NSADMIN}" '
            f'(groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
            '{APIGroups:["*"], Resources:["*"], Verbs:["*"]}') in r.stderr
    assert not kubectl("get", "rolebinding", "esc", "-n", NS).ok, "nothing stored"
    r = _as(kubectl, users, NSADMIN, "create", "role", "nodes", "--verb=get", "--resource=nodes", "-n", NS)
    assert not r.ok and '{APIGroups:[""], Resources:["nodes"], Verbs:["get"]}' in r.stderr
    # What the admin holds it may grant.
    assert _as(kubectl, users, NSADMIN, "create", "rolebinding", "helper", "--clusterrole=edit",
               f"--user={NOBODY}", "-n", NS).ok
    _wait_until(lambda: _as(kubectl, users, NOBODY, "get", "pods", "-n", NS).ok, "the new binding never applied")
    kubectl.ok("delete", "rolebinding", "helper", "-n", NS)
    _wait_until(lambda: not _as(kubectl, users, NOBODY, "get", "pods", "-n", NS).ok, "the binding outlived its delete")
    # `escalate` lets a user write roles beyond its own rules, `bind` bind them.
    kubectl.ok("apply", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: escalator}
rules:
- {apiGroups: [rbac.authorization.k8s.io], resources: [roles], verbs: [escalate, bind, create]}
- {apiGroups: [rbac.authorization.k8s.io], resources: [rolebindings], verbs: [create]}
""")
    kubectl.ok("create", "rolebinding", "escalator", "--clusterrole=escalator", f"--user={EDITOR}", "-n", NS)
    _wait_until(lambda: _as(kubectl, users, EDITOR, "create", "role", "nodes", "--verb=get", "--resource=nodes",
                            "-n", NS).ok, "escalate did not allow the role")
    assert _as(kubectl, users, EDITOR, "create", "rolebinding", "nodes", "--role=nodes", f"--user={EDITOR}",
               "-n", NS).ok


def test_impersonation_needs_the_impersonate_verb(kubectl, users):
    who = kubectl.ok("auth", "whoami", "--as", "bob", "--as-group", "g", "-o", "yaml")
    info = yaml.safe_load(who)["status"]["userInfo"]
    assert info["username"] == "bob" and info["groups"] == ["g", "system:authenticated"]
    with_uid = yaml.safe_load(kubectl.ok("auth", "whoami", "--as", "bob", "--as-uid", "42", "-o", "yaml"))
    assert with_uid["status"]["userInfo"]["uid"] == "42"
    assert kubectl.ok("auth", "can-i", "list", "pods", "-n", NS, "--as", EDITOR).strip() == "yes"
    assert kubectl("auth", "can-i", "list", "secrets", "-n", NS, "--as", VIEWER).stdout.strip() == "no"
    refused = kubectl("get", "secrets", "-n", NS, "--as", VIEWER)
    assert _forbidden(VIEWER, "list", "secrets", NS) in refused.stderr
    r = _as(kubectl, users, EDITOR, "get", "pods", "-n", NS, "--as", "bob")
    assert not r.ok and _forbidden(EDITOR, "impersonate", "users", name="bob") in r.stderr
    # Allowed to impersonate bob only: not another user, nor a group.
    kubectl.ok("create", "clusterrole", "impersonate-bob", "--verb=impersonate", "--resource=users",
               "--resource-name=bob")
    kubectl.ok("create", "clusterrolebinding", "viewer-impersonates-bob", "--clusterrole=impersonate-bob",
               f"--user={VIEWER}")
    kubectl.ok("create", "rolebinding", "bob", "--clusterrole=view", "--user=bob", "-n", OTHER)
    _wait_until(lambda: _as(kubectl, users, VIEWER, "get", "pods", "-n", OTHER, "--as", "bob").ok,
                "impersonating bob was refused")
    r = _as(kubectl, users, VIEWER, "get", "pods", "-n", OTHER, "--as", "carol")
    assert _forbidden(VIEWER, "impersonate", "users", name="carol") in r.stderr
    r = _as(kubectl, users, VIEWER, "get", "pods", "-n", OTHER, "--as", "bob", "--as-group", "system:masters")
    assert _forbidden(VIEWER, "impersonate", "groups", name="system:masters") in r.stderr
    kubectl.ok("delete", "clusterrolebinding", "viewer-impersonates-bob")
    kubectl.ok("delete", "clusterrole", "impersonate-bob")


def test_auth_reconcile_and_aggregation(kubectl, users):
    manifest = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: cm-reader, namespace: {OTHER}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: cm-reader, namespace: {OTHER}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: cm-reader}}
subjects: [{{apiGroup: rbac.authorization.k8s.io, kind: User, name: {NOBODY}}}]
"""
    out = kubectl.ok("auth", "reconcile", "-f", "-", stdin=manifest)
    assert "role.rbac.authorization.k8s.io/cm-reader reconciled" in out
    assert _as(kubectl, users, NOBODY, "auth", "can-i", "list", "configmaps", "-n", OTHER).stdout.strip() == "yes"
    assert _as(kubectl, users, NOBODY, "get", "configmaps", "-n", OTHER).ok
    # A ClusterRole labelled for aggregation lands in `view` (and so in edit and admin).
    kubectl.ok("apply", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: rbac-e2e-podtemplates
  labels: {rbac.authorization.k8s.io/aggregate-to-view: "true"}
rules: [{apiGroups: [""], resources: [podtemplates], verbs: [get, list]}]
""")
    _wait_until(lambda: _as(kubectl, users, VIEWER, "auth", "can-i", "list", "podtemplates",
                            "-n", NS).stdout.strip() == "yes", "view never aggregated the new role")
    _wait_until(lambda: _as(kubectl, users, NSADMIN, "auth", "can-i", "list", "podtemplates",
                            "-n", NS).stdout.strip() == "yes", "admin never aggregated view's new rules")
    kubectl.ok("delete", "clusterrole", "rbac-e2e-podtemplates")
    _wait_until(lambda: _as(kubectl, users, VIEWER, "auth", "can-i", "list", "podtemplates",
                            "-n", NS).stdout.strip() == "no", "view kept the deleted role's rules")
