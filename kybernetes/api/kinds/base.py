"""The shape of a kind's rules: `KindStrategy`, and the typed pieces it is made of.

A strategy answers, for one kind, every question the API server's write pipeline
and its Table printer ask: how to default an object, whether it is valid (on create
and on update), which columns `kubectl get` shows, what a create resets, what a
write through each subresource may change, how a delete proceeds (graceful, through
finalizers) and which POST-only subresources (pods/binding, pods/eviction) exist.
The pipeline asks the strategy and names no kind itself; this is the role of
upstream's `pkg/registry/<group>/<kind>/strategy.go`.

Everything here is pure: functions of decoded objects (plain dicts). What needs I/O
(a Service's cluster IP pool, a CRD's cleanup) is attached to a strategy through the
`Allocator` protocol and deletion listeners, by whoever owns that I/O.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from kybernetes.api import tables
from kybernetes.api.errors import FieldError
from kybernetes.api.kinds.proxying import Lookup, ProxyLocation
from kybernetes.api.kinds.scale import ScaleSubresource, scale_subresource
from kybernetes.api.registry import ResourceInfo

Obj = dict[str, Any]


@dataclass(frozen=True)
class KindRef:
    """A kind by group and name (versions share one strategy)."""

    group: str
    kind: str


# -- seams for I/O the pipeline runs around a write ---------------------------------------


class Reservation(Protocol):
    """What an allocator took for one write: kept if the write is stored, given back if not."""

    async def commit(self) -> None:
        """The write is stored: release what the previous version held and this one does not."""
        ...

    async def abort(self) -> None:
        """The write failed: release what was taken for it."""
        ...


class Allocator(Protocol):
    """Server-assigned values of a kind drawn from a shared pool (a Service's cluster IP
    and node ports), taken before the object is stored and released when it is gone."""

    async def reserve(self, old: Obj | None, new: Obj, dry_run: bool) -> Reservation:
        """Take what storing `new` over `old` (None on create) needs, filling it into `new`;
        raise ApiError if it cannot. A dry run takes nothing but shows what it would take."""
        ...

    async def release(self, obj: Obj) -> None:
        """`obj` was removed from the store: give back everything it held."""
        ...


@dataclass(frozen=True)
class Allocation:
    """A pool a kind's server-assigned values come from, attached by the pool's owner.
    `prepare(new, old)` runs before validation on every write: it carries values
    allocated to the stored version over to a resubmitted manifest that left them out."""

    allocator: Allocator
    prepare: Callable[[Obj, Obj | None], None] | None = None


DeletionListener = Callable[[Obj], None]


# -- writes through the object and its subresources ----------------------------------------


@dataclass(frozen=True)
class WritePolicy:
    """What one kind of update (the object itself, or one of its subresources) may change.

    `merge` builds the object to store from the stored one and the request's."""

    # The request's body is checked against the kind's rules (a binding is the server's own write).
    validates: bool = True
    # A changed spec counts as a new generation.
    bumps_generation: bool = True
    # Runs the kind's allocator (only writes to the object itself change allocations).
    allocates: bool = False

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        return new

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError] | None:
        """This write's own rules about the change, in place of the kind's
        `validate_update` (pods/resize judges what a pod update may not change); None
        keeps the kind's."""
        return None


@dataclass(frozen=True)
class MainWrite(WritePolicy):
    """PUT/PATCH of the object itself; with a status subresource, status is not the
    caller's to change and the stored one is kept."""

    keeps_status: bool = False

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        if self.keeps_status:
            if "status" in old:
                new["status"] = old["status"]  # shared, never written by the pipeline
            else:
                new.pop("status", None)
        return new


# The metadata a client owns. Which of it a /status write may change is the kind's
# choice (`KindStrategy.status_metadata`); the rest of metadata is the server's.
USER_METADATA = ("labels", "annotations", "finalizers", "ownerReferences")


@dataclass(frozen=True)
class StatusWrite(WritePolicy):
    """PUT/PATCH of `/status`: status and the user-owned metadata in `metadata_from_new`
    come from the request; everything else from the stored object."""

    bumps_generation: bool = False
    # Upstream's status strategies reset only the spec of most built-in kinds, so labels,
    # annotations, finalizers and owner references written through /status stick
    # (conformance patches /status with an annotation and reads it back); some kinds
    # keep part or all of it (metav1.ResetObjectMetaForStatus for custom resources).
    metadata_from_new: tuple[str, ...] = USER_METADATA

    def merge(self, old: Obj, new: Obj, managed_done: bool) -> Obj:
        # The stored object's subtrees are shared, not copied: nothing in the pipeline
        # writes into them, and copying whole pods on every status write was a hot spot.
        merged = dict(old)
        merged["metadata"] = dict(old["metadata"])
        if "status" in new:
            merged["status"] = new["status"]
        else:
            merged.pop("status", None)
        new_meta = new.get("metadata") or {}
        for k in self.metadata_from_new:
            if k in new_meta:
                merged["metadata"][k] = new_meta[k]
            else:
                merged["metadata"].pop(k, None)
        # managedFields written by an apply to /status travel with the new object.
        if managed_done:
            merged["metadata"]["managedFields"] = new["metadata"].get("managedFields", [])
        return merged


_MAIN = MainWrite(allocates=True)
_MAIN_KEEPING_STATUS = MainWrite(allocates=True, keeps_status=True)
_STATUS_CUSTOM = StatusWrite(metadata_from_new=())


# -- POST-only subresources ----------------------------------------------------------------


@dataclass(frozen=True)
class UpdateStep:
    """Store `obj` as the new version, written through the subresource's `WritePolicy`."""

    obj: Obj


@dataclass(frozen=True)
class RelatedWrite:
    """A write to another object that must land before the step's own (the budget an
    eviction takes from a PodDisruptionBudget): `obj` is stored through `subresource` only
    if it is unchanged since read (its metadata.resourceVersion)."""

    group: str
    plural: str
    obj: Obj
    subresource: str = "status"


@dataclass(frozen=True)
class DeleteStep:
    """Delete the object with these DeleteOptions, after the `before` writes.

    `on_conflict`: the answer when the delete's preconditions fail (instead of the 409).
    `retry_on_conflict`: when they fail, plan the request again on the newer object.
    `mark`: rewrites the object's latest version just before the delete (a pod's
    DisruptionTarget condition), written through its status; a resourceVersion
    precondition then moves to the marked version."""

    options: Obj
    before: tuple[RelatedWrite, ...] = ()
    on_conflict: Exception | None = None
    retry_on_conflict: bool = False
    mark: Callable[[Obj], Obj] | None = None


SubresourceStep = UpdateStep | DeleteStep


@dataclass(frozen=True)
class ActionContext:
    """What an action subresource may read besides its own object: `related(group, plural,
    namespace)` lists the stored objects of another resource; `dry_run` is the request's."""

    related: Callable[[str, str, str | None], list[Obj]]
    dry_run: bool = False


class ActionSubresource(Protocol):
    """A POST to `<resource>/<name>/<subresource>` whose body is another kind
    (pods/binding takes a Binding, pods/eviction an Eviction)."""

    body_kind: str
    # How the update an UpdateStep asks for is written (None when it only deletes).
    policy: WritePolicy | None

    def plan(self, name: str, body: Obj, current: Callable[[], Obj], now: str,
             ctx: ActionContext | None = None) -> SubresourceStep:
        """What the POST does; `current()` reads the stored object (404 when missing).
        Raises ApiError for a request that cannot be carried out."""
        ...


@dataclass(frozen=True)
class Requester:
    """Who sent a request, as the review kinds report it."""

    username: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


class ReviewContext(Protocol):
    """What a review kind may ask of the server about the request being answered."""

    requester: Requester

    def authenticate_token(self, token: str) -> Requester | None:
        """The user a bearer token belongs to, or None for a token the server does not accept."""
        ...

    def review_token(self, token: str, audiences: list[str]) -> tuple[Requester | None, list[str], str]:
        """(user, the audiences the token is good for, error) as TokenReview reports them."""
        ...

    def authorize(self, attrs: Any) -> Any:
        """The server's decision (an `api.rbac.Decision`) on `attrs` (an `api.rbac.Attributes`)."""
        ...

    def rules_for(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[list, list, str]:
        """(resource rules, non-resource rules, evaluation error) the user holds in `namespace`."""
        ...


# -- the strategy --------------------------------------------------------------------------


class KindStrategy:
    """The rules of one kind (or a few that share them). The defaults here are the
    generic behaviour: no defaulting, metadata-only validation, name + age columns."""

    refs: ClassVar[tuple[KindRef, ...]] = ()
    # With a status subresource, a create starts with an empty status unless the kind
    # keeps what the creator (or the server) set.
    resets_status_on_create: ClassVar[bool] = True
    # A DELETE answers with the object rather than a Status: upstream's registries with
    # `ReturnDeletedObject: true` (pods, services, PVs, jobs, ...).
    delete_returns_object: ClassVar[bool] = False
    # How a DELETE without propagationPolicy or orphanDependents treats dependents
    # ("Orphan" for ReplicationControllers, as before server-side garbage collection).
    default_propagation_policy: ClassVar[str] = ""
    # Fields Kubernetes always serializes (Go fields without `omitempty`), path -> zero
    # value: strict clients (the official Python client's models) refuse an object
    # without them, so every write stores them.
    always_present: ClassVar[Mapping[tuple[str, ...], Any]] = {}
    # The user metadata (of USER_METADATA) a /status write takes from the request; the
    # rest is kept from the stored object, as the kind's upstream status strategy resets it.
    status_metadata: ClassVar[tuple[str, ...]] = USER_METADATA
    # Whether objects carry metadata.generation, where upstream's strategy decides it
    # (its PrepareForCreate sets Generation = 1 or not); None: when they have a spec.
    counts_generation: ClassVar[bool | None] = None

    def __init__(self) -> None:
        self.allocation: Allocation | None = None
        self.deletion_listeners: list[DeletionListener] = []
        self._columns: tuple[dict[str, Any], ...] | None = None

    # -- defaulting and validation

    def default(self, info: ResourceInfo, obj: Obj) -> None:
        """Fill the fields a client may leave out, in place."""

    def default_update(self, info: ResourceInfo, obj: Obj, old: Obj) -> None:
        """`default` of an update of `old` into `obj`. A kind whose defaults all live in a
        part most updates leave as stored (a pod's spec) may skip them then."""
        self.default(info, obj)

    def validate(self, info: ResourceInfo, obj: Obj) -> list[FieldError]:
        """The kind's own rules for a new object (metadata is checked by the caller)."""
        return []

    def validate_update(self, info: ResourceInfo, new: Obj, old: Obj) -> list[FieldError]:
        """Rules about the change from `old` to `new` (immutable fields, ...)."""
        return []

    def validate_changed(self, info: ResourceInfo, new: Obj, old: Obj) -> list[FieldError]:
        """`validate` of an updated object. A kind whose rules look only at parts an update
        usually leaves alone (a pod's spec, under status writes and bindings) may skip
        them when they are unchanged: the stored object passed them."""
        return self.validate(info, new)

    # -- what writes may change

    def prepare_for_create(self, info: ResourceInfo, obj: Obj) -> None:
        """Server-set fields of a new object, before defaulting."""
        if "status" in info.subresources and self.resets_status_on_create:
            obj["status"] = {}

    def stamp_creator(self, info: ResourceInfo, obj: Obj, requester: Requester | None) -> None:
        """Server-set fields of a new object that name who created it (a
        CertificateSigningRequest's requestor); `requester` is None for the server's own writes."""

    def canonicalize(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        """Server-set fields that depend on defaulted values, after defaulting and before
        validation, on create (`old` None) and update."""

    def prepare_write(self, info: ResourceInfo, obj: Obj, old: Obj | None) -> None:
        """Everything the server sets between defaulting and validation."""
        self.canonicalize(info, obj, old)
        fill_always_present(obj, self.always_present)
        if self.allocation is not None and self.allocation.prepare is not None:
            self.allocation.prepare(obj, old)

    @property
    def allocator(self) -> Allocator | None:
        return self.allocation.allocator if self.allocation is not None else None

    def has_generation(self, info: ResourceInfo, obj: Obj) -> bool:
        """Whether the object counts generations of its desired state."""
        if self.counts_generation is not None:
            return self.counts_generation
        return info.is_custom or "spec" in obj or "template" in obj

    def write_policy(self, info: ResourceInfo, subresource: str) -> WritePolicy | None:
        """How a PUT/PATCH to the object ("") or to one of its subresources is written;
        None when the kind has no such writable subresource. (POST-only subresources
        carry their own policy: see `actions`.)"""
        if subresource == "":
            return _MAIN_KEEPING_STATUS if "status" in info.subresources else _MAIN
        if subresource == "status" and "status" in info.subresources:
            return _STATUS_CUSTOM if info.is_custom else status_write(self.status_metadata)
        return None

    def review(self, info: ResourceInfo, body: Obj, ctx: ReviewContext) -> Obj | None:
        """For a kind the server answers instead of storing (the auth reviews): the
        answer to a create of `body`. None for every stored kind."""
        return None

    def actions(self) -> dict[str, ActionSubresource]:
        """POST-only subresources, by name."""
        return {}

    def answer_subresource(self, info: ResourceInfo, subresource: str, obj: Obj, body: Obj,
                           ctx: Any) -> Obj | None:
        """A POST-only subresource the server answers from the stored `obj` without
        writing anything (a ServiceAccount's `token`); `ctx` is what that subresource
        needs of the server. None when the kind has no such subresource."""
        return None

    def scale(self, info: ResourceInfo) -> ScaleSubresource | None:
        """The `scale` subresource, for kinds the registry gives replica paths."""
        return scale_subresource(info)

    def proxy_location(self, info: ResourceInfo, namespace: str | None, segment: str,
                       lookup: Lookup) -> ProxyLocation | None:
        """For a kind with a `proxy` subresource: the backend a request to
        `<segment>/proxy` goes to (`segment` is `[SCHEME:]NAME[:PORT]`; see `proxying`).
        None for every other kind."""
        return None

    # -- deletion

    def delete_grace_period(self, obj: Obj, requested: int | None) -> int | None:
        """Seconds a DELETE lets the object linger (a running pod), None to delete it at
        once (or as soon as its finalizers are gone)."""
        return None

    def delete_is_forced(self, obj: Obj, requested: int | None) -> bool:
        """A repeated DELETE that cuts a lingering object's grace period to nothing."""
        return False

    def deletes_through_finalizers(self, obj: Obj) -> bool:
        """Whether a DELETE only marks the object even without metadata finalizers
        (a namespace is emptied by its controller first)."""
        return False

    def check_delete(self, obj: Obj) -> None:
        """Refuse a DELETE of this object by raising an ApiError (system PriorityClasses)."""

    def prepare_for_delete(self, obj: Obj) -> None:
        """Server-set fields of an object just marked for deletion."""

    def holds_removal(self, obj: Obj) -> bool:
        """Whether a marked object whose metadata finalizers are gone must still stay."""
        return False

    def marked_deleted(self, obj: Obj) -> None:
        """Tell the listeners an object got its deletionTimestamp."""
        for listener in self.deletion_listeners:
            listener(obj)

    # -- versions

    def convert(self, obj: Obj, version: str, group: str | None = None) -> Obj:
        """`obj`, in any version the kind is served in, as `version` of `group` (by default
        its own; apiVersion included). A kind whose versions differ in shape overrides this;
        the result may share subtrees with `obj`, which is never modified."""
        own, _, current = str(obj.get("apiVersion") or "").rpartition("/")
        group = own if group is None else group
        if current == version and own == group:
            return obj
        return {**obj, "apiVersion": f"{group}/{version}" if group else version}

    # -- tables

    def table_columns(self) -> list[dict[str, Any]]:
        return tables.name_age_columns()

    def cells(self, obj: Obj, now: datetime) -> list[Any]:
        return tables.name_age_cells(obj, now)

    def columns(self, info: ResourceInfo) -> list[dict[str, Any]]:
        """The Table columns, wide (priority 1) ones included; fresh dicts each call."""
        if self._columns is None:
            self._columns = tuple(self.table_columns())
        return [dict(c) for c in self._columns]

    def row_cells(self, info: ResourceInfo, obj: Obj, now: datetime) -> list[Any]:
        return self.cells(obj, now)

    def row_conditions(self, obj: Obj) -> list[dict[str, str]] | None:
        """Conditions of a Table row (kubectl greys out completed pods)."""
        return None


@functools.cache
def status_write(metadata_from_new: tuple[str, ...]) -> StatusWrite:
    """The /status write policy taking `metadata_from_new` from the request (shared per tuple)."""
    return StatusWrite(metadata_from_new=metadata_from_new)


def fill_always_present(obj: Obj, fields: Mapping[tuple[str, ...], Any]) -> None:
    """Give each field of `fields` missing (or null, which Go decodes as zero) from `obj`
    its zero value. Only `obj` itself changes in place: a write's object shares nested
    subtrees with the stored version (a kept status), so those are copied, not written."""
    for path, zero in fields.items():
        filled = _filled(obj, path, zero)
        if filled is not obj:
            obj[path[0]] = filled[path[0]]


def _filled(d: Obj, path: tuple[str, ...], zero: Any) -> Obj:
    """`d` with the field at `path` set to `zero` if absent: `d` itself when nothing was
    missing, else a shallow copy."""
    head, rest = path[0], path[1:]
    cur = d.get(head)
    if rest:
        if cur is not None and not isinstance(cur, dict):
            return d  # a wrong shape is for validation to report
        inner = cur if cur is not None else {}
        new = _filled(inner, rest, zero)
        if new is inner and cur is not None:
            return d
    elif cur is not None:
        return d
    else:
        new = copy.deepcopy(zero)
    out = dict(d)
    out[head] = new
    return out


class CreatedAtStrategy(KindStrategy):
    """A built-in kind the real server prints through its generic convertor: name and
    the raw creation timestamp."""

    def table_columns(self) -> list[dict[str, Any]]:
        return tables.created_at_columns()

    def cells(self, obj: Obj, now: datetime) -> list[Any]:
        return tables.created_at_cells(obj, now)
