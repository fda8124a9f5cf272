"""Media types: decoding request bodies safely (JSON, YAML, Kubernetes protobuf) and
negotiating the response encoding from `Accept` (JSON, Table, protobuf).

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

import dataclasses
import functools
import json
from dataclasses import dataclass
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


class DuplicateField(str):
    """The path of a key a YAML mapping gives twice, with the line of its second
    occurrence: kube-apiserver words these as the YAML library does
    (`line 12: key "paused" already set in map`)."""

    __slots__ = ("key", "line")

    def __new__(cls, path: str, key: str, line: int) -> DuplicateField:
        out = super().__new__(cls, path)
        out.key = key
        out.line = line
        return out


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
                            duplicates.append(DuplicateField(_join(f[3], key), key, event.start_mark.line + 1))
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
        from kybernetes.api.protobuf import decode_with_depth_bound

        value, bound = decode_with_depth_bound(data)
        if bound is not None and bound <= MAX_DEPTH:
            return value  # cannot be nested too deeply: no need to walk it
        check_depth(value)
        return value
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
        # Each level of nesting opens one bracket: a body with few is shallow enough
        # without walking it (most are).
        if data.count(b"{") + data.count(b"[") > MAX_DEPTH:
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


# --- response negotiation ----------------------------------------------------------
#
# kube-apiserver picks the response encoding from `Accept` clause by clause (highest q
# first, otherwise in the order given): the first clause that names a type the endpoint
# can write, with parameters it can honour, wins; none at all is a 406. Its types, in
# order (so `*/*` means JSON): JSON, YAML (answered here as JSON) and protobuf. Custom
# resources and kinds without a protobuf table skip protobuf clauses. A Table is JSON (or
# YAML) only, so `application/vnd.kubernetes.protobuf;as=Table` is skipped; metadata-only
# answers (`as=PartialObjectMetadata[List]`, what Go metadata informers ask for) come in
# any of them, for custom resources too. Error `Status` objects follow the same clauses
# with no conversion allowed, whatever kind the URL names.

PROTOBUF_WATCH_TYPE = PROTOBUF_TYPE + ";stream=watch"
NOT_ACCEPTABLE = ("only the following media types are accepted: "
                  "application/json, application/yaml, application/vnd.kubernetes.protobuf")
UNSUPPORTED_BODY = ("the body of the request was in an unknown format - accepted media types include: "
                    "application/json, application/yaml")

_ANY_TYPE = ("json", "yaml", "protobuf")
_TABLE_VERSIONS = ("v1", "v1beta1", "")
PARTIAL = "PartialObjectMetadata"
PARTIAL_LIST = "PartialObjectMetadataList"


@dataclass(frozen=True, slots=True)
class Output:
    """How a response is written: JSON (the default), a Table (JSON), or protobuf.
    `json_fallback`: a later `Accept` clause takes plain JSON, for an object protobuf
    cannot carry. `partial`: the object's metadata only, as this kind (PARTIAL or
    PARTIAL_LIST) of `partial_version`."""

    protobuf: bool = False
    table: bool = False
    json_fallback: bool = True
    partial: str = ""
    partial_version: str = ""


JSON_OUTPUT = Output()
TABLE_OUTPUT = Output(table=True)


def accept_clauses(header: str) -> list[tuple[str, str, dict[str, str]]]:
    """(type, subtype, parameters) of each `Accept` clause, best first: by q, then
    concrete types before wildcards, otherwise in the order given (as goautoneg)."""
    parsed: list[tuple[float, int, str, str, dict[str, str]]] = []
    for part in header.split(","):
        pieces = part.split(";")
        typ, _, sub = pieces[0].strip().lower().partition("/")
        if not sub:
            if typ != "*":
                continue
            sub = "*"
        params: dict[str, str] = {}
        q = 1.0
        for piece in pieces[1:]:
            key, _, value = piece.partition("=")
            key, value = key.strip().lower(), value.strip()
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
            elif key:
                params[key] = value
        parsed.append((q, len(parsed), typ, sub.strip(), params))
    parsed.sort(key=lambda c: (-c[0], c[2] == "*", c[3] == "*", c[1]))
    return [(typ, sub, params) for _q, _i, typ, sub, params in parsed]


def _server_types(typ: str, sub: str) -> tuple[str, ...]:
    if (typ, sub) in (("*", "*"), ("application", "*")):
        return _ANY_TYPE
    if typ != "application":
        return ()
    if sub == "json" or sub.endswith("+json"):
        return ("json",)
    if sub == "yaml":
        return ("yaml",)
    if sub == "vnd.kubernetes.protobuf":
        return ("protobuf",)
    return ()


def _clause_output(media: str, params: dict[str, str], protobuf_ok: bool, for_error: bool) -> Output | None:
    stream = params.get("stream", "")
    if stream and (stream != "watch" or media == "yaml"):
        return None
    if "as" in params or "g" in params or "v" in params:
        if for_error:
            return None
        as_, group, version = params.get("as"), params.get("g"), params.get("v", "")
        # meta.k8s.io/v1beta1 has no protobuf field table here: JSON only.
        if (as_ in (PARTIAL, PARTIAL_LIST) and group == "meta.k8s.io"
                and (version == "v1" or (version == "v1beta1" and media != "protobuf"))):
            return Output(protobuf=media == "protobuf", partial=as_, partial_version=f"meta.k8s.io/{version}")
        if media == "protobuf":
            return None
        if (params.get("as") == "Table" and params.get("g") == "meta.k8s.io"
                and params.get("v", "") in _TABLE_VERSIONS):
            return TABLE_OUTPUT
        # Other conversions (PartialObjectMetadata) are not served: the object itself.
        return JSON_OUTPUT
    if media == "protobuf":
        return Output(protobuf=True) if protobuf_ok or for_error else None
    return JSON_OUTPUT


def _negotiate(clauses: list[tuple[str, str, dict[str, str]]], protobuf_ok: bool,
               for_error: bool) -> tuple[Output, int] | None:
    for index, (typ, sub, params) in enumerate(clauses):
        for media in _server_types(typ, sub):
            out = _clause_output(media, params, protobuf_ok, for_error)
            if out is not None:
                return out, index
    return None


def negotiate_output(accept: str, protobuf_ok: bool) -> Output:
    """The encoding of a resource response for this `Accept` header; 406 if none fits.
    `protobuf_ok`: the endpoint's kind can be written as protobuf."""
    if not accept.strip():
        return JSON_OUTPUT
    # Clients send a handful of distinct headers, each on every request: remember the
    # answers for short ones (a bounded cache a hostile client cannot inflate).
    if len(accept) <= 200:
        return _negotiate_cached(accept, protobuf_ok)
    return _negotiate_output(accept, protobuf_ok)


@functools.lru_cache(maxsize=256)
def _negotiate_cached(accept: str, protobuf_ok: bool) -> Output:
    return _negotiate_output(accept, protobuf_ok)


def _negotiate_output(accept: str, protobuf_ok: bool) -> Output:
    clauses = accept_clauses(accept)
    found = _negotiate(clauses, protobuf_ok, False)
    if found is None:
        raise ApiError.not_acceptable(NOT_ACCEPTABLE)
    out, index = found
    if out.protobuf:
        rest = _negotiate(clauses[index + 1:], False, False)
        return dataclasses.replace(out, json_fallback=rest is not None and not rest[0].table)
    return out


def error_wants_protobuf(accept: str) -> bool:
    """Whether an error `Status` answers in protobuf: the first clause usable without
    conversion names protobuf (an unusable header gets JSON, never a second error)."""
    if "protobuf" not in accept:
        return False
    if len(accept) <= 200:
        return _error_wants_protobuf(accept)
    found = _negotiate(accept_clauses(accept), True, True)
    return found is not None and found[0].protobuf


@functools.lru_cache(maxsize=64)
def _error_wants_protobuf(accept: str) -> bool:
    found = _negotiate(accept_clauses(accept), True, True)
    return found is not None and found[0].protobuf


def refuse_protobuf_body(content_type: str | None) -> None:
    """415 for a protobuf body sent to an endpoint that only reads JSON and YAML (custom
    resources, kinds without a protobuf table)."""
    if media_type(content_type) == PROTOBUF_TYPE:
        raise ApiError(415, "UnsupportedMediaType", UNSUPPORTED_BODY)


# --- protobuf response framing -----------------------------------------------------
#
# A protobuf body is `k8s\0` + runtime.Unknown{typeMeta = 1, raw = 2, contentEncoding = 3,
# contentType = 4}. A LIST's raw is ListMeta (field 1) and one field 2 per item. The raw
# field's length comes first, so a list streamed in pieces adds up its items' sizes
# beforehand (as kube-apiserver's streaming list encoder does); items are the cached
# per-object messages, so that costs no encoding.

PB_TAIL = b"\x1a\x00\x22\x00"  # contentEncoding "", contentType "" (always written)
PB_ITEM_TAG = b"\x12"


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field_size(n: int) -> int:
    """Bytes a length-delimited field with a one-byte tag takes for an `n`-byte payload."""
    size = n + 2
    while n > 0x7F:
        n >>= 7
        size += 1
    return size


def pb_list_head(api_version: str, list_kind: str, list_meta: bytes, items_size: int) -> bytes:
    """Everything of a protobuf LIST body before its first item: magic, typeMeta, the raw
    field's header and the ListMeta field. `items_size` is the size of every item field
    (tag, length and message) together; `PB_TAIL` ends the body after the items."""
    type_meta = _ld(b"\x0a", api_version.encode()) + _ld(b"\x12", list_kind.encode())
    meta_field = _ld(b"\x0a", list_meta)
    return b"".join((b"k8s\x00", _ld(b"\x0a", type_meta), b"\x12", varint(len(meta_field) + items_size),
                     meta_field))


def _ld(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def encode_status(status: dict[str, Any], accept: str) -> tuple[bytes, str]:
    """An error `Status` body and its Content-Type, in protobuf when `Accept` asks for it
    first (JSON when it does not, or when the Status cannot be written as protobuf)."""
    if error_wants_protobuf(accept):
        from kybernetes.api.protobuf import encode_k8s_protobuf

        try:
            return encode_k8s_protobuf(status), PROTOBUF_TYPE
        except ApiError:
            pass
    return orjson.dumps(status), "application/json"
