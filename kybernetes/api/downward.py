"""Validation of what a pod asks its node to write into its containers' environment and
files, as upstream words it: which `fieldRef` paths an environment variable or a
downwardAPI volume file may name, which `resourceFieldRef` resources and divisors,
envFrom prefixes under the relaxed environment variable name rule, and the `hostAliases`
that go into /etc/hosts."""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Any

from kybernetes.api.errors import FieldError, invalid, not_supported, required
from kybernetes.api.names import dns1123_subdomain_errors, qualified_name_errors
from kybernetes.api.quantity import parse_quantity

Obj = dict[str, Any]
Errors = list[FieldError]

ENV_FIELD_PATHS = ["metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"]
VOLUME_FIELD_PATHS = ["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                      "metadata.uid"]
RESOURCES = ["limits.cpu", "limits.ephemeral-storage", "limits.memory", "requests.cpu",
             "requests.ephemeral-storage", "requests.memory"]
# The pod fields the v1 downward API can name at all (upstream's field label conversion).
_CONVERTIBLE = frozenset(ENV_FIELD_PATHS + VOLUME_FIELD_PATHS + ["spec.restartPolicy", "spec.schedulerName",
                                                                 "status.phase"])
_HUGEPAGES = ("limits.hugepages-", "requests.hugepages-")
_CPU_DIVISORS = ("1m", "1")
_BYTE_DIVISORS = ("1", "1k", "1M", "1G", "1T", "1P", "1E", "1Ki", "1Mi", "1Gi", "1Ti", "1Pi", "1Ei")
_SUBSCRIPT = re.compile(r"(metadata\.(?:labels|annotations))\['(.*)'\]")
ENV_NAME_MSG = "a valid environment variable name must consist only of printable ASCII characters other than '='"


def env_name_errors(name: str) -> list[str]:
    if not name or "=" in name or not all(32 <= ord(ch) < 127 for ch in name):
        return [ENV_NAME_MSG]
    return []


def field_ref_errors(path: str, ref: Any, allowed: list[str]) -> Errors:
    if not isinstance(ref, dict):
        return []
    field_path = ref.get("fieldPath")
    if not field_path:
        return [required(f"{path}.fieldPath")]
    m = _SUBSCRIPT.fullmatch(str(field_path))
    if m:
        key = m.group(2).lower() if m.group(1) == "metadata.annotations" else m.group(2)
        return [invalid(path, key, e) for e in qualified_name_errors(key)]
    if field_path not in _CONVERTIBLE:
        return [invalid(f"{path}.fieldPath", field_path,
                        f"error converting fieldPath: field label not supported: {field_path}")]
    if field_path not in allowed:
        return [not_supported(f"{path}.fieldPath", field_path, allowed)]
    return []


def resource_ref_errors(path: str, ref: Any, in_volume: bool) -> Errors:
    if not isinstance(ref, dict):
        return []
    errs: Errors = []
    if in_volume and not ref.get("containerName"):
        errs.append(required(f"{path}.containerName"))
    resource = ref.get("resource")
    if not resource:
        return [*errs, required(f"{path}.resource")]
    if resource not in RESOURCES and not str(resource).startswith(_HUGEPAGES):
        return [*errs, not_supported(f"{path}.resource", resource, RESOURCES)]
    divisor = ref.get("divisor")
    if divisor in (None, "", 0, "0"):
        return errs
    value = parse_quantity(divisor)
    cpu = str(resource).endswith(".cpu")
    allowed = _CPU_DIVISORS if cpu else _BYTE_DIVISORS
    if value is None or all(value != (parse_quantity(a) or Decimal(-1)) for a in allowed):
        what = "cpu" if cpu else "memory" if resource.endswith(".memory") else "local ephemeral storage" \
            if resource.endswith(".ephemeral-storage") else "hugepages"
        errs.append(invalid(f"{path}.divisor", divisor,
                            f"only divisor's values {', '.join(allowed)} are supported with the {what} resource"))
    return errs


def env_errors(path: str, env: Obj) -> Errors:
    """An `env` entry's valueFrom: at most one source, and downward API references upstream allows."""
    frm = env.get("valueFrom")
    if not isinstance(frm, dict):
        return []
    sources = [k for k in ("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef", "fileKeyRef")
               if frm.get(k) is not None]
    if len(sources) > 1:
        return [invalid(f"{path}.valueFrom", "", "may not have more than one field specified at a time")]
    if "fieldRef" in sources:
        return field_ref_errors(f"{path}.valueFrom.fieldRef", frm["fieldRef"], ENV_FIELD_PATHS)
    if "resourceFieldRef" in sources:
        return resource_ref_errors(f"{path}.valueFrom.resourceFieldRef", frm["resourceFieldRef"], False)
    return []


def env_from_errors(path: str, item: Any) -> Errors:
    if not isinstance(item, dict):
        return []
    errs: Errors = []
    prefix = item.get("prefix")
    if prefix:
        errs += [invalid(f"{path}.prefix", prefix, e) for e in env_name_errors(str(prefix))]
    refs = [k for k in ("configMapRef", "secretRef") if item.get(k) is not None]
    if len(refs) > 1:
        errs.append(invalid(path, "", "may not have more than one field specified at a time"))
    return errs


def downward_items_errors(path: str, items: Any) -> Errors:
    """The items of a downwardAPI volume (or projection)."""
    errs: Errors = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        if not isinstance(item, dict):
            continue
        p = f"{path}[{i}]"
        if not item.get("path"):
            errs.append(required(f"{p}.path"))
        if item.get("fieldRef") is not None:
            errs += field_ref_errors(f"{p}.fieldRef", item["fieldRef"], VOLUME_FIELD_PATHS)
            if item.get("resourceFieldRef") is not None:
                errs.append(invalid(p, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
        elif item.get("resourceFieldRef") is not None:
            errs += resource_ref_errors(f"{p}.resourceFieldRef", item["resourceFieldRef"], True)
        else:
            errs.append(required(p, "one of fieldRef and resourceFieldRef is required"))
    return errs


def volume_errors(path: str, vol: Obj) -> Errors:
    """downwardAPI items of a downwardAPI or projected volume."""
    errs: Errors = []
    dapi = vol.get("downwardAPI")
    if isinstance(dapi, dict):
        errs += downward_items_errors(f"{path}.downwardAPI.items", dapi.get("items"))
    projected = vol.get("projected")
    if isinstance(projected, dict):
        for i, source in enumerate(projected.get("sources") or []):
            if isinstance(source, dict) and isinstance(source.get("downwardAPI"), dict):
                errs += downward_items_errors(f"{path}.projected.sources[{i}].downwardAPI.items",
                                              source["downwardAPI"].get("items"))
    return errs


def host_aliases_errors(path: str, aliases: Any) -> Errors:
    """Each alias needs an IP address and DNS subdomain names (nothing that could add
    lines of its own to /etc/hosts)."""
    errs: Errors = []
    for i, alias in enumerate(aliases if isinstance(aliases, list) else []):
        if not isinstance(alias, dict):
            continue
        ip = alias.get("ip")
        if not ip:
            errs.append(required(f"{path}[{i}].ip"))
        else:
            try:
                ipaddress.ip_address(str(ip))
            except ValueError:
                errs.append(invalid(f"{path}[{i}].ip", ip, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        for j, name in enumerate(alias.get("hostnames") or []):
            errs += [invalid(f"{path}[{i}].hostnames[{j}]", name, e) for e in dns1123_subdomain_errors(str(name))]
    return errs
