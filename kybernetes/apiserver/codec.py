"""Decoding request bodies safely: JSON, YAML and Kubernetes protobuf.

Every body goes through `decode_body`, which enforces the limits that keep a
hostile request from hurting the server: a size cap (3 MiB, like
kube-apiserver), a nesting-depth cap, no YAML aliases (billion laughs), and a
top-level object. Failures are `ApiError`s with a 4xx code; nothing else escapes.
"""

from __future__ import annotations

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


def _load_yaml(data: bytes) -> Any:
    # The C loader does not call back into Python for compose_node, so scan the
    # event stream first; it is cheap and catches anchors/aliases before any expansion.
    try:
        for event in yaml.parse(data, Loader=_YAML_LOADER):
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise ApiError.bad_request("YAML anchors and aliases are not allowed")
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


def decode_body(data: bytes, content_type: str | None, expected_kind: str = "") -> Any:
    """Parse a request body by its Content-Type; returns the JSON value (dict or list)."""
    if len(data) > MAX_BODY_BYTES:
        raise ApiError.too_large()
    mt = media_type(content_type)
    if mt == PROTOBUF_TYPE:
        from kybernetes.api.protobuf import decode_k8s_protobuf

        value: Any = decode_k8s_protobuf(data)
    elif mt in YAML_TYPES:
        value = _load_yaml(data)
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
    else:
        raise ApiError.unsupported_media_type(mt)
    check_depth(value)
    return value


def decode_object(data: bytes, content_type: str | None, expected_kind: str = "") -> dict[str, Any]:
    value = decode_body(data, content_type, expected_kind)
    if not isinstance(value, dict):
        what = expected_kind or "an object"
        raise ApiError.bad_request(f"the object provided is unrecognized (must be of type {what})")
    return value


def dumps(value: Any) -> bytes:
    return orjson.dumps(value)
