"""storage.k8s.io CSI kinds: CSIDrivers, CSINodes, VolumeAttachments,
CSIStorageCapacities and VolumeAttributesClasses, stored and printed as the real server does (no CSI driver
acts on them here yet)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, set_default
from kybernetes.api.errors import FieldError, duplicate, forbidden, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1123_subdomain_errors, qualified_name_errors
from kybernetes.api.quantity import QUANTITY_REGEX_MSG, parse_quantity
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
from kybernetes.api.validation import (
    as_dict,
    as_list,
    enum_errors,
    immutable,
    name_errors,
    non_negative,
    validate_label_selector,
)

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]

_FS_GROUP_POLICIES = ["File", "None", "ReadWriteOnceWithFSType"]
_LIFECYCLE_MODES = ["Ephemeral", "Persistent"]


def _driver_name_errors(path: str, name: Any) -> Errors:
    if name in (None, ""):
        return [required(path)]
    text = str(name)
    errs = [invalid(path, name, m) for m in qualified_name_errors(text.lower())] if "/" not in text else []
    if "/" in text:
        errs.append(invalid(path, name, "must not contain '/'"))
    return errs


def default_csi_driver(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    for key, value in (("attachRequired", True), ("podInfoOnMount", False), ("requiresRepublish", False),
                       ("storageCapacity", False), ("seLinuxMount", False),
                       ("fsGroupPolicy", "ReadWriteOnceWithFSType")):
        if spec.get(key) is None:
            spec[key] = value
    if not spec.get("volumeLifecycleModes"):
        spec["volumeLifecycleModes"] = ["Persistent"]


def validate_csi_driver(obj: Obj) -> Errors:
    errs = _driver_name_errors("metadata.name", get_path(obj, "metadata", "name"))
    spec = as_dict(obj.get("spec"))
    errs += enum_errors("spec.fsGroupPolicy", spec.get("fsGroupPolicy"), _FS_GROUP_POLICIES,
                        required_when_empty=False)
    for i, mode in enumerate(as_list(spec.get("volumeLifecycleModes"))):
        errs += enum_errors(f"spec.volumeLifecycleModes[{i}]", mode, _LIFECYCLE_MODES)
    audiences: set[str] = set()
    for i, req in enumerate(as_list(spec.get("tokenRequests"))):
        audience = as_dict(req).get("audience", "")
        if audience in audiences:
            errs.append(duplicate(f"spec.tokenRequests[{i}].audience", audience))
        audiences.add(audience)
        errs += non_negative(f"spec.tokenRequests[{i}].expirationSeconds", as_dict(req).get("expirationSeconds"))
    return errs


def validate_csi_driver_update(new: Obj, old: Obj) -> Errors:
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    return immutable("spec.attachRequired", new_spec.get("attachRequired"), old_spec.get("attachRequired"))


def validate_csi_node(obj: Obj) -> Errors:
    errs: Errors = []
    names: set[str] = set()
    for i, driver in enumerate(as_list(get_path(obj, "spec", "drivers"))):
        d, path = as_dict(driver), f"spec.drivers[{i}]"
        errs += _driver_name_errors(f"{path}.name", d.get("name"))
        if d.get("name") in names:
            errs.append(duplicate(f"{path}.name", d.get("name")))
        names.add(str(d.get("name")))
        if not d.get("nodeID"):
            errs.append(required(f"{path}.nodeID"))
        elif len(str(d["nodeID"])) > 256:
            errs.append(invalid(f"{path}.nodeID", d["nodeID"], "must be 256 characters or less"))
        errs += non_negative(f"{path}.allocatable.count", as_dict(d.get("allocatable")).get("count"))
        topology_keys = as_list(d.get("topologyKeys"))
        for j, key in enumerate(topology_keys):
            if not key:
                errs.append(required(f"{path}.topologyKeys[{j}]"))
            else:
                errs += [invalid(f"{path}.topologyKeys[{j}]", key, m) for m in qualified_name_errors(str(key))]
    return errs


def validate_volume_attachment(obj: Obj) -> Errors:
    spec = as_dict(obj.get("spec"))
    errs = _driver_name_errors("spec.attacher", spec.get("attacher"))
    if not spec.get("nodeName"):
        errs.append(required("spec.nodeName"))
    source = as_dict(spec.get("source"))
    given = [k for k in ("persistentVolumeName", "inlineVolumeSpec") if source.get(k) not in (None, "")]
    if not given:
        errs.append(required("spec.source", "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
    elif len(given) > 1:
        errs.append(forbidden("spec.source", "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
    elif given[0] == "persistentVolumeName":
        errs += name_errors(dns1123_subdomain_errors, "spec.source.persistentVolumeName", source[given[0]])
    return errs


def validate_csi_storage_capacity(obj: Obj) -> Errors:
    name = obj.get("storageClassName")
    if name in (None, ""):
        errs = [required("storageClassName")]
    else:
        errs = name_errors(dns1123_subdomain_errors, "storageClassName", name)
    if obj.get("nodeTopology") is not None:
        errs += validate_label_selector("nodeTopology", obj.get("nodeTopology"))
    for key in ("capacity", "maximumVolumeSize"):
        value = obj.get(key)
        if value is None:
            continue
        parsed = parse_quantity(value)
        if parsed is None:
            errs.append(invalid(key, str(value), QUANTITY_REGEX_MSG))
        elif parsed < 0:
            errs.append(invalid(key, str(value), "must be greater than or equal to 0"))
    return errs


def _bool(value: Any, default: bool) -> bool:
    return default if value is None else bool(value)


def _cells_csi_driver(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    token_requests = "<unset>"
    if spec.get("tokenRequests") is not None:
        token_requests = ",".join(as_str(as_dict(t).get("audience")) for t in list_at(spec, "tokenRequests"))
    modes = ",".join(as_str(m) for m in list_at(spec, "volumeLifecycleModes")) or "<none>"
    return [name_of(obj), _bool(spec.get("attachRequired"), True), _bool(spec.get("podInfoOnMount"), False),
            _bool(spec.get("storageCapacity"), False), token_requests, _bool(spec.get("requiresRepublish"), False),
            modes, age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

class CSIDriverStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "CSIDriver"),)
    counts_generation = False  # upstream's PrepareForCreate sets no generation
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        default_csi_driver(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_csi_driver(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return validate_csi_driver_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "storage.v1.CSIDriverSpec"
        return [
            name_column(),
            column("AttachRequired", doc(spec, "attachRequired"), "boolean"),
            column("PodInfoOnMount", doc(spec, "podInfoOnMount"), "boolean"),
            column("StorageCapacity", doc(spec, "storageCapacity"), "boolean"),
            column("TokenRequests", doc(spec, "tokenRequests")),
            column("RequiresRepublish", doc(spec, "requiresRepublish"), "boolean"),
            column("Modes", doc(spec, "volumeLifecycleModes")),
            age_column(),
        ]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_csi_driver(obj, now)


class CSINodeStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "CSINode"),)
    counts_generation = False  # upstream's PrepareForCreate sets no generation
    delete_returns_object = True
    always_present = {("spec", "drivers"): []}

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_csi_node(obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("Drivers", doc("storage.v1.CSINodeSpec", "drivers"), "integer"), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), len(list_at(obj, "spec", "drivers")), age_of(obj, now)]


class VolumeAttachmentStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "VolumeAttachment"),)
    counts_generation = False  # upstream's PrepareForCreate sets no generation
    status_metadata = ()  # metav1.ResetObjectMetaForStatus
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        # The attacher owns status; `attached` is always serialized.
        if isinstance(obj.get("status"), dict):
            set_default(obj["status"], "attached", False)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_volume_attachment(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return immutable("spec", new.get("spec"), old.get("spec"), shown="")

    def table_columns(self) -> list[dict[str, Any]]:
        spec = "storage.v1.VolumeAttachmentSpec"
        return [
            name_column(),
            column("Attacher", doc(spec, "attacher")),
            column("PV", doc("storage.v1.VolumeAttachmentSource", "persistentVolumeName")),
            column("Node", doc(spec, "nodeName")),
            column("Attached", doc("storage.v1.VolumeAttachmentStatus", "attached"), "boolean"),
            age_column(),
        ]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        spec = dict_at(obj, "spec")
        return [name_of(obj), as_str(spec.get("attacher")), as_str(get_path(spec, "source", "persistentVolumeName")),
                as_str(spec.get("nodeName")), bool(get_path(obj, "status", "attached")), age_of(obj, now)]


class CSIStorageCapacityStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "CSIStorageCapacity"),)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_csi_storage_capacity(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        errs: Errors = []
        for key in ("storageClassName", "nodeTopology"):
            errs += immutable(key, new.get(key), old.get(key))
        return errs

    def table_columns(self) -> list[dict[str, Any]]:
        cap = "storage.v1.CSIStorageCapacity"
        return [name_column(), column("StorageClassName", doc(cap, "storageClassName")),
                column("Capacity", doc(cap, "capacity")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        capacity = obj.get("capacity")
        return [name_of(obj), as_str(obj.get("storageClassName")),
                "<unset>" if capacity is None else as_str(capacity), age_of(obj, now)]


class VolumeAttributesClassStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "VolumeAttributesClass"),)
    delete_returns_object = True

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _driver_name_errors("driverName", obj.get("driverName"))

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        # Volumes already modified to these attributes would silently diverge from their class.
        errs = immutable("driverName", new.get("driverName"), old.get("driverName"))
        if new.get("parameters") != old.get("parameters"):
            errs.append(forbidden("parameters", "updates to parameters are forbidden."))
        return errs

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("DriverName", doc("storage.v1.VolumeAttributesClass", "driverName")),
                age_column()]

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return [name_of(obj), as_str(obj.get("driverName")), age_of(obj, now)]
