"""The review kinds of authentication.k8s.io and authorization.k8s.io: never stored,
answered on create (`kubectl auth whoami`, `kubectl auth can-i`, a webhook's
TokenReview). The answer is a pure function of the request body and of what the
`ReviewContext` says about the requester.

The access reviews ask the server's authorizer (RBAC, `api/rbac.py`) through the
context, so `kubectl auth can-i` agrees with what the same request would meet.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.errors import ApiError, invalid
from kybernetes.api.kinds.base import KindRef, KindStrategy, Obj, Requester, ReviewContext
from kybernetes.api.rbac import Attributes
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.validation import GoValue

ANONYMOUS_USER = "system:anonymous"
_AUTHN = "authentication.k8s.io"
_AUTHZ = "authorization.k8s.io"


def user_info(user: Requester) -> dict[str, Any]:
    """A UserInfo as the real API writes it: empty fields left out (omitempty), which
    is also what kubectl prints."""
    out: dict[str, Any] = {"username": user.username}
    if user.uid:
        out["uid"] = user.uid
    if user.groups:
        out["groups"] = list(user.groups)
    if user.extra:
        out["extra"] = {k: list(v) for k, v in user.extra}
    return out


def _answer(info: ResourceInfo, body: Obj, status: Obj) -> Obj:
    metadata: Obj = {"creationTimestamp": None}
    # A LocalSubjectAccessReview answers in the namespace it was asked in.
    namespace = (body.get("metadata") or {}).get("namespace")
    if info.namespaced and namespace:
        metadata["namespace"] = namespace
    return {"kind": info.kind, "apiVersion": info.api_version, "metadata": metadata,
            "spec": body.get("spec") or {}, "status": status}


class SelfSubjectReviewStrategy(KindStrategy):
    refs = (KindRef(_AUTHN, "SelfSubjectReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        return {"kind": info.kind, "apiVersion": info.api_version, "metadata": {},
                "status": {"userInfo": user_info(ctx.requester)}}


class TokenReviewStrategy(KindStrategy):
    refs = (KindRef(_AUTHN, "TokenReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        token = spec.get("token") or ""
        audiences = [a for a in spec.get("audiences") or [] if isinstance(a, str)]
        found, matched, error = (ctx.review_token(token, audiences) if isinstance(token, str) and token
                                 else (None, [], "invalid bearer token"))
        if found is None:
            return _answer(info, body, {"authenticated": False, "user": {}, "error": error})
        status: Obj = {"authenticated": True, "user": user_info(found)}
        if matched:
            status["audiences"] = matched
        return _answer(info, body, status)


def _spec(body: Obj) -> Obj:
    spec = body.get("spec")
    return spec if isinstance(spec, dict) else {}


def _str(d: Obj, key: str) -> str:
    v = d.get(key)
    return v if isinstance(v, str) else ""


def access_attributes(user: str, groups: tuple[str, ...], spec: Obj) -> Attributes | None:
    """The request an access review asks about; None when it names neither kind."""
    res = spec.get("resourceAttributes")
    if isinstance(res, dict):
        return Attributes(user, groups, _str(res, "verb"), _str(res, "group"), _str(res, "resource"),
                          _str(res, "subresource"), _str(res, "namespace"), _str(res, "name"))
    non = spec.get("nonResourceAttributes")
    if isinstance(non, dict):
        return Attributes(user, groups, _str(non, "verb"), path=_str(non, "path"), resource_request=False)
    return None


def _exactly_one_errors(spec: Obj) -> list:
    has_res, has_non = spec.get("resourceAttributes") is not None, spec.get("nonResourceAttributes") is not None
    if has_res and has_non:
        return [invalid("spec.nonResourceAttributes", GoValue("..."),
                        "cannot be specified in combination with resourceAttributes")]
    if not has_res and not has_non:
        return [invalid("spec.resourceAttributes", GoValue("null"),
                        "exactly one of nonResourceAttributes or resourceAttributes must be specified")]
    return []


def _decide(info: ResourceInfo, body: Obj, ctx: ReviewContext, user: str, groups: tuple[str, ...]) -> Obj:
    attrs = access_attributes(user, groups, _spec(body))
    if attrs is None:
        return _answer(info, body, {"allowed": False})
    decision = ctx.authorize(attrs)
    status: Obj = {"allowed": decision.allowed}
    if decision.reason:
        status["reason"] = decision.reason
    return _answer(info, body, status)


class SelfSubjectAccessReviewStrategy(KindStrategy):
    """Whether the requester may make a request (`kubectl auth can-i`)."""

    refs = (KindRef(_AUTHZ, "SelfSubjectAccessReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        errors = _exactly_one_errors(_spec(body))
        if errors:
            raise ApiError.invalid(info.group, info.kind, "", errors)
        return _decide(info, body, ctx, ctx.requester.username, tuple(ctx.requester.groups))


class AccessReviewStrategy(KindStrategy):
    """Whether the user the spec names may make a request (a webhook's, or an agent's, question)."""

    refs = (KindRef(_AUTHZ, "SubjectAccessReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        spec = _spec(body)
        errors = _exactly_one_errors(spec)
        groups = tuple(g for g in spec.get("groups") or [] if isinstance(g, str)) \
            if isinstance(spec.get("groups"), list) else ()
        if not _str(spec, "user") and not groups:
            errors.append(invalid("spec.user", "", "at least one of user or group must be specified"))
        if errors:
            raise ApiError.invalid(info.group, info.kind, "", errors)
        return _decide(info, body, ctx, _str(spec, "user"), groups)


class LocalSubjectAccessReviewStrategy(KindStrategy):
    """A SubjectAccessReview confined to the namespace of its URL (the server stamps the
    URL's namespace into the body's metadata before asking)."""

    refs = (KindRef(_AUTHZ, "LocalSubjectAccessReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        namespace = meta.get("namespace") or ""
        spec = body.get("spec") if isinstance(body.get("spec"), dict) else {}
        errors = []
        attrs = spec.get("resourceAttributes")
        if isinstance(attrs, dict) and (attrs.get("namespace") or "") != namespace:
            errors.append(invalid("spec.resourceAttributes.namespace", attrs.get("namespace") or "",
                                  "must match metadata.namespace"))
        if spec.get("nonResourceAttributes") is not None:
            errors.append(invalid("spec.nonResourceAttributes", GoValue("..."),
                                  "disallowed on this kind of request"))
        if attrs is None and spec.get("nonResourceAttributes") is None:
            errors.append(invalid("spec.resourceAttributes", GoValue("null"),
                                  "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
        if not spec.get("user") and not spec.get("groups"):
            errors.append(invalid("spec.user", "", "at least one of user or group must be specified"))
        if errors:
            raise ApiError.invalid(info.group, info.kind, "", errors)
        groups = tuple(g for g in spec.get("groups") or [] if isinstance(g, str)) \
            if isinstance(spec.get("groups"), list) else ()
        return _decide(info, body, ctx, _str(spec, "user"), groups)


class SelfSubjectRulesReviewStrategy(KindStrategy):
    refs = (KindRef(_AUTHZ, "SelfSubjectRulesReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        namespace = _str(_spec(body), "namespace")
        resource, non_resource, error = ctx.rules_for(ctx.requester.username, tuple(ctx.requester.groups),
                                                      namespace)
        status: Obj = {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": bool(error)}
        if error:
            status["evaluationError"] = error
        return _answer(info, body, status)
