"""Server-side apply and `metadata.managedFields` bookkeeping.

This module owns field ownership: which manager set which field of an object,
the FieldsV1 encoding of those field sets, the merge of an apply
configuration into the live object, apply conflicts, and the ownership
changes caused by ordinary (non-apply) writes. Everything here is a pure
function on JSON-like dicts; storage, defaulting and validation are the
caller's business.

A field set is a `set` of paths. A path is a tuple of FieldsV1 path elements,
kept in their serialised form because that is both hashable and exactly what
goes on the wire:

* `"f:spec"`                         a named field or map key,
* `'k:{"name":"nginx"}'`             an item of an associative list (list-map),
* `'v:"finalizer.example.com"'`      a member of a set list,
* `"i:3"`                            an item of a list addressed by index.

A path in the set means "this node is owned". FieldsV1 writes an owned node
that also has owned descendants with a `".": {}` entry.

The semantics follow structured-merge-diff, the library Kubernetes uses:
lists are atomic unless the schema says `x-kubernetes-list-type: map|set` (or,
for built-in types, a strategic-merge `merge` patch strategy); maps are
granular unless `x-kubernetes-map-type: atomic`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.jsonutil import clone

Path = tuple[str, ...]
FieldSet = set[Path]

APPLY = "Apply"
UPDATE = "Update"
FIELDS_V1 = "FieldsV1"
# Entries of each memo of decoded and encoded field sets. Objects made from one template
# share them; most others (a pod's status names its own IPs) never hit, so a large memo
# mostly held garbage (8,192 entries each cost ~90 MB at 10,000 pods).
MEMO_SIZE = 1024
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"
BEFORE_FIRST_APPLY_MANAGER = "before-first-apply"
ANCIENT_CHANGES_MANAGER = "ancient-changes"
MAX_UPDATE_MANAGERS = 10

_OBJECT_META = {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}

# Kubernetes never records ownership of identity and server-maintained fields.
_STRIPPED: tuple[Path, ...] = (
    ("f:apiVersion",),
    ("f:kind",),
    ("f:metadata", "f:name"),
    ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"),
    ("f:metadata", "f:selfLink"),
    ("f:metadata", "f:uid"),
    ("f:metadata", "f:clusterName"),
    ("f:metadata", "f:generation"),
    ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"),
)

# Server-maintained metadata an apply configuration may carry but must not overwrite.
_SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "generation", "selfLink", "managedFields")

# The published OpenAPI documents a default for these list-map key fields, but
# the JSON schema bundle we navigate drops `default`; without it an applied
# port without `protocol` would not match the defaulted live item.
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}

_MISSING: Any = object()


# -- schema navigation ---------------------------------------------------------------


def _ext(raw: dict[str, Any] | None, name: str) -> Any:
    """An `x-kubernetes-*` extension from the property node or the definition it names."""
    if raw is None:
        return None
    value = raw.get(name)
    if value is None:
        resolved = schemas.resolve(raw)
        if resolved is not None:
            value = resolved.get(name)
    return value


class _Node:
    """What this module asks of one schema node, worked out once per node: every write
    walks its object along the schema, and resolving `$ref`s and reading extensions
    again at each step was most of the cost of recording managedFields. Built-in
    schemas never change; a custom resource's schema is replaced, not edited, when
    its CRD changes."""

    __slots__ = ("raw", "props", "extra", "map_atomic", "is_struct", "required", "list_kind", "list_keys", "items",
                 "_kids", "_extra_node", "_items_node")

    def __init__(self, raw: dict[str, Any] | None) -> None:
        self.raw = raw  # held so that its id() stays this node's for as long as it is cached
        resolved = schemas.resolve(raw)
        props = resolved.get("properties") if resolved is not None else None
        self.props: dict[str, Any] | None = props if isinstance(props, dict) else None
        extra = resolved.get("additionalProperties") if resolved is not None else None
        self.extra: dict[str, Any] | None = extra if isinstance(extra, dict) else None
        self.map_atomic = _ext(raw, "x-kubernetes-map-type") == "atomic"
        self.is_struct = bool(resolved) and self.props is not None
        req = resolved.get("required") if resolved else None
        self.required: tuple[str, ...] = tuple(req) if isinstance(req, list) else ()
        self.list_kind, self.list_keys = list_kind(raw)
        it = resolved.get("items") if resolved is not None else None
        self.items: dict[str, Any] | None = it if isinstance(it, dict) else None
        self._kids: dict[str, _Node] = {}
        self._extra_node: _Node | None = None
        self._items_node: _Node | None = None

    def child(self, key: str) -> dict[str, Any] | None:
        """The unresolved schema of map key `key` (a named property, else additionalProperties)."""
        props = self.props
        if props is not None and key in props:
            return props[key]  # type: ignore[no-any-return]
        return self.extra

    def kid(self, key: str) -> _Node:
        """`_node(self.child(key))`, remembered for named properties (map keys are the
        user's and unbounded, and all share the additionalProperties node)."""
        props = self.props
        if props is not None and key in props:
            node = self._kids.get(key)
            if node is None:
                node = self._kids[key] = _node(props[key])
            return node
        node = self._extra_node
        if node is None:
            node = self._extra_node = _node(self.extra)
        return node

    def items_node(self) -> _Node:
        node = self._items_node
        if node is None:
            node = self._items_node = _node(self.items)
        return node


_NODES: dict[int, _Node] = {}
# Schema nodes of built-in kinds number a few thousand; the bound only matters when
# custom resource schemas keep being replaced.
_MAX_NODES = 50_000


def _node(raw: dict[str, Any] | None) -> _Node:
    node = _NODES.get(id(raw))
    if node is None or node.raw is not raw:
        if len(_NODES) >= _MAX_NODES:
            _NODES.clear()
        node = _NODES[id(raw)] = _Node(raw)
    return node


def _child_schema(raw: dict[str, Any] | None, key: str, path: Path) -> dict[str, Any] | None:
    # Custom resource schemas describe metadata loosely (if at all); the server
    # always treats it as ObjectMeta.
    if not path and key == "metadata":
        return _OBJECT_META
    if raw is None:
        return None
    return _node(raw).child(key)


def _items_schema(raw: dict[str, Any] | None) -> dict[str, Any] | None:
    return _node(raw).items


def _declared(raw: dict[str, Any] | None, key: str, path: Path) -> bool:
    """True if `key` is a named field of a struct (as opposed to a map entry)."""
    if not path and key == "metadata":
        return True
    props = _node(raw).props
    return props is not None and key in props


def _required(raw: dict[str, Any] | None) -> tuple[str, ...]:
    return _node(raw).required


def _map_atomic(raw: dict[str, Any] | None) -> bool:
    return _node(raw).map_atomic


def _list_kind(raw: dict[str, Any] | None) -> tuple[str, list[str]]:
    node = _node(raw)
    return node.list_kind, node.list_keys


def list_kind(raw: dict[str, Any] | None) -> tuple[str, list[str]]:
    """("atomic" | "set" | "map", list-map keys) for a list property node."""
    if raw is None:
        return "atomic", []
    list_type = _ext(raw, "x-kubernetes-list-type")
    if list_type == "map":
        return "map", list(_ext(raw, "x-kubernetes-list-map-keys") or [])
    if list_type in ("set", "atomic"):
        return list_type, []
    # Built-in types without a list-type marker are associative when their
    # strategic merge strategy is `merge`, exactly as Kubernetes converts them.
    merge_key, strategies = schemas.patch_strategy(raw)
    if "merge" in strategies:
        return ("map", [merge_key]) if merge_key else ("set", [])
    return "atomic", []


# -- path elements -------------------------------------------------------------------


def _compact_json(value: Any) -> str:
    # Same text as Go's encoding of list-map keys: compact, keys sorted, UTF-8 kept.
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _item_element(kind: str, keys: list[str], item: Any) -> str:
    if kind == "set":
        return "v:" + _compact_json(item)
    if not isinstance(item, dict):
        raise ValueError("associative list item is not an object")
    key: dict[str, Any] = {}
    for name in keys:
        value = item.get(name)
        if value is None:
            value = _KEY_DEFAULTS.get(name)
        if value is not None:
            key[name] = value
    return "k:" + _compact_json(key)


def _item_matches(element: str, item: Any) -> bool:
    if element.startswith("v:"):
        return item == json.loads(element[2:])
    if element.startswith("k:") and isinstance(item, dict):
        key = json.loads(element[2:])
        return all(item.get(name, _KEY_DEFAULTS.get(name)) == value for name, value in key.items())
    return False


def _go_value(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    return str(value)


def path_string(path: Path) -> str:
    """The human form Kubernetes prints in conflicts: `.spec.containers[name="nginx"].image`."""
    out: list[str] = []
    for element in path:
        prefix, rest = element[:2], element[2:]
        if prefix == "f:":
            out.append("." + rest)
        elif prefix == "k:":
            key = json.loads(rest)
            out.append("[" + ",".join(sorted(f"{k}={_go_value(v)}" for k, v in key.items())) + "]")
        elif prefix == "v:":
            out.append("[=" + _go_value(json.loads(rest)) + "]")
        elif prefix == "i:":
            out.append("[" + rest + "]")
        else:
            out.append(element)
    return "".join(out)


# -- field sets ------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _prefixes_by_length(ignored: tuple[Path, ...]) -> tuple[tuple[int, frozenset[Path]], ...]:
    by_length: dict[int, set[Path]] = {}
    for p in ignored:
        by_length.setdefault(len(p), set()).add(p)
    return tuple((n, frozenset(ps)) for n, ps in sorted(by_length.items()))


def _filter(fields: Iterable[Path], ignored: Iterable[Path]) -> FieldSet:
    """`fields` without the paths at or below any of `ignored`."""
    # One set lookup per prefix length instead of a comparison per ignored path: this
    # runs over every path of every write.
    by_length = _prefixes_by_length(tuple(ignored))
    return {p for p in fields if not any(p[:n] in ps for n, ps in by_length)}


def _collect(value: Any, raw: dict[str, Any] | None, path: Path, out: FieldSet, strict: bool) -> None:
    if isinstance(value, dict):
        if _map_atomic(raw):
            out.add(path)
            return
        for key, child in value.items():
            child_path = path + ("f:" + key,)
            _collect(child, _child_schema(raw, key, path), child_path, out, strict)
            # Like structured-merge-diff: struct fields are owned through their
            # leaves, map entries (and empty or null values) as themselves.
            if child is None or child == {} or not _declared(raw, key, path):
                out.add(child_path)
        return
    if isinstance(value, list):
        kind, keys = _list_kind(raw)
        if kind == "atomic":
            out.add(path)
            return
        item_raw = _items_schema(raw)
        seen: set[str] = set()
        for item in value:
            try:
                element = _item_element(kind, keys, item)
            except ValueError as exc:
                raise _bad_config(path, str(exc)) from None
            if strict and element in seen:
                raise _bad_config(path, "duplicate entries for key " + path_string((element,)))
            seen.add(element)
            _collect(item, item_raw, path + (element,), out, strict)
            out.add(path + (element,))
        return
    out.add(path)


def _bad_config(path: Path, why: str) -> ApiError:
    where = path_string(path) or "."
    return ApiError(422, "Invalid", f"failed to create typed patch object: {where}: {why}")


def fieldset_of(obj: dict[str, Any], schema: dict[str, Any] | None) -> FieldSet:
    """The fields an apply configuration `obj` sets, as structured-merge-diff counts them.

    Identity and server-maintained fields (apiVersion, kind, metadata.name, ...)
    are left out because Kubernetes never records them.
    """
    out: FieldSet = set()
    _collect(obj, schema, (), out, strict=False)
    out.discard(())
    return _filter(out, _STRIPPED)


def to_fieldsv1(fields: Iterable[Path]) -> dict[str, Any]:
    """Encode a field set as a FieldsV1 tree."""
    tree: dict[str, Any] = {}
    members = set(fields)
    members.discard(())
    for path in members:
        node = tree
        for element in path:
            node = node.setdefault(element, {})
    for path in members:
        node = tree
        for element in path:
            node = node[element]
        if node and "." not in node:
            node["."] = {}
    return _sorted_tree(tree)


@functools.lru_cache(maxsize=MEMO_SIZE)
def _fieldsv1_cached(fields: frozenset[Path]) -> dict[str, Any]:
    # Shared between objects: stored managedFields are never modified in place.
    return to_fieldsv1(fields)


def _sorted_tree(node: dict[str, Any]) -> dict[str, Any]:
    # Plain string order puts "." first and then f:, i:, k:, v:, as Kubernetes does.
    return {k: _sorted_tree(node[k]) for k in sorted(node)}


def from_fieldsv1(tree: Any) -> FieldSet:
    """Decode a FieldsV1 tree; raises ValueError on malformed input."""
    out: FieldSet = set()
    if not isinstance(tree, dict):
        raise ValueError("fieldsV1 must be an object")
    _decode(tree, (), out)
    return out


def _decode(node: dict[str, Any], path: Path, out: FieldSet) -> None:
    for element, child in node.items():
        if element == ".":
            if not path:
                raise ValueError('"." is not allowed at the root of fieldsV1')
            out.add(path)
            continue
        _check_element(element)
        if not isinstance(child, dict):
            raise ValueError(f"value of {element!r} must be an object")
        child_path = path + (element,)
        if child:
            _decode(child, child_path, out)
        else:
            out.add(child_path)


def _check_element(element: str) -> None:
    prefix, rest = element[:2], element[2:]
    if prefix == "f:":
        return
    try:
        if prefix == "k:":
            if not isinstance(json.loads(rest), dict):
                raise ValueError
            return
        if prefix == "v:":
            json.loads(rest)
            return
        if prefix == "i:":
            int(rest)
            return
    except ValueError:
        raise ValueError(f"invalid path element {element!r}") from None
    raise ValueError(f"unknown path element {element!r}")


# -- managedFields entries -------------------------------------------------------------


@dataclass
class _Entry:
    manager: str
    operation: str
    api_version: str
    subresource: str = ""
    time: str | None = None
    fields: FieldSet = field(default_factory=set)
    # The fields as decoded, frozen: an entry a write leaves alone encodes from it without
    # freezing (and hashing) its set again.
    decoded: frozenset[Path] | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> tuple[str, str, str, str]:
        # Appliers keep one entry across API versions; updaters get one per version.
        version = self.api_version if self.operation == UPDATE else ""
        return (self.manager, self.operation, self.subresource, version)

    def describe(self) -> str:
        text = json.dumps(self.manager, ensure_ascii=False)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource, ensure_ascii=False)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version}"
        return text

    def identifier(self) -> str:
        # Go orders conflicting managers by their JSON identifier; mirror it.
        ident: dict[str, str] = {"manager": self.manager, "operation": self.operation}
        if self.operation == UPDATE:
            ident["apiVersion"] = self.api_version
        if self.subresource:
            ident["subresource"] = self.subresource
        return json.dumps(ident, separators=(",", ":"))

    def encode(self) -> dict[str, Any]:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = FIELDS_V1
        decoded = self.decoded
        out["fieldsV1"] = _fieldsv1_cached(
            decoded if decoded is not None and self.fields == decoded else frozenset(self.fields))
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def _decode_entries(raw: Any) -> list[_Entry]:
    """Decode managedFields; a malformed list counts as none, as in Kubernetes."""
    if not isinstance(raw, list) or not raw:
        return []
    try:
        decoded = _decode_entries_cached(orjson.dumps(raw))
    except TypeError:
        return []
    return [_Entry(m, op, av, sub, t, set(fields), fields) for m, op, av, sub, t, fields in decoded]


@functools.lru_cache(maxsize=MEMO_SIZE)
def _decode_entries_cached(raw_json: bytes) -> tuple[tuple[str, str, str, str, str | None, frozenset[Path]], ...]:
    # Every write re-reads the managedFields it stored last time; most objects carry
    # the same few entries, so their decoded field sets are memoised by content.
    raw = orjson.loads(raw_json)
    try:
        validate_managed_fields(raw)
    except ApiError:
        return ()
    merged: dict[tuple[str, str, str, str], _Entry] = {}
    for item in raw:
        entry = _Entry(
            manager=item.get("manager") or "",
            operation=item["operation"],
            api_version=item.get("apiVersion") or "",
            subresource=item.get("subresource") or "",
            time=item.get("time"),
            fields=from_fieldsv1(item.get("fieldsV1") or {}),
        )
        if entry.key in merged:
            merged[entry.key].fields |= entry.fields
        else:
            merged[entry.key] = entry
    return tuple((e.manager, e.operation, e.api_version, e.subresource, e.time, frozenset(e.fields))
                 for e in merged.values())


def _sort_key(entry: _Entry) -> tuple[str, str, str, str, str]:
    return (entry.operation, entry.time or "", entry.manager, entry.api_version, entry.subresource)


def _encode_entries(entries: Iterable[_Entry]) -> list[dict[str, Any]]:
    kept = [e for e in entries if e.fields]
    return [e.encode() for e in sorted(_cap_updaters(kept), key=_sort_key)]


def _cap_updaters(entries: list[_Entry]) -> list[_Entry]:
    """Fold the oldest Update entries into `ancient-changes` beyond the cap, like Kubernetes."""
    updaters = sorted((e for e in entries if e.operation == UPDATE), key=lambda e: e.time or "")
    if len(updaters) <= MAX_UPDATE_MANAGERS:
        return entries
    oldest = updaters[: len(updaters) - MAX_UPDATE_MANAGERS + 1]
    bucket = _Entry(ANCIENT_CHANGES_MANAGER, UPDATE, oldest[-1].api_version, time=oldest[-1].time)
    for e in oldest:
        bucket.fields |= e.fields
    folded = {id(e) for e in oldest}
    return [e for e in entries if id(e) not in folded] + [bucket]


def validate_managed_fields(entries: Any) -> None:
    """Reject a managedFields list a client sent that Kubernetes would refuse."""
    if not isinstance(entries, list):
        raise ApiError.bad_request("metadata.managedFields: Invalid value: must be a list")
    problems: list[str] = []
    for i, entry in enumerate(entries):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: Invalid value: must be an object")
            continue
        operation = entry.get("operation")
        if operation not in (APPLY, UPDATE):
            problems.append(f'{where}.operation: Invalid value: "{operation}": must be `Apply` or `Update`')
        fields_type = entry.get("fieldsType")
        if fields_type not in (None, "", FIELDS_V1):
            problems.append(f'{where}.fieldsType: Invalid value: "{fields_type}": must be `FieldsV1`')
        manager = entry.get("manager", "")
        if not isinstance(manager, str):
            problems.append(f"{where}.manager: Invalid value: must be a string")
        elif len(manager.encode()) > 128:
            problems.append(f"{where}.manager: Too long: may not be more than 128 bytes")
        elif any(not ch.isprintable() for ch in manager):
            problems.append(f"{where}.manager: Invalid value: must only contain printable characters")
        subresource = entry.get("subresource", "")
        if not isinstance(subresource, str) or len(subresource) > 256:
            problems.append(f"{where}.subresource: Invalid value: must be a string of at most 256 characters")
        for name in ("apiVersion", "time"):
            if entry.get(name) is not None and not isinstance(entry.get(name), str):
                problems.append(f"{where}.{name}: Invalid value: must be a string")
        try:
            from_fieldsv1(entry.get("fieldsV1") or {})
        except ValueError as exc:
            problems.append(f"{where}.fieldsV1: Invalid value: {exc}")
    if problems:
        raise ApiError.bad_request("error decoding managed fields: " + "; ".join(problems))


def _is_reset(entries: Any) -> bool:
    # `managedFields: [{}]` is the documented way to wipe ownership.
    return isinstance(entries, list) and len(entries) == 1 and entries[0] == {}


# -- comparison ------------------------------------------------------------------------


@dataclass
class _Comparison:
    added: FieldSet = field(default_factory=set)
    modified: FieldSet = field(default_factory=set)
    removed: FieldSet = field(default_factory=set)

    def changed(self) -> FieldSet:
        return self.added | self.modified

    def filtered(self, ignored: Iterable[Path]) -> _Comparison:
        ignored = tuple(ignored)
        return _Comparison(_filter(self.added, ignored), _filter(self.modified, ignored),
                           _filter(self.removed, ignored))


def _shape(value: Any, raw: dict[str, Any] | None) -> str:
    if isinstance(value, dict) and not _map_atomic(raw):
        return "map"
    if isinstance(value, list) and _node(raw).list_kind != "atomic":
        return "list"
    return "leaf"


def _compare(old: Any, new: Any, raw: dict[str, Any] | None, path: Path, cmp: _Comparison,
             parent_present: bool, required: bool = False) -> None:
    """Record what changed from `old` to `new`.

    Kubernetes diffs typed Go objects, where a struct field (and a required,
    non-omitempty list) exists, empty, whenever its parent exists; such a node
    is never "added" itself. Our stored JSON may omit it, so when the parent
    existed on the old side a missing struct counts as present-empty. A new
    list item has no such parent, so everything inside it is new.
    """
    if old is None:
        old = _MISSING
    if new is None:
        new = _MISSING
    if old is _MISSING and new is _MISSING:
        return
    if old is not _MISSING and old == new:
        # Most of an object is untouched by a write; an equal subtree has no changes
        # (the C-level comparison is far cheaper than walking it).
        return
    if not path and old is _MISSING:
        old = {}
    if old is _MISSING:
        # A new subtree (most of a pod's first status, say): everything in it is added,
        # which `_created` finds without the comparison's bookkeeping.
        _created(new, _node(raw), path, cmp.added, parent_present, frozenset(), 0, required)
        return
    shape_old = _shape(old, raw) if old is not _MISSING else None
    shape_new = _shape(new, raw) if new is not _MISSING else None
    if shape_old and shape_new and shape_old != shape_new:
        _compare(old, _MISSING, raw, path, cmp, parent_present)
        _compare(_MISSING, new, raw, path, cmp, parent_present)
        cmp.added.discard(path)
        cmp.removed.discard(path)
        cmp.modified.add(path)
        return
    shape = shape_old or shape_new
    if shape == "map" and not (old in (_MISSING, {}) and new in (_MISSING, {})):
        _mark_presence(old, new, path, cmp)
        old_map = old if old is not _MISSING else {}
        new_map = new if new is not _MISSING else {}
        present = old is not _MISSING
        required_keys = _required(raw) if present else ()
        for key in list(old_map) + [k for k in new_map if k not in old_map]:
            _compare(old_map.get(key, _MISSING), new_map.get(key, _MISSING),
                     _child_schema(raw, key, path), path + ("f:" + key,), cmp, present, key in required_keys)
        return
    if shape == "list":
        _mark_presence(old, new, path, cmp)
        kind, keys = _list_kind(raw)
        item_raw = _items_schema(raw)
        old_items = _index_items(old, kind, keys)
        new_items = _index_items(new, kind, keys)
        for element in list(old_items) + [e for e in new_items if e not in old_items]:
            _compare(old_items.get(element, _MISSING), new_items.get(element, _MISSING), item_raw,
                     path + (element,), cmp, False)
        return
    if not path:
        return
    if old is _MISSING:
        cmp.added.add(path)
    elif new is _MISSING:
        cmp.removed.add(path)
    elif old != new:
        cmp.modified.add(path)


def _created(new: Any, node: _Node, path: Path, out: FieldSet, parent_present: bool,
             skip: frozenset[Path], skip_depth: int, required: bool = False) -> None:
    """Add to `out` what `_compare(_MISSING, new, ...)` marks added or modified: the fields
    a create sets, less those at or below a path in `skip` (no longer than `skip_depth`).
    Every create takes this road, so it walks `new` once, without the comparison's
    bookkeeping and without entering skipped subtrees; the rules are `_compare`'s for an
    absent old side."""
    if new is None or (len(path) <= skip_depth and path in skip):
        return
    if isinstance(new, dict) and not node.map_atomic:
        if not new:
            if path:
                out.add(path)  # an empty map is owned as a leaf
            return
        # The root, and a struct whose parent exists, count as present-empty before:
        # only their leaves are new.
        present = not path or (parent_present and node.is_struct)
        if not present:
            out.add(path)
        required_keys = node.required if present else ()
        for key, child in new.items():
            kid = _node(_OBJECT_META) if not path and key == "metadata" else node.kid(key)
            _created(child, kid, path + ("f:" + key,), out, present, skip, skip_depth, key in required_keys)
        return
    if not path:
        return
    # A required list of a present parent counts as present-empty before.
    was_empty_list = required and parent_present and isinstance(new, list)
    if isinstance(new, list) and node.list_kind != "atomic":
        if not was_empty_list:
            out.add(path)
        item_node = node.items_node()
        for element, item in _index_items(new, node.list_kind, node.list_keys).items():
            _created(item, item_node, path + (element,), out, False, skip, skip_depth)
        return
    if not was_empty_list or new != []:
        out.add(path)


def _created_root(new: dict[str, Any], node: _Node, out: FieldSet, skip: frozenset[Path], skip_depth: int) -> None:
    """`_created` of a whole new object, its `spec` answered from `_SPEC_FIELDS` when an
    equal spec was created before: a template's objects (a ReplicaSet's pods) share their
    spec, and its walk was most of a create's field bookkeeping."""
    if not new or node.map_atomic or () in skip:
        _created(new, node, (), out, True, skip, skip_depth)
        return
    required = node.required
    for key, child in new.items():
        kid = _node(_OBJECT_META) if key == "metadata" else node.kid(key)
        path = ("f:" + key,)
        if key == "spec" and type(child) is dict and child:
            out |= _spec_fields(child, kid, path, skip, skip_depth, key in required)
        else:
            _created(child, kid, path, out, True, skip, skip_depth, key in required)


# Field sets of created specs by (schema node, skipped paths, the spec's JSON); bounded
# like the other memos here, and only for specs of ordinary size.
_SPEC_FIELDS: dict[tuple[int, frozenset[Path], bool, bytes], tuple[_Node, frozenset[Path]]] = {}
_SPEC_FIELDS_MAX_BYTES = 65536


def _spec_fields(spec: dict[str, Any], node: _Node, path: Path, skip: frozenset[Path], skip_depth: int,
                 required: bool) -> frozenset[Path] | FieldSet:
    try:
        raw = orjson.dumps(spec)
    except TypeError:
        raw = b""
    if not raw or len(raw) > _SPEC_FIELDS_MAX_BYTES:
        fresh: FieldSet = set()
        _created(spec, node, path, fresh, True, skip, skip_depth, required)
        return fresh
    key = (id(node), skip, required, raw)
    hit = _SPEC_FIELDS.get(key)
    if hit is not None and hit[0] is node:
        return hit[1]
    found: FieldSet = set()
    _created(spec, node, path, found, True, skip, skip_depth, required)
    if len(_SPEC_FIELDS) >= MEMO_SIZE:
        _SPEC_FIELDS.clear()
    frozen = frozenset(found)
    _SPEC_FIELDS[key] = (node, frozen)
    return frozen


def _mark_presence(old: Any, new: Any, path: Path, cmp: _Comparison) -> None:
    if not path:
        return
    if old is _MISSING:
        cmp.added.add(path)
    elif new is _MISSING:
        cmp.removed.add(path)


def _index_items(items: Any, kind: str, keys: list[str]) -> dict[str, Any]:
    if items is _MISSING:
        return {}
    out: dict[str, Any] = {}
    for item in items:
        try:
            out[_item_element(kind, keys, item)] = item
        except ValueError:
            continue
    return out


def _compare_objects(old: dict[str, Any] | None, new: dict[str, Any], schema: dict[str, Any] | None,
                     ignored: Iterable[Path]) -> _Comparison:
    if old is None:
        added: FieldSet = set()
        skip = frozenset(ignored)
        _created_root(_without_managed_fields(new), _node(schema), added, skip, max(map(len, skip), default=0))
        return _Comparison(added)
    cmp = _Comparison()
    _compare(_without_managed_fields(old) if old is not None else _MISSING,
             _without_managed_fields(new), schema, (), cmp, parent_present=True)
    return cmp.filtered(ignored)


def _without_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict) or "managedFields" not in meta:
        return obj
    meta = {k: v for k, v in meta.items() if k != "managedFields"}
    return {**obj, "metadata": meta}


# -- merge and prune -------------------------------------------------------------------


def _merge(live: Any, config: Any, raw: dict[str, Any] | None, path: Path) -> Any:
    if isinstance(live, dict) and isinstance(config, dict) and not _map_atomic(raw):
        out = dict(live)
        for key, value in config.items():
            if key in live:
                out[key] = _merge(live[key], value, _child_schema(raw, key, path), path + ("f:" + key,))
            else:
                out[key] = clone(value)
        return out
    if isinstance(live, list) and isinstance(config, list):
        kind, keys = _list_kind(raw)
        if kind != "atomic":
            return _merge_list(live, config, kind, keys, _items_schema(raw), path)
    return clone(config)


def _merge_list(live: list[Any], config: list[Any], kind: str, keys: list[str],
                item_raw: dict[str, Any] | None, path: Path) -> list[Any]:
    """Merge associative lists keeping both sides' relative order.

    Live-only items stay where they were; shared and new items follow the
    configuration's order, so an applier can reorder the items it owns.
    """
    config_elements = [_item_element(kind, keys, item) for item in config]
    config_pos = {element: i for i, element in enumerate(config_elements)}
    live_by_element: dict[str, Any] = {}
    for item in live:
        try:
            live_by_element.setdefault(_item_element(kind, keys, item), item)
        except ValueError:
            continue
    out: list[Any] = []
    emitted: set[str] = set()
    next_config = 0

    def emit_config_until(stop: int) -> None:
        nonlocal next_config
        while next_config <= stop:
            element = config_elements[next_config]
            if element not in emitted:
                emitted.add(element)
                item = config[next_config]
                if element in live_by_element:
                    item = _merge(live_by_element[element], item, item_raw, path + (element,))
                else:
                    item = clone(item)
                out.append(item)
            next_config += 1

    for item in live:
        try:
            element = _item_element(kind, keys, item)
        except ValueError:
            out.append(item)
            continue
        if element not in config_pos:
            out.append(item)
        elif element not in emitted:
            emit_config_until(config_pos[element])
    emit_config_until(len(config) - 1)
    return out


def _locate(obj: Any, path: Path) -> tuple[Any, Any] | None:
    """(container, key-or-index) of the node at `path`, or None if it does not exist."""
    parent: Any = None
    slot: Any = None
    node = obj
    for element in path:
        parent = node
        if element.startswith("f:"):
            if not isinstance(node, dict) or element[2:] not in node:
                return None
            slot = element[2:]
        elif element.startswith("i:"):
            index = int(element[2:])
            if not isinstance(node, list) or not 0 <= index < len(node):
                return None
            slot = index
        else:
            if not isinstance(node, list):
                return None
            slot = next((i for i, item in enumerate(node) if _item_matches(element, item)), None)
            if slot is None:
                return None
        node = parent[slot]
    return (parent, slot) if path else None


def _is_key_field(path: Path) -> bool:
    if len(path) < 2 or not path[-1].startswith("f:") or not path[-2].startswith("k:"):
        return False
    return path[-1][2:] in json.loads(path[-2][2:])


def _prune(obj: dict[str, Any], candidates: FieldSet, kept: FieldSet) -> None:
    """Delete the fields an applier gave up that nobody else owns (in place).

    A node stays if anyone still owns something beneath it, and a list item
    keeps its key fields for as long as it stays.
    """
    kept_prefixes = {p[:i] for p in kept for i in range(1, len(p))}
    for path in sorted(candidates, key=len):
        if path in kept_prefixes or _is_key_field(path):
            continue
        located = _locate(obj, path)
        if located is None:
            continue
        parent, slot = located
        del parent[slot]
        _drop_emptied_ancestors(obj, path, kept)


def _drop_emptied_ancestors(obj: dict[str, Any], path: Path, kept: FieldSet) -> None:
    for depth in range(len(path) - 1, 0, -1):
        ancestor = path[:depth]
        if ancestor in kept or not ancestor[-1].startswith("f:") or ancestor == ("f:metadata",):
            return
        located = _locate(obj, ancestor)
        if located is None:
            return
        parent, slot = located
        if parent[slot] not in ({}, []):
            return
        del parent[slot]


# -- apply -------------------------------------------------------------------------------


def _scope(subresource: str, has_status: bool) -> tuple[Path, ...]:
    """Paths a write through `subresource` may not touch, as the reset fields of a strategy."""
    if subresource == "status":
        return ("f:spec",),
    if subresource == "" and has_status:
        return ("f:status",),
    return ()


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _apply_config(applied: dict[str, Any], subresource: str, has_status: bool) -> dict[str, Any]:
    if not isinstance(applied, dict):
        raise ApiError.bad_request("the apply configuration must be an object")
    meta = applied.get("metadata")
    if isinstance(meta, dict) and meta.get("managedFields"):
        raise ApiError.bad_request("metadata.managedFields must be nil")
    config = _strip_nulls(applied)
    if isinstance(config.get("metadata"), dict):
        config["metadata"] = {k: v for k, v in config["metadata"].items() if k not in _SERVER_METADATA}
    if subresource == "status":
        keep = ("apiVersion", "kind", "metadata", "status")
        config = {k: v for k, v in config.items() if k in keep}
        if isinstance(config.get("metadata"), dict):
            config["metadata"] = {k: v for k, v in config["metadata"].items() if k in ("name", "namespace")}
    elif subresource == "" and has_status:
        config.pop("status", None)
    return config


def apply(live: dict[str, Any] | None, applied: dict[str, Any], manager: str, force: bool,
          schema: dict[str, Any] | None, api_version: str, now: str, subresource: str = "",
          *, has_status: bool = True) -> dict[str, Any]:
    """Server-side apply `applied` onto `live` (None: the object does not exist yet).

    Returns the new object with `metadata.managedFields` updated; raises a 409
    `ApiError` on conflicts unless `force`. `has_status` says whether the kind
    has a status subresource (then the main resource never applies `.status`).
    The caller still defaults, validates and stores the result; an unchanged
    result compares equal to `live`.
    """
    if not manager:
        raise ApiError(422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: '
                                       "is required for apply patch")
    ignored = _STRIPPED + _scope(subresource, has_status)
    config = _apply_config(applied, subresource, has_status)
    base = clone(live) if live is not None else {}
    entries = _decode_entries((base.get("metadata") or {}).get("managedFields"))
    if live is not None and not entries:
        # Objects that predate field tracking: someone set those values, so a
        # first apply must not silently take them over.
        entries = _decode_entries(record_update(None, base, BEFORE_FIRST_APPLY_MANAGER, schema, api_version, now,
                                                subresource, has_status=has_status))
    current = _without_managed_fields(base)

    applied_set: FieldSet = set()
    _collect(config, schema, (), applied_set, strict=True)
    applied_set.discard(())
    applied_set = _filter(applied_set, ignored)

    key = _Entry(manager, APPLY, api_version, subresource).key
    mine = next((e for e in entries if e.key == key), None)
    others = [e for e in entries if e.key != key]
    others_owned: FieldSet = set().union(*(e.fields for e in others)) if others else set()

    # Pruning edits in place; work on a copy so `current` stays the "before" side.
    merged = _merge(clone(current), config, schema, ())
    if mine is not None:
        _prune(merged, mine.fields - applied_set - others_owned, applied_set | others_owned)

    if live is None:
        # A create through apply starts from nothing: only the configuration's
        # own fields exist, so nothing can conflict.
        cmp = _Comparison()
    else:
        cmp = _compare_objects(current, merged, schema, ignored)
    conflicts = {id(e): e.fields & cmp.changed() for e in others}
    conflicts = {k: v for k, v in conflicts.items() if v}
    if conflicts and not force and manager == "kubectl" and subresource == "":
        # kubectl switching an object from client-side to server-side apply
        # must not trip over the client-side manager's fields while the live
        # object still matches what kubectl last applied there.
        taken: FieldSet = set().union(*conflicts.values())
        force = _last_applied_allows(current, taken, schema, ignored)
    if conflicts and not force:
        raise _conflict_error([(e, p) for e in others for p in conflicts.get(id(e), ())])
    for e in others:
        e.fields = (e.fields - conflicts.get(id(e), set())) - cmp.removed

    annotations = (merged.get("metadata") or {}).get("annotations") or {}
    if LAST_APPLIED_ANNOTATION in annotations and manager == "kubectl" and subresource == "":
        # Kubernetes keeps a client-side-apply annotation in step with kubectl's
        # server-side applies so a later client-side apply sees the same intent.
        annotations[LAST_APPLIED_ANNOTATION] = _last_applied(applied)

    if mine is None:
        mine = _Entry(manager, APPLY, api_version, subresource)
        entries.append(mine)
    changed = merged != current or mine.fields != applied_set or mine.time is None
    mine.fields = applied_set
    mine.api_version = api_version
    if changed:
        mine.time = now

    encoded = _encode_entries(entries)
    if encoded == (base.get("metadata") or {}).get("managedFields") and merged == current:
        return base
    meta = merged.setdefault("metadata", {})
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)
    return merged


def _last_applied_allows(live: dict[str, Any], conflicting: FieldSet, schema: dict[str, Any] | None,
                         ignored: tuple[Path, ...]) -> bool:
    text = ((live.get("metadata") or {}).get("annotations") or {}).get(LAST_APPLIED_ANNOTATION)
    if not text:
        return False
    try:
        last = json.loads(text)
    except ValueError:
        return False
    if not isinstance(last, dict):
        return False
    last = _strip_nulls(last)
    last_set: FieldSet = set()
    try:
        _collect(last, schema, (), last_set, strict=False)
    except ApiError:
        return False
    if not conflicting <= _filter(last_set, ignored):
        return False
    # The annotation only vouches for the fields while live still agrees with it.
    return _merge(live, last, schema, ()) == live


def _last_applied(applied: dict[str, Any]) -> str:
    obj = clone(applied)
    annotations = (obj.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        annotations.pop(LAST_APPLIED_ANNOTATION, None)
    # Byte-for-byte what kubectl itself writes (Go encoder: sorted keys, HTML
    # escapes, trailing newline), so kubectl's own follow-up apply of the
    # annotation finds the same value and does not conflict.
    text = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text + "\n"


def _conflict_error(conflicts: list[tuple[_Entry, Path]]) -> ApiError:
    conflicts = sorted(conflicts, key=lambda c: (c[0].identifier(), c[1]))
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {e.describe()}",
               "field": path_string(p)} for e, p in conflicts]
    if len(conflicts) == 1:
        entry, path = conflicts[0]
        message = f"Apply failed with 1 conflict: conflict with {entry.describe()}: {path_string(path)}"
    else:
        lines: list[str] = []
        last: str | None = None
        for entry, path in conflicts:
            if entry.identifier() != last:
                last = entry.identifier()
                lines.append(f"conflicts with {entry.describe()}:")
            lines.append(f"- {path_string(path)}")
        message = f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)
    return ApiError(409, "Conflict", message, {"causes": causes})


# -- non-apply writes ------------------------------------------------------------------


def record_update(old: dict[str, Any] | None, new: dict[str, Any], manager: str,
                  schema: dict[str, Any] | None, api_version: str, now: str, subresource: str = "",
                  *, has_status: bool = True) -> list[dict[str, Any]]:
    """managedFields after a create/update/patch by `manager` turned `old` into `new`.

    Fields this write added or changed become `manager`'s (operation Update) and
    leave every other manager; removed fields leave everyone. Ownership starts
    from `new`'s managedFields when the client sent valid ones (how kubectl
    rewrites them), else from `old`'s. An empty result means: omit the field.
    """
    sent = (new.get("metadata") or {}).get("managedFields")
    if _is_reset(sent):
        entries: list[_Entry] = []
    else:
        entries = _decode_entries(sent)
        if not entries and old is not None:
            entries = _decode_entries((old.get("metadata") or {}).get("managedFields"))

    ignored = _STRIPPED + _scope(subresource, has_status)
    cmp = _compare_objects(old, new, schema, ignored)
    gained = cmp.changed()
    key = _Entry(manager, UPDATE, api_version, subresource).key
    for e in entries:
        if e.key != key:
            e.fields -= gained
        e.fields -= cmp.removed
    if gained:
        mine = next((e for e in entries if e.key == key), None)
        if mine is None:
            mine = _Entry(manager, UPDATE, api_version, subresource)
            entries.append(mine)
        mine.fields |= gained
        mine.time = now
    return _encode_entries(entries)

