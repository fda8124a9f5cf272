"""The registry of kinds: what the API server serves and how.

A `ResourceInfo` describes one resource (group, version, kind, plural, scope,
verbs, subresources, short names). Routes, discovery and OpenAPI are driven from
these entries; a kind's behaviour (defaulting, validation, tables, what writes may
change) is its strategy's, found by group and kind in `kybernetes.api.kinds`.
Custom resources add entries at run time from their CustomResourceDefinition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import schemas

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass
class ScalePaths:
    """Where a kind keeps the numbers its `scale` subresource exposes (JSON paths, dotted)."""

    spec_replicas: str = ".spec.replicas"
    status_replicas: str = ".status.replicas"
    label_selector: str | None = ".status.selector"
    # spec.selector is a plain label map (a ReplicationController's), not a LabelSelector.
    set_selector: bool = False


@dataclass
class ResourceInfo:
    group: str
    version: str
    kind: str
    plural: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    # "status" and/or "scale"; pods also carry their kubelet-facing subresources.
    subresources: tuple[str, ...] = ()
    # Spec/status split: writes to the main resource ignore .status, writes to
    # /status ignore everything else. True for every kind with a status subresource.
    scale: ScalePaths | None = None
    # A custom resource's openAPIV3Schema (no $refs), when served from a CRD.
    crd_schema: dict[str, Any] | None = None
    # Additional printer columns of a CRD ([{name,type,jsonPath,priority,...}]).
    printer_columns: list[dict[str, Any]] | None = None
    field_selectors: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    # The version objects are stored in, when it is not this one (autoscaling/v1
    # HorizontalPodAutoscalers are stored as v2): every request in this version converts
    # through the kind strategy's `convert`.
    storage_version: str = ""
    # The group objects are stored in, when it is not this one (events.k8s.io/v1 Events are
    # core/v1 Events): both groups share the stored objects, each converting on its own.
    storage_group: str | None = None

    @property
    def stored_group(self) -> str:
        return self.group if self.storage_group is None else self.storage_group

    @property
    def stored_elsewhere(self) -> bool:
        """Whether objects are stored in another group-version, converting on every request."""
        return bool(self.storage_version) and (self.storage_version, self.stored_group) != (self.version, self.group)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def list_kind(self) -> str:
        return self.kind + "List"

    @property
    def is_custom(self) -> bool:
        return self.crd_schema is not None or self.extra.get("crd") is not None

    @property
    def qualified_plural(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def definition(self) -> str | None:
        """Name of the structural schema among the built-in definitions (None for a custom
        resource). Looked up when asked, so that reading kinds' identities (as every
        component's client does) never loads the schemas."""
        return None if self.is_custom else schemas.definition_name_for(self.group, self.version, self.kind)

    def schema(self) -> dict[str, Any] | None:
        """The root schema node of the kind (built-in definition or CRD schema)."""
        if self.crd_schema is not None:
            return self.crd_schema
        if self.definition:
            return schemas.root(self.definition)
        return None

    def storage_prefix(self) -> str:
        """Key prefix in the store; keys are `<prefix><namespace>/<name>` or `<prefix><name>`."""
        return f"/registry/{self.stored_group or 'core'}/{self.plural}/"

    def key(self, namespace: str | None, name: str) -> str:
        if self.namespaced:
            return f"{self.storage_prefix()}{namespace}/{name}"
        return f"{self.storage_prefix()}{name}"


def _builtin(group: str, version: str, kind: str, plural: str, namespaced: bool = True,
             short: tuple[str, ...] = (), cats: tuple[str, ...] = (), sub: tuple[str, ...] = (),
             verbs: tuple[str, ...] = ALL_VERBS, scale: ScalePaths | None = None,
             fields: tuple[str, ...] = (), storage_version: str = "") -> ResourceInfo:
    return ResourceInfo(
        group=group, version=version, kind=kind, plural=plural, singular=kind.lower(),
        namespaced=namespaced, short_names=short, categories=cats, verbs=verbs,
        subresources=sub, scale=scale,
        field_selectors=fields, storage_version=storage_version,
    )


def _posts_as(info: ResourceInfo, plural: str, subresource: str) -> ResourceInfo:
    """Mark `info` as a collection whose POST is the `subresource` action of the object of
    `plural` (same group-version and namespace) named in the body's metadata."""
    info.extra["posts_as"] = (plural, subresource)
    return info


def _stored_in(info: ResourceInfo, group: str, version: str, field_labels: dict[str, str]) -> ResourceInfo:
    """Mark `info` as stored as `group`/`version` of its kind; its field selectors name
    the stored version's fields through `field_labels`."""
    info.storage_group, info.storage_version = group, version
    info.extra["field_labels"] = field_labels
    return info


# events.k8s.io/v1 field selector labels and the core/v1 Event fields they select
# (upstream's field label conversion for events.k8s.io Events).
_EVENTS_FIELD_LABELS = {
    "reason": "reason", "type": "type", "reportingController": "reportingComponent",
    **{f"regarding.{k}": f"involvedObject.{k}"
       for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")},
}


_POD_SUBRESOURCES = ("status", "log", "exec", "attach", "portforward", "binding", "eviction", "ephemeralcontainers",
                     "proxy", "resize")
_RS_SCALE = ScalePaths(".spec.replicas", ".status.replicas", ".status.selector")
_RC_SCALE = ScalePaths(".spec.replicas", ".status.replicas", None, set_selector=True)
_CREATE_ONLY = ("create",)


def builtin_resources() -> list[ResourceInfo]:
    """Every built-in resource, in discovery order."""
    b = _builtin
    return [
        # core/v1
        b("", "v1", "Namespace", "namespaces", False, ("ns",), (), ("status", "finalize"),
          ("create", "delete", "get", "list", "patch", "update", "watch"), fields=("status.phase",)),
        b("", "v1", "Pod", "pods", True, ("po",), ("all",), _POD_SUBRESOURCES,
          fields=("spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName",
                  "spec.hostNetwork", "status.phase", "status.podIP", "status.nominatedNodeName")),
        b("", "v1", "Service", "services", True, ("svc",), ("all",), ("status", "proxy"),
          ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
          fields=("spec.clusterIP", "spec.type")),
        b("", "v1", "Endpoints", "endpoints", True, ("ep",)),
        b("", "v1", "ConfigMap", "configmaps", True, ("cm",)),
        b("", "v1", "Secret", "secrets", True, (), (), (), fields=("type",)),
        b("", "v1", "ServiceAccount", "serviceaccounts", True, ("sa",), (), ("token",)),
        b("", "v1", "Event", "events", True, ("ev",), (), (),
          fields=("involvedObject.kind", "involvedObject.namespace", "involvedObject.name",
                  "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion",
                  "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type")),
        b("", "v1", "Node", "nodes", False, ("no",), (), ("status", "proxy"), fields=("spec.unschedulable",)),
        b("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), (), ("status",)),
        b("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), (), ("status",)),
        b("", "v1", "LimitRange", "limitranges", True, ("limits",)),
        b("", "v1", "ResourceQuota", "resourcequotas", True, ("quota",), (), ("status",)),
        b("", "v1", "ReplicationController", "replicationcontrollers", True, ("rc",), ("all",),
          ("status", "scale"), scale=_RC_SCALE),
        b("", "v1", "PodTemplate", "podtemplates", True),
        # Health of the control plane, computed on read (deprecated upstream since 1.19, still served).
        b("", "v1", "ComponentStatus", "componentstatuses", False, ("cs",), verbs=("get", "list")),
        # A POST to the collection binds the pod its body names: pods/<name>/binding.
        _posts_as(b("", "v1", "Binding", "bindings", True, verbs=_CREATE_ONLY), "pods", "binding"),
        # apps/v1
        b("apps", "v1", "Deployment", "deployments", True, ("deploy",), ("all",), ("status", "scale"), scale=_RS_SCALE),
        b("apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), ("all",), ("status", "scale"), scale=_RS_SCALE),
        b("apps", "v1", "StatefulSet", "statefulsets", True, ("sts",), ("all",), ("status", "scale"), scale=_RS_SCALE),
        b("apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), ("all",), ("status",)),
        b("apps", "v1", "ControllerRevision", "controllerrevisions", True),
        # batch/v1
        b("batch", "v1", "Job", "jobs", True, (), ("all",), ("status",)),
        b("batch", "v1", "CronJob", "cronjobs", True, ("cj",), ("all",), ("status",)),
        # autoscaling/v2
        b("autoscaling", "v2", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("all",),
          ("status",)),
        b("autoscaling", "v1", "HorizontalPodAutoscaler", "horizontalpodautoscalers", True, ("hpa",), ("all",),
          ("status",), storage_version="v2"),
        # certificates.k8s.io/v1
        b("certificates.k8s.io", "v1", "CertificateSigningRequest", "certificatesigningrequests", False, ("csr",),
          (), ("status", "approval"), fields=("spec.signerName",)),
        # apiregistration.k8s.io/v1: the aggregator's APIServices (every served group-version is one)
        b("apiregistration.k8s.io", "v1", "APIService", "apiservices", False, (), ("api-extensions",), ("status",)),
        # flowcontrol.apiserver.k8s.io/v1: API Priority and Fairness configuration
        b("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema", "flowschemas", False, sub=("status",)),
        b("flowcontrol.apiserver.k8s.io", "v1", "PriorityLevelConfiguration", "prioritylevelconfigurations", False,
          sub=("status",)),
        # resource.k8s.io/v1: dynamic resource allocation
        b("resource.k8s.io", "v1", "DeviceClass", "deviceclasses", False),
        b("resource.k8s.io", "v1", "ResourceClaim", "resourceclaims", True, sub=("status",)),
        b("resource.k8s.io", "v1", "ResourceClaimTemplate", "resourceclaimtemplates", True),
        b("resource.k8s.io", "v1", "ResourceSlice", "resourceslices", False,
          fields=("spec.nodeName", "spec.driver")),
        b("resource.k8s.io", "v1", "DeviceTaintRule", "devicetaintrules", False, sub=("status",)),
        # discovery.k8s.io/v1
        b("discovery.k8s.io", "v1", "EndpointSlice", "endpointslices", True),
        # coordination.k8s.io/v1
        b("coordination.k8s.io", "v1", "Lease", "leases", True),
        # rbac
        b("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
        b("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
        b("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterroles", False),
        b("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", "clusterrolebindings", False),
        # storage
        b("storage.k8s.io", "v1", "StorageClass", "storageclasses", False, ("sc",)),
        b("storage.k8s.io", "v1", "CSIDriver", "csidrivers", False),
        b("storage.k8s.io", "v1", "CSINode", "csinodes", False),
        b("storage.k8s.io", "v1", "VolumeAttachment", "volumeattachments", False, (), (), ("status",)),
        b("storage.k8s.io", "v1", "CSIStorageCapacity", "csistoragecapacities", True),
        b("storage.k8s.io", "v1", "VolumeAttributesClass", "volumeattributesclasses", False, ("vac",)),
        # admissionregistration.k8s.io/v1
        b("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", "mutatingwebhookconfigurations",
          False, (), ("api-extensions",)),
        b("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration",
          "validatingwebhookconfigurations", False, (), ("api-extensions",)),
        b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False,
          (), ("api-extensions",), ("status",)),
        b("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding",
          "validatingadmissionpolicybindings", False, (), ("api-extensions",)),
        b("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicy", "mutatingadmissionpolicies", False,
          (), ("api-extensions",)),
        b("admissionregistration.k8s.io", "v1", "MutatingAdmissionPolicyBinding", "mutatingadmissionpolicybindings",
          False, (), ("api-extensions",)),
        # node.k8s.io/v1
        b("node.k8s.io", "v1", "RuntimeClass", "runtimeclasses", False),
        # events.k8s.io
        _stored_in(b("events.k8s.io", "v1", "Event", "events", True, ("ev",), fields=tuple(_EVENTS_FIELD_LABELS)),
                   "", "v1", _EVENTS_FIELD_LABELS),
        # networking
        b("networking.k8s.io", "v1", "Ingress", "ingresses", True, ("ing",), (), ("status",)),
        b("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, ("netpol",)),
        b("networking.k8s.io", "v1", "IngressClass", "ingressclasses", False),
        b("networking.k8s.io", "v1", "IPAddress", "ipaddresses", False, ("ip",)),
        b("networking.k8s.io", "v1", "ServiceCIDR", "servicecidrs", False, sub=("status",)),
        # policy
        b("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, ("pdb",), (), ("status",)),
        # scheduling
        b("scheduling.k8s.io", "v1", "PriorityClass", "priorityclasses", False, ("pc",)),
        # apiextensions
        b("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
          ("crd", "crds"), ("api-extensions",), ("status",)),
        # authentication / authorization reviews: create-only, never stored
        b("authentication.k8s.io", "v1", "SelfSubjectReview", "selfsubjectreviews", False, verbs=_CREATE_ONLY),
        b("authentication.k8s.io", "v1", "TokenReview", "tokenreviews", False, verbs=_CREATE_ONLY),
        b("authorization.k8s.io", "v1", "SelfSubjectAccessReview", "selfsubjectaccessreviews", False,
          verbs=_CREATE_ONLY),
        b("authorization.k8s.io", "v1", "SelfSubjectRulesReview", "selfsubjectrulesreviews", False,
          verbs=_CREATE_ONLY),
        b("authorization.k8s.io", "v1", "SubjectAccessReview", "subjectaccessreviews", False, verbs=_CREATE_ONLY),
        b("authorization.k8s.io", "v1", "LocalSubjectAccessReview", "localsubjectaccessreviews", True,
          verbs=_CREATE_ONLY),
    ]


# Kinds that are virtual (never stored; the server answers them directly).
VIRTUAL_KINDS = {"SelfSubjectReview", "TokenReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview",
                 "SubjectAccessReview", "LocalSubjectAccessReview", "ComponentStatus"}
# Kinds with no storage of their own (discovery gives them no storageVersionHash).
UNSTORED_KINDS = VIRTUAL_KINDS | {"Binding"}

# Group preference order in discovery, like the real server's.
GROUP_ORDER = [
    "", "apiregistration.k8s.io",
    "apps", "events.k8s.io", "authentication.k8s.io", "authorization.k8s.io", "autoscaling", "batch",
    "certificates.k8s.io",
    "networking.k8s.io", "policy", "rbac.authorization.k8s.io", "storage.k8s.io", "admissionregistration.k8s.io",
    "apiextensions.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "node.k8s.io", "discovery.k8s.io",
    "resource.k8s.io", "flowcontrol.apiserver.k8s.io",
]


class Registry:
    """The live set of served resources, built-in and custom."""

    def __init__(self) -> None:
        self._by_gvr: dict[tuple[str, str, str], ResourceInfo] = {}
        self._by_gvk: dict[tuple[str, str, str], ResourceInfo] = {}
        self.generation = 0  # bumped on every change; caches of discovery/OpenAPI key on it
        for info in builtin_resources():
            self.add(info)

    def add(self, info: ResourceInfo) -> None:
        self._by_gvr[(info.group, info.version, info.plural)] = info
        self._by_gvk[(info.group, info.version, info.kind)] = info
        self.generation += 1

    def remove(self, group: str, version: str, plural: str) -> None:
        info = self._by_gvr.pop((group, version, plural), None)
        if info is not None:
            self._by_gvk.pop((info.group, info.version, info.kind), None)
            self.generation += 1

    def get(self, group: str, version: str, plural: str) -> ResourceInfo | None:
        return self._by_gvr.get((group, version, plural))

    def by_kind(self, group: str, version: str, kind: str) -> ResourceInfo | None:
        return self._by_gvk.get((group, version, kind))

    def all(self) -> list[ResourceInfo]:
        return list(self._by_gvr.values())

    def group_versions(self) -> dict[str, list[str]]:
        """group -> versions served, preferred first."""
        out: dict[str, list[str]] = {}
        for info in self._by_gvr.values():
            versions = out.setdefault(info.group, [])
            if info.version not in versions:
                versions.append(info.version)
        order = {g: i for i, g in enumerate(GROUP_ORDER)}
        return dict(sorted(out.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))

    def storage_info(self, info: ResourceInfo) -> ResourceInfo:
        """The entry of the version `info`'s objects are stored in (`info` itself for most)."""
        if not info.stored_elsewhere:
            return info
        stored = self._by_gvk.get((info.stored_group, info.storage_version, info.kind))
        if stored is None:
            raise LookupError(f"{info.kind} is stored as {info.stored_group}/{info.storage_version}, which is not served")
        return stored

    def in_group_version(self, group: str, version: str) -> list[ResourceInfo]:
        return [i for i in self._by_gvr.values() if i.group == group and i.version == version]
