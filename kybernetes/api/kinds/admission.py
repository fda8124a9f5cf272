"""admissionregistration.k8s.io: webhook configurations and validating admission
policies with their bindings, defaulted, validated and printed as the real server
does. They are stored and served; calling webhooks and evaluating CEL belongs to
the admission chain."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from kybernetes.api.admissionpolicy import compile_errors as policy_compile_errors
from kybernetes.api.defaults import as_map, child_map, dicts, set_default
from kybernetes.api.errors import FieldError, duplicate, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import qualified_name_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_str,
    column,
    dict_at,
    doc,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import as_dict, as_list, enum_errors, validate_label_selector
from kybernetes.api.webhooks import compile_match_condition

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

_OPERATIONS = ["*", "CONNECT", "CREATE", "DELETE", "UPDATE"]
_SCOPES = ["*", "Cluster", "Namespaced"]
_FAILURE_POLICIES = ["Fail", "Ignore"]
_MATCH_POLICIES = ["Equivalent", "Exact"]
_SIDE_EFFECTS = ["None", "NoneOnDryRun"]
_REINVOCATION = ["IfNeeded", "Never"]
_REVIEW_VERSIONS = ("v1", "v1beta1")
_VALIDATION_ACTIONS = ["Audit", "Deny", "Warn"]
_VALIDATION_REASONS = ["Forbidden", "Invalid", "RequestEntityTooLarge", "Unauthorized"]


# -- defaulting -----------------------------------------------------------------------------

def _default_rules(rules: Any) -> None:
    for rule in dicts(rules):
        set_default(rule, "scope", "*")


def _default_match(holder: Obj) -> None:
    set_default(holder, "matchPolicy", "Equivalent")
    for key in ("namespaceSelector", "objectSelector"):
        if holder.get(key) is None:
            holder[key] = {}


def default_webhook_configuration(obj: Obj, mutating: bool) -> None:
    for hook in dicts(obj.get("webhooks")):
        set_default(hook, "failurePolicy", "Fail")
        _default_match(hook)
        if hook.get("timeoutSeconds") is None:
            hook["timeoutSeconds"] = 10
        if mutating:
            set_default(hook, "reinvocationPolicy", "Never")
        service = as_map(as_map(hook.get("clientConfig")).get("service"))
        if service and service.get("port") is None:
            service["port"] = 443
        _default_rules(hook.get("rules"))


def default_policy(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "failurePolicy", "Fail")
    constraints = spec.get("matchConstraints")
    if isinstance(constraints, dict):
        _default_match(constraints)
        _default_rules(constraints.get("resourceRules"))
        _default_rules(constraints.get("excludeResourceRules"))


def default_binding(obj: Obj) -> None:
    resources = as_map(child_map(obj, "spec").get("matchResources"))
    if resources:
        _default_match(resources)
        _default_rules(resources.get("resourceRules"))
        _default_rules(resources.get("excludeResourceRules"))


# -- validation -----------------------------------------------------------------------------

def _validate_rule(path: str, rule: Obj) -> Errors:
    errs: Errors = []
    operations = as_list(rule.get("operations"))
    if not operations:
        errs.append(required(f"{path}.operations"))
    for i, op in enumerate(operations):
        errs += enum_errors(f"{path}.operations[{i}]", op, _OPERATIONS)
    for key in ("apiGroups", "apiVersions", "resources"):
        if not as_list(rule.get(key)):
            errs.append(required(f"{path}.{key}"))
    errs += enum_errors(f"{path}.scope", rule.get("scope"), _SCOPES, required_when_empty=False)
    return errs


def _validate_rules(path: str, rules: Any) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(as_list(rules)):
        errs += _validate_rule(f"{path}[{i}]", as_dict(rule))
    return errs


def _validate_selectors(path: str, holder: Obj) -> Errors:
    errs: Errors = []
    for key in ("namespaceSelector", "objectSelector"):
        if holder.get(key) is not None:
            errs += validate_label_selector(f"{path}.{key}", holder[key])
    return errs


def _validate_client_config(path: str, config: Obj) -> Errors:
    url, service = config.get("url"), config.get("service")
    if (url is None) == (service is None):
        return [required(path, "exactly one of url or service is required")]
    if url is not None:
        return _url_errors(f"{path}.url", str(url))
    svc = as_dict(service)
    errs: Errors = []
    for key in ("namespace", "name"):
        if not svc.get(key):
            errs.append(required(f"{path}.service.{key}", f"service {key} is required"))
    svc_path = svc.get("path")
    if svc_path:
        text = str(svc_path)
        if not text.startswith("/"):
            errs.append(invalid(f"{path}.service.path", svc_path, "must start with a '/'"))
        else:
            for i, segment in enumerate(text[1:].split("/")):
                if not segment and i < len(text[1:].split("/")) - 1:
                    errs.append(invalid(f"{path}.service.path", svc_path, f"segment[{i}] may not be empty"))
    port = svc.get("port")
    if port is not None and (not isinstance(port, int) or not 1 <= port <= 65535):
        errs.append(invalid(f"{path}.service.port", port, "port is not valid: must be between 1 and 65535, inclusive"))
    return errs


_URL_FORM = "; desired format: https://host[/path]"


def _url_errors(path: str, url: str) -> Errors:
    """A webhook URL as upstream's ValidateWebhookURL checks it: https, a host, and no
    user information, query or fragment (the server adds `?timeout=`)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as e:
        return [required(path, f"url must be a valid URL: {e}{_URL_FORM}")]
    errs: Errors = []
    if parts.scheme != "https":
        errs.append(invalid(path, parts.scheme, "'https' is the only allowed URL scheme" + _URL_FORM))
    if not parts.hostname:
        errs.append(invalid(path, parts.netloc, "host must be specified" + _URL_FORM))
    if "@" in parts.netloc:
        errs.append(invalid(path, parts.netloc.rsplit("@", 1)[0], "user information is not permitted in the URL"))
    if parts.fragment or url.endswith("#"):
        errs.append(invalid(path, parts.fragment, "fragments are not permitted in the URL"))
    if parts.query or "?" in url:
        errs.append(invalid(path, parts.query, "query parameters are not permitted in the URL"))
    return errs


_MAX_MATCH_CONDITIONS = 64


def _match_condition_errors(path: str, conditions: Any) -> Errors:
    items = as_list(conditions)
    errs: Errors = []
    if len(items) > _MAX_MATCH_CONDITIONS:
        errs.append(FieldError("FieldValueTooMany", path, f"must have at most {_MAX_MATCH_CONDITIONS} items",
                               len(items), True))
    seen: set[str] = set()
    for i, raw in enumerate(items):
        cond = as_dict(raw)
        name = cond.get("name")
        if not name:
            errs.append(required(f"{path}[{i}].name"))
        elif name in seen:
            errs.append(duplicate(f"{path}[{i}].name", name))
        else:
            errs += [invalid(f"{path}[{i}].name", name, m) for m in qualified_name_errors(str(name))]
        seen.add(str(name))
        if not cond.get("expression"):
            errs.append(required(f"{path}[{i}].expression"))
        elif (problem := compile_match_condition(cond).error):
            errs.append(invalid(f"{path}[{i}].expression", cond.get("expression"), problem))
    return errs


def _webhook_name_errors(path: str, name: Any) -> Errors:
    if not name:
        return [required(path)]
    text = str(name)
    if len(text.split(".")) < 3:
        return [invalid(path, name, "should be a domain with at least three segments separated by dots")]
    return []


def validate_webhook_configuration(obj: Obj, mutating: bool) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, hook in enumerate(dicts(obj.get("webhooks"))):
        path = f"webhooks[{i}]"
        errs += _webhook_name_errors(f"{path}.name", hook.get("name"))
        if hook.get("name") in names:
            errs.append(duplicate(f"{path}.name", hook.get("name")))
        names.add(str(hook.get("name")))
        errs += _validate_client_config(f"{path}.clientConfig", as_dict(hook.get("clientConfig")))
        errs += _validate_rules(f"{path}.rules", hook.get("rules"))
        errs += enum_errors(f"{path}.failurePolicy", hook.get("failurePolicy"), _FAILURE_POLICIES,
                            required_when_empty=False)
        errs += enum_errors(f"{path}.matchPolicy", hook.get("matchPolicy"), _MATCH_POLICIES,
                            required_when_empty=False)
        errs += enum_errors(f"{path}.sideEffects", hook.get("sideEffects"), _SIDE_EFFECTS)
        if mutating:
            errs += enum_errors(f"{path}.reinvocationPolicy", hook.get("reinvocationPolicy"), _REINVOCATION,
                                required_when_empty=False)
        timeout = hook.get("timeoutSeconds")
        if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
            errs.append(invalid(f"{path}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 seconds"))
        versions = as_list(hook.get("admissionReviewVersions"))
        if not versions:
            errs.append(required(f"{path}.admissionReviewVersions",
                                 "must specify one of " + ", ".join(_REVIEW_VERSIONS)))
        elif not any(v in _REVIEW_VERSIONS for v in versions):
            errs.append(invalid(f"{path}.admissionReviewVersions", versions,
                                "must include at least one of " + ", ".join(_REVIEW_VERSIONS)))
        errs += _validate_selectors(path, hook)
        if hook.get("matchConditions") is not None:
            errs += _match_condition_errors(f"{path}.matchConditions", hook.get("matchConditions"))
    return errs


def _validate_match_resources(path: str, match: Obj, need_rules: bool) -> Errors:
    errs: Errors = []
    if need_rules and not as_list(match.get("resourceRules")):
        errs.append(required(f"{path}.resourceRules"))
    errs += _validate_rules(f"{path}.resourceRules", match.get("resourceRules"))
    errs += _validate_rules(f"{path}.excludeResourceRules", match.get("excludeResourceRules"))
    errs += enum_errors(f"{path}.matchPolicy", match.get("matchPolicy"), _MATCH_POLICIES, required_when_empty=False)
    errs += _validate_selectors(path, match)
    return errs


def validate_policy(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = []
    if not as_list(spec.get("validations")) and not as_list(spec.get("auditAnnotations")):
        errs.append(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
    for i, v in enumerate(as_list(spec.get("validations"))):
        if not as_dict(v).get("expression"):
            errs.append(required(f"spec.validations[{i}].expression"))
        errs += enum_errors(f"spec.validations[{i}].reason", as_dict(v).get("reason"), _VALIDATION_REASONS,
                            required_when_empty=False)
    # Expressions are compiled when the policy is written, so a typo is refused then.
    errs += policy_compile_errors(obj)
    errs += enum_errors("spec.failurePolicy", spec.get("failurePolicy"), _FAILURE_POLICIES, required_when_empty=False)
    if spec.get("matchConstraints") is None:
        errs.append(required("spec.matchConstraints"))
    else:
        errs += _validate_match_resources("spec.matchConstraints", as_dict(spec["matchConstraints"]), True)
    param_kind = spec.get("paramKind")
    if param_kind is not None:
        for key in ("apiVersion", "kind"):
            if not as_dict(param_kind).get(key):
                errs.append(required(f"spec.paramKind.{key}"))
    return errs


def validate_binding(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = []
    if not spec.get("policyName"):
        errs.append(required("spec.policyName"))
    actions = as_list(spec.get("validationActions"))
    if not actions:
        errs.append(required("spec.validationActions"))
    seen: set[str] = set()
    for i, action in enumerate(actions):
        if action in seen:
            errs.append(duplicate(f"spec.validationActions[{i}]", action))
        seen.add(action)
        errs += enum_errors(f"spec.validationActions[{i}]", action, _VALIDATION_ACTIONS)
    if "Deny" in seen and "Warn" in seen:
        errs.append(invalid("spec.validationActions", actions, "must not contain both Deny and Warn"))
    param_ref = spec.get("paramRef")
    if param_ref is not None:
        ref = as_dict(param_ref)
        if ref.get("name") and ref.get("selector") is not None:
            errs.append(invalid("spec.paramRef", "", "name and selector are mutually exclusive"))
        errs += enum_errors("spec.paramRef.parameterNotFoundAction", ref.get("parameterNotFoundAction"),
                            ["Allow", "Deny"])
    if spec.get("matchResources") is not None:
        errs += _validate_match_resources("spec.matchResources", as_dict(spec["matchResources"]), False)
    return errs


# -- tables ---------------------------------------------------------------------------------

def _param_ref_text(spec: Any) -> str:
    ref = dict_at(spec, "paramRef")
    if not ref:
        return "<unset>"
    if ref.get("name"):
        return f"{as_str(ref.get('namespace')) or '*'}/{as_str(ref['name'])}"
    if ref.get("selector") is not None:
        return "<selector>"
    return "*"


class _WebhookConfigurationStrategy(KindStrategy):
    mutating = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_webhook_configuration(obj, self.mutating)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_webhook_configuration(obj, self.mutating)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return validate_webhook_configuration(new, self.mutating)

    def has_generation(self, info: ResourceInfo, obj: Obj) -> bool:
        return True

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("Webhooks", "Webhooks indicates the number of webhooks.", "integer"),
                age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), len(list_at(obj, "webhooks")), age_of(obj, now)]


class ValidatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "ValidatingWebhookConfiguration"),)


class MutatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "MutatingWebhookConfiguration"),)
    mutating = True


class ValidatingAdmissionPolicyStrategy(KindStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),)
    status_metadata = ()  # metav1.ResetObjectMetaForStatus

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_policy(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_policy(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "admissionregistration.v1.ValidatingAdmissionPolicySpec"
        return [name_column(), column("Validations", doc(spec, "validations"), "integer"),
                column("ParamKind", doc(spec, "paramKind")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        spec = dict_at(obj, "spec")
        kind = dict_at(spec, "paramKind")
        param_kind = f"{as_str(kind.get('apiVersion'))}/{as_str(kind.get('kind'))}" if kind else "<unset>"
        return [name_of(obj), len(list_at(spec, "validations")), param_kind, age_of(obj, now)]


class ValidatingAdmissionPolicyBindingStrategy(KindStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_binding(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_binding(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "admissionregistration.v1.ValidatingAdmissionPolicyBindingSpec"
        return [name_column(), column("PolicyName", doc(spec, "policyName")),
                column("ParamRef", doc(spec, "paramRef")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        spec = dict_at(obj, "spec")
        return [name_of(obj), as_str(spec.get("policyName")), _param_ref_text(spec), age_of(obj, now)]


# -- mutating admission policies ------------------------------------------------------------

_PATCH_TYPES = ["ApplyConfiguration", "JSONPatch"]


def default_mutating_policy(obj: Obj) -> None:
    default_policy(obj)
    set_default(child_map(obj, "spec"), "reinvocationPolicy", "Never")


def validate_mutating_policy(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = []
    mutations = as_list(spec.get("mutations"))
    if not mutations:
        errs.append(required("spec.mutations", "mutations must contain at least one item"))
    for i, m in enumerate(mutations):
        mutation, path = as_dict(m), f"spec.mutations[{i}]"
        patch_type = mutation.get("patchType")
        errs += enum_errors(f"{path}.patchType", patch_type, _PATCH_TYPES)
        if patch_type == "ApplyConfiguration" and not as_dict(mutation.get("applyConfiguration")).get("expression"):
            errs.append(required(f"{path}.applyConfiguration.expression"))
        if patch_type == "JSONPatch" and not as_dict(mutation.get("jsonPatch")).get("expression"):
            errs.append(required(f"{path}.jsonPatch.expression"))
    errs += enum_errors("spec.failurePolicy", spec.get("failurePolicy"), _FAILURE_POLICIES, required_when_empty=False)
    errs += enum_errors("spec.reinvocationPolicy", spec.get("reinvocationPolicy"), _REINVOCATION,
                        required_when_empty=False)
    if spec.get("matchConstraints") is None:
        errs.append(required("spec.matchConstraints"))
    else:
        errs += _validate_match_resources("spec.matchConstraints", as_dict(spec["matchConstraints"]), True)
    return errs


def validate_mutating_binding(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs: Errors = [] if spec.get("policyName") else [required("spec.policyName")]
    if spec.get("matchResources") is not None:
        errs += _validate_match_resources("spec.matchResources", as_dict(spec["matchResources"]), False)
    return errs


class MutatingAdmissionPolicyStrategy(KindStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_mutating_policy(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_mutating_policy(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "admissionregistration.v1.MutatingAdmissionPolicySpec"
        return [name_column(), column("Mutations", doc(spec, "mutations"), "integer"),
                column("ParamKind", doc(spec, "paramKind")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        spec = dict_at(obj, "spec")
        kind = dict_at(spec, "paramKind")
        param_kind = f"{as_str(kind.get('apiVersion'))}/{as_str(kind.get('kind'))}" if kind else "<unset>"
        return [name_of(obj), len(list_at(spec, "mutations")), param_kind, age_of(obj, now)]


class MutatingAdmissionPolicyBindingStrategy(KindStrategy):
    refs = (KindRef("admissionregistration.k8s.io", "MutatingAdmissionPolicyBinding"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_binding(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_mutating_binding(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "admissionregistration.v1.MutatingAdmissionPolicyBindingSpec"
        return [name_column(), column("PolicyName", doc(spec, "policyName")),
                column("ParamRef", doc(spec, "paramRef")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        spec = dict_at(obj, "spec")
        return [name_of(obj), as_str(spec.get("policyName")), _param_ref_text(spec), age_of(obj, now)]
