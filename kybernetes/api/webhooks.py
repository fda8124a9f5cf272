"""Dynamic admission webhooks, the decisions: which webhook a request calls, the
AdmissionReview it sends, what its answer means and how its patch applies, worded as
kube-apiserver's webhook admission words them.

Stored MutatingWebhookConfiguration / ValidatingWebhookConfiguration objects are
compiled into `Webhook`s (ordered by configuration name, then by their place in it, as
upstream orders them). Calling them over HTTPS is the API server's shell
(`kybernetes.apiserver.webhooks`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api import cel
from kybernetes.api import patch as patches
from kybernetes.api.errors import ApiError
from kybernetes.api.selectors import label_selector_matcher

Obj = dict[str, Any]
LabelMatch = Callable[[Mapping[str, str]], bool]

REVIEW_GROUP = "admission.k8s.io"
SUPPORTED_REVIEW_VERSIONS = ("v1", "v1beta1")
# Requests on these are never sent to webhooks: a broken webhook could otherwise lock
# the cluster's owner out of fixing it (upstream's IsExemptAdmissionConfigurationResource).
EXEMPT_GROUP = "admissionregistration.k8s.io"
EXEMPT_RESOURCES = frozenset({
    "validatingwebhookconfigurations", "mutatingwebhookconfigurations",
    "validatingadmissionpolicies", "validatingadmissionpolicybindings",
    "mutatingadmissionpolicies", "mutatingadmissionpolicybindings"})


@dataclass(frozen=True)
class Target:
    """A resource as one API version serves it."""

    group: str
    version: str
    resource: str
    kind: str

    def gvk(self) -> Obj:
        return {"group": self.group, "version": self.version, "kind": self.kind}

    def gvr(self) -> Obj:
        return {"group": self.group, "version": self.version, "resource": self.resource}


@dataclass(frozen=True)
class Rule:
    operations: tuple[str, ...]
    groups: tuple[str, ...]
    versions: tuple[str, ...]
    resources: tuple[str, ...]
    scope: str


@dataclass(frozen=True)
class ServiceRef:
    namespace: str
    name: str
    path: str
    port: int

    @property
    def host(self) -> str:
        """The DNS name the webhook's certificate must carry, and its URLs show."""
        return f"{self.name}.{self.namespace}.svc"

    def url(self) -> str:
        return f"https://{self.host}:{self.port}{self.path}"


@dataclass(frozen=True)
class MatchCondition:
    """A compiled CEL matchCondition; `error` when it did not compile."""

    name: str
    program: cel.Program | None
    error: str = ""


MATCH_VARIABLES = ("object", "oldObject", "request", "authorizer")


def compile_match_condition(raw: Obj) -> MatchCondition:
    name = str(raw.get("name") or "")
    try:
        return MatchCondition(name, cel.compile_expression(cel.new_env(MATCH_VARIABLES), raw.get("expression")))
    except cel.CelError as e:
        return MatchCondition(name, None, str(e))


@dataclass(frozen=True)
class Webhook:
    """One compiled webhook of a configuration."""

    name: str
    configuration: str
    index: int
    mutating: bool
    rules: tuple[Rule, ...]
    failure_policy: str
    match_policy: str
    namespace_selector: LabelMatch | None  # None: everything
    object_selector: LabelMatch | None
    side_effects: str
    timeout: int
    review_version: str  # the first of admissionReviewVersions this server speaks
    reinvocation: str
    url: str | None
    service: ServiceRef | None
    ca_bundle: bytes
    match_conditions: tuple[MatchCondition, ...] = ()

    @property
    def uid(self) -> tuple[str, int]:
        return (self.configuration, self.index)

    @property
    def endpoint(self) -> str:
        """The URL the webhook is called at, as error messages show it."""
        return self.service.url() if self.service is not None else str(self.url)


@dataclass
class Attributes:
    """One admission request: what is written, by whom, seen as the request named it."""

    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    target: Target
    subresource: str
    name: str
    namespace: str  # "" for a cluster-scoped object
    obj: Obj | None
    old: Obj | None
    dry_run: bool = False
    user: Obj = field(default_factory=dict)
    options: Obj | None = None


def exempt(target: Target) -> bool:
    return target.group == EXEMPT_GROUP and target.resource in EXEMPT_RESOURCES


# -- compiling ------------------------------------------------------------------------------

def _selector(sel: Any) -> LabelMatch | None:
    if not isinstance(sel, Mapping) or (not sel.get("matchLabels") and not sel.get("matchExpressions")):
        return None
    found = label_selector_matcher(sel)
    if found is None:  # stored malformed (validation refuses it): it matches nothing
        return lambda _labels: False
    return found


def _strings(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


def _rule(raw: Any) -> Rule:
    r = raw if isinstance(raw, dict) else {}
    return Rule(_strings(r.get("operations")), _strings(r.get("apiGroups")), _strings(r.get("apiVersions")),
                _strings(r.get("resources")), str(r.get("scope") or "*"))


def _ca_bundle(value: Any) -> bytes:
    if not value:
        return b""
    try:
        return base64.b64decode(str(value), validate=True)
    except (binascii.Error, ValueError):
        return b""


def compile_webhook(configuration: str, index: int, raw: Obj, mutating: bool) -> Webhook:
    config = raw.get("clientConfig") if isinstance(raw.get("clientConfig"), dict) else {}
    svc = config.get("service")
    service = None
    if isinstance(svc, dict):
        service = ServiceRef(str(svc.get("namespace") or ""), str(svc.get("name") or ""),
                             str(svc.get("path") or ""), int(svc.get("port") or 443))
    versions = [v for v in _strings(raw.get("admissionReviewVersions")) if v in SUPPORTED_REVIEW_VERSIONS]
    timeout = raw.get("timeoutSeconds")
    return Webhook(
        name=str(raw.get("name") or ""), configuration=configuration, index=index, mutating=mutating,
        rules=tuple(_rule(r) for r in raw.get("rules") or []),
        failure_policy=str(raw.get("failurePolicy") or "Fail"),
        match_policy=str(raw.get("matchPolicy") or "Equivalent"),
        namespace_selector=_selector(raw.get("namespaceSelector")),
        object_selector=_selector(raw.get("objectSelector")),
        side_effects=str(raw.get("sideEffects") or "Unknown"),
        timeout=int(timeout) if isinstance(timeout, int) and timeout > 0 else 10,
        review_version=versions[0] if versions else "v1",
        reinvocation=str(raw.get("reinvocationPolicy") or "Never"),
        url=str(config["url"]) if config.get("url") else None, service=service,
        ca_bundle=_ca_bundle(config.get("caBundle")),
        match_conditions=tuple(compile_match_condition(c) for c in raw.get("matchConditions") or []
                               if isinstance(c, dict)))


def compile_configurations(objs: Sequence[Obj], mutating: bool) -> list[Webhook]:
    """The webhooks of stored configurations, in the order they are called."""
    hooks: list[Webhook] = []
    for obj in sorted(objs, key=lambda o: str((o.get("metadata") or {}).get("name") or "")):
        name = str((obj.get("metadata") or {}).get("name") or "")
        for i, raw in enumerate(obj.get("webhooks") or []):
            if isinstance(raw, dict):
                hooks.append(compile_webhook(name, i, raw, mutating))
    return hooks


# -- matching -------------------------------------------------------------------------------

def _split_resource(res: str) -> tuple[str, str]:
    main, _, sub = res.partition("/")
    return main, sub


def rule_matches(rule: Rule, attrs: Attributes, target: Target) -> bool:
    """Whether `rule` covers the request seen as `target` (upstream's rules.Matcher)."""
    if not any(op in ("*", attrs.operation) for op in rule.operations):
        return False
    if not any(g in ("*", target.group) for g in rule.groups):
        return False
    if not any(v in ("*", target.version) for v in rule.versions):
        return False
    matched = False
    for res in rule.resources:
        main, sub = _split_resource(res)
        if main in ("*", target.resource) and sub in ("*", attrs.subresource):
            matched = True
            break
    if not matched:
        return False
    is_namespace = target.group == "" and target.resource == "namespaces"
    if rule.scope == "Cluster":
        return is_namespace or attrs.namespace == ""
    if rule.scope == "Namespaced":
        return not is_namespace and attrs.namespace != ""
    return True


def matched_target(hook: Webhook, attrs: Attributes, equivalents: Callable[[], Sequence[Target]]) -> Target | None:
    """The resource (and version) the webhook sees the request as: the request's own when a
    rule names it, else under matchPolicy Equivalent the first other version of the same
    resource a rule names; None when the webhook is not called."""
    if any(rule_matches(r, attrs, attrs.target) for r in hook.rules):
        return attrs.target
    if hook.match_policy != "Equivalent":
        return None
    for other in equivalents():
        if other != attrs.target and any(rule_matches(r, attrs, other) for r in hook.rules):
            return other
    return None


def _labels(obj: Obj | None) -> Mapping[str, str] | None:
    if obj is None:
        return None
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def object_selected(hook: Webhook, attrs: Attributes) -> bool:
    """objectSelector against the new or the old object's labels (either may match)."""
    if hook.object_selector is None:
        return True
    return any(labels is not None and hook.object_selector(labels)
               for labels in (_labels(attrs.obj), _labels(attrs.old)))


def namespace_selected(hook: Webhook, attrs: Attributes,
                       namespace_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
    """namespaceSelector against the labels of the request's namespace (for a namespace
    created or updated, its own new labels); a cluster-scoped object always matches."""
    if hook.namespace_selector is None:
        return True
    is_namespace = attrs.target.group == "" and attrs.target.resource == "namespaces"
    if not attrs.namespace and not is_namespace:
        return True
    if is_namespace and not attrs.subresource and attrs.operation in ("CREATE", "UPDATE"):
        labels = _labels(attrs.obj) or {}
    else:
        found = namespace_labels(attrs.namespace or attrs.name)
        if found is None:
            raise ApiError.not_found("", "namespaces", attrs.namespace or attrs.name)
        labels = found
    return hook.namespace_selector(labels)


def conditions_match(hook: Webhook, attrs: Attributes, request: Obj) -> bool:
    """The webhook's matchConditions, all true (upstream's matchconditions.Matcher): one
    false skips the webhook; an error (and none false) skips it under failurePolicy
    Ignore and refuses the request (403) under Fail."""
    if not hook.match_conditions:
        return True
    data = {"object": attrs.obj, "oldObject": attrs.old, "request": request,
            "authorizer": cel.authorizer_value()}
    errors: list[str] = []
    for cond in hook.match_conditions:
        if cond.program is None:
            errors.append(f"{cond.name}: {cond.error}")
            continue
        try:
            value = cel.evaluate(cond.program, data)
        except cel.CelError as e:
            errors.append(f"{cond.name}: {e}")
            continue
        if value is False:
            return False
        if value is not True:
            errors.append(f"{cond.name}: no such overload: expected a bool")
    if not errors:
        return True
    if hook.failure_policy == "Ignore":
        return False
    group = attrs.target.resource if not attrs.target.group else f"{attrs.target.resource}.{attrs.target.group}"
    raise ApiError.forbidden(f'{group} "{attrs.name}" is forbidden: failed to evaluate match conditions for '
                             f'webhook "{hook.name}": ' + "; ".join(errors))


# -- the review -----------------------------------------------------------------------------

def review_request(uid: str, hook: Webhook, attrs: Attributes, seen_as: Target, obj: Obj | None,
                   old: Obj | None) -> Obj:
    """The AdmissionReview a webhook is sent; `obj`/`old` already in `seen_as`'s version."""
    request: Obj = {
        "uid": uid,
        "kind": seen_as.gvk(),
        "resource": seen_as.gvr(),
        "requestKind": attrs.target.gvk(),
        "requestResource": attrs.target.gvr(),
        "name": attrs.name,
        "operation": attrs.operation,
        "userInfo": attrs.user,
        "object": obj,
        "oldObject": old,
        "dryRun": attrs.dry_run,
        "options": attrs.options,
    }
    if attrs.subresource:
        request["subResource"] = attrs.subresource
        request["requestSubResource"] = attrs.subresource
    if attrs.namespace:
        request["namespace"] = attrs.namespace
    return {"kind": "AdmissionReview", "apiVersion": f"{REVIEW_GROUP}/{hook.review_version}", "request": request}


@dataclass
class Verdict:
    """A webhook's answer, verified."""

    allowed: bool
    status: Obj
    patch: list[Any] | None
    warnings: list[str]
    audit_annotations: dict[str, str]


class BadResponse(Exception):
    """The webhook answered something that is not a valid AdmissionReview response."""


def parse_response(body: Any, uid: str, hook: Webhook) -> Verdict:
    """Upstream's VerifyAdmissionResponse: the review's version, the response's uid, the
    patch type and encoding."""
    want = f"{REVIEW_GROUP}/{hook.review_version}"
    if not isinstance(body, dict):
        raise BadResponse("the response is not a JSON object")
    got = f"{body.get('apiVersion') or ''}, Kind={body.get('kind') or ''}"
    if body.get("apiVersion") != want or body.get("kind") != "AdmissionReview":
        raise BadResponse(f"expected webhook response of {want}, Kind=AdmissionReview, got {got}")
    response = body.get("response")
    if not isinstance(response, dict):
        raise BadResponse("webhook response was absent")
    if str(response.get("uid") or "") != uid:
        raise BadResponse(f'expected response.uid="{uid}", got "{response.get("uid") or ""}"')
    patch_type, raw_patch = response.get("patchType"), response.get("patch")
    ops: list[Any] | None = None
    if raw_patch:
        if not hook.mutating:
            raise BadResponse("validating webhook may not return response.patch")
        if not patch_type:
            raise BadResponse("webhook returned response.patch but not response.patchType")
        if patch_type != "JSONPatch":
            raise BadResponse(f'webhook returned invalid response.patchType of "{patch_type}"')
        try:
            decoded = orjson.loads(base64.b64decode(str(raw_patch), validate=True))
        except (binascii.Error, ValueError) as e:
            raise BadResponse(f"received undecodable patch in webhook response: {e}") from None
        if not isinstance(decoded, list):
            raise BadResponse("received undecodable patch in webhook response: not a JSON array")
        ops = decoded
    elif patch_type and hook.mutating and patch_type != "JSONPatch":
        raise BadResponse(f'webhook returned invalid response.patchType of "{patch_type}"')
    status = response.get("status") if isinstance(response.get("status"), dict) else {}
    warnings = [str(w) for w in response.get("warnings") or [] if str(w).strip()]
    annotations = response.get("auditAnnotations") or {}
    return Verdict(bool(response.get("allowed")), status, ops, warnings,
                   {str(k): str(v) for k, v in annotations.items()} if isinstance(annotations, dict) else {})


def denial(hook_name: str, status: Obj) -> ApiError:
    """A webhook's refusal as the client sees it (upstream's webhookerrors.ToStatusErr)."""
    code = status.get("code") if isinstance(status.get("code"), int) else 0
    if code < 400:
        code = 400
    denied_by = f'admission webhook "{hook_name}" denied the request'
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    details = status.get("details") if isinstance(status.get("details"), dict) else None
    return ApiError(code, str(status.get("reason") or ""), message, details)


def call_failure(hook_name: str, reason: str) -> ApiError:
    """A webhook that could not be called (or answered nonsense) under failurePolicy Fail."""
    return ApiError.internal(f'failed calling webhook "{hook_name}": {reason}')


def post_failure(url: str, timeout: int, why: str) -> str:
    """How Go's HTTP client words a failed POST, as upstream's message embeds it."""
    return f'failed to call webhook: Post "{url}?timeout={timeout}s": {why}'


def dry_run_unsupported(hook_name: str) -> ApiError:
    return ApiError.bad_request(f'admission webhook "{hook_name}" does not support dry run')


def supports_dry_run(hook: Webhook) -> bool:
    return hook.side_effects in ("None", "NoneOnDryRun")


def apply_patch(hook_name: str, obj: Obj, ops: list[Any]) -> Obj:
    """The object after a mutating webhook's JSON patch; a patch that does not apply is
    the server's error (500), as upstream reports it."""
    try:
        patched = patches.json_patch(obj, ops)
    except ApiError as e:
        raise ApiError.internal(e.message) from None
    return patched


def user_info(username: str, uid: str, groups: Sequence[str], extra: Mapping[str, Sequence[str]]) -> Obj:
    info: Obj = {"username": username}
    if uid:
        info["uid"] = uid
    if groups:
        info["groups"] = list(groups)
    if extra:
        info["extra"] = {k: list(v) for k, v in extra.items()}
    return info
