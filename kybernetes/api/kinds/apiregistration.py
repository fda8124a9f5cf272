"""apiregistration.k8s.io: APIServices, the aggregator's list of served group-versions.

Every group-version this server serves itself is a local APIService (`v1.apps`, `v1.`
for the core group, ...) with upstream's discovery priorities and an Available=True
condition; the server keeps them (see `apiserver/bootstrapobjects.py`). An APIService
naming a Service is stored and validated, but nothing proxies to it here: the
aggregation layer is not implemented, and its Available condition says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.errors import FieldError, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1035_label_errors, dns1123_label_errors, dns1123_subdomain_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import age_column, age_of, column, get_path, list_at, name_column, name_of
from kybernetes.api.validation import as_dict, name_errors, port_errors

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

GROUP = "apiregistration.k8s.io"
API_SERVICE = KindRef(GROUP, "APIService")
AUTOMANAGED_LABEL = "kube-aggregator.kubernetes.io/automanaged"
LOCAL_MESSAGE = "Local APIServices are always available"
_MAX_PRIORITY = 20000

# kube-apiserver's discovery priorities: (groupPriorityMinimum, versionPriority) per group-version.
_PRIORITIES: dict[tuple[str, str], tuple[int, int]] = {
    ("", "v1"): (18000, 1),
    ("apiregistration.k8s.io", "v1"): (18000, 15),
    ("apps", "v1"): (17800, 15),
    ("events.k8s.io", "v1"): (17750, 15),
    ("authentication.k8s.io", "v1"): (17700, 15),
    ("authorization.k8s.io", "v1"): (17600, 15),
    ("autoscaling", "v2"): (17500, 30),
    ("autoscaling", "v1"): (17500, 15),
    ("batch", "v1"): (17400, 15),
    ("certificates.k8s.io", "v1"): (17300, 15),
    ("networking.k8s.io", "v1"): (17200, 15),
    ("policy", "v1"): (17100, 15),
    ("rbac.authorization.k8s.io", "v1"): (17000, 15),
    ("storage.k8s.io", "v1"): (16800, 15),
    ("admissionregistration.k8s.io", "v1"): (16700, 15),
    ("apiextensions.k8s.io", "v1"): (16700, 15),
    ("scheduling.k8s.io", "v1"): (16600, 15),
    ("coordination.k8s.io", "v1"): (16500, 15),
    ("node.k8s.io", "v1"): (16300, 15),
    ("discovery.k8s.io", "v1"): (16200, 15),
    ("resource.k8s.io", "v1"): (16200, 21),
    ("flowcontrol.apiserver.k8s.io", "v1"): (16100, 21),
}
# What the CRD registration controller gives a custom resource's group-version.
_CUSTOM_PRIORITY = (1000, 100)


def api_service_name(group: str, version: str) -> str:
    return f"{version}.{group}"


def local_api_service(group: str, version: str, now: str, custom: bool = False) -> Obj:
    """The APIService the aggregator keeps for a group-version served by this server."""
    group_min, version_prio = _CUSTOM_PRIORITY if custom else _PRIORITIES.get((group, version), (1000, 15))
    spec: Obj = {"version": version, "groupPriorityMinimum": group_min, "versionPriority": version_prio}
    if group:
        spec = {"group": group, **spec}
    return {
        "apiVersion": f"{GROUP}/v1", "kind": "APIService",
        "metadata": {"name": api_service_name(group, version),
                     "labels": {AUTOMANAGED_LABEL: "true" if custom else "onstart"}},
        "spec": spec,
        "status": {"conditions": [available_condition(now)]},
    }


def available_condition(now: str) -> Obj:
    return {"type": "Available", "status": "True", "lastTransitionTime": now, "reason": "Local",
            "message": LOCAL_MESSAGE}


def remote_available_condition(obj: Obj, service_exists: bool, now: str) -> Obj:
    """The Available condition of an APIService served by another server: the
    aggregation layer is not implemented here, so it is never available."""
    svc = as_dict(get_path(obj, "spec", "service"))
    namespace, name = svc.get("namespace", ""), svc.get("name", "")
    if not service_exists:
        reason, message = "ServiceNotFound", f'service/{name} in "{namespace}" is not present'
    else:
        reason = "FailedDiscoveryCheck"
        message = (f"failing or missing response from https://{name}.{namespace}.svc:{svc.get('port') or 443}"
                   "/apis: this API server does not proxy to aggregated API servers")
    return {"type": "Available", "status": "False", "lastTransitionTime": now, "reason": reason, "message": message}


def condition_differs(existing: Obj, wanted: Obj) -> bool:
    for cond in list_at(existing, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == wanted["type"]:
            return any(cond.get(k) != wanted[k] for k in ("status", "reason", "message"))
    return True


def needs_spec_update(existing: Obj, desired: Obj) -> bool:
    return existing.get("spec") != desired.get("spec")


def needs_status_update(existing: Obj) -> bool:
    for cond in list_at(existing, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == "Available":
            return cond.get("status") != "True" or cond.get("reason") != "Local"
    return True


def validate_api_service(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    name = str(get_path(obj, "metadata", "name") or "")
    version, group = spec.get("version"), spec.get("group") or ""
    errs: Errors = []
    if not version:
        errs.append(required("spec.version"))
    else:
        errs += name_errors(dns1035_label_errors, "spec.version", version)
    if group:
        errs += name_errors(dns1123_subdomain_errors, "spec.group", group)
    if name and version and name != api_service_name(str(group), str(version)):
        errs.append(invalid("metadata.name", name, f"must be `spec.version+\".\"+spec.group`: "
                                                   f"\"{api_service_name(str(group), str(version))}\""))
    for key, limit in (("groupPriorityMinimum", _MAX_PRIORITY), ("versionPriority", None)):
        value = spec.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            errs.append(invalid(f"spec.{key}", value, "must be positive and less than 20000" if limit
                                else "must be positive and less than 1000"))
        elif limit is not None and value > limit:
            errs.append(invalid(f"spec.{key}", value, "must be positive and less than 20000"))
        elif limit is None and value > 1000:
            errs.append(invalid(f"spec.{key}", value, "must be positive and less than 1000"))
    service = spec.get("service")
    if service is None:
        if spec.get("caBundle") or spec.get("insecureSkipTLSVerify"):
            errs.append(forbidden("spec", "local APIServices may not have a caBundle or insecureSkipTLSVerify"))
        return errs
    svc = as_dict(service)
    if not svc.get("namespace"):
        errs.append(required("spec.service.namespace"))
    else:
        errs += name_errors(dns1123_label_errors, "spec.service.namespace", svc["namespace"])
    if not svc.get("name"):
        errs.append(required("spec.service.name"))
    else:
        errs += name_errors(dns1035_label_errors, "spec.service.name", svc["name"])
    if svc.get("port") is not None:
        errs += port_errors("spec.service.port", svc["port"])
    if spec.get("insecureSkipTLSVerify") and spec.get("caBundle"):
        errs.append(invalid("spec.insecureSkipTLSVerify", True, "may not be true if caBundle is present"))
    return errs


def service_text(obj: Obj) -> str:
    svc = get_path(obj, "spec", "service")
    if not isinstance(svc, dict):
        return "Local"
    return f"{svc.get('namespace', '')}/{svc.get('name', '')}"


def available_text(obj: Obj) -> str:
    for cond in list_at(obj, "status", "conditions"):
        if isinstance(cond, dict) and cond.get("type") == "Available":
            status = str(cond.get("status") or "Unknown")
            if status != "True" and cond.get("reason"):
                return f"{status} ({cond['reason']})"
            return status
    return "Unknown"


class APIServiceStrategy(KindStrategy):
    refs = (API_SERVICE,)
    counts_generation = False  # upstream's PrepareForCreate sets no generation
    status_metadata = ()  # apiServerStatusStrategy keeps all user metadata

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_api_service(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return [
            name_column(),
            column("Service", "The reference to the service that hosts this API endpoint."),
            column("Available", "Whether this service is available."),
            age_column(),
        ]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), service_text(obj), available_text(obj), age_of(obj, now)]
