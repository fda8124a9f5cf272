"""Resource identities for the client: group, version, plural, kind, scope, and URLs.

The identities of built-in kinds come from the API's registry (api/registry.py), so a
kind is described once; this module only adds the URL building a client needs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from urllib.parse import quote

from kybernetes.api.registry import builtin_resources


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
        info = _builtin_by_kind().get((api_version, kind))
        if info is None:
            raise KeyError(f"unknown kind {api_version} {kind}")
        return info


@functools.cache
def _builtin_by_kind() -> dict[tuple[str, str], Resource]:
    return {(info.api_version, info.kind): Resource(info.group, info.version, info.plural, info.kind, info.namespaced)
            for info in builtin_resources()}


_r = Resource.for_kind

NAMESPACES = _r("v1", "Namespace")
NODES = _r("v1", "Node")
PODS = _r("v1", "Pod")
SERVICES = _r("v1", "Service")
ENDPOINTS = _r("v1", "Endpoints")
EVENTS = _r("v1", "Event")
CONFIGMAPS = _r("v1", "ConfigMap")
SECRETS = _r("v1", "Secret")
SERVICEACCOUNTS = _r("v1", "ServiceAccount")
PERSISTENTVOLUMES = _r("v1", "PersistentVolume")
PERSISTENTVOLUMECLAIMS = _r("v1", "PersistentVolumeClaim")
STORAGECLASSES = _r("storage.k8s.io/v1", "StorageClass")
RUNTIMECLASSES = _r("node.k8s.io/v1", "RuntimeClass")
DEPLOYMENTS = _r("apps/v1", "Deployment")
REPLICASETS = _r("apps/v1", "ReplicaSet")
REPLICATIONCONTROLLERS = _r("v1", "ReplicationController")
STATEFULSETS = _r("apps/v1", "StatefulSet")
DAEMONSETS = _r("apps/v1", "DaemonSet")
CONTROLLERREVISIONS = _r("apps/v1", "ControllerRevision")
JOBS = _r("batch/v1", "Job")
CRONJOBS = _r("batch/v1", "CronJob")
LEASES = _r("coordination.k8s.io/v1", "Lease")
ENDPOINTSLICES = _r("discovery.k8s.io/v1", "EndpointSlice")
