"""ValidatingAdmissionPolicy decisions, without I/O: a policy compiled once, whether a
policy or binding applies to a request, and what its CEL validations decide.

The shell (kybernetes/apiserver/admissionpolicy.py) keeps the compiled policies from
the watch cache, looks up params, namespaces and the authorizer, and turns decisions
into a refusal or warnings. Wording follows kube-apiserver's validating policy
dispatcher: a denial is `ValidatingAdmissionPolicy 'P' with binding 'B' denied request:
MESSAGE`, a warning `Validation failed for ValidatingAdmissionPolicy 'P' with binding
'B': MESSAGE`, and a failed validation without a message says `failed expression: EXPR`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import cel
from kybernetes.api.errors import FieldError, invalid
from kybernetes.api.selectors import label_selector_matcher

Obj = dict[str, Any]

VARIABLES = ("object", "oldObject", "request", "params", "namespaceObject", "authorizer", "variables")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Upstream's reasonToCode: the reason a validation names picks the HTTP code.
REASON_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}


@dataclass(frozen=True)
class Validation:
    program: cel.Program
    message: str
    message_program: cel.Program | None
    reason: str


@dataclass
class CompiledPolicy:
    name: str
    obj: Obj
    failure_policy: str
    match: Obj
    param_kind: Obj | None
    match_conditions: list[tuple[str, cel.Program]] = field(default_factory=list)
    variables: list[tuple[str, cel.Program]] = field(default_factory=list)
    validations: list[Validation] = field(default_factory=list)
    audit_annotations: list[tuple[str, cel.Program]] = field(default_factory=list)
    error: str = ""  # a configuration error: every matching request fails by failurePolicy


@dataclass(frozen=True)
class Request:
    """The admission attributes of one request (admission.Attributes)."""

    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    group: str
    version: str
    resource: str
    subresource: str
    kind: str
    namespace: str
    name: str
    namespaced: bool
    user: Obj  # userInfo: username, uid, groups, extra
    dry_run: bool = False

    def as_cel(self) -> Obj:
        gvk = {"group": self.group, "version": self.version, "kind": self.kind}
        gvr = {"group": self.group, "version": self.version, "resource": self.resource}
        out: Obj = {"kind": gvk, "resource": gvr, "requestKind": gvk, "requestResource": gvr,
                    "name": self.name, "namespace": self.namespace, "operation": self.operation,
                    "userInfo": self.user, "dryRun": self.dry_run}
        if self.subresource:
            out["subResource"] = out["requestSubResource"] = self.subresource
        return out


@dataclass(frozen=True)
class Decision:
    """A validation that did not pass: `action` deny (with the validation's reason) or,
    when failurePolicy Ignore swallowed an error, admit."""

    message: str
    reason: str = "Invalid"
    index: int = 0


# -- compiling --------------------------------------------------------------------------

def _env() -> Any:
    return cel.new_env(VARIABLES)


def _checked_bool(program: cel.Program) -> str:
    return "" if program.returns in ("bool", "dyn") else "cel expression must evaluate to a bool"


def compile_errors(obj: Obj) -> list[FieldError]:
    """Expressions of a policy that do not compile, as the real server's validation
    reports them (`spec.validations[0].expression: Invalid value: "...": compilation
    failed: ERROR: <input>:1:...`)."""
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    env = _env()
    errs: list[FieldError] = []

    def check(path: str, text: Any, want_bool: bool = False, want_string: bool = False) -> None:
        if not isinstance(text, str) or not text:
            return
        try:
            program = cel.compile_expression(env, text)
        except cel.CelError as e:
            errs.append(invalid(path, text, str(e)))
            return
        if want_bool and _checked_bool(program):
            errs.append(invalid(path, text, _checked_bool(program)))
        if want_string and program.returns not in ("string", "dyn"):
            errs.append(invalid(path, text, "must evaluate to string"))

    for i, v in enumerate(_dicts(spec.get("validations"))):
        check(f"spec.validations[{i}].expression", v.get("expression"), want_bool=True)
        check(f"spec.validations[{i}].messageExpression", v.get("messageExpression"), want_string=True)
    for i, c in enumerate(_dicts(spec.get("matchConditions"))):
        check(f"spec.matchConditions[{i}].expression", c.get("expression"), want_bool=True)
    for i, v in enumerate(_dicts(spec.get("variables"))):
        name = v.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            errs.append(invalid(f"spec.variables[{i}].name", name, "name is not a valid CEL identifier"))
        check(f"spec.variables[{i}].expression", v.get("expression"))
    for i, a in enumerate(_dicts(spec.get("auditAnnotations"))):
        check(f"spec.auditAnnotations[{i}].valueExpression", a.get("valueExpression"))
    return errs


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def compile_policy(obj: Obj) -> CompiledPolicy:
    spec = obj.get("spec") or {}
    policy = CompiledPolicy(name=obj["metadata"]["name"], obj=obj,
                            failure_policy=spec.get("failurePolicy") or "Fail",
                            match=spec.get("matchConstraints") or {}, param_kind=spec.get("paramKind"))
    env = _env()
    try:
        for c in _dicts(spec.get("matchConditions")):
            policy.match_conditions.append((c.get("name") or "", cel.compile_expression(env, c["expression"])))
        for v in _dicts(spec.get("variables")):
            policy.variables.append((v["name"], cel.compile_expression(env, v["expression"])))
        for v in _dicts(spec.get("validations")):
            message_expr = v.get("messageExpression")
            policy.validations.append(Validation(
                cel.compile_expression(env, v["expression"]), v.get("message") or "",
                cel.compile_expression(env, message_expr) if message_expr else None, v.get("reason") or ""))
        for a in _dicts(spec.get("auditAnnotations")):
            policy.audit_annotations.append((a.get("key") or "", cel.compile_expression(env, a["valueExpression"])))
    except (cel.CelError, KeyError) as e:
        policy.error = str(e)
    return policy


# -- matching ------------------------------------------------------------------------------

def _listed(values: Any, value: str) -> bool:
    return isinstance(values, list) and ("*" in values or value in values)


def _resource_listed(resources: Any, resource: str, subresource: str) -> bool:
    if not isinstance(resources, list):
        return False
    full = f"{resource}/{subresource}" if subresource else resource
    for r in resources:
        if r in ("*/*", full):
            return True
        if r == "*" and not subresource:
            return True
        if subresource and r == f"{resource}/*":
            return True
        if subresource and r == f"*/{subresource}":
            return True
    return False


def rule_matches(rule: Obj, req: Request, match_policy: str) -> bool:
    """A NamedRuleWithOperations against the request. Under matchPolicy Equivalent
    every version of the resource matches (we serve each kind in one shape)."""
    if not _listed(rule.get("operations"), req.operation):
        return False
    if not _listed(rule.get("apiGroups"), req.group):
        return False
    if match_policy == "Exact" and not _listed(rule.get("apiVersions"), req.version):
        return False
    if not _resource_listed(rule.get("resources"), req.resource, req.subresource):
        return False
    names = rule.get("resourceNames")
    if names and req.name not in names:
        return False
    scope = rule.get("scope") or "*"
    return scope == "*" or (scope == "Namespaced") == req.namespaced


def _labels(obj: Obj | None) -> Mapping[str, str]:
    if not isinstance(obj, dict):
        return {}
    labels = (obj.get("metadata") or {}).get("labels")
    return labels if isinstance(labels, dict) else {}


def resources_match(match: Obj, req: Request, obj: Obj | None, old: Obj | None,
                    namespace_labels: Mapping[str, str] | None, need_rules: bool) -> bool:
    """MatchResources: namespace and object selectors, resource rules (all of them when
    `need_rules` is False and none are given), exclusions winning."""
    ns_selector = match.get("namespaceSelector")
    if ns_selector:
        matcher = label_selector_matcher(ns_selector)
        if matcher is None:
            return False
        if req.namespaced or (req.group == "" and req.resource == "namespaces"):
            # A cluster-scoped object (other than a Namespace) has no namespace to select.
            labels = namespace_labels if req.namespaced else _labels(obj if obj is not None else old)
            if not matcher(labels or {}):
                return False
    obj_selector = match.get("objectSelector")
    if obj_selector:
        matcher = label_selector_matcher(obj_selector)
        if matcher is None:
            return False
        if not (matcher(_labels(obj)) if obj is not None else False) and \
                not (matcher(_labels(old)) if old is not None else False):
            return False
    policy = match.get("matchPolicy") or "Equivalent"
    rules = match.get("resourceRules")
    if rules or need_rules:
        if not any(rule_matches(r, req, policy) for r in _dicts(rules)):
            return False
    return not any(rule_matches(r, req, policy) for r in _dicts(match.get("excludeResourceRules")))


# -- evaluating ----------------------------------------------------------------------------

def _error_message(program: cel.Program, error: cel.CelError) -> str:
    return f"expression '{program.text}' resulted in error: {error}"


_MAX_ANNOTATION = 10 * 1024  # upstream's maxAuditAnnotationValueLength


def evaluate(policy: CompiledPolicy, data: Obj, authorize: cel.AuthorizeFn | None,
             annotations: dict[str, str] | None = None) -> list[Decision]:
    """What the policy decides for one binding and one param: the validations that
    failed (empty: admitted). `data` holds object, oldObject, request, params,
    namespaceObject. Errors follow the policy's failurePolicy. The values of the policy's
    auditAnnotations are added to `annotations` as `POLICY/KEY`."""
    fail = policy.failure_policy != "Ignore"
    if policy.error:
        return [Decision(f"failed to configure policy: {policy.error}")] if fail else []
    data = dict(data)
    data["authorizer"] = cel.authorizer_value()
    data["variables"] = {}
    with cel.authorizing(authorize or _deny_all):
        try:
            env = _env()
            if policy.variables:
                variables: Obj = {}
                for name, program in policy.variables:
                    try:
                        variables[name] = cel.evaluate(program, {**data, "variables": variables})
                    except cel.CelError:
                        continue  # a use of it fails as a missing key, where it is used
                data["variables"] = variables
            act = cel.activation(env, data)
        except cel.CelError as e:
            return [Decision(f"failed to convert object: {e}")] if fail else []
        for _name, program in policy.match_conditions:
            try:
                matched = cel.evaluate(program, act)
            except cel.CelError as e:
                return [Decision(_error_message(program, e))] if fail else []
            if matched is not True:
                return []
        out: list[Decision] = []
        for i, v in enumerate(policy.validations):
            try:
                passed = cel.evaluate(v.program, act)
            except cel.CelError as e:
                if fail:
                    out.append(Decision(_error_message(v.program, e), v.reason or "Invalid", i))
                continue
            if passed is True:
                continue
            out.append(Decision(_message(v, act), v.reason or "Invalid", i))
        for key, program in policy.audit_annotations:
            try:
                value = cel.evaluate(program, act)
            except cel.CelError as e:
                if fail:
                    out.append(Decision(_error_message(program, e)))
                continue
            if isinstance(value, str) and annotations is not None:
                name = f"{policy.name}/{key}"
                previous = annotations.get(name)
                value = value[:_MAX_ANNOTATION]
                # Several bindings (params) giving different values are listed together.
                annotations[name] = value if previous in (None, value) else f"{previous}, {value}"
        return out


def _message(v: Validation, act: Any) -> str:
    if v.message_program is not None:
        try:
            text = cel.evaluate(v.message_program, act)
        except cel.CelError:
            text = None
        if isinstance(text, str) and text.strip() and "\n" not in text:
            return text
    if v.message:
        return v.message
    return f"failed expression: {v.program.text.strip()}"


def _deny_all(attrs: Obj) -> tuple[bool, str]:
    return False, "no authorizer"


def denial_message(policy: str, binding: str | None, message: str) -> str:
    if binding is None:
        return f"ValidatingAdmissionPolicy '{policy}' denied request: {message}"
    return f"ValidatingAdmissionPolicy '{policy}' with binding '{binding}' denied request: {message}"


def warning_message(policy: str, binding: str, message: str) -> str:
    return f"Validation failed for ValidatingAdmissionPolicy '{policy}' with binding '{binding}': {message}"


def param_selector(ref: Obj) -> Callable[[Mapping[str, str]], bool] | None:
    """What a paramRef's selector selects (an empty selector selects every param)."""
    return label_selector_matcher(ref.get("selector") or {})
