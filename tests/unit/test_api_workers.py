"""API worker processes: forwarding headers, the consistent-read rule, the shared revision
board, and the read-only store follower over a real SQLite log written by another store."""

from __future__ import annotations

import asyncio
import os

import pytest

from kybernetes.apiserver import auth
from kybernetes.apiserver.app import ServingOptions
from kybernetes.apiserver.workers import (
    PublishingStore,
    RevisionBoard,
    WorkerConfig,
    body_framing,
    encode_request_head,
    forwarded_request_headers,
    identity_headers,
    keeps_alive,
    needs_consistent_read,
    parse_response_head,
    replay_start,
    returned_headers,
    user_from_headers,
)
from kybernetes.storage.follower import FollowerStore, tail_ranges
from kybernetes.storage.interface import CompactedError, StoreError
from kybernetes.storage.sqlite import SQLiteStore

# -- pure parts ------------------------------------------------------------------------------


def test_identity_headers_round_trip_with_groups_uid_and_extra():
    user = auth.UserInfo(username="alice", uid="u-1", groups=["dev", "system:authenticated"],
                         extra={"scopes.example/a b": ["x", "y"]})
    assert user_from_headers(identity_headers(user)) == user


def test_no_remote_user_header_means_no_forwarded_identity():
    assert user_from_headers([("X-Remote-Group", "system:masters")]) is None


def test_forwarded_headers_drop_credentials_and_the_clients_own_remote_headers():
    client = [("Authorization", "Bearer secret"), ("X-Remote-User", "mallory"), ("x-remote-group", "system:masters"),
              ("X-Remote-Extra-Scope", "all"), ("Content-Type", "application/json"), ("Connection", "keep-alive"),
              ("User-Agent", "kubectl/v1.37"), ("Content-Length", "12")]
    out = forwarded_request_headers(client, auth.UserInfo(username="alice", groups=["dev"]))
    names = [k.lower() for k, _ in out]
    assert "authorization" not in names and "connection" not in names and "content-length" not in names
    assert user_from_headers(out) == auth.UserInfo(username="alice", groups=["dev"])
    assert ("Content-Type", "application/json") in out and ("User-Agent", "kubectl/v1.37") in out


def test_returned_headers_keep_what_the_client_needs():
    out = returned_headers([("Content-Type", "application/json"), ("Retry-After", "1"), ("Warning", "299 - x"),
                            ("Content-Length", "5"), ("Date", "x"), ("Server", "y"), ("Transfer-Encoding", "chunked")])
    assert out == [("Content-Type", "application/json"), ("Retry-After", "1"), ("Warning", "299 - x")]


@pytest.mark.parametrize(("method", "path", "query", "gated"), [
    ("GET", "/api/v1/namespaces/a/configmaps/x", {}, True),
    ("GET", "/api/v1/namespaces/a/configmaps", {"resourceVersion": ""}, True),
    ("GET", "/api/v1/namespaces/a/configmaps", {"resourceVersion": "0"}, False),
    ("GET", "/api/v1/namespaces/a/configmaps", {"watch": "1", "resourceVersion": "12"}, False),
    ("GET", "/apis", {}, True),
    ("GET", "/readyz", {}, False),
    ("GET", "/version", {}, False),
    ("POST", "/api/v1/namespaces/a/configmaps", {}, False),
])
def test_which_requests_wait_for_the_primarys_revision(method, path, query, gated):
    assert needs_consistent_read(method, path, query) is gated


def test_tail_ranges_cover_the_gap_in_pages():
    assert tail_ranges(10, 10, 100) == []
    assert tail_ranges(10, 15, 100) == [(10, 15)]
    assert tail_ranges(0, 250, 100) == [(0, 100), (100, 200), (200, 250)]


def test_revision_board_is_shared_private_and_only_moves_forward(tmp_path):
    path = str(tmp_path / "rev")
    board = RevisionBoard.create(path)
    reader = RevisionBoard.open(path)
    try:
        assert os.stat(path).st_mode & 0o777 == 0o600
        assert board.publish(42) is True
        assert reader.read() == 42
        assert board.publish(41) is False
        assert reader.read() == 42
        assert reader.read_compacted() == 0
        assert board.publish_compacted(30) is True
        assert (reader.read(), reader.read_compacted()) == (42, 30)
    finally:
        board.close()
        reader.close()


def test_worker_config_round_trips_serving_options():
    serving = ServingOptions(header_timeout=3.0, idle_timeout=7.0)
    from kybernetes.apiserver.workers import serving_dict

    cfg = WorkerConfig("/d", 6443, "127.0.0.1", "10.0.0.1", "10.43.0.0/16", "30000-32767", None, 300, True,
                       serving_dict(serving))
    back = WorkerConfig.from_json(cfg.to_json())
    assert back == cfg
    opts = back.serving_options()
    assert opts.header_timeout == 3.0 and opts.idle_timeout == 7.0 and opts.reuse_port is True
    assert opts.flow == serving.flow


# -- the follower over a real log -------------------------------------------------------------


@pytest.fixture
async def primary(tmp_path):
    store = SQLiteStore(str(tmp_path / "state.db"), fsync=False)
    await store.start()
    yield store
    await store.close()


async def test_follower_reads_what_the_primary_wrote_and_refuses_writes(primary, tmp_path):
    await primary.create("/registry/configmaps/a/one", b"1")
    follower = FollowerStore(str(tmp_path / "state.db"), primary.current_revision)
    await follower.start()
    try:
        assert follower.current_revision() == primary.current_revision()
        got = await follower.get("/registry/configmaps/a/one")
        assert got is not None and got.value == b"1"
        with pytest.raises(StoreError):
            await follower.create("/registry/configmaps/a/two", b"2")
        with pytest.raises(StoreError):
            await follower.compact(1)
        assert await primary.get("/registry/configmaps/a/two") is None
    finally:
        await follower.close()


async def test_follower_watch_sees_every_later_write_in_order(primary, tmp_path):
    follower = FollowerStore(str(tmp_path / "state.db"), primary.current_revision)
    await follower.start()
    start = follower.current_revision()
    stream = follower.watch("/registry/configmaps/", start)
    try:
        kv = await primary.create("/registry/configmaps/a/x", b"v1")
        await primary.update("/registry/configmaps/a/x", b"v2", kv.mod_revision)
        await primary.delete("/registry/configmaps/a/x")
        await primary.create("/registry/secrets/a/s", b"s")  # another prefix: not this watch's
        last = await primary.create("/registry/configmaps/a/y", b"y")
        await follower.reach(last.mod_revision)
        seen = []
        while len(seen) < 4:
            seen += await asyncio.wait_for(stream.__anext__(), 5)
        assert [(e.type, e.kv.key, e.kv.value) for e in seen] == [
            ("PUT", "/registry/configmaps/a/x", b"v1"), ("PUT", "/registry/configmaps/a/x", b"v2"),
            ("DELETE", "/registry/configmaps/a/x", b"v2"), ("PUT", "/registry/configmaps/a/y", b"y")]
        revs = [e.kv.mod_revision for e in seen]
        assert revs == sorted(revs) and revs[-1] == last.mod_revision
        assert seen[1].prev is not None and seen[1].prev.value == b"v1"
    finally:
        await stream.aclose()
        await follower.close()


async def test_follower_reach_waits_for_a_write_published_later(primary, tmp_path):
    published = [primary.current_revision()]
    follower = FollowerStore(str(tmp_path / "state.db"), lambda: published[-1])
    await follower.start()
    try:
        kv = await primary.create("/registry/configmaps/a/late", b"z")
        waiter = asyncio.create_task(follower.reach(kv.mod_revision))
        await asyncio.sleep(0.05)
        assert not waiter.done()  # not published yet: the follower does not know of it
        published.append(kv.mod_revision)
        follower.poke()
        assert await asyncio.wait_for(waiter, 5) == kv.mod_revision
        got = await follower.get("/registry/configmaps/a/late")
        assert got is not None and got.mod_revision == kv.mod_revision
    finally:
        await follower.close()


async def test_follower_sees_compaction_old_reads_are_gone(primary, tmp_path):
    kv = await primary.create("/registry/configmaps/a/c", b"1")
    for i in range(5):
        kv = await primary.update("/registry/configmaps/a/c", str(i).encode())
    follower = FollowerStore(str(tmp_path / "state.db"), primary.current_revision)
    await follower.start()
    try:
        await primary.compact(kv.mod_revision - 1)
        follower.poke()
        for _ in range(100):
            if follower.compacted_revision() == kv.mod_revision - 1:
                break
            await asyncio.sleep(0.02)
        assert follower.compacted_revision() == kv.mod_revision - 1
        with pytest.raises(CompactedError):
            await follower.get("/registry/configmaps/a/c", revision=kv.mod_revision - 3)
        with pytest.raises(CompactedError):
            follower.watch("/registry/", kv.mod_revision - 3)
    finally:
        await follower.close()


async def test_follower_knows_a_published_compaction_before_it_looks_at_the_log(primary, tmp_path):
    kv = await primary.create("/registry/configmaps/a/c", b"1")
    for i in range(5):
        kv = await primary.update("/registry/configmaps/a/c", str(i).encode())
    follower = FollowerStore(str(tmp_path / "state.db"), primary.current_revision, primary.compacted_revision)
    follower.driver.poll_interval = 3600  # no look at the log by itself
    await follower.start()
    try:
        await primary.compact(kv.mod_revision - 1)
        assert follower.compacted_revision() == kv.mod_revision - 1
        with pytest.raises(CompactedError):
            follower.watch("/registry/", kv.mod_revision - 3)
    finally:
        await follower.close()


async def test_publishing_store_publishes_compaction(primary):
    compacted: list[int] = []
    store = PublishingStore(primary, lambda rev: None, compacted.append)
    kv = await store.create("/registry/configmaps/a/p", b"1")
    kv = await store.update("/registry/configmaps/a/p", b"2", kv.mod_revision)
    await store.compact(kv.mod_revision)
    assert compacted == [kv.mod_revision] == [primary.compacted_revision()]


async def test_publishing_store_publishes_after_each_write(primary):
    seen: list[int] = []
    store = PublishingStore(primary, seen.append)
    kv = await store.create("/registry/configmaps/a/p", b"1")
    assert seen == [kv.mod_revision]
    kv = await store.update("/registry/configmaps/a/p", b"2", kv.mod_revision)
    gone = await store.delete("/registry/configmaps/a/p")
    assert seen == [kv.mod_revision - 1, kv.mod_revision, gone.mod_revision]
    assert store.current_revision() == primary.current_revision()


# -- the forwarding exchange -------------------------------------------------------------------


def test_request_head_carries_length_and_headers():
    head = encode_request_head("POST", "/api/v1/namespaces/a/configmaps?dryRun=All",
                               [("Content-Type", "application/json"), ("X-Remote-User", "alice")], 12)
    assert head == (b"POST /api/v1/namespaces/a/configmaps?dryRun=All HTTP/1.1\r\nHost: primary\r\n"
                    b"Content-Length: 12\r\nContent-Type: application/json\r\nX-Remote-User: alice\r\n\r\n")


def test_response_head_parses_status_and_headers():
    status, headers = parse_response_head(
        b"HTTP/1.1 422 Unprocessable Entity\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
        b"Warning: 299 - \"a: b\"\r\n\r\n")
    assert status == 422
    assert headers == [("Content-Type", "application/json"), ("Content-Length", "5"), ("Warning", '299 - "a: b"')]
    with pytest.raises(ValueError):
        parse_response_head(b"SSH-2.0-OpenSSH\r\n\r\n")


@pytest.mark.parametrize(("status", "headers", "framing"), [
    (200, [("Content-Length", "10")], ("length", 10)),
    (201, [("Transfer-Encoding", "chunked")], ("chunked", 0)),
    (204, [], ("none", 0)),
    (200, [], ("close", 0)),
])
def test_body_framing(status, headers, framing):
    assert body_framing(status, headers) == framing


def test_keep_alive_unless_told_to_close():
    assert keeps_alive([("Content-Type", "x")])
    assert not keeps_alive([("Connection", "close")])


async def test_forwarder_reads_chunked_and_sized_answers_over_kept_alive_connections(tmp_path):
    from aiohttp import web

    from kybernetes.apiserver.workers import Forwarder

    seen = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path_qs, request.headers.get("X-Remote-User"),
                     request.headers.get("Authorization"), await request.read()))
        if request.path == "/chunked":
            resp = web.StreamResponse(status=201, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(b'{"a":')
            await resp.write(b"1}")
            await resp.write_eof()
            return resp
        return web.json_response({"ok": True}, status=409, headers={"Retry-After": "2"})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    path = str(tmp_path / "fwd.sock")
    site = web.UnixSite(runner, path)
    await site.start()
    fwd = Forwarder(path)

    class FakeContent:
        def __init__(self, body: bytes) -> None:
            self._body = body

        async def iter_chunked(self, n: int):
            for i in range(0, len(self._body), n):
                yield self._body[i:i + n]

    class FakeRequest:
        def __init__(self, method: str, raw_path: str, body: bytes) -> None:
            self.method = method
            self.raw_path = raw_path
            self.content_length = len(body)
            self.content = FakeContent(body)
            self.headers = {"Authorization": "Bearer secret", "X-Remote-User": "mallory"}

        def __getitem__(self, key: str) -> auth.UserInfo:
            return auth.UserInfo(username="alice", groups=["dev"])

    try:
        r1 = await fwd.forward(FakeRequest("POST", "/chunked?x=1", b"{}"))  # type: ignore[arg-type]
        r2 = await fwd.forward(FakeRequest("PUT", "/sized", b"x" * 100_000))  # type: ignore[arg-type]
        assert (r1.status, r1.body) == (201, b'{"a":1}')
        assert r2.status == 409 and r2.headers["Retry-After"] == "2"
        assert seen[0] == ("POST", "/chunked?x=1", "alice", None, b"{}")
        assert seen[1][:4] == ("PUT", "/sized", "alice", None) and len(seen[1][4]) == 100_000
        assert len(fwd._idle) == 1  # one connection, kept alive and reused
    finally:
        await fwd.close()
        await runner.cleanup()


def test_a_line_break_in_a_forwarded_header_is_refused_not_sent():
    from kybernetes.api.errors import ApiError

    user = auth.UserInfo(username="eve\r\nX-Remote-Group: system:masters")
    with pytest.raises(ApiError) as err:
        encode_request_head("POST", "/api/v1/x", forwarded_request_headers([], user), 0)
    assert err.value.code == 400


@pytest.mark.parametrize(("current", "compacted", "start"), [
    (0, 0, 0),  # empty store: load the newest
    (10, 0, 1),  # young store: everything since the first revision
    (5000, 0, 4000),
    (5000, 4500, 4500),  # never before the compaction point
])
def test_replay_start(current, compacted, start):
    assert replay_start(current, compacted, 1000) == start
