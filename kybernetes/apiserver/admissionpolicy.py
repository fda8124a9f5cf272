"""ValidatingAdmissionPolicy in the request pipeline: the policies and bindings kept
compiled from the watch cache, and the admission step that runs them.

A step of `ResourceService.context_admission` for creates and updates, and of
`external_validation` for deletes (before the webhooks, as upstream orders them): for each policy whose matchConstraints take the request and each of its
bindings whose matchResources do, the params are looked up (paramKind + the binding's
paramRef), the validations evaluated (kybernetes.api.admissionpolicy), and the
binding's validationActions applied: Deny refuses the request as kube-apiserver does
(`deployments.apps "x" is forbidden: ValidatingAdmissionPolicy 'P' with binding 'B'
denied request: MESSAGE`, reason and code from the validation's reason, Invalid/422 by
default), Warn adds a `Warning` header, Audit an audit annotation.

Not judged: the server's own writes (no requester), CONNECT, and the policy kinds themselves (as upstream, so a policy cannot lock its own configuration).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from kybernetes.api import admissionpolicy as ap
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds.base import Requester
from kybernetes.api.rbac import Attributes
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver.watchcache import CacheEvent, WatchCache

log = logging.getLogger(__name__)

GROUP = "admissionregistration.k8s.io"
POLICY_PREFIX = f"/registry/{GROUP}/validatingadmissionpolicies/"
BINDING_PREFIX = f"/registry/{GROUP}/validatingadmissionpolicybindings/"
_EXEMPT = ("validatingadmissionpolicies", "validatingadmissionpolicybindings")
_AUDIT_KEY = "validation.policy.admission.k8s.io/validation_failure"
Obj = dict[str, Any]


class PolicyAdmission:
    """The compiled policies and their bindings, rebuilt after any of them changes."""

    def __init__(self, cache: WatchCache, registry: Registry, authorizer: Any = None) -> None:
        self.cache = cache
        self.registry = registry
        self.authorizer = authorizer
        self._compiled: dict[str, tuple[str, ap.CompiledPolicy]] = {}  # name -> (resourceVersion, policy)
        self._bindings: dict[str, list[Obj]] = {}  # policy name -> bindings
        self._stale = True
        self._any = False
        cache.add_listener(self._on_event)

    def _on_event(self, ev: CacheEvent) -> None:
        if ev.key.startswith(POLICY_PREFIX) or ev.key.startswith(BINDING_PREFIX):
            self._stale = True

    def _refresh(self) -> None:
        self._stale = False
        compiled: dict[str, tuple[str, ap.CompiledPolicy]] = {}
        for co in self.cache.list(POLICY_PREFIX):
            obj = co.obj
            name = obj["metadata"]["name"]
            rv = str(co.rev)
            known = self._compiled.get(name)
            compiled[name] = known if known is not None and known[0] == rv else (rv, ap.compile_policy(obj))
        bindings: dict[str, list[Obj]] = {}
        for co in self.cache.list(BINDING_PREFIX):
            spec = co.obj.get("spec") or {}
            name = spec.get("policyName")
            if isinstance(name, str) and name in compiled:
                bindings.setdefault(name, []).append(co.obj)
        self._compiled, self._bindings = compiled, bindings
        self._any = bool(bindings)

    # -- the admission step ------------------------------------------------------------

    def admit(self, operation: str, info: ResourceInfo, subresource: str, new: Obj | None, old: Obj | None,
              ctx: Any) -> None:
        """Raise ApiError for a denial; add warnings and audit annotations to `ctx`."""
        if self._stale:
            self._refresh()
        if not self._any:
            return
        requester: Requester | None = getattr(ctx, "requester", None)
        if requester is None or (info.group == GROUP and info.plural in _EXEMPT):
            return
        obj = new if new is not None else old
        meta = (obj or {}).get("metadata") or {}
        namespace = (meta.get("namespace") or "") if info.namespaced else ""
        req = ap.Request(operation.upper(), info.group, info.version, info.plural, subresource, info.kind,
                         namespace, meta.get("name") or "", info.namespaced, _user_info(requester),
                         bool(getattr(ctx, "dry_run", False)))
        ns_obj = self._namespace(namespace)
        ns_labels = ((ns_obj or {}).get("metadata") or {}).get("labels") or {}
        denial: tuple[ap.CompiledPolicy, Obj | None, ap.Decision] | None = None
        for name, (_rv, policy) in self._compiled.items():
            bindings = self._bindings.get(name)
            if not bindings or not ap.resources_match(policy.match, req, new, old, ns_labels, need_rules=True):
                continue
            for binding in bindings:
                spec = binding.get("spec") or {}
                match = spec.get("matchResources")
                if isinstance(match, dict) and not ap.resources_match(match, req, new, old, ns_labels,
                                                                      need_rules=False):
                    continue
                decisions = self._evaluate(policy, binding, req, new, old, ns_obj, requester,
                                           getattr(ctx, "audit_annotations", None))
                actions = spec.get("validationActions") or []
                for d in decisions:
                    if "Deny" in actions and denial is None:
                        denial = (policy, binding, d)
                    if "Warn" in actions:
                        ctx.warnings.append(ap.warning_message(policy.name, binding["metadata"]["name"], d.message))
                    if "Audit" in actions:
                        _audit(ctx, policy, binding, d)
        if denial is not None:
            raise _forbidden(info, req, *denial)

    async def admit_delete(self, operation: str, info: ResourceInfo, subresource: str, new: Obj | None,
                           old: Obj | None, ctx: Any) -> None:
        """The step for deletes (object null, oldObject the object being deleted); creates
        and updates come through `admit`."""
        if operation == "DELETE":
            self.admit(operation, info, subresource, new, old, ctx)

    def _evaluate(self, policy: ap.CompiledPolicy, binding: Obj, req: ap.Request, new: Obj | None,
                  old: Obj | None, ns_obj: Obj | None, requester: Requester,
                  annotations: dict[str, str] | None) -> list[ap.Decision]:
        fail = policy.failure_policy != "Ignore"
        try:
            params = self._params(policy, binding, req)
        except _ConfigError as e:
            return [ap.Decision(f"failed to configure binding: {e}")] if fail else []
        data = {"object": new, "oldObject": old, "request": req.as_cel(), "namespaceObject": ns_obj}
        decide = self._decider(requester)
        out: list[ap.Decision] = []
        for param in params:
            out += ap.evaluate(policy, {**data, "params": param}, decide, annotations)
        return out

    # -- lookups ----------------------------------------------------------------------

    def _namespace(self, name: str) -> Obj | None:
        if not name:
            return None
        co = self.cache.get(f"/registry/core/namespaces/{name}")
        return co.obj if co is not None else None

    def _params(self, policy: ap.CompiledPolicy, binding: Obj, req: ap.Request) -> list[Obj | None]:
        """The params a binding evaluates with (upstream's collectParams): [None] without a
        paramKind or paramRef; none found → nothing to evaluate, or an error under
        parameterNotFoundAction Deny."""
        kind = policy.param_kind
        ref = (binding.get("spec") or {}).get("paramRef")
        if not kind or not isinstance(ref, dict):
            return [None]
        group, _, version = str(kind.get("apiVersion") or "").rpartition("/")
        info = self.registry.by_kind(group, version, str(kind.get("kind") or ""))
        if info is None:
            raise _ConfigError(f"paramKind kind `{kind.get('apiVersion')}, Kind={kind.get('kind')}` not known")
        namespace = ""
        if info.namespaced:
            namespace = ref.get("namespace") or req.namespace
            if not namespace:
                raise _ConfigError("cannot use namespaced paramRef in policy binding that matches "
                                   "cluster-scoped resources")
        elif ref.get("namespace"):
            raise _ConfigError("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
        found: list[Obj | None]
        if ref.get("name"):
            co = self.cache.get(info.key(namespace, ref["name"]))
            found = [co.obj] if co is not None else []
        else:
            matches = ap.param_selector(ref)
            prefix = info.storage_prefix() + (f"{namespace}/" if info.namespaced else "")
            found = [co.obj for co in self.cache.list(prefix) if matches is not None
                     and matches(((co.obj.get("metadata") or {}).get("labels")) or {})]
        if not found and ref.get("parameterNotFoundAction") == "Deny":
            raise _ConfigError("no params found for policy binding with `Deny` parameterNotFoundAction")
        return found

    def _decider(self, requester: Requester) -> ap.cel.AuthorizeFn:
        authorizer = self.authorizer

        def decide(attrs: Obj) -> tuple[bool, str]:
            if authorizer is None:
                return False, "no authorizer"
            path = attrs.get("path") or ""
            a = Attributes(requester.username, tuple(requester.groups), str(attrs.get("verb") or ""),
                           str(attrs.get("group") or ""), str(attrs.get("resource") or ""),
                           str(attrs.get("subresource") or ""), str(attrs.get("namespace") or ""),
                           str(attrs.get("name") or ""), str(path), resource_request=not path)
            d = authorizer.authorize(requester, a)
            return bool(d.allowed), str(d.reason or "")
        return decide


class _ConfigError(Exception):
    pass


def _user_info(requester: Requester) -> Obj:
    user: Obj = {"username": requester.username, "groups": list(requester.groups)}
    if requester.uid:
        user["uid"] = requester.uid
    if requester.extra:
        user["extra"] = {k: list(v) for k, v in requester.extra}
    return user


def _forbidden(info: ResourceInfo, req: ap.Request, policy: ap.CompiledPolicy, binding: Obj | None,
               decision: ap.Decision) -> ApiError:
    message = ap.denial_message(policy.name, binding["metadata"]["name"] if binding else None, decision.message)
    resource = info.qualified_plural + (f"/{req.subresource}" if req.subresource else "")
    text = f'{resource} "{req.name}" is forbidden: {message}'
    reason = decision.reason or "Invalid"
    return ApiError(ap.REASON_CODES.get(reason, 400), reason, text,
                    {"name": req.name, "group": info.group, "kind": info.plural, "causes": [{"message": message}]})


def _audit(ctx: Any, policy: ap.CompiledPolicy, binding: Obj, decision: ap.Decision) -> None:
    annotations = getattr(ctx, "audit_annotations", None)
    if not isinstance(annotations, dict):
        return
    spec = binding.get("spec") or {}
    annotations[_AUDIT_KEY] = orjson.dumps([{
        "message": decision.message, "policy": policy.name, "binding": binding["metadata"]["name"],
        "expressionIndex": decision.index, "validationActions": spec.get("validationActions") or []}]).decode()
