"""Request authentication: who is calling.

Owns mapping a request's credentials (a verified TLS client certificate or a bearer token) to a
``UserInfo`` the way kube-apiserver does, the static token file format, and the SelfSubjectReview
body. Authorization (what that user may do) lives elsewhere.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import NameOID

from kybernetes.api.kinds.base import Requester
from kybernetes.api.kinds.reviews import ANONYMOUS_USER, user_info
from kybernetes.apiserver.pki import ADMIN_GROUP, ADMIN_USER, Pki

AUTHENTICATED_GROUP = "system:authenticated"
UNAUTHENTICATED_GROUP = "system:unauthenticated"


@dataclass
class UserInfo:
    username: str
    uid: str = ""
    groups: list[str] = field(default_factory=list)
    extra: dict[str, list[str]] = field(default_factory=dict)


def anonymous_user() -> UserInfo:
    return UserInfo(username=ANONYMOUS_USER, groups=[UNAUTHENTICATED_GROUP])


def is_anonymous(user: UserInfo) -> bool:
    return user.username == ANONYMOUS_USER


def with_authenticated_group(user: UserInfo) -> UserInfo:
    """A copy of ``user`` carrying ``system:authenticated``, as kube-apiserver adds to everyone it knows."""
    groups = list(user.groups)
    if AUTHENTICATED_GROUP not in groups:
        groups.append(AUTHENTICATED_GROUP)
    return UserInfo(
        username=user.username,
        uid=user.uid,
        groups=groups,
        extra={k: list(v) for k, v in user.extra.items()},
    )


# ---------------------------------------------------------------------------------------------
# Pure parsing


def parse_bearer(authorization_header: str | None) -> str | None:
    """The token of a ``Bearer`` Authorization header, or None when there is none.

    Like kube-apiserver, other schemes and an empty token count as "no token" rather than a bad one,
    so such requests fall through to anonymous instead of being rejected.
    """
    if not authorization_header:
        return None
    parts = authorization_header.strip().split(" ", 2)
    if len(parts) < 2 or parts[0].lower() != "bearer" or not parts[1]:
        return None
    return parts[1]


def parse_token_csv(text: str) -> dict[str, UserInfo]:
    """Parse a kube-apiserver static token file: ``token,user,uid[,"group1,group2"]`` per line."""
    tokens: dict[str, UserInfo] = {}
    for lineno, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record or (len(record) == 1 and not record[0].strip()) or record[0].startswith("#"):
            continue
        if len(record) < 3:
            raise ValueError(
                f"token file line {lineno}: need at least 3 columns (token, user name, user uid), "
                f"found {len(record)}"
            )
        token, name, uid = record[0], record[1], record[2]
        if not token:
            continue
        groups = [g for g in record[3].split(",") if g] if len(record) >= 4 else []
        tokens[token] = UserInfo(username=name, uid=uid, groups=groups)
    return tokens


def _subject_values(subject: Any, wanted: str) -> list[str]:
    """Attribute values named ``wanted`` from the ``getpeercert()`` subject shape.

    That shape is a tuple of RDNs, each a tuple of (name, value) pairs; multi-valued RDNs occur.
    """
    out: list[str] = []
    for rdn in subject or ():
        for pair in rdn:
            if len(pair) == 2 and pair[0] == wanted:
                out.append(str(pair[1]))
    return out


def user_from_peercert_dict(peercert: Mapping[str, Any]) -> UserInfo | None:
    """User from a verified ``SSLObject.getpeercert()`` dict; None without a usable CN."""
    subject = peercert.get("subject")
    cns = _subject_values(subject, "commonName")
    if not cns or not cns[0]:
        return None
    return UserInfo(username=cns[0], groups=_subject_values(subject, "organizationName"))


def user_from_certificate(cert: x509.Certificate) -> UserInfo | None:
    """User from a certificate: CN is the name, the O values are the groups."""
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not cns or not cns[0].value:
        return None
    orgs = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return UserInfo(username=str(cns[0].value), groups=[str(o.value) for o in orgs])


def certificate_trusted(cert: x509.Certificate, ca: x509.Certificate, now: dt.datetime | None = None) -> bool:
    """Whether ``cert`` is a currently valid client certificate directly signed by ``ca``."""
    now = now or dt.datetime.now(dt.UTC)
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _is_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


class TokenVerifier(Protocol):
    """Signed tokens whose answer can change over time (ServiceAccount JWTs: they expire,
    their bound objects go away): see apiserver/serviceaccounts.py."""

    def authenticate(self, token: str) -> UserInfo | None: ...

    def review(self, token: str, audiences: list[str] | None = None) -> Any:
        """A TokenReview's answer: the user with the audiences the token matched, or an error string."""
        ...

    @property
    def audiences(self) -> list[str]: ...


class BootstrapVerifier(Protocol):
    """Bootstrap tokens, valid while their Secret says so: see apiserver/bootstraptokens.py."""

    def authenticate(self, token: str) -> UserInfo | None: ...


_BOOTSTRAP_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


# ---------------------------------------------------------------------------------------------


class Authenticator:
    """Maps request credentials to users.

    Tokens are kept only as SHA-256 digests and looked up by digest. Any timing difference in the
    lookup then depends on the digest of the guess, which tells an attacker nothing about how close
    the guess is to a valid token, so this is as safe as ``hmac.compare_digest`` against every entry
    while staying O(1) as service-account tokens accumulate.
    """

    def __init__(
        self,
        pki: Pki | None = None,
        tokens: Mapping[str, UserInfo] | None = None,
        tokens_file: str | None = None,
    ) -> None:
        self._tokens: dict[bytes, UserInfo] = {}
        self._ca: x509.Certificate | None = None
        # Set by the server once it can read ServiceAccounts (its watch cache).
        self.service_accounts: TokenVerifier | None = None
        # Set likewise: bootstrap tokens (`<id>.<secret>`) checked against their Secrets.
        self.bootstrap_tokens: BootstrapVerifier | None = None
        if pki is not None:
            with open(pki.ca_cert, "rb") as f:
                self._ca = x509.load_pem_x509_certificate(f.read())
            if pki.admin_token:
                self.add_token(pki.admin_token, UserInfo(username=ADMIN_USER, groups=[ADMIN_GROUP]))
            if tokens_file is None:
                tokens_file = pki.tokens_file
        if tokens_file is not None:
            try:
                with open(tokens_file, encoding="utf-8") as f:
                    text = f.read()
            except FileNotFoundError:
                text = ""
            for token, user in parse_token_csv(text).items():
                self.add_token(token, user)
        for token, user in (tokens or {}).items():
            self.add_token(token, user)

    def add_token(self, token: str, user: UserInfo) -> None:
        if not token:
            raise ValueError("empty token")
        self._tokens[_digest(token)] = with_authenticated_group(user)

    def remove_token(self, token: str) -> None:
        self._tokens.pop(_digest(token), None)

    def authenticate_token(self, token: str) -> UserInfo | None:
        user = self._tokens.get(_digest(token))
        if user is None and self.service_accounts is not None and _is_jwt(token):
            user = self.service_accounts.authenticate(token)
        if user is None and self.bootstrap_tokens is not None and _BOOTSTRAP_TOKEN.match(token):
            user = self.bootstrap_tokens.authenticate(token)
        return with_authenticated_group(user) if user is not None else None

    def cacheable(self, authorization_header: str | None) -> bool:
        """Whether the answer for this header may be remembered for a connection: not for
        a signed token, which may expire or lose its bound object while the connection lives."""
        token = parse_bearer(authorization_header)
        if token is not None and _BOOTSTRAP_TOKEN.match(token):
            return _digest(token) in self._tokens  # expires, and dies with its Secret
        return token is None or not _is_jwt(token) or _digest(token) in self._tokens

    def authenticate_cert(self, peercert: Mapping[str, Any] | bytes | None) -> UserInfo | None:
        """User from a TLS peer certificate as ``getpeercert()`` returns it, in either form."""
        return self._cert_user(peercert)[0]

    def _cert_user(self, peercert: Mapping[str, Any] | bytes | None) -> tuple[UserInfo | None, bool]:
        """(user, rejected): rejected means a certificate was shown but is not trusted.

        The dict form is only filled in by ``ssl`` after verification; DER is returned even by
        unverifying contexts, so it is checked against the CA here when one is known.
        """
        if not peercert:
            return None, False
        if isinstance(peercert, bytes | bytearray | memoryview):
            try:
                cert = x509.load_der_x509_certificate(bytes(peercert))
            except ValueError:
                return None, True
            if self._ca is not None and not certificate_trusted(cert, self._ca):
                return None, True
            user = user_from_certificate(cert)
        else:
            user = user_from_peercert_dict(peercert)
        return (with_authenticated_group(user) if user is not None else None), False

    def authenticate(
        self, peercert: Mapping[str, Any] | bytes | None, authorization_header: str | None
    ) -> UserInfo | None:
        """The caller's identity; None means "reject with 401".

        Mirrors kube-apiserver's union of authenticators: the first credential that checks out
        wins (certificate, then bearer token); if none does and any was bad (untrusted
        certificate, unknown token) the request is rejected; with no credentials at all it is
        anonymous, and the server decides whether anonymous requests are allowed.
        """
        user, cert_rejected = self._cert_user(peercert)
        if user is not None:
            return user
        token = parse_bearer(authorization_header)
        if token is not None:
            return self.authenticate_token(token)
        return None if cert_rejected else anonymous_user()


def requester(user: UserInfo) -> Requester:
    """The request's user as the review kinds see it."""
    return Requester(username=user.username, uid=user.uid, groups=tuple(user.groups),
                     extra=tuple((k, tuple(v)) for k, v in user.extra.items()))


def self_subject_review(user: UserInfo) -> dict:
    """The ``SelfSubjectReview`` response body for ``kubectl auth whoami``."""
    return {"kind": "SelfSubjectReview", "apiVersion": "authentication.k8s.io/v1", "metadata": {},
            "status": {"userInfo": user_info(requester(user))}}
