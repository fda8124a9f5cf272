"""The cluster's bootstrap data: what every server of one cluster must share, kept in the store.

Owns the server token's format, the list of shared files, how they are sealed with the token
(scrypt key, AES-256-GCM) and kept under ``/bootstrap/<id>`` (outside ``/registry``: the API
never serves it), and the three-way reconciliation between a server's files and the store's copy.

The shared files (paths relative to the data dir): the cluster CA, the etcd CA, the
ServiceAccount signing keys, the admin bearer token, static tokens and the default
encryption-at-rest configuration. Certificates each server issues for itself (serving, peer,
client) are not shared: every server issues them from the shared CAs.

Token format, as k3s writes it: ``K10<hex sha256 of the CA's public key>::server:<secret>``;
a bare ``<secret>`` is the same cluster token, without the CA pin. Only the secret keys the data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

PREFIX = "/bootstrap/"
TOKEN_FILE = "token"
# What every server must hold the same copy of. Paths relative to the data dir.
SHARED_FILES = (
    "pki/ca.crt",
    "pki/ca.key",
    "pki/admin.token",
    "pki/tokens.csv",
    "pki/sa.key",
    "pki/sa.pub",
    "pki/etcd/ca.crt",
    "pki/etcd/ca.key",
    "encryption-config.yaml",
)
# Digests of the files as last agreed with the store: tells which side changed since.
SYNCED_FILE = "pki/bootstrap-synced.json"
FORMAT_VERSION = 1
# scrypt at n=2**15 takes ~0.1 s here: cheap once per start, costly for a guesser.
SCRYPT_N = 2**15
SCRYPT_R = 8
SCRYPT_P = 1


class BootstrapError(ValueError):
    """The bootstrap data cannot be used (wrong token, damaged, conflicting files)."""


class WrongToken(BootstrapError):
    """The data was sealed with another token."""


# -- the token ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerToken:
    secret: str
    ca_hash: str = ""  # "sha256:<hex>" when the token pins the CA

    def full(self) -> str:
        """The k3s-style token (with the CA pin if known)."""
        if not self.ca_hash:
            return self.secret
        return f"K10{self.ca_hash.partition(':')[2]}::server:{self.secret}"


def parse_token(token: str) -> ServerToken:
    """A `--token` value: ``K10<hex>::<user>:<secret>`` or a bare secret. ValueError if empty
    or malformed."""
    token = token.strip()
    if not token:
        raise ValueError("empty token")
    if token.startswith("K10") and "::" in token:
        digest, _, cred = token[3:].partition("::")
        _user, sep, secret = cred.partition(":")
        if len(digest) != 64 or any(c not in "0123456789abcdefABCDEF" for c in digest) or not sep or not secret:
            raise ValueError("token: want K10<64 hex digits>::server:<secret> or a bare secret")
        return ServerToken(secret, "sha256:" + digest.lower())
    if any(c.isspace() for c in token) or ":" in token:
        raise ValueError("token: a bare token may not hold ':' or spaces")
    return ServerToken(token)


def new_secret() -> str:
    return secrets.token_hex(16)


def token_matches(secret: str, presented: str) -> bool:
    """Whether `presented` (a full or bare token) carries `secret`; constant time."""
    try:
        got = parse_token(presented).secret
    except ValueError:
        return False
    return hmac.compare_digest(got.encode(), secret.encode())


def storage_key(secret: str) -> str:
    """Where the data sealed with `secret` lives: a hash of the secret, never the secret."""
    return PREFIX + hashlib.sha256(b"kyb-bootstrap:" + secret.encode()).hexdigest()[:16]


# -- sealing -----------------------------------------------------------------------------------


def _key(secret: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P).derive(secret.encode())


def seal(files: Mapping[str, bytes], secret: str) -> bytes:
    """The files, encrypted and authenticated with a key derived from `secret`."""
    plain = json.dumps({"v": FORMAT_VERSION,
                        "files": {p: base64.b64encode(d).decode() for p, d in sorted(files.items())}}).encode()
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_key(secret, salt)).encrypt(nonce, plain, b"kyb-bootstrap")
    return json.dumps({"v": FORMAT_VERSION, "kdf": "scrypt", "salt": base64.b64encode(salt).decode(),
                       "nonce": base64.b64encode(nonce).decode(),
                       "data": base64.b64encode(sealed).decode()}).encode()


def unseal(blob: bytes, secret: str) -> dict[str, bytes]:
    """The files sealed in `blob`; WrongToken if `secret` did not seal it, BootstrapError if damaged."""
    try:
        doc = json.loads(blob)
        if doc.get("v") != FORMAT_VERSION or doc.get("kdf") != "scrypt":
            raise BootstrapError(f"bootstrap data of an unknown format (v={doc.get('v')!r})")
        salt, nonce, data = (base64.b64decode(doc[k]) for k in ("salt", "nonce", "data"))
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        if isinstance(e, BootstrapError):
            raise
        raise BootstrapError(f"bootstrap data damaged: {e}") from None
    try:
        plain = AESGCM(_key(secret, salt)).decrypt(nonce, data, b"kyb-bootstrap")
    except InvalidTag:
        raise WrongToken("the cluster's bootstrap data does not open with this token") from None
    inner = json.loads(plain)
    return {p: base64.b64decode(d) for p, d in inner["files"].items() if p in SHARED_FILES}


# -- reconciliation ----------------------------------------------------------------------------


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Plan:
    """What to do so that the server's files and the store agree."""

    to_disk: dict[str, bytes] = field(default_factory=dict)  # take the store's copy
    to_store: bool = False  # write the local files (all of them) to the store
    conflicts: list[str] = field(default_factory=list)

    def merged(self, local: Mapping[str, bytes]) -> dict[str, bytes]:
        """The files both sides hold once the plan is carried out."""
        return {**local, **self.to_disk}


def plan(local: Mapping[str, bytes], stored: Mapping[str, bytes] | None, base: Mapping[str, str]) -> Plan:
    """Reconcile file by file, `base` being the digests both sides held at the last sync.

    No data in the store yet: it gets the local files. A file only one side changed since
    `base` takes that side's copy; one that both changed differently is a conflict. Without a
    `base` (a server that never synced, e.g. one started on an existing store) the store wins.
    """
    if stored is None:
        return Plan(to_store=True)
    out = Plan()
    for path in sorted(set(local) | set(stored)):
        mine, theirs = local.get(path), stored.get(path)
        if mine == theirs:
            continue
        was = base.get(path)
        if theirs is None:
            out.to_store = True  # e.g. a static token file added on one server: share it
        elif mine is None or was is None or digest(mine) == was:
            out.to_disk[path] = theirs
        elif digest(theirs) == was:
            out.to_store = True
        else:
            out.conflicts.append(path)
    return out
