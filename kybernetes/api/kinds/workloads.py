"""Workloads: Deployments, ReplicaSets, ReplicationControllers, StatefulSets, DaemonSets,
PodTemplates and ControllerRevisions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, default_template, dicts, is_unset, set_default
from kybernetes.api.errors import FieldError, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1123_label_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.selectors import format_labels, label_selector_to_string
from kybernetes.api.tables import (
    CONTAINERS_DOC,
    IMAGES_DOC,
    age_column,
    age_of,
    as_int,
    as_str,
    column,
    container_names_images,
    containers_columns,
    dict_at,
    doc,
    format_selector,
    get_path,
    list_at,
    name_column,
    name_of,
)
from kybernetes.api.validation import (
    ALWAYS_RESTART,
    POD_RESTART,
    GoValue,
    as_dict,
    enum_errors,
    go_label_selector,
    immutable,
    is_int,
    json_value,
    name_errors,
    non_negative,
    validate_int_or_percent,
    validate_labels,
    validate_selector_and_template,
    validate_template,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _is_zero(value: Any) -> bool:
    return value == 0 or value == "0%"


def _validate_deployment(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = non_negative("spec.replicas", spec.get("replicas"))
    errs += validate_selector_and_template(spec, "deployment")
    strategy = spec.get("strategy") if isinstance(spec.get("strategy"), dict) else {}
    stype = strategy.get("type")
    errs += enum_errors("spec.strategy.type", stype, ["Recreate", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if stype == "Recreate" and rolling is not None:
        errs.append(forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'"))
    elif stype == "RollingUpdate" and isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        errs += validate_int_or_percent("spec.strategy.rollingUpdate.maxSurge", surge)
        errs += validate_int_or_percent("spec.strategy.rollingUpdate.maxUnavailable", unavailable)
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", unavailable,
                                "may not be 0 when `maxSurge` is 0"))
    errs += non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    errs += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    deadline = spec.get("progressDeadlineSeconds")
    errs += non_negative("spec.progressDeadlineSeconds", deadline)
    if is_int(deadline) and deadline <= (spec.get("minReadySeconds") or 0):
        errs.append(invalid("spec.progressDeadlineSeconds", deadline, "must be greater than minReadySeconds"))
    return errs


def _validate_replicaset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = non_negative("spec.replicas", spec.get("replicas"))
    errs += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    return errs + validate_selector_and_template(spec, "deployment")


def _validate_replication_controller(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = non_negative("spec.replicas", spec.get("replicas"))
    selector = spec.get("selector")
    matcher = None
    if not isinstance(selector, dict) or not selector:
        errs.append(required("spec.selector"))
    else:
        errs += validate_labels("spec.selector", selector)
        matcher = lambda labels: all(labels.get(k) == v for k, v in selector.items())  # noqa: E731
    if spec.get("template") is None:
        errs.append(required("spec.template"))
    else:
        errs += validate_template("spec.template", spec.get("template"), matcher, ALWAYS_RESTART)
    return errs


def _validate_statefulset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = non_negative("spec.replicas", spec.get("replicas"))
    claims = [as_str(get_path(c, "metadata", "name")) for c in dicts(spec.get("volumeClaimTemplates"))]
    errs += validate_selector_and_template(spec, "statefulset", claim_volumes=[c for c in claims if c])
    errs += enum_errors("spec.podManagementPolicy", spec.get("podManagementPolicy"), ["OrderedReady", "Parallel"])
    strategy = spec.get("updateStrategy") if isinstance(spec.get("updateStrategy"), dict) else {}
    errs += enum_errors("spec.updateStrategy.type", strategy.get("type"), ["OnDelete", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "OnDelete" and rolling is not None:
        errs.append(invalid("spec.updateStrategy.rollingUpdate", json_value(rolling),
                            "only allowed for updateStrategy 'RollingUpdate'"))
    if isinstance(rolling, dict):
        errs += non_negative("spec.updateStrategy.rollingUpdate.partition", rolling.get("partition"))
        unavailable = rolling.get("maxUnavailable")
        errs += validate_int_or_percent("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable)
        if _is_zero(unavailable):
            errs.append(invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable, "cannot be 0"))
    errs += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    errs += non_negative("spec.ordinals.start", as_dict(spec.get("ordinals")).get("start"))
    retention = as_dict(spec.get("persistentVolumeClaimRetentionPolicy"))
    for key in ("whenDeleted", "whenScaled"):
        errs += enum_errors(f"spec.persistentVolumeClaimRetentionPolicy.{key}", retention.get(key),
                            ["Retain", "Delete"], required_when_empty=False)
    if as_dict(as_dict(spec.get("template")).get("spec")).get("activeDeadlineSeconds") is not None:
        errs.append(forbidden("spec.template.spec.activeDeadlineSeconds",
                              "activeDeadlineSeconds in StatefulSet is not Supported"))
    if spec.get("serviceName"):
        errs += name_errors(dns1123_label_errors, "spec.serviceName", spec["serviceName"])
    errs += non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy", "revisionHistoryLimit",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


def _validate_statefulset_update(new: Obj, old: Obj) -> Errors:
    new_spec = {k: v for k, v in as_dict(new.get("spec")).items() if k not in _STS_MUTABLE}
    old_spec = {k: v for k, v in as_dict(old.get("spec")).items() if k not in _STS_MUTABLE}
    if new_spec != old_spec:
        return [forbidden("spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                                  "'template', 'updateStrategy', 'revisionHistoryLimit', "
                                  "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden")]
    return []


def _validate_daemonset(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = validate_selector_and_template(spec, "daemonset")
    deadline = as_dict(as_dict(spec.get("template")).get("spec")).get("activeDeadlineSeconds")
    if deadline is not None:
        # A daemon runs for as long as its node does.
        errs.append(invalid("spec.template.spec.activeDeadlineSeconds", deadline,
                            "activeDeadlineSeconds in DaemonSet is not Supported"))
    errs += non_negative("spec.minReadySeconds", spec.get("minReadySeconds"))
    strategy = spec.get("updateStrategy") if isinstance(spec.get("updateStrategy"), dict) else {}
    errs += enum_errors("spec.updateStrategy.type", strategy.get("type"), ["OnDelete", "RollingUpdate"])
    rolling = strategy.get("rollingUpdate")
    if strategy.get("type") == "RollingUpdate" and isinstance(rolling, dict):
        surge, unavailable = rolling.get("maxSurge"), rolling.get("maxUnavailable")
        errs += validate_int_or_percent("spec.updateStrategy.rollingUpdate.maxSurge", surge)
        errs += validate_int_or_percent("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable)
        if _is_zero(surge) and _is_zero(unavailable):
            errs.append(invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", unavailable,
                                "may not be 0 when `maxSurge` is 0"))
    errs += non_negative("spec.revisionHistoryLimit", spec.get("revisionHistoryLimit"))
    return errs


def _validate_pod_template(info: ResourceInfo, obj: Obj) -> Errors:
    return validate_template("template", obj.get("template"), None, POD_RESTART)


def _selector_immutable(new: Obj, old: Obj) -> Errors:
    new_sel = as_dict(new.get("spec")).get("selector")
    old_sel = as_dict(old.get("spec")).get("selector")
    return immutable("spec.selector", new_sel, old_sel, go_label_selector(new_sel))


def _validate_controller_revision(info: ResourceInfo, obj: Obj) -> Errors:
    return non_negative("revision", obj.get("revision"))


def _validate_controller_revision_update(new: Obj, old: Obj) -> Errors:
    return immutable("data", new.get("data"), old.get("data"), GoValue("runtime.RawExtension{...}"))


def _default_deployment(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    strategy = child_map(spec, "strategy")
    set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child_map(strategy, "rollingUpdate")
        for key in ("maxUnavailable", "maxSurge"):
            if rolling.get(key) is None:
                rolling[key] = "25%"
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    if spec.get("progressDeadlineSeconds") is None:
        spec["progressDeadlineSeconds"] = 600
    default_template(spec)


def _default_replicaset(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_template(spec)


def _default_replication_controller(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    template = spec.get("template")
    meta = template.get("metadata") if isinstance(template, dict) else None
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if isinstance(labels, dict):
        if not spec.get("selector"):
            spec["selector"] = dict(labels)
        meta = child_map(obj, "metadata")
        if not meta.get("labels"):
            meta["labels"] = dict(labels)
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    default_template(spec)


def _default_statefulset(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "podManagementPolicy", "OrderedReady")
    strategy = child_map(spec, "updateStrategy")
    if is_unset(strategy, "type"):
        strategy["type"] = "RollingUpdate"
        child_map(strategy, "rollingUpdate")
    rolling = strategy.get("rollingUpdate")
    if strategy["type"] == "RollingUpdate" and isinstance(rolling, dict) and rolling.get("partition") is None:
        rolling["partition"] = 0
    retention = child_map(spec, "persistentVolumeClaimRetentionPolicy")
    set_default(retention, "whenDeleted", "Retain")
    set_default(retention, "whenScaled", "Retain")
    if spec.get("replicas") is None:
        spec["replicas"] = 1
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    default_template(spec)
    for claim in dicts(spec.get("volumeClaimTemplates")):
        # Stored as whole PersistentVolumeClaims, type included (as kube-apiserver shows them).
        set_default(claim, "apiVersion", "v1")
        set_default(claim, "kind", "PersistentVolumeClaim")
        claim_spec = child_map(claim, "spec")
        set_default(claim_spec, "volumeMode", "Filesystem")
        # The claim templates are stored with the status a fresh claim would have.
        set_default(child_map(claim, "status"), "phase", "Pending")


# apps/v1 shows the DaemonSet's (internal) template generation as this annotation:
# 1 on create, one more each time a write changes the pod template.
TEMPLATE_GENERATION = "deprecated.daemonset.template.generation"


def _count_template_generation(obj: Obj, old: Obj | None) -> None:
    meta = child_map(obj, "metadata")
    annotations = meta.get("annotations") if isinstance(meta.get("annotations"), dict) else {}
    if old is None:
        current = 0
    else:
        old_annotations = as_dict(as_dict(old.get("metadata")).get("annotations"))
        try:
            current = int(old_annotations.get(TEMPLATE_GENERATION) or 0)
        except ValueError:
            current = 0
        if as_dict(old.get("spec")).get("template") == as_dict(obj.get("spec")).get("template"):
            if current:
                meta["annotations"] = {**annotations, TEMPLATE_GENERATION: str(current)}
            return
    meta["annotations"] = {**annotations, TEMPLATE_GENERATION: str(current + 1)}


def _default_daemonset(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    strategy = child_map(spec, "updateStrategy")
    set_default(strategy, "type", "RollingUpdate")
    if strategy["type"] == "RollingUpdate":
        rolling = child_map(strategy, "rollingUpdate")
        if rolling.get("maxUnavailable") is None:
            rolling["maxUnavailable"] = 1
        if rolling.get("maxSurge") is None:
            rolling["maxSurge"] = 0
    if spec.get("revisionHistoryLimit") is None:
        spec["revisionHistoryLimit"] = 10
    default_template(spec)


def _default_pod_template(obj: Obj) -> None:
    default_template(obj)


def _columns_deployment() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Ready", "Number of the pod with ready state"),
        column("Up-to-date", doc("apps.v1.DeploymentStatus", "updatedReplicas")),
        column("Available", doc("apps.v1.DeploymentStatus", "availableReplicas")),
        age_column(),
        *containers_columns(doc("apps.v1.DeploymentSpec", "selector")),
    ]


def _columns_replicaset() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Desired", doc("apps.v1.ReplicaSetSpec", "replicas"), "integer"),
        column("Current", doc("apps.v1.ReplicaSetStatus", "replicas"), "integer"),
        column("Ready", doc("apps.v1.ReplicaSetStatus", "readyReplicas"), "integer"),
        age_column(),
        *containers_columns(doc("apps.v1.ReplicaSetSpec", "selector")),
    ]


def _columns_rc() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Desired", doc("core.v1.ReplicationControllerSpec", "replicas"), "integer"),
        column("Current", doc("core.v1.ReplicationControllerStatus", "replicas"), "integer"),
        column("Ready", doc("core.v1.ReplicationControllerStatus", "readyReplicas"), "integer"),
        age_column(),
        *containers_columns(doc("core.v1.ReplicationControllerSpec", "selector")),
    ]


def _columns_statefulset() -> list[dict[str, Any]]:
    return [name_column(), column("Ready", "Number of the pod with ready state"), age_column(), *containers_columns(None)]


def _columns_daemonset() -> list[dict[str, Any]]:
    status = "apps.v1.DaemonSetStatus"
    return [
        name_column(),
        column("Desired", doc(status, "desiredNumberScheduled"), "integer"),
        column("Current", doc(status, "currentNumberScheduled"), "integer"),
        column("Ready", doc(status, "numberReady"), "integer"),
        column("Up-to-date", doc(status, "updatedNumberScheduled"), "integer"),
        column("Available", doc(status, "numberAvailable"), "integer"),
        column("Node Selector", doc("core.v1.PodSpec", "nodeSelector")),
        age_column(),
        *containers_columns(doc("apps.v1.DaemonSetSpec", "selector")),
    ]


def _columns_controllerrevision() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Controller", "Controller of the object"),
        column("Revision", doc("apps.v1.ControllerRevision", "revision")),
        age_column(),
    ]


def _columns_podtemplate() -> list[dict[str, Any]]:
    return [
        name_column(),
        column("Containers", CONTAINERS_DOC),
        column("Images", IMAGES_DOC),
        column("Pod Labels", "The labels for the pod template."),
    ]


def _replicas(obj: Obj) -> int:
    # The server defaults spec.replicas to 1; an object that somehow lacks it counts as such.
    return as_int(get_path(obj, "spec", "replicas"), 1)


def _cells_deployment(obj: Obj, now: datetime) -> Cells:
    status = dict_at(obj, "status")
    names, images = container_names_images(list_at(obj, "spec", "template", "spec", "containers"))
    selector = get_path(obj, "spec", "selector")
    return [name_of(obj), f"{as_int(status.get('readyReplicas'))}/{_replicas(obj)}",
            as_int(status.get("updatedReplicas")), as_int(status.get("availableReplicas")), age_of(obj, now),
            names, images, label_selector_to_string(selector if isinstance(selector, Mapping) else None)]


def _cells_replicaset(obj: Obj, now: datetime) -> Cells:
    status = dict_at(obj, "status")
    names, images = container_names_images(list_at(obj, "spec", "template", "spec", "containers"))
    return [name_of(obj), _replicas(obj), as_int(status.get("replicas")), as_int(status.get("readyReplicas")),
            age_of(obj, now), names, images, format_selector(get_path(obj, "spec", "selector"))]


def _cells_rc(obj: Obj, now: datetime) -> Cells:
    status = dict_at(obj, "status")
    names, images = container_names_images(list_at(obj, "spec", "template", "spec", "containers"))
    return [name_of(obj), _replicas(obj), as_int(status.get("replicas")), as_int(status.get("readyReplicas")),
            age_of(obj, now), names, images, format_labels(dict_at(obj, "spec", "selector"))]


def _cells_statefulset(obj: Obj, now: datetime) -> Cells:
    names, images = container_names_images(list_at(obj, "spec", "template", "spec", "containers"))
    return [name_of(obj), f"{as_int(get_path(obj, 'status', 'readyReplicas'))}/{_replicas(obj)}", age_of(obj, now),
            names, images]


def _cells_daemonset(obj: Obj, now: datetime) -> Cells:
    status = dict_at(obj, "status")
    names, images = container_names_images(list_at(obj, "spec", "template", "spec", "containers"))
    return [name_of(obj), as_int(status.get("desiredNumberScheduled")), as_int(status.get("currentNumberScheduled")),
            as_int(status.get("numberReady")), as_int(status.get("updatedNumberScheduled")),
            as_int(status.get("numberAvailable")), format_labels(dict_at(obj, "spec", "template", "spec", "nodeSelector")),
            age_of(obj, now), names, images, format_selector(get_path(obj, "spec", "selector"))]


def _cells_podtemplate(obj: Obj, now: datetime) -> Cells:
    names, images = container_names_images(list_at(obj, "template", "spec", "containers"))
    return [name_of(obj), names, images, format_labels(dict_at(obj, "template", "metadata", "labels"))]


def _cells_controllerrevision(obj: Obj, now: datetime) -> Cells:
    controller = "<none>"
    for ref in list_at(obj, "metadata", "ownerReferences"):
        if isinstance(ref, Mapping) and ref.get("controller"):
            group = as_str(ref.get("apiVersion")).rpartition("/")[0]
            kind = as_str(ref.get("kind"))
            qualified = f"{kind}.{group}" if group else kind
            controller = f"{qualified.lower()}/{as_str(ref.get('name'))}" if qualified else as_str(ref.get("name"))
            break
    return [name_of(obj), controller, as_int(obj.get("revision")), age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

class DeploymentStrategy(KindStrategy):
    refs = (KindRef("apps", "Deployment"),)
    # deploymentStatusStrategy keeps the labels (ReplicaSet, StatefulSet and DaemonSet do not).
    status_metadata = ("annotations", "finalizers", "ownerReferences")

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_deployment(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_deployment(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _selector_immutable(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_deployment()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_deployment(obj, now)


class ReplicaSetStrategy(KindStrategy):
    refs = (KindRef("apps", "ReplicaSet"),)
    always_present = {("status", "replicas"): 0}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_replicaset(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_replicaset(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _selector_immutable(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_replicaset()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_replicaset(obj, now)


class StatefulSetStrategy(KindStrategy):
    refs = (KindRef("apps", "StatefulSet"),)
    always_present = {("status", "replicas"): 0, ("status", "availableReplicas"): 0}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_statefulset(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_statefulset(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _selector_immutable(new, old) + _validate_statefulset_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_statefulset()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_statefulset(obj, now)


class DaemonSetStrategy(KindStrategy):
    refs = (KindRef("apps", "DaemonSet"),)
    always_present = {
        ("status", "currentNumberScheduled"): 0,
        ("status", "numberMisscheduled"): 0,
        ("status", "desiredNumberScheduled"): 0,
        ("status", "numberReady"): 0,
    }

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_daemonset(obj)

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        _count_template_generation(obj, old)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_daemonset(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _selector_immutable(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_daemonset()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_daemonset(obj, now)


class ControllerRevisionStrategy(KindStrategy):
    refs = (KindRef("apps", "ControllerRevision"),)
    always_present = {("revision",): 0}

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_controller_revision(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_controller_revision_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_controllerrevision()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_controllerrevision(obj, now)


class ReplicationControllerStrategy(KindStrategy):
    refs = (KindRef("", "ReplicationController"),)
    delete_returns_object = True
    default_propagation_policy = "Orphan"
    always_present = {("status", "replicas"): 0}

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_replication_controller(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_replication_controller(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_rc()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_rc(obj, now)


class PodTemplateStrategy(KindStrategy):
    refs = (KindRef("", "PodTemplate"),)
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_pod_template(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_pod_template(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_podtemplate()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_podtemplate(obj, now)
