"""kube-public/cluster-info and its signatures (upstream's `[Feature:BootstrapTokens]` specs):
the ConfigMap the server writes, the detached JWS each signing token adds, and the
bootstrap signer keeping exactly one signature per live signing token."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json

from kybernetes.api import bootstraptoken as bt
from kybernetes.client.resources import CONFIGMAPS, SECRETS
from kybernetes.controllers.bootstrapsigner import KEY, BootstrapSigner
from kybernetes.testing.fakes import FakeClient, FakeInformers

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _cluster_info() -> dict:
    return bt.cluster_info_configmap("https://192.0.2.2:6443", b"-----BEGIN CERTIFICATE-----\nX\n")


def test_cluster_info_is_a_kubeconfig_with_the_server_and_ca() -> None:
    import yaml

    cm = _cluster_info()
    assert (cm["metadata"]["namespace"], cm["metadata"]["name"]) == ("kube-public", "cluster-info")
    doc = yaml.safe_load(cm["data"]["kubeconfig"])
    cluster = doc["clusters"][0]["cluster"]
    assert cluster["server"] == "https://192.0.2.2:6443"
    assert base64.b64decode(cluster["certificate-authority-data"]).startswith(b"-----BEGIN CERTIFICATE-----")
    assert doc["kind"] == "Config" and not doc["users"]


def test_detached_signature_verifies_with_the_token_secret() -> None:
    sig = bt.detached_signature("content", "abcdef", "0123456789abcdef")
    header, payload, mac = sig.split(".")
    assert payload == ""
    assert json.loads(_unb64(header)) == {"alg": "HS256", "kid": "abcdef"}
    signing_input = f"{header}.{base64.urlsafe_b64encode(b'content').rstrip(b'=').decode()}".encode()
    assert _unb64(mac) == hmac.new(b"0123456789abcdef", signing_input, hashlib.sha256).digest()
    assert bt.detached_signature("content", "abcdef", "ffffffffffffffff") != sig


def _token(token: str, **changes: str | None) -> dict:
    secret = bt.token_secret(token, NOW, dt.timedelta(hours=1))
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            secret["data"].pop(key, None)
        else:
            secret["data"][key] = base64.b64encode(value.encode()).decode()
    return secret


def test_only_live_signing_tokens_sign() -> None:
    cm = _cluster_info()
    good = _token("abcdef.0123456789abcdef")
    data = bt.signed_cluster_info_data(cm, [good, _token("bbbbbb.0123456789abcdef", usage_bootstrap_signing=None),
                                            _token("cccccc.0123456789abcdef", expiration="2020-01-01T00:00:00Z")],
                                       NOW)
    assert data is not None
    assert sorted(k for k in data if k.startswith("jws-")) == ["jws-kubeconfig-abcdef"]
    assert data["kubeconfig"] == cm["data"]["kubeconfig"]
    signed = {**cm, "data": data}
    assert bt.signed_cluster_info_data(signed, [good], NOW) is None
    # A token gone: its signature goes too; a changed kubeconfig: signatures are made again.
    assert bt.signed_cluster_info_data(signed, [], NOW) == cm["data"]
    changed = {**signed, "data": {**data, "kubeconfig": "other"}}
    assert bt.signed_cluster_info_data(changed, [good], NOW)["jws-kubeconfig-abcdef"] != data["jws-kubeconfig-abcdef"]
    assert bt.signed_cluster_info_data({"data": {}}, [good], NOW) is None


async def test_the_signer_writes_and_removes_signatures() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    client.add(CONFIGMAPS, _cluster_info())
    client.add(SECRETS, _token("abcdef.0123456789abcdef"))
    signer = BootstrapSigner(client, informers, clock=lambda: NOW)
    result = await signer.sync(KEY)
    stored = client.stored(CONFIGMAPS, "kube-public", "cluster-info")
    assert "jws-kubeconfig-abcdef" in stored["data"]
    assert 3500 < result.requeue_after < 3700  # back when the token expires
    await client.delete(SECRETS, "kube-system", "bootstrap-token-abcdef")
    await signer.sync(KEY)
    stored = client.stored(CONFIGMAPS, "kube-public", "cluster-info")
    assert not [k for k in stored["data"] if k.startswith("jws-")]
    writes = len(client.calls_of("update"))
    await signer.sync(KEY)
    assert len(client.calls_of("update")) == writes  # nothing to change, nothing written
