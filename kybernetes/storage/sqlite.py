"""The SQLite driver of the log store: schema, one group-commit writer thread, queries.

One `kv` row per write, its autoincrement id the revision (kine's table layout).
Writes are queued to one writer thread that commits everything queued in a single
transaction (group commit) and acknowledges each write only after that commit, so
an acknowledged write survives a kill -9. Reads run on a small thread pool with
their own connections, each in one snapshot. What a write means (preconditions,
the event it makes) is decided by the log store's `plan`, run inside the
transaction; this module only stores rows and reads them back.

A full disk fails the batch being committed with `StorageFullError` (nothing of
it is stored) and the thread keeps running: reads go on, and writes succeed
again once space is freed.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import os
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from kybernetes.storage.interface import (
    CompactedError,
    Event,
    KeyValue,
    ListResult,
    StorageFullError,
    StoreError,
)
from kybernetes.storage.logstore import (
    Latest,
    LogStore,
    OnCommit,
    Plan,
    WriteOp,
    check_precondition,
    compaction_target,
)

__all__ = [
    "SQLiteDriver",
    "SQLiteStore",
    "check_precondition",
    "compaction_target",
    "is_disk_full",
    "prefix_range_end",
]

log = logging.getLogger(__name__)

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
_SQLITE_FULL = 13


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


def is_disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for want of disk space."""
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return (code is not None and code & 0xFF == _SQLITE_FULL) or "database or disk is full" in str(exc)
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def disk_full_message(path: str) -> str:
    return (f"no space left on device: the store at {path} cannot take writes, nothing was stored; "
            "reads keep working and writes resume once space is freed")


# -- writer-thread messages ----------------------------------------------------------------


@dataclass(slots=True)
class _Write:
    op: WriteOp
    future: asyncio.Future[Event]


@dataclass(slots=True)
class _CompactJob:
    revision: int
    future: asyncio.Future[None]
    started: bool = False
    next_id: int = 0
    deleted_rows: int = 0


_STOP = object()


_INSERT = (
    "INSERT INTO kv (id, name, created, deleted, create_revision, prev_revision, value)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SQLiteDriver:
    """The log in one SQLite file (WAL mode)."""

    max_batch = 1000  # writes per transaction, so one commit never grows unbounded
    compact_chunk = 2000  # row ids examined per compaction transaction
    read_threads = 2

    def __init__(self, path: str, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.commits = 0  # write transactions committed (group commit makes this < writes)
        self.full: str | None = None  # why writes fail for want of space, while they do
        self._plan: Plan | None = None
        self._on_commit: OnCommit | None = None
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
        self._closed = False
        self._failed: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------

    async def open(self, plan: Plan, on_commit: OnCommit) -> int:
        self._plan = plan
        self._on_commit = on_commit
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._open_writer)
        self._readers = ThreadPoolExecutor(max_workers=self.read_threads, thread_name_prefix="sqlite-read")
        self._writer = threading.Thread(target=self._writer_main, name="sqlite-writer", daemon=True)
        self._writer.start()
        return self._w_rev

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            # Results posted by the writer's last batches run before this point
            # (call_soon_threadsafe is FIFO and to_thread's wakeup was queued after).
            await asyncio.sleep(0)
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    def compacted_revision(self) -> int:
        return self._compacted

    def failure(self) -> BaseException | None:
        return self._failed

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: transactions are opened explicitly, so a read
        # snapshot or a group-commit batch spans exactly the statements we choose.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    def _create_private(self) -> None:
        """Create the database file readable by its owner only: SQLite gives the -wal
        and -shm files the database file's mode, and the store holds Secrets."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return
        os.close(fd)

    def _open_writer(self) -> None:
        self._create_private()
        conn = self._connect()
        if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.fsync else 'NORMAL'}")
        if conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('kv', 'meta')").fetchone()[0] < 2:
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
        if self._failed is not None:
            raise StoreError(f"store writer failed: {self._failed}")
        return self._loop

    # -- writes (event loop side) ------------------------------------------------------

    async def write(self, op: WriteOp) -> Event:
        loop = self._check_open()
        fut: asyncio.Future[Event] = loop.create_future()
        self._queue.put(_Write(op, fut))
        return await fut

    async def compact(self, revision: int) -> None:
        loop = self._check_open()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_CompactJob(revision, fut))
        await fut

    @staticmethod
    def _resolve(results: list[tuple[asyncio.Future[Any], Any]]) -> None:
        for fut, res in results:
            if fut.done():
                continue  # the waiter was cancelled; the write itself still happened
            if isinstance(res, BaseException):
                fut.set_exception(res)
            else:
                fut.set_result(res)

    def _committed(self, rev: int, events: list[Event], results: list[tuple[asyncio.Future[Any], Any]]) -> None:
        if events and self._on_commit is not None:
            try:
                self._on_commit(rev, events)
            except Exception:  # noqa: BLE001 - a failing watcher must not block writes
                log.exception("delivering committed events failed")
        self._resolve(results)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:
            log.warning("event loop closed; dropping sqlite store results")

    # -- writer thread -----------------------------------------------------------------

    def _writer_main(self) -> None:
        jobs: collections.deque[_CompactJob] = collections.deque()
        stopping = False
        try:
            while True:
                items: list[Any] = []
                if not jobs and not stopping:
                    items.append(self._queue.get())
                writes: list[_Write] = []
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
            self._failed = exc
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
            if isinstance(item, _Write | _CompactJob):
                futures.append(item.future)
        self._post(self._resolve, [(f, err) for f in futures])

    def _latest(self, conn: sqlite3.Connection, key: str) -> Latest | None:
        row = conn.execute(
            "SELECT id, deleted, create_revision, value FROM kv WHERE name = ? ORDER BY id DESC LIMIT 1",
            (key,),
        ).fetchone()
        if row is None:
            return None
        return Latest(row[0], bool(row[1]), row[2], row[3])

    def _rollback(self, conn: sqlite3.Connection) -> None:
        # SQLite may already have rolled back on its own (e.g. after SQLITE_FULL).
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                log.warning("sqlite rollback failed", exc_info=True)

    def _commit_failed(self, exc: Exception, what: str) -> StoreError:
        if is_disk_full(exc):
            if self.full is None:
                log.error("disk full: %s; serving read-only until space is freed", exc)
            self.full = disk_full_message(self.path)
            return StorageFullError(self.full)
        log.exception("sqlite %s failed", what)
        return StoreError(f"{what} failed: {exc}")

    def _commit_batch(self, writes: list[_Write]) -> None:
        conn = self._wconn
        plan = self._plan
        assert conn is not None and plan is not None
        rev = self._w_rev
        results: list[tuple[asyncio.Future[Any], Any]] = []
        events: list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for w in writes:
                op = w.op
                # Inside the transaction, so earlier writes of this batch are visible.
                latest = self._latest(conn, op.key)
                ev = plan(op, latest, rev + 1)
                if not isinstance(ev, Event):
                    results.append((w.future, ev))
                    continue
                rev += 1
                kv = ev.kv
                conn.execute(_INSERT, (rev, kv.key, int(ev.created), int(ev.type == "DELETE"),
                                       kv.create_revision, latest.revision if latest is not None else 0,
                                       kv.value))
                events.append(ev)
                results.append((w.future, ev))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every waiter must learn the batch failed
            self._rollback(conn)
            err = self._commit_failed(exc, "write")
            self._post(self._resolve, [(w.future, err) for w in writes])
            return
        if self.full is not None and events:
            log.warning("disk space available again: writes resumed")
            self.full = None
        self._w_rev = rev
        self.commits += 1
        self._post(self._committed, rev, events, results)

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
            self._rollback(conn)
            err = self._commit_failed(exc, "compaction")
            self._post(self._resolve, [(job.future, err)])
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

    async def get(self, key: str, revision: int, latest: bool) -> KeyValue | None:
        return await self._read(self._get_sync, key, revision, latest)

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

    async def list(self, prefix: str, revision: int, latest: bool, limit: int, start_after: str) -> ListResult:
        return await self._read(self._list_sync, prefix, revision, latest, limit, start_after)

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

    async def history(self, prefix: str, after: int, upto: int, page: int) -> tuple[list[Event], int]:
        return await self._read(self._history_sync, prefix, after, upto, page)

    def _history_sync(self, prefix: str, after: int, upto: int, page: int) -> tuple[list[Event], int]:
        conn = self._reader()
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


class SQLiteStore(LogStore):
    """The embedded default `Store`: etcd semantics (`LogStore`) over one SQLite file."""

    driver: SQLiteDriver

    def __init__(self, path: str, *, fsync: bool = True) -> None:
        super().__init__(SQLiteDriver(path, fsync=fsync))
        self.path = path

    @property
    def commits(self) -> int:
        return self.driver.commits
