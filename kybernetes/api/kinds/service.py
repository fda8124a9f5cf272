"""Services, Endpoints and EndpointSlices.

A Service's cluster IPs and node ports come from pools the API server owns; that
I/O is attached to `ServiceStrategy` as an `Allocation` (see `kinds.base`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, dicts, set_default
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.kinds.proxying import Lookup, ProxyLocation, service_location
from kybernetes.api.names import dns1123_label_errors, dns1123_subdomain_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.selectors import format_labels
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_int,
    as_str,
    column,
    dict_at,
    doc,
    get_path,
    join_host_port,
    list_at,
    list_with_more,
    load_balancer_addresses,
    name_column,
    name_of,
)
from kybernetes.api.validation import (
    PROTOCOLS,
    as_dict,
    as_list,
    enum_errors,
    go_string_slice,
    int_or_name_port_errors,
    name_errors,
    port_errors,
    seen_before,
    validate_labels,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


_SERVICE_TYPES = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"]


def _validate_service(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs: Errors = []
    svc_type = spec.get("type")
    errs += enum_errors("spec.type", svc_type, _SERVICE_TYPES)
    headless = spec.get("clusterIP") == "None"
    ports = as_list(spec.get("ports"))
    if svc_type == "ExternalName":
        external = spec.get("externalName")
        if not external:
            errs.append(required("spec.externalName"))
        else:
            errs += name_errors(dns1123_subdomain_errors, "spec.externalName", str(external).rstrip("."))
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
            errs += name_errors(dns1123_label_errors, f"{p}.name", name)
            if seen_before(names, name):
                errs.append(duplicate(f"{p}.name", name))
        errs += port_errors(f"{p}.port", port.get("port"))
        errs += enum_errors(f"{p}.protocol", port.get("protocol"), PROTOCOLS)
        if port.get("targetPort") is not None:
            errs += int_or_name_port_errors(f"{p}.targetPort", port.get("targetPort"))
        node_port = port.get("nodePort")
        if node_port not in (None, 0):
            if svc_type == "ClusterIP":
                errs.append(forbidden(f"{p}.nodePort", "may not be used when `type` is 'ClusterIP'"))
            else:
                errs += port_errors(f"{p}.nodePort", node_port)
    errs += _duplicate_node_port_errors(ports)
    errs += enum_errors("spec.sessionAffinity", spec.get("sessionAffinity"), ["ClientIP", "None"])
    errs += validate_labels("spec.selector", spec.get("selector"))
    for key, values in (("externalTrafficPolicy", ["Cluster", "Local"]),
                        ("internalTrafficPolicy", ["Cluster", "Local"]),
                        ("ipFamilyPolicy", ["SingleStack", "PreferDualStack", "RequireDualStack"])):
        errs += enum_errors(f"spec.{key}", spec.get(key), values, required_when_empty=False)
    if svc_type == "ExternalName":
        errs += _external_name_ip_errors(spec)
    else:
        errs += _cluster_ip_errors(spec)
    if spec.get("healthCheckNodePort") not in (None, 0) and not (
            svc_type == "LoadBalancer" and spec.get("externalTrafficPolicy") == "Local"):
        errs.append(invalid("spec.healthCheckNodePort", spec.get("healthCheckNodePort"),
                            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"))
    return errs


def _duplicate_node_port_errors(ports: list[Any]) -> Errors:
    """One node port per protocol: the same number may serve a TCP and a UDP port."""
    errs: Errors = []
    seen: set[tuple[Any, Any]] = set()
    for i, port in enumerate(ports):
        if not isinstance(port, dict) or port.get("nodePort") in (None, 0):
            continue
        key = (port.get("protocol") or "TCP", port.get("nodePort"))
        if seen_before(seen, key):
            errs.append(duplicate(f"spec.ports[{i}].nodePort", port.get("nodePort")))
    return errs


def _external_name_ip_errors(spec: Obj) -> Errors:
    errs: Errors = []
    if spec.get("clusterIP") or as_list(spec.get("clusterIPs")):
        errs.append(forbidden("spec.clusterIPs", "may not be set for ExternalName services"))
    if as_list(spec.get("ipFamilies")):
        errs.append(forbidden("spec.ipFamilies", "may not be set for ExternalName services"))
    if spec.get("ipFamilyPolicy") is not None:
        errs.append(forbidden("spec.ipFamilyPolicy", "may not be set for ExternalName services"))
    return errs


def _cluster_ip_errors(spec: Obj) -> Errors:
    """clusterIP and clusterIPs agree, hold addresses (or a lone "None"), at most one per family.
    Whether an address is free and inside the service range is the allocator's to say."""
    errs: Errors = []
    cluster_ip = spec.get("clusterIP") or ""
    ips = as_list(spec.get("clusterIPs"))
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
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    old_ip, new_ip = old_spec.get("clusterIP"), new_spec.get("clusterIP")
    # An empty clusterIP on update keeps the allocated one; switching to ExternalName releases it.
    if old_ip and new_ip and new_ip != old_ip and new_spec.get("type") != "ExternalName":
        return [invalid("spec.clusterIP", new_ip, "field is immutable")]
    return []


def _validate_endpointslice(info: ResourceInfo, obj: Obj) -> Errors:
    errs = enum_errors("addressType", obj.get("addressType"), ["IPv4", "IPv6", "FQDN"])
    for i, ep in enumerate(as_list(obj.get("endpoints"))):
        if isinstance(ep, dict) and not ep.get("addresses"):
            errs.append(required(f"endpoints[{i}].addresses"))
    for i, port in enumerate(as_list(obj.get("ports"))):
        if isinstance(port, dict) and port.get("port") is not None:
            errs += port_errors(f"ports[{i}].port", port["port"], allow_zero=True)
    return errs


def _default_service(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = child_map(child_map(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = 10800
    set_default(spec, "type", "ClusterIP")
    svc_type = spec["type"]
    for port in dicts(spec.get("ports")):
        set_default(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    externally_reachable = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_reachable:
        set_default(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and svc_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if svc_type != "ExternalName":
        # Done by the IP allocator in the real server; this cluster is IPv4 only.
        set_default(spec, "ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]


def _default_endpoints(obj: Obj) -> None:
    for subset in dicts(obj.get("subsets")):
        for port in dicts(subset.get("ports")):
            set_default(port, "protocol", "TCP")


def _default_endpointslice(obj: Obj) -> None:
    for port in dicts(obj.get("ports")):
        set_default(port, "protocol", "TCP")


def _columns_service() -> list[dict[str, Any]]:
    spec = "core.v1.ServiceSpec"
    return [
        name_column(),
        column("Type", doc(spec, "type")),
        column("Cluster-IP", doc(spec, "clusterIP")),
        column("External-IP", doc(spec, "externalIPs")),
        column("Port(s)", doc(spec, "ports")),
        age_column(),
        column("Selector", doc(spec, "selector"), priority=1),
    ]


def _columns_endpoints() -> list[dict[str, Any]]:
    return [name_column(), column("Endpoints", doc("core.v1.Endpoints", "subsets")), age_column()]


def _columns_endpointslice() -> list[dict[str, Any]]:
    es = "discovery.v1.EndpointSlice"
    return [
        name_column(),
        column("AddressType", doc(es, "addressType")),
        column("Ports", doc(es, "ports")),
        column("Endpoints", doc(es, "endpoints")),
        age_column(),
    ]


def service_ports(ports: list[Any]) -> str:
    """`80/TCP,443:30443/TCP`, or `<none>`."""
    pieces = []
    for port in ports:
        if not isinstance(port, Mapping):
            continue
        protocol = as_str(port.get("protocol")) or "TCP"
        if as_int(port.get("nodePort")) > 0:
            pieces.append(f"{as_int(port.get('port'))}:{as_int(port.get('nodePort'))}/{protocol}")
        else:
            pieces.append(f"{as_int(port.get('port'))}/{protocol}")
    return ",".join(pieces) or "<none>"


def service_external_ip(svc: Obj) -> str:
    spec = dict_at(svc, "spec")
    stype = as_str(spec.get("type")) or "ClusterIP"
    external = [as_str(ip) for ip in list_at(spec, "externalIPs")]
    if stype in ("ClusterIP", "NodePort"):
        return ",".join(external) or "<none>"
    if stype == "LoadBalancer":
        lb = load_balancer_addresses(dict_at(svc, "status", "loadBalancer"))
        if external:
            return ",".join(([lb] if lb else []) + external)
        return lb or "<pending>"
    if stype == "ExternalName":
        return as_str(spec.get("externalName"))
    return "<unknown>"


def _cells_service(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    cluster_ip = as_str(get_path(spec, "clusterIPs", 0)) or as_str(spec.get("clusterIP")) or "<none>"
    return [name_of(obj), as_str(spec.get("type")) or "ClusterIP", cluster_ip, service_external_ip(obj),
            service_ports(list_at(spec, "ports")), age_of(obj, now), format_labels(dict_at(spec, "selector"))]


def endpoints_summary(obj: Obj) -> str:
    """The ENDPOINTS column of core/v1 Endpoints: up to three `ip:port`, then `+ N more...`."""
    subsets = list_at(obj, "subsets")
    if not subsets:
        return "<none>"
    listed: list[str] = []
    count = 0
    for subset in subsets:
        addresses = [as_str(a.get("ip")) for a in list_at(subset, "addresses") if isinstance(a, Mapping)]
        ports = [p for p in list_at(subset, "ports") if isinstance(p, Mapping)]
        if not ports:
            count += len(addresses)
            listed.extend(addresses)
            continue
        for port in ports:
            count += len(addresses)
            listed.extend(join_host_port(ip, as_int(port.get("port"))) for ip in addresses)
    text = ",".join(listed[:3])
    return f"{text} + {count - 3} more..." if count > 3 else text


def _cells_endpoints(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), endpoints_summary(obj), age_of(obj, now)]


def _cells_endpointslice(obj: Obj, now: datetime) -> Cells:
    ports = []
    for port in list_at(obj, "ports"):
        if isinstance(port, Mapping):
            if port.get("port") is not None:
                ports.append(str(as_int(port.get("port"))))
            elif port.get("name") is not None:
                ports.append(as_str(port.get("name")))
            else:
                ports.append("*")
    addresses = [as_str(a) for ep in list_at(obj, "endpoints") for a in list_at(ep, "addresses")]
    return [name_of(obj), as_str(obj.get("addressType")), list_with_more(ports, len(ports), 3, "<unset>"),
            list_with_more(addresses, len(addresses), 3, "<unset>"), age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

SERVICE = KindRef("", "Service")


class ServiceStrategy(KindStrategy):
    refs = (SERVICE,)
    delete_returns_object = True
    always_present = {("status", "loadBalancer"): {}}
    counts_generation = False
    # A Service's status (load balancer ingress) may be given on create.
    resets_status_on_create = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_service(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_service(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_service_update(new, old)

    def proxy_location(self, info: ResourceInfo, namespace: str | None, segment: str,
                       lookup: Lookup) -> ProxyLocation | None:
        return service_location(namespace, segment, lookup)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_service()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_service(obj, now)


class EndpointsStrategy(KindStrategy):
    refs = (KindRef("", "Endpoints"),)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_endpoints(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_endpoints()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_endpoints(obj, now)


class EndpointSliceStrategy(KindStrategy):
    refs = (KindRef("discovery.k8s.io", "EndpointSlice"),)
    counts_generation = True  # endpoints and ports are its desired state

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_endpointslice(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_endpointslice(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_endpointslice()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_endpointslice(obj, now)
