"""Defaulting of the built-in kinds, as the Kubernetes API server does it on decode.

`apply_defaults` fills the fields a client may leave out, in place, so that what
is stored and returned looks like what a real cluster stores (the values follow
the `SetDefaults_*` functions of Kubernetes 1.37, plus the few fields that real
admission plugins always set on pods, such as `priority`). Custom resources get
the `default` values of their CRD's structural schema.

Every function here is pure apart from mutating the object it is given.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes.api.registry import ResourceInfo

Obj = dict[str, Any]


def _map(parent: Obj, key: str) -> Obj:
    """`parent[key]` as a dict, created when absent or null."""
    value = parent.get(key)
    if not isinstance(value, dict):
        value = {}
        parent[key] = value
    return value


def _as_map(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[Obj]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _unset(obj: Obj, key: str) -> bool:
    # Go's zero values ("" and nil) count as unset; an explicit 0 or false does not.
    return obj.get(key) in (None, "")


def _setdefault(obj: Obj, key: str, value: Any) -> None:
    if _unset(obj, key):
        obj[key] = value


# -- images ---------------------------------------------------------------------------


def image_tag(image: str) -> str:
    """The tag of an image reference ('' when it has none or is pinned only by digest)."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else ""


def default_pull_policy(image: str) -> str:
    # An untagged reference means :latest, which may move, so it is pulled every time.
    tag = image_tag(image)
    if not image or ("@" in image and not tag):
        return "IfNotPresent"
    return "Always" if tag in ("", "latest") else "IfNotPresent"


# -- pod spec -------------------------------------------------------------------------


def _default_http_get(action: Any) -> None:
    if isinstance(action, dict):
        _setdefault(action, "path", "/")
        _setdefault(action, "scheme", "HTTP")


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    for key, value in (("timeoutSeconds", 1), ("periodSeconds", 10), ("successThreshold", 1),
                       ("failureThreshold", 3)):
        if not probe.get(key):
            probe[key] = value
    _default_http_get(probe.get("httpGet"))


def _default_field_ref(holder: Any) -> None:
    if isinstance(holder, dict) and isinstance(holder.get("fieldRef"), dict):
        _setdefault(holder["fieldRef"], "apiVersion", "v1")


def default_container(c: Obj) -> None:
    if _unset(c, "imagePullPolicy"):
        c["imagePullPolicy"] = default_pull_policy(str(c.get("image") or ""))
    _setdefault(c, "terminationMessagePath", "/dev/termination-log")
    _setdefault(c, "terminationMessagePolicy", "File")
    # ResourceRequirements is a value (not a pointer) in Go, so it is always serialized.
    if not isinstance(c.get("resources"), dict):
        c["resources"] = {}
    for port in _dicts(c.get("ports")):
        _setdefault(port, "protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))
    lifecycle = c.get("lifecycle")
    if isinstance(lifecycle, dict):
        for hook in ("postStart", "preStop"):
            if isinstance(lifecycle.get(hook), dict):
                _default_http_get(lifecycle[hook].get("httpGet"))
    for env in _dicts(c.get("env")):
        _default_field_ref(env.get("valueFrom"))


_VOLUME_SOURCES_WITH_MODE = ("configMap", "secret", "downwardAPI", "projected")


def default_volume(v: Obj) -> None:
    sources = [k for k in v if k != "name" and v.get(k) is not None]
    if not sources:
        v["emptyDir"] = {}
    for key in _VOLUME_SOURCES_WITH_MODE:
        src = v.get(key)
        if isinstance(src, dict) and src.get("defaultMode") is None:
            src["defaultMode"] = 420
    host_path = v.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""
    downward = v.get("downwardAPI")
    if isinstance(downward, dict):
        for item in _dicts(downward.get("items")):
            _default_field_ref(item)
    projected = v.get("projected")
    if isinstance(projected, dict):
        for source in _dicts(projected.get("sources")):
            token = source.get("serviceAccountToken")
            if isinstance(token, dict) and token.get("expirationSeconds") is None:
                token["expirationSeconds"] = 3600
            if isinstance(source.get("downwardAPI"), dict):
                for item in _dicts(source["downwardAPI"].get("items")):
                    _default_field_ref(item)
    ephemeral = v.get("ephemeral")
    if isinstance(ephemeral, dict) and isinstance(ephemeral.get("volumeClaimTemplate"), dict):
        claim_spec = ephemeral["volumeClaimTemplate"].get("spec")
        if isinstance(claim_spec, dict):
            _setdefault(claim_spec, "volumeMode", "Filesystem")


def default_pod_spec(spec: Obj, restart_policy: str | None = "Always") -> None:
    """Defaults shared by pods and every pod template.

    `restart_policy` is None for Job templates: a Job must say OnFailure or Never itself.
    """
    _setdefault(spec, "dnsPolicy", "ClusterFirst")
    if restart_policy is not None:
        _setdefault(spec, "restartPolicy", restart_policy)
    if not isinstance(spec.get("securityContext"), dict):
        spec["securityContext"] = {}
    if spec.get("terminationGracePeriodSeconds") is None:
        spec["terminationGracePeriodSeconds"] = 30
    _setdefault(spec, "schedulerName", "default-scheduler")
    for key in ("containers", "initContainers", "ephemeralContainers"):
        for c in _dicts(spec.get(key)):
            default_container(c)
    for v in _dicts(spec.get("volumes")):
        default_volume(v)


# Seconds of the tolerations the DefaultTolerationSeconds admission plugin adds to every
# pod; the server sets it from `kyb server --default-toleration-seconds`.
default_toleration_seconds = 300


def _default_tolerations() -> tuple[Obj, ...]:
    return tuple({"key": key, "operator": "Exists", "effect": "NoExecute",
                  "tolerationSeconds": default_toleration_seconds}
                 for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"))


def _tolerates(tolerations: list[Obj], key: str) -> bool:
    return any(t.get("key") == key and t.get("effect") in (None, "", "NoExecute") for t in tolerations)


def default_pod(pod: Obj) -> None:
    spec = _map(pod, "spec")
    default_pod_spec(spec)
    # Only a Pod (not a template) gets these: adding them to templates would change
    # template hashes of existing workloads on upgrade.
    for key in ("containers", "initContainers"):
        for c in _dicts(spec.get(key)):
            resources = c.get("resources")
            limits = resources.get("limits") if isinstance(resources, dict) else None
            if isinstance(limits, dict) and limits:
                requests = _map(resources, "requests")
                for name, quantity in limits.items():
                    requests.setdefault(name, quantity)
    if spec.get("enableServiceLinks") is None:
        spec["enableServiceLinks"] = True
    if spec.get("hostNetwork") is True:
        for key in ("containers", "initContainers"):
            for c in _dicts(spec.get(key)):
                for port in _dicts(c.get("ports")):
                    if not port.get("hostPort"):
                        port["hostPort"] = port.get("containerPort")
    # What the Priority and DefaultTolerationSeconds admission plugins always add.
    if spec.get("priority") is None and not spec.get("priorityClassName"):
        spec["priority"] = 0
    _setdefault(spec, "preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.get("tolerations")
    if tolerations is None:
        tolerations = spec["tolerations"] = []
    if isinstance(tolerations, list):
        present = _dicts(tolerations)
        for extra in _default_tolerations():
            if not _tolerates(present, extra["key"]):
                tolerations.append(dict(extra))


def _default_template(holder: Obj, restart_policy: str | None = "Always") -> None:
    template = holder.get("template")
    if isinstance(template, dict):
        default_pod_spec(_map(template, "spec"), restart_policy)


# -- workloads ------------------------------------------------------------------------


def _default_deployment(obj: Obj) -> None:
    spec = _map(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = _map(spec, "strategy")
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _map(strategy, "rollingUpdate")
        for key in ("maxUnavailable", "maxSurge"):
            if rolling.get(key) is None:
                rolling[key] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    _default_template(spec)


def _default_replicaset(obj: Obj) -> None:
    spec = _map(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_template(spec)


def _default_replication_controller(obj: Obj) -> None:
    spec = _map(obj, "spec")
    template = spec.get("template")
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = _map(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    _default_template(spec)


def _default_statefulset(obj: Obj) -> None:
    spec = _map(obj, "spec")
    _setdefault(spec, "podManagementPolicy", "OrderedReady")
    strategy = _map(spec, "updateStrategy")
    if _unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
        _map(strategy, "rollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict) and rolling.get("partition") is None:
        rolling["partition"] = 0
    retention = _map(spec, "persistentVolumeClaimRetentionPolicy")
    _setdefault(retention, "whenDeleted", "Retain")
    _setdefault(retention, "whenScaled", "Retain")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_template(spec)
    for claim in _dicts(spec.get("volumeClaimTemplates")):
        claim_spec = _map(claim, "spec")
        _setdefault(claim_spec, "volumeMode", "Filesystem")
        # The claim templates are stored with the status a fresh claim would have.
        _setdefault(_map(claim, "status"), "phase", "Pending")


def _default_daemonset(obj: Obj) -> None:
    spec = _map(obj, "spec")
    strategy = _map(spec, "updateStrategy")
    _setdefault(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = _map(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    _default_template(spec)


JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def default_job_spec(spec: Obj) -> None:
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    if spec.get("parallelism") is None:
        spec["parallelism"] = 1
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 6
    _setdefault(spec, "completionMode", "NonIndexed")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("podReplacementPolicy") is None:
        # With a pod failure policy a replacement must wait for the old pod to be gone.
        spec["podReplacementPolicy"] = "Failed" if spec.get("podFailurePolicy") else "TerminatingOrFailed"
    _default_template(spec, restart_policy=None)


def _default_job(obj: Obj) -> None:
    meta = _map(obj, "metadata")
    spec = _map(obj, "spec")
    default_job_spec(spec)
    template = spec.get("template")
    # The Job strategy generates the selector from the uid, unless the user manages it.
    uid = meta.get("uid")
    if isinstance(template, dict) and uid and spec.get("manualSelector") is not True:
        labels = _map(_map(template, "metadata"), "labels")
        if spec.get("selector") is None:
            spec["selector"] = {"matchLabels": {JOB_UID_LABEL: uid}}
        for key, value in ((JOB_UID_LABEL, uid), ("controller-uid", uid),
                           (JOB_NAME_LABEL, meta.get("name", "")), ("job-name", meta.get("name", ""))):
            labels.setdefault(key, value)
    if isinstance(template, dict):
        labels = template.get("metadata", {}).get("labels") if isinstance(template.get("metadata"), dict) else None
        if isinstance(labels, dict) and labels and not meta.get("labels"):
            meta["labels"] = dict(labels)


def _default_cronjob(obj: Obj) -> None:
    spec = _map(obj, "spec")
    _setdefault(spec, "concurrencyPolicy", "Allow")
    if spec.get("suspend") is None:
        spec["suspend"] = False
    if spec.get("successfulJobsHistoryLimit") is None:
        spec["successfulJobsHistoryLimit"] = 3
    if spec.get("failedJobsHistoryLimit") is None:
        spec["failedJobsHistoryLimit"] = 1
    job_template = spec.get("jobTemplate")
    if isinstance(job_template, dict) and isinstance(job_template.get("spec"), dict):
        _default_template(job_template["spec"], restart_policy=None)


def _default_pod_template(obj: Obj) -> None:
    _default_template(obj)


# -- core -----------------------------------------------------------------------------


def _default_service(obj: Obj) -> None:
    spec = _map(obj, "spec")
    _setdefault(spec, "sessionAffinity", "None")
    if spec["sessionAffinity"] == "None":
        spec.pop("sessionAffinityConfig", None)
    elif spec["sessionAffinity"] == "ClientIP":
        client_ip = _map(_map(spec, "sessionAffinityConfig"), "clientIP")
        if client_ip.get("timeoutSeconds") is None:
            client_ip["timeoutSeconds"] = 10800
    _setdefault(spec, "type", "ClusterIP")
    svc_type = spec["type"]
    for port in _dicts(spec.get("ports")):
        _setdefault(port, "protocol", "TCP")
        if port.get("targetPort") in (None, 0, ""):
            port["targetPort"] = port.get("port")
    externally_reachable = svc_type in ("NodePort", "LoadBalancer") or (
        svc_type == "ClusterIP" and bool(spec.get("externalIPs")))
    if externally_reachable:
        _setdefault(spec, "externalTrafficPolicy", "Cluster")
    if spec.get("internalTrafficPolicy") is None and svc_type in ("ClusterIP", "NodePort", "LoadBalancer"):
        spec["internalTrafficPolicy"] = "Cluster"
    if svc_type == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts") is None:
        spec["allocateLoadBalancerNodePorts"] = True
    if svc_type != "ExternalName":
        # Done by the IP allocator in the real server; this cluster is IPv4 only.
        _setdefault(spec, "ipFamilyPolicy", "SingleStack")
        if not spec.get("ipFamilies"):
            spec["ipFamilies"] = ["IPv4"]


def _default_secret(obj: Obj) -> None:
    _setdefault(obj, "type", "Opaque")


def _default_namespace(obj: Obj) -> None:
    meta = _map(obj, "metadata")
    name = meta.get("name")
    if name:
        _map(meta, "labels")["kubernetes.io/metadata.name"] = name
    # spec.finalizers ["kubernetes"] is set once, on create (by the server), not by
    # defaulting: the namespace lifecycle removes it and it must stay removed.
    _setdefault(_map(obj, "status"), "phase", "Active")


def _default_pvc(obj: Obj) -> None:
    _setdefault(_map(obj, "spec"), "volumeMode", "Filesystem")
    _setdefault(_map(obj, "status"), "phase", "Pending")


def _default_pv(obj: Obj) -> None:
    spec = _map(obj, "spec")
    _setdefault(spec, "persistentVolumeReclaimPolicy", "Retain")
    _setdefault(spec, "volumeMode", "Filesystem")
    _setdefault(_map(obj, "status"), "phase", "Pending")
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""


def _default_endpoints(obj: Obj) -> None:
    for subset in _dicts(obj.get("subsets")):
        for port in _dicts(subset.get("ports")):
            _setdefault(port, "protocol", "TCP")


def _default_endpointslice(obj: Obj) -> None:
    for port in _dicts(obj.get("ports")):
        _setdefault(port, "protocol", "TCP")


def _default_node(obj: Obj) -> None:
    status = obj.get("status")
    if isinstance(status, dict) and status.get("allocatable") is None and isinstance(status.get("capacity"), dict):
        status["allocatable"] = dict(status["capacity"])


def _default_limit_range(obj: Obj) -> None:
    for item in _dicts(_map(obj, "spec").get("limits")):
        if item.get("type") != "Container":
            continue
        default = _map(item, "default")
        request = _map(item, "defaultRequest")
        for name, value in _as_map(item.get("max")).items():
            default.setdefault(name, value)
        for name, value in default.items():
            request.setdefault(name, value)
        for name, value in _as_map(item.get("min")).items():
            request.setdefault(name, value)


# -- other groups ---------------------------------------------------------------------


def _default_storage_class(obj: Obj) -> None:
    _setdefault(obj, "reclaimPolicy", "Delete")
    _setdefault(obj, "volumeBindingMode", "Immediate")


def _default_network_policy(obj: Obj) -> None:
    spec = _map(obj, "spec")
    if not spec.get("policyTypes"):
        spec["policyTypes"] = ["Ingress"] + (["Egress"] if spec.get("egress") else [])
    for direction in ("ingress", "egress"):
        for rule in _dicts(spec.get(direction)):
            for port in _dicts(rule.get("ports")):
                _setdefault(port, "protocol", "TCP")


def _default_ingress_class(obj: Obj) -> None:
    params = _map(obj, "spec").get("parameters")
    if isinstance(params, dict):
        _setdefault(params, "scope", "Cluster")


def _hpa_rules(given: Any, defaults: Obj) -> Obj:
    rules = copy.deepcopy(defaults)
    if isinstance(given, dict):
        for key in ("selectPolicy", "stabilizationWindowSeconds", "policies", "tolerance"):
            if given.get(key) is not None:
                rules[key] = given[key]
    return rules


_SCALE_UP = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
             "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                          {"type": "Percent", "value": 100, "periodSeconds": 15}]}
# No stabilization window: the controller's command-line default applies then.
_SCALE_DOWN = {"selectPolicy": "Max", "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _default_hpa(obj: Obj) -> None:
    spec = _map(obj, "spec")
    if spec.get("minReplicas") is None:
        spec["minReplicas"] = 1
    if not spec.get("metrics"):
        spec["metrics"] = [{"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        behavior["scaleUp"] = _hpa_rules(behavior.get("scaleUp"), _SCALE_UP)
        behavior["scaleDown"] = _hpa_rules(behavior.get("scaleDown"), _SCALE_DOWN)


def _default_binding(obj: Obj) -> None:
    role_ref = _map(obj, "roleRef")
    _setdefault(role_ref, "apiGroup", "rbac.authorization.k8s.io")
    for subject in _dicts(obj.get("subjects")):
        if _unset(subject, "apiGroup") and subject.get("kind") in ("User", "Group"):
            subject["apiGroup"] = "rbac.authorization.k8s.io"


def _default_priority_class(obj: Obj) -> None:
    _setdefault(obj, "preemptionPolicy", "PreemptLowerPriority")


def _default_crd(obj: Obj) -> None:
    spec = _map(obj, "spec")
    names = _map(spec, "names")
    kind = names.get("kind")
    if isinstance(kind, str) and kind:
        _setdefault(names, "singular", kind.lower())
        _setdefault(names, "listKind", kind + "List")
    conversion = _map(spec, "conversion")
    _setdefault(conversion, "strategy", "None")
    webhook = conversion.get("webhook")
    if isinstance(webhook, dict):
        service = (webhook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict) and service.get("port") is None:
            service["port"] = 443


_DEFAULTERS: dict[tuple[str, str], Callable[[Obj], None]] = {
    ("", "Pod"): default_pod,
    ("", "PodTemplate"): _default_pod_template,
    ("", "ReplicationController"): _default_replication_controller,
    ("", "Service"): _default_service,
    ("", "Secret"): _default_secret,
    ("", "Namespace"): _default_namespace,
    ("", "PersistentVolumeClaim"): _default_pvc,
    ("", "PersistentVolume"): _default_pv,
    ("", "Endpoints"): _default_endpoints,
    ("", "Node"): _default_node,
    ("", "LimitRange"): _default_limit_range,
    ("apps", "Deployment"): _default_deployment,
    ("apps", "ReplicaSet"): _default_replicaset,
    ("apps", "StatefulSet"): _default_statefulset,
    ("apps", "DaemonSet"): _default_daemonset,
    ("batch", "Job"): _default_job,
    ("batch", "CronJob"): _default_cronjob,
    ("autoscaling", "HorizontalPodAutoscaler"): _default_hpa,
    ("discovery.k8s.io", "EndpointSlice"): _default_endpointslice,
    ("storage.k8s.io", "StorageClass"): _default_storage_class,
    ("networking.k8s.io", "NetworkPolicy"): _default_network_policy,
    ("networking.k8s.io", "IngressClass"): _default_ingress_class,
    ("rbac.authorization.k8s.io", "RoleBinding"): _default_binding,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): _default_binding,
    ("scheduling.k8s.io", "PriorityClass"): _default_priority_class,
    ("apiextensions.k8s.io", "CustomResourceDefinition"): _default_crd,
}


# -- custom resources -----------------------------------------------------------------


def apply_schema_defaults(schema: Any, value: Any) -> None:
    """Fill `default`s of a structural schema into `value`, in place, like CR defaulting."""
    if not isinstance(schema, dict):
        return
    if isinstance(value, dict):
        props = schema.get("properties")
        if isinstance(props, dict):
            for key, sub in props.items():
                if not isinstance(sub, dict):
                    continue
                if key not in value and "default" in sub:
                    value[key] = copy.deepcopy(sub["default"])
                if key in value:
                    apply_schema_defaults(sub, value[key])
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            known = props if isinstance(props, dict) else {}
            for key, item in value.items():
                if key not in known:
                    apply_schema_defaults(extra, item)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_schema_defaults(schema["items"], item)


def apply_defaults(info: ResourceInfo, obj: dict) -> None:
    """Default `obj` (a decoded object of kind `info`) in place."""
    if info.crd_schema is not None:
        apply_schema_defaults(info.crd_schema, obj)
        return
    defaulter = _DEFAULTERS.get((info.group, info.kind))
    if defaulter is not None:
        defaulter(obj)
