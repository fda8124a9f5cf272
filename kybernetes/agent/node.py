"""The agent's Node object and the CNI network of its pods: pure builders from host
facts, the runtime's version and the node's pod CIDR."""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from kybernetes.agent.host import HostFacts
from kybernetes.client.nodes import node_conditions

Obj = dict[str, Any]

KUBELET_VERSION = "v1.37.0-kyb"
KUBELET_PORT = 10250
MAX_PODS = 110
CNI_NETWORK = "kybernetes"
BRIDGE = "kyb0"
# Pods need a little memory and disk the node cannot give them: what the kubelet keeps
# back by default for eviction (100Mi memory, 10% of the disk).
EVICTION_MEMORY = 100 * 1024 * 1024


def node_resources(host: HostFacts) -> tuple[dict[str, str], dict[str, str]]:
    """(capacity, allocatable) as the kubelet reports them."""
    capacity = {"cpu": str(host.cpus), "memory": f"{host.memory_bytes // 1024}Ki",
                "ephemeral-storage": f"{host.storage_bytes // 1024}Ki", "pods": str(MAX_PODS),
                "hugepages-1Gi": "0", "hugepages-2Mi": "0"}
    allocatable = dict(capacity)
    allocatable["memory"] = f"{max(host.memory_bytes - EVICTION_MEMORY, 0) // 1024}Ki"
    allocatable["ephemeral-storage"] = str(host.storage_bytes * 9 // 10)
    return capacity, allocatable


def node_labels(name: str, host: HostFacts, extra: dict[str, str] | None = None) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": host.architecture,
              "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": host.architecture}
    labels.update(extra or {})
    return labels


def node_status(host: HostFacts, runtime_version: str, now: str, previous: list[Obj] | None = None, *,
                ready: bool = True, not_ready_message: str = "", memory_pressure: bool = False,
                disk_pressure: bool = False, port: int = KUBELET_PORT) -> Obj:
    capacity, allocatable = node_resources(host)
    addresses = [{"type": "InternalIP", "address": host.internal_ip}]
    addresses += [{"type": "InternalIP", "address": ip} for ip in host.extra_ips]
    addresses.append({"type": "Hostname", "address": host.hostname})
    return {
        "capacity": capacity,
        "allocatable": allocatable,
        "conditions": node_conditions(now, previous, ready, memory_pressure=memory_pressure,
                                      disk_pressure=disk_pressure,
                                      not_ready_message=not_ready_message or "container runtime is down"),
        "addresses": addresses,
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "machineID": host.machine_id,
            "systemUUID": host.machine_id,
            "bootID": host.boot_id,
            "kernelVersion": host.kernel,
            "osImage": host.os_image,
            "containerRuntimeVersion": runtime_version,
            "kubeletVersion": KUBELET_VERSION,
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": host.architecture,
        },
    }


def build_node(name: str, host: HostFacts, runtime_version: str, now: str,
               labels: dict[str, str] | None = None, taints: list[Obj] | None = None,
               port: int = KUBELET_PORT) -> Obj:
    node: Obj = {"apiVersion": "v1", "kind": "Node",
                 "metadata": {"name": name, "labels": node_labels(name, host, labels),
                              "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
                 "spec": {},
                 "status": node_status(host, runtime_version, now, port=port)}
    if taints:
        node["spec"]["taints"] = taints
    return node


def cni_conflist(pod_cidr: str, ipam_dir: str, bridge: str = BRIDGE, mtu: int = 1500, ip_masq: bool = True,
                 portmap: bool = True) -> Obj:
    """The CNI network of this node's pods: a bridge with host-local addresses from the
    node's pod CIDR (the first address is the bridge, the gateway), and (`portmap`) the
    portmap plugin for hostPort. Address leases are kept in `ipam_dir` (the agent's), not
    in the host-wide /var/lib/cni. `ip_masq`: the bridge plugin masquerades traffic leaving
    the pod CIDR itself, per pod (only when the node's one rule, agent/egress.py, cannot be
    had)."""
    net = ipaddress.ip_network(pod_cidr, strict=False)
    gateway = str(next(net.hosts()))
    plugins: list[Obj] = [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": ip_masq, "hairpinMode": True,
         "mtu": mtu, "ipam": {"type": "host-local", "ranges": [[{"subnet": str(net), "gateway": gateway}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": ipam_dir}},
    ]
    if portmap:
        plugins.append({"type": "portmap", "capabilities": {"portMappings": True}, "snat": True})
    return {"cniVersion": "1.0.0", "name": CNI_NETWORK, "plugins": plugins}


def cni_conflist_bytes(pod_cidr: str, ipam_dir: str, bridge: str = BRIDGE, ip_masq: bool = True,
                       mtu: int = 1500, portmap: bool = True) -> bytes:
    return json.dumps(cni_conflist(pod_cidr, ipam_dir, bridge, mtu=mtu, ip_masq=ip_masq, portmap=portmap), indent=2,
                      sort_keys=True).encode() + b"\n"
