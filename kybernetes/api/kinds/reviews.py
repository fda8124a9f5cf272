"""The review kinds of authentication.k8s.io and authorization.k8s.io: never stored,
answered on create (`kubectl auth whoami`, `kubectl auth can-i`, a webhook's
TokenReview). The answer is a pure function of the request body and of what the
`ReviewContext` says about the requester.

Authorization here is "every authenticated user may do everything" until RBAC
lands; the access reviews say so in their reason.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.errors import ApiError, invalid
from kybernetes.api.kinds.base import KindRef, KindStrategy, Obj, Requester, ReviewContext
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
        token = (body.get("spec") or {}).get("token") or ""
        found = ctx.authenticate_token(token) if isinstance(token, str) and token else None
        if found is None:
            return _answer(info, body, {"authenticated": False, "error": "invalid bearer token"})
        return _answer(info, body, {"authenticated": True, "user": user_info(found)})


class AccessReviewStrategy(KindStrategy):
    refs = (KindRef(_AUTHZ, "SelfSubjectAccessReview"), KindRef(_AUTHZ, "SubjectAccessReview"))

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        return _answer(info, body, {"allowed": ctx.requester.username != ANONYMOUS_USER,
                                    "reason": "kybernetes allows every authenticated user (RBAC not enabled)"})


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
        return AccessReviewStrategy().review(info, body, ctx)


class SelfSubjectRulesReviewStrategy(KindStrategy):
    refs = (KindRef(_AUTHZ, "SelfSubjectRulesReview"),)

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        return _answer(info, body, {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False})
