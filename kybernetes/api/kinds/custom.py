"""Custom resources: the rules a CRD gives its kinds.

Defaults and validation come from the CRD's structural schema, the Table from its
`additionalPrinterColumns`; a custom resource with a status subresource is created
without a status, as kube-apiserver's CR strategy does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api import celrules
from kybernetes.api.defaults import apply_schema_defaults
from kybernetes.api.errors import FieldError
from kybernetes.api.kinds.base import KindStrategy, Obj
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import printer_cells, printer_columns
from kybernetes.api.validation import validate_custom


class CustomResourceStrategy(KindStrategy):
    """One instance serves every custom kind; what differs comes from `info`."""

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        if info.crd_schema is not None:
            apply_schema_defaults(info.crd_schema, obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> list[FieldError]:
        if info.crd_schema is None:
            return []
        errs = validate_custom(info, obj)
        # CEL rules read typed values: run on an object that passed the schema.
        return errs or celrules.validate(info.crd_schema, obj, None)

    def validate_changed(self, info: ResourceInfo, new: Obj, old: Obj) -> list[FieldError]:
        if info.crd_schema is None:
            return []
        return validate_custom(info, new) or celrules.validate(info.crd_schema, new, None, celrules.PLAIN)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> list[FieldError]:
        # Transition rules (those reading oldSelf); the rest ran in `validate_changed`.
        return celrules.validate(info.crd_schema, new, old, celrules.TRANSITIONS) if info.crd_schema else []

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        if "status" in info.subresources:
            obj.pop("status", None)

    def columns(self, info: ResourceInfo) -> list[dict[str, Any]]:
        return printer_columns(info) or super().columns(info)

    def row_cells(self, info: ResourceInfo, obj: Obj, now: datetime) -> list[Any]:
        if info.printer_columns:
            return printer_cells(info, obj, now)
        return self.cells(obj, now)
