"""Bootstrap tokens: upstream's validation rules, the API server's bearer-token hook, the
token cleaner and the default RBAC for bootstrappers, without a server."""

from __future__ import annotations

import base64
import datetime as dt
import os
from dataclasses import dataclass

import pytest

from kybernetes.api import bootstraptoken as bt
from kybernetes.api.rbac import Attributes, RbacIndex
from kybernetes.api.rbac_bootstrap import cluster_role_bindings, cluster_roles
from kybernetes.apiserver.auth import Authenticator
from kybernetes.apiserver.bootstraptokens import BootstrapTokens
from kybernetes.client.resources import SECRETS
from kybernetes.controllers.bootstraptokencleaner import TokenCleaner, due_in
from kybernetes.testing.fakes import FakeClient, FakeInformers

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
TOKEN = "abcdef.0123456789abcdef"


def _secret(token: str = TOKEN, **changes: str | None) -> dict:
    secret = bt.token_secret(token, NOW, dt.timedelta(hours=1), description="join")
    for key, value in changes.items():
        key = key.replace("_", "-")
        if value is None:
            secret["data"].pop(key, None)
        else:
            secret["data"][key] = base64.b64encode(value.encode()).decode()
    return secret


def test_a_generated_token_is_well_formed_and_random() -> None:
    tokens = {bt.generate_token() for _ in range(20)}
    assert len(tokens) == 20
    assert all(bt.TOKEN_RE.match(t) for t in tokens)


def test_a_valid_token_authenticates_as_its_bootstrap_user() -> None:
    user = bt.authenticate(TOKEN, _secret(), NOW)
    assert user == bt.BootstrapUser("system:bootstrap:abcdef",
                                    ("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"))


@pytest.mark.parametrize("token", ["abcdef.0123456789abcdeX", "abcdef.0123456789abcde", "ABCDEF.0123456789abcdef",
                                   "abcdef0123456789abcdef", ""])
def test_malformed_or_wrong_tokens_are_refused(token: str) -> None:
    assert bt.authenticate(token, _secret(), NOW) is None


def test_a_wrong_secret_is_refused() -> None:
    assert bt.authenticate("abcdef.ffffffffffffffff", _secret(), NOW) is None


@pytest.mark.parametrize("changes", [
    {"usage_bootstrap_authentication": None},
    {"usage_bootstrap_authentication": "false"},
    {"token_id": "zzzzzz"},
    {"token_id": None},
    {"expiration": "2026-06-01T11:59:59Z"},
    {"expiration": "not a time"},
    {"auth_extra_groups": "system:masters"},
    {"auth_extra_groups": "system:bootstrappers:ok,admins"},
])
def test_the_secret_decides_whether_the_token_is_valid(changes: dict) -> None:
    assert bt.authenticate(TOKEN, _secret(**changes), NOW) is None


def test_the_secret_must_be_a_token_secret_in_kube_system() -> None:
    wrong_type = {**_secret(), "type": "Opaque"}
    wrong_ns = _secret()
    wrong_ns["metadata"]["namespace"] = "default"
    deleting = _secret()
    deleting["metadata"]["deletionTimestamp"] = "2026-06-01T12:00:00Z"
    for secret in (wrong_type, wrong_ns, deleting, None):
        assert bt.authenticate(TOKEN, secret, NOW) is None


def test_a_token_without_expiration_never_expires() -> None:
    assert bt.authenticate(TOKEN, _secret(expiration=None), NOW + dt.timedelta(days=999)) is not None
    assert bt.authenticate(TOKEN, _secret(), NOW + dt.timedelta(hours=1)) is None


def test_token_secret_refuses_bad_input() -> None:
    with pytest.raises(ValueError):
        bt.token_secret("nope", NOW)
    with pytest.raises(ValueError):
        bt.token_secret(TOKEN, NOW, groups=("system:masters",))


@pytest.mark.parametrize(("text", "want"), [("24h", dt.timedelta(hours=24)), ("1h30m", dt.timedelta(minutes=90)),
                                            ("45s", dt.timedelta(seconds=45)), ("0", None)])
def test_ttl_durations(text: str, want: dt.timedelta | None) -> None:
    assert bt.parse_duration(text) == want


def test_a_bad_ttl_is_refused() -> None:
    with pytest.raises(ValueError):
        bt.parse_duration("tomorrow")


@dataclass
class _Cached:
    obj: dict


class _Cache:
    def __init__(self, *secrets: dict) -> None:
        self.objs = {f"/registry/core/secrets/{s['metadata']['namespace']}/{s['metadata']['name']}": s
                     for s in secrets}

    def get(self, key: str) -> _Cached | None:
        return _Cached(self.objs[key]) if key in self.objs else None


def test_the_authenticator_accepts_a_bootstrap_token_while_its_secret_allows() -> None:
    cache = _Cache(_secret())
    clock = [NOW]
    authn = Authenticator()
    authn.bootstrap_tokens = BootstrapTokens(cache, clock=lambda: clock[0])  # type: ignore[arg-type]
    user = authn.authenticate(None, f"Bearer {TOKEN}")
    assert user is not None and user.username == "system:bootstrap:abcdef"
    assert "system:bootstrappers" in user.groups and "system:authenticated" in user.groups
    # Never remembered per connection: it expires and dies with its Secret.
    assert not authn.cacheable(f"Bearer {TOKEN}")
    assert authn.authenticate(None, "Bearer abcdef.ffffffffffffffff") is None
    clock[0] = NOW + dt.timedelta(hours=2)
    assert authn.authenticate(None, f"Bearer {TOKEN}") is None
    clock[0] = NOW
    cache.objs.clear()
    assert authn.authenticate(None, f"Bearer {TOKEN}") is None


def test_due_in_says_when_a_token_secret_is_to_be_deleted() -> None:
    assert due_in(_secret(), NOW) == 3600
    assert due_in(_secret(), NOW + dt.timedelta(hours=3)) == 0
    assert due_in(_secret(expiration=None), NOW) is None
    assert due_in({**_secret(), "type": "Opaque"}, NOW) is None


async def test_the_cleaner_deletes_expired_token_secrets_only() -> None:
    informers = FakeInformers()
    client = FakeClient(informers)
    expired = _secret("aaaaaa.0123456789abcdef")
    client.add(SECRETS, _secret(), expired)
    clock = [NOW + dt.timedelta(minutes=30)]
    cleaner = TokenCleaner(client, informers, clock=lambda: clock[0])
    result = await cleaner.sync("bootstrap-token-abcdef")
    assert client.stored(SECRETS, "kube-system", "bootstrap-token-abcdef") is not None
    assert 1700 < result.requeue_after < 1900
    clock[0] = NOW + dt.timedelta(hours=1, seconds=1)
    await cleaner.sync("bootstrap-token-aaaaaa")
    assert client.stored(SECRETS, "kube-system", "bootstrap-token-aaaaaa") is None
    assert [c.name for c in client.calls_of("delete")] == ["bootstrap-token-aaaaaa"]


def _index() -> RbacIndex:
    return RbacIndex(cluster_roles=cluster_roles(), cluster_role_bindings=cluster_role_bindings())


@pytest.mark.parametrize(("verb", "resource", "sub", "allowed"), [
    ("create", "certificatesigningrequests", "", True),
    ("get", "certificatesigningrequests", "", True),
    ("watch", "certificatesigningrequests", "", True),
    ("create", "certificatesigningrequests", "nodeclient", True),
    ("create", "certificatesigningrequests", "selfnodeclient", False),
    ("update", "certificatesigningrequests", "approval", False),
    ("delete", "certificatesigningrequests", "", False),
])
def test_bootstrappers_may_ask_for_node_certificates_and_nothing_more(verb: str, resource: str, sub: str,
                                                                      allowed: bool) -> None:
    groups = ("system:bootstrappers", "system:authenticated")
    attrs = Attributes("system:bootstrap:abcdef", groups, verb, "certificates.k8s.io", resource, sub)
    assert _index().authorize(attrs).allowed is allowed
    assert not _index().authorize(Attributes("system:bootstrap:abcdef", groups, "list", "", "secrets")).allowed


def test_nodes_may_renew_their_own_client_certificates() -> None:
    attrs = Attributes("system:node:n1", ("system:nodes", "system:authenticated"), "create", "certificates.k8s.io",
                       "certificatesigningrequests", "selfnodeclient")
    assert _index().authorize(attrs).allowed


# -- joining: which CA the agent trusts, and which client certificate it keeps -----------------


def _ca_pem() -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM)


def test_the_agent_trusts_a_fetched_ca_only_when_it_matches_the_pin() -> None:
    from kybernetes.agent.join import JoinError, trusted_ca

    ca, other = _ca_pem(), _ca_pem()
    pin = bt.ca_cert_hash(ca)
    assert pin.startswith("sha256:") and len(pin) == 71
    assert trusted_ca(ca, None, pin) == ca
    assert trusted_ca(ca, None, pin.upper().replace("SHA256", "sha256")) == ca
    with pytest.raises(JoinError, match="does not match"):
        trusted_ca(other, None, pin)
    with pytest.raises(JoinError, match="unverified"):
        trusted_ca(ca, None, None)
    # A CA file given by the operator is trusted, and checked against a pin given as well.
    assert trusted_ca(None, other, None) == other
    with pytest.raises(JoinError):
        trusted_ca(None, other, pin)
    with pytest.raises(ValueError):
        trusted_ca(ca, None, "md5:abc")


def test_the_node_client_request_is_what_the_signer_and_approver_accept() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from kybernetes.agent.join import csr_object, signing_request
    from kybernetes.controllers import csrapproving

    req = csr_object("n1", signing_request(ec.generate_private_key(ec.SECP256R1()), "n1"))
    req["metadata"]["name"] = "x"
    req["spec"].update(username="system:bootstrap:abcdef", groups=["system:bootstrappers"])
    assert csrapproving.decide(req) == csrapproving.AskAccess((csrapproving.NODE_CLIENT,))


async def test_the_agent_renews_its_client_certificate_and_uses_it_for_new_connections(tmp_path, monkeypatch) -> None:
    """A renewal asks as the node, writes the new key and certificate (0600) and loads them
    into the client's TLS context; the old connection pools are handed over to be closed."""
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from kybernetes.agent import join
    from kybernetes.controllers.csrsigning import CSRS, issue

    monkeypatch.setattr(join, "CLOSE_OLD_AFTER", 0.0)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ca")])
    now = dt.datetime.now(dt.UTC)
    ca = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(ca_key.public_key())
          .serial_number(1).not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=9))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))

    class Client(FakeClient):
        ssl_context = ssl.create_default_context()
        detached = 0

        def detach_sessions(self) -> list:
            self.detached += 1
            return []

    client = Client()

    def signed(call: object) -> dict:
        obj = client.stored(CSRS, None, call.name)  # type: ignore[attr-defined]
        assert obj is not None
        return {**obj, "status": {"certificate": base64.b64encode(issue(obj, ca, ca_key, now)).decode()}}

    client.react("get", "certificatesigningrequests", signed)
    await join.renew_client_cert(client, "n1", str(tmp_path), timeout=5)  # type: ignore[arg-type]
    _, _, cert_path, key_path = join.paths(str(tmp_path))
    with open(cert_path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    with open(key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    assert cert.public_key() == key.public_key()
    assert join.cert_is_usable(cert, ca, "n1", now) and not join.cert_is_usable(cert, ca, "n2", now)
    assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"
    assert client.detached == 1
    created = client.calls_of("create", CSRS.plural)[0].body
    assert created["spec"]["signerName"] == "kubernetes.io/kube-apiserver-client-kubelet"
    assert join.renew_at(cert) < cert.not_valid_after_utc
