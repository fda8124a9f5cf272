"""Who may call the agent's HTTPS API, and what for (the kubelet's authn/authz on 10250).

Authentication, as the kubelet's `--client-ca-file` plus webhook token authentication:
a client certificate signed by the cluster CA (verified in the TLS handshake; CN is the
user, O the groups), else a bearer token the API server vouches for in a TokenReview.
Nobody else gets in: anonymous callers are refused with 401.

Authorization, as the kubelet's webhook mode: a SubjectAccessReview on the node's
`nodes/<subresource>` with the request's verb, the subresource named by the path as the
kubelet maps it (`subresource_for`). Both answers are cached briefly, so a busy log
stream or a burst of exec calls costs the API server one review, while a revoked
permission stops working within seconds.

The decisions are pure functions; `AgentAuth` is the shell that asks the API server.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from kybernetes.client import ApiError, Client
from kybernetes.client.resources import Resource

log = logging.getLogger(__name__)

TOKEN_REVIEWS = Resource.for_kind("authentication.k8s.io/v1", "TokenReview")
ACCESS_REVIEWS = Resource.for_kind("authorization.k8s.io/v1", "SubjectAccessReview")
AUTHENTICATED_GROUP = "system:authenticated"
# The kubelet's defaults are 2 minutes for tokens and 5 minutes / 30 seconds for
# decisions; shorter here, so a revoked permission ends sooner on a small cluster.
TOKEN_TTL, TOKEN_FAILURE_TTL = 120.0, 10.0
ALLOWED_TTL, DENIED_TTL = 30.0, 10.0
CACHE_LIMIT = 4096
# Paths whose subresource is not `proxy` (the kubelet's statsPath, metricsPath, logsPath).
_SUBPATHS = (("/stats", "stats"), ("/metrics", "metrics"), ("/logs", "log"))
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Verdict:
    """What becomes of a request: `status` 0 lets it through."""

    status: int = 0
    message: str = ""
    caller: Caller | None = None


# -- decisions -----------------------------------------------------------------------------


def subresource_for(path: str) -> str:
    """The `nodes/<subresource>` a request path is authorized as."""
    for prefix, sub in _SUBPATHS:
        if path == prefix or path.startswith(prefix + "/"):
            return sub
    return "proxy"


def verb_for(method: str) -> str:
    return _VERBS.get(method.upper(), method.lower())


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def caller_from_peercert(peercert: Mapping[str, Any] | None) -> Caller | None:
    """The user of a TLS-verified client certificate (`getpeercert()`'s dict form)."""
    if not peercert:
        return None
    cns: list[str] = []
    orgs: list[str] = []
    for rdn in peercert.get("subject") or ():
        for pair in rdn:
            if len(pair) == 2 and pair[0] == "commonName":
                cns.append(str(pair[1]))
            elif len(pair) == 2 and pair[0] == "organizationName":
                orgs.append(str(pair[1]))
    if not cns or not cns[0]:
        return None
    return Caller(cns[0], tuple(orgs) + ((AUTHENTICATED_GROUP,) if AUTHENTICATED_GROUP not in orgs else ()))


def caller_from_token_review(review: Mapping[str, Any]) -> Caller | None:
    status = review.get("status") or {}
    if not status.get("authenticated"):
        return None
    user = status.get("user") or {}
    name = user.get("username") or ""
    if not name:
        return None
    extra = tuple(sorted((k, tuple(v)) for k, v in (user.get("extra") or {}).items() if isinstance(v, list)))
    return Caller(name, tuple(user.get("groups") or ()), user.get("uid") or "", extra)


def access_review(caller: Caller, verb: str, node: str, subresource: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": caller.user, "groups": list(caller.groups), "resourceAttributes": {
        "verb": verb, "group": "", "version": "v1", "resource": "nodes", "subresource": subresource, "name": node}}
    if caller.uid:
        spec["uid"] = caller.uid
    if caller.extra:
        spec["extra"] = {k: list(v) for k, v in caller.extra}
    return {"apiVersion": ACCESS_REVIEWS.api_version, "kind": ACCESS_REVIEWS.kind, "spec": spec}


def forbidden_message(caller: Caller, verb: str, subresource: str) -> str:
    """The kubelet's wording."""
    return f"Forbidden (user={caller.user}, verb={verb}, resource=nodes, subresource(s)=[{subresource}])"


# -- the shell -----------------------------------------------------------------------------


@dataclass
class _TtlCache:
    limit: int = CACHE_LIMIT
    now: Callable[[], float] = time.monotonic
    _items: dict[Any, tuple[float, Any]] = field(default_factory=dict)

    def get(self, key: Any) -> tuple[bool, Any]:
        hit = self._items.get(key)
        if hit is None or hit[0] <= self.now():
            self._items.pop(key, None)
            return False, None
        return True, hit[1]

    def put(self, key: Any, value: Any, ttl: float) -> None:
        if len(self._items) >= self.limit:
            stamp = self.now()
            self._items = {k: v for k, v in self._items.items() if v[0] > stamp}
            if len(self._items) >= self.limit:
                self._items.pop(next(iter(self._items)))
        self._items[key] = (self.now() + ttl, value)


class AgentAuth:
    """Authenticates and authorizes the agent API's callers through the API server."""

    def __init__(self, client: Client, node_name: str, now: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.node_name = node_name
        self._tokens = _TtlCache(now=now)
        self._decisions = _TtlCache(now=now)

    async def _token_caller(self, token: str) -> Caller | None:
        key = hashlib.sha256(token.encode()).digest()
        hit, found = self._tokens.get(key)
        if hit:
            return found
        review = await self.client.create(TOKEN_REVIEWS, None, {
            "apiVersion": TOKEN_REVIEWS.api_version, "kind": TOKEN_REVIEWS.kind, "spec": {"token": token}})
        caller = caller_from_token_review(review)
        self._tokens.put(key, caller, TOKEN_TTL if caller is not None else TOKEN_FAILURE_TTL)
        return caller

    async def _allowed(self, caller: Caller, verb: str, subresource: str) -> bool:
        key = (caller, verb, subresource)
        hit, allowed = self._decisions.get(key)
        if hit:
            return bool(allowed)
        answer = await self.client.create(ACCESS_REVIEWS, None, access_review(caller, verb, self.node_name,
                                                                              subresource))
        allowed = bool((answer.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed, ALLOWED_TTL if allowed else DENIED_TTL)
        return allowed

    async def check(self, method: str, path: str, peercert: Mapping[str, Any] | None,
                    authorization: str | None) -> Verdict:
        """The verdict on one request."""
        caller = caller_from_peercert(peercert)
        try:
            if caller is None:
                token = bearer_token(authorization)
                if token is not None:
                    caller = await self._token_caller(token)
            if caller is None:
                return Verdict(401, "Unauthorized")
            verb, subresource = verb_for(method), subresource_for(path)
            if not await self._allowed(caller, verb, subresource):
                return Verdict(403, forbidden_message(caller, verb, subresource), caller)
        except (TimeoutError, ApiError, aiohttp.ClientError, OSError) as e:
            log.warning("agent API: the API server could not review a request to %s: %s", path, e)
            return Verdict(500, "Authorization error: the API server could not be asked")
        return Verdict(0, "", caller)
