"""ServiceAccount tokens without a server: signing and checking, expiry, audiences, key
rotation, the bound-object rules, TokenRequest, the admission's volume, the agent's
projected token and the legacy token Secrets."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes.agent.volumes import VolumeManager, token_needs_refresh
from kybernetes.api import serviceaccounts as sat
from kybernetes.api.errors import ApiError
from kybernetes.apiserver import serviceaccounts as srv
from kybernetes.controllers.satokens import plan_token_secret

NOW = 1_800_000_000
SA = {"metadata": {"name": "bot", "namespace": "team", "uid": "sa-uid"}}
POD = {"metadata": {"name": "p", "namespace": "team", "uid": "pod-uid"},
       "spec": {"serviceAccountName": "bot", "nodeName": "n1"}}
NODE = {"metadata": {"name": "n1", "uid": "node-uid"}}
SECRET = {"metadata": {"name": "s", "namespace": "team", "uid": "secret-uid"}}


def _world() -> dict[tuple[str, str, str], dict | None]:
    return {("ServiceAccount", "team", "bot"): SA, ("Pod", "team", "p"): POD, ("Node", "", "n1"): NODE,
            ("Secret", "team", "s"): SECRET}


def _lookup(world: dict):
    return lambda kind, ns, name: world.get((kind, ns, name))


KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = {sat.key_id(KEY.public_key()): KEY.public_key()}


def _check(claims: dict, world: dict | None = None, now: int = NOW, auds=(sat.DEFAULT_ISSUER,)):
    return sat.check_claims(claims, now, (sat.DEFAULT_ISSUER, sat.LEGACY_ISSUER), auds,
                            _lookup(world if world is not None else _world()))


# -- signing ------------------------------------------------------------------------------------


def test_a_signed_token_verifies_with_its_key_only():
    claims = sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 600, NOW, sat.DEFAULT_ISSUER)
    token = sat.sign(claims, KEY)
    assert jwt.get_unverified_header(token) == {"alg": "ES256", "kid": sat.key_id(KEY.public_key()), "typ": "JWT"}
    assert sat.verified_claims(token, PUBLIC) == claims
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert sat.verified_claims(token, {sat.key_id(other): other}) is None
    forged = token.rsplit(".", 1)[0] + "." + sat.sign({"sub": "x"}, KEY).rsplit(".", 1)[1]
    assert sat.verified_claims(forged, PUBLIC) is None
    assert sat.verified_claims("eyJ.not.a-token", PUBLIC) is None
    # An unsigned token ("alg": "none") is never accepted.
    unsigned = jwt.encode(claims, None, algorithm="none")
    assert sat.verified_claims(unsigned, PUBLIC) is None


def test_claims_are_upstreams():
    claims = sat.bound_claims(SA, ["api"], 3600, NOW, sat.DEFAULT_ISSUER, pod=POD, node=NODE, jti="j1")
    assert claims == {
        "aud": ["api"], "exp": NOW + 3600, "iat": NOW, "nbf": NOW, "iss": sat.DEFAULT_ISSUER, "jti": "j1",
        "sub": "system:serviceaccount:team:bot",
        "kubernetes.io": {"namespace": "team", "serviceaccount": {"name": "bot", "uid": "sa-uid"},
                          "pod": {"name": "p", "uid": "pod-uid"}, "node": {"name": "n1", "uid": "node-uid"}}}


# -- checking -----------------------------------------------------------------------------------


def test_a_pod_bound_token_authenticates_as_its_service_account_with_the_pod_extras():
    claims = sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER, pod=POD, node=NODE, jti="j1")
    user = _check(claims)
    assert isinstance(user, sat.TokenUser)
    assert user.username == "system:serviceaccount:team:bot" and user.uid == "sa-uid"
    assert user.groups == ("system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated")
    assert user.extra[sat.EXTRA_POD_NAME] == ("p",) and user.extra[sat.EXTRA_POD_UID] == ("pod-uid",)
    assert user.extra[sat.EXTRA_CREDENTIAL_ID] == ("JTI=j1",)
    assert user.extra[sat.EXTRA_NODE_NAME] == ("n1",)
    assert user.audiences == (sat.DEFAULT_ISSUER,)


def test_expired_and_wrong_audience_tokens_are_refused():
    claims = sat.bound_claims(SA, ["vault"], 600, NOW, sat.DEFAULT_ISSUER)
    assert "expired" in _check(claims, now=NOW + 600)
    assert isinstance(_check(claims, now=NOW + 599, auds=("vault",)), sat.TokenUser)
    assert "audience" in _check(claims)
    untrusted = {**sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 600, NOW, "https://elsewhere")}
    assert "issuer" in _check(untrusted)


def test_a_token_dies_with_its_service_account_or_bound_object():
    claims = sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER, pod=POD)
    recreated = {"metadata": {**SA["metadata"], "uid": "other"}}
    assert "service account" in _check(claims, _world() | {("ServiceAccount", "team", "bot"): None})
    assert "service account" in _check(claims, _world() | {("ServiceAccount", "team", "bot"): recreated})
    assert "pod" in _check(claims, _world() | {("Pod", "team", "p"): None})
    new_pod = {**POD, "metadata": {**POD["metadata"], "uid": "new"}}
    assert "pod" in _check(claims, _world() | {("Pod", "team", "p"): new_pod})
    deleting = {**POD, "metadata": {**POD["metadata"], "deletionTimestamp": "2027-01-01T00:00:00Z"}}
    assert "pod" in _check(claims, _world() | {("Pod", "team", "p"): deleting})
    by_secret = sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER, secret=SECRET)
    assert isinstance(_check(by_secret), sat.TokenUser)
    assert "secret" in _check(by_secret, _world() | {("Secret", "team", "s"): None})
    by_node = sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER, node=NODE)
    assert isinstance(_check(by_node), sat.TokenUser)
    assert "node" in _check(by_node, _world() | {("Node", "", "n1"): None})


def test_legacy_tokens_need_their_secret_holding_them():
    secret = {**SECRET, "type": sat.SA_TOKEN_SECRET_TYPE,
              "metadata": {**SECRET["metadata"], "annotations": {sat.SA_NAME_ANNOTATION: "bot"}}}
    claims = sat.legacy_claims(SA, secret)
    assert claims["iss"] == "kubernetes/serviceaccount" and "exp" not in claims
    token = sat.sign(claims, KEY)
    held = {**secret, "data": {"token": base64.b64encode(token.encode()).decode()}}
    world = _world() | {("Secret", "team", "s"): held}
    check = sat.check_claims(claims, NOW, (sat.DEFAULT_ISSUER, sat.LEGACY_ISSUER), [sat.DEFAULT_ISSUER],
                             _lookup(world), token)
    assert isinstance(check, sat.TokenUser) and check.username == "system:serviceaccount:team:bot"
    rewritten = {**secret, "data": {"token": base64.b64encode(b"other").decode()}}
    assert "another token" in sat.check_claims(claims, NOW, (sat.LEGACY_ISSUER,), [], _lookup(
        _world() | {("Secret", "team", "s"): rewritten}), token)
    assert "secret" in sat.check_claims(claims, NOW, (sat.LEGACY_ISSUER,), [], _lookup(
        _world() | {("Secret", "team", "s"): None}), token)


# -- TokenRequest -------------------------------------------------------------------------------


def _grant(body: dict, world: dict | None = None) -> sat.TokenGrant:
    return sat.plan_token_request(SA, body, _lookup(world or _world()), NOW, sat.DEFAULT_ISSUER,
                                  [sat.DEFAULT_ISSUER])


def test_token_request_defaults_an_hour_and_the_api_audience():
    grant = _grant({})
    assert grant.claims["exp"] == NOW + 3600 and grant.claims["aud"] == [sat.DEFAULT_ISSUER]
    assert grant.request["spec"] == {"audiences": [sat.DEFAULT_ISSUER], "expirationSeconds": 3600,
                                     "boundObjectRef": None}
    assert _grant({"spec": {"audiences": ["x"], "expirationSeconds": 600}}).claims["aud"] == ["x"]


def test_token_request_refuses_less_than_ten_minutes():
    with pytest.raises(ApiError) as e:
        _grant({"spec": {"expirationSeconds": 599}})
    assert e.value.code == 422 and "may not specify a duration less than 10 minutes" in e.value.message


def test_token_request_binds_only_to_a_live_object_of_the_same_account():
    ref = {"kind": "Pod", "apiVersion": "v1", "name": "p"}
    grant = _grant({"spec": {"boundObjectRef": ref}})
    assert grant.claims["kubernetes.io"]["pod"] == {"name": "p", "uid": "pod-uid"}
    assert grant.claims["kubernetes.io"]["node"] == {"name": "n1", "uid": "node-uid"}
    assert grant.request["spec"]["boundObjectRef"]["uid"] == "pod-uid"
    with pytest.raises(ApiError) as e:
        _grant({"spec": {"boundObjectRef": {**ref, "uid": "stale"}}})
    assert e.value.code == 409 and "does not match the UID in record (pod-uid)" in e.value.message
    with pytest.raises(ApiError) as e:
        _grant({"spec": {"boundObjectRef": {**ref, "name": "gone"}}})
    assert e.value.code == 404
    other = {**POD, "spec": {"serviceAccountName": "default"}}
    with pytest.raises(ApiError) as e:
        _grant({"spec": {"boundObjectRef": ref}}, _world() | {("Pod", "team", "p"): other})
    assert e.value.code == 400 and 'running with serviceaccount "default"' in e.value.message
    with pytest.raises(ApiError) as e:
        _grant({"spec": {"boundObjectRef": {"kind": "ConfigMap", "apiVersion": "v1", "name": "c"}}})
    assert e.value.code == 400 and "cannot bind token to object of type" in e.value.message


# -- keys on disk and rotation ------------------------------------------------------------------


@dataclass
class _Co:
    obj: dict


class _Cache:
    def __init__(self, objs: dict[str, dict]) -> None:
        self.objs = objs

    def get(self, key: str) -> _Co | None:
        return _Co(self.objs[key]) if key in self.objs else None


def _tokens(pki_dir: str, clock: list[float]) -> srv.ServiceAccountTokens:
    cache = _Cache({"/registry/core/serviceaccounts/team/bot": SA, "/registry/core/pods/team/p": POD})
    keys = srv.SigningKeys(pki_dir, clock=lambda: clock[0])
    return srv.ServiceAccountTokens(keys, cache, clock=lambda: NOW)  # type: ignore[arg-type]


def test_keys_are_private_and_rotate_without_a_restart(tmp_path):
    pki_dir = str(tmp_path)
    srv.ensure_signing_key(pki_dir)
    for name in (srv.KEY_FILE, srv.PUB_FILE):
        assert stat.S_IMODE(os.stat(os.path.join(pki_dir, name)).st_mode) == 0o600
    clock = [0.0]
    tokens = _tokens(pki_dir, clock)
    old = tokens.sign(sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER))
    assert tokens.authenticate(old).username == "system:serviceaccount:team:bot"
    old_kid = jwt.get_unverified_header(old)["kid"]
    new_kid = srv.rotate_signing_key(pki_dir)
    clock[0] += srv.RELOAD_INTERVAL + 0.1
    new = tokens.sign(sat.bound_claims(SA, [sat.DEFAULT_ISSUER], 3600, NOW, sat.DEFAULT_ISSUER))
    assert jwt.get_unverified_header(new)["kid"] == new_kid != old_kid
    assert tokens.authenticate(old) is not None and tokens.authenticate(new) is not None
    assert {k["kid"] for k in tokens.jwks()["keys"]} == {old_kid, new_kid}
    # Dropping the old public key from the bundle revokes its tokens, still without a restart.
    with open(os.path.join(pki_dir, srv.PUB_FILE), "rb") as f:
        bundle = srv.parse_public_bundle(f.read())
    keep = [k for k in bundle if sat.key_id(k) == new_kid]
    srv._write_private(os.path.join(pki_dir, srv.PUB_FILE), b"".join(srv._public_pem(k) for k in keep))
    clock[0] += srv.RELOAD_INTERVAL + 0.1
    assert tokens.authenticate(old) is None and tokens.authenticate(new) is not None
    # A restart keeps the key: ensure does not replace it.
    srv.ensure_signing_key(pki_dir)
    assert sat.key_id(srv.load_private_key(os.path.join(pki_dir, srv.KEY_FILE)).public_key()) == new_kid


def test_review_reports_audiences_and_reasons(tmp_path):
    srv.ensure_signing_key(str(tmp_path))
    tokens = _tokens(str(tmp_path), [0.0])
    token = tokens.sign(sat.bound_claims(SA, ["vault", "other"], 3600, NOW, sat.DEFAULT_ISSUER, pod=POD))
    assert tokens.review(token, ["vault"]).audiences == ("vault",)
    assert tokens.review(token) == "token audiences are invalid"
    assert tokens.authenticate(token) is None
    assert tokens.review("not-a-jwt") == "invalid bearer token"


def test_discovery_documents_name_the_issuer_and_only_public_keys():
    conf = sat.openid_configuration(sat.DEFAULT_ISSUER, [KEY.public_key()], "https://10.0.0.1:6443/openid/v1/jwks")
    assert conf == {"issuer": sat.DEFAULT_ISSUER, "jwks_uri": "https://10.0.0.1:6443/openid/v1/jwks",
                    "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["ES256"]}
    key = sat.jwks([KEY.public_key()])["keys"][0]
    assert set(key) == {"use", "kty", "kid", "crv", "alg", "x", "y"} and "d" not in key
    # The JWK verifies a token, as an external OIDC consumer would use it.
    token = sat.sign({"sub": "x", "aud": "a"}, KEY)
    assert jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience="a")["sub"] == "x"


# -- the admission's volume ---------------------------------------------------------------------


def _pod(**spec: Any) -> dict:
    return {"metadata": {"name": "p", "namespace": "team"},
            "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}], **spec}}


def test_admission_adds_the_api_access_volume_to_every_container():
    pod = _pod()
    sat.admit_pod(pod, SA, "abcde")
    spec = pod["spec"]
    assert spec["serviceAccountName"] == spec["serviceAccount"] == "default"
    assert spec["volumes"] == [sat.api_access_volume("kube-api-access-abcde")]
    sources = spec["volumes"][0]["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}}
    mount = {"name": "kube-api-access-abcde", "readOnly": True,
             "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    assert spec["containers"][0]["volumeMounts"] == [mount] and spec["initContainers"][0]["volumeMounts"] == [mount]


def test_automount_false_on_the_pod_or_the_account_adds_nothing():
    pod = _pod(automountServiceAccountToken=False)
    sat.admit_pod(pod, SA, "abcde")
    assert "volumes" not in pod["spec"]
    pod = _pod()
    sat.admit_pod(pod, {**SA, "automountServiceAccountToken": False}, "abcde")
    assert "volumes" not in pod["spec"]
    # The pod's own setting wins over the account's.
    pod = _pod(automountServiceAccountToken=True)
    sat.admit_pod(pod, {**SA, "automountServiceAccountToken": False}, "abcde")
    assert pod["spec"]["volumes"][0]["name"] == "kube-api-access-abcde"


def test_a_container_mounting_the_path_itself_keeps_its_mount():
    own = {"name": "mine", "mountPath": sat.MOUNT_PATH}
    pod = _pod(containers=[{"name": "a", "volumeMounts": [own]}, {"name": "b"}], initContainers=[])
    sat.admit_pod(pod, SA, "abcde")
    assert pod["spec"]["containers"][0]["volumeMounts"] == [own]
    assert pod["spec"]["containers"][1]["volumeMounts"][0]["name"] == "kube-api-access-abcde"


def test_admission_refuses_a_missing_account_and_waits_briefly_for_default(tmp_path):
    from kybernetes.api.registry import Registry

    info = Registry().get("", "v1", "pods")
    srv.ensure_signing_key(str(tmp_path))
    tokens = _tokens(str(tmp_path), [0.0])
    admission = srv.ServiceAccountAdmission(tokens, grace=0.3)
    pod = _pod(serviceAccountName="missing")
    with pytest.raises(ApiError) as e:
        asyncio.run(admission.mutate_create(info, pod))
    assert e.value.code == 403 and e.value.message == (
        'pods "p" is forbidden: error looking up service account team/missing: serviceaccount "missing" not found')

    async def late_default() -> dict:
        task = asyncio.create_task(admission.mutate_create(info, pod := _pod()))
        await asyncio.sleep(0.1)
        tokens.cache.objs["/registry/core/serviceaccounts/team/default"] = {  # type: ignore[attr-defined]
            "metadata": {"name": "default", "namespace": "team", "uid": "d"}}
        await task
        return pod

    assert asyncio.run(late_default())["spec"]["volumes"][0]["name"].startswith("kube-api-access-")


# -- the agent's projected token ----------------------------------------------------------------


def test_refresh_at_eighty_percent_or_a_day():
    assert not token_needs_refresh(0, 1000, 799)
    assert token_needs_refresh(0, 1000, 800)
    assert token_needs_refresh(0, 10 ** 6, 24 * 3600)


def test_the_agent_writes_the_token_and_refreshes_it(tmp_path):
    now = [1000.0]
    asked: list[tuple[str, str, int]] = []

    async def fetch(kind: str, ns: str, name: str) -> dict | None:
        return {"data": {"ca.crt": "CA"}} if (kind, name) == ("ConfigMap", "kube-root-ca.crt") else None

    async def token(pod: dict, audience: str, seconds: int) -> tuple[str, float]:
        asked.append((pod["metadata"]["uid"], audience, seconds))
        return f"tok{len(asked)}", now[0] + seconds

    pod = {"metadata": {"name": "p", "namespace": "team", "uid": "u1"},
           "spec": {"volumes": [sat.api_access_volume("kube-api-access-x")]}}
    vm = VolumeManager(str(tmp_path), fetch, {}, token=token, clock=lambda: now[0])
    path = asyncio.run(vm.setup(pod))["kube-api-access-x"]

    def read(name: str) -> str:
        with open(os.path.join(path, name)) as f:
            return f.read()

    assert (read("token"), read("ca.crt"), read("namespace")) == ("tok1", "CA", "team")
    assert asked == [("u1", "", 3607)]
    now[0] += 0.5 * 3607
    asyncio.run(vm.setup(pod))
    assert read("token") == "tok1" and len(asked) == 1
    now[0] += 0.31 * 3607
    asyncio.run(vm.setup(pod))
    assert read("token") == "tok2" and len(asked) == 2
    vm.teardown("u1")
    assert not os.path.exists(os.path.join(str(tmp_path), "u1"))
    assert vm._tokens == {}


# -- legacy token Secrets -----------------------------------------------------------------------


def test_the_tokens_controller_fills_only_what_is_missing_and_deletes_orphans():
    secret = {"type": sat.SA_TOKEN_SECRET_TYPE,
              "metadata": {"name": "s", "namespace": "team", "annotations": {sat.SA_NAME_ANNOTATION: "bot"}}}
    plan = plan_token_secret(secret, SA, "PEM", lambda claims: "signed:" + claims["sub"])
    assert plan.update is not None and not plan.delete
    data = {k: base64.b64decode(v).decode() for k, v in plan.update["data"].items()}
    assert data == {"token": "signed:system:serviceaccount:team:bot", "ca.crt": "PEM", "namespace": "team"}
    assert plan.update["metadata"]["annotations"][sat.SA_UID_ANNOTATION] == "sa-uid"
    assert plan_token_secret(plan.update, SA, "PEM", lambda c: "again") == type(plan)()
    assert plan_token_secret(secret, None, "PEM", str).delete
    recreated = {"metadata": {**SA["metadata"], "uid": "new"}}
    assert plan_token_secret(plan.update, recreated, "PEM", str).delete
    opaque = {**secret, "type": "Opaque"}
    assert plan_token_secret(opaque, SA, "PEM", str) == type(plan)()


def test_pods_get_the_kubernetes_service_variables_unless_they_set_them():
    from kybernetes.agent.podspec import service_env, with_service_env

    svc = {"metadata": {"name": "kubernetes"},
           "spec": {"clusterIP": "10.43.0.1", "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}}
    env = dict(service_env(svc))
    assert env == {"KUBERNETES_SERVICE_HOST": "10.43.0.1", "KUBERNETES_SERVICE_PORT": "443",
                   "KUBERNETES_SERVICE_PORT_HTTPS": "443", "KUBERNETES_PORT": "tcp://10.43.0.1:443",
                   "KUBERNETES_PORT_443_TCP": "tcp://10.43.0.1:443", "KUBERNETES_PORT_443_TCP_PROTO": "tcp",
                   "KUBERNETES_PORT_443_TCP_PORT": "443", "KUBERNETES_PORT_443_TCP_ADDR": "10.43.0.1"}
    merged = with_service_env(service_env(svc), [("KUBERNETES_SERVICE_HOST", "mine"), ("A", "1")])
    assert merged.count(("KUBERNETES_SERVICE_HOST", "mine")) == 1 and ("A", "1") in merged
    assert not any(k == "KUBERNETES_SERVICE_HOST" and v == "10.43.0.1" for k, v in merged)
    assert service_env({"metadata": {"name": "h"}, "spec": {"clusterIP": "None", "ports": [{"port": 1}]}}) == []
