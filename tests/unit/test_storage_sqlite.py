"""Behaviour of the SQLite store (the log store over the SQLite driver): writes and
preconditions, reads at revisions, watch replay and live delivery, group commit,
compaction, restart and durability."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
    StorageFullError,
    StoreError,
)
from kybernetes.storage.logstore import check_precondition, compaction_target
from kybernetes.storage.sqlite import SQLiteStore, is_disk_full, prefix_range_end

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "kv.db"), fsync=False)
    await s.start()
    yield s
    await s.close()


def db_rows(path: str) -> list[tuple[int, str, int]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT id, name, deleted FROM kv ORDER BY id").fetchall()
    finally:
        conn.close()


async def take(it: AsyncIterator[list[Event]], n: int, timeout: float = 5.0) -> list[Event]:
    """The next `n` events of a watch (which yields them in batches)."""
    out: list[Event] = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(it.__anext__(), timeout))
    assert len(out) == n, "a batch went past the events expected"
    return out


# -- pure helpers ---------------------------------------------------------------------------


def test_prefix_range_end() -> None:
    assert prefix_range_end("/registry/pods/") == "/registry/pods0"
    assert prefix_range_end("") is None
    assert prefix_range_end("a\U0010ffff") == "b"
    assert prefix_range_end("\ud7ff") == "\ue000"


def test_check_precondition_and_compaction_target() -> None:
    assert check_precondition("create", "k", None, 0) is None
    assert isinstance(check_precondition("update", "k", None, 0), KeyNotFoundError)
    assert compaction_target(100, 10, keep_revisions=30) == 70
    assert compaction_target(100, 80, keep_revisions=30) == 0
    samples = [(1.0, 5), (2.0, 9), (3.0, 20)]
    assert compaction_target(20, 0, samples=samples, cutoff=2.5) == 9
    assert compaction_target(20, 9, samples=samples, cutoff=2.5) == 0


# -- writes and reads -----------------------------------------------------------------------


async def test_create_get_update_delete_with_preconditions(store: SQLiteStore) -> None:
    assert store.current_revision() == 0
    kv = await store.create("/registry/pods/ns/a", b"v1")
    assert (kv.mod_revision, kv.create_revision, kv.value) == (1, 1, b"v1")
    with pytest.raises(KeyExistsError):
        await store.create("/registry/pods/ns/a", b"again")
    with pytest.raises(KeyNotFoundError):
        await store.update("/registry/pods/ns/missing", b"x")
    with pytest.raises(KeyNotFoundError):
        await store.delete("/registry/pods/ns/missing")

    up = await store.update("/registry/pods/ns/a", b"v2", expected_revision=1)
    assert (up.mod_revision, up.create_revision) == (2, 1)
    with pytest.raises(RevisionMismatchError) as mismatch:
        await store.update("/registry/pods/ns/a", b"v3", expected_revision=1)
    assert mismatch.value.current == up
    with pytest.raises(RevisionMismatchError):
        await store.delete("/registry/pods/ns/a", expected_revision=1)
    assert await store.get("/registry/pods/ns/a") == up
    assert store.current_revision() == 2  # failed writes consume no revision

    gone = await store.delete("/registry/pods/ns/a", expected_revision=2)
    assert (gone.value, gone.mod_revision, gone.create_revision) == (b"v2", 3, 1)
    assert await store.get("/registry/pods/ns/a") is None
    assert (await store.get("/registry/pods/ns/a", revision=2)) == up
    assert (await store.get("/registry/pods/ns/a", revision=1)).value == b"v1"  # type: ignore[union-attr]

    again = await store.create("/registry/pods/ns/a", b"new")
    assert (again.mod_revision, again.create_revision) == (4, 4)
    with pytest.raises(FutureRevisionError):
        await store.get("/registry/pods/ns/a", revision=5)


async def test_failed_op_in_batch_does_not_fail_others(store: SQLiteStore) -> None:
    await store.create("/registry/x/taken", b"1")
    results = await asyncio.gather(
        store.create("/registry/x/a", b"a"),
        store.create("/registry/x/a", b"dup"),
        store.update("/registry/x/nope", b"n"),
        store.update("/registry/x/taken", b"2", expected_revision=1),
        store.create("/registry/x/b", b"b"),
        return_exceptions=True,
    )
    assert isinstance(results[1], KeyExistsError)
    assert isinstance(results[2], KeyNotFoundError)
    ok = [r for i, r in enumerate(results) if i not in (1, 2)]
    assert [r.mod_revision for r in ok] == [2, 3, 4]  # type: ignore[union-attr]
    assert (await store.get("/registry/x/a")).value == b"a"  # type: ignore[union-attr]


async def test_list_prefix_limit_start_after_and_past_revision(store: SQLiteStore) -> None:
    for name in ["c", "a", "e", "b", "d"]:
        await store.create(f"/registry/cm/{name}", name.encode())
    # LIKE wildcards in keys must not widen a prefix.
    await store.create("/registry/a_b/1", b"")
    await store.create("/registry/axb/1", b"")
    await store.create("/registry/a%b/1", b"")
    await store.create("/registry/cm", b"not under the prefix")
    assert [kv.key for kv in (await store.list("/registry/a_b/")).items] == ["/registry/a_b/1"]
    assert [kv.key for kv in (await store.list("/registry/a%")).items] == ["/registry/a%b/1"]

    page1 = await store.list("/registry/cm/", limit=2)
    assert [kv.key[-1] for kv in page1.items] == ["a", "b"] and page1.more
    page2 = await store.list("/registry/cm/", limit=2, start_after=page1.items[-1].key, revision=page1.revision)
    assert [kv.key[-1] for kv in page2.items] == ["c", "d"] and page2.more
    page3 = await store.list("/registry/cm/", limit=2, start_after=page2.items[-1].key, revision=page1.revision)
    assert [kv.key[-1] for kv in page3.items] == ["e"] and not page3.more
    exact = await store.list("/registry/cm/", limit=5)
    assert len(exact.items) == 5 and not exact.more

    before = store.current_revision()
    await store.update("/registry/cm/a", b"changed")
    await store.delete("/registry/cm/b")
    now = await store.list("/registry/cm/")
    assert now.revision == before + 2
    assert [(kv.key[-1], kv.value) for kv in now.items] == [
        ("a", b"changed"), ("c", b"c"), ("d", b"d"), ("e", b"e"),
    ]
    old = await store.list("/registry/cm/", revision=before)
    assert old.revision == before
    assert [(kv.key[-1], kv.value) for kv in old.items][:2] == [("a", b"a"), ("b", b"b")]
    early = await store.list("/registry/cm/", revision=2)
    assert [kv.key for kv in early.items] == ["/registry/cm/a", "/registry/cm/c"]
    with pytest.raises(FutureRevisionError):
        await store.list("/registry/cm/", revision=now.revision + 1)


# -- compaction -----------------------------------------------------------------------------


async def test_history_until_compaction_then_compacted_error(store: SQLiteStore) -> None:
    store.driver.compact_chunk = 2  # several compaction transactions
    await store.create("/registry/k/a", b"1")  # 1
    await store.update("/registry/k/a", b"2")  # 2
    await store.update("/registry/k/a", b"3")  # 3
    await store.create("/registry/k/b", b"b")  # 4
    await store.delete("/registry/k/b")  # 5
    await store.create("/registry/k/c", b"c")  # 6
    assert (await store.get("/registry/k/a", revision=1)).value == b"1"  # type: ignore[union-attr]

    await store.compact(4)
    assert store.compacted_revision() == 4
    with pytest.raises(CompactedError) as err:
        await store.get("/registry/k/a", revision=2)
    assert (err.value.requested, err.value.compacted) == (2, 4)
    with pytest.raises(CompactedError):
        await store.list("/registry/k/", revision=3)
    with pytest.raises(CompactedError):
        store.watch("/registry/k/", 3)
    assert (await store.get("/registry/k/a", revision=4)).value == b"3"  # type: ignore[union-attr]
    at4 = await store.list("/registry/k/", revision=4)
    assert [kv.key[-1] for kv in at4.items] == ["a", "b"]
    assert [(i, d) for i, _, d in db_rows(store.path)] == [(3, 0), (4, 0), (5, 1), (6, 0)]
    # Watching from exactly the compaction point still replays what follows it.
    events = await take(store.watch("/registry/k/", 4), 2)
    assert [(e.type, e.kv.mod_revision) for e in events] == [("DELETE", 5), ("PUT", 6)]

    await store.compact(6)
    assert [(i, d) for i, _, d in db_rows(store.path)] == [(3, 0), (6, 0)]
    assert (await store.get("/registry/k/a")).value == b"3"  # type: ignore[union-attr]
    assert [kv.key for kv in (await store.list("/registry/k/")).items] == ["/registry/k/a", "/registry/k/c"]
    with pytest.raises(CompactedError):
        await store.compact(5)
    with pytest.raises(FutureRevisionError):
        await store.compact(7)


async def test_compact_keep_revisions(store: SQLiteStore) -> None:
    await store.create("/registry/k/a", b"0")
    for i in range(9):
        await store.update("/registry/k/a", str(i).encode())
    assert await store.compact_keep(keep_revisions=3) == 7
    assert store.compacted_revision() == 7
    assert await store.compact_keep(keep_revisions=3) == 0
    assert [i for i, _, _ in db_rows(store.path)] == [7, 8, 9, 10]


async def test_writes_keep_flowing_during_chunked_compaction(store: SQLiteStore) -> None:
    store.compact_chunk = 5
    await asyncio.gather(*(store.create(f"/registry/w/{i}", b"x") for i in range(100)))
    await asyncio.gather(*(store.update(f"/registry/w/{i}", b"y") for i in range(100)))
    target = store.current_revision()
    compaction = asyncio.create_task(store.compact(target))
    writes = await asyncio.gather(*(store.update(f"/registry/w/{i}", b"z") for i in range(20)))
    await compaction
    assert [w.mod_revision for w in writes] == list(range(target + 1, target + 21))
    listed = await store.list("/registry/w/")
    assert len(listed.items) == 100
    assert len(db_rows(store.path)) == 120


# -- watch ----------------------------------------------------------------------------------


async def test_watch_replays_then_goes_live_without_gap(store: SQLiteStore) -> None:
    store.history_page = 7  # replay spans several reads while writes continue
    for i in range(40):
        await store.create(f"/registry/p/{i}", b"0")
    await store.create("/registry/other/x", b"")  # outside the watched prefix

    async def writer() -> int:
        last = 0
        for rnd in range(10):
            res = await asyncio.gather(*(store.update(f"/registry/p/{i}", str(rnd).encode()) for i in range(25)))
            last = res[-1].mod_revision
            await asyncio.sleep(0)
        return last

    task = asyncio.create_task(writer())
    await asyncio.sleep(0)
    watch = store.watch("/registry/p/", 15)
    seen: list[Event] = []
    nxt: asyncio.Future[list[Event]] | None = None
    while not (task.done() and seen and seen[-1].kv.mod_revision >= task.result()):
        nxt = nxt or asyncio.ensure_future(watch.__anext__())
        done, _ = await asyncio.wait({nxt, task}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert done, "the watch stalled"
        if nxt.done():
            seen.extend(nxt.result())
            nxt = None
    final = task.result()
    await watch.aclose()
    revs = [e.kv.mod_revision for e in seen]
    assert revs == list(range(16, 41)) + list(range(42, final + 1))
    updates = [e for e in seen if not e.created]
    assert updates and all(e.prev is not None and e.prev.key == e.kv.key for e in updates)
    assert all(e.prev.mod_revision < e.kv.mod_revision for e in updates)  # type: ignore[union-attr]


async def test_watch_live_events_carry_prev_and_delete_value(store: SQLiteStore) -> None:
    watch = store.watch("/registry/s/", store.current_revision())
    first = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.01)  # subscribed, waiting live
    a = await store.create("/registry/s/a", b"1")
    b = await store.update("/registry/s/a", b"2")
    d = await store.delete("/registry/s/a")
    events = await asyncio.wait_for(first, 5)
    if len(events) < 3:
        events += await take(watch, 3 - len(events))
    assert events[0] == Event("PUT", a, None, created=True)
    assert events[1] == Event("PUT", b, a)
    assert events[2].type == "DELETE" and events[2].kv == d and events[2].prev == b
    assert d.value == b"2"
    await watch.aclose()
    assert not store._subs


async def test_watch_from_future_revision_skips_until_it(store: SQLiteStore) -> None:
    await store.create("/registry/f/a", b"")
    watch = store.watch("/registry/f/", 3)
    first = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.01)
    await store.create("/registry/f/b", b"")  # 2
    await store.create("/registry/f/c", b"")  # 3
    await store.create("/registry/f/d", b"")  # 4
    batch = await asyncio.wait_for(first, 5)
    assert [(ev.kv.key, ev.kv.mod_revision) for ev in batch] == [("/registry/f/d", 4)]


async def test_slow_watch_overflows_and_recovers_from_history(store: SQLiteStore) -> None:
    store.watch_backlog = 5
    watch = store.watch("/registry/o/", 0)
    await store.create("/registry/o/k", b"0")
    assert (await take(watch, 1))[0].kv.mod_revision == 1
    for i in range(30):  # nobody reads meanwhile: the live backlog overflows
        await store.update("/registry/o/k", str(i).encode())
    sub = watch._sub  # type: ignore[attr-defined]
    assert sub is not None and sub.overflowed and not sub.pending
    events = await take(watch, 30)
    assert [e.kv.mod_revision for e in events] == list(range(2, 32))
    assert events[-1].kv.value == b"29"


async def test_watch_ends_when_store_closes(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "c.db"), fsync=False)
    await s.start()
    watch = s.watch("/registry/", 0)
    pending = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.01)
    await s.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(StoreError):
        await s.create("/registry/x", b"")


# -- watch delivery order -------------------------------------------------------------------


async def test_watcher_task_sees_a_commit_before_its_writer_resumes(store: SQLiteStore) -> None:
    """What lets the watch cache serve a client its own writes: a task parked on a watch
    runs before the writers whose batch it receives are resumed."""
    seen: list[int] = []

    async def follow() -> None:
        async for batch in store.watch("/registry/l/", store.current_revision()):
            seen.extend(e.kv.mod_revision for e in batch)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.01)
    kv = await store.create("/registry/l/a", b"")
    assert seen == [kv.mod_revision]
    results = await asyncio.gather(*(store.create(f"/registry/l/{i}", b"") for i in range(20)))
    assert seen == list(range(1, 22))
    assert max(r.mod_revision for r in results) == seen[-1]
    task.cancel()


# -- group commit, restart, durability ------------------------------------------------------


async def test_group_commit_of_concurrent_creates(tmp_path: Path) -> None:
    s = SQLiteStore(str(tmp_path / "g.db"))  # with fsync, as in production
    await s.start()
    try:
        before = s.commits
        results = await asyncio.gather(*(s.create(f"/registry/g/{i:03}", b"v") for i in range(200)))
        revs = [r.mod_revision for r in results]
        assert revs == sorted(set(revs)) and revs == list(range(1, 201))
        assert s.commits - before < 200
        assert len((await s.list("/registry/g/")).items) == 200
    finally:
        await s.close()


async def test_restart_keeps_data_revision_and_compaction(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    s = SQLiteStore(path, fsync=False)
    await s.start()
    await s.create("/registry/r/a", b"1")
    await s.create("/registry/r/b", b"2")
    await s.update("/registry/r/a", b"3")
    await s.delete("/registry/r/b")
    await s.compact(3)
    await s.close()

    s2 = SQLiteStore(path, fsync=False)
    await s2.start()
    try:
        assert s2.current_revision() == 4 and s2.compacted_revision() == 3
        assert (await s2.get("/registry/r/a")).value == b"3"  # type: ignore[union-attr]
        assert await s2.get("/registry/r/b") is None
        assert (await s2.create("/registry/r/c", b"")).mod_revision == 5
    finally:
        await s2.close()


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from kybernetes.storage.sqlite import SQLiteStore

    async def main(path):
        store = SQLiteStore(path)
        await store.start()
        async def worker(w):
            i = 0
            while True:
                key = f"/registry/d/{w}-{i}"
                kv = await store.create(key, key.encode())
                sys.stdout.write(f"ack {kv.mod_revision} {key}\\n")
                sys.stdout.flush()
                i += 1
        await asyncio.gather(*(worker(w) for w in range(8)))

    asyncio.run(main(sys.argv[1]))
    """
)


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "d.db")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, path], stdout=subprocess.PIPE, env=env, cwd=str(ROOT)
    )
    assert proc.stdout is not None
    lines: list[bytes] = []
    try:
        while len(lines) < 300:
            line = proc.stdout.readline()
            assert line, "child exited early"
            lines.append(line)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
    lines.extend(proc.stdout.read().splitlines(keepends=True))  # acks printed before the kill
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acked = {}
    for raw in lines:
        m = re.fullmatch(rb"ack (\d+) (\S+)\n", raw)
        if m:  # a line cut by the kill was never a complete acknowledgement
            acked[m.group(2).decode()] = int(m.group(1))
    assert len(acked) >= 300

    async def check() -> None:
        s = SQLiteStore(path)
        await s.start()
        try:
            assert s.current_revision() >= max(acked.values())
            for key, rev in acked.items():
                kv = await s.get(key)
                assert kv is not None and kv.mod_revision == rev and kv.value == key.encode()
        finally:
            await s.close()

    asyncio.run(check())


# -- a full disk ----------------------------------------------------------------------------


class _FullDisk:
    """The writer's connection, failing every insert as SQLite does on a full disk while `full`."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.full = True

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if self.full and sql.lstrip().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self.conn.execute(sql, *args)

    @property
    def in_transaction(self) -> bool:
        return self.conn.in_transaction

    def close(self) -> None:
        self.conn.close()


def test_disk_full_is_recognised() -> None:
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert is_disk_full(OSError(28, "No space left on device"))
    assert not is_disk_full(sqlite3.OperationalError("no such table: kv"))


async def test_full_disk_fails_writes_clearly_and_the_writer_survives(store: SQLiteStore) -> None:
    before = await store.create("/registry/full/a", b"1")
    disk = _FullDisk(store.driver._wconn)  # type: ignore[arg-type]
    store.driver._wconn = disk  # type: ignore[assignment]
    results = await asyncio.gather(store.create("/registry/full/b", b"2"),
                                   store.update("/registry/full/a", b"3"), return_exceptions=True)
    assert all(isinstance(r, StorageFullError) for r in results)
    assert "no space left on device" in str(results[0]) and "nothing was stored" in str(results[0])
    assert store.driver.full is not None
    # Reads keep working, and nothing of the failed batch is there.
    assert await store.get("/registry/full/a") == before
    assert await store.get("/registry/full/b") is None
    assert store.current_revision() == before.mod_revision
    disk.full = False  # space freed: the same writer takes writes again
    after = await store.create("/registry/full/b", b"2")
    assert after.mod_revision == before.mod_revision + 1
    assert store.driver.full is None
