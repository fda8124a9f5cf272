"""Validation of objects before they are stored, as the Kubernetes API server does it.

Four checks, each a pure function of the decoded (and defaulted) object:

* `validate` - object metadata, then the kind's own rules from its strategy
  (`kybernetes.api.kinds`), returning `FieldError`s with the real server's wording;
  the API server answers them with 422 Invalid. For custom resources the strategy
  checks the CRD schema (`validate_custom`).
* `unknown_fields` - paths of fields the kind's structural schema does not know,
  for `fieldValidation=Strict|Warn` (`unknown field "spec.bogus"`).
* `type_errors` / `type_error_message` - JSON values of the wrong type for a
  built-in kind; the real server fails those while decoding, with 400 BadRequest.
* `validate_custom` - a custom resource against its CRD's `openAPIV3Schema`.

It also keeps the rules several kinds share, once: the syntax of names, labels and
ports, resource lists, label selectors, object metadata, and the pod spec
(containers, probes, volumes, tolerations) with the pod templates of workloads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_UP, Decimal
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from kybernetes.api import downward, podfields, schedulingspec, schemas
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from kybernetes.api.names import (
    dns1035_label_errors,
    dns1123_label_errors,
    dns1123_subdomain_errors,
    label_value_errors,
    path_segment_name_errors,
    port_name_errors,
    qualified_name_errors,
)
from kybernetes.api.quantity import QUANTITY_REGEX_MSG, parse_quantity
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.selectors import label_selector_matcher

if TYPE_CHECKING:
    from kybernetes.api.kinds.base import KindStrategy, WritePolicy

Obj = dict[str, Any]
Errors = list[FieldError]


class GoValue:
    """A value shown the way Go's `%#v` prints it in the real server's messages
    (e.g. `map[string]string{"app":"web"}`); `FieldError` renders it unquoted."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"GoValue({self.text!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GoValue) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def as_dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def objects_at(path: str, value: Any) -> Iterator[tuple[str, Obj]]:
    """(`path[i]`, item) for each object in a list field; items of another type are
    left to the type checks, which report them in Go's words."""
    for i, item in enumerate(value if isinstance(value, list) else ()):
        if isinstance(item, dict):
            yield f"{path}[{i}]", item


def seen_before(seen: set[Any], value: Any) -> bool:
    """Record `value`; True if it was already recorded (unhashable values never repeat)."""
    if not isinstance(value, str | int):
        return False
    if value in seen:
        return True
    seen.add(value)
    return False


def not_found(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", path, "", value, True)


def too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"may not be more than {limit} bytes")


# -- numbers and ports ----------------------------------------------------------------------

_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
    f"regex used for validation is '{_PERCENT_FMT}')")
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def port_errors(path: str, value: Any, *, allow_zero: bool = False) -> Errors:
    if not is_int(value):
        return [invalid(path, value, _PORT_RANGE_MSG)]
    if value == 0 and allow_zero:
        return []
    return [] if 1 <= value <= 65535 else [invalid(path, value, _PORT_RANGE_MSG)]


def int_or_name_port_errors(path: str, value: Any) -> Errors:
    if isinstance(value, str):
        return [invalid(path, value, m) for m in port_name_errors(value)]
    return port_errors(path, value)


def name_errors(fn: Callable[[str], list[str]], path: str, value: Any) -> Errors:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in fn(value)]


def non_negative(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if not is_int(value) or value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def positive(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if not is_int(value) or value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def enum_errors(path: str, value: Any, supported: list[str], *, required_when_empty: bool = True) -> Errors:
    if value in (None, ""):
        return [required(path)] if required_when_empty else []
    if value not in supported:
        return [not_supported(path, value, supported)]
    return []


# -- quantities ---------------------------------------------------------------------------

def _format_quantity(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage", "storage", "pods"}


def _resource_name_errors(name: str) -> list[str]:
    if name in _STANDARD_RESOURCES or name.startswith("hugepages-") or "/" in name:
        return qualified_name_errors(name)
    return ["must be a standard resource type or fully qualified"]


def validate_resource_list(path: str, values: Any,
                           name_rule: Callable[[str], list[str]] = _resource_name_errors,
                           integer_rule: Callable[[str], bool] | None = None) -> Errors:
    """integer_rule: which names only take whole quantities (ResourceQuota's counted resources)."""
    errs: Errors = []
    if not isinstance(values, dict):
        return errs
    for name, quantity in values.items():
        key_path = f"{path}[{name}]"
        errs += [invalid(key_path, name, m) for m in name_rule(name)]
        parsed = parse_quantity(quantity)
        if parsed is None:
            errs.append(invalid(key_path, _format_quantity(quantity), QUANTITY_REGEX_MSG))
            continue
        if parsed < 0:
            errs.append(invalid(key_path, _format_quantity(quantity), "must be greater than or equal to 0"))
        if integer_rule is not None and integer_rule(name) and parsed != parsed.to_integral_value():
            errs.append(invalid(key_path, GoValue(_format_quantity(quantity)), "must be an integer"))
    return errs


def _validate_resources(path: str, res: Any) -> Errors:
    if not isinstance(res, dict):
        return []
    limits, requests = res.get("limits"), res.get("requests")
    errs = validate_resource_list(f"{path}.limits", limits) + validate_resource_list(f"{path}.requests", requests)
    if isinstance(limits, dict) and isinstance(requests, dict):
        for name, request in requests.items():
            if name not in limits:
                continue
            req, lim = parse_quantity(request), parse_quantity(limits[name])
            if req is not None and lim is not None and req > lim:
                errs.append(invalid(f"{path}.requests", _format_quantity(request),
                                    f"must be less than or equal to {name} limit of {_format_quantity(limits[name])}"))
    return errs


# -- Go-style rendering of values in messages ---------------------------------------------


def go_string_map(value: Any) -> str:
    if not isinstance(value, dict):
        return "map[string]string(nil)"
    body = ", ".join(f'"{k}":"{v}"' for k, v in sorted(value.items()))
    return "map[string]string{" + body + "}"


def go_strings(values: Any) -> str:
    if not isinstance(values, list):
        return "[]string(nil)"
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def go_label_selector(sel: Any) -> GoValue:
    sel = sel if isinstance(sel, dict) else {}
    exprs = sel.get("matchExpressions")
    if isinstance(exprs, list):
        items = ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", '
            f'Values:{go_strings(e.get("values"))}}}' for e in exprs if isinstance(e, dict))
        rendered = "[]v1.LabelSelectorRequirement{" + items + "}"
    else:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels'))}, "
                   f"MatchExpressions:{rendered}}}")


def json_value(value: Any) -> GoValue:
    return GoValue(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


# -- label selectors ----------------------------------------------------------------------


def selector_is_empty(sel: Any) -> bool:
    return not isinstance(sel, dict) or (not sel.get("matchLabels") and not sel.get("matchExpressions"))


def validate_labels(path: str, labels: Any) -> Errors:
    errs: Errors = []
    if not isinstance(labels, dict):
        return errs
    for key, value in labels.items():
        errs += [invalid(path, key, m) for m in qualified_name_errors(key)]
        if isinstance(value, str):
            errs += [invalid(path, value, m) for m in label_value_errors(value)]
    return errs


def validate_label_selector(path: str, sel: Any) -> Errors:
    if not isinstance(sel, dict):
        return []
    errs = validate_labels(f"{path}.matchLabels", sel.get("matchLabels"))
    for p, expr in objects_at(f"{path}.matchExpressions", sel.get("matchExpressions")):
        op = expr.get("operator")
        values = expr.get("values")
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(f"{p}.values", "may not be specified when `operator` is 'Exists' or "
                                                     "'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", op, "not a valid selector operator"))
        key = expr.get("key")
        if not key:
            errs.append(required(f"{p}.key"))
        elif isinstance(key, str):
            errs += [invalid(f"{p}.key", key, m) for m in qualified_name_errors(key)]
    return errs


# -- object metadata ----------------------------------------------------------------------

TOTAL_ANNOTATION_SIZE = 256 * 1024
STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion", "customresourcecleanup.apiextensions.k8s.io"}


def _no_name_rule(value: str) -> list[str]:
    return []


def _name_rule(info: ResourceInfo) -> Callable[[str], list[str]]:
    if info.kind == "IPAddress" and info.group == "networking.k8s.io":
        return _no_name_rule  # an IP address: its strategy checks the canonical form
    if info.group == "apiregistration.k8s.io":
        return path_segment_name_errors  # `<version>.<group>`, and `v1.` for the core group
    if info.is_custom or info.group not in ("", "rbac.authorization.k8s.io"):
        return dns1123_subdomain_errors
    if info.kind == "Namespace":
        return dns1123_label_errors
    if info.kind == "Service":
        return dns1035_label_errors
    if info.group == "rbac.authorization.k8s.io":
        return path_segment_name_errors
    return dns1123_subdomain_errors


def validate_object_meta(info: ResourceInfo, meta: Any) -> Errors:
    if not isinstance(meta, dict):
        return [required("metadata")]
    errs: Errors = []
    name = meta.get("name")
    if not name:
        errs.append(required("metadata.name", "name or generateName is required"))
    else:
        errs += name_errors(_name_rule(info), "metadata.name", name)
    namespace = meta.get("namespace")
    if info.namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        else:
            errs += name_errors(dns1123_label_errors, "metadata.namespace", namespace)
    elif namespace:
        errs.append(forbidden("metadata.namespace", "not allowed on this type"))
    errs += validate_labels("metadata.labels", meta.get("labels"))
    annotations = meta.get("annotations")
    if isinstance(annotations, dict):
        size = 0
        for key, value in annotations.items():
            errs += [invalid("metadata.annotations", key, m) for m in qualified_name_errors(key.lower())]
            size += len(key.encode()) + len(str(value).encode())
        if size > TOTAL_ANNOTATION_SIZE:
            errs.append(too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE))
    for i, finalizer in enumerate(as_list(meta.get("finalizers"))):
        path = f"metadata.finalizers[{i}]"
        if not isinstance(finalizer, str):
            continue
        errs += [invalid(path, finalizer, m) for m in qualified_name_errors(finalizer)]
        # Only built-in kinds insist on a domain (core's validateKubeFinalizerName); a custom
        # resource's finalizer need only be a qualified name (conformance uses "test-finalizer").
        if not info.is_custom and "/" not in finalizer and finalizer not in STANDARD_FINALIZERS:
            errs.append(invalid(path, finalizer,
                                "name is neither a standard finalizer name nor is it fully qualified"))
    errs += _validate_owner_references(meta.get("ownerReferences"))
    return errs


def _validate_owner_references(refs: Any) -> Errors:
    errs: Errors = []
    controllers = []
    for ref in refs if isinstance(refs, list) else []:
        if not isinstance(ref, dict):
            continue
        path = "metadata.ownerReferences"
        for key, label in (("apiVersion", "version"), ("kind", "kind"), ("name", "name"), ("uid", "uid")):
            if not ref.get(key):
                errs.append(invalid(f"{path}.{key}", ref.get(key) or "", f"{label} must not be empty"))
        if ref.get("controller") is True:
            controllers.append(f"{ref.get('kind')}/{ref.get('name')}")
    if len(controllers) > 1:
        errs.append(invalid("metadata.ownerReferences", json_value(refs),
                            "Only one reference can have Controller set to true. Found \"true\" in references "
                            f"for {controllers[0]} and {controllers[1]}"))
    return errs


def immutable(path: str, new: Any, old: Any, shown: Any = None) -> Errors:
    if new == old:
        return []
    return [invalid(path, new if shown is None else shown, "field is immutable")]


def validate_object_meta_update(new: Any, old: Any) -> Errors:
    if not isinstance(new, dict) or not isinstance(old, dict):
        return []
    errs: Errors = []
    for key in ("name", "namespace", "uid", "creationTimestamp"):
        if old.get(key) and new.get(key) != old.get(key):
            errs.append(invalid(f"metadata.{key}", new.get(key) or "", "field is immutable"))
    return errs


# -- pods ---------------------------------------------------------------------------------

_RESTART_POLICIES = ["Always", "OnFailure", "Never"]
_DNS_POLICIES = ["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"]
_PULL_POLICIES = ["Always", "IfNotPresent", "Never"]
PROTOCOLS = ["SCTP", "TCP", "UDP"]
TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
_ENV_NAME_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"


def _env_name_errors(name: str) -> list[str]:
    if not name or "=" in name or not all(32 <= ord(ch) < 127 for ch in name):
        return [_ENV_NAME_MSG]
    return []


def _validate_probe(path: str, probe: Any, liveness: bool) -> Errors:
    if not isinstance(probe, dict):
        return []
    errs: Errors = []
    handlers = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if probe.get(k) is not None]
    if not handlers:
        errs.append(required(path, "must specify a handler type"))
    elif len(handlers) > 1:
        errs.append(forbidden(f"{path}.{handlers[1]}", "may not specify more than 1 handler type"))
    for key in ("initialDelaySeconds", "timeoutSeconds", "periodSeconds", "successThreshold", "failureThreshold"):
        errs += non_negative(f"{path}.{key}", probe.get(key))
    if liveness and probe.get("successThreshold") not in (None, 1):
        errs.append(invalid(f"{path}.successThreshold", probe.get("successThreshold"), "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        errs += int_or_name_port_errors(f"{path}.httpGet.port", http.get("port"))
        errs += enum_errors(f"{path}.httpGet.scheme", http.get("scheme"), ["HTTP", "HTTPS"], required_when_empty=False)
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += int_or_name_port_errors(f"{path}.tcpSocket.port", tcp.get("port"))
    return errs


def _validate_container(path: str, c: Obj, volumes: set[str]) -> Errors:
    errs: Errors = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += name_errors(dns1123_label_errors, f"{path}.name", name)
    image = c.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs += enum_errors(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), _PULL_POLICIES)
    errs += enum_errors(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
                  ["File", "FallbackToLogsOnError"])
    port_names: set[str] = set()
    for p, port in objects_at(f"{path}.ports", c.get("ports")):
        if port.get("containerPort") in (None, 0):
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += port_errors(f"{p}.containerPort", port.get("containerPort"))
        if port.get("hostPort") not in (None, 0):
            errs += port_errors(f"{p}.hostPort", port.get("hostPort"))
        errs += enum_errors(f"{p}.protocol", port.get("protocol"), PROTOCOLS)
        pname = port.get("name")
        if pname:
            errs += [invalid(f"{p}.name", pname, m) for m in port_name_errors(str(pname))]
            if seen_before(port_names, pname):
                errs.append(duplicate(f"{p}.name", pname))
    for p, env in objects_at(f"{path}.env", c.get("env")):
        ename = env.get("name")
        if not ename:
            errs.append(required(f"{p}.name"))
        else:
            errs += [invalid(f"{p}.name", ename, m) for m in _env_name_errors(str(ename))]
        if env.get("valueFrom") is not None and env.get("value"):
            errs.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
        errs += downward.env_errors(p, env)
    for i, env_from in enumerate(as_list(c.get("envFrom"))):
        errs += downward.env_from_errors(f"{path}.envFrom[{i}]", env_from)
    errs += _validate_resources(f"{path}.resources", c.get("resources"))
    mount_paths: set[str] = set()
    for p, mount in objects_at(f"{path}.volumeMounts", c.get("volumeMounts")):
        mname = mount.get("name")
        if not mname:
            errs.append(required(f"{p}.name"))
        elif not isinstance(mname, str) or mname not in volumes:
            errs.append(not_found(f"{p}.name", mname))
        mpath = mount.get("mountPath")
        if not mpath:
            errs.append(required(f"{p}.mountPath"))
        elif seen_before(mount_paths, mpath):
            errs.append(invalid(f"{p}.mountPath", mpath, "must be unique"))
    errs += _validate_probe(f"{path}.livenessProbe", c.get("livenessProbe"), liveness=True)
    errs += _validate_probe(f"{path}.readinessProbe", c.get("readinessProbe"), liveness=False)
    errs += _validate_probe(f"{path}.startupProbe", c.get("startupProbe"), liveness=True)
    return errs


def _validate_volumes(path: str, volumes: Any) -> tuple[set[str], Errors]:
    names: set[str] = set()
    errs: Errors = []
    for p, vol in objects_at(path, volumes):
        name = vol.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs += name_errors(dns1123_label_errors, f"{p}.name", name)
            if seen_before(names, name):
                errs.append(duplicate(f"{p}.name", name))
        sources = [k for k in vol if k != "name" and vol[k] is not None]
        errs += downward.volume_errors(p, vol)
        if not sources:
            errs.append(required(p, "must specify a volume type"))
        elif len(sources) > 1:
            errs.append(forbidden(f"{p}.{sources[1]}", "may not specify more than 1 volume type"))
        for source, needed in (("hostPath", "path"), ("secret", "secretName"),
                               ("persistentVolumeClaim", "claimName")):
            src = vol.get(source)
            if isinstance(src, dict) and not src.get(needed):
                errs.append(required(f"{p}.{source}.{needed}"))
        for source in ("configMap", "secret", "downwardAPI", "projected"):
            src = vol.get(source)
            mode = src.get("defaultMode") if isinstance(src, dict) else None
            if mode is not None and (not is_int(mode) or not 0 <= mode <= 0o777):
                errs.append(invalid(f"{p}.{source}.defaultMode", mode,
                                    "must be a number between 0 and 0777 (octal), both inclusive"))
    return names, errs


def _validate_tolerations(path: str, tolerations: Any) -> Errors:
    errs: Errors = []
    for p, t in objects_at(path, tolerations):
        key = t.get("key")
        if key:
            errs += [invalid(f"{p}.key", key, m) for m in qualified_name_errors(key)]
        op = t.get("operator") or "Equal"
        if op == "Exists":
            if t.get("value"):
                errs.append(invalid(f"{p}.operator", t.get("value"),
                                    "value must be empty when `operator` is 'Exists'"))
        elif op == "Equal":
            if not key:
                errs.append(invalid(f"{p}.operator", op, "operator must be Exists when `key` is empty, which "
                                                          "means \"match all values and all keys\""))
        else:
            errs.append(not_supported(f"{p}.operator", op, ["Equal", "Exists"]))
        effect = t.get("effect")
        if effect:
            errs += enum_errors(f"{p}.effect", effect, TAINT_EFFECTS)
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", effect or "",
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return errs


@dataclass
class RestartRule:
    """Which `restartPolicy` values a pod spec may have where it appears."""

    allowed: list[str]
    required_detail: str = ""


POD_RESTART = RestartRule(_RESTART_POLICIES)
ALWAYS_RESTART = RestartRule(["Always"])
JOB_RESTART = RestartRule(["OnFailure", "Never"], 'valid values: "OnFailure", "Never"')


def validate_pod_spec(path: str, spec: Any, rule: RestartRule = POD_RESTART,
                      claim_volumes: Iterable[str] = ()) -> Errors:
    """claim_volumes: names a controller turns into volumes at pod creation (StatefulSet claim templates)."""
    if not isinstance(spec, dict):
        return [required(path)]
    volume_names, errs = _validate_volumes(f"{path}.volumes", spec.get("volumes"))
    volume_names |= set(claim_volumes)
    containers = spec.get("containers")
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for cpath, c in objects_at(f"{path}.{key}", spec.get(key)):
            errs += _validate_container(cpath, c, volume_names)
            name = c.get("name")
            if name:
                if seen_before(seen, name):
                    errs.append(duplicate(f"{cpath}.name", name))
    policy = spec.get("restartPolicy")
    if not policy:
        errs.append(required(f"{path}.restartPolicy", rule.required_detail))
    elif policy not in rule.allowed:
        errs.append(not_supported(f"{path}.restartPolicy", policy, rule.allowed))
    errs += enum_errors(f"{path}.dnsPolicy", spec.get("dnsPolicy"), _DNS_POLICIES)
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not is_int(deadline) or not 1 <= deadline <= 2147483647):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"))
    errs += validate_labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    errs += _validate_tolerations(f"{path}.tolerations", spec.get("tolerations"))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs += name_errors(dns1123_label_errors, f"{path}.{key}", spec[key])
    errs += downward.host_aliases_errors(f"{path}.hostAliases", spec.get("hostAliases"))
    if spec.get("serviceAccountName"):
        errs += name_errors(dns1123_subdomain_errors, f"{path}.serviceAccountName", spec["serviceAccountName"])
    if spec.get("nodeName"):
        errs += name_errors(dns1123_subdomain_errors, f"{path}.nodeName", spec["nodeName"])
    errs += schedulingspec.validate_spec_scheduling(path, spec, validate_label_selector)
    errs += non_negative(f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds")
                          if is_int(spec.get("terminationGracePeriodSeconds")) else None)
    errs += _validate_security_contexts(path, spec)
    errs += podfields.spec_errors(path, spec)
    return errs


_SECCOMP_TYPES = ["Localhost", "RuntimeDefault", "Unconfined"]
_SYSCTL_SEGMENT = "[a-z0-9]([-_a-z0-9]*[a-z0-9])?"
_SYSCTL_FMT = f"({_SYSCTL_SEGMENT}[\\./])*{_SYSCTL_SEGMENT}"
_SYSCTL_RE = re.compile(f"^{_SYSCTL_FMT}$")
_SYSCTL_MAX = 253
# Which kernel namespace a sysctl lives in (a host namespace makes it the host's).
_SYSCTL_NAMESPACES = (("net.", "hostNetwork"), ("kernel.shm", "hostIPC"), ("kernel.msg", "hostIPC"),
                      ("kernel.sem", "hostIPC"), ("fs.mqueue.", "hostIPC"))


def _validate_sysctls(path: str, sysctls: Any, spec: Obj) -> Errors:
    errs: Errors = []
    seen: set[str] = set()
    for i, s in enumerate(sysctls if isinstance(sysctls, list) else []):
        name = s.get("name") if isinstance(s, dict) else None
        npath = f"{path}[{i}].name"
        if not name:
            errs.append(required(npath))
            continue
        if not isinstance(name, str) or len(name) > _SYSCTL_MAX or not _SYSCTL_RE.match(name):
            errs.append(invalid(npath, name, f"must have at most {_SYSCTL_MAX} characters and match regex "
                                             f"{_SYSCTL_FMT}"))
            continue
        if name in seen:
            errs.append(duplicate(npath, name))
        seen.add(name)
        first = min((name.find(c) for c in "./" if c in name), default=-1)
        dotted = name.translate(str.maketrans("./", "/.")) if first >= 0 and name[first] == "/" else name
        host = next((flag for prefix, flag in _SYSCTL_NAMESPACES if dotted.startswith(prefix)), "")
        if host and spec.get(host) is True:
            errs.append(invalid(npath, name, f"may not be specified when '{host}' is true"))
    return errs


def _validate_seccomp(path: str, profile: Any) -> Errors:
    if not isinstance(profile, dict):
        return []
    kind = profile.get("type")
    if kind not in _SECCOMP_TYPES:
        return [not_supported(f"{path}.type", kind, _SECCOMP_TYPES)]
    if kind == "Localhost" and not profile.get("localhostProfile"):
        return [required(f"{path}.localhostProfile", "must be set when seccomp type is Localhost")]
    if kind != "Localhost" and profile.get("localhostProfile") is not None:
        return [invalid(f"{path}.localhostProfile", profile["localhostProfile"],
                        "can only be set when seccomp type is Localhost")]
    return []


def _validate_security_contexts(path: str, spec: Obj) -> Errors:
    """seccompProfile types, sysctl names (none of a host namespace the pod shares), and
    procMount (Unmasked only in a user namespace), as upstream."""
    psc = spec.get("securityContext") if isinstance(spec.get("securityContext"), dict) else {}
    errs = _validate_seccomp(f"{path}.securityContext.seccompProfile", psc.get("seccompProfile"))
    errs += _validate_sysctls(f"{path}.securityContext.sysctls", psc.get("sysctls"), spec)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for cpath, c in objects_at(f"{path}.{key}", spec.get(key)):
            sc = c.get("securityContext")
            if not isinstance(sc, dict):
                continue
            errs += _validate_seccomp(f"{cpath}.securityContext.seccompProfile", sc.get("seccompProfile"))
            mount = sc.get("procMount")
            if mount is None:
                continue
            if mount not in ("Default", "Unmasked"):
                errs.append(not_supported(f"{cpath}.securityContext.procMount", mount, ["Default", "Unmasked"]))
            elif mount == "Unmasked" and spec.get("hostUsers") is not False:
                errs.append(invalid(f"{cpath}.securityContext.procMount", mount,
                                    "`hostUsers` must be false to use `Unmasked`"))
    return errs


# -- pod templates under a selector (workloads, jobs) ---------------------------------------


def validate_template(path: str, template: Any, selector_matches_fn: Callable[[dict[str, str]], bool] | None,
                       rule: RestartRule, claim_volumes: Iterable[str] = ()) -> Errors:
    if not isinstance(template, dict):
        return [required(path)]
    errs: Errors = []
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    errs += validate_labels(f"{path}.metadata.labels", labels)
    if selector_matches_fn is not None and not selector_matches_fn(labels):
        errs.append(invalid(f"{path}.metadata.labels", GoValue(go_string_map(labels)),
                            "`selector` does not match template `labels`"))
    errs += validate_pod_spec(f"{path}.spec", template.get("spec"), rule, claim_volumes)
    return errs


def validate_selector_and_template(spec: Obj, kind_word: str, rule: RestartRule = ALWAYS_RESTART,
                                    template_path: str = "spec.template",
                                    claim_volumes: Iterable[str] = ()) -> Errors:
    errs: Errors = []
    sel = spec.get("selector")
    matcher: Callable[[dict[str, str]], bool] | None = None
    if sel is None:
        errs.append(required("spec.selector"))
    else:
        errs += validate_label_selector("spec.selector", sel)
        if selector_is_empty(sel):
            errs.append(invalid("spec.selector", go_label_selector(sel), f"empty selector is invalid for {kind_word}"))
        else:
            matcher = label_selector_matcher(sel)
    errs += validate_template(template_path, spec.get("template"), matcher, rule, claim_volumes)
    return errs


def validate_int_or_percent(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [invalid(path, value, _PERCENT_MSG)]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    return non_negative(path, value)


# -- dispatch to the kind's strategy -------------------------------------------------------


def go_string_slice(values: Iterable[Any]) -> GoValue:
    """A list of strings as Go's `%#v` prints it: `[]string{"10.43.0.5"}`."""
    return GoValue("[]string{" + ", ".join('"' + str(v).replace('"', '\\"') + '"' for v in values) + "}")


def validate(info: ResourceInfo, obj: dict, old: dict | None) -> list[FieldError]:
    """Every semantic problem of `obj` (and of the change from `old`, on update), by the
    kind's strategy with the default configuration (`kinds.DEFAULT`).

    For custom resources this includes `validate_custom` (the CRD schema)."""
    from kybernetes.api.kinds import DEFAULT

    return validate_with(DEFAULT.for_info(info), info, obj, old)


def validate_with(strategy: KindStrategy, info: ResourceInfo, obj: dict, old: dict | None,
                  policy: WritePolicy | None = None) -> list[FieldError]:
    """`validate` through a given strategy (a server's own, configured one); an update
    through a subresource whose `policy` has its own update rules is judged by those."""
    errs = validate_object_meta(info, obj.get("metadata"))
    errs += strategy.validate(info, obj) if old is None else strategy.validate_changed(info, obj, old)
    if old is not None:
        errs += validate_object_meta_update(obj.get("metadata"), old.get("metadata"))
        own = policy.validate_update(obj, old) if policy is not None else None
        errs += strategy.validate_update(info, obj, old) if own is None else own
    return errs


# -- structure: unknown fields and wrong types ---------------------------------------------

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


@dataclass(frozen=True)
class _Shape:
    """What a schema node accepts, reduced to what structural checks need."""

    kind: str  # struct | map | array | string | bytes | integer | number | boolean | intstr | quantity | any
    node: dict[str, Any] | None = None
    go_type: str = ""
    struct_name: str = ""  # for struct: the Go type name without package
    open: bool = False  # struct that also keeps unknown fields (CRD preserve-unknown-fields)


_ANY = _Shape("any")


def _ref_def(raw: dict[str, Any] | None) -> str | None:
    """The definition a (possibly allOf-wrapped) property node refers to."""
    seen = 0
    while isinstance(raw, dict) and seen < 8:
        seen += 1
        name = schemas.ref_name(raw)
        if name is not None:
            return name
        all_of = raw.get("allOf")
        if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
            raw = all_of[0]
            continue
        return None
    return None


def _go_pkg_type(definition: str) -> str:
    parts = definition.split(".")
    return f"{parts[-2]}.{parts[-1]}" if len(parts) >= 2 else definition


_SHAPES: dict[int, tuple[Any, _Shape]] = {}
_ROOT_REFS: dict[str, dict[str, Any]] = {}


def _def_ref(definition: str) -> dict[str, Any]:
    """A long-lived `$ref` node for a definition, so shapes built from it can be cached."""
    ref = _ROOT_REFS.get(definition)
    if ref is None:
        ref = _ROOT_REFS[definition] = {"$ref": "#/$defs/" + definition}
    return ref


def _builtin_shape(raw: dict[str, Any] | None) -> _Shape:
    # Built-in schema nodes live as long as the process, so their shapes are cached by
    # identity; the stored node guards against a reused id.
    if raw is None:
        return _ANY
    hit = _SHAPES.get(id(raw))
    if hit is not None and hit[0] is raw:
        return hit[1]
    shape = _compute_builtin_shape(raw)
    _SHAPES[id(raw)] = (raw, shape)
    return shape


def _compute_builtin_shape(raw: dict[str, Any]) -> _Shape:
    definition = _ref_def(raw) if raw else None
    node = schemas.resolve(raw) if raw else None
    if not isinstance(node, dict):
        return _Shape("any")
    one_of = node.get("oneOf")
    if isinstance(one_of, list):
        types = {t for alt in one_of if isinstance(alt, dict) for t in _types(alt)}
        if types == {"string", "integer"}:
            return _Shape("intstr", node, "int32")
        if types == {"string", "number"}:
            return _Shape("quantity", node, "resource.Quantity")
        return _Shape("any", node)
    types = _types(node)
    if "object" in types or (not types and "properties" in node):
        if isinstance(node.get("properties"), dict):
            name = definition or ""
            return _Shape("struct", node, _go_pkg_type(name) if name else "struct",
                          name.rsplit(".", 1)[-1] if name else "")
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            elem = _builtin_shape(extra)
            return _Shape("map", node, "map[string]" + (elem.go_type or "interface {}"))
        return _Shape("any", node)
    if "array" in types:
        elem = _builtin_shape(node.get("items") if isinstance(node.get("items"), dict) else None)
        return _Shape("array", node, "[]" + (elem.go_type or "interface {}"))
    if "string" in types:
        if node.get("format") == "byte":
            return _Shape("bytes", node, "[]uint8")
        return _Shape("string", node, "string")
    if "integer" in types:
        return _Shape("integer", node, node.get("format") if node.get("format") in ("int32", "int64") else "int")
    if "number" in types:
        return _Shape("number", node, "float64")
    if "boolean" in types:
        return _Shape("boolean", node, "bool")
    return _Shape("any", node)


def _types(node: dict[str, Any]) -> set[str]:
    t = node.get("type")
    if isinstance(t, str):
        return {t}
    if isinstance(t, list):
        return {x for x in t if isinstance(x, str) and x != "null"}
    return set()


def _crd_shape(node: Any) -> _Shape:
    if not isinstance(node, dict):
        return _Shape("any")
    if node.get("x-kubernetes-int-or-string"):
        return _Shape("intstr", node)
    preserve = bool(node.get("x-kubernetes-preserve-unknown-fields"))
    t = node.get("type")
    if t == "object" or (t is None and ("properties" in node or "additionalProperties" in node)):
        extra = node.get("additionalProperties")
        if isinstance(extra, dict) and not isinstance(node.get("properties"), dict):
            return _Shape("map", node)
        if extra is True and not isinstance(node.get("properties"), dict):
            return _Shape("any", node)
        return _Shape("struct", node, open=preserve or extra is True or isinstance(extra, dict))
    if t == "array":
        return _Shape("array", node)
    if t in ("string", "integer", "number", "boolean"):
        return _Shape(t, node)
    return _Shape("any", node)


def _struct_child(shape: _Shape, key: str, custom: bool) -> _Shape | None:
    node = shape.node or {}
    props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
    if key in props:
        return _crd_shape(props[key]) if custom else _builtin_shape(props[key])
    if custom:
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return _crd_shape(extra)
        if node.get("x-kubernetes-embedded-resource") and key in ("apiVersion", "kind", "metadata"):
            return _builtin_shape(_def_ref(_OBJECT_META)) if key == "metadata" else _Shape("string")
    return None


def _elem_shape(shape: _Shape, custom: bool) -> _Shape:
    node = shape.node or {}
    if shape.kind == "array":
        items = node.get("items")
        if custom:
            return _crd_shape(items)
        return _builtin_shape(items if isinstance(items, dict) else None)
    extra = node.get("additionalProperties")
    return _crd_shape(extra) if custom else _builtin_shape(extra if isinstance(extra, dict) else None)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _root_shape(info: ResourceInfo) -> tuple[_Shape, bool] | None:
    if info.crd_schema is not None:
        return _crd_shape(info.crd_schema), True
    if info.definition:
        return _builtin_shape(_def_ref(info.definition)), False
    return None


def _collect_unknown(shape: _Shape, value: Any, path: str, custom: bool, out: list[str]) -> None:
    if shape.kind == "struct" and isinstance(value, dict):
        for key, item in value.items():
            child = _struct_child(shape, key, custom)
            if child is None:
                if not shape.open:
                    out.append(_join(path, key))
                continue
            _collect_unknown(child, item, _join(path, key), custom, out)
    elif shape.kind == "map" and isinstance(value, dict):
        elem = _elem_shape(shape, custom)
        for key, item in value.items():
            _collect_unknown(elem, item, _join(path, key), custom, out)
    elif shape.kind == "array" and isinstance(value, list):
        elem = _elem_shape(shape, custom)
        for i, item in enumerate(value):
            _collect_unknown(elem, item, f"{path}[{i}]", custom, out)


def unknown_fields(info: ResourceInfo, obj: dict) -> list[str]:
    """Paths (`spec.template.spec.containers[0].bogus`) of fields the kind's schema lacks.

    The real server reports each as `unknown field "<path>"`.
    """
    root = _root_shape(info)
    if root is None:
        return []
    shape, custom = root
    out: list[str] = []
    for key, item in obj.items():
        if key in ("apiVersion", "kind"):
            continue
        if key == "metadata":
            _collect_unknown(_builtin_shape(_def_ref(_OBJECT_META)), item, "metadata", False, out)
            continue
        child = _struct_child(shape, key, custom) if shape.kind == "struct" else None
        if child is None:
            if not (custom and (shape.open or shape.kind == "any")):
                out.append(key)
            continue
        _collect_unknown(child, item, key, custom, out)
    return out


@dataclass
class _TypeProblem:
    path: str
    value: Any
    expected: str
    go_message: str


def _schema_type_name(value: Any) -> str:
    """A decoded JSON value's type as JSON Schema names it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


# Go's encoding/json words these two differently in its "cannot unmarshal" errors.
_GO_JSON_KINDS = {"boolean": "bool", "integer": "number"}


def _json_kind(value: Any) -> str:
    """A decoded JSON value's type as Go's encoding/json names it."""
    name = _schema_type_name(value)
    return _GO_JSON_KINDS.get(name, name)


_INT_RANGES = {"int32": (-(2 ** 31), 2 ** 31 - 1), "int64": (-(2 ** 63), 2 ** 63 - 1), "int": (-(2 ** 63), 2 ** 63 - 1)}


def _base64_error(value: str) -> str | None:
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
    stripped = value.rstrip("=")
    for i, ch in enumerate(stripped):
        if ch not in alphabet:
            return f"illegal base64 data at input byte {i}"
    if len(value) % 4 or len(value) - len(stripped) > 2:
        return f"illegal base64 data at input byte {len(stripped) - len(stripped) % 4}"
    return None


def _leaf_problem(shape: _Shape, value: Any) -> str | None:
    """The Go decoder's complaint about `value` for a leaf of `shape`: 'json: ...' text
    with {field} left for the caller, or a full message, or None when it decodes."""
    if value is None:
        return None
    kind = _json_kind(value)
    if shape.kind == "quantity":
        return None if parse_quantity(value) is not None else QUANTITY_REGEX_MSG
    if shape.kind == "intstr":
        if kind == "string":
            return None
        if kind == "number" and isinstance(value, int) and _fits(value, "int32"):
            return None
        return "{type:" + (f"number {value}" if kind == "number" else kind) + "}"
    if shape.kind in ("string", "bytes"):
        if kind != "string":
            return "{type:" + kind + "}"
        if shape.kind == "bytes":
            return _base64_error(value)
        return None
    if shape.kind == "integer":
        if kind != "number":
            return "{type:" + kind + "}"
        if isinstance(value, float) or not _fits(value, shape.go_type):
            return "{type:number " + str(value) + "}"
        return None
    if shape.kind == "number":
        return None if kind == "number" else "{type:" + kind + "}"
    if shape.kind == "boolean":
        return None if kind == "bool" else "{type:" + kind + "}"
    if shape.kind in ("struct", "map"):
        return None if kind == "object" else "{type:" + kind + "}"
    if shape.kind == "array":
        return None if kind == "array" else "{type:" + kind + "}"
    return None


def _fits(value: int, go_type: str) -> bool:
    low, high = _INT_RANGES.get(go_type, _INT_RANGES["int64"])
    return low <= value <= high


def _collect_types(shape: _Shape, value: Any, path: str, go_path: list[str], struct: str,
                   out: list[_TypeProblem]) -> None:
    problem = _leaf_problem(shape, value)
    if problem is not None:
        if problem.startswith("{type:"):
            got = problem[len("{type:"):-1]
            field = ".".join(go_path)
            where = f"Go struct field {struct}.{field}" if struct else "Go value"
            message = f"json: cannot unmarshal {got} into {where} of type {shape.go_type}"
        else:
            message = problem
        out.append(_TypeProblem(path, value, shape.go_type or shape.kind, message))
        return
    if value is None:
        return
    if shape.kind == "struct":
        for key, item in value.items():
            child = _struct_child(shape, key, False)
            if child is not None:
                _collect_types(child, item, _join(path, key), go_path + [key], shape.struct_name, out)
    elif shape.kind == "map":
        elem = _elem_shape(shape, False)
        for key, item in value.items():
            _collect_types(elem, item, f"{path}[{key}]", go_path, struct, out)
    elif shape.kind == "array":
        elem = _elem_shape(shape, False)
        for i, item in enumerate(value):
            _collect_types(elem, item, f"{path}[{i}]", go_path, struct, out)


def _type_problems(info: ResourceInfo, obj: dict) -> list[_TypeProblem]:
    out: list[_TypeProblem] = []
    if info.crd_schema is not None:
        # A custom resource's body is checked by its schema (validate_custom); only
        # its metadata is decoded into a typed struct.
        if "metadata" in obj:
            meta = _builtin_shape(_def_ref(_OBJECT_META))
            _collect_types(meta, obj["metadata"], "metadata", ["metadata"], info.kind, out)
        return out
    root = _root_shape(info)
    if root is None:
        return out
    shape = dataclasses.replace(root[0], struct_name=info.kind)
    _collect_types(shape, obj, "", [], info.kind, out)
    return out


# A struct shape's fields as shapes, by the shape's identity (shapes live as long as the
# process, cached in _SHAPES).
_FIELDS: dict[int, tuple[_Shape, dict[str, _Shape]]] = {}


def _fields_of(shape: _Shape) -> dict[str, _Shape]:
    hit = _FIELDS.get(id(shape))
    if hit is not None and hit[0] is shape:
        return hit[1]
    props = (shape.node or {}).get("properties")
    fields = {k: _builtin_shape(v) for k, v in props.items()} if isinstance(props, dict) else {}
    _FIELDS[id(shape)] = (shape, fields)
    return fields


def _clean(shape: _Shape, value: Any) -> bool:
    """No type problem and no unknown field under `value` (built-in kinds): the question
    most writes ask, answered without building a path for every field."""
    if value is None:
        return True
    kind = shape.kind
    if kind == "struct":
        if type(value) is not dict:
            return False
        fields = _fields_of(shape)
        for key, item in value.items():
            child = fields.get(key)
            if child is None:
                if not shape.open:
                    return False
            elif not _clean(child, item):
                return False
        return True
    if kind == "string":
        return type(value) is str
    if kind == "map":
        if type(value) is not dict:
            return False
        elem = _elem_shape(shape, False)
        return all(_clean(elem, item) for item in value.values())
    if kind == "array":
        if type(value) is not list:
            return False
        elem = _elem_shape(shape, False)
        return all(_clean(elem, item) for item in value)
    if kind == "boolean":
        return type(value) is bool
    if kind == "any":
        return True
    return _leaf_problem(shape, value) is None


def fields_clean(info: ResourceInfo, obj: dict) -> bool:
    """True when a built-in kind's object has neither a wrongly typed value nor an unknown
    field, so that `type_error_message` and `unknown_fields` would find nothing. False
    says only that they must be asked (and for custom resources, always)."""
    if info.crd_schema is not None or info.is_custom:
        return False
    root = _root_shape(info)
    if root is None or root[0].kind != "struct":
        return False
    shape = root[0]
    fields = _fields_of(shape)
    for key, item in obj.items():
        child = fields.get(key)
        if child is None:
            if key in ("apiVersion", "kind"):
                continue
            return False
        if not _clean(child, item):
            return False
    return True


def type_errors(info: ResourceInfo, obj: dict) -> list[FieldError]:
    """Values whose JSON type the kind's schema does not allow (e.g. `spec.replicas: "three"`)."""
    return [FieldError("FieldValueTypeInvalid", p.path, f"must be of type {p.expected}", p.value, True)
            for p in _type_problems(info, obj)]


def type_error_message(info: ResourceInfo, obj: dict) -> str | None:
    """The real server's 400 message for the first wrongly typed value, or None.

    E.g. `Deployment in version "v1" cannot be handled as a Deployment: json: cannot
    unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32`.
    """
    problems = _type_problems(info, obj)
    if not problems:
        return None
    return f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: {problems[0].go_message}'


# -- custom resources against their CRD schema -----------------------------------------------

_COMPILED: dict[int, tuple[dict[str, Any], Any]] = {}


def _to_json_schema(node: Any) -> Any:
    """An OpenAPI v3 structural schema as plain JSON Schema (draft 4) for jsonschema-rs."""
    if isinstance(node, list):
        return [_to_json_schema(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in ("nullable", "format", "default", "example") or key.startswith("x-kubernetes-"):
            continue
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _to_json_schema(v) for k, v in value.items()} if isinstance(value, dict) else value
        elif key in ("items", "additionalProperties", "not", "allOf", "anyOf", "oneOf", "additionalItems"):
            out[key] = _to_json_schema(value)
        else:
            out[key] = value
    if node.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["type"] = ["integer", "string"]
    if node.get("nullable") and "type" in out:
        types = out["type"] if isinstance(out["type"], list) else [out["type"]]
        out["type"] = [*types, "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


_CACHE_LIMIT = 512


def compile_schema(schema: dict[str, Any], cache: bool = True) -> Any:
    # Keyed by identity: a served CRD keeps one schema dict for its lifetime. The entry
    # holds the dict itself, so an id reused by a later object can never match.
    cached = _COMPILED.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    validator = jsonschema_rs.Draft4Validator(_to_json_schema(schema))
    if cache:
        if len(_COMPILED) >= _CACHE_LIMIT:
            _COMPILED.clear()
        _COMPILED[id(schema)] = (schema, validator)
    return validator


def _instance_path(parts: Iterable[Any]) -> str:
    path = ""
    for part in parts:
        path = f"{path}[{part}]" if isinstance(part, int) else _join(path, str(part))
    return path


def _schema_error(e: Any) -> FieldError:
    kind = type(e.kind).__name__
    path = _instance_path(e.instance_path)
    body = path or "<root>"
    value = e.instance
    if kind == "Type":
        expected = e.kind.types
        expected_text = expected[0] if isinstance(expected, list) and len(expected) == 1 else (
            ",".join(expected) if isinstance(expected, list) else str(expected))
        got = _schema_type_name(value)
        return invalid(path, got, f'{body} in body must be of type {expected_text}: "{got}"')
    if kind == "Required":
        prop = getattr(e.kind, "property", "")
        return required(_join(path, str(prop)))
    if kind == "Enum":
        options = [str(o) for o in (getattr(e.kind, "options", None) or [])]
        return not_supported(path, value, options)
    limit = getattr(e.kind, "limit", None)
    details = {
        "Minimum": f"should be greater than or equal to {limit}",
        "Maximum": f"should be less than or equal to {limit}",
        "ExclusiveMinimum": f"should be greater than {limit}",
        "ExclusiveMaximum": f"should be less than {limit}",
        "MinLength": f"should be at least {limit} chars long",
        "MinItems": f"should have at least {limit} items",
        "MinProperties": f"should have at least {limit} properties",
        "MaxProperties": f"should have at most {limit} properties",
        "MultipleOf": f"should be a multiple of {getattr(e.kind, 'multiple_of', limit)}",
        "Pattern": f"should match '{getattr(e.kind, 'pattern', '')}'",
    }
    if kind == "MaxLength":
        return FieldError("FieldValueTooLong", path, f"may not be more than {limit} bytes", value, True)
    if kind == "MaxItems":
        count = len(value) if isinstance(value, list) else value
        return FieldError("FieldValueTooMany", path, f"must have at most {limit} items", count, True)
    if kind == "UniqueItems":
        return duplicate(path, json_value(value))
    if kind in details:
        return invalid(path, value if not isinstance(value, dict | list) else json_value(value),
                       f"{body} in body {details[kind]}")
    return invalid(path, value if not isinstance(value, dict | list) else json_value(value), e.message)


def validate_custom(info: ResourceInfo, obj: dict) -> list[FieldError]:
    """`obj` against its CRD's openAPIV3Schema, with the real server's messages."""
    schema = info.crd_schema
    if not isinstance(schema, dict):
        return []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    # Metadata is ObjectMeta whatever the schema says; checked by validate_object_meta.
    validator = compile_schema(_without_metadata(schema))
    return [_schema_error(e) for e in validator.iter_errors(body)]


_STRIPPED: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}


def _without_metadata(schema: dict[str, Any]) -> dict[str, Any]:
    cached = _STRIPPED.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    if len(_STRIPPED) >= _CACHE_LIMIT:
        _STRIPPED.clear()
    stripped = dict(schema)
    if isinstance(stripped.get("properties"), dict):
        stripped["properties"] = {k: v for k, v in stripped["properties"].items() if k != "metadata"}
    if isinstance(stripped.get("required"), list):
        stripped["required"] = [r for r in stripped["required"] if r != "metadata"]
    _STRIPPED[id(schema)] = (schema, stripped)
    return stripped


# -- strict decoding: how fieldValidation=Strict|Warn words unknown and duplicate fields ----
#
# kube-apiserver's decoder reports "strict decoding errors" and clients match their text.
# A typed JSON body lists them in the order the decoder meets them (a field both unknown
# and given twice only as unknown); a YAML body first has the YAML library's one error
# for every key given twice, then the unknown fields of the JSON the YAML became (whose
# keys are sorted); a custom resource lists its duplicates, then its pruned fields, sorted.

YAML_UNMARSHAL_ERRORS = "yaml: unmarshal errors:\n"


def yaml_duplicates_error(duplicates: Iterable[str]) -> str:
    """The YAML library's error for keys given twice (entries carry `.line` and `.key`)."""
    lines = [f'line {getattr(d, "line", 0)}: key "{getattr(d, "key", d)}" already set in map' for d in duplicates]
    return YAML_UNMARSHAL_ERRORS + "  " + "\n  ".join(lines)


def _path_segments(path: str) -> tuple[tuple[int, Any], ...]:
    """`a.b[2].c` as comparable segments: Go sorts map keys as strings, lists by index."""
    out: list[tuple[int, Any]] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        out.append((1, int(part[1:-1])) if part.startswith("[") else (0, part))
    return tuple(out)


def _document_order(obj: Any) -> dict[str, int]:
    """Each field path of `obj` by its position in the document (decoded dicts keep it)."""
    order: dict[str, int] = {}
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        node, path = stack.pop()
        if path:
            order.setdefault(path, len(order))
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return order


def _under(path: str, parents: Iterable[str]) -> bool:
    return any(path == p or path.startswith(p + ".") or path.startswith(p + "[") for p in parents)


def strict_decoding_errors(obj: Any, unknown: list[str], duplicates: list[str], *, yaml_body: bool,
                           custom: bool) -> list[str]:
    """The strict decoding errors of a body, in kube-apiserver's order and words; a YAML
    body's duplicates are one error (several lines)."""
    out: list[str] = []
    if not unknown and not duplicates:
        return out  # the usual case: no need to walk the object for its keys' order
    if yaml_body and duplicates:
        out.append(yaml_duplicates_error(duplicates))
    if custom or yaml_body:
        if not yaml_body:
            out += [f'duplicate field "{d}"' for d in duplicates]
        out += [f'unknown field "{u}"' for u in sorted(unknown, key=_path_segments)]
        return out
    position = _document_order(obj)
    items = [(u, f'unknown field "{u}"') for u in unknown]
    items += [(d, f'duplicate field "{d}"') for d in duplicates if not _under(d, unknown)]
    items.sort(key=lambda item: position.get(item[0], len(position)))
    return out + [text for _, text in items]


def strict_decoding_warnings(errors: list[str]) -> list[str]:
    """One warning per problem: the YAML library's error is split into its lines."""
    out: list[str] = []
    for e in errors:
        if e.startswith(YAML_UNMARSHAL_ERRORS):
            out += [line.strip() for line in e[len(YAML_UNMARSHAL_ERRORS):].split("\n") if line.strip()]
        else:
            out.append(e)
    return out


def go_quote(text: str) -> str:
    """`text` as Go's `%q` prints it (the real server quotes bad values this way)."""
    out = ['"']
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif not ch.isprintable():
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def go_map_text(value: Any) -> str:
    """A decoded JSON value as Go's `%+v` prints a `map[string]interface{}` (keys sorted)."""
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{go_map_text(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, list):
        return "[" + " ".join(go_map_text(v) for v in value) + "]"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def apply_path(obj: Any, path: str) -> str:
    """A field path as server-side apply's schema errors name it: `.spec.containers[name="c"].x`
    (list items by their `name` when they have one, else by index)."""
    out = ""
    node = obj
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("["):
            i = int(part[1:-1])
            item = node[i] if isinstance(node, list) and i < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            out += f'[name="{name}"]' if isinstance(name, str) else part
            node = item
        else:
            out += "." + part
            node = node.get(part) if isinstance(node, dict) else None
    return out


def apply_schema_error(obj: Any, unknown: list[str]) -> str:
    """Server-side apply's error for fields its schema lacks (structured-merge-diff's wording)."""
    errs = [f"{apply_path(obj, u)}: field not declared in schema" for u in unknown]
    return errs[0] if len(errs) == 1 else "errors:\n" + "\n".join("  " + e for e in errs)


# -- quantities in canonical form ---------------------------------------------------------
#
# kube-apiserver decodes every resource.Quantity (a string, or a JSON number) and writes
# it back in canonical form: `0.5` is "500m", "1024Mi" is "1Gi", 2000 is "2k". Strict
# clients (the Python client's models type them as strings) refuse the numbers.

_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = {0: "", 1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}
_QUANTITY_PARTS = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")


def canonical_quantity(value: Any) -> str | None:
    """`value` (a quantity string or number) as kube-apiserver writes it, or None when it
    is not a quantity (validation reports that)."""
    if type(value) is str and len(value) <= 64:
        # Objects repeat a few quantities ("100m", "128Mi") in every write.
        known = _CANONICAL.get(value, _UNKNOWN)
        if known is _UNKNOWN:
            known = _canonical_quantity(value)
            if len(_CANONICAL) >= 4096:
                _CANONICAL.clear()
            _CANONICAL[value] = known
        return known  # type: ignore[return-value]
    return _canonical_quantity(value)


_CANONICAL: dict[str, str | None] = {}
_UNKNOWN = object()


def _canonical_quantity(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    text = value if isinstance(value, str) else repr(value)
    m = _QUANTITY_PARTS.match(text.strip())
    amount = parse_quantity(text)
    if m is None or amount is None or not amount.is_finite():
        return None
    suffix = m.group(2)
    binary = suffix.endswith("i")
    exponent_form = bool(suffix) and suffix[0] in "eE" and suffix[1:].lstrip("+-").isdigit()
    # Precision below a nano-unit rounds away from zero, as Quantity does.
    amount = amount.quantize(Decimal("1e-9"), rounding=ROUND_UP) if amount.as_tuple().exponent < -9 else amount
    if amount == 0:
        return "0"
    if binary and abs(amount) >= 1024 and amount == amount.to_integral_value():
        mantissa, power = int(amount), 0
        while mantissa % 1024 == 0 and power < 6:
            mantissa //= 1024
            power += 1
        return f"{mantissa}{_BINARY_SUFFIX[power]}"
    sign, digits, exponent = amount.normalize().as_tuple()
    mantissa = int("".join(map(str, digits))) * (-1 if sign else 1)
    assert isinstance(exponent, int)
    shift = exponent % 3
    mantissa, exponent = mantissa * 10 ** shift, exponent - shift
    if exponent_form or exponent not in _DECIMAL_SUFFIX:
        return f"{mantissa}e{exponent}" if exponent else str(mantissa)
    return f"{mantissa}{_DECIMAL_SUFFIX[exponent]}"


_QUANTITY_SUBTREES: dict[int, bool] = {}


def _holds_quantity(shape: _Shape) -> bool:
    """Whether a value of `shape` can contain a quantity (cached per built-in shape)."""
    known = _QUANTITY_SUBTREES.get(id(shape))
    if known is not None:
        return known
    _QUANTITY_SUBTREES[id(shape)] = False  # a recursive type holds none through itself
    found = shape.kind == "quantity"
    node = shape.node or {}
    if shape.kind == "struct":
        props = node.get("properties") if isinstance(node.get("properties"), dict) else {}
        found = any(_holds_quantity(_builtin_shape(p)) for p in props.values())
    elif shape.kind in ("map", "array"):
        found = _holds_quantity(_elem_shape(shape, False))
    _QUANTITY_SUBTREES[id(shape)] = found
    return found


def _canonical(shape: _Shape, value: Any) -> Any:
    """`value` with its quantities canonical: `value` itself when nothing changes, else
    copies along the changed paths (the rest may be shared with a stored object)."""
    if shape.kind == "quantity":
        canonical = canonical_quantity(value)
        return value if canonical is None or canonical == value else canonical
    if not _holds_quantity(shape):
        return value
    if isinstance(value, dict) and shape.kind in ("struct", "map"):
        out = value
        for key, item in value.items():
            child = _struct_child(shape, key, False) if shape.kind == "struct" else _elem_shape(shape, False)
            new = _canonical(child, item) if child is not None else item
            if new is not item:
                if out is value:
                    out = dict(value)
                out[key] = new
        return out
    if isinstance(value, list) and shape.kind == "array":
        elem = _elem_shape(shape, False)
        items = [_canonical(elem, item) for item in value]
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


def canonicalize_quantities(info: ResourceInfo, obj: dict[str, Any], keys: Iterable[str] | None = None) -> None:
    """Write every quantity of a built-in object (its top-level `keys`, default all) in
    canonical form. Only `obj` itself is changed in place; nested containers are copied."""
    root = _root_shape(info)
    if root is None or root[1]:
        return
    shape = root[0]
    for key in list(obj) if keys is None else [k for k in keys if k in obj]:
        child = _struct_child(shape, key, False)
        if child is not None:
            new = _canonical(child, obj[key])
            if new is not obj[key]:
                obj[key] = new
