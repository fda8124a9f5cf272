"""The verbs on stored resources: create, update, patch, delete, and their rules.

This is the road every write takes once the HTTP layer has decoded it:
kind/namespace checks → unknown-field policy → defaulting → metadata
bookkeeping → per-kind preparation → validation → managedFields → allocation
(a Service's cluster IP and node ports) → store. It is the same for built-in
kinds and custom resources; what differs per kind comes from the kind's strategy
(`kybernetes.api.kinds`), and nothing here names a kind.
Reads are served by the watch cache and live in the HTTP layer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from kybernetes.api import managedfields, validation
from kybernetes.api import patch as patches
from kybernetes.api.errors import ApiError, FieldError, forbidden, invalid, required
from kybernetes.api.jsonutil import clone
from kybernetes.api.kinds import Strategies, new_strategies
from kybernetes.api.kinds.base import Requester, WritePolicy
from kybernetes.api.registry import Registry, ResourceInfo
from kybernetes.apiserver import objectmeta as om
from kybernetes.apiserver.watchcache import CachedObject, WatchCache, encode_for_store
from kybernetes.storage.interface import (
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RevisionMismatchError,
    Store,
)


@dataclass
class WriteContext:
    """Per-request options of a write (query parameters and the caller)."""

    user: str = ""
    field_manager: str = ""
    dry_run: bool = False
    field_validation: str = "Warn"  # Strict | Warn | Ignore
    force: bool = False
    warnings: list[str] = field(default_factory=list)
    # Who sent the request (None for the server's own writes): kinds that record their
    # creator read it.
    requester: Requester | None = None
    # The version the request was made in, when the kind is stored in another one: an
    # update's managedFields are recorded in it, as upstream's field manager does.
    served: ResourceInfo | None = None
    # What strict field validation words its answer from: the body's fields given twice
    # (YAML ones carry their line), whether the body was YAML, and for a PATCH its type
    # and decoded body.
    duplicates: list[str] = field(default_factory=list)
    yaml_body: bool = False
    patch_type: str = ""
    patch_body: Any = None
    # The body was protobuf: decoded by the kind's message tables, it holds only fields
    # the schema knows, each of the schema's type (`protobuf.decode_k8s_protobuf`), so the
    # JSON checks for unknown fields and wrong types would find nothing.
    typed_body: bool = False
    # Annotations admission adds to the request's audit event (PodSecurity's
    # `pod-security.kubernetes.io/audit-violations`), for the audit log to record.
    audit_annotations: dict[str, str] = field(default_factory=dict)


class WriteResult:
    """A write's outcome: the object as stored and its JSON. Given only the cache's bytes
    (obj None), the object is decoded when first asked for: a JSON answer sends the bytes
    and never needs it."""

    __slots__ = ("_obj", "raw", "created")

    def __init__(self, obj: dict[str, Any] | None, raw: bytes, created: bool = False) -> None:
        self._obj = obj
        self.raw = raw
        self.created = created

    @property
    def obj(self) -> dict[str, Any]:
        obj = self._obj
        if obj is None:
            obj = self._obj = orjson.loads(self.raw)
        return obj


# Specs (a pod's spec from its template, say) that passed the type, unknown-field and
# quantity checks unchanged, by kind and encoding: a controller creates many objects with
# the same spec, and walking it against the schema cost more than encoding it. Built-in
# kinds only (a CRD's schema can change); only `spec`, the field objects stamped from a
# template share (not data, which may be large or secret); small specs are cheap to walk.
_FIELD_MEMO_SIZE = 1024
_FIELD_MEMO_MIN_BYTES = 256
_FIELD_MEMO_MAX_BYTES = 64 * 1024
MemoKey = tuple[str, str, str, bytes]


def _memo_key(info: ResourceInfo, key: str, value: Any) -> MemoKey | None:
    try:
        return (info.api_version, info.kind, key, orjson.dumps(value))
    except TypeError:  # an integer beyond 64 bits: checked every time
        return None


def changed_part(new: Any, old: Any) -> Any:
    """The part of `new` that differs from `old`, for checks that walk it: maps keep only
    their changed keys and lists their length, an unchanged item becoming null (which
    every check passes), recursively; every path in the result is the same path in `new`."""
    if isinstance(new, dict) and isinstance(old, dict) and old:
        return {k: changed_part(v, old.get(k)) for k, v in new.items() if k not in old or old[k] != v}
    if isinstance(new, list) and isinstance(old, list) and old:
        n = len(old)
        return [item if i >= n else None if item == old[i] else changed_part(item, old[i])
                for i, item in enumerate(new)]
    return new


def report_strict_decoding(info: ResourceInfo, obj: dict[str, Any], unknown: list[str], ctx: WriteContext) -> None:
    """Unknown fields of `obj` and duplicate fields of the request body, under
    fieldValidation=Strict (an error) or Warn (warnings), worded as kube-apiserver words
    them for the request's verb: its decoder for POST/PUT, the patch for PATCH (422 on the
    `patch` field), server-side apply's schema and YAML errors for an apply (whose schema
    error comes in every mode)."""
    duplicates, ctx.duplicates = ctx.duplicates, []
    strict = ctx.field_validation == "Strict"
    if ctx.patch_type == "apply":
        # Server-side apply types the patch against the schema whatever the validation
        # mode: a field the schema lacks fails it.
        if unknown:
            meta = obj.get("metadata") or {}
            gvk = f"{info.group}/{info.version}, Kind={info.kind}"
            raise ApiError(500, "", f"failed to create typed patch object ({meta.get('namespace') or ''}/"
                                    f"{meta.get('name') or ''}; {gvk}): {validation.apply_schema_error(obj, unknown)}")
        if duplicates:
            yaml_error = validation.yaml_duplicates_error(duplicates)
            if strict:
                raise ApiError.bad_request(f"error strict decoding YAML: error converting YAML to JSON: {yaml_error}")
            ctx.warnings.extend(validation.strict_decoding_warnings([yaml_error]))
        return
    if ctx.patch_type:
        errors = [f'duplicate field "{d}"' for d in duplicates]
        errors += validation.strict_decoding_errors(obj, unknown, [], yaml_body=False, custom=False)
        if errors and strict:
            shown = (validation.go_map_text(ctx.patch_body) if ctx.patch_type == "strategic"
                     else orjson.dumps(obj).decode())
            raise ApiError.invalid("", "", "", [invalid(
                "patch", validation.GoValue(validation.go_quote(shown)),
                "strict decoding error: " + ", ".join(errors))])
    else:
        errors = validation.strict_decoding_errors(obj, unknown, duplicates, yaml_body=ctx.yaml_body,
                                                   custom=info.is_custom)
        if errors and strict:
            raise ApiError.bad_request(
                f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                f'strict decoding error: {", ".join(errors)}')
    ctx.warnings.extend(validation.strict_decoding_warnings(errors))


def _result(obj: dict[str, Any], rev: int, created: bool = False) -> WriteResult:
    obj["metadata"]["resourceVersion"] = str(rev)
    return WriteResult(obj, orjson.dumps(obj), created)


def new_finalizer_errors(old_meta: dict[str, Any], new_meta: dict[str, Any]) -> list[FieldError]:
    """An object being deleted may only lose finalizers: whoever added one must already
    have seen the object alive, or it could wait forever on a cleanup nobody runs."""
    if not old_meta.get("deletionTimestamp"):
        return []
    extra = sorted(set(new_meta.get("finalizers") or []) - set(old_meta.get("finalizers") or []))
    if not extra:
        return []
    listed = ", ".join(f'"{f}"' for f in extra)
    return [forbidden("metadata.finalizers", "no new finalizers can be added if the object is being deleted, "
                                             f"found new finalizers []string{{{listed}}}")]


# Writes lost to other writers are tried again (like kube-apiserver's GuaranteedUpdate);
# each round one of the contenders wins, so this bounds the contenders, not the rounds.
RACE_RETRIES = 100


def _patch_pins_version(body: Any) -> bool:
    """Whether a patch body sets (or tests) metadata.resourceVersion itself."""
    if isinstance(body, dict):
        return (body.get("metadata") or {}).get("resourceVersion") not in (None, "")
    if isinstance(body, list):
        return any(isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" for op in body)
    return False


class ResourceService:
    """Create/update/patch/delete for every kind, on one store and its watch cache."""

    def __init__(self, store: Store, cache: WatchCache, kinds: Strategies | None = None,
                 gc_enabled: bool = False, registry: Registry | None = None) -> None:
        self.store = store
        self.cache = cache
        # Every kind's rules, configured for this server.
        self.kinds = kinds if kinds is not None else new_strategies()
        # When a garbage collector runs, foreground/orphan deletion add their finalizers.
        self.gc_enabled = gc_enabled
        # Where a kind served in several versions finds its storage version.
        self.registry = registry if registry is not None else Registry()
        self._field_memo: dict[MemoKey, None] = {}  # values known to pass apply_field_validation
        # Checks a create must pass before it is stored (resource quota): each raises ApiError,
        # or may return a call told how the write ended (the stored key, or None).
        self.create_admission: list[Callable[[ResourceInfo, dict[str, Any]],
                                             Callable[[str | None], None] | None]] = []
        # Mutating admission of a create that may wait (the ServiceAccount admission waits
        # for a new namespace's default account), after defaulting: each raises ApiError.
        self.create_mutation: list[Callable[[ResourceInfo, dict[str, Any]], Awaitable[None]]] = []
        # Mutating/validating checks of an update (new, old), before validation: each raises ApiError.
        self.update_admission: list[Callable[[ResourceInfo, dict[str, Any], dict[str, Any]], None]] = []
        # Checks that depend on who writes (RBAC escalation prevention), given the new object
        # and, for an update, the stored one: each raises ApiError.
        self.write_checks: list[Callable[[ResourceInfo, dict[str, Any], WriteContext, dict[str, Any] | None],
                                         None]] = []
        # Admission that judges who writes what from the old and the new object (NodeRestriction):
        # (operation "create" | "update", info, subresource, new, old or None, requester).
        self.requester_admission: list[Callable[[str, ResourceInfo, str, dict[str, Any], dict[str, Any] | None,
                                                 Requester | None], None]] = []
        # Validating admission given the whole request context, after the above (PodSecurity:
        # exemptions by user, warnings and audit annotations added to `ctx`):
        # (operation "create" | "update", info, subresource, new, old or None, ctx).
        self.context_admission: list[Callable[[str, ResourceInfo, str, dict[str, Any], dict[str, Any] | None,
                                               WriteContext], None]] = []
        # Admission that calls out and may wait (dynamic webhooks): (operation "CREATE" | "UPDATE" |
        # "DELETE", info, subresource, new or None, old or None, ctx); each raises ApiError. Mutating
        # ones run after the built-in mutation and may change `new` in place; validating ones run
        # after the built-in validation.
        self.external_mutation: list[Callable[[str, ResourceInfo, str, dict[str, Any] | None,
                                               dict[str, Any] | None, WriteContext], Awaitable[None]]] = []
        self.external_validation: list[Callable[[str, ResourceInfo, str, dict[str, Any] | None,
                                                 dict[str, Any] | None, WriteContext], Awaitable[None]]] = []

    # -- versions -------------------------------------------------------------------
    # A request in a version other than the storage version is checked (type meta,
    # unknown fields, patches) in its own version, converted to the storage version
    # for the rest of the road, and answered converted back.

    def storage_info(self, info: ResourceInfo) -> ResourceInfo:
        return self.registry.storage_info(info)

    def to_storage(self, info: ResourceInfo, obj: dict[str, Any]) -> tuple[ResourceInfo, dict[str, Any]]:
        stored = self.storage_info(info)
        if stored is info:
            return info, obj
        if stored.group != info.group:
            # Another group's version has rules of its own (events.k8s.io requires what core
            # does not): checked here, the stored version's after conversion.
            self.validate(info, obj, None)
        return stored, self.kinds.for_info(info).convert(obj, stored.version, stored.group)

    def served(self, info: ResourceInfo, result: WriteResult) -> WriteResult:
        """A write's result (in the storage version) as the version the request was in."""
        if not info.stored_elsewhere:
            return result
        obj = self.kinds.for_info(info).convert(result.obj, info.version, info.group)
        return WriteResult(obj, orjson.dumps(obj), result.created)

    # -- shared steps ---------------------------------------------------------------

    def check_type_meta(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        api_version = obj.get("apiVersion")
        kind = obj.get("kind")
        if api_version in (None, "") and kind in (None, ""):
            obj["apiVersion"], obj["kind"] = info.api_version, info.kind
            return
        if kind != info.kind:
            raise ApiError.bad_request(
                f"the object provided is unrecognized (must be of type {info.kind}): "
                f"kind {kind!r} does not match the expected kind {info.kind!r}"
                if kind else f"Object 'Kind' is missing in {orjson.dumps(obj)[:200].decode(errors='replace')}")
        if api_version != info.api_version:
            raise ApiError.bad_request(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({info.api_version})")

    def check_metadata(self, info: ResourceInfo, obj: dict[str, Any], namespace: str | None) -> dict[str, Any]:
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request(f"{info.kind} in version \"{info.version}\" cannot be handled as a "
                                       f"{info.kind}: metadata must be an object")
        if info.namespaced:
            body_ns = meta.get("namespace")
            if body_ns in (None, ""):
                meta["namespace"] = namespace
            elif namespace is not None and body_ns != namespace:
                raise ApiError.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request")
        else:
            meta.pop("namespace", None)
        return meta

    def apply_field_validation(self, info: ResourceInfo, obj: dict[str, Any], ctx: WriteContext,
                               old: dict[str, Any] | None = None) -> None:
        """Type errors and unknown fields, per the request's fieldValidation. With `old`
        (a patch), only the top-level fields the patch changed are examined: the rest is
        the stored object, which passed these checks when it was written."""
        if ctx.typed_body and old is None:
            validation.canonicalize_quantities(info, obj)
            return
        # Subtrees known to pass (the stored object's, and values seen before) are not
        # walked again; the checks see the rest in the object's own order, so the first
        # problem reported is the one a walk of the whole object finds.
        memo = self._field_memo if not info.is_custom and info.crd_schema is None else None
        fresh: dict[str, bytes] = {}
        checked: dict[str, Any] = {}
        for k, v in obj.items():
            if k in ("apiVersion", "kind"):
                checked[k] = v
            elif old is not None and old.get(k) == v:
                continue
            elif memo is not None and old is None and k == "spec" and isinstance(v, dict):
                encoded = _memo_key(info, k, v)
                if encoded is not None and encoded in memo:
                    continue
                if encoded is not None and _FIELD_MEMO_MIN_BYTES <= len(encoded[3]) <= _FIELD_MEMO_MAX_BYTES:
                    fresh[k] = encoded
                checked[k] = v
            else:
                checked[k] = v
        delta = checked if old is None else {k: changed_part(v, old.get(k)) for k, v in checked.items()}
        clean = validation.fields_clean(info, delta)
        message = None if clean else validation.type_error_message(info, delta)
        if message:
            raise ApiError.bad_request(message)
        before = {k: obj[k] for k in fresh}
        if old is None:
            validation.canonicalize_quantities(info, obj, checked.keys())
        else:
            # Quantities are canonical in the stored part; a changed part that is canonical
            # as it stands leaves its whole value as it is.
            view = dict(delta)
            validation.canonicalize_quantities(info, view)
            validation.canonicalize_quantities(info, obj, [k for k, v in delta.items() if view[k] is not v])
        unknown = [] if clean else validation.unknown_fields(info, delta)
        if ctx.field_validation != "Ignore" or ctx.patch_type == "apply":
            report_strict_decoding(info, obj, [u.lstrip(".") for u in unknown], ctx)
        for u in unknown:
            om.remove_path(obj, om.parse_field_path(u))
        if memo is not None and fresh:
            dirty = {(om.parse_field_path(u) or [""])[0] for u in unknown}
            for k, encoded in fresh.items():
                # Only a value that was already canonical and had no unknown field passes as it was.
                if k not in dirty and obj.get(k) is before[k]:
                    memo[encoded] = None
                    if len(memo) > _FIELD_MEMO_SIZE:
                        del memo[next(iter(memo))]

    def apply_defaults(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        self.kinds.for_info(info).default(info, obj)

    def validate(self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None,
                 policy: WritePolicy | None = None) -> None:
        errors: list[FieldError] = validation.validate_with(self.kinds.for_info(info), info, obj, old, policy)
        if old is not None:
            errors += new_finalizer_errors(old.get("metadata") or {}, obj.get("metadata") or {})
        if errors:
            name = (obj.get("metadata") or {}).get("name") or ""
            raise ApiError.invalid(info.group, info.kind, name, errors)

    def check_namespace_open(self, info: ResourceInfo, namespace: str | None, name: str) -> None:
        if not info.namespaced:
            return
        ns = self.cache.get(f"/registry/core/namespaces/{namespace}")
        if ns is None:
            raise ApiError.not_found("", "namespaces", namespace or "")
        if b'"deletionTimestamp"' not in ns.raw and b'"Terminating"' not in ns.raw:
            return  # open, read from the bytes: every create in the namespace asks
        ns_obj = ns.obj
        if ns_obj.get("metadata", {}).get("deletionTimestamp") or \
                (ns_obj.get("status") or {}).get("phase") == "Terminating":
            raise ApiError(403, "Forbidden",
                           f"{info.qualified_plural} \"{name}\" is forbidden: unable to create "
                           f"new content in namespace {namespace} because it is being terminated",
                           {"name": name, "kind": info.plural, "causes": [
                               {"reason": "NamespaceTerminating",
                                "message": f"namespace {namespace} is being terminated",
                                "field": "metadata.namespace"}]})

    # -- store writes -------------------------------------------------------------------

    async def _catch_up(self) -> None:
        """After losing a race: the newer object is in the store; let the cache reach it
        before the write is computed again from the cache."""
        try:
            await self.cache.wait_for(self.store.current_revision(), timeout=5.0)
        except TimeoutError:
            pass  # a slow cache: the retry reads it as it is, and its write is still checked

    async def _put(self, key: str, obj: dict[str, Any], expected: int | None) -> KeyValue:
        """Create (expected None) or update the stored object; the cache adopts `obj`."""
        value = encode_for_store(obj)
        self.cache.hint(key, value, obj)
        try:
            if expected is None:
                return await self.store.create(key, value)
            return await self.store.update(key, value, expected_revision=expected)
        finally:
            self.cache.drop_hint(key)

    def _written(self, key: str, obj: dict[str, Any], rev: int, created: bool = False) -> WriteResult:
        """The result of a write: the cache's bytes when it already holds this revision."""
        co = self.cache.get(key)
        if co is not None and co.rev == rev:
            return WriteResult(None, co.raw, created)
        return _result(obj, rev, created)

    # -- create -----------------------------------------------------------------------

    async def create(self, info: ResourceInfo, namespace: str | None, obj: dict[str, Any],
                     ctx: WriteContext) -> WriteResult:
        self.check_type_meta(info, obj)
        meta = self.check_metadata(info, obj, namespace)
        name = meta.get("name")
        if not name:
            prefix = meta.get("generateName")
            if not prefix:
                raise ApiError.invalid(info.group, info.kind, "", [
                    required("metadata.name", "name or generateName is required")])
            meta["name"] = om.generated_name(prefix)
        return await self._finish_create(info, obj, ctx, record_fields=True)

    async def _finish_create(self, info: ResourceInfo, obj: dict[str, Any], ctx: WriteContext,
                             record_fields: bool) -> WriteResult:
        """The common end of POST and of a server-side apply that creates."""
        self.check_namespace_open(info, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        self.apply_field_validation(info, obj, ctx)
        if info.storage_version:
            served, (info, obj) = info, self.to_storage(info, obj)
            ctx.served = served
            return self.served(served, await self._create_stored(info, obj, ctx, record_fields))
        return await self._create_stored(info, obj, ctx, record_fields)

    async def _create_stored(self, info: ResourceInfo, obj: dict[str, Any], ctx: WriteContext,
                             record_fields: bool) -> WriteResult:
        self.prepare_new(info, obj)
        self.kinds.for_info(info).stamp_creator(info, obj, ctx.requester)
        self.apply_defaults(info, obj)
        self.after_defaults(info, obj, None)
        if record_fields:
            # As kube-apiserver's create handler: managedFields describe the request as
            # defaulted, before mutating admission adds fields of its own (a pod's
            # kube-api-access volume is nobody's).
            self._record_fields(info, None, obj, ctx, "")
        for mutate in self.create_mutation:
            await mutate(info, obj)
        for call in self.external_mutation:
            await call("CREATE", info, "", obj, None, ctx)
        self.validate(info, obj, None)
        for check in self.write_checks:
            check(info, obj, ctx, None)
        for admit_as in self.requester_admission:
            admit_as("create", info, "", obj, None, ctx.requester)
        for admit_in in self.context_admission:
            admit_in("create", info, "", obj, None, ctx)
        for call in self.external_validation:
            await call("CREATE", info, "", obj, None, ctx)
        settles = [settle for admit in self.create_admission if (settle := admit(info, obj)) is not None]
        if not settles:
            return await self._allocate_and_store(info, obj, ctx)
        try:
            result = await self._allocate_and_store(info, obj, ctx)
        except BaseException:
            for settle in settles:
                settle(None)
            raise
        meta = obj["metadata"]
        key = None if ctx.dry_run else info.key(meta.get("namespace"), meta["name"])
        for settle in settles:
            settle(key)
        return result

    async def _allocate_and_store(self, info: ResourceInfo, obj: dict[str, Any], ctx: WriteContext) -> WriteResult:
        allocator = self.kinds.for_info(info).allocator
        if allocator is None:
            return await self._store_create(info, obj, ctx)
        # Allocated values are the server's, not the caller's: they are set after
        # managedFields were recorded, as kube-apiserver's registry does.
        reservation = await allocator.reserve(None, obj, ctx.dry_run)
        try:
            result = await self._store_create(info, obj, ctx)
        except BaseException:
            await reservation.abort()
            raise
        await reservation.commit()
        return result

    def prepare_new(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = om.new_uid()
        meta["creationTimestamp"] = om.now_rfc3339()
        for k in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(k, None)
        strategy = self.kinds.for_info(info)
        if strategy.has_generation(info, obj):
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        strategy.prepare_for_create(info, obj)

    def after_defaults(self, info: ResourceInfo, obj: dict[str, Any], old: dict[str, Any] | None) -> None:
        """Server-set fields that depend on defaulted values, before validation."""
        self.kinds.for_info(info).prepare_write(info, obj, old)

    async def _store_create(self, info: ResourceInfo, obj: dict[str, Any], ctx: WriteContext) -> WriteResult:
        meta = obj["metadata"]
        key = info.key(meta.get("namespace"), meta["name"])
        if ctx.dry_run:
            if self.cache.get(key) is not None:
                raise ApiError.already_exists(info.group, info.plural, meta["name"])
            return WriteResult(obj, orjson.dumps(obj), True)
        try:
            kv = await self._put(key, obj, None)
        except KeyExistsError:
            raise ApiError.already_exists(info.group, info.plural, meta["name"]) from None
        return self._written(key, obj, kv.mod_revision, created=True)

    # -- update -----------------------------------------------------------------------

    def current(self, info: ResourceInfo, namespace: str | None, name: str) -> CachedObject:
        co = self.cache.get(info.key(namespace, name))
        if co is None:
            raise ApiError.not_found(info.group, info.plural, name)
        return co

    async def update(self, info: ResourceInfo, namespace: str | None, name: str, obj: dict[str, Any],
                     ctx: WriteContext, subresource: str = "") -> WriteResult:
        self.check_type_meta(info, obj)
        meta = self.check_metadata(info, obj, namespace)
        if meta.get("name") not in (None, "", name):
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        meta["name"] = name
        old = self.current(info, namespace, name)
        want_rv = meta.get("resourceVersion")
        if want_rv not in (None, "") and str(want_rv) != str(old.rev):
            raise ApiError.conflict(info.group, info.plural, name)
        if meta.get("uid") and meta["uid"] != old.obj["metadata"].get("uid"):
            # A PUT's uid is a precondition: the object it was read from was deleted and recreated.
            raise ApiError.conflict(info.group, info.plural, name,
                                    f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: "
                                    f"{old.obj['metadata'].get('uid')}")
        self.apply_field_validation(info, obj, ctx)
        return await self.update_object(info, old, obj, ctx, subresource, expected=old.rev)

    async def update_object(self, info: ResourceInfo, old: CachedObject, new: dict[str, Any], ctx: WriteContext,
                           subresource: str, expected: int, managed_done: bool = False,
                           old_obj: dict[str, Any] | None = None, policy: WritePolicy | None = None) -> WriteResult:
        """Finish an update of `old` into `new` (already patched/decoded, kind-checked): the
        common end of PUT, PATCH, POST-only subresources (a pod's binding) and server-side
        writes (CRD cleanup).

        `old_obj` is `old` decoded, when the caller already has an unmodified copy.
        `policy` is what the write may change; by default the kind's strategy decides
        from `subresource` (the object itself, status, a namespace's finalize)."""
        if info.storage_version:
            served, (info, new) = info, self.to_storage(info, new)
            ctx.served = served
            return self.served(served, await self.update_object(
                info, old, new, ctx, subresource, expected, managed_done, None, policy))
        if old_obj is None:
            old_obj = old.obj
        sent_uid = (new.get("metadata") or {}).get("uid")
        if sent_uid and sent_uid != old_obj["metadata"].get("uid"):
            # A patch naming another uid (a kubelet's status patch names its pod's) is for an object
            # since deleted and recreated under this name: refused, never applied to the new one.
            raise ApiError.invalid(info.group, info.kind, old_obj["metadata"].get("name", ""),
                                   [invalid("metadata.uid", sent_uid, "field is immutable")])
        strategy = self.kinds.for_info(info)
        if policy is None:
            policy = strategy.write_policy(info, subresource)
        if policy is None:
            raise ApiError.not_found(info.group, f"{info.plural}/{subresource}", old_obj["metadata"]["name"])
        new = policy.merge(old_obj, new, managed_done)
        meta = new["metadata"]
        old_meta = old_obj["metadata"]
        for k in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if k in old_meta:
                meta[k] = old_meta[k]
            else:
                meta.pop(k, None)
        if "managedFields" not in meta and "managedFields" in old_meta:
            meta["managedFields"] = old_meta["managedFields"]
        strategy.default_update(info, new, old_obj)
        if policy.bumps_generation and strategy.has_generation(info, new) and om.spec_changed(old_obj, new):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        self.after_defaults(info, new, old_obj)
        for call in self.external_mutation:
            await call("UPDATE", info, subresource, new, old_obj, ctx)
        for admit_as in self.requester_admission:
            admit_as("update", info, subresource, new, old_obj, ctx.requester)
        for admit_in in self.context_admission:
            admit_in("update", info, subresource, new, old_obj, ctx)
        if policy.validates:
            for admit in self.update_admission:
                admit(info, new, old_obj)
            self.validate(info, new, old_obj, policy)
            for check in self.write_checks:
                check(info, new, ctx, old_obj)
        for call in self.external_validation:
            await call("UPDATE", info, subresource, new, old_obj, ctx)
        if not managed_done:
            self._record_fields(info, old_obj, new, ctx, subresource)
        if om.meta_equal_ignoring_bookkeeping(old_obj, new):
            return WriteResult(None, old.raw)
        # Removing the last finalizer of an object being deleted completes the delete; an
        # object still in its grace period (a terminating pod) stays until it ends, as
        # with Kubernetes, whatever else is updated meanwhile (its status, say).
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and not ctx.dry_run \
                and not old_meta.get("deletionGracePeriodSeconds"):
            if not strategy.holds_removal(new):
                return await self._store_delete(info, old, new)
        allocator = strategy.allocator if policy.allocates else None
        reservation = await allocator.reserve(old_obj, new, ctx.dry_run) if allocator is not None else None
        if ctx.dry_run:
            return WriteResult(new, orjson.dumps(new))
        key = old.key
        try:
            kv = await self._put(key, new, expected)
        except BaseException as e:
            if reservation is not None:
                await reservation.abort()
            if isinstance(e, RevisionMismatchError):
                raise ApiError.conflict(info.group, info.plural, meta["name"]) from None
            if isinstance(e, KeyNotFoundError):
                raise ApiError.not_found(info.group, info.plural, meta["name"]) from None
            raise
        if reservation is not None:
            await reservation.commit()
        return self._written(key, new, kv.mod_revision)

    def _record_fields(self, info: ResourceInfo, old: dict[str, Any] | None, new: dict[str, Any],
                       ctx: WriteContext, subresource: str) -> None:
        manager = ctx.field_manager
        if not manager:
            return
        served = ctx.served
        if served is not None and served.api_version != info.api_version:
            convert = self.kinds.for_info(info).convert
            new["metadata"]["managedFields"] = managedfields.record_update(
                None if old is None else convert(old, served.version, served.group),
                convert(new, served.version, served.group), manager,
                served.schema(), served.api_version, om.now_rfc3339(), subresource,
                has_status="status" in info.subresources)
            return
        new["metadata"]["managedFields"] = managedfields.record_update(
            old, new, manager, info.schema(), info.api_version, om.now_rfc3339(), subresource,
            has_status="status" in info.subresources)

    # -- patch ------------------------------------------------------------------------

    async def patch(self, info: ResourceInfo, namespace: str | None, name: str, body: Any, patch_type: str,
                    ctx: WriteContext, subresource: str = "") -> WriteResult:
        for _attempt in range(RACE_RETRIES):
            co = self.cache.get(info.key(namespace, name))
            if co is None:
                if patch_type == "apply":
                    return await self._apply_create(info, namespace, name, body, ctx)
                raise ApiError.not_found(info.group, info.plural, name)
            try:
                return await self._patch_once(info, co, body, patch_type, ctx, subresource)
            except _Retry:
                await self._catch_up()
        raise ApiError.conflict(info.group, info.plural, name, "too many concurrent updates")

    async def _patch_once(self, info: ResourceInfo, co: CachedObject, body: Any, patch_type: str,
                          ctx: WriteContext, subresource: str) -> WriteResult:
        # A patch applies to the object as the request's version shows it.
        # A custom resource may be stored in a version other than today's storage version.
        original = self.kinds.for_info(info).convert(co.obj, info.version, info.group) \
            if info.storage_version or info.extra.get("mixed_versions") else co.obj
        managed_done = False
        if patch_type == "json":
            if not isinstance(body, list):
                raise ApiError.bad_request("json patch must be a list of operations")
            patched = patches.json_patch(original, body)
        elif patch_type == "merge":
            if not isinstance(body, dict):
                raise ApiError.bad_request("merge patch must be a JSON object")
            patched = patches.json_merge_patch(original, body)
        elif patch_type == "strategic":
            if not isinstance(body, dict):
                raise ApiError.bad_request("strategic merge patch must be a JSON object")
            if info.is_custom:
                raise ApiError.unsupported_media_type()
            patched = patches.strategic_merge_patch(original, body, info.schema())
        elif patch_type == "apply":
            patched = self._apply_patch(info, original, body, ctx, subresource)
            managed_done = True
        else:
            raise ApiError.unsupported_media_type()
        if not isinstance(patched, dict):
            raise ApiError.bad_request("the patch did not produce an object")
        self.check_type_meta(info, patched)
        meta = self.check_metadata(info, patched, original["metadata"].get("namespace"))
        if meta.get("name") != original["metadata"]["name"]:
            raise ApiError.bad_request("metadata.name cannot be changed by a patch")
        want_rv = meta.get("resourceVersion")
        pinned = want_rv not in (None, "") and str(want_rv) != original["metadata"].get("resourceVersion")
        if pinned:
            raise ApiError.conflict(info.group, info.plural, meta["name"])
        self.apply_field_validation(info, patched, ctx, original)
        try:
            # The patch functions work on copies, so `original` is still the stored object;
            # apply may share parts of it with its result.
            return await self.update_object(info, co, patched, ctx, subresource, expected=co.rev,
                                           managed_done=managed_done,
                                           old_obj=None if patch_type == "apply" else original)
        except ApiError as e:
            # A write that raced another is tried again on the newer object, as the real
            # server does, unless the patch itself named the version it applies to.
            if e.code == 409 and e.reason == "Conflict" and not _patch_pins_version(body):
                raise _Retry() from None
            raise

    def _check_apply(self, info: ResourceInfo, body: Any, ctx: WriteContext, name: str) -> dict[str, Any]:
        if not ctx.field_manager:
            raise ApiError(422, "Invalid",
                           'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required '
                           "for apply patch",
                           {"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [
                               {"reason": "FieldValueRequired", "message": "Required value: is required for apply patch",
                                "field": "fieldManager"}]})
        if not isinstance(body, dict):
            raise ApiError.bad_request("apply patch must be an object")
        if not body.get("apiVersion") or not body.get("kind"):
            raise ApiError.bad_request("invalid object type: apiVersion and kind must be set in an apply patch")
        self.check_type_meta(info, body)
        meta = body.get("metadata") or {}
        if not isinstance(meta, dict):
            raise ApiError.bad_request("metadata must be an object")
        if meta.get("name") not in (None, name):
            raise ApiError.bad_request(
                f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})")
        return body

    def _apply_patch(self, info: ResourceInfo, live: dict[str, Any], body: Any, ctx: WriteContext,
                     subresource: str) -> dict[str, Any]:
        body = self._check_apply(info, body, ctx, live["metadata"]["name"])
        return managedfields.apply(live, body, ctx.field_manager, ctx.force, info.schema(), info.api_version,
                                   om.now_rfc3339(), subresource, has_status="status" in info.subresources)

    async def _apply_create(self, info: ResourceInfo, namespace: str | None, name: str, body: Any,
                            ctx: WriteContext) -> WriteResult:
        body = self._check_apply(info, body, ctx, name)
        obj = managedfields.apply(None, body, ctx.field_manager, ctx.force, info.schema(), info.api_version,
                                  om.now_rfc3339(), "", has_status="status" in info.subresources)
        obj.setdefault("metadata", {})["name"] = name
        self.check_metadata(info, obj, namespace)
        # managedFields come from the apply itself.
        return await self._finish_create(info, obj, ctx, record_fields=False)

    # -- delete -----------------------------------------------------------------------

    async def delete(self, info: ResourceInfo, namespace: str | None, name: str, options: dict[str, Any],
                     ctx: WriteContext) -> tuple[WriteResult, bool]:
        """Delete or mark for deletion. Returns (result, gone): gone=False when the object
        stays (finalizers, graceful pod deletion) and the result is its new state.

        A delete without preconditions must not fail because a controller wrote the
        object a moment earlier: a lost race is retried on the newer object."""
        pinned = bool((options.get("preconditions") or {}).get("resourceVersion"))
        for _attempt in range(RACE_RETRIES):
            try:
                if info.storage_version:
                    result, gone = await self._delete_once(self.storage_info(info), namespace, name, options, ctx)
                    return self.served(info, result), gone
                return await self._delete_once(info, namespace, name, options, ctx)
            except _Retry:
                if pinned:
                    raise ApiError.conflict(info.group, info.plural, name) from None
                await self._catch_up()
        raise ApiError.conflict(info.group, info.plural, name, "too many concurrent updates")

    async def _delete_once(self, info: ResourceInfo, namespace: str | None, name: str, options: dict[str, Any],
                           ctx: WriteContext) -> tuple[WriteResult, bool]:
        co = self.current(info, namespace, name)
        obj = co.obj
        meta = obj["metadata"]
        self.kinds.for_info(info).check_delete(obj)
        pre = options.get("preconditions") or {}
        if pre.get("uid") and pre["uid"] != meta.get("uid"):
            raise ApiError.conflict(info.group, info.plural, name,
                                    f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: "
                                    f"{meta.get('uid')}")
        if pre.get("resourceVersion") and str(pre["resourceVersion"]) != str(co.rev):
            raise ApiError.conflict(info.group, info.plural, name,
                                    f"Precondition failed: ResourceVersion in precondition: "
                                    f"{pre['resourceVersion']}, ResourceVersion in object meta: {co.rev}")
        for call in self.external_mutation:
            await call("DELETE", info, "", None, obj, ctx)
        for call in self.external_validation:
            await call("DELETE", info, "", None, obj, ctx)
        policy = options.get("propagationPolicy")
        if options.get("orphanDependents") is True and not policy:
            policy = "Orphan"
        if not policy and options.get("orphanDependents") is None:
            policy = self.kinds.for_info(info).default_propagation_policy
        finalizers = list(meta.get("finalizers") or [])
        if self.gc_enabled and policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if self.gc_enabled and policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = options.get("gracePeriodSeconds")
        requested = int(grace) if grace is not None else None
        strategy = self.kinds.for_info(info)
        period = strategy.delete_grace_period(obj, requested)
        graceful = period is not None
        if finalizers or graceful or strategy.deletes_through_finalizers(obj):
            forced = strategy.delete_is_forced(obj, requested)
            if meta.get("deletionTimestamp") and not graceful and not forced:
                return WriteResult(obj, co.raw), False
            new = clone(obj)
            nm = new["metadata"]
            if forced:
                nm["deletionTimestamp"] = om.now_rfc3339()
                nm["deletionGracePeriodSeconds"] = 0
            elif period is not None:
                current = meta.get("deletionGracePeriodSeconds")
                if meta.get("deletionTimestamp") and current is not None and period >= int(current):
                    # A repeated delete may shorten a pod's grace period, never extend it.
                    return WriteResult(obj, co.raw), False
                nm["deletionTimestamp"] = om.rfc3339_in(period)
                nm["deletionGracePeriodSeconds"] = period
            else:
                nm.setdefault("deletionTimestamp", om.now_rfc3339())
                nm.setdefault("deletionGracePeriodSeconds", 0)
            if finalizers:
                nm["finalizers"] = finalizers
            strategy.prepare_for_delete(new)
            if "generation" in nm:
                nm["generation"] = int(nm["generation"]) + 1
            if ctx.dry_run:
                return WriteResult(new, orjson.dumps(new)), False
            try:
                kv = await self._put(co.key, new, co.rev)
            except RevisionMismatchError:
                raise _Retry() from None
            result = self._written(co.key, new, kv.mod_revision)
            strategy.marked_deleted(new)
            return result, False
        if ctx.dry_run:
            return WriteResult(obj, co.raw), True
        try:
            return await self._store_delete(info, co, obj, retry_on_race=True), True
        except RevisionMismatchError:
            raise _Retry() from None

    async def _store_delete(self, info: ResourceInfo, co: CachedObject, final: dict[str, Any],
                            retry_on_race: bool = False) -> WriteResult:
        try:
            kv = await self.store.delete(co.key, expected_revision=co.rev)
        except RevisionMismatchError:
            if retry_on_race:
                raise
            raise ApiError.conflict(info.group, info.plural, final["metadata"]["name"]) from None
        except KeyNotFoundError:
            raise ApiError.not_found(info.group, info.plural, final["metadata"]["name"]) from None
        allocator = self.kinds.for_info(info).allocator
        if allocator is not None:
            # What the stored version held (a finalizer's last update changes no allocation).
            await allocator.release(co.obj)
        final = clone(final)
        return _result(final, kv.mod_revision)


class _Retry(Exception):
    """A patch raced with another write; recompute it on the newer object."""
