"""etcd semantics over a log of writes: the `Store` protocol on top of a small driver.

A driver (see `Driver`; `storage.sqlite.SQLiteDriver` is the one we ship) keeps an
append-only log of rows, one per write, whose id is the revision, and runs reads
and group-committed write batches. This layer owns what makes that log behave
like etcd, as kine's `logstructured` layer does over its SQL dialects:

- revisions: the newest revision announced to readers and watchers;
- preconditions: create-if-absent and compare-on-revision, decided by the pure
  `plan_write` that the driver runs inside its write transaction;
- watch from a revision: replay from the log, then live fan-out of committed
  batches, with a bounded backlog per watch (a slow one goes back to replaying);
- compaction policy: which revision to compact at, by count or by age.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StoreError,
)

log = logging.getLogger(__name__)

WriteKind = Literal["create", "update", "delete"]


# -- what the driver runs inside its transaction --------------------------------------------


@dataclass(frozen=True, slots=True)
class Latest:
    """The newest row of a key in the log (possibly a tombstone)."""

    revision: int
    deleted: bool
    create_revision: int
    value: bytes

    def kv(self, key: str) -> KeyValue:
        return KeyValue(key, self.value, self.revision, self.create_revision)


@dataclass(frozen=True, slots=True)
class WriteOp:
    kind: WriteKind
    key: str
    value: bytes
    expected: int  # 0: any revision


def check_precondition(kind: WriteKind, key: str, latest: Latest | None, expected: int) -> StoreError | None:
    """Why a write may not be applied on top of `latest`, or None when it may."""
    present = latest is not None and not latest.deleted
    if kind == "create":
        return KeyExistsError(key) if present else None
    if not present or latest is None:
        return KeyNotFoundError(key)
    if expected and latest.revision != expected:
        return RevisionMismatchError(latest.kv(key))
    return None


def plan_write(op: WriteOp, latest: Latest | None, rev: int) -> Event | StoreError:
    """The event `op` makes at revision `rev` on top of `latest`, or why it is refused.
    The driver appends one row for the event: its value, `created`/`deleted` flags,
    create revision and `latest`'s revision as the previous one."""
    err = check_precondition(op.kind, op.key, latest, op.expected)
    if err is not None:
        return err
    if op.kind == "create":
        return Event("PUT", KeyValue(op.key, op.value, rev, rev), None, created=True)
    assert latest is not None
    prev = latest.kv(op.key)
    if op.kind == "update":
        return Event("PUT", KeyValue(op.key, op.value, rev, latest.create_revision), prev)
    # A delete's row keeps the last value so a replayed DELETE can carry it.
    return Event("DELETE", KeyValue(op.key, latest.value, rev, latest.create_revision), prev)


Plan = Callable[[WriteOp, "Latest | None", int], "Event | StoreError"]
OnCommit = Callable[[int, list[Event]], None]


class Driver(Protocol):
    """A storage engine for the log: rows keyed by revision, one writer, snapshot reads.

    `open` hands over `plan`, which the driver calls for every write inside the write
    transaction (with the key's newest row and the revision the write would get), and
    `on_commit`, which it calls on the event loop with each committed batch's newest
    revision and events, before any write of that batch is acknowledged."""

    async def open(self, plan: Plan, on_commit: OnCommit) -> int:
        """Open or create the log; returns its newest revision."""
        ...

    async def close(self) -> None: ...

    def compacted_revision(self) -> int: ...

    def failure(self) -> BaseException | None:
        """Why the driver can take no more writes, if so."""
        ...

    async def write(self, op: WriteOp) -> Event:
        """Apply `op` in the next group commit; raises the StoreError `plan` returned,
        or StorageFullError / StoreError when the commit failed (nothing stored)."""
        ...

    async def compact(self, revision: int) -> None: ...

    async def get(self, key: str, revision: int, latest: bool) -> KeyValue | None:
        """The key at `revision`; with `latest`, a compaction racing the read moves the
        read to the snapshot's newest revision instead of raising CompactedError."""
        ...

    async def list(self, prefix: str, revision: int, latest: bool, limit: int, start_after: str) -> ListResult: ...

    async def history(self, prefix: str, after: int, upto: int, page: int) -> tuple[list[Event], int]:
        """Events under `prefix` with after < revision <= upto, at most `page` (0: all),
        and the revision up to which the range was scanned."""
        ...


# -- compaction policy -----------------------------------------------------------------------


def compaction_target(
    current: int,
    compacted: int,
    keep_revisions: int | None = None,
    samples: Iterable[tuple[float, int]] = (),
    cutoff: float | None = None,
) -> int:
    """The revision to compact at to keep `keep_revisions` revisions, or every
    revision newer than `cutoff` (a time; samples are (time, current revision)
    observations in time order). Returns 0 when nothing would be dropped."""
    target = 0
    if keep_revisions is not None:
        target = current - keep_revisions
    elif cutoff is not None:
        for when, rev in samples:
            if when > cutoff:
                break
            target = rev
    return target if target > compacted else 0


# -- watch plumbing ------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Subscriber:
    """Live events for one watch, filled on the event loop by the commit callback."""

    prefix: str
    start: int  # every event after this revision is delivered here
    max_events: int
    max_bytes: int
    pending: list[Event] = field(default_factory=list)
    pending_bytes: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def push(self, events: list[Event]) -> None:
        if self.overflowed or self.closed:
            return
        # One commit's events are in memory anyway; the budget is for what a reader
        # leaves unread across commits.
        behind = bool(self.pending)
        prefix = self.prefix
        size = 0
        added = False
        for ev in events:
            if ev.kv.key.startswith(prefix):
                self.pending.append(ev)
                size += len(ev.kv.value)
                added = True
        self.pending_bytes += size
        if behind and (len(self.pending) > self.max_events or self.pending_bytes > self.max_bytes):
            # A slow reader goes back to replaying from the log instead of holding an
            # unbounded backlog in memory.
            self.overflowed = True
            self.take()
        if added or self.overflowed:
            self.wake.set()

    def take(self) -> list[Event]:
        batch, self.pending, self.pending_bytes = self.pending, [], 0
        return batch

    def close(self) -> None:
        self.closed = True
        self.pending, self.pending_bytes = [], 0
        self.wake.set()


class _Watch:
    """One watch: replay from the log up to the revision at which the live subscription
    began, then the live batches after it. Iterates `list[Event]`."""

    def __init__(self, store: LogStore, prefix: str, from_revision: int) -> None:
        self._store = store
        self._prefix = prefix
        self._last = from_revision  # newest revision handed to the caller
        self._cursor = from_revision  # newest revision the replay has scanned
        self._replay_to = from_revision
        self._sub: _Subscriber | None = None
        self._done = False

    def __aiter__(self) -> _Watch:
        return self

    def _fresh(self, events: list[Event]) -> list[Event]:
        """The part of `events` not handed out yet (a replay and the live feed overlap)."""
        last = self._last
        if events and events[0].kv.mod_revision <= last:
            events = [ev for ev in events if ev.kv.mod_revision > last]
        if events:
            self._last = events[-1].kv.mod_revision
        return events

    async def __anext__(self) -> list[Event]:
        while True:
            if self._done:
                raise StopAsyncIteration
            sub = self._sub
            if sub is None:
                sub = self._sub = self._store._subscribe(self._prefix)
                self._cursor = self._last
                self._replay_to = sub.start
            if sub.closed:
                self._finish()
                continue
            if self._cursor < self._replay_to:
                events, self._cursor = await self._store._replay(self._prefix, self._cursor, self._replay_to)
                batch = self._fresh(events)
                if batch:
                    return batch
                continue
            if sub.overflowed:
                self._store._unsubscribe(sub)
                self._sub = None
                continue
            if sub.pending:
                batch = self._fresh(sub.take())
                if batch:
                    return batch
                continue
            sub.wake.clear()
            await sub.wake.wait()

    async def aclose(self) -> None:
        self._finish()

    async def __aenter__(self) -> _Watch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._finish()

    def _finish(self) -> None:
        self._done = True
        if self._sub is not None:
            self._store._unsubscribe(self._sub)
            self._sub.close()
            self._sub = None

    def __del__(self) -> None:
        sub = self._sub
        if sub is not None:
            self._store._unsubscribe(sub)


# -- the store -----------------------------------------------------------------------------


class LogStore:
    """A `Store` over a `Driver`."""

    history_page = 500  # events per replay read of a watch
    watch_backlog = 10_000  # live events a watch may hold before it goes back to replaying
    watch_backlog_bytes = 64 * 1024 * 1024  # ... or bytes of values

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self._rev = 0  # newest revision announced on the event loop
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subs: set[_Subscriber] = set()
        self._rev_samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=4096)
        self._started = False
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._rev = await self.driver.open(plan_write, self._on_commit)
        self._rev_samples.append((time.monotonic(), self._rev))
        self._started = True

    async def close(self) -> None:
        if not self._started or self._closed:
            self._closed = True
            return
        self._closed = True
        await self.driver.close()
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()

    def current_revision(self) -> int:
        return self._rev

    def compacted_revision(self) -> int:
        return self.driver.compacted_revision()

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise StoreError("store is closed")
        if self._loop is None:
            raise StoreError("store is not started")
        failed = self.driver.failure()
        if failed is not None:
            raise StoreError(f"store writer failed: {failed}")
        return self._loop

    # -- writes ------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        self._check_open()
        return (await self.driver.write(WriteOp("create", key, bytes(value), 0))).kv

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        self._check_open()
        return (await self.driver.write(WriteOp("update", key, bytes(value), expected_revision))).kv

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        self._check_open()
        return (await self.driver.write(WriteOp("delete", key, b"", expected_revision))).kv

    def _on_commit(self, rev: int, events: list[Event]) -> None:
        # Announce the revision and fan out in one loop step, so anything on the loop
        # that sees the new revision can also get its events.
        if not events:
            return
        self._rev = rev
        now = time.monotonic()
        if not self._rev_samples or now - self._rev_samples[-1][0] >= 1.0:
            self._rev_samples.append((now, rev))
        for sub in list(self._subs):
            sub.push(events)

    # -- compaction --------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._check_open()
        compacted = self.driver.compacted_revision()
        if revision > self._rev:
            raise FutureRevisionError(f"compact at {revision} beyond current revision {self._rev}")
        if revision < compacted:
            raise CompactedError(revision, compacted)
        if revision == compacted:
            return
        await self.driver.compact(revision)

    async def compact_keep(
        self, *, keep_revisions: int | None = None, retention_seconds: float | None = None
    ) -> int:
        """Compact so that the last `keep_revisions` revisions, or the revisions of
        the last `retention_seconds` (as observed by this process), stay readable.
        Returns the revision compacted at, or 0 when there was nothing to drop."""
        if (keep_revisions is None) == (retention_seconds is None):
            raise ValueError("give exactly one of keep_revisions and retention_seconds")
        cutoff = None if retention_seconds is None else time.monotonic() - retention_seconds
        target = compaction_target(
            self._rev, self.driver.compacted_revision(), keep_revisions, self._rev_samples, cutoff
        )
        if target:
            await self.compact(target)
        return target

    # -- reads -------------------------------------------------------------------------

    def _read_revision(self, revision: int) -> int:
        if revision < 0:
            raise ValueError(f"negative revision {revision}")
        if revision > self._rev:
            raise FutureRevisionError(f"revision {revision} is newer than current revision {self._rev}")
        compacted = self.driver.compacted_revision()
        if revision and revision < compacted:
            raise CompactedError(revision, compacted)
        return revision or self._rev

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check_open()
        return await self.driver.get(key, self._read_revision(revision), revision == 0)

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        self._check_open()
        rev = self._read_revision(revision)
        if limit < 0:
            raise ValueError(f"negative limit {limit}")
        return await self.driver.list(prefix, rev, revision == 0, limit, start_after)

    # -- watch -------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> _Watch:
        self._check_open()
        compacted = self.driver.compacted_revision()
        if from_revision < compacted:
            raise CompactedError(from_revision, compacted)
        return _Watch(self, prefix, from_revision)

    async def _replay(self, prefix: str, after: int, upto: int) -> tuple[list[Event], int]:
        return await self.driver.history(prefix, after, upto, self.history_page)

    def _subscribe(self, prefix: str) -> _Subscriber:
        self._check_open()
        sub = _Subscriber(prefix, self._rev, self.watch_backlog, self.watch_backlog_bytes)
        self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: _Subscriber) -> None:
        self._subs.discard(sub)
