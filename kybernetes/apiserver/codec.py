"""Decoding request bodies safely: JSON, YAML and Kubernetes protobuf.

Every body goes through `decode_body`, which enforces the limits that keep a
hostile request from hurting the server: a size cap (3 MiB, like
kube-apiserver), a nesting-depth cap, no YAML aliases (billion laughs), and a
top-level object. Failures are `ApiError`s with a 4xx code; nothing else escapes.

On request, decoding also reports duplicate fields (`{"a":1,"a":2}`, or a YAML mapping
with a key twice), which kube-apiserver rejects under `fieldValidation=Strict` and warns
about under `Warn`. orjson keeps the last value silently, so JSON gets a cheap proof that
nothing was dropped and the slow search runs only when that proof fails.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml

from kybernetes.api.errors import ApiError

MAX_BODY_BYTES = 3 * 1024 * 1024
MAX_DEPTH = 100

JSON_TYPES = ("application/json", "")
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "application/apply-patch+yaml")
PROTOBUF_TYPE = "application/vnd.kubernetes.protobuf"


def media_type(content_type: str | None) -> str:
    """The bare media type of a Content-Type header, lower-cased ('' when absent)."""
    if not content_type:
        return ""
    return content_type.split(";", 1)[0].strip().lower()


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """Reject documents nested deeper than `limit` (iteratively: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ApiError.bad_request(f"the object is nested too deeply: maximum depth is {limit}")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _advance(frames: list[list[Any]]) -> None:
    """A node of the innermost collection is complete: a mapping flips between key and
    value, a sequence moves to its next index."""
    if frames:
        f = frames[-1]
        if f[0]:
            f[2] = not f[2]
        else:
            f[4] += 1


def _load_yaml(data: bytes, duplicates: list[str] | None = None) -> Any:
    # The C loader does not call back into Python for compose_node, so scan the
    # event stream first; it is cheap and catches anchors/aliases before any expansion.
    # The same pass finds keys given twice in one mapping (the loader keeps the last).
    # A frame is [is_mapping, keys seen, expecting a key, path, index, current key].
    frames: list[list[Any]] = []
    try:
        for event in yaml.parse(data, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ApiError.bad_request("YAML anchors and aliases are not allowed")
            if duplicates is None:
                continue
            if isinstance(event, yaml.ScalarEvent | yaml.MappingStartEvent | yaml.SequenceStartEvent):
                path = ""
                if frames:
                    f = frames[-1]
                    if not f[0]:
                        path = f"{f[3]}[{f[4]}]"
                    elif f[2]:
                        key = event.value if isinstance(event, yaml.ScalarEvent) else "?"
                        if key in f[1]:
                            duplicates.append(_join(f[3], key))
                        f[1].add(key)
                        f[5] = key
                    else:
                        path = _join(f[3], f[5])
                if isinstance(event, yaml.ScalarEvent):
                    _advance(frames)
                else:
                    frames.append([isinstance(event, yaml.MappingStartEvent), set(), True, path, 0, ""])
            elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                frames.pop()
                _advance(frames)
            elif isinstance(event, yaml.DocumentStartEvent):
                frames.clear()
        docs = list(yaml.load_all(data, Loader=_YAML_LOADER))
    except yaml.YAMLError as e:
        raise ApiError.bad_request(f"error converting YAML to JSON: {_one_line(str(e))}") from None
    except RecursionError:
        raise ApiError.bad_request("the object is nested too deeply") from None
    docs = [d for d in docs if d is not None]
    if len(docs) != 1:
        raise ApiError.bad_request("expected exactly one YAML document in the request body")
    return docs[0]


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Fields(dict):  # type: ignore[type-arg]
    """A decoded JSON object that remembers which of its keys appeared more than once."""

    __slots__ = ("repeated",)


def _pairs(pairs: list[tuple[str, Any]]) -> _Fields:
    obj = _Fields()
    obj.repeated = []
    for k, v in pairs:
        if k in obj:
            obj.repeated.append(k)
        obj[k] = v
    return obj


def json_duplicates(data: bytes, value: Any) -> list[str]:
    """Paths of fields given twice in the JSON text `data` (already decoded as `value`).

    The fast proof: each key in the text is followed by a colon, and every other colon is
    inside a string. orjson writes strings back with colons as they are, so the re-encoded
    value has one colon per kept key plus the same string colons; if the text has no
    `\\u` escape (the only way to spell a colon differently) and the counts agree, no key
    was dropped. Only otherwise is the text parsed again, slowly, to name the fields.
    """
    if b"\\u" not in data and data.count(b":") == orjson.dumps(value).count(b":"):
        return []
    out: list[str] = []
    stack: list[tuple[Any, str]] = [(json.loads(data, object_pairs_hook=_pairs), "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, _Fields):
            out.extend(_join(path, k) for k in node.repeated)
            stack.extend((v, _join(path, k)) for k, v in reversed(node.items()) if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node)))
                         if isinstance(v, dict | list))
    return out


def decode_body(data: bytes, content_type: str | None, expected_kind: str = "",
                duplicates: list[str] | None = None) -> Any:
    """Parse a request body by its Content-Type; returns the JSON value (dict or list).

    With a `duplicates` list, the paths of fields given twice are appended to it."""
    if len(data) > MAX_BODY_BYTES:
        raise ApiError.too_large()
    mt = media_type(content_type)
    if mt == PROTOBUF_TYPE:
        from kybernetes.api.protobuf import decode_k8s_protobuf

        value: Any = decode_k8s_protobuf(data)
    elif mt in YAML_TYPES:
        value = _load_yaml(data, duplicates)
    elif mt in JSON_TYPES or mt.endswith("+json") or mt == "*/*":
        if not data.strip():
            raise ApiError.bad_request("the request body is empty")
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as e:
            what = f"(must be of type {expected_kind}) " if expected_kind else ""
            raise ApiError.bad_request(
                f"the object provided is unrecognized {what}: couldn't get version/kind; json parse error: {e}"
            ) from None
        check_depth(value)
        if duplicates is not None:
            duplicates.extend(json_duplicates(data, value))
        return value
    else:
        raise ApiError.unsupported_media_type(mt)
    check_depth(value)
    return value


def decode_object(data: bytes, content_type: str | None, expected_kind: str = "",
                  duplicates: list[str] | None = None) -> dict[str, Any]:
    value = decode_body(data, content_type, expected_kind, duplicates)
    if not isinstance(value, dict):
        what = expected_kind or "an object"
        raise ApiError.bad_request(f"the object provided is unrecognized (must be of type {what})")
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
