"""ServiceAccount tokens against a real `kyb server`, driven by real kubectl and the
official Python client: `kubectl create token`, tokens used as credentials, the tokens
refused (expired, forged, wrongly signed, wrong audience, bound to a deleted pod), the
OIDC discovery endpoints, TokenReview, legacy token Secrets, key rotation and the
`kube-api-access-*` volume of new pods."""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes.api import serviceaccounts as sat
from kybernetes.apiserver.serviceaccounts import load_private_key

NS = "sa-tokens"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"


@pytest.fixture(scope="module")
def ns(kubectl):
    kubectl.ok("create", "namespace", NS)
    kubectl.ok("-n", NS, "create", "serviceaccount", "bot")
    yield NS
    kubectl("delete", "namespace", NS, "--wait=false")


def _ca(server) -> str:
    return os.path.join(server.data_dir, "pki", "ca.crt")


def _call(server, token: str, path: str = WHOAMI, method: str = "POST", body: dict | None = None,
          url: str | None = None) -> tuple[int, dict]:
    """A request with nothing but the bearer token (no client certificate)."""
    if body is None and method == "POST":
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    req = urllib.request.Request((url or server.url) + path, method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=_ca(server))
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def _user(server, token: str) -> dict:
    code, out = _call(server, token)
    assert code == 201, (code, out)
    return out["status"]["userInfo"]


def _token_kubeconfig(server, tmp_path, token: str) -> str:
    """A kubeconfig whose only credential is `token`."""
    path = str(tmp_path / "token-kubeconfig.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "sa",
                        "clusters": [{"name": "c", "cluster": {"server": server.url,
                                                               "certificate-authority": _ca(server)}}],
                        "users": [{"name": "sa", "user": {"token": token}}],
                        "contexts": [{"name": "sa", "context": {"cluster": "c", "user": "sa", "namespace": NS}}]},
                       f)
    return path


def _create_token(kubectl, *args: str) -> str:
    return kubectl.ok("-n", NS, "create", "token", "bot", *args).strip()


def _sign_with_server_key(server, claims: dict) -> str:
    return sat.sign(claims, load_private_key(os.path.join(server.data_dir, "pki", "sa.key")))


def _sa_uid(kubectl) -> str:
    return json.loads(kubectl.ok("-n", NS, "get", "sa", "bot", "-o", "json"))["metadata"]["uid"]


# -- TokenRequest and using the token ------------------------------------------------------------


def test_kubectl_create_token_gives_a_token_that_authenticates_as_the_service_account(
        kubectl, server, ns, tmp_path):
    token = _create_token(kubectl, "--duration", "10m")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["iss"] == "https://kubernetes.default.svc.cluster.local"
    assert claims["aud"] == ["https://kubernetes.default.svc.cluster.local"]
    assert claims["sub"] == f"system:serviceaccount:{NS}:bot"
    assert claims["exp"] - claims["iat"] == 600
    assert claims["kubernetes.io"]["serviceaccount"] == {"name": "bot", "uid": _sa_uid(kubectl)}
    # kubectl with nothing but the token.
    r = kubectl("--kubeconfig", _token_kubeconfig(server, tmp_path, token), "auth", "whoami", "-o", "json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)["status"]["userInfo"]
    assert info["username"] == f"system:serviceaccount:{NS}:bot" and info["uid"] == _sa_uid(kubectl)
    assert info["groups"] == ["system:serviceaccounts", f"system:serviceaccounts:{NS}", "system:authenticated"]
    assert list(info["extra"]) == ["authentication.kubernetes.io/credential-id"]


def test_the_python_client_requests_and_uses_a_token(server, ns, k8s_client):
    from kubernetes import client

    answer = client.CoreV1Api(k8s_client).create_namespaced_service_account_token(
        "bot", NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=["vault"], expiration_seconds=1200)))
    assert answer.spec.audiences == ["vault"] and answer.spec.expiration_seconds == 1200
    assert answer.status.token.count(".") == 2 and answer.status.expiration_timestamp is not None
    token = client.CoreV1Api(k8s_client).create_namespaced_service_account_token(
        "bot", NS, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec())).status.token
    cfg = client.Configuration()
    cfg.host, cfg.ssl_ca_cert = server.url, _ca(server)
    cfg.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(cfg) as api:
        review = client.AuthenticationV1Api(api).create_self_subject_review(
            client.V1SelfSubjectReview(metadata=client.V1ObjectMeta()))
        assert review.status.user_info.username == f"system:serviceaccount:{NS}:bot"


def test_durations_under_ten_minutes_and_unknown_accounts_are_refused(kubectl, ns):
    r = kubectl("-n", NS, "create", "token", "bot", "--duration", "5m")
    assert r.returncode != 0
    assert "spec.expirationSeconds: Invalid value: 300: may not specify a duration less than 10 minutes" in r.stderr
    r = kubectl("-n", NS, "create", "token", "nobody")
    assert r.returncode != 0 and 'serviceaccounts "nobody" not found' in r.stderr


def test_rejected_tokens_get_401(kubectl, server, ns):
    good = _create_token(kubectl)
    assert _user(server, good)["username"] == f"system:serviceaccount:{NS}:bot"
    now = int(time.time())
    sa = {"metadata": {"name": "bot", "namespace": NS, "uid": _sa_uid(kubectl)}}
    expired = _sign_with_server_key(server, sat.bound_claims(sa, [sat.DEFAULT_ISSUER], 600, now - 700,
                                                             sat.DEFAULT_ISSUER))
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub"] = "system:serviceaccount:kube-system:admin"
    forged = ".".join([header, base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("="),
                       signature])
    stranger = sat.sign(sat.bound_claims(sa, [sat.DEFAULT_ISSUER], 3600, now, sat.DEFAULT_ISSUER),
                        ec.generate_private_key(ec.SECP256R1()))
    other_audience = _create_token(kubectl, "--audience", "https://vault.example")
    for name, token in (("expired", expired), ("forged", forged), ("wrongly signed", stranger),
                        ("wrong audience", other_audience)):
        code, out = _call(server, token)
        assert code == 401 and out["reason"] == "Unauthorized", (name, code, out)


def test_a_token_bound_to_a_pod_dies_with_the_pod(kubectl, server, ns):
    kubectl.ok("-n", NS, "run", "bound", "--image", "busybox:1.35", "--overrides",
               json.dumps({"spec": {"serviceAccountName": "bot"}}))
    pod_uid = json.loads(kubectl.ok("-n", NS, "get", "pod", "bound", "-o", "json"))["metadata"]["uid"]
    token = _create_token(kubectl, "--bound-object-kind", "Pod", "--bound-object-name", "bound")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["kubernetes.io"]["pod"] == {"name": "bound", "uid": pod_uid}
    extra = _user(server, token)["extra"]
    assert extra["authentication.kubernetes.io/pod-name"] == ["bound"]
    assert extra["authentication.kubernetes.io/pod-uid"] == [pod_uid]
    # A stale uid is a conflict, as upstream answers it.
    r = kubectl("-n", NS, "create", "token", "bot", "--bound-object-kind", "Pod", "--bound-object-name", "bound",
                "--bound-object-uid", "00000000-0000-0000-0000-000000000000")
    assert r.returncode != 0 and "does not match the UID in record" in r.stderr
    kubectl.ok("-n", NS, "delete", "pod", "bound", "--grace-period=0", "--force")
    code, _ = _call(server, token)
    assert code == 401
    r = kubectl("-n", NS, "create", "token", "bot", "--bound-object-kind", "Pod", "--bound-object-name", "bound")
    assert r.returncode != 0 and 'pods "bound" not found' in r.stderr


def test_a_token_dies_with_its_service_account(kubectl, server, ns):
    kubectl.ok("-n", NS, "create", "serviceaccount", "shortlived")
    token = kubectl.ok("-n", NS, "create", "token", "shortlived").strip()
    assert _user(server, token)["username"] == f"system:serviceaccount:{NS}:shortlived"
    kubectl.ok("-n", NS, "delete", "serviceaccount", "shortlived")
    # Recreated under the same name: another account, the old token stays dead.
    kubectl.ok("-n", NS, "create", "serviceaccount", "shortlived")
    assert _call(server, token)[0] == 401


def test_token_review_answers_with_the_audiences(kubectl, ns):
    token = _create_token(kubectl, "--audience", "vault", "--audience", "other")
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
              "spec": {"token": token, "audiences": ["vault"]}}
    out = json.loads(kubectl.ok("create", "-o", "json", "-f", "-", stdin=json.dumps(review)))
    assert out["status"]["authenticated"] is True and out["status"]["audiences"] == ["vault"]
    assert out["status"]["user"]["username"] == f"system:serviceaccount:{NS}:bot"
    review["spec"]["audiences"] = []
    out = json.loads(kubectl.ok("create", "-o", "json", "-f", "-", stdin=json.dumps(review)))
    assert out["status"]["authenticated"] is False and "audience" in out["status"]["error"]


# -- OIDC discovery and rotation ------------------------------------------------------------------


def test_oidc_discovery_serves_the_issuer_and_public_keys_that_verify_tokens(kubectl, ns):
    conf = json.loads(kubectl.ok("get", "--raw", "/.well-known/openid-configuration"))
    assert conf["issuer"] == "https://kubernetes.default.svc.cluster.local"
    assert conf["jwks_uri"].endswith("/openid/v1/jwks") and conf["response_types_supported"] == ["id_token"]
    assert conf["subject_types_supported"] == ["public"] and conf["id_token_signing_alg_values_supported"] == ["ES256"]
    keys = json.loads(kubectl.ok("get", "--raw", "/openid/v1/jwks"))["keys"]
    assert keys and all("d" not in k for k in keys)
    token = _create_token(kubectl, "--audience", "external")
    kid = jwt.get_unverified_header(token)["kid"]
    key = jwt.PyJWK(next(k for k in keys if k["kid"] == kid)).key
    claims = jwt.decode(token, key, algorithms=["ES256"], audience="external", issuer=conf["issuer"])
    assert claims["sub"] == f"system:serviceaccount:{NS}:bot"


def test_rotating_the_key_keeps_old_tokens_working_without_a_restart(kubectl, server, ns):
    old = _create_token(kubectl)
    out = subprocess.run([sys.executable, "-m", "kybernetes.cli.main", "rotate-sa-key", "--data-dir",
                          server.data_dir], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    time.sleep(1.5)
    new = _create_token(kubectl)
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    assert _user(server, old)["username"] == _user(server, new)["username"] == f"system:serviceaccount:{NS}:bot"
    kids = {k["kid"] for k in json.loads(kubectl.ok("get", "--raw", "/openid/v1/jwks"))["keys"]}
    assert {jwt.get_unverified_header(t)["kid"] for t in (old, new)} <= kids


# -- legacy Secret tokens --------------------------------------------------------------------------


def test_a_service_account_token_secret_is_filled_and_revoked_with_it(kubectl, server, ns):
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/service-account-token",
              "metadata": {"name": "bot-legacy", "annotations": {"kubernetes.io/service-account.name": "bot"}}}
    kubectl.ok("-n", NS, "apply", "-f", "-", stdin=json.dumps(secret))
    deadline = time.monotonic() + 30
    data: dict = {}
    while time.monotonic() < deadline:
        obj = json.loads(kubectl.ok("-n", NS, "get", "secret", "bot-legacy", "-o", "json"))
        data = obj.get("data") or {}
        if {"token", "ca.crt", "namespace"} <= set(data):
            break
        time.sleep(0.3)
    assert {"token", "ca.crt", "namespace"} <= set(data), data
    assert base64.b64decode(data["namespace"]).decode() == NS
    with open(_ca(server), "rb") as f:
        assert base64.b64decode(data["ca.crt"]) == f.read()
    assert obj["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == _sa_uid(kubectl)
    token = base64.b64decode(data["token"]).decode()
    assert jwt.decode(token, options={"verify_signature": False})["iss"] == "kubernetes/serviceaccount"
    assert _user(server, token)["username"] == f"system:serviceaccount:{NS}:bot"
    kubectl.ok("-n", NS, "delete", "secret", "bot-legacy")
    assert _call(server, token)[0] == 401
    # Nothing creates such Secrets on its own.
    types = [s["type"] for s in json.loads(kubectl.ok("-n", NS, "get", "secrets", "-o", "json"))["items"]]
    assert "kubernetes.io/service-account-token" not in types


# -- the ServiceAccount admission ------------------------------------------------------------------


def _pod_spec(kubectl, name: str) -> dict:
    return json.loads(kubectl.ok("-n", NS, "get", "pod", name, "-o", "json"))["spec"]


def test_new_pods_get_the_api_access_volume_unless_automount_is_off(kubectl, ns):
    kubectl.ok("-n", NS, "run", "auto", "--image", "busybox:1.35")
    spec = _pod_spec(kubectl, "auto")
    assert spec["serviceAccountName"] == "default"
    (vol,) = spec["volumes"]
    assert vol["name"].startswith("kube-api-access-") and len(vol["name"]) == len("kube-api-access-") + 5
    assert vol["projected"]["sources"] == [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]
    assert spec["containers"][0]["volumeMounts"] == [
        {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]
    kubectl.ok("-n", NS, "run", "off", "--image", "busybox:1.35", "--overrides",
               json.dumps({"spec": {"automountServiceAccountToken": False}}))
    assert "volumes" not in _pod_spec(kubectl, "off")
    kubectl.ok("-n", NS, "create", "serviceaccount", "quiet")
    kubectl.ok("-n", NS, "patch", "serviceaccount", "quiet", "-p", '{"automountServiceAccountToken": false}')
    kubectl.ok("-n", NS, "run", "quiet", "--image", "busybox:1.35", "--overrides",
               json.dumps({"spec": {"serviceAccountName": "quiet"}}))
    assert "volumes" not in _pod_spec(kubectl, "quiet")


def test_a_pod_naming_a_missing_account_is_refused(kubectl, ns):
    r = kubectl("-n", NS, "run", "orphan", "--image", "busybox:1.35", "--overrides",
                json.dumps({"spec": {"serviceAccountName": "ghost"}}))
    assert r.returncode != 0
    assert (f'pods "orphan" is forbidden: error looking up service account {NS}/ghost: '
            'serviceaccount "ghost" not found') in r.stderr


def test_a_pod_in_a_brand_new_namespace_waits_for_its_default_account(kubectl):
    manifest = (f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {NS}-fresh}}\n---\n"
                f"apiVersion: v1\nkind: Pod\nmetadata: {{name: first, namespace: {NS}-fresh}}\n"
                "spec: {containers: [{name: c, image: busybox:1.35}]}\n")
    try:
        kubectl.ok("apply", "-f", "-", stdin=manifest)
        spec = json.loads(kubectl.ok("-n", f"{NS}-fresh", "get", "pod", "first", "-o", "json"))["spec"]
        assert spec["serviceAccountName"] == "default" and spec["volumes"][0]["name"].startswith("kube-api-access-")
    finally:
        kubectl("delete", "namespace", f"{NS}-fresh", "--wait=false")
