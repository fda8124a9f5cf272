"""The `Store` protocol on an etcd v3 cluster, over etcd's gRPC API.

Each `Store` method maps onto one etcd call: revisions are etcd's revisions,
preconditions are transactions comparing a key's create/mod revision, reads at a
past revision are etcd ranges at that revision, watches are etcd watches (all
multiplexed on one bidirectional stream of one channel), compaction is etcd's.
`prefix` is prepended to every key, so several clusters can share one etcd.

Several endpoints are members of one etcd cluster: a call that finds its member
UNAVAILABLE moves to the next one, and open watches resume where they were.

As the log store does, a write is acknowledged only once the open watches that
cover its key have received its event (or a short while has passed), so a
watch cache fed by this store serves a client its own writes at once.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import grpc
import grpc.aio

from kybernetes.storage.etcdpb import kv_pb2, rpc_pb2, rpc_pb2_grpc
from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    RevisionMismatchError,
    StorageFullError,
    StoreError,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# etcd's error texts (its rpctypes), as they reach a client in the gRPC status details.
_COMPACTED = "required revision has been compacted"
_FUTURE = "required revision is a future revision"
_NOSPACE = "database space exceeded"

ErrorKind = Literal["compacted", "future", "nospace", "failover", "other"]


# -- pure helpers -----------------------------------------------------------------------------


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range end for every key starting with `prefix` (b"\\0": every key)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"


def classify(code: grpc.StatusCode | None, details: str) -> ErrorKind:
    """What a failed etcd call means for the store."""
    if _COMPACTED in details:
        return "compacted"
    if _FUTURE in details:
        return "future"
    if _NOSPACE in details:
        return "nospace"
    # UNAVAILABLE: the member is down or unreachable, or etcd's own transient states
    # (no leader, leader changed, request timed out), which another member may not have.
    # DEADLINE_EXCEEDED: our attempt's time ran out, typically a proposal forwarded to a
    # leader that died (etcd itself would answer only after 7 s).
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return "failover"
    return "other"


def parse_endpoint(url: str) -> tuple[str, bool]:
    """(gRPC target, uses TLS) of an etcd client URL: "host:port", or "unix:/path" for a
    unix socket (unix:///path, always without TLS)."""
    if "://" not in url:
        url = "http://" + url
    u = urllib.parse.urlsplit(url)
    if u.scheme == "unix":
        if u.netloc or not u.path.startswith("/"):
            raise ValueError(f"a unix socket endpoint takes an absolute path (unix:///path): {url!r}")
        return f"unix:{u.path}", False
    if u.scheme not in ("http", "https") or not u.hostname:
        raise ValueError(f"not an etcd client URL: {url!r}")
    host = f"[{u.hostname}]" if ":" in u.hostname else u.hostname
    return f"{host}:{u.port or 2379}", u.scheme == "https"


def to_kv(pb: kv_pb2.KeyValue, strip: int) -> KeyValue:
    return KeyValue(pb.key[strip:].decode(), pb.value, pb.mod_revision, pb.create_revision)


def to_events(events: Any, strip: int) -> list[Event]:
    """The interface's events of one watch response. A DELETE carries the last value and
    create revision from etcd's prev_kv (absent when that was compacted)."""
    out: list[Event] = []
    for ev in events:
        kv = ev.kv
        prev = to_kv(ev.prev_kv, strip) if ev.HasField("prev_kv") else None
        if ev.type == kv_pb2.Event.DELETE:
            last = KeyValue(kv.key[strip:].decode(), prev.value if prev else b"", kv.mod_revision,
                            prev.create_revision if prev else 0)
            out.append(Event("DELETE", last, prev))
        else:
            out.append(Event("PUT", to_kv(kv, strip), prev, created=kv.create_revision == kv.mod_revision))
    return out


# -- connection -------------------------------------------------------------------------------


@dataclass(eq=False)
class Stubs:
    """gRPC stubs of one etcd member, on one channel."""

    channel: grpc.aio.Channel
    kv: rpc_pb2_grpc.KVStub
    watch: rpc_pb2_grpc.WatchStub
    lease: rpc_pb2_grpc.LeaseStub
    cluster: rpc_pb2_grpc.ClusterStub
    maintenance: rpc_pb2_grpc.MaintenanceStub
    index: int  # which endpoint


_CHANNEL_OPTIONS = [
    # A full list of a large cluster is one response; gRPC's default cap is 4 MiB.
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    # Notice a member that vanished without closing the connection. etcd refuses pings
    # more often than every 5 s and pings without an open call.
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 0),
]


# -- watches ----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Watcher:
    """One `watch()`: etcd's events for it, queued for its consumer."""

    store: EtcdStore
    prefix: bytes  # on the wire, store prefix included
    next_rev: int  # the etcd watch (re)starts here: one past the last queued event
    taken_rev: int = 0  # the newest revision the consumer has taken
    parked: bool = False  # the consumer waits for events (until it runs again)
    internal: bool = False  # the store's own revision tracker: events are not kept
    wid: int = 0
    gen: int = -1  # stream generation the etcd watch was created on
    # (events, revision the consumer has seen everything up to once it takes them);
    # an empty batch is etcd's progress notification.
    pending: collections.deque[tuple[list[Event], int]] = field(default_factory=collections.deque)
    reached: int = 0
    pending_events: int = 0
    paused: bool = False  # etcd watch cancelled until the consumer drains `pending`
    error: BaseException | None = None
    done: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    acks: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def push(self, batch: list[Event], last_rev: int) -> None:
        self.next_rev = last_rev + 1
        if not self.internal:
            self.pending.append((batch, last_rev))
            self.pending_events += len(batch)
            self.wake.set()

    def progress(self, rev: int) -> None:
        """etcd says this watch has no events up to `rev` beyond those sent."""
        if self.internal or rev <= max(self.reached, self.next_rev - 1):
            return
        if self.pending and not self.pending[-1][0]:
            self.pending[-1] = ([], rev)  # one progress mark in a backlog is enough
        else:
            self.pending.append(([], rev))
        self.wake.set()

    def take(self) -> list[Event]:
        batch, rev = self.pending.popleft()
        self.pending_events -= len(batch)
        if batch:
            self.taken_rev = batch[-1].kv.mod_revision
        self.reached = max(self.reached, rev)
        self._ack()
        return batch

    def _ack(self) -> None:
        # The writers resume after the consumer, which handles the batch it took
        # before it next waits.
        if self.acks:
            keep = []
            for rev, fut in self.acks:
                if rev <= self.taken_rev or self.done:
                    if not fut.done():
                        fut.set_result(None)
                else:
                    keep.append((rev, fut))
            self.acks = keep

    def end(self, error: BaseException | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error
        self.wake.set()
        self._ack()


class EtcdWatch:
    """The `WatchStream` of one etcd watch. Besides batches of events it yields an empty
    batch for each of etcd's progress notifications; `progress_revision` is then the
    revision up to which the consumer has had every event of the watch (a bookmark)."""

    def __init__(self, w: _Watcher) -> None:
        self._w = w

    @property
    def progress_revision(self) -> int:
        return self._w.reached

    def __aiter__(self) -> EtcdWatch:
        return self

    async def __anext__(self) -> list[Event]:
        w = self._w
        while True:
            if w.pending:
                batch = w.take()
                if not w.pending and w.paused and not w.done:
                    w.store._hub.resume(w)
                return batch
            if w.done:
                if w.error is not None:
                    err, w.error = w.error, None
                    raise err
                raise StopAsyncIteration
            w.wake.clear()
            w.parked = True
            try:
                await w.wake.wait()
            finally:
                w.parked = False

    async def aclose(self) -> None:
        w = self._w
        if not w.done:
            w.end()
            w.store._hub.remove(w)
        w.pending.clear()

    async def __aenter__(self) -> EtcdWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _WatchHub:
    """Every watch of the store on one bidirectional etcd Watch stream, told apart by
    watch id; the stream is reopened (on another member if need be) and its watches
    created again from where each one was."""

    max_pending = 10_000  # events queued for a consumer before its etcd watch is paused

    def __init__(self, store: EtcdStore) -> None:
        self.store = store
        self.watchers: dict[int, _Watcher] = {}
        self._ids = itertools.count(1)
        self._call: Any = None
        self._gen = 0
        self._send_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="etcd-watch")

    async def close(self) -> None:
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - closing anyway
                pass
        call, self._call = self._call, None
        if call is not None:
            call.cancel()
        for w in list(self.watchers.values()):
            w.end()
        self.watchers.clear()

    # -- requests ---------------------------------------------------------------------

    def add(self, w: _Watcher) -> None:
        w.wid = next(self._ids)
        w.gen = -1
        self.watchers[w.wid] = w
        self.store._background(self._create(w))

    def remove(self, w: _Watcher) -> None:
        if self.watchers.pop(w.wid, None) is not None and w.gen == self._gen and not w.paused:
            self.store._background(self._send(rpc_pb2.WatchRequest(
                cancel_request=rpc_pb2.WatchCancelRequest(watch_id=w.wid))))

    def pause(self, w: _Watcher) -> None:
        """A consumer too far behind: stop etcd's feed until it has read its backlog."""
        w.paused = True
        self.watchers.pop(w.wid, None)
        if w.gen == self._gen:
            self.store._background(self._send(rpc_pb2.WatchRequest(
                cancel_request=rpc_pb2.WatchCancelRequest(watch_id=w.wid))))

    def resume(self, w: _Watcher) -> None:
        w.paused = False
        self.add(w)  # a fresh id: late responses of the cancelled one are ignored

    async def _create(self, w: _Watcher) -> None:
        async with self._send_lock:
            call, gen = self._call, self._gen
            if call is None or w.gen == gen or self.watchers.get(w.wid) is not w:
                return  # the stream's (re)start creates it
            w.gen = gen
            try:
                await call.write(self._create_request(w))
            except Exception:  # noqa: BLE001 - the reader notices the broken stream and reopens it
                log.debug("etcd watch create failed", exc_info=True)

    async def _send(self, req: rpc_pb2.WatchRequest) -> None:
        async with self._send_lock:
            if self._call is None:
                return
            try:
                await self._call.write(req)
            except Exception:  # noqa: BLE001 - as above
                log.debug("etcd watch request failed", exc_info=True)

    def _create_request(self, w: _Watcher) -> rpc_pb2.WatchRequest:
        if w.internal:  # it misses nothing it wants by starting at the newest revision
            w.next_rev = max(w.next_rev, self.store._rev + 1)
        # The store's own watch wants only etcd's progress notifications (the revision):
        # it filters every event out, so no write crosses the wire twice.
        filters = [rpc_pb2.WatchCreateRequest.NOPUT, rpc_pb2.WatchCreateRequest.NODELETE] if w.internal else []
        return rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=w.prefix or b"\x00", range_end=prefix_end(w.prefix), start_revision=w.next_rev,
            progress_notify=True, prev_kv=not w.internal, watch_id=w.wid, filters=filters))

    # -- the stream -------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        while not self._closed:
            stubs = self.store._stubs()
            try:
                async with self._send_lock:
                    self._gen += 1
                    self._call = stubs.watch.Watch()
                    for w in list(self.watchers.values()):
                        w.gen = self._gen
                        await self._call.write(self._create_request(w))
                call = self._call
                while True:
                    resp = await call.read()
                    if resp is grpc.aio.EOF:
                        raise StoreError("etcd closed the watch stream")
                    delay = 0.05
                    self._dispatch(resp)
            except (Exception, asyncio.CancelledError) as e:  # noqa: BLE001 - any stream failure: reopen
                # grpc.aio raises CancelledError from a read of a call cancelled under it.
                if self._closed:
                    if isinstance(e, asyncio.CancelledError):
                        raise
                    return
                log.warning("etcd watch stream on %s failed (%s); reopening",
                            self.store.endpoints[stubs.index], _why(e))
                old, self._call = self._call, None
                if old is not None:
                    old.cancel()
                self.store._failover(stubs)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _dispatch(self, resp: rpc_pb2.WatchResponse) -> None:
        store = self.store
        store._seen(resp.header.revision)
        w = self.watchers.get(resp.watch_id)
        if w is None:
            if resp.watch_id == -1 and not resp.events and resp.header.revision:
                # The answer to request_progress: every watch of the stream is synced up to it.
                for each in list(self.watchers.values()):
                    each.progress(resp.header.revision)
            return
        if resp.canceled:
            self.watchers.pop(w.wid, None)
            if resp.compact_revision:
                store._seen_compacted(resp.compact_revision)
                if w.internal:  # it only tracks the revision: go on from what is left
                    w.next_rev = max(w.next_rev, resp.compact_revision)
                    self.add(w)
                    return
                w.end(CompactedError(w.next_rev - 1, resp.compact_revision))
            else:
                w.end(StoreError(f"etcd cancelled the watch: {resp.cancel_reason or 'no reason given'}"))
            return
        if not resp.events:
            if not resp.created and resp.header.revision:
                w.progress(resp.header.revision)
            return
        batch = to_events(resp.events, len(store._prefix))
        w.push(batch, resp.events[-1].kv.mod_revision)
        if w.pending_events > self.max_pending and not w.paused:
            self.pause(w)

    def request_progress(self) -> None:
        self.store._background(self._send(rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest())))

    def wait_delivered(self, key: bytes, rev: int) -> list[asyncio.Future[None]]:
        """Futures done once the consumer of every open watch covering `key` has taken
        revision `rev`. Only consumers waiting for events count: one that is not reading
        (or is working through a backlog) does not hold writers up."""
        futs = []
        loop = asyncio.get_running_loop()
        for w in self.watchers.values():
            if w.parked and not w.done and w.taken_rev < rev and key.startswith(w.prefix):
                fut: asyncio.Future[None] = loop.create_future()
                w.acks.append((rev, fut))
                futs.append(fut)
        return futs


# -- the store --------------------------------------------------------------------------------


class EtcdStore:
    """A `Store` on etcd.

    `endpoints` are client URLs of the members of one etcd cluster
    ("https://127.0.0.1:2379" or "http://..."); calls fail over between them.
    With `ca_file` the server certificate is verified against that CA; with
    `cert_file`/`key_file` this client presents that certificate (etcd's
    --client-cert-auth). `prefix` is prepended to every key on the wire and
    stripped from every key returned.

    A call that gets UNAVAILABLE, or gets no answer within `call_timeout`, is tried
    on the next endpoint, for up to `retry_timeout` seconds. A write's lost answer
    does not mean it was not applied: a retried create or update whose precondition
    then fails, finding the key holding its value written since it began, returns
    that as its result; a retried delete may report KeyNotFoundError.

    `rpc` runs any etcd call (Cluster, Maintenance, Lease stubs) with the same
    failover, for the code that manages the etcd cluster itself.
    """

    call_timeout = 3.0  # seconds per attempt of an etcd call, before trying another member
    retry_timeout = 20.0  # seconds to keep failing over before a call gives up
    ack_timeout = 2.0  # seconds a write waits for its event to reach the open watches
    list_page = 5_000  # keys per etcd range of an unlimited list

    def __init__(
        self,
        endpoints: list[str],
        *,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        prefix: str = "",
    ) -> None:
        if not endpoints:
            raise ValueError("EtcdStore needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.ca_file = ca_file
        self.cert_file = cert_file
        self.key_file = key_file
        self.prefix = prefix
        self._targets = [parse_endpoint(e) for e in self.endpoints]
        self._prefix = prefix.encode()
        self._current: Stubs | None = None
        self._creds: grpc.ChannelCredentials | None = None
        self._rev = 0
        self._compacted = 0
        self._hub = _WatchHub(self)
        self._tasks: set[asyncio.Future[Any]] = set()
        self._started = False
        self._closed = False

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        if any(tls for _, tls in self._targets):
            self._creds = grpc.ssl_channel_credentials(
                root_certificates=_read(self.ca_file), private_key=_read(self.key_file),
                certificate_chain=_read(self.cert_file))
        self._current = self._connect(0)
        self._started = True
        resp = await self.rpc(lambda s: s.kv.Range(
            rpc_pb2.RangeRequest(key=self._prefix or b"\x00", count_only=True), timeout=self.call_timeout))
        self._seen(resp.header.revision)
        await self._probe_compacted()
        # current_revision follows every server's writes through the headers of all
        # watch responses (the watch cache's watch sees every write under /registry/),
        # and through etcd's progress notifications on one watch of the whole prefix
        # (every --experimental-watch-progress-notify-interval, 10 min by default).
        internal = _Watcher(self, self._prefix, self._rev + 1, internal=True)
        self._hub.add(internal)
        self._hub.start()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._hub.close()
        stubs, self._current = self._current, None
        if stubs is not None:
            await stubs.channel.close()

    def current_revision(self) -> int:
        return self._rev

    def compacted_revision(self) -> int:
        return self._compacted

    def _seen(self, rev: int) -> None:
        if rev > self._rev:
            self._rev = rev

    def _seen_compacted(self, rev: int) -> None:
        if rev > self._compacted:
            self._compacted = rev

    # -- calls ----------------------------------------------------------------------------

    def _connect(self, index: int) -> Stubs:
        target, tls = self._targets[index]
        if tls:
            assert self._creds is not None
            ch = grpc.aio.secure_channel(target, self._creds, options=_CHANNEL_OPTIONS)
        else:
            ch = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        return Stubs(ch, rpc_pb2_grpc.KVStub(ch), rpc_pb2_grpc.WatchStub(ch), rpc_pb2_grpc.LeaseStub(ch),
                     rpc_pb2_grpc.ClusterStub(ch), rpc_pb2_grpc.MaintenanceStub(ch), index)

    def _stubs(self) -> Stubs:
        if self._closed:
            raise StoreError("store is closed")
        if self._current is None:
            raise StoreError("store is not started")
        return self._current

    def _failover(self, failed: Stubs) -> None:
        """Move to the next endpoint, unless another call already moved on from `failed`."""
        if self._current is not failed or self._closed:
            return
        self._current = self._connect((failed.index + 1) % len(self._targets))
        if len(self._targets) > 1:
            log.warning("etcd endpoint %s unavailable; using %s", self.endpoints[failed.index],
                        self.endpoints[self._current.index])
        # Calls still running on the old channel may finish.
        self._background(failed.channel.close(grace=self.call_timeout))

    def _background(self, work: Awaitable[Any]) -> None:
        # The loop keeps only weak references to tasks: hold them until done.
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def rpc(self, call: Callable[[Stubs], Awaitable[T]]) -> T:
        """`call` on the current member, failing over on UNAVAILABLE; etcd's errors become
        StoreErrors (CompactedError, FutureRevisionError, StorageFullError, StoreError)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_timeout
        delay = 0.05
        tried = 0
        while True:
            stubs = self._stubs()
            try:
                return await call(stubs)
            except grpc.aio.AioRpcError as e:
                details = e.details() or ""
                kind = classify(e.code(), details)
                if kind == "failover" and loop.time() < deadline and not self._closed:
                    self._failover(stubs)
                    tried += 1
                    if tried % len(self._targets) == 0:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 1.0)
                    continue
                if kind == "compacted":
                    raise CompactedError(0, self._compacted) from e
                if kind == "future":
                    raise FutureRevisionError(details) from e
                if kind == "nospace":
                    raise StorageFullError(details) from e
                raise StoreError(f"etcd {self.endpoints[stubs.index]}: {e.code().name}: {details}") from e

    async def _kv(self, method: str, req: Any) -> Any:
        resp = await self.rpc(lambda s: getattr(s.kv, method)(req, timeout=self.call_timeout))
        self._seen(resp.header.revision)
        return resp

    async def _kv_txn(self, req: rpc_pb2.TxnRequest) -> tuple[rpc_pb2.TxnResponse, bool]:
        """The transaction's response, and whether it took more than one attempt (so an
        earlier attempt may have been applied although its answer was lost)."""
        attempts = 0

        def txn(s: Stubs) -> Awaitable[rpc_pb2.TxnResponse]:
            nonlocal attempts
            attempts += 1
            return s.kv.Txn(req, timeout=self.call_timeout)

        resp = await self.rpc(txn)
        self._seen(resp.header.revision)
        return resp, attempts > 1

    def _key(self, key: str) -> bytes:
        return self._prefix + key.encode()

    # -- writes ---------------------------------------------------------------------------

    async def _txn(self, key: bytes, compare: rpc_pb2.Compare, op: rpc_pb2.RequestOp,
                   value: bytes | None = None) -> rpc_pb2.TxnResponse | KeyValue:
        """Run `op` if `compare` holds; otherwise the response carries the key as it is.
        A retried write whose precondition then fails, and that finds the key holding
        `value` since after it began, was applied by its lost attempt: that KeyValue
        is returned instead."""
        began = self._rev
        failure = [rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))]
        resp, retried = await self._kv_txn(rpc_pb2.TxnRequest(compare=[compare], success=[op], failure=failure))
        if resp.succeeded:
            await self._acked(key, resp.header.revision)
            return resp
        if retried and value is not None:
            kvs = resp.responses[0].response_range.kvs
            if kvs and kvs[0].value == value and kvs[0].mod_revision > began:
                log.info("etcd write to %s applied by an attempt whose answer was lost", key)
                await self._acked(key, kvs[0].mod_revision)
                return to_kv(kvs[0], len(self._prefix))
        return resp

    async def _acked(self, key: bytes, rev: int) -> None:
        futs = self._hub.wait_delivered(key, rev)
        if futs:
            await asyncio.wait(futs, timeout=self.ack_timeout)

    def _mismatch(self, key: str, resp: rpc_pb2.TxnResponse) -> StoreError:
        kvs = resp.responses[0].response_range.kvs if resp.responses else []
        if not kvs:
            return KeyNotFoundError(key)
        return RevisionMismatchError(to_kv(kvs[0], len(self._prefix)))

    async def create(self, key: str, value: bytes) -> KeyValue:
        k = self._key(key)
        resp = await self._txn(
            k, rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.EQUAL,
                               create_revision=0),
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value)), value)
        if isinstance(resp, KeyValue):
            return resp
        if not resp.succeeded:
            raise KeyExistsError(key)
        rev = resp.header.revision
        return KeyValue(key, bytes(value), rev, rev)

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        k = self._key(key)
        if expected_revision:
            cmp = rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL,
                                  mod_revision=expected_revision)
        else:
            cmp = rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.GREATER,
                                  create_revision=0)
        resp = await self._txn(
            k, cmp, rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value, prev_kv=True)), value)
        if isinstance(resp, KeyValue):
            return resp
        if not resp.succeeded:
            raise self._mismatch(key, resp)
        prev = resp.responses[0].response_put.prev_kv
        return KeyValue(key, bytes(value), resp.header.revision, prev.create_revision)

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        k = self._key(key)
        if expected_revision:
            cmp = rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.MOD, result=rpc_pb2.Compare.EQUAL,
                                  mod_revision=expected_revision)
        else:
            cmp = rpc_pb2.Compare(key=k, target=rpc_pb2.Compare.CREATE, result=rpc_pb2.Compare.GREATER,
                                  create_revision=0)
        resp = await self._txn(
            k, cmp, rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=k, prev_kv=True)))
        assert not isinstance(resp, KeyValue)
        if not resp.succeeded:
            raise self._mismatch(key, resp)
        prevs = resp.responses[0].response_delete_range.prev_kvs
        if not prevs:  # the compare saw the key, so etcd deleted it; defensive only
            raise KeyNotFoundError(key)
        return KeyValue(key, prevs[0].value, resp.header.revision, prevs[0].create_revision)

    # -- reads ----------------------------------------------------------------------------

    def _check_read(self, revision: int) -> None:
        self._stubs()
        if revision < 0:
            raise ValueError(f"negative revision {revision}")
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)

    async def _range(self, req: rpc_pb2.RangeRequest) -> rpc_pb2.RangeResponse:
        try:
            return await self._kv("Range", req)
        except CompactedError:
            await self._probe_compacted()
            raise CompactedError(req.revision, self._compacted) from None

    async def get(self, key: str, revision: int = 0) -> KeyValue | None:
        self._check_read(revision)
        resp = await self._range(rpc_pb2.RangeRequest(key=self._key(key), revision=revision))
        return to_kv(resp.kvs[0], len(self._prefix)) if resp.kvs else None

    async def list(self, prefix: str, revision: int = 0, limit: int = 0, start_after: str = "") -> ListResult:
        self._check_read(revision)
        if limit < 0:
            raise ValueError(f"negative limit {limit}")
        p = self._key(prefix)
        end = prefix_end(p)
        start = p or b"\x00"  # etcd refuses an empty key
        if start_after:
            start = max(start, self._key(start_after) + b"\x00")
        strip = len(self._prefix)
        items: list[KeyValue] = []
        rev = revision
        while True:
            # An unlimited list is read in pages at one revision, so no response is huge.
            want = limit - len(items) if limit else self.list_page
            resp = await self._range(rpc_pb2.RangeRequest(key=start, range_end=end, limit=want, revision=rev))
            rev = rev or resp.header.revision
            items.extend(to_kv(kv, strip) for kv in resp.kvs)
            if limit or not resp.more or not resp.kvs:
                return ListResult(items, rev, resp.more)
            start = resp.kvs[-1].key + b"\x00"

    async def _probe_compacted(self) -> None:
        """Learn etcd's compaction point, which it does not report: the oldest revision
        a range can still read, by bisection between what is known and the newest."""
        await self._kv("Range", rpc_pb2.RangeRequest(key=self._prefix or b"\x00", count_only=True))
        lo, hi = max(self._compacted, 1), max(self._rev, 1)

        async def readable(rev: int) -> bool:
            try:
                await self._kv("Range", rpc_pb2.RangeRequest(key=self._prefix or b"\x00", revision=rev,
                                                             count_only=True))
                return True
            except CompactedError:
                return False

        if await readable(lo):
            self._seen_compacted(lo if lo > 1 else 0)
            return
        while lo + 1 < hi:  # lo unreadable, hi readable
            mid = (lo + hi) // 2
            if await readable(mid):
                hi = mid
            else:
                lo = mid
        self._seen_compacted(hi)

    # -- watch ----------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> EtcdWatch:
        self._stubs()
        if from_revision < self._compacted:
            raise CompactedError(from_revision, self._compacted)
        w = _Watcher(self, self._key(prefix), from_revision + 1)
        self._hub.add(w)
        return EtcdWatch(w)

    def request_progress(self) -> None:
        """Ask etcd for a progress notification on every open watch now (it answers once
        they have caught up), instead of waiting for its periodic one."""
        self._stubs()
        self._hub.request_progress()

    # -- compaction -----------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._stubs()
        if revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        if revision == self._compacted:
            return
        try:
            await self._kv("Compact", rpc_pb2.CompactionRequest(revision=revision))
        except CompactedError:
            # Another server compacted further already.
            await self._probe_compacted()
            if revision < self._compacted:
                raise CompactedError(revision, self._compacted) from None
            return
        self._seen_compacted(revision)


    # -- snapshot -------------------------------------------------------------------------

    async def snapshot(self, path: str) -> int:
        """Write a snapshot of the whole etcd keyspace (every prefix: etcd's backend file, as
        `etcdctl snapshot save` makes it) to `path`; returns the revision it holds (etcd
        3.4 does not say: then the newest revision just before it began, which it holds
        at least). The file appears only when complete."""
        tmp = f"{path}.part"

        async def save(stubs: Stubs) -> int:
            before = await stubs.kv.Range(rpc_pb2.RangeRequest(key=b"\x00", count_only=True),
                                          timeout=self.call_timeout)
            rev = 0
            with open(tmp, "wb") as f:
                async for resp in stubs.maintenance.Snapshot(rpc_pb2.SnapshotRequest()):
                    rev = rev or resp.header.revision
                    f.write(resp.blob)
                f.flush()
                os.fsync(f.fileno())
            return rev or before.header.revision

        try:
            rev = await self.rpc(save)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return rev

def _why(e: BaseException) -> str:
    return f"{e.code().name}: {e.details()}" if isinstance(e, grpc.aio.AioRpcError) else repr(e)


def _read(path: str) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()
