"""Namespaces: their lifecycle (Active, then Terminating until the namespace controller
has emptied them and removed the `kubernetes` finalizer through namespaces/finalize)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from kybernetes.api.defaults import child_map, set_default
from kybernetes.api.errors import FieldError, invalid
from kybernetes.api.jsonutil import clone
from kybernetes.api.kinds.base import KindRef, KindStrategy, WritePolicy
from kybernetes.api.names import qualified_name_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import age_column, age_of, as_str, column, get_path, name_column, name_of
from kybernetes.api.validation import STANDARD_FINALIZERS, as_dict, as_list

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_namespace(info: ResourceInfo, obj: Obj) -> Errors:
    errs: Errors = []
    for i, finalizer in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
        p = f"spec.finalizers[{i}]"
        errs += [invalid(p, finalizer, m) for m in qualified_name_errors(str(finalizer))]
        if "/" not in str(finalizer) and finalizer not in STANDARD_FINALIZERS:
            errs.append(invalid(p, finalizer, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


def _default_namespace(obj: Obj) -> None:
    meta = child_map(obj, "metadata")
    name = meta.get("name")
    if name:
        child_map(meta, "labels")["kubernetes.io/metadata.name"] = name
    # spec.finalizers ["kubernetes"] is set once, on create (by the server), not by
    # defaulting: the namespace lifecycle removes it and it must stay removed.
    set_default(child_map(obj, "status"), "phase", "Active")


def _columns_namespace() -> list[dict[str, Any]]:
    return [name_column(), column("Status", "The status of the namespace"), age_column()]


def _cells_namespace(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), as_str(get_path(obj, "status", "phase")), age_of(obj, now)]


@dataclass(frozen=True)
class FinalizeWrite(WritePolicy):
    """namespaces/finalize: only spec.finalizers changes (the namespace controller's write)."""

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        merged = clone(old)
        merged.setdefault("spec", {})["finalizers"] = list(as_list(as_dict(new.get("spec")).get("finalizers")))
        return merged


# -- strategies ---------------------------------------------------------------------------

class NamespaceStrategy(KindStrategy):
    refs = (KindRef("", "Namespace"),)
    delete_returns_object = True
    resets_status_on_create = False

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        _default_namespace(obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_namespace(info, obj)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_namespace()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_namespace(obj, now)

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.setdefault("spec", {})
        if "finalizers" not in spec:
            spec["finalizers"] = ["kubernetes"]

    def write_policy(self, info: ResourceInfo, subresource: str) -> WritePolicy | None:
        if subresource == "finalize":
            return FinalizeWrite()
        return super().write_policy(info, subresource)

    def deletes_through_finalizers(self, obj: Obj) -> bool:
        return True

    def prepare_for_delete(self, obj: Obj) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def holds_removal(self, obj: Obj) -> bool:
        return bool(as_dict(obj.get("spec")).get("finalizers"))
