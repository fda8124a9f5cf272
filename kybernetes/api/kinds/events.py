"""Events, core/v1 and events.k8s.io/v1 alike (one table for both, as kubectl shows them)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kybernetes.api.errors import FieldError, invalid, required
from kybernetes.api.kinds.base import KindRef, KindStrategy, fill_always_present
from kybernetes.api.registry import ResourceInfo
from kybernetes.api.tables import as_int, as_str, column, dict_at, doc, get_path, name_column, name_of, since
from kybernetes.api.timefmt import parse_time
from kybernetes.api.validation import as_dict, enum_errors, too_long

Obj = dict[str, Any]
Errors = list[FieldError]
Cells = list[Any]


def _validate_event(info: ResourceInfo, obj: Obj) -> Errors:
    meta = as_dict(obj.get("metadata"))
    namespace = meta.get("namespace") or ""
    errs: Errors = []
    if info.group == "events.k8s.io":
        if not obj.get("eventTime"):
            errs.append(required("eventTime"))
        for key in ("reportingController", "reportingInstance", "action", "reason"):
            if not obj.get(key):
                errs.append(required(key))
        errs += enum_errors("type", obj.get("type"), ["Normal", "Warning"])
        regarding_ns = as_dict(obj.get("regarding")).get("namespace") or ""
        if regarding_ns and regarding_ns != namespace:
            errs.append(invalid("regarding.namespace", regarding_ns, "does not match event.namespace"))
        note = obj.get("note")
        if isinstance(note, str) and len(note.encode()) > 1024:
            errs.append(too_long("note", 1024))
        return errs
    involved = obj.get("involvedObject")
    if not isinstance(involved, dict):
        return [required("involvedObject")]
    involved_ns = involved.get("namespace") or ""
    if involved_ns:
        if involved_ns != namespace:
            errs.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    elif namespace not in ("", "default") and str(involved.get("kind")) in _CLUSTER_KINDS:
        errs.append(invalid("involvedObject.namespace", involved_ns, "does not match event.namespace"))
    if obj.get("type"):
        errs += enum_errors("type", obj.get("type"), ["Normal", "Warning"])
    return errs


# Event objects about cluster-scoped kinds must live in "default" (or have no namespace).
_CLUSTER_KINDS = {"Node", "Namespace", "PersistentVolume", "ClusterRole", "ClusterRoleBinding", "StorageClass",
                  "CustomResourceDefinition", "PriorityClass", "IngressClass"}


def _columns_event() -> list[dict[str, Any]]:
    ev = "core.v1.Event"
    return [
        column("Last Seen", doc(ev, "lastTimestamp")),
        column("Type", doc(ev, "type")),
        column("Reason", doc(ev, "reason")),
        column("Object", doc(ev, "involvedObject")),
        column("Subobject", doc("core.v1.ObjectReference", "fieldPath"), priority=1),
        column("Source", doc(ev, "source"), priority=1),
        column("Message", doc(ev, "message")),
        column("First Seen", doc(ev, "firstTimestamp"), priority=1),
        column("Count", doc(ev, "count"), priority=1),
        name_column(priority=1),
    ]


def _core_event_view(ev: Obj) -> Obj:
    """Present an events.k8s.io/v1 Event with the core/v1 field names the printer reads."""
    new_api = as_str(ev.get("apiVersion")).startswith("events.k8s.io/")
    if not new_api and "regarding" not in ev and "note" not in ev and "deprecatedSource" not in ev:
        return ev
    return {
        "metadata": ev.get("metadata") or {},
        "involvedObject": ev.get("regarding") or {},
        "reason": ev.get("reason"),
        "message": ev.get("note"),
        "type": ev.get("type"),
        "firstTimestamp": ev.get("deprecatedFirstTimestamp"),
        "lastTimestamp": ev.get("deprecatedLastTimestamp"),
        "count": ev.get("deprecatedCount"),
        "source": ev.get("deprecatedSource") or {},
        "eventTime": ev.get("eventTime"),
        "series": ev.get("series"),
        "reportingComponent": ev.get("reportingController"),
        "reportingInstance": ev.get("reportingInstance"),
    }


def _cells_event(raw: Obj, now: datetime) -> Cells:
    ev = _core_event_view(raw)
    first = since(ev.get("firstTimestamp"), now)
    if parse_time(ev.get("firstTimestamp")) is None:
        first = since(ev.get("eventTime"), now)
    last = since(ev.get("lastTimestamp"), now)
    if parse_time(ev.get("lastTimestamp")) is None:
        last = first
    count = as_int(ev.get("count"))
    series = ev.get("series")
    if isinstance(series, Mapping):
        last = since(series.get("lastObservedTime"), now)
        count = as_int(series.get("count"))
    elif count == 0:
        count = 1  # singleton events of the new API carry no count
    involved = dict_at(ev, "involvedObject")
    kind = as_str(involved.get("kind")).lower()
    target = f"{kind}/{as_str(involved.get('name'))}" if involved.get("name") else kind
    component = as_str(get_path(ev, "source", "component")) or as_str(ev.get("reportingComponent"))
    host = as_str(get_path(ev, "source", "host")) or as_str(ev.get("reportingInstance"))
    source = f"{component}, {host}" if host else component
    return [last, as_str(ev.get("type")), as_str(ev.get("reason")), target, as_str(involved.get("fieldPath")), source,
            as_str(ev.get("message")).strip(), first, count, name_of(raw)]


# -- strategies ---------------------------------------------------------------------------

# Fields each version always writes (Go fields without omitempty; times as null).
_ALWAYS_PRESENT: dict[str, Mapping[tuple[str, ...], Any]] = {
    "": {("involvedObject",): {}, ("source",): {}, ("firstTimestamp",): None, ("lastTimestamp",): None,
         ("eventTime",): None, ("reportingComponent",): "", ("reportingInstance",): ""},
    "events.k8s.io": {("regarding",): {}, ("deprecatedSource",): {}, ("deprecatedFirstTimestamp",): None,
                      ("deprecatedLastTimestamp",): None, ("eventTime",): None},
}


# -- events.k8s.io/v1 <-> core/v1 (the stored version) ------------------------------------

# (events.k8s.io/v1 field, core/v1 field); other fields are named alike in both.
_FIELD_PAIRS = (("regarding", "involvedObject"), ("note", "message"), ("deprecatedSource", "source"),
                ("deprecatedFirstTimestamp", "firstTimestamp"), ("deprecatedLastTimestamp", "lastTimestamp"),
                ("deprecatedCount", "count"), ("reportingController", "reportingComponent"))
_TO_CORE = dict(_FIELD_PAIRS)
_TO_EVENTS = {core: new for new, core in _FIELD_PAIRS}
_SHARED = ("metadata", "related", "reportingInstance", "eventTime", "action", "reason", "type")


def convert_event(obj: Obj, group: str) -> Obj:
    """An Event of either group as `group`'s v1 Event, as upstream converts through its
    internal Event; empty optional fields are left out as Go's omitempty does."""
    names = _TO_CORE if group == "" else _TO_EVENTS
    out: Obj = {"kind": "Event", "apiVersion": f"{group}/v1" if group else "v1"}
    for key, value in obj.items():
        target = names.get(key, key if key in _SHARED else None)
        if target is not None and value not in (None, "", 0, {}):
            out[target] = value
    series = obj.get("series")
    if isinstance(series, Mapping):
        out["series"] = {k: series[k] for k in ("count", "lastObservedTime") if series.get(k) not in (None, "")}
    fill_always_present(out, _ALWAYS_PRESENT[group])
    return out


class EventStrategy(KindStrategy):
    refs = (KindRef("", "Event"), KindRef("events.k8s.io", "Event"),)

    def validate(self, info: ResourceInfo, obj: Obj) -> Errors:
        return _validate_event(info, obj)

    def prepare_write(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        super().prepare_write(info, obj, old)
        fill_always_present(obj, _ALWAYS_PRESENT.get(info.group, {}))

    def convert(self, obj: Obj, version: str, group: str | None = None) -> Obj:
        own = str(obj.get("apiVersion") or "").rpartition("/")[0]
        if group is None or group == own:
            return super().convert(obj, version, group)
        return convert_event(obj, group)

    def table_columns(self) -> list[dict[str, Any]]:
        return _columns_event()

    def cells(self, obj: Obj, now: datetime) -> Cells:
        return _cells_event(obj, now)
