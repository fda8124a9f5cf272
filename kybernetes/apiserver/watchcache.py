"""The watch cache: every object in memory, encoded once, and a window of recent events.

GETs, LISTs and WATCHes are served from here; the store is touched only for
writes and for reads at an old revision. Each object keeps its encoded JSON
bytes (with `resourceVersion` stamped), so a GET, a list item and a watch event
reuse the same bytes. A watch event's line is encoded once for all watchers.

The cache follows the store through the `Store` protocol only: one `store.watch`
of every key, from the revision it listed at, consumed by one task. Any backend
that implements the protocol (SQLite's log store, etcd) feeds it unchanged.
The log store hands a commit's events to its watches before it acknowledges the
writes, and this cache's task is woken first, so a client normally reads its own
writes at once; `wait_for` reaches a given revision when that is not so.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import ctypes
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api.protobuf import encode_object_message
from kybernetes.api.selectors import field_value
from kybernetes.storage.interface import CompactedError, Event, KeyValue, Store, WatchStream

log = logging.getLogger(__name__)


class CachedObject:
    """One version of an object: its encoded bytes, and briefly its decoded form (while
    the change that made it is dispatched). Readers decode on demand with `obj`; each
    access returns a fresh dict, so take it once per use. Its protobuf message is
    encoded the first time a client asks for protobuf, then kept like the JSON."""

    __slots__ = ("key", "_obj", "raw", "rev", "_selectable", "_pb")

    def __init__(self, key: str, obj: dict[str, Any] | None, raw: bytes, rev: int) -> None:
        self.key = key
        self._obj = obj
        self.raw = raw  # JSON of obj, resourceVersion included
        self.rev = rev
        self._selectable: tuple[dict[str, str], dict[str, str]] | None = None
        self._pb: bytes | None = None

    def protobuf(self, obj: dict[str, Any] | None = None) -> bytes:
        """The kind's protobuf message of this version (no envelope), encoded once; `obj`
        is this version already decoded, if the caller has it. Raises the encoder's
        `NotEncodable` (an `ApiError`) for a kind or value protobuf cannot carry."""
        pb = self._pb
        if pb is None:
            pb = self._pb = encode_object_message(obj if obj is not None else self.obj)
        return pb

    def selectable(self, fields: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
        """This version's labels and the values of `fields` for field selectors, kept once
        computed: filtered watches test both versions of every change, and decoding the
        bytes again for each was a hot spot."""
        sel = self._selectable
        if sel is None:
            obj = self.obj
            sel = ((obj.get("metadata") or {}).get("labels") or {}, {})
            self._selectable = sel
        values = sel[1]
        obj = None
        for f in fields:
            if f not in values:
                if obj is None:
                    obj = self.obj
                values[f] = field_value(obj, f)
        return sel

    @property
    def obj(self) -> dict[str, Any]:
        obj = self._obj
        if obj is None:
            obj = orjson.loads(self.raw)
        return obj

    def retire(self) -> None:
        """Drop the decoded form; `obj` decodes the bytes again when asked."""
        self._obj = None


@dataclass(slots=True)
class CacheEvent:
    type: str  # ADDED | MODIFIED | DELETED
    rev: int
    key: str
    new: CachedObject | None  # the object after the change (None for DELETED)
    old: CachedObject | None  # the object before the change (None for ADDED)
    at: float = 0.0  # monotonic time the cache saw it

    @property
    def current(self) -> CachedObject:
        """The object this event shows to watchers (the last state for a delete)."""
        assert self.new is not None or self.old is not None
        return self.new if self.new is not None else self.old  # type: ignore[return-value]

    def line(self, as_type: str) -> bytes:
        # Built per watcher rather than kept: a copy of every object in the event window
        # cost more memory than the concatenation costs time.
        return b'{"type":"' + as_type.encode() + b'","object":' + self.current.raw + b"}\n"


def resource_prefix(key: str) -> str:
    """'/registry/apps/deployments/ns/name' -> '/registry/apps/deployments/'."""
    parts = key.split("/", 4)
    return "/".join(parts[:4]) + "/"


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None  # not glibc: nothing to do


def release_freed_memory() -> None:
    """Hand heap memory freed by a closed watcher back to the OS: glibc keeps freed pages
    of large objects in its heap, and the server's RSS would stay at its peak."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


class Watcher:
    """One client watch: the events its filter accepted that are not sent yet.

    The unsent backlog is bounded by events and by bytes: a client that stops reading
    (or reads slower than the cluster changes) would otherwise pin every object
    version it has not been sent. Past the budget the watcher is closed and its
    backlog dropped at once, as kube-apiserver closes a watcher that cannot keep up;
    the client lists and watches again. `on_overflow` lets the HTTP handler also
    drop what is stuck in the connection."""

    __slots__ = ("prefix", "accept", "queue", "pending_bytes", "closed", "overflowed", "on_overflow", "_waiter")

    MAX_PENDING = 10_000
    MAX_PENDING_BYTES = 16 * 1024 * 1024

    def __init__(self, prefix: str, accept: Callable[[CacheEvent], str | None]) -> None:
        self.prefix = prefix
        # accept(event) -> the event type to deliver (ADDED/MODIFIED/DELETED) or None to skip
        self.accept = accept
        self.queue: collections.deque[tuple[str, CacheEvent]] = collections.deque()
        self.pending_bytes = 0
        self.closed = False
        self.overflowed = False
        self.on_overflow: Callable[[], None] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def push(self, ev: CacheEvent) -> None:
        if self.closed:
            return
        as_type = self.accept(ev)
        if as_type is None:
            return
        self.queue.append((as_type, ev))
        self.pending_bytes += len(ev.current.raw)
        if len(self.queue) > self.MAX_PENDING or self.pending_bytes > self.MAX_PENDING_BYTES:
            self._overflow()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def take(self, max_bytes: int) -> list[tuple[str, CacheEvent]]:
        """The oldest unsent events, about `max_bytes` of them (at least one), out of the backlog."""
        queue = self.queue
        out = []
        size = 0
        while queue and size < max_bytes:
            item = queue.popleft()
            out.append(item)
            size += len(item[1].current.raw)
        self.pending_bytes = max(0, self.pending_bytes - size)
        return out

    def _overflow(self) -> None:
        self.overflowed = True
        self.closed = True
        self.queue.clear()
        self.pending_bytes = 0
        if self.on_overflow is not None:
            try:
                self.on_overflow()
            except Exception:  # noqa: BLE001 - one watcher's clean-up must not stop dispatch
                log.exception("closing an overflowed watch failed")

    async def wait(self, timeout: float | None) -> None:
        if self.queue or self.closed:
            return
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        try:
            await asyncio.wait_for(self._waiter, timeout)
        except TimeoutError:
            pass
        finally:
            self._waiter = None

    def close(self) -> None:
        self.closed = True
        self.queue.clear()
        self.pending_bytes = 0
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class ResourceBucket:
    """The cached objects of one resource (one key prefix)."""

    __slots__ = ("objects", "_sorted", "watchers")

    def __init__(self) -> None:
        self.objects: dict[str, CachedObject] = {}
        self._sorted: list[str] | None = None
        self.watchers: set[Watcher] = set()

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def put(self, co: CachedObject) -> CachedObject | None:
        old = self.objects.get(co.key)
        self.objects[co.key] = co
        if old is None:
            self._sorted = None
        return old

    def remove(self, key: str) -> CachedObject | None:
        old = self.objects.pop(key, None)
        if old is not None:
            self._sorted = None
        return old


# Stored values begin with this prefix (see `encode_for_store`), so stamping the
# revision into the bytes is a splice rather than a decode and re-encode.
_RV_PREFIX = b'{"metadata":{"resourceVersion":""'
_RV_SPLICE = b'{"metadata":{"resourceVersion":"'


def encode_for_store(obj: dict[str, Any]) -> bytes:
    """The stored form of an object: metadata first, its resourceVersion left empty
    (the store's revision is the resourceVersion)."""
    meta = obj.get("metadata") or {}
    head = {"resourceVersion": ""}
    head.update((k, v) for k, v in meta.items() if k != "resourceVersion")
    out: dict[str, Any] = {"metadata": head}
    out.update((k, v) for k, v in obj.items() if k != "metadata")
    return orjson.dumps(out)


def stamp(value: bytes, rev: int, hint: dict[str, Any] | None = None) -> tuple[dict[str, Any], bytes]:
    """The object and its encoded bytes with metadata.resourceVersion set to `rev`.

    `hint` is the already-decoded object the writer stored, if the cache got it."""
    if value.startswith(_RV_PREFIX):
        raw = _RV_SPLICE + str(rev).encode() + b'"' + value[len(_RV_PREFIX):]
        if hint is not None:
            hint.setdefault("metadata", {})["resourceVersion"] = str(rev)
            return hint, raw
        return orjson.loads(raw), raw
    obj = orjson.loads(value)
    meta = obj.setdefault("metadata", {})
    meta["resourceVersion"] = str(rev)
    # orjson hands back a buffer with kilobytes of slack; the cache keeps these bytes
    # for the object's lifetime, so keep an exact-size copy instead.
    return obj, bytes(memoryview(orjson.dumps(obj)))


class WatchCache:
    def __init__(self, store: Store, window: int = 100_000) -> None:
        self.store = store
        self.buckets: dict[str, ResourceBucket] = collections.defaultdict(ResourceBucket)
        self.events: collections.deque[CacheEvent] = collections.deque(maxlen=window)
        self.revision = 0
        # The oldest revision from which the event window can replay a watch.
        self.oldest = 0
        self._window_bytes = 0
        self._rev_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._listeners: list[Callable[[CacheEvent], None]] = []
        self._task: asyncio.Task[None] | None = None
        # key -> (stored bytes, decoded object) handed over by the writer of the key.
        self._hints: dict[str, tuple[bytes, dict[str, Any]]] = {}

    async def start(self, from_revision: int = 0) -> None:
        """Load every object and follow the store. With `from_revision`, load them as they
        were at that past revision and replay the changes since, so the event window
        reaches back that far (an API worker process starting while the primary serves)."""
        result = await self.store.list("/registry/", revision=from_revision)
        for kv in result.items:
            _obj, raw = stamp(kv.value, kv.mod_revision)
            self.buckets[resource_prefix(kv.key)].put(CachedObject(kv.key, None, raw, kv.mod_revision))
        self.revision = result.revision
        self.oldest = result.revision
        stream = self.store.watch("/registry/", result.revision)
        self._task = asyncio.create_task(self._follow(stream), name="watch-cache")

    async def _resync(self) -> WatchStream:
        """After the store's watch was lost (e.g. history compacted past where it was):
        list again, apply the differences as events (in-process listeners stay right),
        end every client watch (their streams would have a gap; clients re-list, as
        after a 410), and watch from the new list's revision."""
        result = await self.store.list("/registry/")
        fresh = {kv.key: kv for kv in result.items}
        self.end_watches()
        gone = [key for bucket in self.buckets.values() for key in bucket.objects if key not in fresh]
        for key in gone:
            self._apply(Event("DELETE", KeyValue(key, b"", result.revision, 0), None))
        for kv in result.items:
            co = self.get(kv.key)
            if co is None or co.rev != kv.mod_revision:
                self._apply(Event("PUT", kv, None, created=co is None))
        # The window's events came from two histories; resumed watches start after this.
        self.events.clear()
        self._window_bytes = 0
        self.oldest = self.revision = result.revision
        self._on_batch([])
        log.warning("the watch cache listed the store again at revision %d (%d objects)",
                    result.revision, len(result.items))
        return self.store.watch("/registry/", result.revision)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass
            self._task = None
        self.end_watches()

    def end_watches(self) -> None:
        """End every client watch: each stream sends what it has and finishes, and its
        client watches again (from where it was, or after a list)."""
        for bucket in self.buckets.values():
            for w in list(bucket.watchers):
                w.close()

    def add_listener(self, fn: Callable[[CacheEvent], None]) -> None:
        """In-process observers of every change (e.g. CRD registration)."""
        self._listeners.append(fn)

    async def _follow(self, stream: WatchStream) -> None:
        while True:
            try:
                async for batch in stream:
                    if not batch:
                        # A bookmark (etcd's progress notification): every change under the
                        # watched prefix up to that revision is here. Writes elsewhere in the
                        # store (its other prefixes, other clusters) move the store's revision
                        # without an event, and reads waiting for it would wait in vain.
                        reached = getattr(stream, "progress_revision", 0)
                        if reached > self.revision:
                            self.revision = reached
                    self._on_batch(batch)
                return  # the store closed
            except CompactedError as e:
                log.error("the watch cache lost the store's watch: %s", e)
            except Exception:
                # The cache can no longer follow the store: every read would be stale.
                log.critical("the watch cache failed following the store", exc_info=True)
                raise
            finally:
                await stream.aclose()
            while True:
                try:
                    stream = await self._resync()
                    break
                except CompactedError:
                    continue  # compacted again between the list and the watch

    def _on_batch(self, events: list[Event]) -> None:
        for ev in events:
            self._apply(ev)
        if self._rev_waiters:
            pending = []
            for want, fut in self._rev_waiters:
                if self.revision >= want:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    pending.append((want, fut))
            self._rev_waiters = pending

    def _apply(self, ev: Event) -> None:
        kv = ev.kv
        bucket = self.buckets[resource_prefix(kv.key)]
        rev = kv.mod_revision
        if ev.type == "DELETE":
            old = bucket.remove(kv.key)
            if old is None:
                self.revision = rev
                return
            obj, raw = stamp(kv.value, rev) if kv.value else (dict(old.obj), old.raw)
            gone = CachedObject(kv.key, obj, raw, rev)
            # A delete event carries the final state as `old`; filters judge it.
            cev = CacheEvent("DELETED", rev, kv.key, None, gone)
            superseded: tuple[CachedObject, ...] = (old, gone)
        else:
            hint = self._hints.pop(kv.key, None)
            # The same bytes object when the store hands back what it was given; equal
            # bytes from a store that copies them (etcd) do as well.
            decoded = hint[1] if hint is not None and (hint[0] is kv.value or hint[0] == kv.value) else None
            obj, raw = stamp(kv.value, rev, decoded)
            co = CachedObject(kv.key, obj, raw, rev)
            prev = bucket.put(co)
            cev = CacheEvent("MODIFIED" if prev is not None else "ADDED", rev, kv.key, co, prev)
            # The current version keeps only its bytes as well: decoded pods cost ~5x their
            # JSON in memory, and every reader decodes on demand (one orjson.loads).
            superseded = (prev, co) if prev is not None else (co,)
        self.revision = rev
        cev.at = time.monotonic()
        self._window_bytes += len(cev.current.raw)
        self._trim(cev.at)
        self.events.append(cev)
        for w in list(bucket.watchers):
            w.push(cev)
        for fn in self._listeners:
            fn(cev)
        for version in superseded:
            version.retire()

    # History kept for watches that resume from a revision: everything from the last
    # FRESHNESS seconds (as kube-apiserver's watch cache), at least MIN_EVENTS events,
    # at most the window. Older events would only pin old object versions in memory.
    # The byte budget bounds it under heavy write load (each event holds its version's
    # bytes) and wins over MIN_EVENTS: with large objects fewer events are kept, and a
    # watch resuming from before them gets 410 Gone and relists.
    FRESHNESS = 75.0
    MIN_EVENTS = 1000
    MAX_BYTES = 48 * 1024 * 1024

    def _trim(self, now: float) -> None:
        events = self.events
        while events and (
                len(events) >= (events.maxlen or 0) or self._window_bytes > self.MAX_BYTES
                or (len(events) > self.MIN_EVENTS and now - events[0].at > self.FRESHNESS)):
            gone = events.popleft()
            self._window_bytes -= len(gone.current.raw)
            self.oldest = gone.rev

    def hint(self, key: str, value: bytes, obj: dict[str, Any]) -> None:
        """The writer of `key` is about to store `value`, which encodes `obj`: the cache may
        adopt `obj` instead of decoding `value` again. `obj` must not change afterwards.
        A cache-side shortcut, not part of the store: it applies when the event's value
        equals `value` (from any backend), otherwise the cache decodes as usual."""
        self._hints[key] = (value, obj)

    def drop_hint(self, key: str) -> None:
        self._hints.pop(key, None)

    async def wait_for(self, rev: int, timeout: float = 10.0) -> None:
        if self.revision >= rev:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._rev_waiters.append((rev, fut))
        # A store that can say at once how far its watch has come (etcd) is asked to:
        # the revision may belong to a write outside the cache's prefix.
        request = getattr(self.store, "request_progress", None)
        if request is not None:
            request()
        await asyncio.wait_for(fut, timeout)

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> CachedObject | None:
        return self.buckets[resource_prefix(key)].objects.get(key)

    def list(self, prefix: str, start_after: str = "") -> list[CachedObject]:
        """Objects whose key starts with `prefix` (a resource prefix, optionally plus
        'namespace/'), in key order, after `start_after`."""
        bucket = self.buckets[resource_prefix(prefix + "x")]
        keys = bucket.sorted_keys()
        lo = bisect.bisect_left(keys, prefix)
        if start_after:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        out = []
        objs = bucket.objects
        for i in range(lo, len(keys)):
            k = keys[i]
            if not k.startswith(prefix):
                break
            out.append(objs[k])
        return out

    def count(self, prefix: str, start_after: str = "") -> int:
        """How many objects `list(prefix, start_after)` would return, without building it
        (a page of a big list, and flow control's estimate of a LIST, ask this)."""
        bucket = self.buckets.get(resource_prefix(prefix + "x"))
        if bucket is None:
            return 0
        keys = bucket.sorted_keys()
        lo = bisect.bisect_left(keys, prefix)
        if start_after:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        return max(0, bisect.bisect_left(keys, prefix + "\U0010ffff") - lo)

    def scan(self, prefix: str, start_after: str = "") -> Iterator[CachedObject]:
        """`list` one object at a time, for a page that stops early. Consume it without
        awaiting in between: a change to the resource invalidates it."""
        bucket = self.buckets.get(resource_prefix(prefix + "x"))
        if bucket is None:
            return
        keys = bucket.sorted_keys()
        lo = bisect.bisect_left(keys, prefix)
        if start_after:
            lo = max(lo, bisect.bisect_right(keys, start_after))
        objs = bucket.objects
        for i in range(lo, len(keys)):
            k = keys[i]
            if not k.startswith(prefix):
                return
            yield objs[k]

    # -- watches -------------------------------------------------------------------------

    def events_since(self, prefix: str, rev: int) -> list[CacheEvent] | None:
        """Events of one resource after `rev`, or None if the window no longer reaches back."""
        if rev < self.oldest_watchable():
            return None
        rp = resource_prefix(prefix + "x")
        out = []
        # Walk backwards until older than rev; the window is in revision order.
        for ev in reversed(self.events):
            if ev.rev <= rev:
                break
            if ev.key.startswith(rp):
                out.append(ev)
        out.reverse()
        return out

    def oldest_watchable(self) -> int:
        """The oldest revision a watch may start from: the event window's start, or the
        store's compaction point if later (history before it is gone everywhere)."""
        return max(self.oldest, self.store.compacted_revision())

    def subscribe(self, prefix: str, accept: Callable[[CacheEvent], str | None]) -> Watcher:
        w = Watcher(prefix, accept)
        self.buckets[resource_prefix(prefix + "x")].watchers.add(w)
        return w

    def unsubscribe(self, w: Watcher) -> None:
        w.close()
        self.buckets[resource_prefix(w.prefix + "x")].watchers.discard(w)
