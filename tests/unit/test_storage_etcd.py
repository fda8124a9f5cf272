"""The etcd backend against a real etcd (one throwaway member for the module): the same
`Store` contract as the SQLite store, checked on both backends, then what only etcd
has: several servers on one etcd, compaction by another server, failover between
endpoints, TLS client certificates, etcd's space quota."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from kybernetes.apiserver.watchcache import WatchCache, encode_for_store
from kybernetes.storage.etcd import EtcdStore, classify, parse_endpoint, prefix_end
from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
    StorageFullError,
    Store,
    StoreError,
)
from kybernetes.storage.sqlite import SQLiteStore
from kybernetes.testing.cluster import free_port
from kybernetes.testing.etcd import EtcdCluster, EtcdProcess, etcd_binary

needs_etcd = pytest.mark.skipif(etcd_binary() is None,
                                reason="no etcd binary: install Debian's etcd-server (scripts/install.sh does)")
_prefixes = itertools.count()


@pytest.fixture(scope="module")
def etcd() -> Iterator[EtcdProcess]:
    if etcd_binary() is None:
        pytest.skip("no etcd binary: install Debian's etcd-server (scripts/install.sh does)")
    proc = EtcdProcess()
    proc.start()
    yield proc
    proc.stop()


def fresh_prefix() -> str:
    # Each test its own key space on the shared etcd, as two clusters sharing one etcd.
    return f"/t{next(_prefixes)}"


@pytest.fixture(params=["sqlite", pytest.param("etcd", marks=needs_etcd)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "kv.db"), fsync=False)
    else:
        s = EtcdStore([request.getfixturevalue("etcd").url], prefix=fresh_prefix())
    await s.start()
    yield s
    await s.close()


async def take(it: AsyncIterator[list[Event]], n: int, timeout: float = 5.0) -> list[Event]:
    out: list[Event] = []
    while len(out) < n:
        out.extend(await asyncio.wait_for(it.__anext__(), timeout))
    assert len(out) == n, "a batch went past the events expected"
    return out


# -- pure helpers -----------------------------------------------------------------------------


def test_prefix_end_and_endpoints_and_error_kinds() -> None:
    assert prefix_end(b"/registry/") == b"/registry0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"") == b"\x00"
    assert parse_endpoint("https://10.0.0.1:2379") == ("10.0.0.1:2379", True)
    assert parse_endpoint("http://[::1]:12379") == ("[::1]:12379", False)
    assert parse_endpoint("127.0.0.1:2379") == ("127.0.0.1:2379", False)
    assert parse_endpoint("unix:///run/kyb/localhost:2379") == ("unix:/run/kyb/localhost:2379", False)
    for bad in ("unix://run/etcd.sock", "unix:relative", "ftp://10.0.0.1:2379"):
        with pytest.raises(ValueError):
            parse_endpoint(bad)
    oor = grpc.StatusCode.OUT_OF_RANGE
    assert classify(oor, "etcdserver: mvcc: required revision has been compacted") == "compacted"
    assert classify(oor, "etcdserver: mvcc: required revision is a future revision") == "future"
    assert classify(grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded") == "nospace"
    assert classify(grpc.StatusCode.UNAVAILABLE, "etcdserver: leader changed") == "failover"
    assert classify(grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied") == "other"


# -- the contract, on both backends -----------------------------------------------------------


async def test_create_get_update_delete_with_preconditions(store: Store) -> None:
    r0 = store.current_revision()
    kv = await store.create("/registry/pods/ns/a", b"v1")
    assert (kv.mod_revision, kv.create_revision, kv.value) == (r0 + 1, r0 + 1, b"v1")
    with pytest.raises(KeyExistsError):
        await store.create("/registry/pods/ns/a", b"again")
    with pytest.raises(KeyNotFoundError):
        await store.update("/registry/pods/ns/missing", b"x")
    with pytest.raises(KeyNotFoundError):
        await store.update("/registry/pods/ns/missing", b"x", expected_revision=r0 + 1)
    with pytest.raises(KeyNotFoundError):
        await store.delete("/registry/pods/ns/missing")

    up = await store.update("/registry/pods/ns/a", b"v2", expected_revision=r0 + 1)
    assert (up.mod_revision, up.create_revision) == (r0 + 2, r0 + 1)
    with pytest.raises(RevisionMismatchError) as mismatch:
        await store.update("/registry/pods/ns/a", b"v3", expected_revision=r0 + 1)
    assert mismatch.value.current == up
    with pytest.raises(RevisionMismatchError):
        await store.delete("/registry/pods/ns/a", expected_revision=r0 + 1)
    assert await store.get("/registry/pods/ns/a") == up
    assert store.current_revision() == r0 + 2  # failed writes consume no revision

    gone = await store.delete("/registry/pods/ns/a", expected_revision=r0 + 2)
    assert (gone.value, gone.mod_revision, gone.create_revision) == (b"v2", r0 + 3, r0 + 1)
    assert await store.get("/registry/pods/ns/a") is None
    assert await store.get("/registry/pods/ns/a", revision=r0 + 2) == up
    assert (await store.get("/registry/pods/ns/a", revision=r0 + 1)).value == b"v1"  # type: ignore[union-attr]

    again = await store.create("/registry/pods/ns/a", b"new")
    assert (again.mod_revision, again.create_revision) == (r0 + 4, r0 + 4)
    plain = await store.update("/registry/pods/ns/a", b"newer")  # no expected revision: any will do
    assert (plain.mod_revision, plain.create_revision) == (r0 + 5, r0 + 4)
    with pytest.raises(FutureRevisionError):
        await store.get("/registry/pods/ns/a", revision=r0 + 100)


async def test_list_prefix_limit_start_after_and_past_revision(store: Store) -> None:
    for name in ["c", "a", "e", "b", "d"]:
        await store.create(f"/registry/cm/{name}", name.encode())
    await store.create("/registry/cm", b"not under the prefix")
    await store.create("/registry/cmx/a", b"not under the prefix either")

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
    with pytest.raises(FutureRevisionError):
        await store.list("/registry/cm/", revision=now.revision + 100)


async def test_unlimited_list_spanning_several_etcd_pages(store: Store) -> None:
    if isinstance(store, EtcdStore):
        store.list_page = 3
    for i in range(10):
        await store.create(f"/registry/p/{i:02d}", b"")
    res = await store.list("/registry/p/")
    assert [kv.key[-2:] for kv in res.items] == [f"{i:02d}" for i in range(10)] and not res.more
    assert res.revision == store.current_revision()


async def test_watch_live_events_carry_prev_and_delete_value(store: Store) -> None:
    watch = store.watch("/registry/s/", store.current_revision())
    first = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.05)
    a = await store.create("/registry/s/a", b"1")
    await store.create("/registry/t/other", b"")  # outside the watched prefix
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


async def test_watch_from_a_revision_replays_then_follows(store: Store) -> None:
    r0 = store.current_revision()
    for i in range(10):
        await store.create(f"/registry/w/{i}", b"0")
    watch = store.watch("/registry/w/", r0 + 4)
    events = await take(watch, 6)
    assert [e.kv.mod_revision for e in events] == list(range(r0 + 5, r0 + 11))
    results = await asyncio.gather(*(store.update(f"/registry/w/{i}", b"1") for i in range(10)))
    live = await take(watch, 10)
    assert sorted(e.kv.mod_revision for e in live) == sorted(r.mod_revision for r in results)
    assert all(e.prev is not None and e.prev.value == b"0" for e in live)
    await watch.aclose()


async def test_watcher_task_sees_a_write_before_its_writer_resumes(store: Store) -> None:
    """What lets the watch cache serve a client its own writes."""
    seen: list[int] = []

    async def follow() -> None:
        async for batch in store.watch("/registry/l/", store.current_revision()):
            seen.extend(e.kv.mod_revision for e in batch)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    for i in range(5):
        kv = await store.create(f"/registry/l/{i}", b"")
        assert seen[-1:] == [kv.mod_revision]
    task.cancel()


async def test_watch_cache_reads_its_own_writes(store: Store) -> None:
    cache = WatchCache(store)
    await cache.start()
    try:
        for i in range(10):
            value = encode_for_store({"apiVersion": "v1", "kind": "ConfigMap",
                                      "metadata": {"name": f"c{i}", "namespace": "ns"}})
            kv = await store.create(f"/registry/configmaps/ns/c{i}", value)
            co = cache.get(kv.key)  # no wait
            assert co is not None and co.rev == kv.mod_revision
    finally:
        await cache.close()


async def test_compaction_makes_older_revisions_gone(store: Store) -> None:
    r0 = store.current_revision()
    await store.create("/registry/k/a", b"1")  # r0+1
    await store.update("/registry/k/a", b"2")  # r0+2
    await store.update("/registry/k/a", b"3")  # r0+3
    await store.create("/registry/k/b", b"b")  # r0+4
    await store.delete("/registry/k/b")  # r0+5
    await store.create("/registry/k/c", b"c")  # r0+6
    await store.compact(r0 + 4)
    assert store.compacted_revision() == r0 + 4
    with pytest.raises(CompactedError) as err:
        await store.get("/registry/k/a", revision=r0 + 2)
    assert (err.value.requested, err.value.compacted) == (r0 + 2, r0 + 4)
    with pytest.raises(CompactedError):
        await store.list("/registry/k/", revision=r0 + 3)
    with pytest.raises(CompactedError):
        store.watch("/registry/k/", r0 + 3)
    assert (await store.get("/registry/k/a", revision=r0 + 4)).value == b"3"  # type: ignore[union-attr]
    assert [kv.key[-1] for kv in (await store.list("/registry/k/", revision=r0 + 4)).items] == ["a", "b"]
    # Watching from exactly the compaction point still replays what follows it.
    watch = store.watch("/registry/k/", r0 + 4)
    events = await take(watch, 2)
    await watch.aclose()
    assert [(e.type, e.kv.mod_revision) for e in events] == [("DELETE", r0 + 5), ("PUT", r0 + 6)]
    assert events[0].kv.value == b"b" and events[0].prev is not None
    await store.compact(r0 + 4)  # again: nothing to do
    with pytest.raises(CompactedError):
        await store.compact(r0 + 3)
    with pytest.raises(FutureRevisionError):
        await store.compact(r0 + 100)


async def test_watch_ends_when_the_store_closes(store: Store) -> None:
    watch = store.watch("/registry/", store.current_revision())
    pending = asyncio.ensure_future(watch.__anext__())
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(StoreError):
        await store.create("/registry/x", b"")


# -- etcd only --------------------------------------------------------------------------------


@pytest.fixture
async def two(etcd: EtcdProcess) -> AsyncIterator[tuple[EtcdStore, EtcdStore]]:
    prefix = fresh_prefix()
    a, b = EtcdStore([etcd.url], prefix=prefix), EtcdStore([etcd.url], prefix=prefix)
    await a.start()
    await b.start()
    yield a, b
    await a.close()
    await b.close()


async def test_two_servers_on_one_etcd_see_each_others_writes(two: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = two
    watch = b.watch("/registry/", b.current_revision())
    kv = await a.create("/registry/cm/x", b"from a")
    events = await take(watch, 1)
    assert events[0].kv == kv and events[0].created
    up = await b.update("/registry/cm/x", b"from b", expected_revision=kv.mod_revision)
    with pytest.raises(RevisionMismatchError):  # a's view is stale: the transaction refuses it
        await a.update("/registry/cm/x", b"stale", expected_revision=kv.mod_revision)
    # b never read anything a wrote, yet its revision follows a's writes (its own etcd watch).
    last = await a.create("/registry/other/y", b"")
    for _ in range(100):
        if b.current_revision() >= last.mod_revision:
            break
        await asyncio.sleep(0.02)
    assert b.current_revision() == last.mod_revision > up.mod_revision
    await watch.aclose()


async def test_revision_follows_writes_no_watch_of_ours_covers(two: tuple[EtcdStore, EtcdStore]) -> None:
    a, b = two
    kv = await a.create("/elsewhere/x", b"")  # under the prefix, outside any watch
    for _ in range(150):  # etcd's progress notification (every 1 s on the test etcd)
        if b.current_revision() >= kv.mod_revision:
            break
        await asyncio.sleep(0.02)
    assert b.current_revision() >= kv.mod_revision


async def test_a_quiet_watch_gets_etcds_progress_as_a_bookmark(etcd: EtcdProcess) -> None:
    s = EtcdStore([etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        watch = s.watch("/registry/a/", s.current_revision())
        mine = await s.create("/registry/a/x", b"")
        elsewhere = await s.create("/registry/b/y", b"")  # not this watch's: no event
        assert [e.kv for e in await take(watch, 1)] == [mine]
        assert watch.progress_revision == mine.mod_revision
        # etcd's progress notification (every 1 s on the test etcd): an empty batch, after
        # which the watch is known to have had everything up to the other write.
        assert await asyncio.wait_for(watch.__anext__(), 5) == []
        assert watch.progress_revision >= elsewhere.mod_revision
        await watch.aclose()
    finally:
        await s.close()


async def test_progress_on_request(etcd: EtcdProcess) -> None:
    s = EtcdStore([etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        watch = s.watch("/registry/a/", s.current_revision())
        await asyncio.sleep(0.05)  # the etcd watch exists
        elsewhere = await s.create("/registry/b/y", b"")
        s.request_progress()
        assert await asyncio.wait_for(watch.__anext__(), 0.5) == []  # before the periodic one, mostly
        assert watch.progress_revision >= elsewhere.mod_revision
        await watch.aclose()
    finally:
        await s.close()


async def test_prefixes_keep_clusters_apart(etcd: EtcdProcess) -> None:
    a, b = EtcdStore([etcd.url], prefix=fresh_prefix()), EtcdStore([etcd.url], prefix=fresh_prefix())
    await a.start()
    await b.start()
    try:
        await a.create("/registry/cm/same", b"a")
        await b.create("/registry/cm/same", b"b")  # no KeyExistsError: another cluster's key
        assert [kv.value for kv in (await a.list("/registry/")).items] == [b"a"]
        assert (await b.get("/registry/cm/same")).value == b"b"  # type: ignore[union-attr]
    finally:
        await a.close()
        await b.close()


async def test_compaction_by_another_server_ends_old_reads_and_watches(
        two: tuple[EtcdStore, EtcdStore], etcd: EtcdProcess) -> None:
    a, b = two
    c = EtcdStore([etcd.url], prefix=a.prefix)
    await c.start()
    r0 = a.current_revision()
    for i in range(5):
        await a.create(f"/registry/z/{i}", b"")
    await a.compact(r0 + 3)
    assert max(b.compacted_revision(), c.compacted_revision()) < r0 + 3  # not told
    # A watch from before the compaction, opened by a server that did not know of it, is
    # ended by etcd with CompactedError, as the watch cache expects.
    with pytest.raises(CompactedError) as werr:
        await take(b.watch("/registry/z/", r0), 5)
    assert werr.value.compacted == r0 + 3 == b.compacted_revision()
    # A read learns of it from etcd's refusal, and how far it went.
    with pytest.raises(CompactedError) as err:
        await c.get("/registry/z/0", revision=r0 + 1)
    assert (err.value.requested, err.value.compacted) == (r0 + 1, r0 + 3)
    assert c.compacted_revision() == r0 + 3
    with pytest.raises(CompactedError):
        c.watch("/registry/z/", r0 + 2)
    assert len((await c.list("/registry/z/")).items) == 5
    await c.close()


async def test_failover_to_the_next_endpoint(etcd: EtcdProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    s = EtcdStore([dead, etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        watch = s.watch("/registry/", s.current_revision())
        kv = await s.create("/registry/cm/a", b"1")
        assert s._current is not None and s.endpoints[s._current.index] == etcd.url
        assert (await s.get("/registry/cm/a")) == kv
        assert (await take(watch, 1))[0].kv == kv
        await watch.aclose()
    finally:
        await s.close()


class _LosingKV:
    """A KV stub whose next `lose` transactions are applied but answered UNAVAILABLE."""

    def __init__(self, kv: object, lose: int) -> None:
        self._kv, self.lose = kv, lose

    def __getattr__(self, name: str) -> object:
        return getattr(self._kv, name)

    def Txn(self, req: object, timeout: float | None = None) -> object:  # noqa: N802 - the gRPC method
        async def run() -> object:
            resp = await self._kv.Txn(req, timeout=timeout)  # type: ignore[attr-defined]
            if self.lose:
                self.lose -= 1
                raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(),
                                           "Socket closed")
            return resp
        return run()


async def test_a_write_applied_but_unanswered_is_not_reported_as_a_conflict(etcd: EtcdProcess) -> None:
    s = EtcdStore([etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        def lose_next() -> None:
            assert s._current is not None
            s._current.kv = _LosingKV(s._current.kv, 1)  # type: ignore[assignment]

        lose_next()
        kv = await s.create("/registry/cm/a", b"v1")  # the retry finds the key: its own
        assert kv == await s.get("/registry/cm/a") and kv.value == b"v1"
        lose_next()
        up = await s.update("/registry/cm/a", b"v2", expected_revision=kv.mod_revision)
        assert up == await s.get("/registry/cm/a") and up.create_revision == kv.create_revision
        # A real conflict found by a retry is still one.
        await s.create("/registry/cm/b", b"theirs")
        lose_next()
        with pytest.raises(KeyExistsError):
            await s.create("/registry/cm/b", b"mine")
    finally:
        await s.close()


@needs_etcd
async def test_killing_the_member_in_use_of_three_moves_calls_and_watches_on() -> None:
    cluster = EtcdCluster(3)
    cluster.start()
    s = EtcdStore(cluster.urls, prefix="/ha")
    try:
        await s.start()
        watch = s.watch("/registry/", s.current_revision())
        before = await s.create("/registry/a", b"1")
        assert (await take(watch, 1))[0].kv == before
        assert s._current is not None
        victim = s._current.index
        cluster.members[victim].kill()
        # The write after the kill goes to another member; the watch resumes there.
        after = await s.update("/registry/a", b"2", expected_revision=before.mod_revision)
        assert s._current.index != victim
        ev = (await take(watch, 1, timeout=20))[0]
        assert ev.kv == after and ev.prev == before
        assert [kv.value for kv in (await s.list("/registry/")).items] == [b"2"]
        cluster.members[victim].launch()  # it rejoins and catches up
        cluster.members[victim].wait_healthy()
        back = EtcdStore([cluster.members[victim].url], prefix="/ha")
        await back.start()
        assert await back.get("/registry/a") == after
        await back.close()
        await watch.aclose()
    finally:
        await s.close()
        cluster.stop()


async def test_snapshot_holds_every_key_at_its_revision(etcd: EtcdProcess, tmp_path: Path) -> None:
    s = EtcdStore([etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        kv = await s.create("/registry/cm/snap", b"v")
        path = str(tmp_path / "etcd.db")
        rev = await s.snapshot(path)
        assert rev >= kv.mod_revision
        # etcd's own tool reads it back: the file is a whole etcd backend.
        out = subprocess.run(["etcdctl", "snapshot", "status", path, "-w", "json"], capture_output=True,
                             text=True, env={**os.environ, "ETCDCTL_API": "3"}, check=True).stdout
        assert json.loads(out)["revision"] == rev
        assert not os.path.exists(path + ".part")
    finally:
        await s.close()


async def test_watch_resumes_after_its_member_comes_back(tmp_path: Path) -> None:
    """A stream broken under a watch is reopened, from the watch's last revision."""
    proc = EtcdProcess()
    proc.start()
    s = EtcdStore([proc.url], prefix="/r")
    try:
        await s.start()
        watch = s.watch("/registry/", s.current_revision())
        first = await s.create("/registry/a", b"")
        assert (await take(watch, 1))[0].kv == first
        # A writer the watch does not share a channel with.
        other = EtcdStore([proc.url], prefix="/r")
        await other.start()
        s._hub._call.cancel()  # the stream breaks, as on a lost connection
        second = await other.create("/registry/b", b"")
        assert (await take(watch, 1))[0].kv == second
        await other.close()
        await watch.aclose()
    finally:
        await s.close()
        proc.stop()


async def test_slow_watch_is_paused_then_catches_up(etcd: EtcdProcess) -> None:
    s = EtcdStore([etcd.url], prefix=fresh_prefix())
    await s.start()
    try:
        s._hub.max_pending = 5
        r0 = s.current_revision()
        watch = s.watch("/registry/", r0)
        await s.create("/registry/o/first", b"")
        await take(watch, 1)  # the etcd watch is live; nobody reads from now on
        for i in range(30):
            await s.create(f"/registry/o/{i}", b"")
        await asyncio.sleep(0.2)
        w = watch._w
        assert w.paused and w.pending_events < 30  # the backlog stopped growing
        events = await take(watch, 30)
        assert [e.kv.mod_revision for e in events] == list(range(r0 + 2, r0 + 32))
        await watch.aclose()
    finally:
        await s.close()


async def test_tls_with_client_certificates() -> None:
    proc = EtcdProcess(tls=True)
    proc.start()
    try:
        assert proc.tls is not None and proc.url.startswith("https://")
        s = EtcdStore([proc.url], ca_file=proc.tls.ca_file, cert_file=proc.tls.client_cert,
                      key_file=proc.tls.client_key)
        await s.start()
        kv = await s.create("/registry/a", b"secret")
        assert (await s.get("/registry/a")) == kv
        assert (await s.list("")).items == [kv]  # no store prefix, no key prefix: every key
        await s.close()
        anonymous = EtcdStore([proc.url], ca_file=proc.tls.ca_file)
        anonymous.retry_timeout = 0.5
        with pytest.raises(StoreError):  # etcd demands a client certificate
            await anonymous.start()
        await anonymous.close()
    finally:
        proc.stop()


async def test_space_quota_gives_storage_full() -> None:
    proc = EtcdProcess(quota_bytes=256 * 1024)
    proc.start()
    s = EtcdStore([proc.url])
    try:
        await s.start()
        with pytest.raises(StorageFullError):
            for i in range(200):
                await s.update("/registry/big", b"x" * 64 * 1024) if i else await s.create(
                    "/registry/big", b"x" * 64 * 1024)
        with pytest.raises(StorageFullError):
            await s.create("/registry/after", b"")
        assert (await s.get("/registry/big")) is not None  # reads still work
    finally:
        await s.close()
        proc.stop()
