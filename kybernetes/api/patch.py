"""The non-apply PATCH types of the Kubernetes API, as pure functions on dicts.

* `json_merge_patch`: RFC 7386 (`application/merge-patch+json`).
* `json_patch`: RFC 6902 (`application/json-patch+json`), as lenient as the real
  server about `replace` on a missing object member.
* `strategic_merge_patch`: Kubernetes strategic merge patch
  (`application/strategic-merge-patch+json`), driven by the patch metadata
  (`x-kubernetes-patch-merge-key` / `-strategy`) of the kind's schema.
* `patch_for_content_type`: which of the above (or server-side apply) a
  PATCH request's Content-Type selects.

None of the functions mutate their arguments; every result is a fresh object
that shares no containers with the inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from typing import Any

from kybernetes.api import schemas
from kybernetes.api.errors import ApiError
from kybernetes.api.jsonutil import clone

__all__ = [
    "json_merge_patch",
    "json_patch",
    "strategic_merge_patch",
    "patch_for_content_type",
]

# -- Content-Type dispatch ---------------------------------------------------------

_PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


def patch_for_content_type(content_type: str) -> str:
    """"json", "merge", "strategic" or "apply" for a PATCH Content-Type; 415 otherwise."""
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    kind = _PATCH_TYPES.get(media_type)
    if kind is None:
        raise ApiError.unsupported_media_type(content_type)
    return kind


# -- RFC 7386 JSON merge patch -----------------------------------------------------


def json_merge_patch(original: dict, patch: dict) -> dict:
    """Apply an RFC 7386 merge patch: objects merge, null deletes, arrays are replaced."""
    if not isinstance(patch, dict):
        raise ApiError.bad_request("merge patch body must be a JSON object")
    base = original if isinstance(original, dict) else {}
    return _merge_object(base, patch)


def _merge_object(target: dict, patch: dict) -> dict:
    result = clone(target)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = _merge_object(result[key], value)
        else:
            result[key] = _without_nulls(value)
    return result


def _without_nulls(value: Any) -> Any:
    """A copy of a newly added value with null members dropped.

    A null in a merge patch means "delete"; where there is nothing to delete it
    must not end up stored as a literal null (the real server behaves the same).
    Nulls that are array elements are data, not deletions, and stay.
    """
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


# -- RFC 6902 JSON patch -----------------------------------------------------------

_INVALID_MESSAGE = "the server rejected our request due to an error in our request"
_MISSING = object()


def _invalid_patch(why: str) -> ApiError:
    # The real server wraps json-patch application failures in a generic 422
    # whose only detail is the library's message.
    return ApiError(422, "Invalid", _INVALID_MESSAGE,
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": why}]})


def json_patch(original: dict, ops: list) -> dict:
    """Apply an RFC 6902 patch.

    `replace` of a missing object member acts as `add`, like the real server
    (`kubectl rollout undo` relies on it for `/metadata/annotations`).
    """
    _check_ops_shape(ops)
    doc: Any = clone(original)
    for index, op in enumerate(ops):
        try:
            doc = _apply_op(doc, op)
        except _PointerError as exc:
            raise _invalid_patch(f"operation {index} ({op['op']} {op['path']}): {exc}") from None
    if not isinstance(doc, dict):
        raise _invalid_patch("the patched document is not a JSON object")
    return doc


def _check_ops_shape(ops: Any) -> None:
    if not isinstance(ops, list):
        raise ApiError.bad_request("json patch must be a JSON array of operations")
    for index, op in enumerate(ops):
        if not isinstance(op, dict):
            raise ApiError.bad_request(f"json patch operation {index} is not a JSON object")
        if not isinstance(op.get("op"), str):
            raise ApiError.bad_request(f"json patch operation {index} has no \"op\"")
        if not isinstance(op.get("path"), str):
            raise ApiError.bad_request(f"json patch operation {index} has no \"path\"")


class _PointerError(Exception):
    """A json-patch operation that cannot be applied to the document."""


def _parse_pointer(pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _PointerError(f"invalid JSON pointer {pointer!r}")
    # "~1" must be decoded before "~0" so that "~01" means the literal "~1".
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _array_index(token: str, length: int, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return length
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise _PointerError(f"invalid array index {token!r}")
    index = int(token)
    limit = length if allow_end else length - 1
    if index > limit:
        raise _PointerError(f"array index {index} out of bounds")
    return index


def _resolve(doc: Any, tokens: list[str]) -> Any:
    node = doc
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                raise _PointerError(f"member {token!r} not found")
            node = node[token]
        elif isinstance(node, list):
            node = node[_array_index(token, len(node), allow_end=False)]
        else:
            raise _PointerError(f"cannot descend into a scalar at {token!r}")
    return node


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True), value)
    else:
        raise _PointerError("the parent of the target is not a container")
    return doc


def _remove(doc: Any, tokens: list[str]) -> tuple[Any, Any]:
    """(new document, removed value)."""
    if not tokens:
        raise _PointerError("cannot remove the whole document")
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PointerError(f"member {last!r} not found")
        return doc, parent.pop(last)
    if isinstance(parent, list):
        return doc, parent.pop(_array_index(last, len(parent), allow_end=False))
    raise _PointerError("the parent of the target is not a container")


def _replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _resolve(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent[_array_index(last, len(parent), allow_end=False)] = value
    else:
        raise _PointerError("the parent of the target is not a container")
    return doc


def _value_of(op: dict) -> Any:
    if "value" not in op:
        raise _PointerError("missing \"value\"")
    return clone(op["value"])


def _from_of(op: dict) -> list[str]:
    source = op.get("from")
    if not isinstance(source, str):
        raise _PointerError("missing \"from\"")
    return _parse_pointer(source)


def _apply_op(doc: Any, op: dict) -> Any:
    kind = op["op"]
    tokens = _parse_pointer(op["path"])
    if kind == "add":
        return _add(doc, tokens, _value_of(op))
    if kind == "remove":
        return _remove(doc, tokens)[0]
    if kind == "replace":
        return _replace(doc, tokens, _value_of(op))
    if kind == "move":
        source = _from_of(op)
        if tokens[:len(source)] == source and len(tokens) > len(source):
            raise _PointerError("cannot move a value into one of its own children")
        if tokens == source:
            _resolve(doc, source)
            return doc
        doc, value = _remove(doc, source)
        return _add(doc, tokens, value)
    if kind == "copy":
        value = clone(_resolve(doc, _from_of(op)))
        return _add(doc, tokens, value)
    if kind == "test":
        expected = op.get("value", _MISSING)
        if expected is _MISSING:
            raise _PointerError("missing \"value\"")
        if not _json_equal(_resolve(doc, tokens), expected):
            raise _PointerError("testing value failed")
        return doc
    raise _PointerError(f"unsupported operation {kind!r}")


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of JSON values: unlike Python `==`, true is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


# -- Strategic merge patch ---------------------------------------------------------

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_FROM = "$deleteFromPrimitiveList/"


class _Deleted:
    """Result of merging a map whose patch says `$patch: delete`."""


_DELETED = _Deleted()


def strategic_merge_patch(original: dict, patch: dict, schema: dict | None) -> dict:
    """Apply a Kubernetes strategic merge patch.

    `schema` is the kind's schema node (see `kybernetes.api.schemas`); with None
    every list is replaced, as in a JSON merge patch, but directives are still
    honoured and never end up in the result.
    """
    if not isinstance(patch, dict):
        raise ApiError.bad_request("strategic merge patch body must be a JSON object")
    base = clone(original) if isinstance(original, dict) else {}
    merged = _smp_map(base, clone(patch), schema)
    return {} if merged is _DELETED else merged


def _field_meta(schema: dict | None, key: str) -> tuple[dict | None, str | None, list[str]]:
    """(resolved schema, merge key, strategies) of field `key` of object node `schema`."""
    raw = schemas.raw_child(schema, key)
    merge_key, strategies = schemas.patch_strategy(raw)
    return schemas.resolve(raw), merge_key, strategies


def _smp_map(original: dict, patch: dict, schema: dict | None) -> dict | _Deleted:
    """Merge `patch` into `original`; both are owned copies and may be consumed."""
    if _PATCH in patch:
        directive = patch.pop(_PATCH)
        if directive == "replace":
            return _smp_map({}, patch, schema)
        if directive == "delete":
            return _DELETED
        raise ApiError.bad_request(f"Unknown patch type: {directive}")

    _apply_retain_keys(original, patch)
    _apply_element_orders(original, patch, schema)

    for key, value in patch.items():
        if key.startswith(_DELETE_FROM):
            _delete_from_primitive_list(original, key, value)
            continue
        if value is None:
            original.pop(key, None)
            continue
        field_schema, merge_key, strategies = _field_meta(schema, key)
        current = original.get(key, _MISSING)
        if isinstance(value, dict) and isinstance(current, dict) and "replace" not in strategies:
            merged = _smp_map(current, value, field_schema)
        elif isinstance(value, list) and isinstance(current, list):
            merged = _smp_list(current, value, field_schema, merge_key, strategies)
        else:
            merged = _fresh(value, field_schema, merge_key, strategies)
        if merged is _DELETED:
            original.pop(key, None)
        else:
            original[key] = merged
    return original


def _fresh(value: Any, schema: dict | None, merge_key: str | None, strategies: list[str]) -> Any:
    """A patch value that replaces (or creates) a field: directives processed away
    by merging it into an empty value of its own type."""
    if isinstance(value, dict):
        return _smp_map({}, value, schema)
    if isinstance(value, list):
        return _smp_list([], value, schema, merge_key, strategies)
    return value


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if _RETAIN_KEYS not in patch:
        return
    retain = patch.pop(_RETAIN_KEYS)
    if not isinstance(retain, list):
        raise ApiError.bad_request("invalid patch format: $retainKeys must be a list")
    keep = {k for k in retain if isinstance(k, str)}
    for key, value in patch.items():
        if value is None or key.startswith((_SET_ORDER, _DELETE_FROM)):
            continue
        if key not in keep:
            raise ApiError.bad_request(
                f"invalid patch format: field {key!r} is set by the patch but not listed in $retainKeys")
    for key in [k for k in original if k not in keep]:
        del original[key]


def _delete_from_primitive_list(original: dict, key: str, value: Any) -> None:
    field = key[len(_DELETE_FROM):]
    if not field or not isinstance(value, list):
        raise ApiError.bad_request(f"invalid patch format: {key} must name a field and hold a list")
    current = original.get(field)
    if isinstance(current, list):
        doomed = {_hkey(v) for v in value}
        original[field] = [v for v in current if _hkey(v) not in doomed]


def _apply_element_orders(original: dict, patch: dict, schema: dict | None) -> None:
    """Merge each list that has a `$setElementOrder/<field>` and put it in that order.

    The ordered fields are taken out of `patch` so the main loop skips them.
    """
    for key in [k for k in patch if k.startswith(_SET_ORDER)]:
        order = patch.pop(key)
        field = key[len(_SET_ORDER):]
        if not field or not isinstance(order, list):
            raise ApiError.bad_request(f"invalid patch format: {key} must name a field and hold a list")
        field_schema, merge_key, strategies = _field_meta(schema, field)
        patch_list = patch.get(field, _MISSING)
        if patch_list is not _MISSING and not isinstance(patch_list, list):
            # A null or scalar for the field itself wins; the order is moot.
            continue
        patch.pop(field, None)
        current = original.get(field)
        current_list = current if isinstance(current, list) else None
        if patch_list is _MISSING and current_list is None:
            continue
        if "merge" not in strategies:
            if patch_list is not _MISSING:
                original[field] = _smp_list([], patch_list, field_schema, merge_key, strategies)
            continue
        key_of = _key_function(merge_key)
        if patch_list is not _MISSING:
            _check_order_agrees(patch_list, order, key_of)
            merged = _smp_list(current_list or [], patch_list, field_schema, merge_key, strategies)
        else:
            merged = current_list or []
        original[field] = _order_by(merged, order, current_list or [], key_of)


def _check_order_agrees(patch_list: list, order: list, key_of: Callable[[Any], Hashable]) -> None:
    """Every non-directive patch element must appear in `order`, in the same relative order."""
    wanted = [key_of(e) for e in patch_list if not (isinstance(e, dict) and _PATCH in e)]
    order_keys = [key_of(e) for e in order]
    position = 0
    for k in wanted:
        while position < len(order_keys) and order_keys[position] != k:
            position += 1
        if position == len(order_keys):
            raise ApiError.bad_request(
                "invalid patch format: the order of the patch list doesn't match its $setElementOrder list")
        position += 1


def _smp_list(original: list, patch: list, schema: dict | None, merge_key: str | None,
              strategies: list[str]) -> list:
    element_schema = schemas.items(schema)
    if "merge" not in strategies:
        return _replacement_list(patch, element_schema)
    has_maps = any(isinstance(e, dict) for e in original) or any(isinstance(e, dict) for e in patch)
    if not has_maps:
        return _merge_primitive_set(original, patch)
    if not merge_key:
        return _replacement_list(patch, element_schema)
    return _merge_keyed_list(original, patch, element_schema, merge_key)


def _replacement_list(patch: list, element_schema: dict | None) -> list:
    """A list replaced wholesale; list directives in it have nothing to act on."""
    result = []
    for element in patch:
        if isinstance(element, dict):
            if _PATCH in element:
                continue
            result.append(_smp_map({}, element, element_schema))
        else:
            result.append(_without_nulls(element))
    return result


def _merge_primitive_set(original: list, patch: list) -> list:
    merged: list = []
    seen: set[Hashable] = set()
    for value in [*original, *patch]:
        key = _hkey(value)
        if key not in seen:
            seen.add(key)
            merged.append(value)
    key_of = _key_function(None)
    return _order_by(merged, patch, original, key_of)


def _merge_keyed_list(original: list, patch: list, element_schema: dict | None, merge_key: str) -> list:
    regular: list[dict] = []
    replace_all = False
    for element in patch:
        if not isinstance(element, dict):
            raise ApiError.bad_request("invalid patch: a merge list mixes objects and scalars")
        directive = element.get(_PATCH, _MISSING)
        if directive is _MISSING:
            if merge_key not in element:
                raise ApiError.bad_request(
                    f"map: {_compact(element)} does not contain declared merge key: {merge_key}")
            regular.append(element)
        elif directive == "delete":
            if merge_key not in element:
                raise ApiError.bad_request(
                    f"map: {_compact(element)} does not contain declared merge key: {merge_key}")
            doomed = _hkey(element[merge_key])
            original = [e for e in original if not _has_key_value(e, merge_key, doomed)]
        elif directive == "replace":
            replace_all = True
        elif directive == "merge":
            raise ApiError.bad_request("merging lists cannot yet be specified in the patch")
        else:
            raise ApiError.bad_request(f"Unknown patch type: {directive}")

    if replace_all:
        return [_smp_map({}, e, element_schema) for e in regular]

    merged = list(original)
    for element in regular:
        wanted = _hkey(element[merge_key])
        for index, existing in enumerate(merged):
            if _has_key_value(existing, merge_key, wanted):
                merged[index] = _smp_map(existing, element, element_schema)
                break
        else:
            merged.append(_smp_map({}, element, element_schema))
    key_of = _key_function(merge_key)
    return _order_by(merged, regular, original, key_of)


def _has_key_value(element: Any, merge_key: str, wanted: Hashable) -> bool:
    return isinstance(element, dict) and merge_key in element and _hkey(element[merge_key]) == wanted


def _order_by(merged: list, preferred: list, server_order: list, key_of: Callable[[Any], Hashable]) -> list:
    """Order a merged list the way the real server does.

    Elements named in `preferred` (the patch list or `$setElementOrder`) follow
    its order; the other ("server-only") elements keep their original order.
    The two runs are then interleaved: a server-only element goes before a
    preferred one only if both existed originally and it came first there, so
    new elements lead and existing ones stay in place.
    """
    preferred_index = _first_indexes(preferred, key_of)
    server_index = _first_indexes(server_order, key_of)
    named = [e for e in merged if key_of(e) in preferred_index]
    others = [e for e in merged if key_of(e) not in preferred_index]
    named.sort(key=lambda e: preferred_index[key_of(e)])
    others.sort(key=lambda e: server_index.get(key_of(e), len(server_index)))

    result = []
    i = j = 0
    while i < len(others) and j < len(named):
        left = server_index.get(key_of(others[i]))
        right = server_index.get(key_of(named[j]))
        if left is not None and right is not None and left < right:
            result.append(others[i])
            i += 1
        else:
            result.append(named[j])
            j += 1
    result.extend(others[i:])
    result.extend(named[j:])
    return result


def _first_indexes(values: list, key_of: Callable[[Any], Hashable]) -> dict[Hashable, int]:
    index: dict[Hashable, int] = {}
    for position, value in enumerate(values):
        index.setdefault(key_of(value), position)
    return index


_NO_KEY = ("missing-merge-key",)


def _key_function(merge_key: str | None) -> Callable[[Any], Hashable]:
    """Identity of a list element: its merge key value, or the value itself for scalars."""
    if not merge_key:
        return _hkey

    def key_of(element: Any) -> Hashable:
        if isinstance(element, dict) and merge_key in element:
            return _hkey(element[merge_key])
        # Elements without the key never match anything, not even each other.
        return (_NO_KEY, id(element))

    return key_of


def _hkey(value: Any) -> Hashable:
    """A hashable identity for a JSON value that keeps true and 1 apart."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True))
    return (type(value).__name__, value)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
