"""Bootstrap tokens: short-lived bearer tokens a new node joins with (kubeadm / k3s style).

A token is `<token-id>.<token-secret>` (6 and 16 characters of [a-z0-9]) kept in a Secret
of type `bootstrap.kubernetes.io/token` named `bootstrap-token-<token-id>` in
kube-system. It authenticates as `system:bootstrap:<token-id>` in the group
`system:bootstrappers` (plus the Secret's `auth-extra-groups`) while the Secret allows
authentication and has not expired. The rules are upstream's
(plugin/pkg/auth/authenticator/token/bootstrap, k8s.io/cluster-bootstrap); all of it is
pure: the API server's shell reads the Secret from its watch cache.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from kybernetes.api.timefmt import rfc3339

NAMESPACE = "kube-system"
SECRET_TYPE = "bootstrap.kubernetes.io/token"
SECRET_PREFIX = "bootstrap-token-"
USER_PREFIX = "system:bootstrap:"
GROUP = "system:bootstrappers"
# The group kubeadm puts its join tokens in (and binds the node roles to).
DEFAULT_EXTRA_GROUP = "system:bootstrappers:kubeadm:default-node-token"

TOKEN_ID, TOKEN_SECRET = "token-id", "token-secret"
EXPIRATION, DESCRIPTION, EXTRA_GROUPS = "expiration", "description", "auth-extra-groups"
USAGE_AUTHENTICATION, USAGE_SIGNING = "usage-bootstrap-authentication", "usage-bootstrap-signing"

TOKEN_RE = re.compile(r"^([a-z0-9]{6})\.([a-z0-9]{16})$")
_ID_RE = re.compile(r"^[a-z0-9]{6}$")
_GROUP_RE = re.compile(r"^system:bootstrappers:[a-z0-9:-]{0,255}[a-z0-9]$")
_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
DEFAULT_TTL = dt.timedelta(hours=24)

Obj = dict[str, Any]


@dataclass(frozen=True)
class BootstrapUser:
    username: str
    groups: tuple[str, ...]


def parse_token(token: str) -> tuple[str, str] | None:
    """(token-id, token-secret) of a well-formed token, else None."""
    m = TOKEN_RE.match(token)
    return (m.group(1), m.group(2)) if m else None


def looks_like_token(token: str) -> bool:
    return TOKEN_RE.match(token) is not None


def secret_name(token_id: str) -> str:
    return SECRET_PREFIX + token_id


def generate_token() -> str:
    """A new random token (CSPRNG), `<id>.<secret>`."""
    pick = lambda n: "".join(secrets.choice(_ALPHABET) for _ in range(n))  # noqa: E731
    return f"{pick(6)}.{pick(16)}"


def secret_data(secret: Mapping[str, Any], key: str) -> str | None:
    """A Secret's `data` value as text (stringData is folded into data on write)."""
    raw = (secret.get("data") or {}).get(key)
    if not isinstance(raw, str):
        return None
    try:
        return base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None


def parse_time(text: str) -> dt.datetime | None:
    try:
        t = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return t if t.tzinfo is not None else None


def expiration(secret: Mapping[str, Any]) -> dt.datetime | None:
    """When the token expires; None when it never does. An unreadable `expiration` counts
    as already expired (upstream treats it so)."""
    text = secret_data(secret, EXPIRATION)
    if text is None:
        return None
    return parse_time(text) or dt.datetime.min.replace(tzinfo=dt.UTC)


def is_expired(secret: Mapping[str, Any], now: dt.datetime) -> bool:
    exp = expiration(secret)
    return exp is not None and exp <= now


def extra_groups(secret: Mapping[str, Any]) -> list[str] | None:
    """The `auth-extra-groups`; None when one of them is not a `system:bootstrappers:` group."""
    text = secret_data(secret, EXTRA_GROUPS)
    if not text:
        return []
    groups = [g.strip() for g in text.split(",") if g.strip()]
    return groups if all(_GROUP_RE.match(g) for g in groups) else None


def authenticate(token: str, secret: Mapping[str, Any] | None, now: dt.datetime) -> BootstrapUser | None:
    """Who `token` is, given the Secret named after its id (None: the token is not valid)."""
    parsed = parse_token(token)
    if parsed is None or secret is None:
        return None
    token_id, token_secret = parsed
    meta = secret.get("metadata") or {}
    if meta.get("deletionTimestamp") or secret.get("type") != SECRET_TYPE:
        return None
    if meta.get("name") != secret_name(token_id) or meta.get("namespace") != NAMESPACE:
        return None
    stored = secret_data(secret, TOKEN_SECRET)
    # Constant time: how much of a guessed secret matches must not show in the timing.
    if stored is None or not hmac.compare_digest(stored.encode(), token_secret.encode()):
        return None
    if secret_data(secret, TOKEN_ID) != token_id:
        return None
    if is_expired(secret, now) or secret_data(secret, USAGE_AUTHENTICATION) != "true":
        return None
    groups = extra_groups(secret)
    if groups is None:
        return None
    return BootstrapUser(USER_PREFIX + token_id, tuple(dict.fromkeys([GROUP, *groups])))


def token_secret(token: str, now: dt.datetime, ttl: dt.timedelta | None = DEFAULT_TTL, description: str = "",
                 groups: tuple[str, ...] = (DEFAULT_EXTRA_GROUP,), signing: bool = True) -> Obj:
    """The Secret that makes `token` valid (for `ttl`; None: forever), as kubeadm writes it."""
    parsed = parse_token(token)
    if parsed is None:
        raise ValueError("a token must be of the form [a-z0-9]{6}.[a-z0-9]{16}")
    bad = [g for g in groups if not _GROUP_RE.match(g)]
    if bad:
        raise ValueError(f"extra group {bad[0]!r} must match {_GROUP_RE.pattern}")
    string_data = {TOKEN_ID: parsed[0], TOKEN_SECRET: parsed[1], USAGE_AUTHENTICATION: "true"}
    if signing:
        string_data[USAGE_SIGNING] = "true"
    if ttl is not None:
        string_data[EXPIRATION] = rfc3339(now + ttl)
    if description:
        string_data[DESCRIPTION] = description
    if groups:
        string_data[EXTRA_GROUPS] = ",".join(groups)
    return {"apiVersion": "v1", "kind": "Secret", "type": SECRET_TYPE,
            "metadata": {"name": secret_name(parsed[0]), "namespace": NAMESPACE},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}}


def parse_duration(text: str) -> dt.timedelta | None:
    """A Go-style duration (`24h`, `90m`, `1h30m`, `0` = never expires) for `--ttl`."""
    text = text.strip()
    if text in ("0", "0s"):
        return None
    m = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", text)
    if not text or m is None:
        raise ValueError(f"invalid duration {text!r} (want e.g. 24h, 30m, 1h30m, or 0 for no expiry)")
    h, mi, s = (int(g or 0) for g in m.groups())
    return dt.timedelta(hours=h, minutes=mi, seconds=s)


def is_token_secret(secret: Mapping[str, Any]) -> bool:
    meta = secret.get("metadata") or {}
    return (secret.get("type") == SECRET_TYPE and meta.get("namespace") == NAMESPACE
            and str(meta.get("name", "")).startswith(SECRET_PREFIX))


def valid_id(token_id: str) -> bool:
    return _ID_RE.match(token_id) is not None


def ca_cert_hash(ca_pem: bytes) -> str:
    """kubeadm's `--discovery-token-ca-cert-hash` of a CA: `sha256:` and the hex SHA-256 of
    its DER SubjectPublicKeyInfo (so a re-issued CA with the same key keeps its pin)."""
    cert = x509.load_pem_x509_certificate(ca_pem)
    spki = cert.public_key().public_bytes(serialization.Encoding.DER,
                                          serialization.PublicFormat.SubjectPublicKeyInfo)
    return "sha256:" + hashlib.sha256(spki).hexdigest()


def hash_matches(ca_pem: bytes, pin: str) -> bool:
    """Whether `ca_pem` is the CA `pin` (`sha256:<hex>`) names; constant time."""
    kind, _, digest = pin.strip().partition(":")
    if kind.lower() != "sha256" or len(digest) != 64:
        raise ValueError(f"CA certificate hash {pin!r}: want sha256:<64 hex digits>")
    try:
        have = ca_cert_hash(ca_pem)
    except ValueError:
        return False
    return hmac.compare_digest(have, "sha256:" + digest.lower())


# -- the cluster-info ConfigMap: discovery for joiners, signed with the tokens --------------------
# A joiner that holds only a token reads kube-public/cluster-info (the cluster's address and CA)
# and trusts it when the `jws-kubeconfig-<token-id>` signature made with its token's secret
# checks out (upstream's bootstrapsigner, pkg/controller/bootstrap, and kubeadm's discovery).

CLUSTER_INFO_NAMESPACE = "kube-public"
CLUSTER_INFO_NAME = "cluster-info"
KUBECONFIG_KEY = "kubeconfig"
JWS_PREFIX = "jws-kubeconfig-"


def cluster_info_configmap(server_url: str, ca_pem: bytes) -> Obj:
    """The cluster-info ConfigMap as kubeadm writes it: a kubeconfig with the one unnamed
    cluster (server and CA), no users."""
    ca = base64.b64encode(ca_pem).decode()
    kubeconfig = ("apiVersion: v1\nclusters:\n- cluster:\n"
                  f"    certificate-authority-data: {ca}\n    server: {server_url}\n"
                  '  name: ""\ncontexts: null\ncurrent-context: ""\nkind: Config\npreferences: {}\nusers: null\n')
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": CLUSTER_INFO_NAME, "namespace": CLUSTER_INFO_NAMESPACE},
            "data": {KUBECONFIG_KEY: kubeconfig}}


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def detached_signature(content: str, token_id: str, token_secret: str) -> str:
    """The compact JWS (HS256, keyed by the token's secret, `kid` its id) of `content` with the
    payload left out (`header..signature`), byte for byte what upstream computes."""
    # go-jose writes the header's keys sorted and without spaces.
    header = _b64url(json.dumps({"alg": "HS256", "kid": token_id}, separators=(",", ":")).encode())
    signing_input = f"{header}.{_b64url(content.encode())}".encode()
    return f"{header}..{_b64url(hmac.new(token_secret.encode(), signing_input, hashlib.sha256).digest())}"


def signing_token(secret: Mapping[str, Any], now: dt.datetime) -> tuple[str, str] | None:
    """(token-id, token-secret) when `secret` is a live token allowed to sign cluster-info."""
    if not is_token_secret(secret) or (secret.get("metadata") or {}).get("deletionTimestamp"):
        return None
    token_id, token_secret_ = secret_data(secret, TOKEN_ID), secret_data(secret, TOKEN_SECRET)
    if not token_id or not token_secret_ or secret_name(token_id) != (secret.get("metadata") or {}).get("name"):
        return None
    if is_expired(secret, now) or secret_data(secret, USAGE_SIGNING) != "true":
        return None
    return token_id, token_secret_


def signed_cluster_info_data(configmap: Mapping[str, Any], secrets_: list[Mapping[str, Any]],
                             now: dt.datetime) -> dict[str, str] | None:
    """cluster-info's data with one signature per signing token (stale ones dropped), or None
    when it is already so (or there is no kubeconfig to sign)."""
    data = dict(configmap.get("data") or {})
    content = data.get(KUBECONFIG_KEY)
    if content is None:
        return None
    want = {k: v for k, v in data.items() if not k.startswith(JWS_PREFIX)}
    for secret in secrets_:
        token = signing_token(secret, now)
        if token is not None:
            want[JWS_PREFIX + token[0]] = detached_signature(content, *token)
    return None if want == data else want
