"""Storage: PersistentVolumes, PersistentVolumeClaims and StorageClasses."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any

from kybernetes.api.defaults import child_map, set_default
from kybernetes.api.errors import ApiError, FieldError, forbidden, invalid, not_supported, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import qualified_name_errors
from kybernetes.api.quantity import parse_quantity
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.storage import (
    ANN_BETA_STORAGE_CLASS,
    PV_PROTECTION,
    PVC_PROTECTION,
    claim_class,
    default_class,
)
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
from kybernetes.api.validation import as_dict, enum_errors, validate_label_selector, validate_resource_list

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


_ACCESS_MODES = ["ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod"]


def _validate_access_modes(path: str, modes: Any) -> Errors:
    if not modes:
        return [required(path, "at least 1 access mode is required")]
    errs: Errors = []
    for mode in modes if isinstance(modes, list) else []:
        if mode not in _ACCESS_MODES:
            errs.append(not_supported(path, mode, _ACCESS_MODES))
    return errs


def _validate_pvc(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _validate_access_modes("spec.accessModes", spec.get("accessModes"))
    resources = spec.get("resources") if isinstance(spec.get("resources"), dict) else {}
    requests = resources.get("requests") if isinstance(resources.get("requests"), dict) else {}
    if "storage" not in requests:
        errs.append(required("spec.resources[storage]"))
    else:
        errs += validate_resource_list("spec.resources.requests", requests)
    errs += enum_errors("spec.volumeMode", spec.get("volumeMode"), ["Block", "Filesystem"], required_when_empty=False)
    if spec.get("selector") is not None:
        errs += validate_label_selector("spec.selector", spec.get("selector"))
    return errs


def _storage_request(obj: Obj) -> Any:
    return as_dict(as_dict(as_dict(obj.get("spec")).get("resources")).get("requests")).get("storage")


def _validate_pvc_update(new: Obj, old: Obj) -> Errors:
    """Upstream's ValidatePersistentVolumeClaimUpdate: a claim's spec is fixed at creation but
    for the binder filling in volumeName once, a class given to a claim that had none, and
    the storage request of a bound claim (grown; shrunk only back towards status.capacity)."""
    new_spec = copy.deepcopy(as_dict(new.get("spec")))
    old_spec = copy.deepcopy(as_dict(old.get("spec")))
    if not old_spec.get("volumeName"):
        old_spec.pop("volumeName", None)
        new_spec.pop("volumeName", None)
    old_annotations = as_dict(as_dict(old.get("metadata")).get("annotations"))
    errs: Errors = []
    new_annotated = as_dict(as_dict(new.get("metadata")).get("annotations")).get(ANN_BETA_STORAGE_CLASS)
    if new_annotated != old_annotations.get(ANN_BETA_STORAGE_CLASS):
        errs.append(invalid(f"metadata.annotations[{ANN_BETA_STORAGE_CLASS}]", new_annotated, "field is immutable"))
    if old_spec.get("storageClassName") is None and ANN_BETA_STORAGE_CLASS not in old_annotations:
        # A claim created without a class may get one later (the retroactive default class).
        new_spec.pop("storageClassName", None)
    for key in ("volumeAttributesClassName",):
        new_spec.pop(key, None)
        old_spec.pop(key, None)
    if as_dict(new.get("status")).get("phase") == "Bound":
        requests = as_dict(as_dict(new_spec.get("resources")).get("requests"))
        if requests:
            requests = dict(requests)
            if _storage_request(old) is None:
                requests.pop("storage", None)
            else:
                requests["storage"] = _storage_request(old)
            new_spec["resources"] = {**as_dict(new_spec.get("resources")), "requests": requests}
    if new_spec != old_spec:
        errs.append(forbidden("spec", "spec is immutable after creation except resources.requests and "
                                      "volumeAttributesClassName for bound claims"))
    new_size = parse_quantity(_storage_request(new))
    old_size = parse_quantity(_storage_request(old))
    if new_size is not None and old_size is not None and new_size < old_size:
        # With recovery from expansion failure (GA), a request may come back down, but never
        # to or below what the volume already has.
        status_size = parse_quantity(as_dict(as_dict(old.get("status")).get("capacity")).get("storage"))
        if new_size <= (status_size or Decimal(0)):
            errs.append(forbidden("spec.resources.requests.storage", "field can not be less than status.capacity"))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode") and not any(e.field == "spec" for e in errs):
        errs.append(invalid("spec.volumeMode", new_spec.get("volumeMode"), "field is immutable"))
    return errs


def _validate_pv_update(new: Obj, old: Obj) -> Errors:
    """Upstream's ValidatePersistentVolumeUpdate: the volume source, volumeMode and a node
    affinity once set are fixed; capacity, class, claimRef and reclaim policy may change."""
    new_spec, old_spec = as_dict(new.get("spec")), as_dict(old.get("spec"))
    errs: Errors = []
    if any(new_spec.get(s) != old_spec.get(s) for s in _PV_SOURCES):
        errs.append(forbidden("spec.persistentvolumesource", "spec.persistentvolumesource is immutable after creation"))
    if new_spec.get("volumeMode") != old_spec.get("volumeMode"):
        errs.append(invalid("spec.volumeMode", new_spec.get("volumeMode"), "field is immutable"))
    if old_spec.get("nodeAffinity") is not None and new_spec.get("nodeAffinity") != old_spec.get("nodeAffinity"):
        errs.append(invalid("spec.nodeAffinity", new_spec.get("nodeAffinity"), "field is immutable"))
    return errs


_PV_SOURCES = ("hostPath", "local", "nfs", "csi", "iscsi", "fc", "rbd", "cephfs", "glusterfs", "awsElasticBlockStore",
               "gcePersistentDisk", "azureDisk", "azureFile", "cinder", "flexVolume", "flocker", "photonPersistentDisk",
               "portworxVolume", "quobyte", "scaleIO", "storageos", "vsphereVolume")


def _validate_pv(info: ResourceInfo, obj: Obj) -> Errors:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return [required("spec")]
    errs = _validate_access_modes("spec.accessModes", spec.get("accessModes"))
    capacity = spec.get("capacity")
    if not capacity:
        errs.append(required("spec.capacity"))
    else:
        errs += validate_resource_list("spec.capacity", capacity)
    sources = [s for s in _PV_SOURCES if spec.get(s) is not None]
    if not sources:
        errs.append(required("spec", "must specify a volume type"))
    elif len(sources) > 1:
        errs.append(forbidden(f"spec.{sources[1]}", "may not specify more than 1 volume type"))
    if isinstance(spec.get("local"), dict):
        if not spec["local"].get("path"):
            errs.append(required("spec.local.path"))
        if not as_dict(spec.get("nodeAffinity")).get("required"):
            errs.append(required("spec.nodeAffinity", "Local volume requires node affinity"))
    if isinstance(spec.get("hostPath"), dict) and not spec["hostPath"].get("path"):
        errs.append(required("spec.hostPath.path"))
    errs += enum_errors("spec.persistentVolumeReclaimPolicy", spec.get("persistentVolumeReclaimPolicy"),
                  ["Delete", "Recycle", "Retain"], required_when_empty=False)
    return errs


def _validate_storage_class(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    provisioner = obj.get("provisioner")
    if not provisioner:
        errs.append(required("provisioner"))
    else:
        errs += [invalid("provisioner", provisioner, m) for m in qualified_name_errors(str(provisioner).lower())]
    errs += enum_errors("reclaimPolicy", obj.get("reclaimPolicy"), ["Delete", "Retain"], required_when_empty=False)
    errs += enum_errors("volumeBindingMode", obj.get("volumeBindingMode"), ["Immediate", "WaitForFirstConsumer"],
                  required_when_empty=False)
    return errs


def _validate_storage_class_update(new: Obj, old: Obj) -> Errors:
    errs: Errors = []
    for key in ("parameters", "provisioner", "reclaimPolicy"):
        if new.get(key) != old.get(key):
            errs.append(forbidden(key, f"updates to {key} are forbidden."))
    if new.get("volumeBindingMode") != old.get("volumeBindingMode"):
        errs.append(forbidden("volumeBindingMode", "field is immutable"))
    return errs


def _default_pvc(obj: Obj) -> None:
    set_default(child_map(obj, "spec"), "volumeMode", "Filesystem")
    set_default(child_map(obj, "status"), "phase", "Pending")


def _default_pv(obj: Obj) -> None:
    spec = child_map(obj, "spec")
    set_default(spec, "persistentVolumeReclaimPolicy", "Retain")
    set_default(spec, "volumeMode", "Filesystem")
    set_default(child_map(obj, "status"), "phase", "Pending")
    host_path = spec.get("hostPath")
    if isinstance(host_path, dict) and host_path.get("type") is None:
        host_path["type"] = ""


def _default_storage_class(obj: Obj) -> None:
    set_default(obj, "reclaimPolicy", "Delete")
    set_default(obj, "volumeBindingMode", "Immediate")


def _columns_pv() -> list[dict[str, Any]]:
    spec, status = "core.v1.PersistentVolumeSpec", "core.v1.PersistentVolumeStatus"
    return [
        name_column(),
        column("Capacity", doc(spec, "capacity")),
        column("Access Modes", doc(spec, "accessModes")),
        column("Reclaim Policy", doc(spec, "persistentVolumeReclaimPolicy")),
        column("Status", doc(status, "phase")),
        column("Claim", doc(spec, "claimRef")),
        column("StorageClass", "StorageClass of the pv"),
        column("VolumeAttributesClass", "VolumeAttributesClass of the pv"),
        column("Reason", doc(status, "reason")),
        age_column(),
        column("VolumeMode", doc(spec, "volumeMode"), priority=1),
    ]


def _columns_pvc() -> list[dict[str, Any]]:
    spec, status = "core.v1.PersistentVolumeClaimSpec", "core.v1.PersistentVolumeClaimStatus"
    return [
        name_column(),
        column("Status", doc(status, "phase")),
        column("Volume", doc(spec, "volumeName")),
        column("Capacity", doc(status, "capacity")),
        column("Access Modes", doc(status, "accessModes")),
        column("StorageClass", "StorageClass of the pvc"),
        column("VolumeAttributesClass", "VolumeAttributesClass of the pvc"),
        age_column(),
        column("VolumeMode", doc(spec, "volumeMode"), priority=1),
    ]


def _columns_storageclass() -> list[dict[str, Any]]:
    sc = "storage.v1.StorageClass"
    return [
        name_column(),
        column("Provisioner", doc(sc, "provisioner")),
        column("ReclaimPolicy", doc(sc, "reclaimPolicy")),
        column("VolumeBindingMode", doc(sc, "volumeBindingMode")),
        column("AllowVolumeExpansion", doc(sc, "allowVolumeExpansion")),
        age_column(),
    ]


_ACCESS_MODE_SHORT = (("ReadWriteOnce", "RWO"), ("ReadOnlyMany", "ROX"), ("ReadWriteMany", "RWX"),
                 ("ReadWriteOncePod", "RWOP"))


def access_modes(modes: list[Any]) -> str:
    return ",".join(short for full, short in _ACCESS_MODE_SHORT if full in modes)


def _storage_class_of(obj: Obj) -> str:
    # The beta annotation predates the field and still wins when present.
    annotated = dict_at(obj, "metadata", "annotations").get("volume.beta.kubernetes.io/storage-class")
    if annotated is not None:
        return as_str(annotated)
    return as_str(get_path(obj, "spec", "storageClassName"))


def _cells_pv(obj: Obj, now: datetime) -> Cells:
    spec = dict_at(obj, "spec")
    claim = dict_at(spec, "claimRef")
    claim_text = f"{as_str(claim.get('namespace'))}/{as_str(claim.get('name'))}" if claim else ""
    phase = "Terminating" if get_path(obj, "metadata", "deletionTimestamp") else as_str(get_path(obj, "status", "phase"))
    return [name_of(obj), as_str(get_path(spec, "capacity", "storage")) or "0", access_modes(list_at(spec, "accessModes")),
            as_str(spec.get("persistentVolumeReclaimPolicy")), phase, claim_text, _storage_class_of(obj),
            as_str(spec.get("volumeAttributesClassName")) or "<unset>", as_str(get_path(obj, "status", "reason")),
            age_of(obj, now), as_str(spec.get("volumeMode")) or "<unset>"]


def _cells_pvc(obj: Obj, now: datetime) -> Cells:
    spec, status = dict_at(obj, "spec"), dict_at(obj, "status")
    phase = "Terminating" if get_path(obj, "metadata", "deletionTimestamp") else as_str(status.get("phase"))
    capacity, modes = "", ""
    if spec.get("volumeName"):
        modes = access_modes(list_at(status, "accessModes"))
        capacity = as_str(get_path(status, "capacity", "storage")) or "0"
    return [name_of(obj), phase, as_str(spec.get("volumeName")), capacity, modes, _storage_class_of(obj),
            as_str(spec.get("volumeAttributesClassName")) or "<unset>", age_of(obj, now),
            as_str(spec.get("volumeMode")) or "<unset>"]


def _cells_storageclass(obj: Obj, now: datetime) -> Cells:
    annotations = dict_at(obj, "metadata", "annotations")
    default = "true" in (annotations.get("storageclass.kubernetes.io/is-default-class"),
                         annotations.get("storageclass.beta.kubernetes.io/is-default-class"))
    name = name_of(obj) + (" (default)" if default else "")
    return [name, as_str(obj.get("provisioner")), as_str(obj.get("reclaimPolicy")) or "Delete",
            as_str(obj.get("volumeBindingMode")) or "Immediate", bool(obj.get("allowVolumeExpansion")),
            age_of(obj, now)]


# -- strategies ---------------------------------------------------------------------------

def _add_finalizer(obj: Obj, finalizer: str) -> None:
    # Upstream's StorageObjectInUseProtection admission: every new claim and volume is
    # protected from removal while in use.
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    finalizers = meta.get("finalizers")
    if not isinstance(finalizers, list):
        finalizers = []
    if finalizer not in finalizers:
        meta["finalizers"] = [*finalizers, finalizer]


class PersistentVolumeStrategy(KindStrategy):
    refs = (KindRef("", "PersistentVolume"),)
    counts_generation = False
    delete_returns_object = True
    resets_status_on_create = False

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        super().prepare_for_create(info, obj)
        _add_finalizer(obj, PV_PROTECTION)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_pv(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_pv(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_pv_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_pv()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_pv(obj, now)


class PersistentVolumeClaimStrategy(KindStrategy):
    refs = (KindRef("", "PersistentVolumeClaim"),)
    counts_generation = False
    delete_returns_object = True
    resets_status_on_create = False

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        super().prepare_for_create(info, obj)
        _add_finalizer(obj, PVC_PROTECTION)

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_pvc(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_pvc(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_pvc_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_pvc()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_pvc(obj, now)


class StorageClassStrategy(KindStrategy):
    refs = (KindRef("storage.k8s.io", "StorageClass"),)
    delete_returns_object = True

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_storage_class(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_storage_class(info, obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        return _validate_storage_class_update(new, old)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_storageclass()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_storageclass(obj, now)


# -- admission (the API server's shell hands in the StorageClasses it holds) -----------------

def admit_claim_create(pvc: Obj, classes: Iterable[Obj]) -> None:
    """Upstream's DefaultStorageClass admission: a new claim that names no class (neither
    spec.storageClassName, even "", nor the beta annotation) gets the default class, if any."""
    spec = pvc.get("spec")
    if not isinstance(spec, dict) or spec.get("storageClassName") is not None:
        return
    if ANN_BETA_STORAGE_CLASS in as_dict(as_dict(pvc.get("metadata")).get("annotations")):
        return
    chosen = default_class(classes)
    if chosen is not None:
        spec["storageClassName"] = as_str(get_path(chosen, "metadata", "name"))


def admit_claim_update(new: Obj, old: Obj, class_named: Callable[[str], Obj | None]) -> None:
    """Upstream's PersistentVolumeClaimResize admission: a bound claim may ask for more storage
    only when its class allows expansion. (An unbound claim's new request is refused by
    validation, which upstream runs first.)"""
    new_size = parse_quantity(_storage_request(new))
    old_size = parse_quantity(_storage_request(old))
    if new_size is None or old_size is None or new_size <= old_size:
        return
    if as_dict(old.get("status")).get("phase") != "Bound":
        return
    name = as_str(get_path(new, "metadata", "name"))
    cls = claim_class(new)
    sc = class_named(cls) if cls and cls == claim_class(old) else None
    if sc is None or sc.get("allowVolumeExpansion") is not True:
        raise ApiError.forbidden(f'persistentvolumeclaims "{name}" is forbidden: only dynamically provisioned pvc '
                                 "can be resized and the storageclass that provisions the pvc must support resize",
                                 "", "persistentvolumeclaims", name)
