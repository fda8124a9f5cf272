"""Server-side Table printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).

Each built-in kind's columns and cells live in its strategy (`kybernetes.api.kinds`:
the same columns, cell types and `<none>` conventions as the real server, always
including the `-o wide` columns, which carry priority 1). This module owns what they
share: column and cell helpers, human durations, the generic name/age and
"Created At" tables, CRD `additionalPrinterColumns` (a small JSONPath evaluator),
and the Table envelope with its `row.object` variants (`includeObject`).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.registry import ResourceInfo

if TYPE_CHECKING:
    from kybernetes.api.kinds import Strategies
from kybernetes.api.selectors import label_selector_to_string
from kybernetes.api.timefmt import parse_time, rfc3339

Obj = Mapping[str, Any]
Cells = list[Any]

# -- durations and timestamps --------------------------------------------------------------


def human_duration(seconds: float) -> str:
    """Render a duration like `duration.HumanDuration`: about two significant units."""
    secs = int(seconds)  # truncation toward zero, as Go's int(d.Seconds())
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 120:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 180:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if days == 0 else f"{years}y{days}d"
    return f"{hours // 24 // 365}y"


def aware(now: datetime) -> datetime:
    return now if now.tzinfo else now.replace(tzinfo=UTC)


def human_age(created: str | None, now: datetime) -> str:
    """Age of a timestamp as the AGE column shows it; `<unknown>` when there is none."""
    when = parse_time(created)
    if when is None:
        return "<unknown>"
    return human_duration((aware(now) - when).total_seconds())


# -- column definitions ----------------------------------------------------------------------

META_DEFINITION = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def doc(definition: str, prop: str) -> str:
    """The API documentation of a field, which is what the real server uses as description."""
    name = definition if definition.startswith("io.k8s.") else "io.k8s.api." + definition
    node = schemas.definitions().get(name) or {}
    return str(((node.get("properties") or {}).get(prop) or {}).get("description", ""))


def column(name: str, description: str, type_: str = "string", priority: int = 0, fmt: str = "") -> dict[str, Any]:
    return {"name": name, "type": type_, "format": fmt, "description": description, "priority": priority}


def name_column(priority: int = 0) -> dict[str, Any]:
    return column("Name", doc(META_DEFINITION, "name"), priority=priority, fmt="name")


def age_column() -> dict[str, Any]:
    return column("Age", doc(META_DEFINITION, "creationTimestamp"))


CONTAINERS_DOC = "Names of each container in the template."
IMAGES_DOC = "Images referenced by each container in the template."


def containers_columns(selector_doc: str | None) -> list[dict[str, Any]]:
    cols = [column("Containers", CONTAINERS_DOC, priority=1), column("Images", IMAGES_DOC, priority=1)]
    if selector_doc is not None:
        cols.append(column("Selector", selector_doc, priority=1))
    return cols


def name_age_columns() -> list[dict[str, Any]]:
    return [name_column(), age_column()]


def created_at_columns() -> list[dict[str, Any]]:
    # The generic table of built-in kinds without a printer shows the raw timestamp.
    return [name_column(), column("Created At", doc(META_DEFINITION, "creationTimestamp"), "date")]


# -- small helpers shared by the printers ---------------------------------------------------


def get_path(obj: Any, *path: str | int) -> Any:
    """Walk dicts/lists; None as soon as something is missing."""
    node = obj
    for step in path:
        if isinstance(step, int):
            if not isinstance(node, list) or not -len(node) <= step < len(node):
                return None
            node = node[step]
        else:
            if not isinstance(node, Mapping):
                return None
            node = node.get(step)
        if node is None:
            return None
    return node


def list_at(obj: Any, *path: str) -> list[Any]:
    value = get_path(obj, *path)
    return value if isinstance(value, list) else []


def dict_at(obj: Any, *path: str) -> Mapping[str, Any]:
    value = get_path(obj, *path)
    return value if isinstance(value, Mapping) else {}


def as_int(value: Any, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    return default


def as_str(value: Any) -> str:
    return "" if value is None else str(value)


def name_of(obj: Obj) -> str:
    return as_str(get_path(obj, "metadata", "name"))


def age_of(obj: Obj, now: datetime) -> str:
    return human_age(get_path(obj, "metadata", "creationTimestamp"), now)


def since(value: Any, now: datetime) -> str:
    return human_age(value if isinstance(value, str) else None, now)


def container_names_images(containers: list[Any]) -> tuple[str, str]:
    names = ",".join(as_str(c.get("name")) for c in containers if isinstance(c, Mapping))
    images = ",".join(as_str(c.get("image")) for c in containers if isinstance(c, Mapping))
    return names, images


def format_selector(sel: Any) -> str:
    """`metav1.FormatLabelSelector`: the string form, `<none>` when it is empty."""
    text = label_selector_to_string(sel if isinstance(sel, Mapping) else None)
    return text or "<none>"


def int_or_string(value: Any) -> str:
    return str(value)


def bool_word(value: Any) -> str:
    if value is None:
        return "<unset>"
    return "True" if value else "False"


def has_condition(conditions: list[Any], ctype: str) -> bool:
    for cond in conditions:
        if isinstance(cond, Mapping) and cond.get("type") == ctype:
            return cond.get("status") == "True"
    return False


def join_host_port(host: str, port: Any) -> str:
    try:
        if isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address):
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


def list_with_more(items: list[str], total: int, limit: int, empty: str) -> str:
    text = ",".join(items[:limit])
    if total > limit:
        return f"{text} + {total - limit} more..."
    return text or empty


def load_balancer_addresses(status: Mapping[str, Any]) -> str:
    found = set()
    for entry in list_at(status, "ingress"):
        if isinstance(entry, Mapping):
            if entry.get("ip"):
                found.add(as_str(entry["ip"]))
            elif entry.get("hostname"):
                found.add(as_str(entry["hostname"]))
    return ",".join(sorted(found))


# -- the generic tables ---------------------------------------------------------------------


def name_age_cells(obj: Obj, now: datetime) -> Cells:
    return [name_of(obj), age_of(obj, now)]


def created_at_cells(obj: Obj, now: datetime) -> Cells:
    created = parse_time(get_path(obj, "metadata", "creationTimestamp"))
    stamp = rfc3339(created) if created else None
    return [name_of(obj), stamp]


# -- custom resources: additionalPrinterColumns --------------------------------------------------


class _JsonPathError(ValueError):
    pass


def _parse_jsonpath(path: str) -> list[tuple[str, Any]]:
    """Compile the simple JSONPath subset CRD columns use into steps:
    ("key", name) | ("index", n) | ("all", None) | ("filter", (subpath, op, literal))."""
    text = path.strip()
    if text.startswith("{") and text.endswith("}"):
        text = text[1:-1].strip()
    if text.startswith("$"):
        text = text[1:]
    steps: list[tuple[str, Any]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == ".":
            i += 1
            name: list[str] = []
            while i < n and text[i] not in ".[":
                if text[i] == "\\" and i + 1 < n:
                    name.append(text[i + 1])
                    i += 2
                    continue
                name.append(text[i])
                i += 1
            if name:
                steps.append(("key", "".join(name)))
            continue
        if ch == "[":
            end = _matching_bracket(text, i)
            inner = text[i + 1:end].strip()
            i = end + 1
            steps.append(_bracket_step(inner))
            continue
        raise _JsonPathError(f"unexpected {ch!r} in {path!r}")
    return steps


def _matching_bracket(text: str, start: int) -> int:
    depth, quote = 0, ""
    for j in range(start, len(text)):
        ch = text[j]
        if quote:
            if ch == quote:
                quote = ""
            continue
        if ch in "'\"":
            quote = ch
        elif ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth == 0:
                return j
    raise _JsonPathError(f"unclosed bracket in {text!r}")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bracket_step(inner: str) -> tuple[str, Any]:
    if inner == "*":
        return ("all", None)
    if inner.startswith("?(") and inner.endswith(")"):
        expr = inner[2:-1].strip()
        for op in ("==", "!="):
            if op in expr:
                left, right = expr.split(op, 1)
                return ("filter", (_filter_subpath(left), op, _literal(right)))
        return ("filter", (_filter_subpath(expr), "exists", None))
    if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
        return ("key", inner[1:-1])
    try:
        return ("index", int(inner))
    except ValueError:
        raise _JsonPathError(f"unsupported selector [{inner}]") from None


def _filter_subpath(text: str) -> list[tuple[str, Any]]:
    text = text.strip()
    if not text.startswith("@"):
        raise _JsonPathError(f"unsupported filter {text!r}")
    return _parse_jsonpath(text[1:])


def _walk(nodes: list[Any], steps: list[tuple[str, Any]]) -> list[Any]:
    for kind, arg in steps:
        out: list[Any] = []
        for node in nodes:
            if kind == "key" and isinstance(node, Mapping) and arg in node:
                out.append(node[arg])
            elif kind == "index" and isinstance(node, list) and -len(node) <= arg < len(node):
                out.append(node[arg])
            elif kind == "all":
                if isinstance(node, list):
                    out.extend(node)
                elif isinstance(node, Mapping):
                    out.extend(node.values())
            elif kind == "filter" and isinstance(node, list):
                sub, op, want = arg
                for item in node:
                    found = _walk([item], sub)
                    if op == "exists" and found:
                        out.append(item)
                    elif op == "==" and found and found[0] == want:
                        out.append(item)
                    elif op == "!=" and found and found[0] != want:
                        out.append(item)
        nodes = out
    return nodes


def jsonpath_first(obj: Any, path: str) -> tuple[bool, Any]:
    """(found, value) of the first result of a simple JSONPath; missing keys are not errors."""
    results = _walk([obj], _parse_jsonpath(path))
    return (True, results[0]) if results else (False, None)


def _go_number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 1e21 else repr(value)


def _render_string_cell(value: Any) -> str:
    # JSONPath printing: scalars bare, objects and arrays as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _go_number(value)
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def custom_cell(col_type: str, value: Any, now: datetime) -> Any:
    """One CRD printer-column cell: typed like the column, None when it does not fit."""
    if value is None:
        return None
    if col_type == "string":
        return _render_string_cell(value)
    if col_type == "integer":
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None
    if col_type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value)
    if col_type == "boolean":
        return value if isinstance(value, bool) else None
    if col_type == "date":
        if not isinstance(value, str):
            return None
        when = parse_time(value)
        if when is None:
            return "<invalid>"
        return human_duration((aware(now) - when).total_seconds())
    return None


def printer_columns(info: ResourceInfo) -> list[dict[str, Any]] | None:
    """The columns of a CRD's additionalPrinterColumns (None without any)."""
    cols = info.printer_columns
    if not cols:
        return None
    out = [name_column()]
    for col in cols:
        path = as_str(col.get("jsonPath"))
        out.append(column(as_str(col.get("name")),
                        as_str(col.get("description")) or f"Custom resource definition column (in JSONPath format): {path}",
                        as_str(col.get("type")) or "string", as_int(col.get("priority")), as_str(col.get("format"))))
    return out


def printer_cells(info: ResourceInfo, obj: Obj, now: datetime) -> Cells:
    """A row's cells for `printer_columns(info)`."""
    cells: Cells = [name_of(obj)]
    for col in info.printer_columns or []:
        try:
            found, value = jsonpath_first(obj, as_str(col.get("jsonPath")))
        except _JsonPathError:
            found, value = False, None
        cells.append(custom_cell(as_str(col.get("type")) or "string", value, now) if found else None)
    return cells


# -- public API ---------------------------------------------------------------------------------


def column_definitions(info: ResourceInfo, strategies: Strategies | None = None) -> list[dict[str, Any]]:
    """The Table columns of a kind, wide (priority 1) columns included."""
    return _strategies(strategies).for_info(info).columns(info)


def row_cells(info: ResourceInfo, obj: Obj, now: datetime, strategies: Strategies | None = None) -> list[Any]:
    """The cells of one object's row, matching `column_definitions(info)`."""
    return _strategies(strategies).for_info(info).row_cells(info, obj, now)


def _strategies(given: Strategies | None) -> Strategies:
    if given is not None:
        return given
    from kybernetes.api.kinds import DEFAULT

    return DEFAULT


_INCLUDE_OBJECT = ("None", "Metadata", "Object")


def _row_object(info: ResourceInfo, obj: Obj, include_object: str) -> dict[str, Any] | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        full = dict(obj)
        full.setdefault("apiVersion", info.api_version)
        full.setdefault("kind", info.kind)
        return full
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata") or {}}


def build_table(info: ResourceInfo, objects: list[dict[str, Any]], now: datetime, include_object: str = "Metadata",
                list_meta: dict[str, Any] | None = None, with_columns: bool = True,
                strategies: Strategies | None = None) -> dict[str, Any]:
    """A `meta.k8s.io/v1` Table of `objects`; `with_columns=False` sends `columnDefinitions: null`
    (later watch events). `include_object` is the `includeObject` query parameter."""
    include_object = include_object or "Metadata"
    if include_object not in _INCLUDE_OBJECT:
        raise ApiError.bad_request(f'unrecognized includeObject value: "{include_object}"')
    metadata: dict[str, Any] = {}
    for key in ("resourceVersion", "continue", "remainingItemCount"):
        if list_meta and list_meta.get(key) not in (None, ""):
            metadata[key] = list_meta[key]
    strategy = _strategies(strategies).for_info(info)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": strategy.row_cells(info, obj, now)}
        conditions = strategy.row_conditions(obj)
        if conditions:
            row["conditions"] = conditions
        row_object = _row_object(info, obj, include_object)
        if row_object is not None:
            row["object"] = row_object
        rows.append(row)
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": strategy.columns(info) if with_columns else None,
        "rows": rows,
    }


def now_utc() -> datetime:
    """The clock used for ages; a function so callers and tests can agree on it."""
    return datetime.now(UTC)
