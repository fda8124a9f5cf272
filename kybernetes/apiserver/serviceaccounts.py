"""ServiceAccount tokens in the API server: the signing keys on disk, issuing and
checking tokens against the watch cache, the OIDC discovery documents, and the
ServiceAccount admission of new pods.

Keys live in `<data_dir>/pki/`: `sa.key` is the private key that signs new tokens
(ECDSA P-256, 0600), `sa.pub` the PEM bundle of every public key whose tokens are
still accepted (0600). Both are re-read when they change (checked at most once a
second), so keys rotate without a restart:

    kyb rotate-sa-key --data-dir DIR

writes a new key pair: its public key is appended to `sa.pub` first, then `sa.key` is
replaced. Tokens signed by the old key keep working while its public key stays in
`sa.pub`; remove that PEM block once the old tokens have expired (pod tokens live an
hour; legacy Secret tokens never expire, so recreate those Secrets first).

Who signs and who is accepted come from `TokenOptions` (`kyb server
--service-account-issuer URL` — repeatable: the first signs, all are accepted, so an
issuer can be changed without invalidating the old one's tokens — `--api-audiences`,
`--service-account-max-token-expiration`, `--service-account-extend-token-expiration`).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kybernetes.api import serviceaccounts as sat
from kybernetes.api.errors import ApiError
from kybernetes.api.names import random_suffix
from kybernetes.api.registry import ResourceInfo
from kybernetes.apiserver.auth import UserInfo
from kybernetes.apiserver.watchcache import WatchCache

KEY_FILE = "sa.key"
PUB_FILE = "sa.pub"
RELOAD_INTERVAL = 1.0
# Verified signatures remembered (by token digest), so a client reusing its token pays
# one dictionary lookup and the liveness checks instead of an ECDSA verify per request.
VERIFIED_CACHE_SIZE = 4096
# How long the admission waits for a new namespace's `default` ServiceAccount, which the
# controller creates right after the namespace (upstream's admission retries likewise).
DEFAULT_SA_GRACE = 5.0

_KEYS = {"ServiceAccount": "serviceaccounts", "Pod": "pods", "Secret": "secrets", "Node": "nodes"}
# The server's token options (re-exported for the server's wiring).
TokenOptions = sat.TokenOptions


def _write_private(path: str, data: bytes) -> None:
    """Write atomically, 0600 from the first byte."""
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _private_pem(key: sat.PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_pem(key: sat.PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def parse_public_bundle(data: bytes) -> list[sat.PublicKey]:
    """Every public key of a PEM bundle (blocks that are not public keys are skipped)."""
    out: list[sat.PublicKey] = []
    marker = b"-----END PUBLIC KEY-----"
    for block in data.split(marker):
        if b"-----BEGIN PUBLIC KEY-----" not in block:
            continue
        try:
            key = serialization.load_pem_public_key(block.strip() + b"\n" + marker + b"\n")
        except ValueError:
            continue
        if isinstance(key, sat.PublicKey):
            out.append(key)
    return out


def load_private_key(path: str) -> sat.PrivateKey:
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, sat.PrivateKey):
        raise ValueError(f"{path}: not an ECDSA or RSA private key")
    return key


def ensure_signing_key(pki_dir: str) -> None:
    """A signing key pair in `pki_dir` (made once); the public bundle always holds the
    current key's public half."""
    key_path, pub_path = os.path.join(pki_dir, KEY_FILE), os.path.join(pki_dir, PUB_FILE)
    os.makedirs(pki_dir, mode=0o700, exist_ok=True)
    try:
        key = load_private_key(key_path)
    except (FileNotFoundError, ValueError):
        key = ec.generate_private_key(ec.SECP256R1())
        _add_public(pub_path, key.public_key())
        _write_private(key_path, _private_pem(key))
        return
    _add_public(pub_path, key.public_key())


def _add_public(pub_path: str, public: sat.PublicKey) -> None:
    try:
        with open(pub_path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        data = b""
    if any(sat.key_id(k) == sat.key_id(public) for k in parse_public_bundle(data)):
        return
    if data and not data.endswith(b"\n"):
        data += b"\n"
    _write_private(pub_path, data + _public_pem(public))


def rotate_signing_key(pki_dir: str) -> str:
    """A new signing key; the old public keys stay trusted. Returns the new key's kid."""
    key = ec.generate_private_key(ec.SECP256R1())
    # The public half first: a server reading between the two writes must already
    # accept what the new key signs.
    _add_public(os.path.join(pki_dir, PUB_FILE), key.public_key())
    _write_private(os.path.join(pki_dir, KEY_FILE), _private_pem(key))
    return sat.key_id(key.public_key())


class SigningKeys:
    """The key files of `pki_dir`, re-read when they change."""

    def __init__(self, pki_dir: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.key_path = os.path.join(pki_dir, KEY_FILE)
        self.pub_path = os.path.join(pki_dir, PUB_FILE)
        self._clock = clock
        self._checked = float("-inf")
        self._stamp: tuple[Any, ...] = ()
        self._private: sat.PrivateKey | None = None
        self._public: dict[str, sat.PublicKey] = {}
        self.generation = 0

    def _file_stamp(self) -> tuple[Any, ...]:
        out: list[Any] = []
        for path in (self.key_path, self.pub_path):
            try:
                st = os.stat(path)
                out.append((st.st_ino, st.st_mtime_ns, st.st_size))
            except FileNotFoundError:
                out.append(None)
        return tuple(out)

    def refresh(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._checked < RELOAD_INTERVAL:
            return
        self._checked = now
        stamp = self._file_stamp()
        if stamp == self._stamp:
            return
        try:
            private = load_private_key(self.key_path)
        except (FileNotFoundError, ValueError):
            private = None
        try:
            with open(self.pub_path, "rb") as f:
                public = {sat.key_id(k): k for k in parse_public_bundle(f.read())}
        except FileNotFoundError:
            public = {}
        if private is not None:
            public.setdefault(sat.key_id(private.public_key()), private.public_key())
        self._stamp, self._private, self._public = stamp, private, public
        self.generation += 1

    @property
    def private_key(self) -> sat.PrivateKey:
        self.refresh()
        if self._private is None:
            raise ApiError.internal(f"no service account signing key in {self.key_path}")
        return self._private

    @property
    def public_keys(self) -> dict[str, sat.PublicKey]:
        self.refresh()
        return self._public


class ServiceAccountTokens:
    """Issues and checks ServiceAccount tokens; live objects come from the watch cache."""

    def __init__(self, keys: SigningKeys, cache: WatchCache, options: sat.TokenOptions | None = None,
                 jwks_uri: str | None = None, clock: Callable[[], float] = time.time) -> None:
        self.keys = keys
        self.cache = cache
        self.options = options or sat.TokenOptions()
        # The first issuer signs; tokens of every one of them are accepted.
        self.issuer = self.options.issuer
        self.issuers = (*self.options.issuers, sat.LEGACY_ISSUER)
        self.audiences = self.options.audiences
        self.jwks_uri = jwks_uri
        self.clock = clock
        self._verified: OrderedDict[bytes, tuple[int, dict[str, Any] | None]] = OrderedDict()

    # -- reading live objects

    def lookup(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        plural = _KEYS.get(kind)
        if plural is None or not name:
            return None
        key = f"/registry/core/{plural}/{namespace}/{name}" if namespace else f"/registry/core/{plural}/{name}"
        co = self.cache.get(key)
        return co.obj if co is not None else None

    # -- issuing

    def now(self) -> int:
        return int(self.clock())

    def sign(self, claims: dict[str, Any]) -> str:
        return sat.sign(claims, self.keys.private_key)

    # -- checking

    def _claims(self, token: str) -> dict[str, Any] | None:
        digest = hashlib.sha256(token.encode()).digest()
        self.keys.refresh()
        hit = self._verified.get(digest)
        if hit is not None and hit[0] == self.keys.generation:
            self._verified.move_to_end(digest)
            return hit[1]
        claims = sat.verified_claims(token, self.keys.public_keys)
        self._verified[digest] = (self.keys.generation, claims)
        if len(self._verified) > VERIFIED_CACHE_SIZE:
            self._verified.popitem(last=False)
        return claims

    def review(self, token: str, audiences: list[str] | None = None) -> sat.TokenUser | str:
        """The user a token authenticates as for `audiences` (default: the API
        server's), or the reason it does not."""
        if not sat.looks_like_jwt(token):
            return "invalid bearer token"
        claims = self._claims(token)
        if claims is None:
            return "invalid bearer token"
        return sat.check_claims(claims, self.now(), self.issuers, audiences or self.audiences,
                                self.lookup, token)

    def authenticate(self, token: str) -> UserInfo | None:
        found = self.review(token)
        if isinstance(found, str):
            return None
        return UserInfo(username=found.username, uid=found.uid, groups=list(found.groups),
                        extra={k: list(v) for k, v in found.extra.items()})

    # -- OIDC discovery

    def openid_configuration(self) -> dict[str, Any]:
        return sat.openid_configuration(self.issuer, self.keys.public_keys.values(), self.jwks_uri)

    def jwks(self) -> dict[str, Any]:
        return sat.jwks(self.keys.public_keys.values())


class ServiceAccountAdmission:
    """Upstream's ServiceAccount admission plugin for new pods: the pod's account must
    exist (a new namespace's `default` gets a short grace), and unless automounting is
    off the pod gets the `kube-api-access-*` volume."""

    def __init__(self, tokens: ServiceAccountTokens, grace: float = DEFAULT_SA_GRACE) -> None:
        self.tokens = tokens
        self.grace = grace

    async def mutate_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        if info.group != "" or info.plural != "pods" or sat.is_mirror_pod(obj):
            return
        meta = obj.get("metadata") or {}
        namespace, pod_name = meta.get("namespace") or "", meta.get("name") or ""
        spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
        name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        sa = self.tokens.lookup("ServiceAccount", namespace, name)
        if sa is None and name == "default":
            deadline = time.monotonic() + self.grace
            while sa is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                sa = self.tokens.lookup("ServiceAccount", namespace, name)
        if sa is None:
            raise ApiError.forbidden(f'pods "{pod_name}" is forbidden: error looking up service account '
                                     f'{namespace}/{name}: serviceaccount "{name}" not found', "", "pods", pod_name)
        sat.admit_pod(obj, sa, random_suffix())
