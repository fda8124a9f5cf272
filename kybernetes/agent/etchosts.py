"""The pod's /etc/hosts, managed as the kubelet manages it: written into the pod's
directory once its IPs are known and bind-mounted into every container that does not
mount something at /etc/hosts itself. A pod on the pod network gets localhost lines,
its own name on each of its IPs and its `hostAliases`; a host-network pod gets the
node's /etc/hosts and its `hostAliases`. What the file holds is decided by pure
functions; `write_hosts_file` puts it on disk."""

from __future__ import annotations

import os
from typing import Any

Obj = dict[str, Any]

HOSTS_PATH = "/etc/hosts"
FILE_NAME = "etc-hosts"
MANAGED_HEADER = "# Kubernetes-managed hosts file.\n"
# Different on purpose: upstream's e2e tells a host-network pod's file by it.
MANAGED_HEADER_HOST_NETWORK = "# Kubernetes-managed hosts file (host network).\n"
_LOCAL_LINES = ("127.0.0.1\tlocalhost\n"
                "::1\tlocalhost ip6-localhost ip6-loopback\n"
                "fe00::0\tip6-localnet\n"
                "fe00::0\tip6-mcastprefix\n"
                "fe00::1\tip6-allnodes\n"
                "fe00::2\tip6-allrouters\n")


def hostname_and_domain(pod: Obj, cluster_domain: str) -> tuple[str, str]:
    """The pod's hostname (spec.hostname, else its name cut to 63 characters) and, with a
    spec.subdomain, its domain `<subdomain>.<namespace>.svc.<cluster domain>`; a
    spec.hostnameOverride is the whole name, with no domain, as the kubelet's."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    if spec.get("hostnameOverride"):
        return str(spec["hostnameOverride"]), ""
    hostname = spec.get("hostname") or str(meta.get("name", ""))[:63].rstrip("-.")
    domain = ""
    if spec.get("subdomain"):
        domain = f"{spec['subdomain']}.{meta.get('namespace', '')}.svc.{cluster_domain}"
    return hostname, domain


def alias_lines(aliases: list[Obj]) -> str:
    """The `hostAliases` block: one line per IP with all its names."""
    if not aliases:
        return ""
    lines = "".join(f"{a.get('ip', '')}\t{chr(9).join(a.get('hostnames') or [])}\n" for a in aliases)
    return "\n# Entries added by HostAliases.\n" + lines


def managed_hosts(pod_ips: list[str], hostname: str, domain: str, aliases: list[Obj]) -> str:
    """The hosts file of a pod on the pod network."""
    own = "".join(f"{ip}\t{hostname}.{domain}\t{hostname}\n" if domain else f"{ip}\t{hostname}\n"
                  for ip in pod_ips)
    return MANAGED_HEADER + _LOCAL_LINES + own + alias_lines(aliases)


def host_network_hosts(node_hosts: str, aliases: list[Obj]) -> str:
    """The hosts file of a host-network pod: the node's own, then the aliases."""
    return MANAGED_HEADER_HOST_NETWORK + node_hosts + alias_lines(aliases)


def hosts_content(pod: Obj, pod_ips: list[str], cluster_domain: str, node_hosts: str) -> str:
    spec = pod.get("spec") or {}
    aliases = [a for a in spec.get("hostAliases") or [] if isinstance(a, dict)]
    if spec.get("hostNetwork"):
        return host_network_hosts(node_hosts, aliases)
    hostname, domain = hostname_and_domain(pod, cluster_domain)
    return managed_hosts(pod_ips, hostname, domain, aliases)


def mounts_own_hosts(container: Obj) -> bool:
    """A container that mounts a volume at /etc/hosts keeps it (the kubelet's rule)."""
    return any(os.path.normpath(m.get("mountPath") or "/") == HOSTS_PATH for m in container.get("volumeMounts") or [])


def write_hosts_file(pod_dir: str, content: str) -> str:
    """Write (or refresh) the pod's hosts file, 0644; returns its path. The file is
    rewritten in place so that the containers' bind mounts keep seeing it."""
    os.makedirs(pod_dir, exist_ok=True)
    path = os.path.join(pod_dir, FILE_NAME)
    data = content.encode()
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except FileNotFoundError:
        pass
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)
    return path
