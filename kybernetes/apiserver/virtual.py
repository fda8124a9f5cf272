"""Resources the server answers itself instead of storing them.

The authentication and authorization reviews (`kubectl auth whoami`,
`kubectl auth can-i`), and the pod subresources that belong to a node agent
(log, exec, attach, port-forward): until a pod is bound to a node there is no
agent to forward them to, and the answer is the real server's
"does not have a host assigned".
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from kybernetes.api.errors import ApiError
from kybernetes.apiserver import auth, codec
from kybernetes.apiserver.rest import json_response
from kybernetes.apiserver.watchcache import WatchCache


class VirtualHandler:
    def __init__(self, cache: WatchCache, authenticator: auth.Authenticator) -> None:
        self.cache = cache
        self.authenticator = authenticator

    async def handle(self, request: web.Request, target: Any) -> web.StreamResponse:
        info = target.info
        user: auth.UserInfo = request["user"]
        if target.subresource in ("log", "exec", "attach", "portforward", "proxy", "ephemeralcontainers"):
            return self._needs_agent(target)
        if target.subresource == "token":
            raise ApiError(501, "NotImplemented",
                           "service account tokens are not issued yet by this server")
        if request.method != "POST" or target.name is not None:
            raise ApiError.method_not_allowed()
        data = await request.read()
        body = codec.decode_object(data, request.headers.get("Content-Type"), info.kind) if data.strip() else {}
        spec = body.get("spec") or {}
        out: dict[str, Any] = {"kind": info.kind, "apiVersion": info.api_version,
                               "metadata": {"creationTimestamp": None}, "spec": spec}
        if info.kind == "SelfSubjectReview":
            return json_response(orjson.dumps(auth.self_subject_review(user)), 201)
        if info.kind in ("SelfSubjectAccessReview", "SubjectAccessReview"):
            # Authorization (RBAC) arrives with the security issue; until then every
            # authenticated user may do everything, and the review says so.
            out["status"] = {"allowed": not auth.is_anonymous(user),
                             "reason": "kybernetes allows every authenticated user (RBAC not enabled)"}
            return json_response(orjson.dumps(out), 201)
        if info.kind == "SelfSubjectRulesReview":
            out["status"] = {"resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                             "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                             "incomplete": False}
            return json_response(orjson.dumps(out), 201)
        if info.kind == "TokenReview":
            token = spec.get("token") or ""
            found = self.authenticator.authenticate_token(token) if token else None
            if found is None:
                out["status"] = {"authenticated": False, "error": "invalid bearer token"}
            else:
                out["status"] = {"authenticated": True, "user": {"username": found.username, "uid": found.uid,
                                                                  "groups": found.groups}}
            return json_response(orjson.dumps(out), 201)
        raise ApiError.method_not_allowed()

    def _needs_agent(self, target: Any) -> web.StreamResponse:
        info = target.info
        key = info.key(target.namespace, target.name or "")
        co = self.cache.get(key)
        if co is None:
            raise ApiError.not_found(info.group, info.plural, target.name or "")
        if not (co.obj.get("spec") or {}).get("nodeName"):
            raise ApiError.bad_request(f"pod {target.name} does not have a host assigned")
        raise ApiError(503, "ServiceUnavailable",
                       f"no node agent is reachable for node {co.obj['spec']['nodeName']}")
