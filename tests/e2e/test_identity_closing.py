"""Identity and RBAC, the last details, with real kubectl:

- an update changing only a Role's finalizers or owner references skips the escalation
  check (upstream's IsOnlyMutatingGCFields), any other change does not;
- pods/exec, attach and portforward need `create`, over SPDY (POST) and WebSocket (GET),
  refused before any node is dialled;
- the kubelet's 3607 s pod token is good for a year (`warnafter`) while the answer says
  3607 s, unless `--no-service-account-extend-token-expiration`;
- `--service-account-issuer`, `--api-audiences` and `--service-account-max-token-expiration`
  on a server of their own: the token's iss/aud/exp and the discovery document.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import ssl
import time
from pathlib import Path

import pytest
import yaml

from kybernetes.apiserver import pki
from kybernetes.testing.cluster import ServerProcess

NS = "identity-closing"
UPDATER, GETTER, CREATOR = "role-updater", "exec-getter", "exec-creator"
RBAC = "rbac.authorization.k8s.io"
HOSTLESS = "does not have a host assigned"
YEAR = 365 * 24 * 3600


def _identity(server, d: Path, user: str) -> tuple[str, str, str]:
    """(kubeconfig, cert file, key file) of a client certificate for `user`."""
    paths = pki.pki_paths(server.data_dir)
    cert, key = pki.issue_client_cert(paths, user, [])
    (d / f"{user}.crt").write_text(cert if isinstance(cert, str) else cert.decode())
    (d / f"{user}.key").write_text(key if isinstance(key, str) else key.decode())
    doc = pki.kubeconfig_dict(pki.read_ca_pem(paths), server.url, client_cert_pem=cert, client_key_pem=key)
    (d / f"{user}.kc").write_text(yaml.safe_dump(doc))
    return str(d / f"{user}.kc"), str(d / f"{user}.crt"), str(d / f"{user}.key")


@pytest.fixture(scope="module")
def ids(server, kubectl, tmp_path_factory):
    d = tmp_path_factory.mktemp("identity-closing")
    out = {u: _identity(server, d, u) for u in (UPDATER, GETTER, CREATOR)}
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("create", "role", "role-updater", "--verb=get,update,patch", f"--resource=roles.{RBAC}",
               "-n", NS)
    kubectl.ok("create", "rolebinding", "role-updater", "--role=role-updater", f"--user={UPDATER}", "-n", NS)
    kubectl.ok("create", "role", "exec-getter", "--verb=get", "--resource=pods,pods/exec,pods/attach,"
               "pods/portforward", "-n", NS)
    kubectl.ok("create", "rolebinding", "exec-getter", "--role=exec-getter", f"--user={GETTER}", "-n", NS)
    kubectl.ok("create", "role", "exec-creator", "--verb=create", "--resource=pods/exec,pods/attach,"
               "pods/portforward", "-n", NS)
    kubectl.ok("create", "rolebinding", "exec-creator", "--role=exec-creator", f"--user={CREATOR}", "-n", NS)
    # kubectl reads the pod before it execs.
    kubectl.ok("create", "role", "pod-reader", "--verb=get", "--resource=pods", "-n", NS)
    kubectl.ok("create", "rolebinding", "pod-reader", "--role=pod-reader", f"--user={CREATOR}", "-n", NS)
    kubectl.ok("create", "role", "secret-reader", "--verb=get", "--resource=secrets", "-n", NS)
    # A pod no node runs: streaming requests that pass authorization meet its own refusal.
    kubectl.ok("create", "serviceaccount", "bot", "-n", NS)
    kubectl.ok("run", "p", "--image=busybox", "--restart=Never", "--overrides",
               json.dumps({"spec": {"serviceAccountName": "bot"}}), "-n", NS)
    yield out
    kubectl("patch", "role", "secret-reader", "-n", NS, "--type=merge", "-p", '{"metadata":{"finalizers":null}}')
    kubectl("delete", "namespace", NS, "--wait=false")


def _as(kubectl, ids, who: str, *args: str):
    return kubectl("--kubeconfig", ids[who][0], *args)


# -- 1. escalation checks skip what only the garbage collector changes -------------------------


def test_finalizers_of_a_role_beyond_the_writer_are_allowed_other_changes_are_not(kubectl, ids):
    add = _as(kubectl, ids, UPDATER, "patch", "role", "secret-reader", "-n", NS, "--type=merge",
              "-p", '{"metadata":{"finalizers":["example.com/hold"]}}')
    assert add.ok, add.stderr
    assert json.loads(kubectl.ok("get", "role", "secret-reader", "-n", NS, "-o", "json"))["metadata"][
        "finalizers"] == ["example.com/hold"]
    # An owner that exists, or the garbage collector deletes the role.
    kubectl.ok("create", "configmap", "owner", "-n", NS)
    uid = kubectl.ok("get", "configmap", "owner", "-n", NS, "-o", "jsonpath={.metadata.uid}")
    owner = _as(kubectl, ids, UPDATER, "patch", "role", "secret-reader", "-n", NS, "--type=merge", "-p", json.dumps(
        {"metadata": {"ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}]}}))
    assert owner.ok, owner.stderr
    escalation = (f'roles.{RBAC} "secret-reader" is forbidden: user "{UPDATER}" (groups=["system:authenticated"]) '
                  "is attempting to grant RBAC permissions not currently held:\n")
    more = _as(kubectl, ids, UPDATER, "patch", "role", "secret-reader", "-n", NS, "--type=json", "-p", json.dumps(
        [{"op": "add", "path": "/rules/-", "value": {"apiGroups": [""], "resources": ["configmaps"],
                                                      "verbs": ["get"]}}]))
    assert not more.ok and escalation in more.stderr, more.stderr
    # As upstream: a label is not a garbage collector's field, so the role is checked whole.
    label = _as(kubectl, ids, UPDATER, "label", "role", "secret-reader", "-n", NS, "team=x")
    assert not label.ok and escalation in label.stderr, label.stderr
    remove = _as(kubectl, ids, UPDATER, "patch", "role", "secret-reader", "-n", NS, "--type=json",
                 "-p", '[{"op":"remove","path":"/metadata/finalizers"},{"op":"remove","path":"/metadata/ownerReferences"}]')
    assert remove.ok, remove.stderr
    stored = json.loads(kubectl.ok("get", "role", "secret-reader", "-n", NS, "-o", "json"))
    assert "finalizers" not in stored["metadata"] and "labels" not in stored["metadata"]
    assert stored["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]


# -- 2. streaming pod subresources need `create` -------------------------------------------------


def _raw(server, ids, who: str, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    ctx = ssl.create_default_context(cafile=pki.pki_paths(server.data_dir).ca_cert)
    ctx.check_hostname = False
    ctx.load_cert_chain(ids[who][1], ids[who][2])
    conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=ctx, timeout=20)
    try:
        conn.request(method, path, headers=headers)
        r = conn.getresponse()
        return r.status, r.read(4096).decode(errors="replace")
    finally:
        conn.close()


_WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
              "Sec-WebSocket-Protocol": "v5.channel.k8s.io, v4.channel.k8s.io"}
_SPDY = {"Connection": "Upgrade", "Upgrade": "SPDY/3.1", "X-Stream-Protocol-Version": "v4.channel.k8s.io"}
_PATHS = {"exec": f"/api/v1/namespaces/{NS}/pods/p/exec?command=true&stdout=true",
          "attach": f"/api/v1/namespaces/{NS}/pods/p/attach?stdout=true",
          "portforward": f"/api/v1/namespaces/{NS}/pods/p/portforward?ports=80"}


def _forbidden(user: str, sub: str) -> str:
    return (f'pods "p" is forbidden: User "{user}" cannot create resource "pods/{sub}" in API group "" '
            f'in the namespace "{NS}"')


@pytest.mark.parametrize("sub", ["exec", "attach", "portforward"])
@pytest.mark.parametrize("method, headers", [("GET", _WEBSOCKET), ("POST", _SPDY)], ids=["websocket", "spdy"])
def test_streaming_subresources_need_create_whatever_the_protocol(server, ids, sub, method, headers):
    status, body = _raw(server, ids, GETTER, method, _PATHS[sub], headers)
    assert status == 403, body
    doc = json.loads(body)
    assert doc["reason"] == "Forbidden" and doc["message"] == _forbidden(GETTER, sub)
    assert doc["details"] == {"name": "p", "kind": "pods"}
    status, body = _raw(server, ids, CREATOR, method, _PATHS[sub], headers)
    assert status != 403 and "forbidden" not in body.lower(), (status, body)


def test_kubectl_exec_and_port_forward_follow_create(kubectl, ids):
    r = _as(kubectl, ids, GETTER, "exec", "p", "-n", NS, "--", "true")
    assert not r.ok and _forbidden(GETTER, "exec") in r.stderr, r.stderr
    r = _as(kubectl, ids, CREATOR, "exec", "p", "-n", NS, "--", "true")
    assert not r.ok and HOSTLESS in r.stderr and "forbidden" not in r.stderr.lower(), r.stderr
    for who, verb, allowed in ((GETTER, "create", "no"), (CREATOR, "create", "yes"), (GETTER, "get", "yes")):
        answer = _as(kubectl, ids, who, "auth", "can-i", verb, "pods", "--subresource=exec", "-n", NS)
        assert answer.stdout.strip() == allowed, (who, verb, answer)


# -- 3. the kubelet's pod tokens: extended, as upstream -----------------------------------------


def _claims(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def _token_request(kubectl, ns: str, sa: str, spec: dict) -> dict:
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    out = kubectl.ok("create", "--raw", f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token", "-f", "-",
                     stdin=json.dumps(body))
    return json.loads(out)


def _seconds_until(stamp: str, since: int) -> int:
    return int(time.mktime(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone) - since


def _whoami(kubectl, token: str) -> dict:
    server = kubectl.server
    kc = Path(server.data_dir) / "token.kc"
    kc.write_text(yaml.safe_dump(pki.kubeconfig_dict(pki.read_ca_pem(pki.pki_paths(server.data_dir)), server.url,
                                                     token=token)))
    r = kubectl("--kubeconfig", str(kc), "auth", "whoami", "-o", "json")
    assert r.ok, r.stderr
    return json.loads(r.stdout)["status"]["userInfo"]


def test_a_3607_second_pod_token_lives_a_year_and_says_when_it_is_stale(kubectl, ids):
    pod_ref = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
    answer = _token_request(kubectl, NS, "bot", {"expirationSeconds": 3607, "boundObjectRef": pod_ref})
    claims = _claims(answer["status"]["token"])
    assert claims["exp"] - claims["iat"] == YEAR
    assert claims["kubernetes.io"]["warnafter"] - claims["iat"] == 3607
    assert claims["kubernetes.io"]["pod"]["name"] == "p"
    assert abs(_seconds_until(answer["status"]["expirationTimestamp"], claims["iat"]) - 3607) <= 1
    # The token authenticates as the pod's account, bound to the pod.
    whoami = _whoami(kubectl, answer["status"]["token"])
    assert whoami["username"] == f"system:serviceaccount:{NS}:bot"
    assert whoami["extra"]["authentication.kubernetes.io/pod-name"] == ["p"]
    # Any other request is not extended.
    answer = _token_request(kubectl, NS, "bot", {"expirationSeconds": 3600, "boundObjectRef": pod_ref})
    claims = _claims(answer["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3600 and "warnafter" not in claims["kubernetes.io"]
    token = kubectl.ok("create", "token", "bot", "-n", NS, "--duration=3607s").strip()
    assert _claims(token)["exp"] - _claims(token)["iat"] == 3607, "not pod-bound: not extended"


# -- 4. a server with its own issuer ---------------------------------------------------------------


ISSUER, OLD_ISSUER = "https://issuer.example.com/kyb", "https://old-issuer.example.com"


@pytest.fixture(scope="module")
def issuer_server():
    srv = ServerProcess(extra_args=[
        "--disable-controllers", "--disable-scheduler",
        "--service-account-issuer", ISSUER, "--service-account-issuer", OLD_ISSUER,
        "--api-audiences", f"api.example.com,{ISSUER}",
        "--service-account-max-token-expiration", "2h",
        "--no-service-account-extend-token-expiration"])
    srv.start()
    yield srv
    srv.cleanup()


def test_a_custom_issuer_signs_tokens_and_names_itself_in_discovery(issuer_server):
    k = issuer_server.kubectl
    assert k("create", "namespace", "team").ok
    assert k("create", "serviceaccount", "bot", "-n", "team").ok
    r = k("create", "token", "bot", "-n", "team", "--duration=5h")
    assert r.ok, r.stderr
    token = r.stdout.strip()
    claims = _claims(token)
    assert claims["iss"] == ISSUER
    assert claims["aud"] == ["api.example.com", ISSUER]
    assert claims["exp"] - claims["iat"] == 2 * 3600, "capped by --service-account-max-token-expiration"
    # The token authenticates: its audience is the API server's.
    kc = Path(issuer_server.data_dir) / "bot.kc"
    paths = pki.pki_paths(issuer_server.data_dir)
    kc.write_text(yaml.safe_dump(pki.kubeconfig_dict(pki.read_ca_pem(paths), issuer_server.url, token=token)))
    whoami = k("--kubeconfig", str(kc), "auth", "whoami", "-o", "json")
    assert whoami.ok, whoami.stderr
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "system:serviceaccount:team:bot"
    # A token for another audience does not.
    other = k("create", "token", "bot", "-n", "team", "--audience=vault").stdout.strip()
    assert _claims(other)["aud"] == ["vault"]
    kc.write_text(yaml.safe_dump(pki.kubeconfig_dict(pki.read_ca_pem(paths), issuer_server.url, token=other)))
    assert not k("--kubeconfig", str(kc), "auth", "whoami").ok
    doc = json.loads(k("get", "--raw", "/.well-known/openid-configuration").stdout)
    assert doc["issuer"] == ISSUER
    assert doc["jwks_uri"].endswith("/openid/v1/jwks")
    jwks = json.loads(k("get", "--raw", "/openid/v1/jwks").stdout)
    assert any(key["kid"] for key in jwks["keys"])


def test_extension_can_be_turned_off(issuer_server):
    k = issuer_server.kubectl
    k("create", "namespace", "team")
    k("create", "serviceaccount", "bot", "-n", "team")
    assert k("run", "p", "--image=busybox", "--restart=Never", "-n", "team", "--overrides",
             json.dumps({"spec": {"serviceAccountName": "bot"}})).ok
    body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
            "spec": {"expirationSeconds": 3607, "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": "p"}}}
    r = k("create", "--raw", "/api/v1/namespaces/team/serviceaccounts/bot/token", "-f", "-", stdin=json.dumps(body))
    assert r.ok, r.stderr
    claims = _claims(json.loads(r.stdout)["status"]["token"])
    assert claims["exp"] - claims["iat"] == 3607 and "warnafter" not in claims["kubernetes.io"]
