"""The REST front: resource URLs to verbs, reads from the watch cache, watch streams.

`RestHandler.handle` takes every `/api/...` and `/apis/...` request that names a
resource, parses the URL and query, negotiates the response encoding from `Accept`
(`codec.negotiate_output`), and answers with JSON, a Table, protobuf, or a watch
stream (JSON lines or length-prefixed protobuf frames). Writes are delegated to
`ResourceService`.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from kybernetes.api import protobuf as pb
from kybernetes.api import tables
from kybernetes.api.errors import ApiError, forbidden, invalid, required, status_object
from kybernetes.api.jsonutil import clone
from kybernetes.api.kinds.base import ActionContext, DeleteStep, UpdateStep
from kybernetes.api.kinds.scale import scale_subresource
from kybernetes.api.patch import patch_for_content_type
from kybernetes.api.registry import VIRTUAL_KINDS, Registry, ResourceInfo
from kybernetes.api.selectors import (
    FieldSelector,
    FieldTerm,
    parse_field_selector,
    parse_label_selector,
)
from kybernetes.apiserver import auth, codec
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.resources import ResourceService, WriteContext
from kybernetes.apiserver.versions import VersionedReads
from kybernetes.apiserver.watchcache import CachedObject, CacheEvent, WatchCache, release_freed_memory
from kybernetes.storage.encryption import unreadable_reason
from kybernetes.storage.interface import CompactedError, FutureRevisionError, Store

JSON = "application/json"
# A list longer than this is written in chunks of this many items (JSON) or rows (Table).
STREAM_ITEMS = 500
STREAM_ROWS = 50
MAX_WATCH_SECONDS = 1800
BOOKMARK_INTERVAL = 30.0
# An action that lost a race (an eviction's budget written meanwhile) is planned again this often.
ACTION_RETRIES = 20
_BOOL_TRUE = ("true", "1", "True")


@dataclass
class Target:
    info: ResourceInfo
    namespace: str | None  # None: all namespaces (or cluster-scoped)
    name: str | None
    subresource: str
    watch_path: bool = False  # the deprecated /watch/ URL form


def parse_target(registry: Registry, path: str) -> Target:
    """Map a URL path to the resource it names, or raise 404."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise ApiError.path_not_found()
    if parts[0] == "api":
        if len(parts) < 3:
            raise ApiError.path_not_found()
        group, version, rest = "", parts[1], parts[2:]
    elif parts[0] == "apis":
        if len(parts) < 4:
            raise ApiError.path_not_found()
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        raise ApiError.path_not_found()
    watch_path = False
    if rest and rest[0] == "watch":
        watch_path, rest = True, rest[1:]
    namespace: str | None = None
    if len(rest) >= 3 and rest[0] == "namespaces" and not (len(rest) == 3 and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    # A proxy subresource carries the backend's path after it (`pods/NAME/proxy/PATH`).
    if not rest or (len(rest) > 3 and rest[2] != "proxy"):
        raise ApiError.path_not_found()
    info = registry.get(group, version, rest[0])
    if info is None:
        raise ApiError.path_not_found()
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else ""
    if sub and sub not in info.subresources:
        raise ApiError.path_not_found()
    if info.namespaced and name is not None and namespace is None:
        raise ApiError.path_not_found()
    if not info.namespaced and namespace is not None:
        raise ApiError.path_not_found()
    return Target(info, namespace, name, sub, watch_path)


def wants_table(accept: str) -> bool:
    return "as=Table" in accept and "g=meta.k8s.io" in accept


def encode_continue(rev: int, key: str) -> str:
    """A continue token: the list's revision and the last key sent. A revision of -1 means
    "continue at the latest revision" (handed out with a 410 for a compacted revision)."""
    return base64.urlsafe_b64encode(orjson.dumps({"v": 1, "rv": rev, "start": key})).decode()


_INT64 = 1 << 63


def decode_continue(token: str) -> tuple[int, str]:
    """(revision, start key) of a continue token; 400 for anything malformed, with
    kube-apiserver's wording. Revisions are int64 as upstream's; 0 is not a revision and a
    negative one means the latest, as upstream's etcd3 store reads it."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, orjson.JSONDecodeError) as e:
        raise ApiError.bad_request(f"continue key is not valid: {_one_line(str(e))}") from None
    if not isinstance(data, dict) or data.get("v") != 1:
        raise ApiError.bad_request("continue key is not valid: server does not recognize this encoded version")
    rv = data.get("rv")
    if not isinstance(rv, int) or isinstance(rv, bool) or rv == 0 or not -_INT64 <= rv < _INT64:
        raise ApiError.bad_request("continue key is not valid: incorrect encoded start resourceVersion "
                                   "(version meta.k8s.io/v1)")
    start = data.get("start")
    if not isinstance(start, str) or not start:
        raise ApiError.bad_request("continue key is not valid: encoded start key empty (version meta.k8s.io/v1)")
    return rv, start


def _one_line(text: str) -> str:
    return " ".join(text.split())


def json_response(body: bytes, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=body, status=status, content_type=JSON)
    for w in warnings or []:
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


def protobuf_response(body: bytes, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    resp = web.Response(body=body, status=status, headers={"Content-Type": codec.PROTOBUF_TYPE})
    for w in warnings or []:
        resp.headers.add("Warning", '299 - "' + w.replace('"', '\\"') + '"')
    return resp


def encoded_response(out: codec.Output, obj: dict[str, Any], status: int = 200,
                     warnings: list[str] | None = None) -> web.Response:
    """An object built for this answer in the negotiated encoding `out`."""
    if out.protobuf:
        try:
            return protobuf_response(pb.encode_k8s_protobuf(obj), status, warnings)
        except pb.NotEncodable:
            if not out.json_fallback:
                raise
    return json_response(orjson.dumps(obj), status, warnings)


def negotiated_response(request: web.Request, obj: dict[str, Any], status: int = 200,
                        warnings: list[str] | None = None) -> web.Response:
    """An object built for this answer in the encoding `handle` negotiated for the request."""
    return encoded_response(_output(request), obj, status, warnings)


def success_status_object(info: ResourceInfo, name: str, uid: str = "", code: int | None = None) -> dict[str, Any]:
    details = {"name": name, "group": info.group, "kind": info.plural, "uid": uid}
    return status_object("Success", details=details, code=code or 0)


def success_status(info: ResourceInfo, name: str, uid: str = "", code: int | None = None) -> bytes:
    return orjson.dumps(success_status_object(info, name, uid, code))


OUTPUT = "kyb.output"
REQUEST_BODY = "kyb.request_body"
# The annotations admission adds to the request's audit event (WriteContext.audit_annotations:
# PodSecurity's audit-violations and enforce-policy), for the audit log to add to its events.
AUDIT_ANNOTATIONS = "kyb.audit_annotations"


def _output(request: web.Request) -> codec.Output:
    """The response encoding `handle` negotiated for this request."""
    out: codec.Output = request.get(OUTPUT, codec.JSON_OUTPUT)
    return out


def protobuf_ok(info: ResourceInfo, subresource: str = "") -> bool:
    """Whether answers about this resource may be protobuf: custom resources are JSON-only
    (their scale, an autoscaling/v1 Scale, is not), as are kinds without a field table."""
    if subresource == "scale":
        return pb.can_encode("autoscaling/v1", "Scale")
    if info.is_custom:
        return False
    return pb.can_encode(info.api_version, info.kind)


class ListFilter:
    """Namespace + label selector + field selector of a list or watch."""

    def __init__(self, info: ResourceInfo, namespace: str | None, query: Any) -> None:
        self.namespace = namespace
        self.labels = parse_label_selector(query.get("labelSelector", ""))
        allowed = set(info.field_selectors) | {"metadata.name", "metadata.namespace"}
        self.fields = parse_field_selector(query.get("fieldSelector", ""), allowed)
        labels = info.extra.get("field_labels")
        if labels:
            # Selectors name the request version's fields; objects are matched as stored.
            self.fields = FieldSelector(tuple(FieldTerm(labels.get(t.field, t.field), t.operator, t.value)
                                              for t in self.fields.terms))
        self.trivial = self.labels.empty and self.fields.empty
        self.field_paths = self.fields.fields

    def matches(self, obj: dict[str, Any]) -> bool:
        if self.trivial:
            return True
        meta = obj.get("metadata") or {}
        return self.labels.matches(meta.get("labels")) and self.fields.matches(obj)

    def matches_cached(self, co: CachedObject) -> bool:
        """`matches` for a cached version, from what it remembers of its labels and fields."""
        if self.trivial:
            return True
        labels, values = co.selectable(self.field_paths)
        return self.labels.matches(labels) and self.fields.matches_values(values)


def _has_table(info: ResourceInfo, subresource: str) -> bool:
    """Whether answers can be a Table: upstream converts only what it can list (not the
    create-only reviews, nor action subresources such as a pod's binding)."""
    return "list" in info.verbs and subresource in ("", "status", "scale")


def _without_table(accept: str, protobuf: bool) -> codec.Output:
    """The encoding `accept` allows once its Table clauses are set aside; 406 without one."""
    rest = ",".join(c for c in accept.split(",") if "as=Table" not in c.replace(" ", ""))
    if not rest.strip():
        raise ApiError.not_acceptable(codec.NOT_ACCEPTABLE)
    return codec.negotiate_output(rest, protobuf)


class RestHandler:
    def __init__(self, registry: Registry, store: Store, cache: WatchCache, service: ResourceService,
                 virtual: Any) -> None:
        self.registry = registry
        self.store = store
        self.cache = cache
        self.service = service
        self.virtual = virtual  # handles create on review kinds and pod streaming subresources
        # Objects read in a version other than their storage version are converted on the way out.
        self.versions = VersionedReads(service.kinds)

    # -- entry -------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        target = parse_target(self.registry, request.path)
        info = target.info
        method = request.method
        q = request.query
        posts_as = info.extra.get("posts_as")
        if posts_as is not None:
            if method != "POST" or target.name is not None:
                raise ApiError.method_not_allowed()
            return await self.collection_action(request, target, posts_as)
        if info.kind in VIRTUAL_KINDS or target.subresource in (
                "log", "exec", "attach", "portforward", "proxy", "token"):
            accept = request.headers.get("Accept", "")
            if method == "POST":
                # Reviews answer in protobuf too when the client asks for it first.
                pb_ok = not target.subresource and protobuf_ok(info)
                if "as=Table" in accept.replace(" ", "") and not _has_table(info, target.subresource):
                    request[OUTPUT] = _without_table(accept, pb_ok)
                elif not target.subresource:
                    request[OUTPUT] = codec.negotiate_output(accept, pb_ok)
            return await self.virtual.handle(request, target)
        # Negotiated before any work, as kube-apiserver does: a 406 stores nothing.
        request[OUTPUT] = codec.negotiate_output(request.headers.get("Accept", ""),
                                                 protobuf_ok(info, target.subresource))
        if request[OUTPUT].table and not _has_table(info, target.subresource):
            request[OUTPUT] = _without_table(request.headers.get("Accept", ""), protobuf_ok(info, target.subresource))
        if target.subresource and target.subresource in self.service.kinds.for_info(info).actions():
            # Action subresources (a pod's binding, eviction) are create-only, as in kube-apiserver.
            if method != "POST":
                raise ApiError.method_not_allowed()
            return await self.subresource_action(request, target)
        if method == "GET":
            if target.watch_path or q.get("watch") in _BOOL_TRUE:
                return await self.watch(request, target)
            if target.name is None:
                return await self.list(request, target)
            if "resourceVersion" in q:
                await self._fresh_enough(q["resourceVersion"])
            return self.get(request, target)
        if method == "POST":
            if target.name is not None:
                raise ApiError.method_not_allowed()
            return await self.create(request, target)
        if method == "PUT":
            if target.name is None:
                raise ApiError.method_not_allowed()
            return await self.update(request, target)
        if method == "PATCH":
            if target.name is None:
                raise ApiError.method_not_allowed()
            return await self.patch(request, target)
        if method == "DELETE":
            if target.name is None:
                return await self.delete_collection(request, target)
            return await self.delete(request, target)
        raise ApiError.method_not_allowed()

    # -- reads -------------------------------------------------------------------------

    def get(self, request: web.Request, target: Target) -> web.Response:
        info = target.info
        co = self.cache.get(info.key(target.namespace, target.name or ""))
        if co is None:
            # An object the store holds but cannot decrypt (its key is gone) is not "not found".
            why = unreadable_reason(self.store, info.key(target.namespace, target.name or ""))
            raise ApiError.internal(why) if why else ApiError.not_found(info.group, info.plural, target.name or "")
        out = _output(request)
        if target.subresource == "scale":
            return self._respond(out, scale_of(self.registry.storage_info(info), co.obj))
        if out.partial:
            if out.partial != codec.PARTIAL:
                raise ApiError.not_acceptable(
                    f"you requested {out.partial}, but the requested object is not a list ({info.kind})")
            return self._respond(out, _partial(out, self.versions.convert(info, co.obj)))
        if out.table:
            table = tables.build_table(self.registry.storage_info(info), [co.obj], dt.datetime.now(dt.UTC),
                                       request.query.get("includeObject", "Metadata"),
                                       {"resourceVersion": str(co.rev)})
            return json_response(orjson.dumps(self.versions.table_rows_objects(info, table)))
        if out.protobuf:
            return self._cached_response(out, info, co)
        return json_response(self.versions.raw(info, co))

    # -- protobuf answers -----------------------------------------------------------------

    def _message(self, info: ResourceInfo, co: CachedObject) -> bytes:
        """A cached object's protobuf message in `info`'s version (kept with the object
        when no conversion is needed)."""
        if self.versions.converts(info):
            return pb.encode_object_message(self.versions.convert(info, co.obj))
        return co.protobuf()

    def _cached_response(self, out: codec.Output, info: ResourceInfo, co: CachedObject) -> web.Response:
        try:
            return protobuf_response(pb.envelope(info.api_version, info.kind, self._message(info, co)))
        except pb.NotEncodable:
            if not out.json_fallback:
                raise
        return json_response(self.versions.raw(info, co))

    def _respond(self, out: codec.Output, obj: dict[str, Any], status: int = 200,
                 warnings: list[str] | None = None) -> web.Response:
        """An object built for this answer (Scale, Status) in the negotiated encoding."""
        return encoded_response(out, obj, status, warnings)

    def _write_response(self, request: web.Request, info: ResourceInfo, res: Any, status: int,
                        warnings: list[str] | None) -> web.Response:
        """A write's result. In protobuf, the message is kept with the cached version it
        is (the cache's own bytes are the result's), so the next GET does not encode it."""
        out = _output(request)
        if not out.protobuf:
            return json_response(res.raw, status, warnings)
        obj = res.obj
        try:
            meta = obj.get("metadata") or {}
            co = self.cache.get(info.key(meta.get("namespace"), meta.get("name") or ""))
            if co is not None and co.raw is res.raw:
                body = pb.envelope(obj["apiVersion"], obj["kind"], co.protobuf(obj))
            else:
                body = pb.encode_k8s_protobuf(obj)
        except pb.NotEncodable:
            if not out.json_fallback:
                raise
            return json_response(res.raw, status, warnings)
        return protobuf_response(body, status, warnings)

    async def _partial_list(self, out: codec.Output, info: ResourceInfo, list_meta: dict[str, Any],
                            items: list[CachedObject], flt: ListFilter | None) -> web.Response:
        """A LIST as PartialObjectMetadataList: only each object's metadata, built a chunk
        at a time (each object is decoded for it) with the event loop given back between."""
        if out.partial != codec.PARTIAL_LIST:
            raise ApiError.not_acceptable(
                f"you requested {out.partial}, but the requested object is a list ({info.list_kind})")
        partial = []
        for i in range(0, len(items), STREAM_ITEMS):
            for co in items[i:i + STREAM_ITEMS]:
                if flt is None or flt.matches_cached(co):
                    partial.append(_partial(out, self.versions.convert(info, co.obj)))
            await asyncio.sleep(0)
        return self._respond(out, {"kind": codec.PARTIAL_LIST, "apiVersion": out.partial_version,
                                   "metadata": list_meta, "items": partial})

    async def _protobuf_list(self, request: web.Request, info: ResourceInfo, list_meta: dict[str, Any],
                             items: list[CachedObject], flt: ListFilter | None) -> web.StreamResponse:
        """A LIST in protobuf. Every item's size must be known before the first byte (the
        envelope's length comes first), so the messages are gathered first: the cached
        ones cost a reference each; the event loop is given back every STREAM_ITEMS. A
        long list is then written in chunks, like the JSON one."""
        messages: list[bytes] = []
        size = 0
        for i, co in enumerate(items):
            if flt is None or flt.matches_cached(co):
                message = self._message(info, co)
                messages.append(message)
                size += codec.field_size(len(message))
            if i % STREAM_ITEMS == STREAM_ITEMS - 1:
                await asyncio.sleep(0)
        head = codec.pb_list_head(info.api_version, info.list_kind, pb.encode_list_meta(list_meta), size)
        if len(messages) <= STREAM_ITEMS:
            return protobuf_response(b"".join([head, *_pb_items(messages), codec.PB_TAIL]))
        resp = web.StreamResponse(status=200, headers={"Content-Type": codec.PROTOBUF_TYPE})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        out = [head]
        for i in range(0, len(messages), STREAM_ITEMS):
            out.extend(_pb_items(messages[i:i + STREAM_ITEMS]))
            await resp.write(b"".join(out))
            out = []
            await asyncio.sleep(0)
        await resp.write(codec.PB_TAIL)
        return resp

    def _prefix(self, target: Target) -> str:
        info = target.info
        prefix = info.storage_prefix()
        if info.namespaced and target.namespace is not None:
            prefix += target.namespace + "/"
        return prefix

    async def list(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        q = request.query
        flt = ListFilter(info, target.namespace, q)
        limit = _int_param(q, "limit", 0)
        if limit < 0:
            limit = 0
        cont = q.get("continue", "")
        rv = q.get("resourceVersion", "")
        match = q.get("resourceVersionMatch", "")
        prefix = self._prefix(target)
        if match and match not in ("Exact", "NotOlderThan"):
            raise ApiError.bad_request(f'resourceVersionMatch: Unsupported value: "{match}"')
        if match and not rv:
            raise ApiError.bad_request("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if cont and rv:
            raise ApiError.bad_request("specifying resource version is not allowed when using continue")
        if "sendInitialEvents" in q:
            raise ApiError.invalid("meta.k8s.io", "ListOptions", "", [forbidden(
                "sendInitialEvents", "sendInitialEvents is forbidden for list")])
        if match == "Exact" and rv == "0":
            # Revision 0 means "any", which cannot be matched exactly.
            raise ApiError.invalid("meta.k8s.io", "ListOptions", "", [forbidden(
                "resourceVersionMatch", 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')])
        start_after = ""
        at_rev = 0
        cached_rev = 0  # a continued list served from the cache still reports its snapshot revision
        if cont:
            at_rev, start_after = decode_continue(cont)
            if not start_after.startswith(prefix):
                raise ApiError.bad_request("continue key is not valid: the key does not belong to this list")
            if at_rev < 0:
                at_rev = 0  # continue at the latest revision (the client accepts an inconsistent list)
            elif at_rev > self.cache.revision:
                # A revision this server has not reached (a forged token, or another server's):
                # wait a little as for a resourceVersion, then 504 like the watch cache.
                await self._wait_revision(at_rev)
            if at_rev and self.cache.events_since(prefix, at_rev) == []:
                cached_rev, at_rev = at_rev, 0  # nothing changed since: the cache holds exactly that state
        elif match == "Exact":
            at_rev = _rv_int(rv)
        elif rv not in ("", "0"):
            want = _rv_int(rv)
            if want > self.cache.revision:
                await self._wait_revision(want)
        name_only = flt.fields.single_name()
        lazy = False
        if at_rev:
            items, list_rev, more_key = await self._list_store(prefix, at_rev, start_after, limit, flt)
        else:
            list_rev = cached_rev or self.cache.revision
            candidates: list[CachedObject] | Iterator[CachedObject]
            if name_only is not None and (not info.namespaced or target.namespace is not None):
                co = self.cache.get(info.key(target.namespace, name_only))
                candidates = [co] if co is not None and co.key > start_after else []
            elif limit:
                # A page stops at its limit: no need to gather everything after it first.
                candidates = self.cache.scan(prefix, start_after)
            else:
                candidates = self.cache.list(prefix, start_after)
            more_key = ""
            if limit or not isinstance(candidates, list) or len(candidates) <= STREAM_ITEMS:
                items = []
                for co in candidates:
                    if flt.trivial or flt.matches(co.obj):
                        if limit and len(items) >= limit:
                            more_key = items[-1].key
                            break
                        items.append(co)
            else:
                # Without a limit the metadata cannot depend on the items: filter them
                # while streaming, so no decoded copy of the whole list is ever held.
                assert isinstance(candidates, list)
                items, lazy = candidates, not flt.trivial
        list_meta: dict[str, Any] = {"resourceVersion": str(list_rev)}
        if more_key:
            list_meta["continue"] = encode_continue(list_rev, more_key)
            if flt.trivial and not at_rev:
                list_meta["remainingItemCount"] = self.cache.count(prefix, more_key)
        out = _output(request)
        if out.partial:
            return await self._partial_list(out, info, list_meta, items, flt if lazy else None)
        if out.protobuf:
            try:
                return await self._protobuf_list(request, info, list_meta, items, flt if lazy else None)
            except pb.NotEncodable:
                if not out.json_fallback:
                    raise
        table = out.table
        stored = self.registry.storage_info(info)
        if table:
            head = orjson.dumps(tables.build_table(stored, [], dt.datetime.now(dt.UTC),
                                                   q.get("includeObject", "Metadata"), list_meta))
            head = head[:-2]  # the rows come last: ...,"rows":[ + rows + ]}
        else:
            head = (b'{"kind":"' + info.list_kind.encode() + b'","apiVersion":"' + info.api_version.encode()
                    + b'","metadata":' + orjson.dumps(list_meta) + b',"items":[')
        # Table rows cost far more than raw items: a page of 500 rows built in one go held the
        # event loop for tens of milliseconds, so Tables stream from a smaller size.
        if len(items) <= (STREAM_ROWS if table else STREAM_ITEMS) and not lazy:
            if table:
                rows = self.versions.table_rows_objects(info, tables.build_table(
                    stored, [c.obj for c in items], dt.datetime.now(dt.UTC), q.get("includeObject", "Metadata")))["rows"]
                return json_response(head + orjson.dumps(rows)[1:] + b"}")
            return json_response(head + b",".join(map(self.versions.encoder(info), items)) + b"]}")
        return await self._stream_list(request, head, items, flt if lazy else None,
                                       (stored, q.get("includeObject", "Metadata")) if table else None, info)

    async def _stream_list(self, request: web.Request, head: bytes, items: list[CachedObject],
                           flt: ListFilter | None, table: tuple[ResourceInfo, str] | None,
                           served: ResourceInfo | None = None) -> web.StreamResponse:
        """Write a large list in chunks: the same bytes as the whole document, but only one
        chunk's decoded objects and encoded bytes are held at a time, and the event loop is
        given back between chunks so health checks and small requests are not stuck
        behind it."""
        resp = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        step = STREAM_ROWS if table is not None else STREAM_ITEMS
        now = dt.datetime.now(dt.UTC)
        first = True
        out = [head]
        for i in range(0, len(items), step):
            chunk = items[i:i + step]
            if table is not None or flt is not None:
                objs = [c.obj for c in chunk]
                if flt is not None:
                    keep = [k for k, o in enumerate(objs) if flt.matches(o)]
                    chunk = [chunk[k] for k in keep]
                    objs = [objs[k] for k in keep]
            if not chunk:
                continue
            if table is not None:
                built = tables.build_table(table[0], objs, now, table[1])
                if served is not None:
                    built = self.versions.table_rows_objects(served, built)
                body = orjson.dumps(built["rows"])[1:-1]
            elif served is not None:
                body = b",".join(map(self.versions.encoder(served), chunk))
            else:
                body = b",".join(c.raw for c in chunk)
            out.append(body if first else b"," + body)
            first = False
            await resp.write(b"".join(out))
            out = []
            await asyncio.sleep(0)
        out.append(b"]}")
        await resp.write(b"".join(out))
        return resp

    async def _list_store(self, prefix: str, rev: int, start_after: str, limit: int,
                          flt: ListFilter) -> tuple[list[CachedObject], int, str]:
        from kybernetes.apiserver.watchcache import stamp

        items: list[CachedObject] = []
        cursor = start_after
        page = max(limit, 500) if limit else 0
        while True:
            try:
                res = await self.store.list(prefix, revision=rev, limit=page, start_after=cursor)
            except CompactedError:
                if start_after:
                    raise ContinueExpired(encode_continue(-1, start_after)) from None
                raise ApiError.gone() from None
            except FutureRevisionError:
                raise ApiError.timeout("Too large resource version") from None
            for kv in res.items:
                obj, raw = stamp(kv.value, kv.mod_revision)
                if flt.matches(obj):
                    if limit and len(items) >= limit:
                        return items, rev, items[-1].key
                    items.append(CachedObject(kv.key, obj, raw, kv.mod_revision))
                cursor = kv.key
            if not res.more:
                return items, rev, ""

    async def _fresh_enough(self, rv: str) -> None:
        """A GET's resourceVersion: empty or "0" take what the cache has; any other must be
        a revision, and one this server has reached (waiting a little, as for a list)."""
        want = _rv_int(rv)
        if want > self.cache.revision:
            await self._wait_revision(want)

    async def _wait_revision(self, want: int) -> None:
        try:
            await self.cache.wait_for(want, timeout=3.0)
        except TimeoutError:
            raise ApiError(504, "Timeout", f"Too large resource version: {want}, current: {self.cache.revision}",
                           {"causes": [{"reason": "ResourceVersionTooLarge",
                                        "message": "Too large resource version"}], "retryAfterSeconds": 1},
                           {"Retry-After": "1"}) from None

    # -- watch ---------------------------------------------------------------------------

    async def watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        info = target.info
        q = request.query
        flt = ListFilter(info, target.namespace, q)
        if target.name is not None:
            flt.fields = parse_field_selector(f"metadata.name={target.name}", {"metadata.name"})
            flt.trivial = False
        rv = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents")
        match = q.get("resourceVersionMatch", "")
        bookmarks = q.get("allowWatchBookmarks") in _BOOL_TRUE
        timeout = min(_int_param(q, "timeoutSeconds", MAX_WATCH_SECONDS), MAX_WATCH_SECONDS)
        out = _output(request)
        table = out.table
        if send_initial is not None:
            if match != "NotOlderThan":
                raise ApiError.invalid("meta.k8s.io", "ListOptions", "", [invalid(
                    "resourceVersionMatch", match,
                    "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan")])
        elif match:
            raise ApiError.bad_request("resourceVersionMatch is forbidden for watch")
        prefix = self._prefix(target)
        initial: list[CachedObject] = []
        replay: list[CacheEvent] = []
        send_initial_events = send_initial in _BOOL_TRUE or (send_initial is None and rv in ("", "0"))
        if rv not in ("", "0"):
            want = _rv_int(rv)
            if want > self.cache.revision:
                await self._wait_revision(want)
        # Everything below up to subscribe() runs without awaiting, so no event can slip
        # between the snapshot and the subscription.
        too_old = False
        if send_initial_events:
            initial = [c for c in self.cache.list(prefix) if flt.matches(c.obj)]
        else:
            events = self.cache.events_since(prefix, _rv_int(rv))
            if events is None:
                too_old = True
            else:
                replay = events
        snapshot_rev = self.cache.revision
        accept = _event_filter(flt)
        watcher = self.cache.subscribe(prefix, accept)
        watcher.on_overflow = lambda: _drop_if_stalled(request)
        content_type = codec.PROTOBUF_WATCH_TYPE if out.protobuf else JSON
        resp = web.StreamResponse(status=200, headers={"Content-Type": content_type, "Cache-Control": "no-cache"})
        resp.enable_chunked_encoding()
        try:
            await resp.prepare(request)
            printer: _Printer | None = None
            if table:
                printer = _TablePrinter(self.registry.storage_info(info), q.get("includeObject", "Metadata"))
            elif out.partial:
                printer = _PartialPrinter(self, info, out)
            elif out.protobuf:
                printer = _ProtobufPrinter(self, info)
            elif self.versions.converts(info):
                printer = _VersionPrinter(self.versions, info)
            if too_old:
                err = ApiError.gone(f"too old resource version: {rv} ({self.cache.oldest_watchable() + 1})")
                await resp.write(_error_event(err.status(), out.protobuf))
                return resp
            lines: list[bytes] = []
            for co in initial:
                lines.append(_line("ADDED", co, printer))
            for ev in replay:
                t = accept(ev)
                if t is not None:
                    lines.append(_event_line(t, ev, printer))
            if send_initial in _BOOL_TRUE:
                lines.append(_bookmark(info, snapshot_rev, initial_end=True, out=out))
            del initial, replay
            await _write_lines(resp, lines)
            del lines
            deadline = time.monotonic() + timeout
            last_bookmark = time.monotonic()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                await watcher.wait(min(remaining, BOOKMARK_INTERVAL))
                while watcher.queue:
                    # A piece at a time: what is not written yet stays in the watcher's
                    # backlog, where its budget counts it.
                    piece = watcher.take(WATCH_WRITE_CHUNK)
                    await resp.write(b"".join([_event_line(t, ev, printer) for t, ev in piece]))
                if watcher.closed:
                    break
                if bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL and not watcher.queue:
                    await resp.write(_bookmark(info, self.cache.revision, out=out))
                    last_bookmark = time.monotonic()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except ApiError as e:
            # An object this stream's encoding cannot carry: the client sees why and re-lists.
            await resp.write(_error_event(e.status(), out.protobuf))
        finally:
            self.cache.unsubscribe(watcher)
            if watcher.overflowed:
                # Ending the response needs the client to read its last bytes; one that
                # stopped reading gets its connection dropped instead.
                _drop_if_stalled(request)
                asyncio.get_running_loop().call_later(1.0, release_freed_memory)
        return resp

    # -- writes --------------------------------------------------------------------------

    def write_context(self, request: web.Request) -> WriteContext:
        q = request.query
        dry = q.getall("dryRun", [])
        for d in dry:
            if d != "All":
                raise ApiError.bad_request(f'dryRun: Unsupported value: "{d}": supported values: "All"')
        fv = q.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise ApiError.bad_request(
                f'fieldValidation: Unsupported value: "{fv}": supported values: "Ignore", "Strict", "Warn"')
        manager = q.get("fieldManager", "")
        if len(manager) > 128:
            raise ApiError.bad_request("fieldManager: Too long: may not be longer than 128")
        if not manager and request.method != "PATCH" or (
                not manager and request.method == "PATCH"
                and codec.media_type(request.headers.get("Content-Type")) != "application/apply-patch+yaml"):
            ua = request.headers.get("User-Agent", "")
            manager = ua.split("/", 1)[0][:128] if ua else "unknown"
        force = q.get("force") in _BOOL_TRUE
        user = request.get("user")
        ctx = WriteContext(user=getattr(user, "username", ""), field_manager=manager, dry_run=bool(dry),
                           field_validation=fv, force=force,
                           requester=auth.requester(user) if isinstance(user, auth.UserInfo) else None)
        request[AUDIT_ANNOTATIONS] = ctx.audit_annotations
        return ctx

    async def _body(self, request: web.Request, kind: str, ctx: WriteContext | None = None,
                    version: str = "") -> dict[str, Any]:
        data = request[REQUEST_BODY] = await read_body(request)  # kept for the audit log (apiserver/audit.py)
        dups: list[str] | None = [] if ctx is not None and ctx.field_validation != "Ignore" else None
        obj = codec.decode_object(data, request.headers.get("Content-Type"), kind, dups)
        if ctx is not None:
            ctx.typed_body = codec.media_type(request.headers.get("Content-Type")) == codec.PROTOBUF_TYPE
        if dups and ctx is not None:
            # Reported with the unknown fields, in the decoder's order (resources.py).
            ctx.duplicates = dups
            ctx.yaml_body = codec.media_type(request.headers.get("Content-Type")) in codec.YAML_TYPES
        return obj

    async def create(self, request: web.Request, target: Target) -> web.Response:
        ctx = self.write_context(request)
        _refuse_protobuf_body(request, target.info)
        obj = await self._body(request, target.info.kind, ctx, target.info.version)
        if target.info.namespaced and target.namespace is None:
            raise ApiError.path_not_found()
        res = await self.service.create(target.info, target.namespace, obj, ctx)
        return self._write_response(request, target.info, res, 201, ctx.warnings)

    async def update(self, request: web.Request, target: Target) -> web.Response:
        ctx = self.write_context(request)
        info = target.info
        if target.subresource == "scale":
            body = await self._body(request, "Scale")
            return await self._scale_write(request, target, ctx, body, None)
        _refuse_protobuf_body(request, info)
        obj = await self._body(request, info.kind, ctx, info.version)
        res = await self.service.update(info, target.namespace, target.name or "", obj, ctx, target.subresource)
        return self._write_response(request, info, res, 201 if res.created else 200, ctx.warnings)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        ctx = self.write_context(request)
        ptype = patch_for_content_type(codec.media_type(request.headers.get("Content-Type")))
        data = request[REQUEST_BODY] = await read_body(request)
        dups: list[str] | None = [] if ctx.field_validation != "Ignore" else None
        body = codec.decode_body(data, request.headers.get("Content-Type"), target.info.kind, dups)
        ctx.duplicates, ctx.patch_type, ctx.patch_body = dups or [], ptype, body
        if target.subresource == "scale":
            return await self._scale_write(request, target, ctx, body, ptype)
        res = await self.service.patch(target.info, target.namespace, target.name or "", body, ptype, ctx,
                                       target.subresource)
        return self._write_response(request, target.info, res, 201 if res.created else 200, ctx.warnings)

    async def _scale_write(self, request: web.Request, target: Target, ctx: WriteContext, body: Any,
                           ptype: str | None) -> web.Response:
        from kybernetes.api import patch as patches

        info = self.registry.storage_info(target.info)
        scale = self.service.kinds.for_info(info).scale(info)
        if scale is None:
            raise ApiError.path_not_found()
        for _ in range(8):
            co = self.cache.get(info.key(target.namespace, target.name or ""))
            if co is None:
                raise ApiError.not_found(info.group, info.plural, target.name or "")
            current = scale.view(co.obj)
            if ptype is None:
                new_scale = body
                want = (body.get("metadata") or {}).get("resourceVersion")
                if want and str(want) != str(co.rev):
                    raise ApiError.conflict("autoscaling", "scales", target.name or "")
            elif ptype == "json":
                new_scale = patches.json_patch(current, body)
            elif ptype in ("merge", "strategic"):
                if not isinstance(body, dict):
                    raise ApiError.bad_request("patch must be a JSON object")
                new_scale = patches.json_merge_patch(current, body)
            else:
                raise ApiError.unsupported_media_type()
            new = scale.apply(co.obj, new_scale, target.name or "")
            new["metadata"]["resourceVersion"] = str(co.rev)
            try:
                res = await self.service.update(info, target.namespace, target.name or "", new, ctx)
            except ApiError as e:
                if e.code == 409 and ptype is not None:
                    continue
                raise
            return self._respond(_output(request), scale.view(res.obj), 200, ctx.warnings)
        raise ApiError.conflict(info.group, info.plural, target.name or "")

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        ctx = self.write_context(request)
        options = await self._delete_options(request)
        res, gone = await self.service.delete(target.info, target.namespace, target.name or "", options, ctx)
        if gone and not self.service.kinds.for_info(target.info).delete_returns_object:
            uid = res.obj.get("metadata", {}).get("uid", "")
            return self._respond(_output(request), success_status_object(target.info, target.name or "", uid))
        return self._write_response(request, target.info, res, 200, None)

    async def _delete_options(self, request: web.Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        data = await read_body(request)
        if data.strip():
            options = codec.decode_object(data, request.headers.get("Content-Type") or JSON, "DeleteOptions")
        q = request.query
        if "gracePeriodSeconds" in q:
            options["gracePeriodSeconds"] = _int_param(q, "gracePeriodSeconds", 0)
        if "propagationPolicy" in q:
            options["propagationPolicy"] = q["propagationPolicy"]
        pol = options.get("propagationPolicy")
        if pol not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError.bad_request(
                f'propagationPolicy: Unsupported value: "{pol}": supported values: "Foreground", "Background", '
                f'"Orphan", "nil"')
        gp = options.get("gracePeriodSeconds")
        if gp is not None and (not isinstance(gp, int) or isinstance(gp, bool)):
            raise ApiError.bad_request("gracePeriodSeconds must be an integer")
        return options

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        info = target.info
        ctx = self.write_context(request)
        options = await self._delete_options(request)
        flt = ListFilter(info, target.namespace, request.query)
        victims = [c for c in self.cache.list(self._prefix(target)) if flt.matches(c.obj)]
        deleted = []
        results = []
        for co in victims:
            meta = co.obj["metadata"]
            name = meta["name"]
            ns = meta.get("namespace")
            try:
                res, _gone = await self.service.delete(info, ns, name, options, ctx)
                deleted.append(res.raw)
                results.append(res)
            except ApiError as e:
                if e.code != 404:
                    raise
        out = _output(request)
        if out.protobuf:
            try:
                return protobuf_response(pb.list_body(
                    info.api_version, info.list_kind, {"resourceVersion": str(self.cache.revision)},
                    [pb.encode_object_message(r.obj) for r in results]))
            except pb.NotEncodable:
                if not out.json_fallback:
                    raise
        head = (b'{"kind":"' + info.list_kind.encode() + b'","apiVersion":"' + info.api_version.encode()
                + b'","metadata":{"resourceVersion":"' + str(self.cache.revision).encode() + b'"},"items":[')
        return json_response(head + b",".join(deleted) + b"]}")

    async def collection_action(self, request: web.Request, target: Target, posts_as: tuple[str, str]) -> web.Response:
        """A POST to a collection that stands for another resource's action subresource
        (core/v1 `bindings` is `pods/<name>/binding`, the name taken from the body)."""
        info = target.info
        if target.namespace is None:
            raise ApiError.path_not_found()
        body = await self._body(request, info.kind)
        meta = body.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or not name:
            raise ApiError.invalid(info.group, info.kind, "",
                                   [required("metadata.name", "name or generateName is required")])
        parent = self.registry.get(info.group, info.version, posts_as[0])
        if parent is None:
            raise ApiError.path_not_found()
        return await self.subresource_action(request, Target(parent, target.namespace, name, posts_as[1]), body)

    async def subresource_action(self, request: web.Request, target: Target,
                                 body: dict[str, Any] | None = None) -> web.Response:
        """A POST-only subresource (pods/binding, pods/eviction): the kind's strategy plans
        it, this stores what it planned. `body`: the request's, when already read."""
        info = self.registry.storage_info(target.info)
        ctx = self.write_context(request)
        name = target.name or ""
        action = self.service.kinds.for_info(info).actions()[target.subresource]
        if body is None:
            body = await self._body(request, action.body_kind)
        read: list[CachedObject] = []

        def current() -> dict[str, Any]:
            read.append(self.service.current(info, target.namespace, name))
            return read[-1].obj

        actx = ActionContext(self._related, ctx.dry_run)
        for attempt in range(ACTION_RETRIES):
            read.clear()
            step = action.plan(name, body, current, om.now_rfc3339(), actx)
            if isinstance(step, UpdateStep):
                co = read[-1] if read else self.service.current(info, target.namespace, name)
                await self.service.update_object(info, co, step.obj, ctx, target.subresource, expected=co.rev,
                                                managed_done=True, old_obj=co.obj, policy=action.policy)
                break
            if await self._delete_step(info, target.namespace, name, step, ctx, last=attempt == ACTION_RETRIES - 1):
                break
            await self.service._catch_up()
        return self._respond(_output(request), {"kind": "Status", "apiVersion": "v1", "metadata": {},
                                                "status": "Success", "code": 201}, 201)


    def _stored(self, group: str, plural: str) -> ResourceInfo | None:
        info = next((i for i in self.registry.all() if i.group == group and i.plural == plural), None)
        return self.registry.storage_info(info) if info is not None else None

    def _related(self, group: str, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        """The stored objects of another resource in `namespace`, for an action's decision."""
        info = self._stored(group, plural)
        if info is None:
            return []
        prefix = info.storage_prefix() + (f"{namespace}/" if info.namespaced and namespace else "")
        return [co.obj for co in self.cache.list(prefix)]

    async def _delete_step(self, info: ResourceInfo, namespace: str | None, name: str, step: DeleteStep,
                           ctx: WriteContext, last: bool) -> bool:
        """Carry out a planned delete; False when it lost a race and must be planned again."""
        dry_run = ctx.dry_run or bool(step.options.get("dryRun"))
        for write in step.before:
            winfo = self._stored(write.group, write.plural)
            if winfo is None:
                raise ApiError.internal(f"no resource {write.plural}.{write.group}")
            meta = write.obj.get("metadata") or {}
            co = self.service.current(winfo, meta.get("namespace"), meta.get("name") or "")
            if str(co.rev) != str(meta.get("resourceVersion")):
                if last:
                    raise ApiError.conflict(winfo.group, winfo.plural, meta.get("name") or "")
                return False
            try:
                await self.service.update_object(winfo, co, write.obj, WriteContext(field_manager="kube-apiserver",
                                                 dry_run=dry_run), write.subresource, expected=co.rev)
            except ApiError as e:
                if e.code != 409 or last:
                    raise
                return False
        if dry_run and not ctx.dry_run:
            ctx = dataclasses.replace(ctx, dry_run=True)
        try:
            options = step.options
            if step.mark is not None and not dry_run:
                options = await self._mark(info, namespace, name, step.mark, options, ctx)
            await self.service.delete(info, namespace, name, options, ctx)
        except ApiError as e:
            if e.code != 409:
                raise
            if step.on_conflict is not None:
                raise step.on_conflict from None
            if step.retry_on_conflict and not last:
                return False
            raise
        return True


    async def _mark(self, info: ResourceInfo, namespace: str | None, name: str, mark: Any,
                    options: dict[str, Any], ctx: WriteContext) -> dict[str, Any]:
        """Write `mark(latest)` through the object's status before its delete; the delete's
        options, with a resourceVersion precondition moved to the marked version."""
        pre = options.get("preconditions") or {}
        for _attempt in range(ACTION_RETRIES):
            co = self.service.current(info, namespace, name)
            meta = co.obj.get("metadata") or {}
            if (pre.get("uid") and pre["uid"] != meta.get("uid")) or \
                    (pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(co.rev)):
                return options  # the delete itself refuses, with its own words
            try:
                result = await self.service.update_object(info, co, mark(clone(co.obj)), ctx, "status",
                                                          expected=co.rev)
            except ApiError as e:
                if e.code != 409:
                    raise
                await self.service._catch_up()
                continue
            if not pre.get("resourceVersion"):
                return options
            rv = (result.obj.get("metadata") or {}).get("resourceVersion") or str(co.rev)
            return {**options, "preconditions": {**pre, "resourceVersion": str(rv)}}
        raise ApiError.conflict(info.group, info.plural, name)


class _TablePrinter:
    """Wraps each watch event's object in a one-row Table; columns on the first only."""

    def __init__(self, info: ResourceInfo, include: str) -> None:
        self.info = info
        self.include = include
        self.first = True

    def encode(self, as_type: str, co: CachedObject) -> bytes:
        t = tables.build_table(self.info, [co.obj], dt.datetime.now(dt.UTC), self.include,
                               {"resourceVersion": str(co.rev)}, with_columns=self.first)
        if not self.first:
            t["columnDefinitions"] = None
        self.first = False
        return orjson.dumps({"type": as_type, "object": t}) + b"\n"


class _VersionPrinter:
    """Writes each watch event's object in the watched version (not the storage version)."""

    def __init__(self, versions: VersionedReads, info: ResourceInfo) -> None:
        self.versions = versions
        self.info = info

    def encode(self, as_type: str, co: CachedObject) -> bytes:
        return self.versions.event_line(self.info, as_type, co)


WATCH_WRITE_CHUNK = 256 * 1024


async def _write_lines(resp: web.StreamResponse, lines: list[bytes]) -> None:
    """Write watch lines in pieces of about WATCH_WRITE_CHUNK bytes, each waiting for the
    connection to drain, so a slow client's connection holds at most one piece."""
    piece: list[bytes] = []
    size = 0
    for line in lines:
        piece.append(line)
        size += len(line)
        if size >= WATCH_WRITE_CHUNK:
            await resp.write(b"".join(piece))
            piece, size = [], 0
    if piece:
        await resp.write(b"".join(piece))


def _drop_if_stalled(request: web.Request) -> None:
    """Drop the connection of a watch whose writes are blocked on a client that does not
    read: what the connection buffers is freed, and the handler's pending write ends."""
    protocol = request.protocol
    transport = request.transport
    if transport is not None and protocol is not None and protocol.writing_paused:
        transport.abort()


class _ProtobufPrinter:
    """Writes each watch event as a length-prefixed protobuf WatchEvent frame; the
    object's message is the one kept with its cached version."""

    def __init__(self, handler: RestHandler, info: ResourceInfo) -> None:
        self.handler = handler
        self.info = info

    def encode(self, as_type: str, co: CachedObject) -> bytes:
        info = self.info
        return pb.watch_frame(as_type, pb.envelope(info.api_version, info.kind, self.handler._message(info, co)))


class _PartialPrinter:
    """Writes each watch event's object as PartialObjectMetadata (JSON line or protobuf frame)."""

    def __init__(self, handler: RestHandler, info: ResourceInfo, out: codec.Output) -> None:
        self.handler = handler
        self.info = info
        self.out = out

    def encode(self, as_type: str, co: CachedObject) -> bytes:
        obj = _partial(self.out, self.handler.versions.convert(self.info, co.obj))
        if self.out.protobuf:
            return pb.watch_frame(as_type, pb.encode_k8s_protobuf(obj))
        return orjson.dumps({"type": as_type, "object": obj}) + b"\n"


_Printer = _TablePrinter | _VersionPrinter | _ProtobufPrinter | _PartialPrinter


def _partial(out: codec.Output, obj: dict[str, Any]) -> dict[str, Any]:
    """An object as PartialObjectMetadata: its whole metadata and nothing else."""
    return {"kind": codec.PARTIAL, "apiVersion": out.partial_version, "metadata": obj.get("metadata") or {}}


def _pb_items(messages: list[bytes]) -> list[bytes]:
    """The item fields of a protobuf list, ready to join."""
    parts: list[bytes] = []
    for m in messages:
        parts += (codec.PB_ITEM_TAG, codec.varint(len(m)), m)
    return parts


def _error_event(status: dict[str, Any], protobuf: bool) -> bytes:
    if protobuf:
        return pb.watch_frame("ERROR", pb.encode_k8s_protobuf(status))
    return orjson.dumps({"type": "ERROR", "object": status}) + b"\n"


def _refuse_protobuf_body(request: web.Request, info: ResourceInfo) -> None:
    """Custom resources and kinds without a protobuf table read JSON and YAML only."""
    if info.is_custom or pb.message_for(info.api_version, info.kind) is None:
        codec.refuse_protobuf_body(request.headers.get("Content-Type"))


def _line(as_type: str, co: CachedObject, printer: _Printer | None) -> bytes:
    if printer is not None:
        return printer.encode(as_type, co)
    return b'{"type":"' + as_type.encode() + b'","object":' + co.raw + b"}\n"


def _event_line(as_type: str, ev: CacheEvent, printer: _Printer | None) -> bytes:
    if printer is not None:
        return printer.encode(as_type, ev.current)
    return ev.line(as_type)


def _bookmark(info: ResourceInfo, rev: int, initial_end: bool = False,
              out: codec.Output = codec.JSON_OUTPUT) -> bytes:
    meta: dict[str, Any] = {"resourceVersion": str(rev)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    obj = {"kind": info.kind, "apiVersion": info.api_version, "metadata": meta}
    if out.partial:
        obj = _partial(out, obj)
    if out.protobuf:
        return pb.watch_frame("BOOKMARK", pb.encode_k8s_protobuf(obj))
    return orjson.dumps({"type": "BOOKMARK", "object": obj}) + b"\n"


def _event_filter(flt: ListFilter) -> Any:
    def accept(ev: CacheEvent) -> str | None:
        if ev.type == "DELETED":
            return "DELETED" if flt.matches_cached(ev.current) else None
        new_ok = flt.matches_cached(ev.new) if ev.new is not None else False
        if ev.type == "ADDED":
            return "ADDED" if new_ok else None
        old_ok = flt.matches_cached(ev.old) if ev.old is not None else False
        if new_ok and old_ok:
            return "MODIFIED"
        if new_ok:
            return "ADDED"
        if old_ok:
            return "DELETED"
        return None
    return accept


def scale_of(info: ResourceInfo, obj: dict[str, Any]) -> dict[str, Any]:
    """The autoscaling/v1 Scale view of a scalable object."""
    scale = scale_subresource(info)
    if scale is None:
        raise ApiError.path_not_found()
    return scale.view(obj)


async def read_body(request: web.Request) -> bytes:
    """The request's body, refused with a 413 Status past the size limit (aiohttp's own
    refusal is a plain-text page)."""
    if request.content_length is not None and request.content_length > codec.MAX_BODY_BYTES:
        raise ApiError.too_large()
    chunks = []
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > codec.MAX_BODY_BYTES:
            raise ApiError.too_large()
        chunks.append(chunk)
    return b"".join(chunks)


def _int_param(q: Any, name: str, default: int) -> int:
    v = q.get(name)
    if v in (None, ""):
        return default
    try:
        return int(v)
    except ValueError:
        raise ApiError.bad_request(f"{name}: invalid value {v!r}: must be an integer") from None


def _rv_int(rv: str) -> int:
    """A resourceVersion parameter as a revision; 400 as kube-apiserver's for anything but
    an unsigned 64-bit integer."""
    if rv in ("", None):
        return 0
    if not rv.isascii() or not rv.isdigit() or int(rv) >= 1 << 64:
        raise ApiError.bad_request(f'invalid resource version: "{rv}" is not an unsigned 64-bit integer')
    return int(rv)


class ContinueExpired(ApiError):
    """410 for a continue token whose revision was compacted away. Like kube-apiserver, the
    Status carries a token that continues at the latest revision, for clients that accept an
    inconsistent list."""

    def __init__(self, latest_token: str) -> None:
        super().__init__(410, "Expired",
                         "The provided continue parameter is too old to display a consistent list result. You can "
                         "start a new list without the continue parameter, or use the continue token in this "
                         "response to retrieve the remainder of the results. Continuing with the provided token "
                         "results in an inconsistent list - objects that were created, modified, or deleted between "
                         "the time the first chunk was returned and now may show up in the list.")
        self.latest_token = latest_token

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["metadata"] = {"continue": self.latest_token}
        return body
