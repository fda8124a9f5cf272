"""A read-only follower of the SQLite log: the `Store` of an API worker process.

Another process (the primary API server) owns the log and is its only writer. A
follower opens the same SQLite file read-only and tails the log by revision, as
kine's followers do: each committed row is one event, and rows are appended in
revision order by the one writer, so "every row after the last one seen" is the
next batch of events. The primary tells followers how far it has committed (a
`published` revision, e.g. from shared memory), and where it compacted, and wakes them (a readable file
descriptor, e.g. a pipe it writes a byte to after a commit); a follower also looks
every `poll_interval` seconds, which only matters if a wake-up was lost.

Reads at a revision, the compaction point and watch replay are the SQLite driver's
own queries on read-only connections; writes and compaction are refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from kybernetes.storage.interface import CompactedError, Event, StoreError
from kybernetes.storage.logstore import LogStore, OnCommit, Plan, WriteOp
from kybernetes.storage.sqlite import SQLiteDriver

log = logging.getLogger(__name__)

READ_ONLY = "this store is a read-only follower: writes go to the primary API server"


def tail_ranges(current: int, target: int, page: int) -> list[tuple[int, int]]:
    """The (after, upto] revision ranges a follower at `current` reads to reach `target`,
    at most `page` revisions each (a page of the log never holds more rows than that)."""
    out = []
    while current < target:
        upto = min(target, current + page)
        out.append((current, upto))
        current = upto
    return out


class FollowerDriver(SQLiteDriver):
    """The SQLite driver's reads on read-only connections, plus a tail of the log that
    hands new rows to the log store as committed batches."""

    page = 1000  # revisions per tail read
    poll_interval = 1.0  # seconds between looks when no wake-up came

    def __init__(self, path: str, published: Callable[[], int],
                 published_compacted: Callable[[], int] | None = None) -> None:
        super().__init__(path, fsync=False)
        self._published = published
        self._published_compacted = published_compacted
        self._rev = 0  # newest revision handed to the log store
        self._delivered = 0  # revision of the newest event handed over
        self._wake = asyncio.Event()
        self._tail_task: asyncio.Task[None] | None = None
        self._reach: list[tuple[int, asyncio.Future[None]]] = []
        self._wake_fd: int | None = None
        # Called once when the follower can no longer follow (fell behind compaction,
        # or the primary is gone): its reads would only get staler.
        self.on_fatal: Callable[[BaseException], None] | None = None

    def _connect(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        return conn

    # -- lifecycle -----------------------------------------------------------------------

    async def open(self, plan: Plan, on_commit: OnCommit) -> int:
        if not os.path.exists(self.path):
            raise StoreError(f"no store at {self.path}: the primary API server creates it")
        self._plan = plan
        self._on_commit = on_commit
        self._loop = asyncio.get_running_loop()
        self._readers = ThreadPoolExecutor(max_workers=self.read_threads, thread_name_prefix="follower-read")
        self._rev, self._compacted = await self._read(self._head_sync)
        self._delivered = self._rev
        self._tail_task = asyncio.create_task(self._tail(), name="store-follower")
        return self._rev

    async def close(self) -> None:
        if self._wake_fd is not None and self._loop is not None:
            self._loop.remove_reader(self._wake_fd)
            self._wake_fd = None
        if self._tail_task is not None:
            self._tail_task.cancel()
            try:
                await self._tail_task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass
            self._tail_task = None
        for _, fut in self._reach:
            if not fut.done():
                fut.set_exception(StoreError("store is closed"))
        self._reach = []
        await super().close()

    def _head_sync(self) -> tuple[int, int]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            top = conn.execute("SELECT MAX(id) FROM kv").fetchone()[0] or 0
            try:
                seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'kv'").fetchone()
            except sqlite3.OperationalError:
                seq = None
            return max(top, seq[0] if seq else 0), self._read_compacted(conn)
        finally:
            conn.execute("COMMIT")

    def compacted_revision(self) -> int:
        # The primary publishes its compaction point as soon as it compacts; the log's own
        # record is read at each look, so without a publisher it lags by up to a poll.
        if self._published_compacted is not None:
            published = self._published_compacted()
            if published > self._compacted:
                self._compacted = published
        return self._compacted

    def _compacted_sync(self) -> int:
        return self._read_compacted(self._reader())

    # -- writes are the primary's ----------------------------------------------------------

    async def write(self, op: WriteOp) -> Event:
        raise StoreError(READ_ONLY)

    async def compact(self, revision: int) -> None:
        raise StoreError(READ_ONLY)

    # -- following -----------------------------------------------------------------------

    def watch_fd(self, fd: int) -> None:
        """Wake the tail whenever `fd` (the read end of the primary's notification pipe)
        becomes readable; end of file means the primary is gone."""
        assert self._loop is not None
        os.set_blocking(fd, False)
        self._wake_fd = fd
        self._loop.add_reader(fd, self._on_wake_fd)

    def _on_wake_fd(self) -> None:
        fd = self._wake_fd
        if fd is None:
            return
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError as e:
            data = b""
            log.warning("reading the primary's wake-ups failed: %s", e)
        if not data:
            assert self._loop is not None
            self._loop.remove_reader(fd)
            self._wake_fd = None
            self._fatal(StoreError("the primary API server closed its notification pipe"))
            return
        self._wake.set()

    def poke(self) -> None:
        """Look for new rows now (a reader knows the primary has committed more)."""
        self._wake.set()

    @property
    def revision(self) -> int:
        """The newest revision this follower has read the log up to."""
        return self._rev

    @property
    def delivered(self) -> int:
        """The revision of the newest event handed to the log store."""
        return self._delivered

    async def reach(self, rev: int) -> None:
        """Return once the log has been read up to `rev` (which the primary published)."""
        if self._rev >= rev:
            return
        assert self._loop is not None
        fut: asyncio.Future[None] = self._loop.create_future()
        self._reach.append((rev, fut))
        self._wake.set()
        await fut

    async def _tail(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.catch_up()
                self._compacted = max(self._compacted, await self._read(self._compacted_sync))
            except asyncio.CancelledError:
                raise
            except CompactedError as e:
                self._fatal(e)
                return
            except Exception as e:  # noqa: BLE001 - a busy or briefly unreadable file: look again
                log.warning("reading the store's log failed: %s; retrying", e)
                await asyncio.sleep(0.1)

    async def catch_up(self) -> None:
        """Read the log up to the revision the primary published, handing each page's
        events to the log store as one committed batch."""
        target = self._published()
        for after, upto in tail_ranges(self._rev, target, self.page):
            events, scanned = await self.history("", after, upto, self.page)
            if events and self._on_commit is not None:
                self._delivered = events[-1].kv.mod_revision
                self._on_commit(self._delivered, events)
            self._rev = max(self._rev, scanned)
        self._resolve_reach()

    def _resolve_reach(self) -> None:
        if not self._reach:
            return
        pending = []
        for want, fut in self._reach:
            if self._rev >= want:
                if not fut.done():
                    fut.set_result(None)
            else:
                pending.append((want, fut))
        self._reach = pending

    def _fatal(self, exc: BaseException) -> None:
        log.critical("the store follower cannot follow the log any more: %s", exc)
        for _, fut in self._reach:
            if not fut.done():
                fut.set_exception(StoreError(f"store follower stopped: {exc}"))
        self._reach = []
        if self.on_fatal is not None:
            self.on_fatal(exc)


class FollowerStore(LogStore):
    """A read-only `Store` over the SQLite file another process writes."""

    driver: FollowerDriver

    def __init__(self, path: str, published: Callable[[], int],
                 published_compacted: Callable[[], int] | None = None) -> None:
        super().__init__(FollowerDriver(path, published, published_compacted))
        self.path = path

    def poke(self) -> None:
        self.driver.poke()

    async def reach(self, rev: int) -> int:
        """Read the log up to `rev`; returns the revision of the newest event at or
        below it that was handed to watches (what a cache following this store must
        reach to have seen every write up to `rev`)."""
        await self.driver.reach(rev)
        return min(rev, self.driver.delivered) if self.driver.delivered else rev
