"""The store's layers apart: etcd semantics (`storage.logstore`) decided purely and
run over the SQLite driver, and the API server's watch cache running on nothing but
the `Store` protocol (here over a second, in-memory backend that copies values as
etcd would), with its memory bounds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kybernetes.apiserver.watchcache import CacheEvent, WatchCache, Watcher, encode_for_store
from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    Store,
    WatchStream,
)
from kybernetes.storage.logstore import Latest, LogStore, WriteOp, plan_write
from kybernetes.storage.sqlite import SQLiteDriver

# -- the pure semantics ----------------------------------------------------------------------


def test_plan_write_create_needs_an_absent_or_deleted_key() -> None:
    ev = plan_write(WriteOp("create", "k", b"v", 0), None, 7)
    assert ev == Event("PUT", KeyValue("k", b"v", 7, 7), None, created=True)
    tombstone = Latest(5, True, 3, b"old")
    again = plan_write(WriteOp("create", "k", b"v", 0), tombstone, 7)
    assert isinstance(again, Event) and again.created and again.kv.create_revision == 7
    assert isinstance(plan_write(WriteOp("create", "k", b"v", 0), Latest(5, False, 3, b"x"), 7), KeyExistsError)


def test_plan_write_update_and_delete_compare_on_revision() -> None:
    cur = Latest(5, False, 3, b"x")
    up = plan_write(WriteOp("update", "k", b"y", 5), cur, 6)
    assert up == Event("PUT", KeyValue("k", b"y", 6, 3), KeyValue("k", b"x", 5, 3))
    stale = plan_write(WriteOp("update", "k", b"y", 4), cur, 6)
    assert isinstance(stale, RevisionMismatchError) and stale.current == KeyValue("k", b"x", 5, 3)
    assert isinstance(plan_write(WriteOp("update", "k", b"y", 0), None, 6), KeyNotFoundError)
    gone = plan_write(WriteOp("delete", "k", b"", 0), cur, 6)
    # A delete carries the last value, so a watcher sees what was deleted.
    assert gone == Event("DELETE", KeyValue("k", b"x", 6, 3), KeyValue("k", b"x", 5, 3))
    assert isinstance(plan_write(WriteOp("delete", "k", b"", 0), Latest(5, True, 3, b"x"), 6), KeyNotFoundError)


# -- the log store over the SQLite driver ----------------------------------------------------


@pytest.fixture
async def log_store(tmp_path: Path) -> AsyncIterator[LogStore]:
    s = LogStore(SQLiteDriver(str(tmp_path / "log.db"), fsync=False))
    await s.start()
    yield s
    await s.close()


async def test_log_store_is_a_store_with_preconditions(log_store: LogStore) -> None:
    assert isinstance(log_store, Store)
    a = await log_store.create("/registry/t/a", b"1")
    with pytest.raises(KeyExistsError):
        await log_store.create("/registry/t/a", b"2")
    with pytest.raises(RevisionMismatchError):
        await log_store.update("/registry/t/a", b"2", expected_revision=a.mod_revision + 1)
    b = await log_store.update("/registry/t/a", b"2", expected_revision=a.mod_revision)
    assert (await log_store.get("/registry/t/a", revision=a.mod_revision)) == a
    assert (await log_store.get("/registry/t/a")) == b
    with pytest.raises(FutureRevisionError):
        await log_store.get("/registry/t/a", revision=b.mod_revision + 1)


async def test_watch_from_a_revision_replays_then_follows(log_store: LogStore) -> None:
    revs = [(await log_store.create(f"/registry/w/{i}", b"")).mod_revision for i in range(5)]
    stream = log_store.watch("/registry/w/", revs[1])
    assert isinstance(stream, WatchStream)
    replayed = await asyncio.wait_for(stream.__anext__(), 5)
    assert [e.kv.mod_revision for e in replayed] == revs[2:]
    nxt = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.01)
    live = await log_store.update("/registry/w/0", b"x")
    batch = await asyncio.wait_for(nxt, 5)
    assert [(e.type, e.kv, e.prev is not None) for e in batch] == [("PUT", live, True)]
    await stream.aclose()
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_compaction_makes_older_revisions_gone(log_store: LogStore) -> None:
    for i in range(6):
        await log_store.create(f"/registry/c/{i}", b"")
    await log_store.compact(4)
    with pytest.raises(CompactedError) as err:
        log_store.watch("/registry/c/", 2)
    assert (err.value.requested, err.value.compacted) == (2, 4)
    with pytest.raises(CompactedError):
        await log_store.list("/registry/c/", revision=3)
    assert len((await log_store.list("/registry/c/", revision=4)).items) == 4
    assert await log_store.compact_keep(keep_revisions=1) == 5


async def test_slow_watch_backlog_is_bounded_by_bytes(log_store: LogStore) -> None:
    log_store.watch_backlog_bytes = 10_000
    stream = log_store.watch("/registry/b/", 0)
    await log_store.create("/registry/b/k", b"")
    assert len(await asyncio.wait_for(stream.__anext__(), 5)) == 1
    for i in range(10):  # nobody reads: 20 KB of values pass the 10 KB budget
        await log_store.update("/registry/b/k", bytes([i]) * 2000)
    sub = stream._sub  # type: ignore[attr-defined]
    assert sub is not None and sub.overflowed and not sub.pending and sub.pending_bytes == 0
    # The watch goes back to replaying from the log and misses nothing.
    got: list[Event] = []
    while len(got) < 10:
        got += await asyncio.wait_for(stream.__anext__(), 5)
    assert [e.kv.value[:1] for e in got] == [bytes([i]) for i in range(10)]
    await stream.aclose()


def test_one_large_commit_does_not_overflow_a_watch_that_keeps_up() -> None:
    from kybernetes.storage.logstore import _Subscriber

    sub = _Subscriber("/registry/", 0, max_events=5, max_bytes=10_000)
    big = [Event("PUT", KeyValue(f"/registry/k{i}", b"x" * 2000, i + 1, i + 1), None, True) for i in range(10)]
    sub.push(big)  # 20 KB and 10 events in one commit: already in memory, nothing to bound
    assert not sub.overflowed and len(sub.take()) == 10
    sub.push(big[:3])
    sub.push(big[3:])  # the reader left the first commit unread: now the budget applies
    assert sub.overflowed and not sub.pending


# -- the watch cache over another backend ----------------------------------------------------


class _MemoryWatch:
    def __init__(self, queue: asyncio.Queue[list[Event] | None], on_close: object) -> None:
        self.queue = queue
        self._on_close = on_close

    def __aiter__(self) -> _MemoryWatch:
        return self

    async def __anext__(self) -> list[Event]:
        batch = await self.queue.get()
        if batch is None:
            raise StopAsyncIteration
        if batch and batch[0].type == "LOST":  # type: ignore[comparison-overlap]
            raise CompactedError(0, batch[0].kv.mod_revision)
        return batch

    async def aclose(self) -> None:
        self._on_close(self.queue)  # type: ignore[operator]


class MemoryStore:
    """A second `Store` backend, in memory: values come back as copies and watch events
    arrive on a task of their own, as they would from etcd."""

    def __init__(self) -> None:
        self.log: list[Event] = []
        self.latest: dict[str, KeyValue] = {}
        self.rev = 0
        self.compacted = 0
        self.watches: list[tuple[str, asyncio.Queue[list[Event] | None]]] = []

    async def start(self) -> None: ...

    async def close(self) -> None:
        for _, q in self.watches:
            q.put_nowait(None)

    def current_revision(self) -> int:
        return self.rev

    def compacted_revision(self) -> int:
        return self.compacted

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self.latest.get(key)

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        items = [kv for k, kv in sorted(self.latest.items()) if k.startswith(prefix) and k > start_after]
        return ListResult(items, self.rev, False)

    def _commit(self, ev: Event) -> KeyValue:
        self.rev = ev.kv.mod_revision
        self.log.append(ev)
        for prefix, q in self.watches:
            if ev.kv.key.startswith(prefix):
                q.put_nowait([ev])
        return ev.kv

    async def create(self, key: str, value: bytes) -> KeyValue:
        if key in self.latest:
            raise KeyExistsError(key)
        kv = self.latest[key] = KeyValue(key, bytes(bytearray(value)), self.rev + 1, self.rev + 1)
        return self._commit(Event("PUT", kv, None, created=True))

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        prev = self.latest[key]
        kv = self.latest[key] = KeyValue(key, bytes(bytearray(value)), self.rev + 1, prev.create_revision)
        return self._commit(Event("PUT", kv, prev))

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        prev = self.latest.pop(key)
        return self._commit(Event("DELETE", KeyValue(key, prev.value, self.rev + 1, prev.create_revision), prev))

    def watch(self, prefix: str, from_revision: int) -> WatchStream:
        if from_revision < self.compacted:
            raise CompactedError(from_revision, self.compacted)
        q: asyncio.Queue[list[Event] | None] = asyncio.Queue()
        for ev in self.log:
            if ev.kv.mod_revision > from_revision and ev.kv.key.startswith(prefix):
                q.put_nowait([ev])
        self.watches.append((prefix, q))
        return _MemoryWatch(q, lambda qq: self.watches.remove((prefix, qq)))

    async def compact(self, revision: int) -> None:
        self.compacted = revision

    def lose_watches(self) -> None:
        """What etcd does to a watch that fell behind compaction: it ends with an error."""
        self.compacted = self.rev
        for _, q in self.watches:
            q.put_nowait([Event("LOST", KeyValue("", b"", self.rev, 0), None)])  # type: ignore[arg-type]


def cm(name: str, data: str = "") -> bytes:
    return encode_for_store({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": name, "namespace": "ns"}, "data": {"v": data}})


async def test_watch_cache_follows_any_store_through_the_protocol() -> None:
    store = MemoryStore()
    assert isinstance(store, Store)
    await store.create("/registry/configmaps/ns/before", cm("before"))
    cache = WatchCache(store)
    await cache.start()
    assert cache.get("/registry/configmaps/ns/before") is not None
    seen: list[CacheEvent] = []
    w = cache.subscribe("/registry/configmaps/ns/", lambda ev: ev.type)
    cache.add_listener(seen.append)
    kv = await store.create("/registry/configmaps/ns/a", cm("a", "1"))
    await cache.wait_for(kv.mod_revision, timeout=5)
    co = cache.get("/registry/configmaps/ns/a")
    assert co is not None and co.obj["metadata"]["resourceVersion"] == str(kv.mod_revision)
    up = await store.update("/registry/configmaps/ns/a", cm("a", "2"))
    await store.delete("/registry/configmaps/ns/before")
    await cache.wait_for(up.mod_revision + 1, timeout=5)
    assert [ev.type for ev in seen] == ["ADDED", "MODIFIED", "DELETED"]
    assert [t for t, _ in w.take(1 << 30)] == ["ADDED", "MODIFIED", "DELETED"]
    assert cache.get("/registry/configmaps/ns/before") is None
    await cache.close()
    assert not store.watches  # the cache closed its watch


async def test_watch_cache_reads_its_own_writes_over_the_log_store(log_store: LogStore) -> None:
    cache = WatchCache(log_store)
    await cache.start()
    try:
        for i in range(20):
            kv = await log_store.create(f"/registry/configmaps/ns/c{i}", cm(f"c{i}"))
            co = cache.get(kv.key)  # no wait: the cache got the commit before the write returned
            assert co is not None and co.rev == kv.mod_revision
    finally:
        await cache.close()


async def test_cache_window_keeps_to_its_byte_budget_below_the_event_minimum() -> None:
    store = MemoryStore()
    cache = WatchCache(store)
    cache.MAX_BYTES = 50_000
    await cache.start()
    kv = await store.create("/registry/configmaps/ns/big", cm("big"))
    for i in range(20):  # 20 versions of ~10 KB: 200 KB, far fewer than MIN_EVENTS events
        kv = await store.update("/registry/configmaps/ns/big", cm("big", str(i) * 10_000))
    await cache.wait_for(kv.mod_revision, timeout=5)
    assert len(cache.events) < 20 < cache.MIN_EVENTS
    assert sum(len(ev.current.raw) for ev in cache.events) <= 50_000 + 11_000
    # A watch resuming from before the window is told its revision is too old (410).
    assert cache.events_since("/registry/configmaps/", 1) is None
    assert cache.events_since("/registry/configmaps/", cache.oldest_watchable()) is not None
    await cache.close()


async def test_cache_honours_store_compaction_for_resumed_watches() -> None:
    store = MemoryStore()
    cache = WatchCache(store)
    await cache.start()
    for i in range(5):
        kv = await store.create(f"/registry/configmaps/ns/{i}", cm(str(i)))
    await cache.wait_for(kv.mod_revision, timeout=5)
    assert cache.events_since("/registry/configmaps/", 1) is not None
    await store.compact(4)
    assert cache.oldest_watchable() == 4
    assert cache.events_since("/registry/configmaps/", 2) is None  # 410 Gone for the client
    await cache.close()


async def test_watch_cache_lists_again_when_the_store_loses_its_watch() -> None:
    store = MemoryStore()
    await store.create("/registry/configmaps/ns/kept", cm("kept"))
    await store.create("/registry/configmaps/ns/gone", cm("gone"))
    cache = WatchCache(store)
    await cache.start()
    seen: list[tuple[str, str]] = []
    cache.add_listener(lambda ev: seen.append((ev.type, ev.key.rsplit("/", 1)[1])))
    client_watch = cache.subscribe("/registry/configmaps/ns/", lambda ev: ev.type)
    # Changes the cache never hears of, then its watch is lost.
    watches, store.watches = store.watches, []
    await store.update("/registry/configmaps/ns/kept", cm("kept", "new"))
    await store.delete("/registry/configmaps/ns/gone")
    await store.create("/registry/configmaps/ns/new", cm("new"))
    store.watches = watches
    store.lose_watches()
    for _ in range(100):
        if cache.revision == store.rev and store.watches:
            break
        await asyncio.sleep(0.01)
    assert cache.revision == store.rev
    assert sorted(seen) == [("ADDED", "new"), ("DELETED", "gone"), ("MODIFIED", "kept")]
    co = cache.get("/registry/configmaps/ns/kept")
    assert co is not None and co.obj["data"] == {"v": "new"}
    assert cache.get("/registry/configmaps/ns/gone") is None
    assert client_watch.closed  # its stream had a gap: the client lists again
    assert cache.events_since("/registry/configmaps/", store.rev - 1) is None  # 410 for older resumes
    # And it follows the store again.
    kv = await store.create("/registry/configmaps/ns/later", cm("later"))
    await cache.wait_for(kv.mod_revision, timeout=5)
    assert cache.get(kv.key) is not None
    await cache.close()


def _event(rev: int, size: int) -> CacheEvent:
    from kybernetes.apiserver.watchcache import CachedObject

    co = CachedObject("/registry/configmaps/ns/x", None, b"x" * size, rev)
    return CacheEvent("MODIFIED", rev, co.key, co, None)


class SmallWatcher(Watcher):
    MAX_PENDING = 10
    MAX_PENDING_BYTES = 100_000


def test_watcher_past_its_budget_is_closed_and_its_backlog_freed() -> None:
    closed: list[bool] = []
    w = SmallWatcher("/registry/configmaps/", lambda ev: "MODIFIED")
    w.on_overflow = lambda: closed.append(True)
    for rev in range(1, 10):
        w.push(_event(rev, 10_000))
    assert not w.closed and w.pending_bytes == 90_000
    assert [ev.rev for _, ev in w.take(25_000)] == [1, 2, 3]
    assert w.pending_bytes == 60_000
    for rev in range(10, 16):
        w.push(_event(rev, 10_000))
    assert w.closed and w.overflowed and closed == [True]
    assert not w.queue and w.pending_bytes == 0
    w.push(_event(99, 1))  # a closed watcher takes nothing more
    assert not w.queue


def test_watcher_event_budget() -> None:
    w = SmallWatcher("/registry/configmaps/", lambda ev: "MODIFIED")
    for rev in range(1, 11):
        w.push(_event(rev, 1))
    assert not w.closed
    w.push(_event(11, 1))
    assert w.overflowed and not w.queue


