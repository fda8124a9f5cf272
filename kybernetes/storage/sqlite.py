"""SQLite backend of the `Store` protocol, modelled on kine's table layout.

Owns the on-disk schema (one `kv` row per write; the row id is the revision),
the single writer thread that group-commits queued writes, the read connections,
history replay and live fan-out for watches, in-process listeners for the API
server's watch cache, and chunked compaction.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

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

Listener = Callable[[list[Event]], None]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created INTEGER,
        deleted INTEGER,
        create_revision INTEGER,
        prev_revision INTEGER,
        value BLOB
    )""",
    "CREATE INDEX IF NOT EXISTS kv_name_id ON kv (name, id)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_COMPACT_KEY = "compact_revision"


# -- pure decisions -----------------------------------------------------------------------


def prefix_range_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix`
    (None: no upper bound). Range bounds avoid LIKE, whose `%`/`_` are wildcards."""
    trimmed = prefix
    while trimmed:
        last = ord(trimmed[-1])
        if last < 0x10FFFF:
            nxt = last + 1
            # Surrogates cannot be stored as UTF-8; the next storable code point follows them.
            if 0xD800 <= nxt <= 0xDFFF:
                nxt = 0xE000
            return trimmed[:-1] + chr(nxt)
        trimmed = trimmed[:-1]
    return None


@dataclass(frozen=True, slots=True)
class _Row:
    """The newest stored row of a key, as the writer sees it."""

    id: int
    deleted: bool
    create_revision: int
    value: bytes

    def kv(self, key: str) -> KeyValue:
        return KeyValue(key, self.value, self.id, self.create_revision)


def check_precondition(kind: str, key: str, latest: _Row | None, expected: int) -> StoreError | None:
    """Why a write may not be applied on top of `latest`, or None when it may."""
    present = latest is not None and not latest.deleted
    if kind == "create":
        return KeyExistsError(key) if present else None
    if not present or latest is None:
        return KeyNotFoundError(key)
    if expected and latest.id != expected:
        return RevisionMismatchError(latest.kv(key))
    return None


def compaction_target(
    current: int,
    compacted: int,
    keep_revisions: int | None = None,
    samples: collections.abc.Iterable[tuple[float, int]] = (),
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


# -- writer-thread messages ----------------------------------------------------------------


@dataclass(slots=True)
class _WriteOp:
    kind: str  # "create" | "update" | "delete"
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[KeyValue]


@dataclass(slots=True)
class _CompactJob:
    revision: int
    future: asyncio.Future[None]
    started: bool = False
    next_id: int = 0
    deleted_rows: int = 0


_STOP = object()


# -- watch plumbing ------------------------------------------------------------------------


@dataclass(eq=False, slots=True)
class _Subscriber:
    """Live events for one watch, filled on the event loop by the delivery callback."""

    prefix: str
    start: int  # every event after this revision is delivered here
    limit: int
    pending: collections.deque[Event] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    overflowed: bool = False
    closed: bool = False

    def push(self, events: list[Event]) -> None:
        if self.overflowed or self.closed:
            return
        added = False
        for ev in events:
            if ev.kv.key.startswith(self.prefix):
                self.pending.append(ev)
                added = True
        if len(self.pending) > self.limit:
            # A slow reader falls back to replaying from the database instead of
            # holding an unbounded backlog in memory.
            self.overflowed = True
            self.pending.clear()
        if added or self.overflowed:
            self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class _Watch:
    """Async iterator of one watch: replay from history up to the revision at which
    the live subscription began, then the live events after it."""

    def __init__(self, store: SQLiteStore, prefix: str, from_revision: int) -> None:
        self._store = store
        self._prefix = prefix
        self._last = from_revision  # newest revision handed to the caller
        self._cursor = from_revision  # newest revision the replay has scanned
        self._replay_to = from_revision
        self._sub: _Subscriber | None = None
        self._buffer: collections.deque[Event] = collections.deque()
        self._done = False

    def __aiter__(self) -> _Watch:
        return self

    async def __anext__(self) -> Event:
        while True:
            while self._buffer:
                ev = self._buffer.popleft()
                if ev.kv.mod_revision > self._last:
                    self._last = ev.kv.mod_revision
                    return ev
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
                events, self._cursor = await self._store._history(self._prefix, self._cursor, self._replay_to)
                self._buffer.extend(events)
                continue
            if sub.overflowed:
                self._store._unsubscribe(sub)
                self._sub = None
                continue
            if sub.pending:
                self._buffer.extend(sub.pending)
                sub.pending.clear()
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


class SQLiteStore:
    """A `Store` in one SQLite file.

    Writes are queued to one writer thread that commits everything queued in a
    single transaction (group commit) and acknowledges each write only after
    that commit. Reads run on a small thread pool with their own connections.
    """

    max_batch = 1000  # writes per transaction, so one commit never grows unbounded
    compact_chunk = 2000  # row ids examined per compaction transaction
    history_page = 500  # rows per replay query of a watch
    watch_backlog = 10_000  # live events a watch may hold before it re-replays
    read_threads = 2

    def __init__(self, path: str, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.commits = 0  # write transactions committed (group commit makes this < writes)
        self._rev = 0  # newest revision announced on the event loop
        self._compacted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._wconn: sqlite3.Connection | None = None
        self._w_rev = 0  # newest revision committed by the writer thread
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._loop_conn: sqlite3.Connection | None = None
        self._listeners: list[Listener] = []
        self._subs: set[_Subscriber] = set()
        self._rev_samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=4096)
        self._started = False
        self._closed = False
        self._writer_failed: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_writer)
        self._rev = self._w_rev
        self._rev_samples.append((time.monotonic(), self._rev))
        self._readers = ThreadPoolExecutor(max_workers=self.read_threads, thread_name_prefix="sqlite-read")
        self._writer = threading.Thread(target=self._writer_main, name="sqlite-writer", daemon=True)
        self._writer.start()
        self._started = True

    async def close(self) -> None:
        if not self._started or self._closed:
            self._closed = True
            return
        self._closed = True
        self._queue.put(_STOP)
        assert self._writer is not None
        await asyncio.to_thread(self._writer.join)
        # Deliveries queued by the writer's last batches run before this point
        # (call_soon_threadsafe is FIFO and to_thread's wakeup was queued after).
        await asyncio.sleep(0)
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()
        if self._loop_conn is not None:
            self._loop_conn.close()
            self._loop_conn = None

    def current_revision(self) -> int:
        return self._rev

    def compacted_revision(self) -> int:
        return self._compacted

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are opened explicitly, so a read
        # snapshot or a group-commit batch spans exactly the statements we choose.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _open_writer(self) -> None:
        conn = self._connect()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        for stmt in _SCHEMA:
            conn.execute(stmt)
        # sqlite_sequence remembers the highest id ever issued, even if rows were removed.
        seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
        top = conn.execute("SELECT MAX(id) FROM kv").fetchone()[0] or 0
        self._w_rev = max(top, seq[0] if seq else 0)
        self._compacted = self._read_compacted(conn)
        self._wconn = conn

    @staticmethod
    def _read_compacted(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (_COMPACT_KEY,)).fetchone()
        return int(row[0]) if row else 0

    def _check_open(self) -> asyncio.AbstractEventLoop:
        if self._closed:
            raise StoreError("store is closed")
        if self._loop is None:
            raise StoreError("store is not started")
        if self._writer_failed is not None:
            raise StoreError(f"store writer failed: {self._writer_failed}")
        return self._loop

    # -- listeners ---------------------------------------------------------------------

    def add_listener(self, callback: Listener, *, after_revision: int | None = None) -> None:
        """Call `callback` on the event loop with every committed batch's events, in
        revision order, before the writes of that batch are acknowledged.

        With `after_revision`, the events committed after it and already announced
        are first handed to `callback` (read synchronously), so a caller that listed
        at that revision misses nothing between its list and this call."""
        if after_revision is not None and after_revision < self._rev:
            if after_revision < self._compacted:
                raise CompactedError(after_revision, self._compacted)
            if self._loop_conn is None:
                self._loop_conn = self._connect()
            missed = self._history_sync(self._loop_conn, "", after_revision, self._rev, 0)[0]
            if missed:
                callback(missed)
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    # -- writes ------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._submit("create", key, value, 0)

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        return await self._submit("update", key, value, expected_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        return await self._submit("delete", key, b"", expected_revision)

    async def _submit(self, kind: str, key: str, value: bytes, expected: int) -> KeyValue:
        loop = self._check_open()
        fut: asyncio.Future[KeyValue] = loop.create_future()
        self._queue.put(_WriteOp(kind, key, bytes(value), expected, fut))
        return await fut

    async def compact(self, revision: int) -> None:
        loop = self._check_open()
        if revision > self._rev:
            raise FutureRevisionError(f"compact at {revision} beyond current revision {self._rev}")
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision == self._compacted:
            return
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_CompactJob(revision, fut))
        await fut

    async def compact_keep(
        self, *, keep_revisions: int | None = None, retention_seconds: float | None = None
    ) -> int:
        """Compact so that the last `keep_revisions` revisions, or the revisions of
        the last `retention_seconds` (as observed by this process), stay readable.
        Returns the revision compacted at, or 0 when there was nothing to drop."""
        if (keep_revisions is None) == (retention_seconds is None):
            raise ValueError("give exactly one of keep_revisions and retention_seconds")
        cutoff = None if retention_seconds is None else time.monotonic() - retention_seconds
        target = compaction_target(self._rev, self._compacted, keep_revisions, self._rev_samples, cutoff)
        if target:
            await self.compact(target)
        return target

    # -- writer thread -----------------------------------------------------------------

    def _writer_main(self) -> None:
        jobs: collections.deque[_CompactJob] = collections.deque()
        stopping = False
        try:
            while True:
                items: list[Any] = []
                if not jobs and not stopping:
                    items.append(self._queue.get())
                writes: list[_WriteOp] = []
                while True:
                    if not items:
                        try:
                            items.append(self._queue.get_nowait())
                        except queue.Empty:
                            break
                    item = items.pop()
                    if item is _STOP:
                        stopping = True
                    elif isinstance(item, _CompactJob):
                        jobs.append(item)
                    else:
                        writes.append(item)
                        if len(writes) >= self.max_batch:
                            break
                if writes:
                    self._commit_batch(writes)
                if jobs:
                    # One chunk between batches: queued writes wait at most one chunk.
                    if self._compact_step(jobs[0]):
                        jobs.popleft()
                elif stopping and self._queue.empty():
                    break
        except BaseException as exc:  # noqa: BLE001 - the thread must not die silently
            log.exception("sqlite writer thread failed")
            self._writer_failed = exc
            self._fail_queued(StoreError(f"store writer failed: {exc}"), jobs)
        finally:
            if self._wconn is not None:
                self._wconn.close()
                self._wconn = None

    def _fail_queued(self, err: StoreError, jobs: collections.deque[_CompactJob]) -> None:
        futures = [job.future for job in jobs]
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _WriteOp | _CompactJob):
                futures.append(item.future)
        self._post(self._resolve, [(f, err) for f in futures])

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            log.warning("event loop closed; dropping sqlite store results")

    def _latest(self, conn: sqlite3.Connection, key: str) -> _Row | None:
        row = conn.execute(
            "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return _Row(row[0], bool(row[1]), row[2], row[3])

    def _commit_batch(self, ops: list[_WriteOp]) -> None:
        conn = self._wconn
        assert conn is not None
        rev = self._w_rev
        results: list[tuple[asyncio.Future[Any], Any]] = []
        events: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in ops:
                # Inside the transaction, so earlier writes of this batch are visible.
                latest = self._latest(conn, op.key)
                err = check_precondition(op.kind, op.key, latest, op.expected)
                if err is not None:
                    results.append((op.future, err))
                    continue
                rev += 1
                ev = self._apply(conn, op, latest, rev)
                events.append(ev)
                results.append((op.future, ev.kv))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiter must learn the batch failed
            log.exception("sqlite write batch failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            err = StoreError(f"write failed: {exc}")
            self._post(self._resolve, [(op.future, err) for op in ops])
            return
        self._w_rev = rev
        self.commits += 1
        self._post(self._deliver, rev, events, results)

    @staticmethod
    def _apply(conn: sqlite3.Connection, op: _WriteOp, latest: _Row | None, rev: int) -> Event:
        prev_id = latest.id if latest is not None else 0
        insert = (
            "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        if op.kind == "create":
            conn.execute(insert, (rev, op.key, 1, 0, rev, prev_id, op.value))
            return Event("PUT", KeyValue(op.key, op.value, rev, rev), None, created=True)
        assert latest is not None
        prev = latest.kv(op.key)
        if op.kind == "update":
            conn.execute(insert, (rev, op.key, 0, 0, latest.create_revision, prev_id, op.value))
            return Event("PUT", KeyValue(op.key, op.value, rev, latest.create_revision), prev)
        # A tombstone keeps the last value so a replayed DELETE can carry it.
        conn.execute(insert, (rev, op.key, 0, 1, latest.create_revision, prev_id, latest.value))
        return Event("DELETE", KeyValue(op.key, latest.value, rev, latest.create_revision), prev)

    def _compact_step(self, job: _CompactJob) -> bool:
        """One chunk of `job` in its own transaction; True when the job is finished."""
        conn = self._wconn
        assert conn is not None
        if not job.started and job.revision <= self._compacted:
            self._post(self._resolve, [(job.future, None)])
            return True
        try:
            conn.execute("BEGIN IMMEDIATE")
            if not job.started:
                # The compaction point is recorded with (before) the first deletion, so a
                # reader's snapshot either has all old rows or knows they are going.
                conn.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (_COMPACT_KEY, job.revision)
                )
                job.next_id = conn.execute("SELECT MIN(id) FROM kv").fetchone()[0] or job.revision
            hi = min(job.next_id + self.compact_chunk, job.revision)
            cur = conn.execute(
                "DELETE FROM kv WHERE id >= ? AND id < ? AND (deleted = 1 OR EXISTS ("
                " SELECT 1 FROM kv AS n WHERE n.name = kv.name AND n.id > kv.id AND n.id <= ?))",
                (job.next_id, hi, job.revision),
            )
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001
            log.exception("sqlite compaction failed")
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self._post(self._resolve, [(job.future, StoreError(f"compaction failed: {exc}"))])
            return True
        if not job.started:
            job.started = True
            self._compacted = job.revision
        job.deleted_rows += max(cur.rowcount, 0)
        job.next_id = hi
        if hi >= job.revision:
            log.debug("compacted at %d, %d rows removed", job.revision, job.deleted_rows)
            self._post(self._resolve, [(job.future, None)])
            return True
        return False

    # -- event-loop side of the writer -------------------------------------------------

    @staticmethod
    def _resolve(results: list[tuple[asyncio.Future[Any], Any]]) -> None:
        for fut, res in results:
            if fut.done():
                continue  # the waiter was cancelled; the write itself still happened
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    def _deliver(self, rev: int, events: list[Event], results: list[tuple[asyncio.Future[Any], Any]]) -> None:
        if events:
            # Announce the revision, fan out and run listeners in one loop step, so
            # anything on the loop that sees the new revision also sees its events.
            self._rev = rev
            now = time.monotonic()
            if not self._rev_samples or now - self._rev_samples[-1][0] >= 1.0:
                self._rev_samples.append((now, rev))
            for cb in list(self._listeners):
                try:
                    cb(events)
                except Exception:  # noqa: BLE001 - one bad listener must not block writes
                    log.exception("sqlite store listener failed")
            for sub in list(self._subs):
                sub.push(events)
        self._resolve(results)

    def _subscribe(self, prefix: str) -> _Subscriber:
        self._check_open()
        sub = _Subscriber(prefix, self._rev, self.watch_backlog)
        self._subs.add(sub)
        return sub

    def _unsubscribe(self, sub: _Subscriber) -> None:
        self._subs.discard(sub)

    # -- reads -------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._conns_lock:
                self._read_conns.append(conn)
        return conn

    async def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = self._check_open()
        return await loop.run_in_executor(self._readers, fn, *args)

    def _read_revision(self, revision: int) -> int:
        if revision < 0:
            raise ValueError(f"negative revision {revision}")
        if revision > self._rev:
            raise FutureRevisionError(f"revision {revision} is newer than current revision {self._rev}")
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        return revision or self._rev

    def _snapshot_revision(self, conn: sqlite3.Connection, rev: int, latest: bool) -> int:
        """Check `rev` against the compaction point inside the open read transaction."""
        compacted = self._read_compacted(conn)
        if compacted > rev:
            if not latest:
                raise CompactedError(rev, compacted)
            # A compaction beyond the revision captured for a "newest" read started
            # meanwhile; read at this snapshot's own newest revision instead.
            rev = conn.execute("SELECT MAX(id) FROM kv").fetchone()[0] or rev
        return rev

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        rev = self._read_revision(revision)
        return await self._read(self._get_sync, key, rev, revision == 0)

    def _get_sync(self, key: str, rev: int, latest: bool) -> KeyValue | None:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            rev = self._snapshot_revision(conn, rev, latest)
            row = conn.execute(
                "SELECT id, deleted, create_revision, value FROM kv"
                " WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1",
                (key, rev),
            ).fetchone()
        finally:
            conn.execute("COMMIT")
        if row is None or row[1]:
            return None
        return KeyValue(key, row[3], row[0], row[2])

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        rev = self._read_revision(revision)
        if limit < 0:
            raise ValueError(f"negative limit {limit}")
        return await self._read(self._list_sync, prefix, rev, revision == 0, limit, start_after)

    def _list_sync(self, prefix: str, rev: int, latest: bool, limit: int, start_after: str) -> ListResult:
        conn = self._reader()
        where = ["k.name >= ?"]
        args: list[Any] = [prefix]
        end = prefix_range_end(prefix)
        if end is not None:
            where.append("k.name < ?")
            args.append(end)
        if start_after:
            where.append("k.name > ?")
            args.append(start_after)
        conn.execute("BEGIN")
        try:
            rev = self._snapshot_revision(conn, rev, latest)
            # Walk the (name, id) index in key order and keep a row only if it is its
            # key's newest at `rev`, so a small limit stops early on a large prefix.
            sql = (
                "SELECT k.name, k.id, k.create_revision, k.value FROM kv AS k"
                f" WHERE {' AND '.join(where)} AND k.id <= ?"
                " AND k.id = (SELECT MAX(m.id) FROM kv AS m WHERE m.name = k.name AND m.id <= ?)"
                " AND k.deleted = 0 ORDER BY k.name LIMIT ?"
            )
            rows = conn.execute(sql, (*args, rev, rev, limit + 1 if limit else -1)).fetchall()
        finally:
            conn.execute("COMMIT")
        more = bool(limit) and len(rows) > limit
        if more:
            rows = rows[:limit]
        return ListResult([KeyValue(r[0], r[3], r[1], r[2]) for r in rows], rev, more)

    # -- watch -------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> AsyncIterator[Event]:
        self._check_open()
        if from_revision < self._compacted:
            raise CompactedError(from_revision, self._compacted)
        return _Watch(self, prefix, from_revision)

    async def _history(self, prefix: str, after: int, upto: int) -> tuple[list[Event], int]:
        return await self._read(self._history_sync, None, prefix, after, upto, self.history_page)

    def _history_sync(
        self, conn: sqlite3.Connection | None, prefix: str, after: int, upto: int, page: int
    ) -> tuple[list[Event], int]:
        """Events under `prefix` with after < revision <= upto, at most `page` of them
        (0: all), and the revision up to which the range has been scanned."""
        conn = conn or self._reader()
        where = ["k.id > ?", "k.id <= ?", "k.name >= ?"]
        args: list[Any] = [after, upto, prefix]
        end = prefix_range_end(prefix)
        if end is not None:
            where.append("k.name < ?")
            args.append(end)
        conn.execute("BEGIN")
        try:
            compacted = self._read_compacted(conn)
            if compacted > after:
                raise CompactedError(after, compacted)
            rows = conn.execute(
                "SELECT k.id, k.name, k.created, k.deleted, k.create_revision, k.value,"
                " p.id, p.deleted, p.create_revision, p.value"
                " FROM kv AS k LEFT JOIN kv AS p ON p.id = k.prev_revision"
                f" WHERE {' AND '.join(where)} ORDER BY k.id LIMIT ?",
                (*args, page or -1),
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        events = [_row_event(r) for r in rows]
        scanned = rows[-1][0] if page and len(rows) == page else upto
        return events, scanned


def _row_event(r: tuple[Any, ...]) -> Event:
    rid, name, created, deleted, create_rev, value, pid, pdeleted, pcreate, pvalue = r
    kv = KeyValue(name, value, rid, create_rev)
    prev = None
    # The previous row may be gone (compacted) or be a tombstone before a re-create.
    if pid is not None and not pdeleted and not created:
        prev = KeyValue(name, pvalue, pid, pcreate)
    if deleted:
        return Event("DELETE", kv, prev)
    return Event("PUT", kv, prev, created=bool(created))

