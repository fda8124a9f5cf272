"""Validation of objects before they are stored, as the Kubernetes API server does it.

Four checks, each a pure function of the decoded (and defaulted) object:

* `validate` - the semantic rules of each built-in kind (names, labels, pod specs,
  selectors, immutable fields on update, ...), returning `FieldError`s with the real
  server's wording; the API server answers them with 422 Invalid. For custom
  resources it checks metadata and then the CRD schema (`validate_custom`).
* `unknown_fields` - paths of fields the kind's structural schema does not know,
  for `fieldValidation=Strict|Warn` (`unknown field "spec.bogus"`).
* `type_errors` / `type_error_message` - JSON values of the wrong type for a
  built-in kind; the real server fails those while decoding, with 400 BadRequest.
* `validate_custom` - a custom resource against its CRD's `openAPIV3Schema`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import orjson

from kybernetes.api import schemas
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, not_supported, required
from kybernetes.api.quantity import QUANTITY_REGEX_MSG, parse_quantity
from kybernetes.api.registry import ResourceInfo

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


def _d(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _l(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _seen_before(seen: set[Any], value: Any) -> bool:
    """Record `value`; True if it was already recorded (unhashable values never repeat)."""
    if not isinstance(value, str | int):
        return False
    if value in seen:
        return True
    seen.add(value)
    return False


def _not_found(path: str, value: Any) -> FieldError:
    return FieldError("FieldValueNotFound", path, "", value, True)


def _too_long(path: str, limit: int) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"may not be more than {limit} bytes")


# -- syntax of names, labels and ports ----------------------------------------------------

_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_LABEL_RE = re.compile(f"^{_DNS1123_LABEL_FMT}$")
_DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    f"validation is '{_DNS1123_LABEL_FMT}')")
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + r"(\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(f"^{_DNS1123_SUBDOMAIN_FMT}$")
_DNS1123_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is "
    f"'{_DNS1123_SUBDOMAIN_FMT}')")
_DNS1035_LABEL_FMT = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_LABEL_RE = re.compile(f"^{_DNS1035_LABEL_FMT}$")
_DNS1035_LABEL_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    f"regex used for validation is '{_DNS1035_LABEL_FMT}')")
_QUALIFIED_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_QUALIFIED_NAME_RE = re.compile(f"^{_QUALIFIED_NAME_FMT}$")
_QUALIFIED_NAME_CHARS_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation "
    f"is '{_QUALIFIED_NAME_FMT}')")
_LABEL_VALUE_FMT = f"({_QUALIFIED_NAME_FMT})?"
_LABEL_VALUE_RE = re.compile(f"^{_LABEL_VALUE_FMT}$")
_LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
    "must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', "
    f"regex used for validation is '{_LABEL_VALUE_FMT}')")
_CONFIG_KEY_FMT = "[-._a-zA-Z0-9]+"
_CONFIG_KEY_RE = re.compile(f"^{_CONFIG_KEY_FMT}$")
_CONFIG_KEY_MSG = (
    "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  "
    f"or 'KEY_NAME',  or 'key-name', regex used for validation is '{_CONFIG_KEY_FMT}')")
_PERCENT_FMT = "[0-9]+%"
_PERCENT_RE = re.compile(f"^{_PERCENT_FMT}$")
_PERCENT_MSG = (
    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', "
    f"regex used for validation is '{_PERCENT_FMT}')")
_PORT_RANGE_MSG = "must be between 1 and 65535, inclusive"
_NOT_A_STRING = "must be a string"


def _max_len(value: str, limit: int) -> list[str]:
    return [f"must be no more than {limit} characters"] if len(value) > limit else []


def dns1123_label_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    errs = _max_len(value, 63)
    if not _DNS1123_LABEL_RE.match(value):
        errs.append(_DNS1123_LABEL_MSG)
    return errs


def dns1123_subdomain_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    errs = _max_len(value, 253)
    if not _DNS1123_SUBDOMAIN_RE.match(value):
        errs.append(_DNS1123_SUBDOMAIN_MSG)
    return errs


def dns1035_label_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    errs = _max_len(value, 63)
    if not _DNS1035_LABEL_RE.match(value):
        errs.append(_DNS1035_LABEL_MSG)
    return errs


def path_segment_name_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


def qualified_name_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    parts = value.split("/")
    if len(parts) == 1:
        name = parts[0]
    elif len(parts) == 2:
        prefix, name = parts
        if not prefix:
            return ["prefix part must be non-empty"]
        errs = [f"prefix part {m}" for m in dns1123_subdomain_errors(prefix)]
        if errs:
            return errs + _name_part_errors(name)
    else:
        return ["a qualified name " + _QUALIFIED_NAME_CHARS_MSG
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    return _name_part_errors(name)


def _name_part_errors(name: str) -> list[str]:
    if not name:
        return ["name part must be non-empty"]
    errs = ["name part must be no more than 63 characters"] if len(name) > 63 else []
    if not _QUALIFIED_NAME_RE.match(name):
        errs.append("name part " + _QUALIFIED_NAME_CHARS_MSG)
    return errs


def label_value_errors(value: str) -> list[str]:
    if not isinstance(value, str):
        return [_NOT_A_STRING]
    errs = _max_len(value, 63)
    if not _LABEL_VALUE_RE.match(value):
        errs.append(_LABEL_VALUE_MSG)
    return errs


def config_key_errors(key: str) -> list[str]:
    if not isinstance(key, str):
        return [_NOT_A_STRING]
    errs = _max_len(key, 253)
    if not _CONFIG_KEY_RE.match(key):
        errs.append(_CONFIG_KEY_MSG)
    if key == ".":
        errs.append("must not be '.'")
    elif key == "..":
        errs.append("must not be '..'")
    elif key.startswith(".."):
        errs.append("must not start with '..'")
    return errs


def port_name_errors(name: str) -> list[str]:
    """IANA service name rules, as the real server checks port names."""
    if not isinstance(name, str):
        return [_NOT_A_STRING]
    errs = []
    if len(name) > 15:
        errs.append("must be no more than 15 characters")
    if not re.match(r"^[-a-z0-9]+$", name):
        errs.append("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)")
    if not re.search(r"[a-z]", name):
        errs.append("must contain at least one letter (a-z)")
    if "--" in name:
        errs.append("must not contain consecutive hyphens")
    if name.startswith("-") or name.endswith("-"):
        errs.append("must not begin or end with a hyphen")
    return errs


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _port_errors(path: str, value: Any, *, allow_zero: bool = False) -> Errors:
    if not _is_int(value):
        return [invalid(path, value, _PORT_RANGE_MSG)]
    if value == 0 and allow_zero:
        return []
    return [] if 1 <= value <= 65535 else [invalid(path, value, _PORT_RANGE_MSG)]


def _int_or_name_port_errors(path: str, value: Any) -> Errors:
    if isinstance(value, str):
        return [invalid(path, value, m) for m in port_name_errors(value)]
    return _port_errors(path, value)


def _name_errors(fn: Callable[[str], list[str]], path: str, value: Any) -> Errors:
    if not isinstance(value, str):
        return [invalid(path, value, "must be a string")]
    return [invalid(path, value, m) for m in fn(value)]


def _non_negative(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if not _is_int(value) or value < 0:
        return [invalid(path, value, "must be greater than or equal to 0")]
    return []


def _positive(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if not _is_int(value) or value <= 0:
        return [invalid(path, value, "must be greater than 0")]
    return []


def _enum(path: str, value: Any, supported: list[str], *, required_when_empty: bool = True) -> Errors:
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


def _validate_resource_list(path: str, values: Any) -> Errors:
    errs: Errors = []
    if not isinstance(values, dict):
        return errs
    for name, quantity in values.items():
        key_path = f"{path}[{name}]"
        errs += [invalid(key_path, name, m) for m in _resource_name_errors(name)]
        parsed = parse_quantity(quantity)
        if parsed is None:
            errs.append(invalid(key_path, _format_quantity(quantity), QUANTITY_REGEX_MSG))
        elif parsed < 0:
            errs.append(invalid(key_path, _format_quantity(quantity), "must be greater than or equal to 0"))
    return errs


def _validate_resources(path: str, res: Any) -> Errors:
    if not isinstance(res, dict):
        return []
    limits, requests = res.get("limits"), res.get("requests")
    errs = _validate_resource_list(f"{path}.limits", limits) + _validate_resource_list(f"{path}.requests", requests)
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


def _go_string_map(value: Any) -> str:
    if not isinstance(value, dict):
        return "map[string]string(nil)"
    body = ", ".join(f'"{k}":"{v}"' for k, v in sorted(value.items()))
    return "map[string]string{" + body + "}"


def _go_strings(values: Any) -> str:
    if not isinstance(values, list):
        return "[]string(nil)"
    return "[]string{" + ", ".join(f'"{v}"' for v in values) + "}"


def go_label_selector(sel: Any) -> GoValue:
    sel = sel if isinstance(sel, dict) else {}
    exprs = sel.get("matchExpressions")
    if isinstance(exprs, list):
        items = ", ".join(
            f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", Operator:"{e.get("operator", "")}", '
            f'Values:{_go_strings(e.get("values"))}}}' for e in exprs if isinstance(e, dict))
        rendered = "[]v1.LabelSelectorRequirement{" + items + "}"
    else:
        rendered = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{_go_string_map(sel.get('matchLabels'))}, "
                   f"MatchExpressions:{rendered}}}")


def _json_value(value: Any) -> GoValue:
    return GoValue(orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode())


# -- label selectors ----------------------------------------------------------------------


def selector_matches(sel: Any, labels: dict[str, str]) -> bool:
    """Whether a `metav1.LabelSelector` selects a set of labels."""
    if not isinstance(sel, dict):
        return False
    for key, value in _d(sel.get("matchLabels")).items():
        if labels.get(key) != value:
            return False
    for expr in _l(sel.get("matchExpressions")):
        if not isinstance(expr, dict):
            return False
        key, op, values = expr.get("key"), expr.get("operator"), _l(expr.get("values"))
        present = isinstance(key, str) and key in labels
        if op == "In" and not (present and labels[key] in values):
            return False
        if op == "NotIn" and present and labels[key] in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
    return True


def _selector_is_empty(sel: Any) -> bool:
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
    for i, expr in enumerate(_l(sel.get("matchExpressions"))):
        p = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            continue
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
_STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion", "customresourcecleanup.apiextensions.k8s.io"}


def _name_rule(info: ResourceInfo) -> Callable[[str], list[str]]:
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
        errs += _name_errors(_name_rule(info), "metadata.name", name)
    namespace = meta.get("namespace")
    if info.namespaced:
        if not namespace:
            errs.append(required("metadata.namespace"))
        else:
            errs += _name_errors(dns1123_label_errors, "metadata.namespace", namespace)
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
            errs.append(_too_long("metadata.annotations", TOTAL_ANNOTATION_SIZE))
    for i, finalizer in enumerate(_l(meta.get("finalizers"))):
        path = f"metadata.finalizers[{i}]"
        if not isinstance(finalizer, str):
            continue
        errs += [invalid(path, finalizer, m) for m in qualified_name_errors(finalizer)]
        if "/" not in finalizer and finalizer not in _STANDARD_FINALIZERS:
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
        errs.append(invalid("metadata.ownerReferences", _json_value(refs),
                            "Only one reference can have Controller set to true. Found \"true\" in references "
                            f"for {controllers[0]} and {controllers[1]}"))
    return errs


def _immutable(path: str, new: Any, old: Any, shown: Any = None) -> Errors:
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
_PROTOCOLS = ["SCTP", "TCP", "UDP"]
_TAINT_EFFECTS = ["NoSchedule", "PreferNoSchedule", "NoExecute"]
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
        errs += _non_negative(f"{path}.{key}", probe.get(key))
    if liveness and probe.get("successThreshold") not in (None, 1):
        errs.append(invalid(f"{path}.successThreshold", probe.get("successThreshold"), "must be 1"))
    http = probe.get("httpGet")
    if isinstance(http, dict):
        errs += _int_or_name_port_errors(f"{path}.httpGet.port", http.get("port"))
        errs += _enum(f"{path}.httpGet.scheme", http.get("scheme"), ["HTTP", "HTTPS"], required_when_empty=False)
    tcp = probe.get("tcpSocket")
    if isinstance(tcp, dict):
        errs += _int_or_name_port_errors(f"{path}.tcpSocket.port", tcp.get("port"))
    return errs


def _validate_container(path: str, c: Obj, volumes: set[str]) -> Errors:
    errs: Errors = []
    name = c.get("name")
    if not name:
        errs.append(required(f"{path}.name"))
    else:
        errs += _name_errors(dns1123_label_errors, f"{path}.name", name)
    image = c.get("image")
    if not image:
        errs.append(required(f"{path}.image"))
    elif isinstance(image, str) and image != image.strip():
        errs.append(invalid(f"{path}.image", image, "must not have leading or trailing whitespace"))
    errs += _enum(f"{path}.imagePullPolicy", c.get("imagePullPolicy"), _PULL_POLICIES)
    errs += _enum(f"{path}.terminationMessagePolicy", c.get("terminationMessagePolicy"),
                  ["File", "FallbackToLogsOnError"])
    port_names: set[str] = set()
    for i, port in enumerate(_l(c.get("ports"))):
        p = f"{path}.ports[{i}]"
        if not isinstance(port, dict):
            continue
        if port.get("containerPort") in (None, 0):
            errs.append(required(f"{p}.containerPort"))
        else:
            errs += _port_errors(f"{p}.containerPort", port.get("containerPort"))
        if port.get("hostPort") not in (None, 0):
            errs += _port_errors(f"{p}.hostPort", port.get("hostPort"))
        errs += _enum(f"{p}.protocol", port.get("protocol"), _PROTOCOLS)
        pname = port.get("name")
        if pname:
            errs += [invalid(f"{p}.name", pname, m) for m in port_name_errors(str(pname))]
            if _seen_before(port_names, pname):
                errs.append(duplicate(f"{p}.name", pname))
    for i, env in enumerate(_l(c.get("env"))):
        p = f"{path}.env[{i}]"
        if not isinstance(env, dict):
            continue
        ename = env.get("name")
        if not ename:
            errs.append(required(f"{p}.name"))
        else:
            errs += [invalid(f"{p}.name", ename, m) for m in _env_name_errors(str(ename))]
        if env.get("valueFrom") is not None and env.get("value"):
            errs.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` is not empty"))
    errs += _validate_resources(f"{path}.resources", c.get("resources"))
    mount_paths: set[str] = set()
    for i, mount in enumerate(_l(c.get("volumeMounts"))):
        p = f"{path}.volumeMounts[{i}]"
        if not isinstance(mount, dict):
            continue
        mname = mount.get("name")
        if not mname:
            errs.append(required(f"{p}.name"))
        elif not isinstance(mname, str) or mname not in volumes:
            errs.append(_not_found(f"{p}.name", mname))
        mpath = mount.get("mountPath")
        if not mpath:
            errs.append(required(f"{p}.mountPath"))
        elif _seen_before(mount_paths, mpath):
            errs.append(invalid(f"{p}.mountPath", mpath, "must be unique"))
    errs += _validate_probe(f"{path}.livenessProbe", c.get("livenessProbe"), liveness=True)
    errs += _validate_probe(f"{path}.readinessProbe", c.get("readinessProbe"), liveness=False)
    errs += _validate_probe(f"{path}.startupProbe", c.get("startupProbe"), liveness=True)
    return errs


def _validate_volumes(path: str, volumes: Any) -> tuple[set[str], Errors]:
    names: set[str] = set()
    errs: Errors = []
    for i, vol in enumerate(volumes if isinstance(volumes, list) else []):
        p = f"{path}[{i}]"
        if not isinstance(vol, dict):
            continue
        name = vol.get("name")
        if not name:
            errs.append(required(f"{p}.name"))
        else:
            errs += _name_errors(dns1123_label_errors, f"{p}.name", name)
            if _seen_before(names, name):
                errs.append(duplicate(f"{p}.name", name))
        sources = [k for k in vol if k != "name" and vol[k] is not None]
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
            if mode is not None and (not _is_int(mode) or not 0 <= mode <= 0o777):
                errs.append(invalid(f"{p}.{source}.defaultMode", mode,
                                    "must be a number between 0 and 0777 (octal), both inclusive"))
    return names, errs


def _validate_tolerations(path: str, tolerations: Any) -> Errors:
    errs: Errors = []
    for i, t in enumerate(tolerations if isinstance(tolerations, list) else []):
        p = f"{path}[{i}]"
        if not isinstance(t, dict):
            continue
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
            errs += _enum(f"{p}.effect", effect, _TAINT_EFFECTS)
        if t.get("tolerationSeconds") is not None and effect != "NoExecute":
            errs.append(invalid(f"{p}.effect", effect or "",
                                "effect must be 'NoExecute' when `tolerationSeconds` is set"))
    return errs


@dataclass
class _RestartRule:
    """Which `restartPolicy` values a pod spec may have where it appears."""

    allowed: list[str]
    required_detail: str = ""


_POD_RESTART = _RestartRule(_RESTART_POLICIES)
_ALWAYS_RESTART = _RestartRule(["Always"])
_JOB_RESTART = _RestartRule(["OnFailure", "Never"], 'valid values: "OnFailure", "Never"')


def validate_pod_spec(path: str, spec: Any, rule: _RestartRule = _POD_RESTART) -> Errors:
    if not isinstance(spec, dict):
        return [required(path)]
    volume_names, errs = _validate_volumes(f"{path}.volumes", spec.get("volumes"))
    containers = spec.get("containers")
    if not containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for key in ("initContainers", "containers"):
        for i, c in enumerate(_l(spec.get(key))):
            if not isinstance(c, dict):
                continue
            cpath = f"{path}.{key}[{i}]"
            errs += _validate_container(cpath, c, volume_names)
            name = c.get("name")
            if name:
                if _seen_before(seen, name):
                    errs.append(duplicate(f"{cpath}.name", name))
    policy = spec.get("restartPolicy")
    if not policy:
        errs.append(required(f"{path}.restartPolicy", rule.required_detail))
    elif policy not in rule.allowed:
        errs.append(not_supported(f"{path}.restartPolicy", policy, rule.allowed))
    errs += _enum(f"{path}.dnsPolicy", spec.get("dnsPolicy"), _DNS_POLICIES)
    if spec.get("dnsPolicy") == "None" and not spec.get("dnsConfig"):
        errs.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or not 1 <= deadline <= 2147483647):
        errs.append(invalid(f"{path}.activeDeadlineSeconds", deadline, "must be between 1 and 2147483647, inclusive"))
    errs += validate_labels(f"{path}.nodeSelector", spec.get("nodeSelector"))
    errs += _validate_tolerations(f"{path}.tolerations", spec.get("tolerations"))
    for key in ("hostname", "subdomain"):
        if spec.get(key):
            errs += _name_errors(dns1123_label_errors, f"{path}.{key}", spec[key])
    if spec.get("serviceAccountName"):
        errs += _name_errors(dns1123_subdomain_errors, f"{path}.serviceAccountName", spec["serviceAccountName"])
    if spec.get("nodeName"):
        errs += _name_errors(dns1123_subdomain_errors, f"{path}.nodeName", spec["nodeName"])
    errs += _non_negative(f"{path}.terminationGracePeriodSeconds", spec.get("terminationGracePeriodSeconds")
                          if _is_int(spec.get("terminationGracePeriodSeconds")) else None)
    return errs


def _validate_pod(info: ResourceInfo, obj: Obj) -> Errors:
    return validate_pod_spec("spec", obj.get("spec"))


POD_UPDATE_MSG = (
    "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,"
    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),"
    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)")


def _changed_paths(new: Any, old: Any, path: str) -> list[str]:
    if isinstance(new, dict) and isinstance(old, dict):
        out: list[str] = []
        for key in sorted(set(new) | set(old)):
            out += _changed_paths(new.get(key), old.get(key), f"{path}.{key}")
        return out
    if isinstance(new, list) and isinstance(old, list) and len(new) == len(old):
        out = []
        for i, (a, b) in enumerate(zip(new, old, strict=True)):
            out += _changed_paths(a, b, f"{path}[{i}]")
        return out
    return [] if new == old else [path]


def _validate_pod_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = new.get("spec"), old.get("spec")
    if not isinstance(new_spec, dict) or not isinstance(old_spec, dict):
        return []
    errs: Errors = []
    mutable = copy.deepcopy(new_spec)
    # Put back every field that an update may change, then whatever still differs is forbidden.
    for key in ("containers", "initContainers"):
        new_list, old_list = _l(mutable.get(key)), _l(old_spec.get(key))
        if len(new_list) == len(old_list):
            for nc, oc in zip(new_list, old_list, strict=True):
                if isinstance(nc, dict) and isinstance(oc, dict) and "image" in oc:
                    nc["image"] = oc["image"]
    old_deadline, new_deadline = old_spec.get("activeDeadlineSeconds"), new_spec.get("activeDeadlineSeconds")
    if new_deadline is not None and (old_deadline is None or (_is_int(new_deadline) and _is_int(old_deadline)
                                                              and new_deadline <= old_deadline)):
        mutable["activeDeadlineSeconds"] = old_deadline
        if old_deadline is None:
            mutable.pop("activeDeadlineSeconds", None)
    old_tol, new_tol = _l(old_spec.get("tolerations")), _l(new_spec.get("tolerations"))
    if all(t in new_tol for t in old_tol):
        if "tolerations" in old_spec:
            mutable["tolerations"] = old_spec["tolerations"]
        else:
            mutable.pop("tolerations", None)
    old_gates, new_gates = _l(old_spec.get("schedulingGates")), _l(new_spec.get("schedulingGates"))
    if all(g in old_gates for g in new_gates):
        if "schedulingGates" in old_spec:
            mutable["schedulingGates"] = old_spec["schedulingGates"]
        else:
            mutable.pop("schedulingGates", None)
    old_grace = old_spec.get("terminationGracePeriodSeconds")
    if _is_int(old_grace) and old_grace < 0 and new_spec.get("terminationGracePeriodSeconds") == 1:
        mutable["terminationGracePeriodSeconds"] = old_grace
    # Ephemeral containers change only through their own subresource.
    if "ephemeralContainers" in old_spec:
        mutable["ephemeralContainers"] = old_spec["ephemeralContainers"]
    else:
        mutable.pop("ephemeralContainers", None)
    changed = _changed_paths(mutable, old_spec, "spec")
    if changed:
        errs.append(forbidden("spec", POD_UPDATE_MSG + "\n  changed: " + ", ".join(changed)))
    return errs


# -- workloads ----------------------------------------------------------------------------


def _validate_template(path: str, template: Any, selector_matches_fn: Callable[[dict[str, str]], bool] | None,
                       rule: _RestartRule) -> Errors:
    if not isinstance(template, dict):
        return [required(path)]
    errs: Errors = []
    meta = template.get("metadata") if isinstance(template.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    errs += validate_labels(f"{path}.metadata.labels", labels)
    if selector_matches_fn is not None and not selector_matches_fn(labels):
        errs.append(invalid(f"{path}.metadata.labels", GoValue(_go_string_map(labels)),
                            "`selector` does not match template `labels`"))
    errs += validate_pod_spec(f"{path}.spec", template.get("spec"), rule)
    return errs


def _validate_selector_and_template(spec: Obj, kind_word: str, rule: _RestartRule = _ALWAYS_RESTART,
                                    template_path: str = "spec.template") -> Errors:
    errs: Errors = []
    sel = spec.get("selector")
    matcher: Callable[[dict[str, str]], bool] | None = None
    if sel is None:
        errs.append(required("spec.selector"))
    else:
        errs += validate_label_selector("spec.selector", sel)
        if _selector_is_empty(sel):
            errs.append(invalid("spec.selector", go_label_selector(sel), f"empty selector is invalid for {kind_word}"))
        else:
            matcher = lambda labels: selector_matches(sel, labels)  # noqa: E731
    errs += _validate_template(template_path, spec.get("template"), matcher, rule)
    return errs


def _validate_int_or_percent(path: str, value: Any) -> Errors:
    if value is None:
        return []
    if isinstance(value, str):
        if not _PERCENT_RE.match(value):
            return [invalid(path, value, _PERCENT_MSG)]
        if int(value[:-1]) > 100:
            return [invalid(path, value, "must not be greater than 100%")]
        return []
    return _non_negative(path, value)


def _is_zero(value: Any) -> bool:
    return value == 0 or value == "0%"


def _validate_deployment(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    errs += _validate_selector_and_template(spec, "deployment")
    strategy = spec.get("strategy") if isinstance(spec.get("strategy"), dict) else {}
    stype = strategy.get("type")
    errs += _enum("spec.strategy.type", stype, ["Recreate", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate" and isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        errs += _validate_int_or_percent("spec.strategy.rollingUpdate.maxSurge", surge)
        errs += _validate_int_or_percent("spec.strategy.rollingUpdate.maxUnavailable", unavailable)
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable,
                                "may not be 0 when `maxSurge` is 0"))
    errs += _non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    errs += _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    deadline = spec.get("progressDeadlineSeconds")
    errs += _non_negative("spec.progressDeadlineSeconds", deadline)
    if _is_int(deadline) and deadline <= (spec.get("minReadySeconds") or 0):
        errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return errs


def _validate_replicaset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    errs += _non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    return errs + _validate_selector_and_template(spec, "deployment")


def _validate_replication_controller(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    selector = spec.get("selector")
    matcher = None
    if not isinstance(selector, dict) or not selector:
        errs.append(required("spec.selector"))
    else:
        errs += validate_labels("spec.selector", selector)
        matcher = lambda labels: all(labels.get(k) == v for k, v in selector.items())  # noqa: E731
    if spec.get("template") is None:
        errs.append(required("spec.template"))
    else:
        errs += _validate_template("spec.template", spec.get("template"), matcher, _ALWAYS_RESTART)
    return errs


def _validate_statefulset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _non_negative("spec.replicas", spec.get("replicas"))
    errs += _validate_selector_and_template(spec, "statefulset")
    errs += _enum("spec.podManagementPolicy", spec.get("podManagementPolicy"), ["OrderedReady", "Parallel"])
    strategy = spec.get("updateStrategy") if isinstance(spec.get("updateStrategy"), dict) else {}
    errs += _enum("spec.updateStrategy.type", strategy.get("type"), ["OnDelete", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "OnDelete" and rolling is not None:
        errs.append(invalid("spec.updateStrategy.rollingUpdate", _json_value(rolling),
                            "only allowed for updateStrategy 'RollingUpdate'"))
    if isinstance(rolling, dict):
        errs += _non_negative("spec.updateStrategy.rollingUpdate.partition", rolling.get("partition"))
    if spec.get("serviceName"):
        errs += _name_errors(dns1123_label_errors, "spec.serviceName", spec["serviceName"])
    errs += _non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _validate_statefulset_update(new: Obj, old: Obj) -> Errors:
    new_spec = {k: v for k, v in _d(new.get("spec")).items() if k not in _STS_MUTABLE}
    old_spec = {k: v for k, v in _d(old.get("spec")).items() if k not in _STS_MUTABLE}
    if new_spec != old_spec:
        return [forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                  "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                  "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")]
    return []


def _validate_daemonset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _validate_selector_and_template(spec, "daemonset")
    strategy = spec.get("updateStrategy") if isinstance(spec.get("updateStrategy"), dict) else {}
    errs += _enum("spec.updateStrategy.type", strategy.get("type"), ["OnDelete", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "RollingUpdate" and isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        errs += _validate_int_or_percent("spec.updateStrategy.rollingUpdate.maxSurge", surge)
        errs += _validate_int_or_percent("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable)
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable,
                                "may not be 0 when `maxSurge` is 0"))
    errs += _non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


def _validate_job_spec(spec: Any, prefix: str = "spec", with_selector: bool = True) -> Errors:
    if not isinstance(spec, dict):
        return [required(prefix)]
    errs: Errors = []
    for key in ("parallelism", "completions", "backoffLimit"):
        errs += _non_negative(f"{prefix}.{key}", spec.get(key))
    errs += _enum(f"{prefix}.completionMode", spec.get("completionMode"), ["NonIndexed", "Indexed"],
                  required_when_empty=False)
    if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
        errs.append(required(f"{prefix}.completions", "when completion mode is Indexed"))
    deadline = spec.get("activeDeadlineSeconds")
    if deadline is not None and (not _is_int(deadline) or deadline <= 0):
        errs.append(invalid(f"{prefix}.activeDeadlineSeconds", deadline, "must be greater than or equal to 0"))
    if with_selector:
        sel = spec.get("selector")
        matcher = None
        if sel is None:
            errs.append(required(f"{prefix}.selector"))
        else:
            errs += validate_label_selector(f"{prefix}.selector", sel)
            if not _selector_is_empty(sel):
                matcher = lambda labels: selector_matches(sel, labels)  # noqa: E731
        errs += _validate_template(f"{prefix}.template", spec.get("template"), matcher, _JOB_RESTART)
    else:
        errs += _validate_template(f"{prefix}.template", spec.get("template"), None, _JOB_RESTART)
    return errs


def _validate_job(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_job_spec(obj.get("spec"))


def _validate_job_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
    errs = _immutable("spec.selector", new_spec.get("selector"), old_spec.get("selector"),
                      go_label_selector(new_spec.get("selector")))
    errs += _immutable("spec.template", new_spec.get("template"), old_spec.get("template"),
                       GoValue("core.PodTemplateSpec{...}"))
    errs += _immutable("spec.completionMode", new_spec.get("completionMode"), old_spec.get("completionMode"))
    if new_spec.get("completionMode") != "Indexed":
        errs += _immutable("spec.completions", new_spec.get("completions"), old_spec.get("completions"))
    return errs


_CRON_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_CRON_BOUNDS = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
_CRON_NAMES = [{}, {}, {},
               {m: i + 1 for i, m in enumerate(["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep",
                                                 "oct", "nov", "dec"])},
               {d: i for i, d in enumerate(["sun", "mon", "tue", "wed", "thu", "fri", "sat"])}]


def _cron_int(text: str, names: dict[str, int]) -> int:
    if text.lower() in names:
        return names[text.lower()]
    if not text.isdigit():
        raise ValueError(f'failed to parse int from {text}: strconv.Atoi: parsing "{text}": invalid syntax')
    return int(text)


def cron_schedule_error(schedule: str) -> str | None:
    """Why a cron schedule is unparseable (robfig/cron's wording), or None if it parses."""
    text = schedule.strip()
    if text.startswith("@"):
        if text in _CRON_DESCRIPTORS:
            return None
        if text.startswith("@every "):
            return None if re.match(r"^@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$", text) else (
                f"failed to parse duration {text}")
        return f"unrecognized descriptor: {text}"
    fields = text.split()
    if len(fields) != 5:
        return f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]"
    for field_text, (low, high), names in zip(fields, _CRON_BOUNDS, _CRON_NAMES, strict=True):
        for part in field_text.split(","):
            range_part, _, step = part.partition("/")
            try:
                if step and (not step.isdigit() or int(step) == 0):
                    return f'failed to parse int from {step}: strconv.Atoi: parsing "{step}": invalid syntax'
                if range_part in ("*", "?"):
                    continue
                start_text, _, end_text = range_part.partition("-")
                start = _cron_int(start_text, names)
                end = _cron_int(end_text, names) if end_text else start
            except ValueError as e:
                return str(e)
            if start < low:
                return f"beginning of range ({start}) below minimum ({low}): {part}"
            if end > high:
                return f"end of range ({end}) above maximum ({high}): {part}"
            if start > end:
                return f"beginning of range ({start}) beyond end of range ({end}): {part}"
    return None


def _validate_cronjob(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    name = _d(obj.get("metadata")).get("name")
    if isinstance(name, str) and len(name) > 52:
        errs.append(invalid("metadata.name", name, "must be no more than 52 characters"))
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return errs + [required("spec")]
    schedule = spec.get("schedule")
    if not schedule:
        errs.append(required("spec.schedule"))
    elif isinstance(schedule, str):
        if "TZ=" in schedule:
            errs.append(invalid("spec.schedule", schedule,
                                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"))
        else:
            problem = cron_schedule_error(schedule)
            if problem:
                errs.append(invalid("spec.schedule", schedule, problem))
    errs += _enum("spec.concurrencyPolicy", spec.get("concurrencyPolicy"), ["Allow", "Forbid", "Replace"])
    for key in ("successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"):
        errs += _non_negative(f"spec.{key}", spec.get(key))
    job_template = spec.get("jobTemplate")
    if not isinstance(job_template, dict):
        errs.append(required("spec.jobTemplate"))
    else:
        errs += validate_labels("spec.jobTemplate.metadata.labels",
                                _d(job_template.get("metadata")).get("labels"))
        errs += _validate_job_spec(job_template.get("spec"), "spec.jobTemplate.spec", with_selector=False)
    return errs


def _validate_pod_template(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_template("template", obj.get("template"), None, _POD_RESTART)


def _selector_immutable(new: Obj, old: Obj) -> Errors:
    new_sel = _d(new.get("spec")).get("selector")
    old_sel = _d(old.get("spec")).get("selector")
    return _immutable("spec.selector", new_sel, old_sel, go_label_selector(new_sel))


# -- core kinds ---------------------------------------------------------------------------

_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _validate_service(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    svc_type = spec.get("type")
    errs += _enum("spec.type", svc_type, _SERVICE_TYPES)
    headless = spec.get("clusterIP") == "None"
    ports = _l(spec.get("ports"))
    if svc_type == "ExternalName":
        external = spec.get("externalName")
        if not external:
            errs.append(required("spec.externalName"))
        else:
            errs += _name_errors(dns1123_subdomain_errors, "spec.externalName", str(external).rstrip("."))
    elif not ports and not headless:
        errs.append(required("spec.ports"))
    names: set[str] = set()
    for i, port in enumerate(ports):
        p = f"spec.ports[{i}]"
        if not isinstance(port, dict):
            continue
        name = port.get("name")
        if len(ports) > 1 and not name:
            errs.append(required(f"{p}.name"))
        elif name:
            errs += _name_errors(dns1123_label_errors, f"{p}.name", name)
            if _seen_before(names, name):
                errs.append(duplicate(f"{p}.name", name))
        errs += _port_errors(f"{p}.port", port.get("port"))
        errs += _enum(f"{p}.protocol", port.get("protocol"), _PROTOCOLS)
        if port.get("targetPort") is not None:
            errs += _int_or_name_port_errors(f"{p}.targetPort", port.get("targetPort"))
        node_port = port.get("nodePort")
        if node_port not in (None, 0):
            if svc_type == "ClusterIP":
                errs.append(forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            else:
                errs += _port_errors(f"{p}.nodePort", node_port)
    errs += _duplicate_node_port_errors(ports)
    errs += _enum("spec.sessionAffinity", spec.get("sessionAffinity"), ["ClientIP", "None"])
    errs += validate_labels("spec.selector", spec.get("selector"))
    for key, values in (("externalTrafficPolicy", ["Cluster", "Local"]),
                        ("internalTrafficPolicy", ["Cluster", "Local"]),
                        ("ipFamilyPolicy", ["SingleStack", "PreferDualStack", "RequireDualStack"])):
        errs += _enum(f"spec.{key}", spec.get(key), values, required_when_empty=False)
    if svc_type == "ExternalName":
        errs += _external_name_ip_errors(spec)
    else:
        errs += _cluster_ip_errors(spec)
    if spec.get("healthCheckNodePort") not in (None, 0) and not (
            svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"):
        errs.append(invalid("spec.healthCheckNodePort", spec.get("healthCheckNodePort"),
                            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    return errs


def go_string_slice(values: Iterable[Any]) -> GoValue:
    """A list of strings as Go's `%#v` prints it: `[]string{"10.43.0.5"}`."""
    return GoValue("[]string{" + ", ".join('"' + str(v).replace('"', '\\"') + '"' for v in values) + "}")


def _duplicate_node_port_errors(ports: list[Any]) -> Errors:
    """One node port per protocol: the same number may serve a TCP and a UDP port."""
    errs: Errors = []
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or port.get("nodePort") in (None, 0):
            continue
        key = (port.get("protocol") or "TCP", port.get("nodePort"))
        if _seen_before(seen, key):
            errs.append(duplicate(f"spec.ports[{i}].nodePort", port.get("nodePort")))
    return errs


def _external_name_ip_errors(spec: Obj) -> Errors:
    errs: Errors = []
    if spec.get("clusterIP") or _l(spec.get("clusterIPs")):
        errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if _l(spec.get("ipFamilies")):
        errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    return errs


def _cluster_ip_errors(spec: Obj) -> Errors:
    """clusterIP and clusterIPs agree, hold addresses (or a lone "None"), at most one per family.
    Whether an address is free and inside the service range is the allocator's to say."""
    errs: Errors = []
    cluster_ip = spec.get("clusterIP") or ""
    ips = _l(spec.get("clusterIPs"))
    if cluster_ip and ips and ips[0] != cluster_ip:
        errs.append(invalid("spec.clusterIPs", go_string_slice(ips), "first value must match `clusterIP`"))
    elif not cluster_ip and ips:
        errs.append(invalid("spec.clusterIPs", go_string_slice(ips), "must be empty when `clusterIP` is not specified"))
    checked = ips or ([cluster_ip] if cluster_ip else [])
    bad = False
    for i, ip in enumerate(checked):
        if i == 0 and ip == "None":
            if len(checked) > 1:
                bad = True
                errs.append(invalid("spec.clusterIPs", go_string_slice(checked), "'None' must be the first and only value"))
            continue
        if not _is_ip(ip):
            bad = True
            errs.append(invalid(f"spec.clusterIPs[{i}]", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if len(checked) > 2:
        errs.append(invalid("spec.clusterIPs", go_string_slice(checked), "may only hold up to 2 values"))
    elif len(checked) == 2 and not bad and (":" in checked[0]) == (":" in checked[1]):
        errs.append(invalid("spec.clusterIPs", go_string_slice(checked),
                            "may specify no more than one IP for each IP family"))
    svc_type = spec.get("type")
    if checked and checked[0] == "None" and svc_type in ("NodePort", "LoadBalancer"):
        errs.append(invalid("spec.clusterIPs[0]", "None", f"may not be set to 'None' for {svc_type} services"))
    return errs


def _is_ip(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _validate_service_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
    old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
    # An empty clusterIP on update keeps the allocated one; switching to ExternalName releases it.
    if old_ip and new_ip and new_ip != old_ip and new_spec.get("type") != "ExternalName":
        return [invalid("spec.clusterIP", new_ip, "field is immutable")]
    return []


def _validate_data_keys(obj: Obj, fields: Iterable[str]) -> Errors:
    errs: Errors = []
    seen: dict[str, str] = {}
    for field_name in fields:
        data = obj.get(field_name)
        if not isinstance(data, dict):
            continue
        for key in data:
            errs += [invalid(f"{field_name}[{key}]", key, m) for m in config_key_errors(key)]
            if key in seen:
                errs.append(invalid(f"{field_name}[{key}]", key, f"duplicate of key present in {seen[key]}"))
            seen[key] = field_name
    return errs


MAX_DATA_SIZE = 1024 * 1024


def _validate_configmap(info: ResourceInfo, obj: Obj) -> Errors:
    errs = _validate_data_keys(obj, ("data", "binaryData"))
    size = sum(len(k) + len(str(v).encode()) for k, v in _d(obj.get("data")).items())
    for key, value in _d(obj.get("binaryData")).items():
        size += len(key) + _decoded_len(value)
    if size > MAX_DATA_SIZE:
        errs.append(_too_long("", MAX_DATA_SIZE))
    return errs


def _decoded_len(value: Any) -> int:
    try:
        return len(base64.b64decode(str(value), validate=True))
    except (binascii.Error, ValueError):
        return len(str(value))


_SECRET_REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


def _validate_secret(info: ResourceInfo, obj: Obj) -> Errors:
    errs = _validate_data_keys(obj, ("data", "stringData"))
    data = obj.get("data") if isinstance(obj.get("data"), dict) else {}
    keys = set(data) | set(_d(obj.get("stringData")))
    size = sum(len(k) + _decoded_len(v) for k, v in data.items())
    if size > MAX_DATA_SIZE:
        errs.append(_too_long("data", MAX_DATA_SIZE))
    secret_type = obj.get("type")
    for key in _SECRET_REQUIRED_KEYS.get(secret_type, ()) if isinstance(secret_type, str) else ():
        if key not in keys:
            errs.append(required(f"data[{key}]"))
    if secret_type == "kubernetes.io/basic-auth" and not keys & {"username", "password"}:
        errs.append(required("data[username]"))
    if secret_type == "kubernetes.io/service-account-token":
        annotations = _d(_d(obj.get("metadata")).get("annotations"))
        if not annotations.get("kubernetes.io/service-account.name"):
            errs.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
    return errs


def _validate_immutable_data(new: Obj, old: Obj, fields: tuple[str, ...]) -> Errors:
    if old.get("immutable") is not True:
        return []
    errs: Errors = []
    detail = "field is immutable when `immutable` is set"
    if new.get("immutable") is not True:
        errs.append(forbidden("immutable", detail))
    for field_name in fields:
        if (new.get(field_name) or {}) != (old.get(field_name) or {}):
            errs.append(forbidden(field_name, detail))
    return errs


def _validate_configmap_update(new: Obj, old: Obj) -> Errors:
    return _validate_immutable_data(new, old, ("data", "binaryData"))


def _validate_secret_update(new: Obj, old: Obj) -> Errors:
    errs = _immutable("type", new.get("type"), old.get("type"))
    return errs + _validate_immutable_data(new, old, ("data",))


def _validate_namespace(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    for i, finalizer in enumerate(_l(_d(obj.get("spec")).get("finalizers"))):
        p = f"spec.finalizers[{i}]"
        errs += [invalid(p, finalizer, m) for m in qualified_name_errors(str(finalizer))]
        if "/" not in str(finalizer) and finalizer not in _STANDARD_FINALIZERS:
            errs.append(invalid(p, finalizer, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def _validate_node(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    for i, taint in enumerate(_l(spec.get("taints"))):
        p = f"spec.taints[{i}]"
        if not isinstance(taint, dict):
            continue
        key = taint.get("key")
        if not key:
            errs.append(required(f"{p}.key"))
        else:
            errs += [invalid(f"{p}.key", key, m) for m in qualified_name_errors(key)]
        if taint.get("value"):
            errs += [invalid(f"{p}.value", taint["value"], m) for m in label_value_errors(str(taint["value"]))]
        errs += _enum(f"{p}.effect", taint.get("effect"), _TAINT_EFFECTS)
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    for i, cidr in enumerate(cidrs):
        if not re.match(r"^[0-9a-fA-F:.]+/\d{1,3}$", str(cidr)):
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                                               "2001:db8::/64)"))
    return errs


_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _validate_access_modes(path: str, modes: Any) -> Errors:
    if not modes:
        return [required(path, "at least 1 access mode is required")]
    errs: Errors = []
    for mode in modes if isinstance(modes, list) else []:
        if mode not in _ACCESS_MODES:
            errs.append(not_supported(path, mode, _ACCESS_MODES))
    return errs


def _validate_pvc(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _validate_access_modes("spec.accessModes", spec.get("accessModes"))
    resources = spec.get("resources") if isinstance(spec.get("resources"), dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    if "storage" not in requests:
        errs.append(required("spec.resources[storage]"))
    else:
        errs += _validate_resource_list("spec.resources.requests", requests)
    errs += _enum("spec.volumeMode", spec.get("volumeMode"), ["Block", "Filesystem"], required_when_empty=False)
    if spec.get("selector") is not None:
        errs += validate_label_selector("spec.selector", spec.get("selector"))
    return errs


def _validate_pvc_update(new: Obj, old: Obj) -> Errors:
    new_spec = copy.deepcopy(_d(new.get("spec")))
    old_spec = _d(old.get("spec"))
    # Size changes, the class of volume attributes, and the binder filling in volumeName are allowed.
    if isinstance(new_spec.get("resources"), dict):
        new_spec["resources"] = dict(new_spec["resources"])
        new_spec["resources"]["requests"] = _d(old_spec.get("resources")).get("requests")
        if new_spec["resources"]["requests"] is None:
            new_spec["resources"].pop("requests")
    old_cmp = copy.deepcopy(old_spec)
    if isinstance(old_cmp.get("resources"), dict) and "requests" not in _d(new_spec.get("resources")):
        old_cmp["resources"].pop("requests", None)
    for key in ("volumeAttributesClassName",):
        new_spec.pop(key, None)
        old_cmp.pop(key, None)
    if not old_spec.get("volumeName"):
        new_spec.pop("volumeName", None)
        old_cmp.pop("volumeName", None)
    if new_spec != old_cmp:
        return [forbidden("spec", "spec is immutable after creation except resources.requests and "
                                  "volumeAttributesClassName for bound claims")]
    return []


_PV_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "glusterfs", "awsElasticBlockStore",
               "gcePersistentDisk", "azureDisk", "azureFile", "cinder", "flexVolume", "flocker", "photonPersistentDisk",
               "portworxVolume", "quobyte", "scaleIO", "storageos", "vsphereVolume")


def _validate_pv(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _validate_access_modes("spec.accessModes", spec.get("accessModes"))
    capacity = spec.get("capacity")
    if not capacity:
        errs.append(required("spec.capacity"))
    else:
        errs += _validate_resource_list("spec.capacity", capacity)
    sources = [s for s in _PV_SOURCES if spec.get(s) is not None]
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    elif len(sources) > 1:
        errs.append(forbidden(f"spec.{sources[1]}", "may not specify more than 1 volume type"))
    errs += _enum("spec.persistentVolumeReclaimPolicy", spec.get("persistentVolumeReclaimPolicy"),
                  ["Delete", "Recycle", "Retain"], required_when_empty=False)
    return errs


def _validate_service_account(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    for i, ref in enumerate(_l(obj.get("secrets"))):
        if isinstance(ref, dict) and ref.get("name"):
            errs += _name_errors(dns1123_subdomain_errors, f"secrets[{i}].name", ref["name"])
    return errs


def _validate_event(info: ResourceInfo, obj: Obj) -> Errors:
    meta = _d(obj.get("metadata"))
    namespace = meta.get("namespace") or ""
    errs: Errors = []
    if info.group == "events.k8s.io":
        if not obj.get("eventTime"):
            errs.append(required("eventTime"))
        for key in ("reportingController", "reportingInstance", "action", "reason"):
            if not obj.get(key):
                errs.append(required(key))
        errs += _enum("type", obj.get("type"), ["Normal", "Warning"])
        regarding_ns = _d(obj.get("regarding")).get("namespace") or ""
        if regarding_ns and regarding_ns != namespace:
            errs.append(invalid("regarding.namespace", regarding_ns, "does not match event.namespace"))
        note = obj.get("note")
        if isinstance(note, str) and len(note.encode()) > 1024:
            errs.append(_too_long("note", 1024))
        return errs
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict):
        return [required("involvedObject")]
    involved_ns = involved.get("namespace") or ""
    if involved_ns:
        if involved_ns != namespace:
            errs.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    elif namespace not in ("", "default") and str(involved.get("kind")) in _CLUSTER_KINDS:
        errs.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    if obj.get("type"):
        errs += _enum("type", obj.get("type"), ["Normal", "Warning"])
    return errs


# Event objects about cluster-scoped kinds must live in "default" (or have no namespace).
_CLUSTER_KINDS = {"Node", "Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass"}


def _validate_lease(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs = _positive("spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"))
    errs += _non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    return errs


def _validate_limit_range(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    for i, item in enumerate(_l(_d(obj.get("spec")).get("limits"))):
        if not isinstance(item, dict):
            continue
        p = f"spec.limits[{i}]"
        errs += _enum(f"{p}.type", item.get("type"), ["Container", "Pod", "PersistentVolumeClaim"])
        for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
            errs += _validate_resource_list(f"{p}.{key}", item.get(key))
    return errs


def _validate_resource_quota(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_resource_list("spec.hard", _d(obj.get("spec")).get("hard"))


# -- other groups -------------------------------------------------------------------------

_RBAC_GROUP = "rbac.authorization.k8s.io"


def _validate_rules(rules: Any, namespaced: bool) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        p = f"rules[{i}]"
        if not isinstance(rule, dict):
            continue
        if not rule.get("verbs"):
            errs.append(required(f"{p}.verbs", "verbs must contain at least one value"))
        urls = rule.get("nonResourceURLs")
        if urls:
            if namespaced:
                errs.append(invalid(f"{p}.nonResourceURLs", GoValue(_go_strings(urls)),
                                    "namespaced rules cannot apply to non-resource URLs"))
            if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                errs.append(invalid(f"{p}.nonResourceURLs", GoValue(_go_strings(urls)),
                                    "rules cannot apply to both regular resources and non-resource URLs"))
            continue
        if not rule.get("apiGroups"):
            errs.append(required(f"{p}.apiGroups", "resource rules must supply at least one api group"))
        if not rule.get("resources"):
            errs.append(required(f"{p}.resources", "resource rules must supply at least one resource"))
    return errs


def _validate_role(info: ResourceInfo, obj: Obj) -> Errors:
    return _validate_rules(obj.get("rules"), info.namespaced)


def _validate_binding(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    ref = obj.get("roleRef") if isinstance(obj.get("roleRef"), dict) else {}
    kinds = ["Role", "ClusterRole"] if info.namespaced else ["ClusterRole"]
    errs += _enum("roleRef.apiGroup", ref.get("apiGroup"), [_RBAC_GROUP])
    errs += _enum("roleRef.kind", ref.get("kind"), kinds)
    if not ref.get("name"):
        errs.append(required("roleRef.name"))
    else:
        errs += _name_errors(path_segment_name_errors, "roleRef.name", ref["name"])
    for i, subject in enumerate(_l(obj.get("subjects"))):
        p = f"subjects[{i}]"
        if not isinstance(subject, dict):
            continue
        if not subject.get("name"):
            errs.append(required(f"{p}.name"))
        kind = subject.get("kind")
        if kind == "ServiceAccount":
            if subject.get("apiGroup"):
                errs.append(not_supported(f"{p}.apiGroup", subject["apiGroup"], [""]))
            if not info.namespaced and not subject.get("namespace"):
                errs.append(required(f"{p}.namespace"))
        elif kind in ("User", "Group"):
            if subject.get("apiGroup") != _RBAC_GROUP:
                errs.append(not_supported(f"{p}.apiGroup", subject.get("apiGroup") or "", [_RBAC_GROUP]))
        else:
            errs.append(not_supported(f"{p}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    return errs


def _validate_binding_update(new: Obj, old: Obj) -> Errors:
    if new.get("roleRef") != old.get("roleRef"):
        ref = _d(new.get("roleRef"))
        shown = GoValue(f'rbac.RoleRef{{APIGroup:"{ref.get("apiGroup", "")}", Kind:"{ref.get("kind", "")}", '
                        f'Name:"{ref.get("name", "")}"}}')
        return [invalid("roleRef", shown, "cannot change roleRef")]
    return []


def _validate_crd(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    group = spec.get("group")
    if not group:
        errs.append(required("spec.group"))
    else:
        errs += _name_errors(dns1123_subdomain_errors, "spec.group", group)
        if "." not in str(group):
            errs.append(invalid("spec.group", group, "should be a domain with at least one dot"))
    names = spec.get("names") if isinstance(spec.get("names"), dict) else {}
    plural, kind = names.get("plural"), names.get("kind")
    if not plural:
        errs.append(required("spec.names.plural"))
    else:
        errs += _name_errors(dns1123_label_errors, "spec.names.plural", plural)
    if names.get("singular"):
        errs += _name_errors(dns1123_label_errors, "spec.names.singular", names["singular"])
    if not kind:
        errs.append(required("spec.names.kind"))
    elif isinstance(kind, str) and not re.match(r"^[A-Za-z][A-Za-z0-9]*$", kind):
        errs.append(invalid("spec.names.kind", kind, "may have mixed case, but should otherwise match: "
                                                     "[a-z]([-a-z0-9]*[a-z0-9])?"))
    if names.get("listKind") and names.get("listKind") == kind:
        errs.append(invalid("spec.names.listKind", names["listKind"], "kind and listKind may not be the same"))
    name = _d(obj.get("metadata")).get("name")
    if plural and group and name != f"{plural}.{group}":
        errs.append(invalid("metadata.name", name or "", 'must be spec.names.plural+"."+spec.group'))
    errs += _enum("spec.scope", spec.get("scope"), ["Cluster", "Namespaced"])
    versions = spec.get("versions")
    if not isinstance(versions, list) or not versions:
        errs.append(invalid("spec.versions", GoValue("[]apiextensions.CustomResourceDefinitionVersion(nil)"),
                            "must have exactly one version marked as storage version"))
        return errs
    seen: set[str] = set()
    storage = 0
    for i, version in enumerate(versions):
        p = f"spec.versions[{i}]"
        if not isinstance(version, dict):
            continue
        vname = version.get("name")
        if not vname:
            errs.append(required(f"{p}.name"))
        else:
            errs += _name_errors(dns1035_label_errors, f"{p}.name", vname)
            if _seen_before(seen, vname):
                errs.append(invalid(f"{p}.name", vname, "must be unique"))
        if version.get("storage") is True:
            storage += 1
        errs += _validate_crd_schema(f"{p}.schema.openAPIV3Schema",
                                     _d(version.get("schema")).get("openAPIV3Schema"))
    if storage != 1:
        shown = GoValue("[]apiextensions.CustomResourceDefinitionVersion{" + ", ".join(
            f'"{v.get("name", "")}"' for v in versions if isinstance(v, dict)) + "}")
        errs.append(invalid("spec.versions", shown, "must have exactly one version marked as storage version"))
    return errs


def _validate_crd_schema(path: str, schema: Any) -> Errors:
    if not isinstance(schema, dict):
        return [required(path, "schemas are required")]
    errs: Errors = []
    root_type = schema.get("type")
    if not root_type:
        errs.append(required(f"{path}.type", "must not be empty at the root"))
    elif root_type != "object":
        errs.append(not_supported(f"{path}.type", root_type, ["object"]))
    try:
        _compile(schema, cache=False)
    except (ValueError, TypeError) as e:
        errs.append(invalid(path, GoValue("..."), f"invalid schema: {e}"))
    return errs


def _validate_crd_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = _d(new.get("spec")), _d(old.get("spec"))
    errs = _immutable("spec.group", new_spec.get("group"), old_spec.get("group"))
    errs += _immutable("spec.scope", new_spec.get("scope"), old_spec.get("scope"))
    return errs


def _validate_storage_class(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    provisioner = obj.get("provisioner")
    if not provisioner:
        errs.append(required("provisioner"))
    else:
        errs += [invalid("provisioner", provisioner, m) for m in qualified_name_errors(str(provisioner).lower())]
    errs += _enum("reclaimPolicy", obj.get("reclaimPolicy"), ["Delete", "Retain"], required_when_empty=False)
    errs += _enum("volumeBindingMode", obj.get("volumeBindingMode"), ["Immediate", "WaitForFirstConsumer"],
                  required_when_empty=False)
    return errs


def _validate_storage_class_update(new: Obj, old: Obj) -> Errors:
    errs: Errors = []
    for key in ("parameters", "provisioner", "reclaimPolicy"):
        if new.get(key) != old.get(key):
            errs.append(forbidden(key, f"updates to {key} are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(forbidden("volumeBindingMode", "field is immutable"))
    return errs


def _validate_ingress_backend(path: str, backend: Any) -> Errors:
    if not isinstance(backend, dict):
        return []
    service, resource = backend.get("service"), backend.get("resource")
    if service is not None and resource is not None:
        return [invalid(path, GoValue("..."), "cannot set both resource and service backends")]
    if service is None and resource is None:
        return [invalid(path, GoValue("..."), "resource or service backend is required")]
    errs: Errors = []
    if isinstance(service, dict):
        if not service.get("name"):
            errs.append(required(f"{path}.service.name"))
        else:
            errs += _name_errors(dns1035_label_errors, f"{path}.service.name", service["name"])
        port = service.get("port") if isinstance(service.get("port"), dict) else {}
        if port.get("name") and port.get("number"):
            errs.append(invalid(f"{path}.service.port", GoValue("..."), "cannot set both port name & port number"))
        elif port.get("name"):
            errs += [invalid(f"{path}.service.port.name", port["name"], m) for m in port_name_errors(port["name"])]
        elif port.get("number") is not None:
            errs += _port_errors(f"{path}.service.port.number", port["number"])
        else:
            errs.append(required(f"{path}.service.port", "port name or number is required"))
    return errs


def _validate_ingress(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    rules = _l(spec.get("rules"))
    if spec.get("defaultBackend") is None and not rules:
        errs.append(invalid("spec.rules", GoValue("[]networking.IngressRule(nil)"),
                            "either `defaultBackend` or `rules` must be specified"))
    errs += _validate_ingress_backend("spec.defaultBackend", spec.get("defaultBackend"))
    for i, rule in enumerate(rules):
        p = f"spec.rules[{i}]"
        if not isinstance(rule, dict):
            continue
        host = rule.get("host")
        if isinstance(host, str) and host:
            bare = host[2:] if host.startswith("*.") else host
            errs += [invalid(f"{p}.host", host, m) for m in dns1123_subdomain_errors(bare)]
        http = rule.get("http")
        if not isinstance(http, dict):
            continue
        for j, path_rule in enumerate(_l(http.get("paths"))):
            pp = f"{p}.http.paths[{j}]"
            if not isinstance(path_rule, dict):
                continue
            path_type = path_rule.get("pathType")
            if not path_type:
                errs.append(required(f"{pp}.pathType", "pathType must be specified"))
            else:
                errs += _enum(f"{pp}.pathType", path_type, ["Exact", "ImplementationSpecific", "Prefix"])
            url_path = path_rule.get("path")
            if path_type in ("Exact", "Prefix") and not str(url_path or "").startswith("/"):
                errs.append(invalid(f"{pp}.path", url_path or "", "must be an absolute path"))
            errs += _validate_ingress_backend(f"{pp}.backend", path_rule.get("backend"))
    for i, tls in enumerate(_l(spec.get("tls"))):
        for j, host in enumerate(_l(_d(tls).get("hosts"))):
            bare = host[2:] if isinstance(host, str) and host.startswith("*.") else host
            errs += _name_errors(dns1123_subdomain_errors, f"spec.tls[{i}].hosts[{j}]", bare)
    return errs


def _validate_ingress_class(info: ResourceInfo, obj: Obj) -> Errors:
    controller = _d(obj.get("spec")).get("controller")
    if not controller:
        return [required("spec.controller")]
    return [invalid("spec.controller", controller, m) for m in qualified_name_errors(str(controller))]


def _validate_ingress_class_update(new: Obj, old: Obj) -> Errors:
    return _immutable("spec.controller", _d(new.get("spec")).get("controller"),
                      _d(old.get("spec")).get("controller"))


def _validate_network_policy(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs = validate_label_selector("spec.podSelector", spec.get("podSelector"))
    types = _l(spec.get("policyTypes"))
    for i, t in enumerate(types):
        errs += _enum(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"])
    if len(types) > 2:
        errs.append(invalid("spec.policyTypes", GoValue(_go_strings(types)), "may not specify more than two policyTypes"))
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(_l(spec.get(direction))):
            if not isinstance(rule, dict):
                continue
            for j, port in enumerate(_l(rule.get("ports"))):
                if not isinstance(port, dict):
                    continue
                p = f"spec.{direction}[{i}].ports[{j}]"
                errs += _enum(f"{p}.protocol", port.get("protocol"), _PROTOCOLS, required_when_empty=False)
                if port.get("port") is not None:
                    errs += _int_or_name_port_errors(f"{p}.port", port["port"])
            for j, peer in enumerate(_l(rule.get(peers_key))):
                if isinstance(peer, dict):
                    for key in ("podSelector", "namespaceSelector"):
                        errs += validate_label_selector(f"spec.{direction}[{i}].{peers_key}[{j}].{key}", peer.get(key))
    return errs


def _validate_hpa(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    ref = spec.get("scaleTargetRef") if isinstance(spec.get("scaleTargetRef"), dict) else {}
    for key in ("kind", "name"):
        if not ref.get(key):
            errs.append(required(f"spec.scaleTargetRef.{key}"))
    min_replicas, max_replicas = spec.get("minReplicas"), spec.get("maxReplicas")
    if min_replicas is not None and (not _is_int(min_replicas) or min_replicas < 1):
        errs.append(invalid("spec.minReplicas", min_replicas, "must be greater than or equal to 1"))
    if not _is_int(max_replicas) or max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than 0"))
    elif _is_int(min_replicas) and max_replicas < min_replicas:
        errs.append(invalid("spec.maxReplicas", max_replicas, "must be greater than or equal to `minReplicas`"))
    for i, metric in enumerate(_l(spec.get("metrics"))):
        if isinstance(metric, dict):
            errs += _enum(f"spec.metrics[{i}].type", metric.get("type"),
                          ["ContainerResource", "External", "Object", "Pods", "Resource"])
    return errs


def _validate_pdb(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    if spec.get("minAvailable") is not None and spec.get("maxUnavailable") is not None:
        errs.append(invalid("spec", GoValue("policy.PodDisruptionBudgetSpec{...}"),
                            "minAvailable and maxUnavailable cannot be both set"))
    errs += _validate_int_or_percent("spec.minAvailable", spec.get("minAvailable"))
    errs += _validate_int_or_percent("spec.maxUnavailable", spec.get("maxUnavailable"))
    if spec.get("selector") is not None:
        errs += validate_label_selector("spec.selector", spec.get("selector"))
    errs += _enum("spec.unhealthyPodEvictionPolicy", spec.get("unhealthyPodEvictionPolicy"),
                  ["AlwaysAllow", "IfHealthyBudget"], required_when_empty=False)
    return errs


_MAX_USER_PRIORITY = 1_000_000_000


def _validate_priority_class(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    name = _d(obj.get("metadata")).get("name") or ""
    value = obj.get("value")
    if name.startswith("system-") and name not in ("system-cluster-critical", "system-node-critical"):
        errs.append(invalid("metadata.name", name, "Priority class names with 'system-' prefix are reserved."))
    if not _is_int(value):
        errs.append(required("value"))
    elif value > _MAX_USER_PRIORITY and not name.startswith("system-"):
        errs.append(forbidden("value", f"maximum allowed value of a user defined priority is {_MAX_USER_PRIORITY}"))
    errs += _enum("preemptionPolicy", obj.get("preemptionPolicy"), ["Never", "PreemptLowerPriority"],
                  required_when_empty=False)
    return errs


def _validate_priority_class_update(new: Obj, old: Obj) -> Errors:
    if new.get("value") != old.get("value"):
        return [forbidden("value", "may not be changed in an update.")]
    return []


def _validate_endpointslice(info: ResourceInfo, obj: Obj) -> Errors:
    errs = _enum("addressType", obj.get("addressType"), ["IPv4", "IPv6", "FQDN"])
    for i, ep in enumerate(_l(obj.get("endpoints"))):
        if isinstance(ep, dict) and not ep.get("addresses"):
            errs.append(required(f"endpoints[{i}].addresses"))
    for i, port in enumerate(_l(obj.get("ports"))):
        if isinstance(port, dict) and port.get("port") is not None:
            errs += _port_errors(f"ports[{i}].port", port["port"], allow_zero=True)
    return errs


def _validate_controller_revision(info: ResourceInfo, obj: Obj) -> Errors:
    return _non_negative("revision", obj.get("revision"))


def _validate_controller_revision_update(new: Obj, old: Obj) -> Errors:
    return _immutable("data", new.get("data"), old.get("data"), GoValue("runtime.RawExtension{...}"))


Validator = Callable[[ResourceInfo, Obj], Errors]
UpdateValidator = Callable[[Obj, Obj], Errors]

_VALIDATORS: dict[tuple[str, str], Validator] = {
    ("", "Pod"): _validate_pod,
    ("", "PodTemplate"): _validate_pod_template,
    ("", "ReplicationController"): _validate_replication_controller,
    ("", "Service"): _validate_service,
    ("", "ConfigMap"): _validate_configmap,
    ("", "Secret"): _validate_secret,
    ("", "Namespace"): _validate_namespace,
    ("", "Node"): _validate_node,
    ("", "PersistentVolumeClaim"): _validate_pvc,
    ("", "PersistentVolume"): _validate_pv,
    ("", "ServiceAccount"): _validate_service_account,
    ("", "Event"): _validate_event,
    ("", "LimitRange"): _validate_limit_range,
    ("", "ResourceQuota"): _validate_resource_quota,
    ("apps", "Deployment"): _validate_deployment,
    ("apps", "ReplicaSet"): _validate_replicaset,
    ("apps", "StatefulSet"): _validate_statefulset,
    ("apps", "DaemonSet"): _validate_daemonset,
    ("apps", "ControllerRevision"): _validate_controller_revision,
    ("batch", "Job"): _validate_job,
    ("batch", "CronJob"): _validate_cronjob,
    ("autoscaling", "HorizontalPodAutoscaler"): _validate_hpa,
    ("discovery.k8s.io", "EndpointSlice"): _validate_endpointslice,
    ("coordination.k8s.io", "Lease"): _validate_lease,
    ("rbac.authorization.k8s.io", "Role"): _validate_role,
    ("rbac.authorization.k8s.io", "ClusterRole"): _validate_role,
    ("rbac.authorization.k8s.io", "RoleBinding"): _validate_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _validate_binding,
    ("storage.k8s.io", "StorageClass"): _validate_storage_class,
    ("events.k8s.io", "Event"): _validate_event,
    ("networking.k8s.io", "Ingress"): _validate_ingress,
    ("networking.k8s.io", "IngressClass"): _validate_ingress_class,
    ("networking.k8s.io", "NetworkPolicy"): _validate_network_policy,
    ("policy", "PodDisruptionBudget"): _validate_pdb,
    ("scheduling.k8s.io", "PriorityClass"): _validate_priority_class,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _validate_crd,
}

_UPDATE_VALIDATORS: dict[tuple[str, str], UpdateValidator] = {
    ("", "Pod"): _validate_pod_update,
    ("", "Service"): _validate_service_update,
    ("", "ConfigMap"): _validate_configmap_update,
    ("", "Secret"): _validate_secret_update,
    ("", "PersistentVolumeClaim"): _validate_pvc_update,
    ("apps", "Deployment"): _selector_immutable,
    ("apps", "ReplicaSet"): _selector_immutable,
    ("apps", "DaemonSet"): _selector_immutable,
    ("apps", "StatefulSet"): lambda new, old: _selector_immutable(new, old) + _validate_statefulset_update(new, old),
    ("apps", "ControllerRevision"): _validate_controller_revision_update,
    ("batch", "Job"): _validate_job_update,
    ("rbac.authorization.k8s.io", "RoleBinding"): _validate_binding_update,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _validate_binding_update,
    ("storage.k8s.io", "StorageClass"): _validate_storage_class_update,
    ("networking.k8s.io", "IngressClass"): _validate_ingress_class_update,
    ("scheduling.k8s.io", "PriorityClass"): _validate_priority_class_update,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _validate_crd_update,
}


def validate(info: ResourceInfo, obj: dict, old: dict | None) -> list[FieldError]:
    """Every semantic problem of `obj` (and of the change from `old`, on update).

    For custom resources this includes `validate_custom` (the CRD schema).
    """
    errs = validate_object_meta(info, obj.get("metadata"))
    if info.crd_schema is not None:
        errs += validate_custom(info, obj)
    else:
        validator = _VALIDATORS.get((info.group, info.kind))
        if validator is not None:
            errs += validator(info, obj)
    if old is not None:
        errs += validate_object_meta_update(obj.get("metadata"), old.get("metadata"))
        update_validator = _UPDATE_VALIDATORS.get((info.group, info.kind))
        if update_validator is not None and info.crd_schema is None:
            errs += update_validator(obj, old)
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


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


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


def _compile(schema: dict[str, Any], cache: bool = True) -> Any:
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


def _schema_type_name(value: Any) -> str:
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
        return duplicate(path, _json_value(value))
    if kind in details:
        return invalid(path, value if not isinstance(value, dict | list) else _json_value(value),
                       f"{body} in body {details[kind]}")
    return invalid(path, value if not isinstance(value, dict | list) else _json_value(value), e.message)


def validate_custom(info: ResourceInfo, obj: dict) -> list[FieldError]:
    """`obj` against its CRD's openAPIV3Schema, with the real server's messages."""
    schema = info.crd_schema
    if not isinstance(schema, dict):
        return []
    body = {k: v for k, v in obj.items() if k != "metadata"}
    # Metadata is ObjectMeta whatever the schema says; checked by validate_object_meta.
    validator = _compile(_without_metadata(schema))
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
