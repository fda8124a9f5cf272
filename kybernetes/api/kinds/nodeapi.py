"""node.k8s.io: RuntimeClasses, which name the CRI handler a pod runs with, the
overhead it adds to the pod's resources and where such pods may be scheduled."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.errors import FieldError, required
from kybernetes.api.kinds.base import KindRef, KindStrategy
from kybernetes.api.names import dns1123_label_errors
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import age_column, age_of, as_str, column, doc, name_column, name_of
from kybernetes.api.validation import (
    _validate_tolerations,
    as_dict,
    immutable,
    name_errors,
    validate_labels,
    validate_resource_list,
)

Obj = dict[str, Any]
Errors = list[FieldError]


def validate_runtime_class(obj: Obj) -> Errors:
    handler = obj.get("handler")
    if handler in (None, ""):
        errs = [required("handler")]
    else:
        errs = name_errors(dns1123_label_errors, "handler", handler)
    overhead = obj.get("overhead")
    if overhead is not None:
        errs += validate_resource_list("overhead.podFixed", as_dict(overhead).get("podFixed"))
    scheduling = obj.get("scheduling")
    if scheduling is not None:
        scheduling = as_dict(scheduling)
        errs += validate_labels("scheduling.nodeSelector", scheduling.get("nodeSelector"))
        errs += _validate_tolerations("scheduling.tolerations", scheduling.get("tolerations"))
    return errs


class RuntimeClassStrategy(KindStrategy):
    refs = (KindRef("node.k8s.io", "RuntimeClass"),)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return validate_runtime_class(obj)

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> Errors:
        # The handler is what running pods were started with; changing it would lie about them.
        return immutable("handler", new.get("handler"), old.get("handler"))

    def table_columns(self) -> list[dict[str, Any]]:
        return [name_column(), column("Handler", doc("node.v1.RuntimeClass", "handler")), age_column()]

    def cells(self, obj: Obj, now: datetime) -> list[Any]:
        return [name_of(obj), as_str(obj.get("handler")), age_of(obj, now)]
