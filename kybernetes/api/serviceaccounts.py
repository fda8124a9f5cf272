"""ServiceAccount tokens: the rules, as pure functions.

Owns what a token says and when it is good: the claims of a bound token (TokenRequest,
`kubectl create token`) and of a legacy Secret token, JWT signing and signature checks
(PyJWT; keys are passed in, never read here), the checks a presented token must pass
(expiry, audience, the ServiceAccount and the bound Pod/Secret/Node still there with
the same uid), the user it authenticates as, the TokenRequest rules (one home for the
`serviceaccounts/token` subresource) with upstream's expiration extension of the
kubelet's pod tokens, the issuer options (`TokenOptions`: `kyb server
--service-account-issuer`, `--api-audiences`, `--service-account-max-token-expiration`,
`--service-account-extend-token-expiration`), the OIDC discovery documents and the
`kube-api-access-*` volume the ServiceAccount admission adds to pods.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from kybernetes.api import names
from kybernetes.api.errors import ApiError, invalid

Obj = dict[str, Any]
PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
# (kind, namespace, name) -> the stored object or None; kind is Pod, Secret, Node or ServiceAccount.
Lookup = Callable[[str, str, str], Obj | None]

DEFAULT_ISSUER = "https://kubernetes.default.svc.cluster.local"
LEGACY_ISSUER = "kubernetes/serviceaccount"
MIN_EXPIRATION_SECONDS = 600
DEFAULT_EXPIRATION_SECONDS = 3600
MAX_EXPIRATION_SECONDS = 2 ** 32
# The expiry the admission gives the automatic volume's token: upstream's odd 3607 marks it.
AUTOMOUNT_EXPIRATION_SECONDS = 3607
# A token the agent has not refreshed for this long is refreshed whatever its life.
MAX_TOKEN_AGE_SECONDS = 24 * 3600
# Upstream's safe transition to short-lived tokens: a pod-bound token asked for with
# exactly the automatic volume's 3607 s is good for a year, and says (`warnafter`) when
# it would have expired, so a client that never re-reads its token keeps working.
WARN_ONLY_EXPIRATION_SECONDS = AUTOMOUNT_EXPIRATION_SECONDS
EXTENDED_EXPIRATION_SECONDS = 365 * 24 * 3600
MIN_MAX_EXPIRATION_SECONDS = 3600

SA_PREFIX = "system:serviceaccount:"
ALL_SA_GROUP = "system:serviceaccounts"
AUTHENTICATED_GROUP = "system:authenticated"
SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_UID_ANNOTATION = "kubernetes.io/service-account.uid"
SA_TOKEN_SECRET_TYPE = "kubernetes.io/service-account-token"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
VOLUME_PREFIX = "kube-api-access-"
MIRROR_POD_ANNOTATION = "kubernetes.io/config.mirror"
EXTRA_POD_NAME = "authentication.kubernetes.io/pod-name"
EXTRA_POD_UID = "authentication.kubernetes.io/pod-uid"
EXTRA_NODE_NAME = "authentication.kubernetes.io/node-name"
EXTRA_NODE_UID = "authentication.kubernetes.io/node-uid"
EXTRA_CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
_BINDABLE = ("Pod", "Secret", "Node")
_LEGACY = "kubernetes.io/serviceaccount/"


# -- keys and signatures ---------------------------------------------------------------------


def key_id(public_key: PublicKey) -> str:
    """The `kid` of a public key, as kube-apiserver derives it: the unpadded base64url
    SHA-256 of its DER SubjectPublicKeyInfo (stable across restarts and servers)."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).decode().rstrip("=")


def algorithm(key: PrivateKey | PublicKey) -> str:
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        return {256: "ES256", 384: "ES384", 521: "ES512"}[key.curve.key_size]
    return "RS256"


def sign(claims: Obj, private_key: PrivateKey) -> str:
    return jwt.encode(claims, private_key, algorithm=algorithm(private_key),  # type: ignore[arg-type]
                      headers={"kid": key_id(private_key.public_key())})


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and token.startswith("eyJ")


def verified_claims(token: str, public_keys: Mapping[str, PublicKey]) -> Obj | None:
    """The claims of a token signed by one of `public_keys` (by kid; every key when the
    header names none), else None. Time and audience are checked by `check_claims`."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        return None
    kid = header.get("kid")
    candidates = [public_keys[kid]] if isinstance(kid, str) and kid in public_keys else (
        list(public_keys.values()) if not kid else [])
    alg = header.get("alg")
    for key in candidates:
        if alg != algorithm(key):
            continue
        try:
            claims = jwt.decode(token, key, algorithms=[alg],  # type: ignore[arg-type]
                                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                                         "verify_aud": False, "verify_iss": False})
        except jwt.PyJWTError:
            continue
        return claims if isinstance(claims, dict) else None
    return None


# -- the claims of new tokens --------------------------------------------------------------------


def _meta(obj: Obj) -> Obj:
    meta = obj.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _ref(obj: Obj) -> Obj:
    return {"name": _meta(obj).get("name", ""), "uid": _meta(obj).get("uid", "")}


def bound_claims(sa: Obj, audiences: list[str], expiration_seconds: int, now: int, issuer: str,
                 pod: Obj | None = None, secret: Obj | None = None, node: Obj | None = None,
                 jti: str | None = None, warn_after: int = 0) -> Obj:
    """The claims of a TokenRequest's token, as kube-apiserver's `Claims` writes them;
    a pod-bound token also names the pod's node (KEP-4193). `warn_after`: seconds after
    which an extended token is stale (the `warnafter` claim)."""
    namespace = _meta(sa).get("namespace", "")
    private: Obj = {"namespace": namespace, "serviceaccount": _ref(sa)}
    if warn_after:
        private["warnafter"] = now + warn_after
    if pod is not None:
        private["pod"] = _ref(pod)
    if secret is not None:
        private["secret"] = _ref(secret)
    if node is not None:
        private["node"] = _ref(node)
    return {"aud": list(audiences), "exp": now + expiration_seconds, "iat": now, "iss": issuer,
            "jti": jti or str(uuid.uuid4()), "kubernetes.io": private, "nbf": now,
            "sub": f"{SA_PREFIX}{namespace}:{_meta(sa).get('name', '')}"}


def legacy_claims(sa: Obj, secret: Obj) -> Obj:
    """The claims of a never-expiring Secret token (upstream's tokens controller)."""
    namespace = _meta(sa).get("namespace", "")
    return {"iss": LEGACY_ISSUER, _LEGACY + "namespace": namespace,
            _LEGACY + "secret.name": _meta(secret).get("name", ""),
            _LEGACY + "service-account.name": _meta(sa).get("name", ""),
            _LEGACY + "service-account.uid": _meta(sa).get("uid", ""),
            "sub": f"{SA_PREFIX}{namespace}:{_meta(sa).get('name', '')}"}


# -- checking presented tokens ---------------------------------------------------------------------


@dataclass(frozen=True)
class TokenUser:
    username: str
    uid: str
    groups: tuple[str, ...]
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    audiences: tuple[str, ...] = ()
    # Unix time after which the answer must be worked out again (0: never by itself).
    expires: int = 0


def sa_groups(namespace: str) -> tuple[str, ...]:
    return (ALL_SA_GROUP, f"{ALL_SA_GROUP}:{namespace}", AUTHENTICATED_GROUP)


def _audiences(claims: Obj) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


def _alive(lookup: Lookup, kind: str, namespace: str, ref: Any) -> Obj | None:
    """The object a token names, if it exists with the uid the token recorded."""
    if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
        return None
    obj = lookup(kind, namespace, ref["name"])
    if obj is None or _meta(obj).get("uid") != ref.get("uid"):
        return None
    if kind != "ServiceAccount" and _meta(obj).get("deletionTimestamp"):
        # Upstream refuses a pod-bound token once the pod is being deleted.
        return None
    return obj


def check_claims(claims: Obj, now: int, issuers: Iterable[str], audiences: Iterable[str],
                 lookup: Lookup, token: str = "") -> TokenUser | str:
    """The user a signature-checked token authenticates as, or why it does not (the
    error TokenReview reports). `audiences`: those the caller accepts; the token must
    name one of them, and the answer carries the ones it names."""
    iss = claims.get("iss")
    if iss == LEGACY_ISSUER and LEGACY_ISSUER in issuers:
        return _check_legacy(claims, audiences, lookup, token)
    if not isinstance(iss, str) or iss not in issuers:
        return "token issuer is not trusted"
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, int) or now >= exp:
        return "service account token has expired"
    if isinstance(nbf, int) and now < nbf - 60:
        return "service account token is not valid yet"
    wanted = list(audiences)
    matched = tuple(a for a in _audiences(claims) if a in wanted)
    if not matched:
        return "token audiences are invalid"
    private = claims.get("kubernetes.io")
    if not isinstance(private, dict) or not isinstance(private.get("namespace"), str):
        return "token has no namespace claim"
    namespace = private["namespace"]
    sa = _alive(lookup, "ServiceAccount", namespace, private.get("serviceaccount"))
    if sa is None:
        return "service account token is invalid: the service account no longer exists or was recreated"
    extra: dict[str, tuple[str, ...]] = {}
    if "pod" in private:
        if _alive(lookup, "Pod", namespace, private["pod"]) is None:
            return "service account token has been invalidated: the pod it is bound to no longer exists"
        extra[EXTRA_POD_NAME] = (private["pod"]["name"],)
        extra[EXTRA_POD_UID] = (private["pod"]["uid"],)
    if "secret" in private and _alive(lookup, "Secret", namespace, private["secret"]) is None:
        return "service account token has been invalidated: the secret it is bound to no longer exists"
    node = private.get("node")
    if isinstance(node, dict):
        if "pod" not in private and _alive(lookup, "Node", "", node) is None:
            return "service account token has been invalidated: the node it is bound to no longer exists"
        extra[EXTRA_NODE_NAME] = (str(node.get("name", "")),)
        extra[EXTRA_NODE_UID] = (str(node.get("uid", "")),)
    if isinstance(claims.get("jti"), str):
        extra[EXTRA_CREDENTIAL_ID] = (f"JTI={claims['jti']}",)
    return TokenUser(username=f"{SA_PREFIX}{namespace}:{_meta(sa).get('name', '')}", uid=_meta(sa).get("uid", ""),
                     groups=sa_groups(namespace), extra=extra, audiences=matched, expires=exp)


def _check_legacy(claims: Obj, audiences: Iterable[str], lookup: Lookup, token: str) -> TokenUser | str:
    namespace = claims.get(_LEGACY + "namespace")
    sa_name = claims.get(_LEGACY + "service-account.name")
    secret_name = claims.get(_LEGACY + "secret.name")
    if not all(isinstance(v, str) and v for v in (namespace, sa_name, secret_name)):
        return "token is missing service account claims"
    assert isinstance(namespace, str) and isinstance(sa_name, str) and isinstance(secret_name, str)
    sa = _alive(lookup, "ServiceAccount", namespace,
                {"name": sa_name, "uid": claims.get(_LEGACY + "service-account.uid")})
    if sa is None:
        return "service account token is invalid: the service account no longer exists or was recreated"
    secret = lookup("Secret", namespace, secret_name)
    if secret is None or _meta(secret).get("deletionTimestamp"):
        return "service account token has been invalidated: its secret no longer exists"
    if token and not secret_holds_token(secret, token):
        return "service account token has been invalidated: its secret holds another token"
    # Legacy tokens have no audience: they are good for the API server's own (implicit).
    return TokenUser(username=f"{SA_PREFIX}{namespace}:{sa_name}", uid=_meta(sa).get("uid", ""),
                     groups=sa_groups(namespace), audiences=tuple(audiences))


def secret_holds_token(secret: Obj | None, token: str) -> bool:
    """Whether a legacy token is still the one its Secret holds (a rewritten Secret revokes it)."""
    data = (secret or {}).get("data") or {}
    stored = data.get("token") if isinstance(data, dict) else None
    if not isinstance(stored, str):
        return False
    try:
        return secrets.compare_digest(base64.b64decode(stored), token.encode())
    except ValueError:
        return False


# -- TokenRequest (serviceaccounts/<name>/token) -------------------------------------------------


@dataclass(frozen=True)
class TokenOptions:
    """How the API server issues and accepts ServiceAccount tokens (kube-apiserver's
    flags of the same names). The first issuer signs; every one is accepted."""

    issuers: tuple[str, ...] = (DEFAULT_ISSUER,)
    # Audiences the API server accepts and defaults new tokens to; empty: the issuer.
    api_audiences: tuple[str, ...] = ()
    # Longest token a TokenRequest gets, in seconds (None: 2^32).
    max_expiration: int | None = None
    extend_expiration: bool = True

    @property
    def issuer(self) -> str:
        return self.issuers[0]

    @property
    def audiences(self) -> list[str]:
        return list(self.api_audiences or (self.issuer,))

    def problems(self) -> list[str]:
        """What is wrong with these options, worded as kube-apiserver words it."""
        out: list[str] = []
        if not self.issuers:
            out.append("service-account-issuer is a required flag")
        seen: set[str] = set()
        for issuer in self.issuers:
            if not issuer:
                out.append("service-account-issuer should not be an empty string")
            elif ":" in issuer and not _is_url(issuer):
                out.append(f'service-account-issuer "{issuer}" contained a \':\' but was not a valid URL')
            if issuer in seen:
                out.append(f'service-account-issuer "{issuer}" is already specified')
            seen.add(issuer)
        if any(not a for a in self.api_audiences):
            out.append("api-audiences should not contain an empty string")
        if self.max_expiration is not None and not (
                MIN_MAX_EXPIRATION_SECONDS <= self.max_expiration <= MAX_EXPIRATION_SECONDS):
            out.append("the service-account-max-token-expiration must be between 1 hour and 2^32 seconds")
        return out

    def to_dict(self) -> Obj:
        return {"issuers": list(self.issuers), "api_audiences": list(self.api_audiences),
                "max_expiration": self.max_expiration, "extend_expiration": self.extend_expiration}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TokenOptions:
        return cls(issuers=tuple(d.get("issuers") or (DEFAULT_ISSUER,)),
                   api_audiences=tuple(d.get("api_audiences") or ()), max_expiration=d.get("max_expiration"),
                   extend_expiration=bool(d.get("extend_expiration", True)))


def _is_url(text: str) -> bool:
    # Go's url.Parse accepts nearly anything; what it refuses is a bad scheme or host.
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return False
    scheme = text.split(":", 1)[0]
    return bool(scheme) and scheme[0].isalpha() and all(c.isalnum() or c in "+-." for c in scheme) and (
        not parts.netloc or " " not in parts.netloc)


def parse_duration_seconds(text: str) -> int:
    """A Go duration (`48h`, `1h30m`, `3600s`) or plain seconds, as whole seconds."""
    from kybernetes.api.kinds.batch import go_duration_seconds

    text = text.strip()
    seconds = float(text) if text.isdigit() else go_duration_seconds(text)
    if seconds is None or seconds < 0:
        raise ValueError(f"invalid duration {text!r} (want e.g. 48h, 90m, 3600s)")
    return int(seconds)


def extends(options: TokenOptions | None, pod_bound: bool, expiration: int, audiences: Iterable[str]) -> bool:
    """Whether a TokenRequest gets upstream's extended expiration: it is on, the token is
    bound to a pod, asked for exactly 3607 s, and only for the API server's audiences."""
    if options is None or not options.extend_expiration or not pod_bound:
        return False
    api = set(options.audiences)
    return expiration == WARN_ONLY_EXPIRATION_SECONDS and all(a in api for a in audiences)


class TokenIssuer(Protocol):
    """What the TokenRequest rules need from the server: live objects, the time, a signer
    and its options."""

    issuer: str
    audiences: list[str]
    options: TokenOptions

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None: ...

    def now(self) -> int: ...

    def sign(self, claims: Obj) -> str: ...


@dataclass(frozen=True)
class TokenGrant:
    """What a TokenRequest asked for, checked: the claims to sign and how to answer."""

    claims: Obj
    request: Obj


def plan_token_request(sa: Obj, body: Obj, lookup: Lookup, now: int, issuer: str,
                       api_audiences: list[str], max_expiration: int | None = None,
                       options: TokenOptions | None = None) -> TokenGrant:
    """The rules of a TokenRequest for `sa` (already read): the spec validated and
    defaulted, the bound object read and matched. Raises ApiError as kube-apiserver does.
    `options` (the server's): its maximum expiration and the extension of pod tokens."""
    spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
    exp = spec.get("expirationSeconds")
    if exp is None or exp == 0:
        exp = DEFAULT_EXPIRATION_SECONDS
    if not isinstance(exp, int) or isinstance(exp, bool):
        raise ApiError.bad_request("spec.expirationSeconds must be an integer")
    errors = []
    if exp < MIN_EXPIRATION_SECONDS:
        errors.append(invalid("spec.expirationSeconds", exp, "may not specify a duration less than 10 minutes"))
    if exp > MAX_EXPIRATION_SECONDS:
        errors.append(invalid("spec.expirationSeconds", exp, "may not specify a duration larger than 2^32 seconds"))
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        errors.append(invalid("spec.audiences", str(audiences), "must be a list of strings"))
    if errors:
        raise ApiError.invalid("authentication.k8s.io", "TokenRequest", _meta(sa).get("name", ""), errors)
    if max_expiration is None and options is not None:
        max_expiration = options.max_expiration
    if max_expiration is not None:
        exp = min(exp, max_expiration)
    audiences = list(audiences) or list(api_audiences)
    namespace = _meta(sa).get("namespace", "")
    bound: dict[str, Obj] = {}
    ref = spec.get("boundObjectRef")
    if isinstance(ref, dict) and (ref.get("kind") or ref.get("name")):
        kind, api_version, name = ref.get("kind") or "", ref.get("apiVersion") or "", ref.get("name") or ""
        if kind not in _BINDABLE or api_version not in ("v1", ""):
            group = api_version.rsplit("/", 1)[0] if "/" in api_version else ""
            version = api_version.rsplit("/", 1)[-1]
            raise ApiError.bad_request(f"cannot bind token to object of type {group}/{version}, Kind={kind}")
        obj = lookup(kind, "" if kind == "Node" else namespace, name)
        if obj is None:
            raise ApiError.not_found("", kind.lower() + "s", name)
        if kind == "Pod":
            pod_sa = (obj.get("spec") or {}).get("serviceAccountName") or "default"
            if pod_sa != _meta(sa).get("name"):
                raise ApiError.bad_request(f'cannot bind token for serviceaccount "{_meta(sa).get("name")}" '
                                           f'to pod running with serviceaccount "{pod_sa}"')
        uid = _meta(obj).get("uid", "")
        if ref.get("uid") and ref["uid"] != uid:
            raise ApiError.conflict("", kind, name, f"the UID in the bound object reference ({ref['uid']}) does not "
                                    f"match the UID in record ({uid}). The object might have been deleted and "
                                    "then recreated")
        bound[kind.lower()] = obj
        if kind == "Pod":
            node_name = (obj.get("spec") or {}).get("nodeName")
            node = lookup("Node", "", node_name) if node_name else None
            if node is not None:
                bound["node"] = node
        ref = {"kind": kind, "apiVersion": "v1", "name": name, "uid": uid}
    # The token may outlive what the answer says (upstream's extension); the answer's
    # expirationTimestamp is always the asked-for life, so the kubelet refreshes on time.
    warn_after, token_exp = 0, exp
    if extends(options, "pod" in bound, exp, audiences):
        warn_after, token_exp = exp, EXTENDED_EXPIRATION_SECONDS
    claims = bound_claims(sa, audiences, token_exp, now, issuer, pod=bound.get("pod"), secret=bound.get("secret"),
                          node=bound.get("node"), warn_after=warn_after)
    out_spec: Obj = {"audiences": audiences, "expirationSeconds": exp, "boundObjectRef": ref if bound else None}
    request = {"kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
               "metadata": {"name": _meta(sa).get("name", ""), "namespace": namespace, "creationTimestamp": None},
               "spec": out_spec}
    return TokenGrant(claims, request)


def _rfc3339(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def issue_token(sa: Obj, body: Obj, issuer: TokenIssuer) -> Obj:
    """The answer to a TokenRequest for `sa`: the request with its token and expiry."""
    grant = plan_token_request(sa, body, issuer.lookup, issuer.now(), issuer.issuer, issuer.audiences,
                               options=issuer.options)
    out = dict(grant.request)
    expires = grant.claims["iat"] + grant.request["spec"]["expirationSeconds"]
    out["status"] = {"token": issuer.sign(grant.claims), "expirationTimestamp": _rfc3339(expires)}
    return out


# -- OIDC discovery ----------------------------------------------------------------------------------


def _b64(n: int, length: int) -> str:
    return base64.urlsafe_b64encode(n.to_bytes(length, "big")).decode().rstrip("=")


def jwk(public_key: PublicKey) -> Obj:
    """A public key as a JWK with its kid, `use: sig` (what /openid/v1/jwks lists)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        nums = public_key.public_numbers()
        size = (public_key.curve.key_size + 7) // 8
        crv = {256: "P-256", 384: "P-384", 521: "P-521"}[public_key.curve.key_size]
        return {"use": "sig", "kty": "EC", "kid": key_id(public_key), "crv": crv, "alg": algorithm(public_key),
                "x": _b64(nums.x, size), "y": _b64(nums.y, size)}
    rsa_nums = public_key.public_numbers()
    return {"use": "sig", "kty": "RSA", "kid": key_id(public_key), "alg": "RS256",
            "n": _b64(rsa_nums.n, (rsa_nums.n.bit_length() + 7) // 8),
            "e": _b64(rsa_nums.e, (rsa_nums.e.bit_length() + 7) // 8)}


def jwks(public_keys: Iterable[PublicKey]) -> Obj:
    return {"keys": [jwk(k) for k in public_keys]}


def openid_configuration(issuer: str, public_keys: Iterable[PublicKey], jwks_uri: str | None = None) -> Obj:
    """The discovery document kube-apiserver serves at /.well-known/openid-configuration."""
    algs = sorted({algorithm(k) for k in public_keys})
    return {"issuer": issuer, "jwks_uri": jwks_uri or issuer.rstrip("/") + "/openid/v1/jwks",
            "response_types_supported": ["id_token"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs}


# -- the ServiceAccount admission's volume ---------------------------------------------------------


def automounts(pod: Obj, sa: Obj | None) -> bool:
    """Whether a pod gets the API access volume: the pod's `automountServiceAccountToken`
    wins, then the ServiceAccount's; the default is yes."""
    spec = pod.get("spec") or {}
    if isinstance(spec.get("automountServiceAccountToken"), bool):
        return spec["automountServiceAccountToken"]
    if sa is not None and isinstance(sa.get("automountServiceAccountToken"), bool):
        return sa["automountServiceAccountToken"]
    return True


def api_access_volume(name: str) -> Obj:
    """The projected volume upstream's admission adds, as the server stores it (defaulted)."""
    return {"name": name, "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": AUTOMOUNT_EXPIRATION_SECONDS, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
                                    "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}


def is_mirror_pod(pod: Obj) -> bool:
    return MIRROR_POD_ANNOTATION in (_meta(pod).get("annotations") or {})


def admit_pod(pod: Obj, sa: Obj | None, suffix: str) -> None:
    """The ServiceAccount admission's changes to a new pod, in place: the service
    account named (`default` when none), and, when it automounts, the
    `kube-api-access-<suffix>` volume mounted read-only in every container that does
    not already mount something at the token's path."""
    spec = pod.setdefault("spec", {})
    name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = spec["serviceAccount"] = name
    if not automounts(pod, sa):
        return
    containers = [c for key in ("initContainers", "containers") for c in spec.get(key) or [] if isinstance(c, dict)]
    if all(any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in c.get("volumeMounts") or [])
           for c in containers):
        return
    volumes = spec.setdefault("volumes", [])
    taken = {v.get("name") for v in volumes if isinstance(v, dict)}
    vol_name = VOLUME_PREFIX + suffix
    while vol_name in taken:
        vol_name = VOLUME_PREFIX + names.random_suffix()
    volumes.append(api_access_volume(vol_name))
    for c in containers:
        mounts = c.setdefault("volumeMounts", [])
        if not any(isinstance(m, dict) and m.get("mountPath") == MOUNT_PATH for m in mounts):
            mounts.append({"name": vol_name, "readOnly": True, "mountPath": MOUNT_PATH})
