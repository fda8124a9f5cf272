"""Networking: Ingresses, IngressClasses and NetworkPolicies."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, dicts, set_default
from kybernetes.api.errors import FieldError, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import (
    dns1035_label_errors,
    dns1123_subdomain_errors,
    port_name_errors,
    qualified_name_errors,
)
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_str,
    column,
    dict_at,
    doc,
    format_selector,
    list_at,
    load_balancer_addresses,
    name_column,
    name_of,
)
from kybernetes.api.validation import (
    PROTOCOLS,
    GoValue,
    as_dict,
    as_list,
    enum_errors,
    go_strings,
    immutable,
    int_or_name_port_errors,
    name_errors,
    port_errors,
    validate_label_selector,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


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
            errs += name_errors(dns1035_label_errors, f"{path}.service.name", service["name"])
        port = service.get("port") if isinstance(service.get("port"), dict) else {}
        if port.get("name") and port.get("number"):
            errs.append(invalid(f"{path}.service.port", GoValue("..."), "cannot set both port name & port number"))
        elif port.get("name"):
            errs += [invalid(f"{path}.service.port.name", port["name"], m) for m in port_name_errors(port["name"])]
        elif port.get("number") is not None:
            errs += port_errors(f"{path}.service.port.number", port["number"])
        else:
            errs.append(required(f"{path}.service.port", "port name or number is required"))
    return errs


def _validate_ingress(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    rules = as_list(spec.get("rules"))
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
        for j, path_rule in enumerate(as_list(http.get("paths"))):
            pp = f"{p}.http.paths[{j}]"
            if not isinstance(path_rule, dict):
                continue
            path_type = path_rule.get("pathType")
            if not path_type:
                errs.append(required(f"{pp}.pathType", "pathType must be specified"))
            else:
                errs += enum_errors(f"{pp}.pathType", path_type, ["Exact", "ImplementationSpecific", "Prefix"])
            url_path = path_rule.get("path")
            if path_type in ("Exact", "Prefix") and not str(url_path or "").startswith("/"):
                errs.append(invalid(f"{pp}.path", url_path or "", "must be an absolute path"))
            errs += _validate_ingress_backend(f"{pp}.backend", path_rule.get("backend"))
    for i, tls in enumerate(as_list(spec.get("tls"))):
        for j, host in enumerate(as_list(as_dict(tls).get("hosts"))):
            bare = host[2:] if isinstance(host, str) and host.startswith("*.") else host
            errs += name_errors(dns1123_subdomain_errors, f"spec.tls[{i}].hosts[{j}]", bare)
    return errs


def _validate_ingress_class(info: ResourceInfo, obj: Obj) -> Errors:
    controller = as_dict(obj.get("spec")).get("controller")
    if not controller:
        return [required("spec.controller")]
    return [invalid("spec.controller", controller, m) for m in qualified_name_errors(str(controller))]


def _validate_ingress_class_update(new: Obj, old: Obj) -> Errors:
    return immutable("spec.controller", as_dict(new.get("spec")).get("controller"),
                      as_dict(old.get("spec")).get("controller"))


def _validate_network_policy(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs = validate_label_selector("spec.podSelector", spec.get("podSelector"))
    types = as_list(spec.get("policyTypes"))
    for i, t in enumerate(types):
        errs += enum_errors(f"spec.policyTypes[{i}]", t, ["Ingress", "Egress"])
    if len(types) > 2:
        errs.append(invalid("spec.policyTypes", GoValue(go_strings(types)), "may not specify more than two policyTypes"))
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, rule in enumerate(as_list(spec.get(direction))):
            if not isinstance(rule, dict):
                continue
            for j, port in enumerate(as_list(rule.get("ports"))):
                if not isinstance(port, dict):
                    continue
                p = f"spec.{direction}[{i}].ports[{j}]"
                errs += enum_errors(f"{p}.protocol", port.get("protocol"), PROTOCOLS, required_when_empty=False)
                if port.get("port") is not None:
                    errs += int_or_name_port_errors(f"{p}.port", port["port"])
            for j, peer in enumerate(as_list(rule.get(peers_key))):
                if isinstance(peer, dict):
                    for key in ("podSelector", "namespaceSelector"):
                        errs += validate_label_selector(f"spec.{direction}[{i}].{peers_key}[{j}].{key}", peer.get(key))
    return errs


def _default_network_policy(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    for direction in ("ingress", "egress"):
        for rule in dicts(spec.get(direction)):
            for port in dicts(rule.get("ports")):
                set_default(port, "protocol", "TCP")


def _default_ingress_class(obj: Obj) -> None:
    params = child_map(obj, "spec").get("parameters")
    if isinstance(params, dict):
        set_default(params, "scope", "Cluster")


def _columns_ingress() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Class", "The name of the IngressClass resource that should be used for additional configuration"),
        column("Hosts", "Hosts that incoming requests are matched against before the ingress rule"),
        column("Address", "Address is a list containing ingress points for the load-balancer"),
        column("Ports", "Ports of TLS configurations that open"),
        age_column(),
    ]


def _columns_ingressclass() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Controller", "Controller that is responsible for handling this class"),
        column("Parameters", "A reference to a resource with additional parameters"),
        age_column(),
    ]


def _columns_networkpolicy() -> list[dict[str, Any]]:
    return [name_column(), column("Pod-Selector", doc("networking.v1.NetworkPolicySpec", "podSelector")), age_column()]


def _ingress_hosts(rules: list[Any]) -> str:
    # Rules without a host take no slot, but once three hosts are listed every remaining
    # rule (host or not) counts towards "more".
    hosts: list[str] = []
    more = False
    for rule in rules:
        if len(hosts) == 3:
            more = True
            break
        if isinstance(rule, Mapping) and rule.get("host"):
            hosts.append(as_str(rule["host"]))
    if not hosts:
        return "*"
    text = ",".join(hosts)
    return f"{text} + {len(rules) - 3} more..." if more else text


def _cells_ingress(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    return [name_of(obj), as_str(spec.get("ingressClassName")) or "<none>", _ingress_hosts(list_at(spec, "rules")),
            load_balancer_addresses(dict_at(obj, "status", "loadBalancer")),
            "80, 443" if list_at(spec, "tls") else "80", age_of(obj, now)]


def _cells_ingressclass(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    params = dict_at(spec, "parameters")
    text = "<none>"
    if params:
        text = as_str(params.get("kind"))
        if params.get("apiGroup") is not None:
            text += "." + as_str(params.get("apiGroup"))
        text += "/" + as_str(params.get("name"))
    return [name_of(obj), as_str(spec.get("controller")), text, age_of(obj, now)]


def _cells_networkpolicy(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), format_selector(dict_at(obj, "spec", "podSelector")), age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

class IngressStrategy(KindStrategy):
    refs = (KindRef("networking.k8s.io", "Ingress"),)
    always_present = {("status", "loadBalancer"): {}}

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_ingress(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_ingress()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_ingress(obj, now)


class IngressClassStrategy(KindStrategy):
    refs = (KindRef("networking.k8s.io", "IngressClass"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_ingress_class(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_ingress_class(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_ingress_class_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_ingressclass()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_ingressclass(obj, now)


class NetworkPolicyStrategy(KindStrategy):
    refs = (KindRef("networking.k8s.io", "NetworkPolicy"),)
    always_present = {("spec", "podSelector"): {}}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_network_policy(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_network_policy(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_networkpolicy()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_networkpolicy(obj, now)
