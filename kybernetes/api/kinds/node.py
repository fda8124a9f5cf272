"""Nodes and Leases (the heartbeats of nodes and of leader election)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.errors import FieldError, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.kinds.proxying import Lookup, ProxyLocation, host_problem, node_location
from kybernetes.api.names import label_value_errors, qualified_name_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import (
    age_column,
    age_of,
    as_str,
    column,
    dict_at,
    doc,
    get_path,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import TAINT_EFFECTS, as_list, enum_errors, non_negative, positive

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_node(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs: Errors = []
    for i, taint in enumerate(as_list(spec.get("taints"))):
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
        errs += enum_errors(f"{p}.effect", taint.get("effect"), TAINT_EFFECTS)
    cidrs = spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else [])
    for i, cidr in enumerate(cidrs):
        if not re.match(r"^[0-9a-fA-F:.]+/\d{1,3}$", str(cidr)):
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or "
                                                               "2001:db8::/64)"))
    status = obj.get("status") if isinstance(obj.get("status"), dict) else {}
    return errs + _address_errors(status)


def _address_errors(status: Obj) -> Errors:
    """The API server dials these addresses with its own credentials: each must be a
    bare IP (the IP types) or DNS name, never a URL fragment."""
    errs: Errors = []
    for i, addr in enumerate(as_list(status.get("addresses"))):
        if not isinstance(addr, dict):
            continue
        p = f"status.addresses[{i}].address"
        value = addr.get("address")
        if not value:
            errs.append(required(p))
        elif not isinstance(value, str):
            errs.append(invalid(p, value, "must be a string"))
        elif (problem := host_problem(str(addr.get("type") or ""), value)) is not None:
            errs.append(invalid(p, value, problem))
    endpoints = status.get("daemonEndpoints")
    kubelet = endpoints.get("kubeletEndpoint") if isinstance(endpoints, dict) else None
    port = kubelet.get("Port") if isinstance(kubelet, dict) else None
    if port is not None and (not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535):
        errs.append(invalid("status.daemonEndpoints.kubeletEndpoint.Port", port,
                            "must be between 0 and 65535, inclusive"))
    return errs


def _validate_lease(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec") if isinstance(obj.get("spec"), dict) else {}
    errs = positive("spec.leaseDurationSeconds", spec.get("leaseDurationSeconds"))
    errs += non_negative("spec.leaseTransitions", spec.get("leaseTransitions"))
    return errs


def _default_node(obj: Obj) -> None:
    # podCIDR is the first of podCIDRs; a client that sets only the old field gets both.
    spec = obj.get("spec")
    if isinstance(spec, dict) and spec.get("podCIDR") and not spec.get("podCIDRs"):
        spec["podCIDRs"] = [spec["podCIDR"]]
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _columns_node() -> list[dict[str, Any]]:
    info, status = "core.v1.NodeSystemInfo", "core.v1.NodeStatus"
    return [
        name_column(),
        column("Status", "The status of the node"),
        column("Roles", "The roles of the node"),
        age_column(),
        column("Version", doc(info, "kubeletVersion")),
        column("Internal-IP", doc(status, "addresses"), priority=1),
        column("External-IP", doc(status, "addresses"), priority=1),
        column("OS-Image", doc(info, "osImage"), priority=1),
        column("Kernel-Version", doc(info, "kernelVersion"), priority=1),
        column("Container-Runtime", doc(info, "containerRuntimeVersion"), priority=1),
    ]


def _columns_lease() -> list[dict[str, Any]]:
    return [name_column(), column("Holder", doc("coordination.v1.LeaseSpec", "holderIdentity")), age_column()]


def node_status_word(node: Obj) -> str:
    """`Ready`, `NotReady`, `Unknown`, plus `,SchedulingDisabled` when cordoned."""
    words = []
    for cond in list_at(node, "status", "conditions"):
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            words = ["Ready" if cond.get("status") == "True" else "NotReady"]
    if not words:
        words = ["Unknown"]
    if get_path(node, "spec", "unschedulable"):
        words.append("SchedulingDisabled")
    return ",".join(words)


def node_roles(node: Obj) -> str:
    roles = set()
    for key, value in dict_at(node, "metadata", "labels").items():
        if key.startswith("node-role.kubernetes.io/"):
            role = key[len("node-role.kubernetes.io/"):]
            if role:
                roles.add(role)
        elif key == "kubernetes.io/role" and value:
            roles.add(as_str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, kind: str) -> str:
    for addr in list_at(node, "status", "addresses"):
        if isinstance(addr, Mapping) and addr.get("type") == kind:
            return as_str(addr.get("address"))
    return "<none>"


def _cells_node(obj: Obj, now: datetime) -> Cells:
    info = dict_at(obj, "status", "nodeInfo")
    return [name_of(obj), node_status_word(obj), node_roles(obj), age_of(obj, now), as_str(info.get("kubeletVersion")),
            _node_address(obj, "InternalIP"), _node_address(obj, "ExternalIP"),
            as_str(info.get("osImage")) or "<unknown>", as_str(info.get("kernelVersion")) or "<unknown>",
            as_str(info.get("containerRuntimeVersion")) or "<unknown>"]


def _cells_lease(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), as_str(get_path(obj, "spec", "holderIdentity")), age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

# NodeSystemInfo: every field is serialized, empty or not.
_NODE_INFO_FIELDS = (
    "machineID", "systemUUID", "bootID", "kernelVersion", "osImage", "containerRuntimeVersion",
    "kubeletVersion", "kubeProxyVersion", "operatingSystem", "architecture",
)


class NodeStrategy(KindStrategy):
    refs = (KindRef("", "Node"),)
    counts_generation = False
    always_present = {
        ("status", "daemonEndpoints", "kubeletEndpoint", "Port"): 0,
        **{("status", "nodeInfo", f): "" for f in _NODE_INFO_FIELDS},
    }
    resets_status_on_create = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_node(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_node(info, obj)

    def proxy_location(self, info: ResourceInfo, namespace: str | None, segment: str,
                       lookup: Lookup) -> ProxyLocation | None:
        return node_location(segment, lookup)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_node()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_node(obj, now)


class LeaseStrategy(KindStrategy):
    refs = (KindRef("coordination.k8s.io", "Lease"),)
    counts_generation = False

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_lease(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_lease()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_lease(obj, now)
