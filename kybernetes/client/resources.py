"""Resource identities for the client: group, version, plural, kind, scope, and URLs."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str = "") -> str:
        p = self.base()
        if self.namespaced and namespace:
            p += f"/namespaces/{quote(namespace, safe='')}"
        p += f"/{self.plural}"
        if name:
            p += f"/{quote(name, safe='')}"
            if subresource:
                p += f"/{subresource}"
        return p

    @staticmethod
    def for_kind(api_version: str, kind: str) -> Resource:
        """A built-in kind's resource, from the API's registry of kinds."""
        from kybernetes.api.registry import builtin_resources

        for info in builtin_resources():
            if info.api_version == api_version and info.kind == kind:
                return Resource(info.group, info.version, info.plural, info.kind, info.namespaced)
        raise KeyError(f"unknown kind {api_version} {kind}")


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> Resource:
    return Resource(group, version, plural, kind, namespaced)


NAMESPACES = _r("", "v1", "namespaces", "Namespace", False)
NODES = _r("", "v1", "nodes", "Node", False)
PODS = _r("", "v1", "pods", "Pod")
SERVICES = _r("", "v1", "services", "Service")
ENDPOINTS = _r("", "v1", "endpoints", "Endpoints")
EVENTS = _r("", "v1", "events", "Event")
CONFIGMAPS = _r("", "v1", "configmaps", "ConfigMap")
SECRETS = _r("", "v1", "secrets", "Secret")
SERVICEACCOUNTS = _r("", "v1", "serviceaccounts", "ServiceAccount")
PERSISTENTVOLUMES = _r("", "v1", "persistentvolumes", "PersistentVolume", False)
PERSISTENTVOLUMECLAIMS = _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
DEPLOYMENTS = _r("apps", "v1", "deployments", "Deployment")
REPLICASETS = _r("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = _r("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = _r("apps", "v1", "daemonsets", "DaemonSet")
CONTROLLERREVISIONS = _r("apps", "v1", "controllerrevisions", "ControllerRevision")
JOBS = _r("batch", "v1", "jobs", "Job")
CRONJOBS = _r("batch", "v1", "cronjobs", "CronJob")
LEASES = _r("coordination.k8s.io", "v1", "leases", "Lease")
ENDPOINTSLICES = _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
