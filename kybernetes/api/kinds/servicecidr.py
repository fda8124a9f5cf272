"""networking.k8s.io service address kinds: ServiceCIDRs (the ranges Service cluster
IPs come from; the server keeps the default one, `kubernetes`, for its own service
range) and IPAddresses (one object per allocated address, named by the address; the
server mirrors every Service cluster IP into one, labelled as upstream's allocator
labels them).

Validation, immutability and columns follow upstream's networking validation and
printers; the Ready condition of a ServiceCIDR is the server's to write.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any

from kybernetes.api.errors import FieldError, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1123_subdomain_errors, path_segment_name_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import age_column, age_of, column, doc, get_path, list_at, name_column, name_of
from kybernetes.api.validation import as_dict, as_list, immutable, name_errors

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

GROUP = "networking.k8s.io"
SERVICE_CIDR = KindRef(GROUP, "ServiceCIDR")
IP_ADDRESS = KindRef(GROUP, "IPAddress")
DEFAULT_SERVICE_CIDR_NAME = "kubernetes"
READY_MESSAGE = "Kubernetes Service CIDR is ready"
DEFAULT_READY_MESSAGE = "Kubernetes default Service CIDR is ready"

# Labels the service IP allocator puts on the IPAddresses it keeps.
IP_FAMILY_LABEL = "ipaddress.kubernetes.io/ip-family"
MANAGED_BY_LABEL = "ipaddress.kubernetes.io/managed-by"
ALLOCATOR_NAME = "ipallocator.k8s.io"

_IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
_CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


# -- pure rules ---------------------------------------------------------------------------


def ip_address_errors(value: str) -> list[str]:
    """Why `value` is not an IP address in canonical form (the name of an IPAddress)."""
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return [_IP_MSG]
    if str(addr) != value:
        return [f'must be in canonical form ("{addr}")']
    return []


def cidr_errors(value: Any) -> list[str]:
    """Why `value` is not a CIDR in canonical form (the network address, no host bits)."""
    text = str(value)
    if "/" not in text:
        return [_CIDR_MSG]
    try:
        net = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return [_CIDR_MSG]
    if str(net) != text:
        return [f'must be in canonical form ("{net}")']
    return []


def _family(cidr: Any) -> int | None:
    try:
        return ipaddress.ip_network(str(cidr), strict=False).version
    except ValueError:
        return None


def validate_service_cidr(obj: Obj) -> Errors:
    cidrs = as_list(get_path(obj, "spec", "cidrs"))
    path = "spec.cidrs"
    if not cidrs:
        return [required(path, "at least one CIDR required")]
    if len(cidrs) > 2:
        return [invalid(path, cidrs, "may only hold up to 2 values")]
    if len(cidrs) == 2 and {_family(c) for c in cidrs} != {4, 6}:
        return [invalid(path, cidrs, "may specify no more than one IP for each IP family, "
                                     "i.e 192.168.0.0/24 and 2001:db8::/64")]
    errs: Errors = []
    for i, cidr in enumerate(cidrs):
        errs += [invalid(f"{path}[{i}]", cidr, m) for m in cidr_errors(cidr)]
    return errs


def validate_service_cidr_update(new: Obj, old: Obj) -> Errors:
    new_cidrs = as_list(get_path(new, "spec", "cidrs"))
    old_cidrs = as_list(get_path(old, "spec", "cidrs"))
    # A single-stack range may grow to dual-stack by adding the other family; nothing else changes.
    if len(old_cidrs) == 1 and len(new_cidrs) == 2 and new_cidrs[0] == old_cidrs[0]:
        return []
    return immutable("spec.cidrs", new_cidrs, old_cidrs)


def validate_ip_address(obj: Obj) -> Errors:
    name = get_path(obj, "metadata", "name")
    errs: Errors = []
    if isinstance(name, str) and name:
        errs += [invalid("metadata.name", name, m) for m in ip_address_errors(name)]
    ref = get_path(obj, "spec", "parentRef")
    if not isinstance(ref, dict):
        return errs + [required("spec.parentRef")]
    path = "spec.parentRef"
    if ref.get("group"):
        errs += name_errors(dns1123_subdomain_errors, f"{path}.group", ref["group"])
    for key in ("resource", "name"):
        if not ref.get(key):
            errs.append(required(f"{path}.{key}"))
        else:
            errs += name_errors(path_segment_name_errors, f"{path}.{key}", ref[key])
    if ref.get("namespace"):
        errs += name_errors(path_segment_name_errors, f"{path}.namespace", ref["namespace"])
    return errs


def ready_condition(now: str, default: bool) -> Obj:
    """The Ready condition the server writes on a ServiceCIDR it serves addresses from
    (upstream's controllers write it without a reason)."""
    return {"type": "Ready", "status": "True", "lastTransitionTime": now, "reason": "",
            "message": DEFAULT_READY_MESSAGE if default else READY_MESSAGE}


def default_service_cidr(cidrs: list[str], now: str) -> Obj:
    """The ServiceCIDR the API server keeps for its own service range."""
    return {"apiVersion": f"{GROUP}/v1", "kind": "ServiceCIDR",
            "metadata": {"name": DEFAULT_SERVICE_CIDR_NAME},
            "spec": {"cidrs": list(cidrs)},
            "status": {"conditions": [ready_condition(now, True)]}}


def service_ip_addresses(services: list[Obj]) -> dict[str, Obj]:
    """The IPAddress objects of the cluster IPs `services` hold, by name (the address),
    as the service IP allocator keeps them."""
    out: dict[str, Obj] = {}
    for svc in services:
        meta, spec = svc.get("metadata") or {}, svc.get("spec") or {}
        ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
        for ip in ips:
            if not isinstance(ip, str) or ip in ("", "None") or ip_address_errors(ip):
                continue
            family = "IPv6" if ":" in ip else "IPv4"
            out[ip] = {
                "apiVersion": f"{GROUP}/v1", "kind": "IPAddress",
                "metadata": {"name": ip, "labels": {IP_FAMILY_LABEL: family, MANAGED_BY_LABEL: ALLOCATOR_NAME}},
                "spec": {"parentRef": {"group": "", "resource": "services", "namespace": meta.get("namespace", ""),
                                       "name": meta.get("name", "")}},
            }
    return out


def stale_ip_addresses(existing: dict[str, Obj], desired: dict[str, Obj]) -> list[str]:
    """Names of the allocator's IPAddresses whose Service no longer holds the address
    (user-made IPAddresses are never the allocator's to remove)."""
    stale = []
    for name, obj in existing.items():
        labels = get_path(obj, "metadata", "labels") or {}
        if not isinstance(labels, dict) or labels.get(MANAGED_BY_LABEL) != ALLOCATOR_NAME:
            continue
        want = desired.get(name)
        if want is None or _ref_key(obj) != _ref_key(want):
            stale.append(name)
    return stale


def _ref_key(obj: Obj) -> tuple[str, str, str, str]:
    ref = as_dict(get_path(obj, "spec", "parentRef"))
    return (str(ref.get("group") or ""), str(ref.get("resource") or ""), str(ref.get("namespace") or ""),
            str(ref.get("name") or ""))


def parent_ref_text(obj: Obj) -> str:
    """The ParentRef column: `<resource>[.<group>][/<namespace>]/<name>`."""
    ref = get_path(obj, "spec", "parentRef")
    if not isinstance(ref, dict):
        return "<none>"
    text = str(ref.get("resource") or "").lower()
    if ref.get("group"):
        text += "." + str(ref["group"]).lower()
    if ref.get("namespace"):
        text += "/" + str(ref["namespace"])
    return text + "/" + str(ref.get("name") or "")


# -- strategies ---------------------------------------------------------------------------


class ServiceCIDRStrategy(KindStrategy):
    refs = (SERVICE_CIDR,)
    counts_generation = False  # upstream's PrepareForCreate sets no generation

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_service_cidr(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return validate_service_cidr_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("CIDRs", doc("networking.v1.ServiceCIDRSpec", "cidrs")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), ",".join(str(c) for c in list_at(obj, "spec", "cidrs")), age_of(obj, now)]


class IPAddressStrategy(KindStrategy):
    refs = (IP_ADDRESS,)
    counts_generation = False  # upstream's PrepareForCreate sets no generation

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_ip_address(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return immutable("spec.parentRef", as_dict(new.get("spec")).get("parentRef"),
                         as_dict(old.get("spec")).get("parentRef"))

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("ParentRef", doc("networking.v1.IPAddressSpec", "parentRef"))]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), parent_ref_text(obj)]
