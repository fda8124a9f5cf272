"""API worker processes: serving reads from more than one core (`kyb server --api-workers N`).

One event loop tops out near one core. With N > 1 the primary process (the one
`kyb server` runs) stays the only writer: the store, group commit, allocators,
system services. It starts N-1 worker processes that listen on the same port
(SO_REUSEPORT: the kernel spreads new connections over every listener) and serve
the same API from their own watch cache, fed by a read-only follower of the store
(`storage/follower.py`). Here live both ends:

- Primary: `WorkerPool` publishes each acknowledged write's revision in a shared
  page (`RevisionBoard`) before the write is answered, wakes the workers through a
  pipe each, listens on a private unix socket (0600, in the data dir) for writes
  the workers forward, and restarts a worker that dies. Workers die with it
  (PR_SET_PDEATHSIG).
- Worker: `WorkerApiServer` serves GET/LIST/WATCH, discovery, health and the pod
  streaming subresources itself; every write goes to the primary over the unix
  socket with the already-authenticated user in front-proxy headers
  (X-Remote-User, X-Remote-Group, X-Remote-Extra-*), which the primary trusts on
  that socket only, and the primary's answer is returned unchanged.
- Consistent reads: a read without a resourceVersion first waits until the worker
  has followed the log up to the revision the board shows, so it sees every write
  acknowledged before it started, on any connection, as a read of the primary would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import mmap
import os
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from kybernetes.api.children import popen_dying_with_parent
from kybernetes.api.errors import ApiError
from kybernetes.apiserver import auth, pki, serviceaccounts
from kybernetes.apiserver.app import ApiServer, ServingOptions
from kybernetes.apiserver.crds import CrdController
from kybernetes.apiserver.flowcontrol import FlowControlConfig
from kybernetes.apiserver.rest import RestHandler, Target, read_body
from kybernetes.apiserver.virtual import VirtualHandler
from kybernetes.storage.follower import FollowerStore
from kybernetes.storage.interface import KeyValue, Store

log = logging.getLogger(__name__)

FORWARD_SOCKET = "api-forward.sock"
REVISION_FILE = "api-revision"
# How long a consistent read waits for this worker to catch up before it gives up (504).
CATCH_UP_TIMEOUT = 10.0

REMOTE_USER = "X-Remote-User"
REMOTE_UID = "X-Remote-Uid"
REMOTE_GROUP = "X-Remote-Group"
REMOTE_EXTRA = "X-Remote-Extra-"
_HOP_BY_HOP = frozenset(("connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                         "upgrade", "content-length", "host", "expect"))
_NOT_FORWARDED = _HOP_BY_HOP | {"authorization"}
_NOT_RETURNED = _HOP_BY_HOP | {"date", "server"}


# -- the committed revision, shared --------------------------------------------------------


class RevisionBoard:
    """The primary's newest acknowledged revision and its compaction point, in a shared
    16-byte page (a file in the data dir mapped by every process): workers read them
    without a round trip."""

    SIZE = 16

    def __init__(self, path: str, mm: mmap.mmap, fd: int) -> None:
        self.path = path
        self._mm = mm
        self._fd = fd
        self._last = [0, 0]

    @classmethod
    def create(cls, path: str) -> RevisionBoard:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            # Written, not just sized: a page of a sparse file is allocated at the first store
            # through the mapping, and on a full file system that store is a SIGBUS.
            if os.pwrite(fd, bytes(cls.SIZE), 0) != cls.SIZE:
                raise OSError(f"short write to {path}")
            os.ftruncate(fd, cls.SIZE)
            os.fsync(fd)
            return cls(path, mmap.mmap(fd, cls.SIZE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE), fd)
        except BaseException:
            os.close(fd)
            raise

    @classmethod
    def open(cls, path: str) -> RevisionBoard:
        fd = os.open(path, os.O_RDONLY)
        return cls(path, mmap.mmap(fd, cls.SIZE, mmap.MAP_SHARED, mmap.PROT_READ), fd)

    def _publish(self, slot: int, rev: int) -> bool:
        if rev <= self._last[slot]:
            return False
        self._last[slot] = rev
        # One aligned 8-byte store; readers also read twice, so a torn value is never used.
        struct.pack_into("<Q", self._mm, 8 * slot, rev)
        return True

    def _read(self, slot: int) -> int:
        mm = self._mm
        value = struct.unpack_from("<Q", mm, 8 * slot)[0]
        while True:
            again = struct.unpack_from("<Q", mm, 8 * slot)[0]
            if again == value:
                return value
            value = again

    def publish(self, rev: int) -> bool:
        """Show `rev` as the newest acknowledged revision if it is newer; True when it was."""
        return self._publish(0, rev)

    def read(self) -> int:
        return self._read(0)

    def publish_compacted(self, rev: int) -> bool:
        return self._publish(1, rev)

    def read_compacted(self) -> int:
        return self._read(1)

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)


class PublishingStore:
    """The primary's store, as the API server sees it: after each write returns (and so
    before any client is told of it) the store's revision goes on the board."""

    def __init__(self, inner: Store, published: Callable[[int], None],
                 compacted: Callable[[int], object] | None = None) -> None:
        self.inner = inner
        self._published = published
        self._compacted = compacted
        # Read on every request; bound here rather than found through __getattr__ each time.
        self.current_revision = inner.current_revision
        self.compacted_revision = inner.compacted_revision

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def create(self, key: str, value: bytes) -> KeyValue:
        kv = await self.inner.create(key, value)
        self._published(self.inner.current_revision())
        return kv

    async def update(self, key: str, value: bytes, expected_revision: int = 0) -> KeyValue:
        kv = await self.inner.update(key, value, expected_revision)
        self._published(self.inner.current_revision())
        return kv

    async def delete(self, key: str, expected_revision: int = 0) -> KeyValue:
        kv = await self.inner.delete(key, expected_revision)
        self._published(self.inner.current_revision())
        return kv

    async def compact(self, revision: int) -> None:
        await self.inner.compact(revision)
        if self._compacted is not None:
            # Workers refuse reads and watches from before it at once, as the primary does.
            self._compacted(self.inner.compacted_revision())


# -- who sent a forwarded request ------------------------------------------------------------


def identity_headers(user: auth.UserInfo) -> list[tuple[str, str]]:
    """Front-proxy headers naming `user` (kube-apiserver's requestheader authenticator)."""
    out = [(REMOTE_USER, user.username)]
    if user.uid:
        out.append((REMOTE_UID, user.uid))
    out += [(REMOTE_GROUP, g) for g in user.groups]
    for key, values in user.extra.items():
        name = REMOTE_EXTRA + urllib.parse.quote(key, safe="")
        out += [(name, v) for v in values]
    return out


def user_from_headers(headers: Iterable[tuple[str, str]]) -> auth.UserInfo | None:
    """The user `identity_headers` named, or None without an X-Remote-User."""
    username = ""
    uid = ""
    groups: list[str] = []
    extra: dict[str, list[str]] = {}
    prefix = REMOTE_EXTRA.lower()
    for name, value in headers:
        low = name.lower()
        if low == "x-remote-user":
            username = value
        elif low == "x-remote-uid":
            uid = value
        elif low == "x-remote-group":
            groups.append(value)
        elif low.startswith(prefix):
            extra.setdefault(urllib.parse.unquote(low[len(prefix):]), []).append(value)
    if not username:
        return None
    return auth.UserInfo(username=username, uid=uid, groups=groups, extra=extra)


def forwarded_request_headers(headers: Iterable[tuple[str, str]], user: auth.UserInfo) -> list[tuple[str, str]]:
    """A client's headers as sent on to the primary: credentials and hop-by-hop headers
    dropped, any front-proxy header the client sent replaced by the worker's own."""
    out = [(k, v) for k, v in headers
           if k.lower() not in _NOT_FORWARDED and not k.lower().startswith("x-remote-")]
    return out + identity_headers(user)


def returned_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The primary's response headers as the worker returns them."""
    return [(k, v) for k, v in headers if k.lower() not in _NOT_RETURNED]


def is_private_socket(request: web.Request) -> bool:
    """Whether `request` came over a unix socket (the workers' forwarding socket: the
    only unix socket the API server listens on) rather than the network."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and getattr(sock, "family", None) == socket.AF_UNIX


def trusted_identity(request: web.Request) -> auth.UserInfo | None:
    """The primary's `ApiServer.trusted_identity`: front-proxy headers name the user on
    the forwarding socket, and are never looked at on a network connection."""
    if not is_private_socket(request):
        return None
    return user_from_headers(request.headers.items())


def needs_consistent_read(method: str, path: str, query: Mapping[str, str]) -> bool:
    """Whether a request on a worker must first see every write acknowledged before it:
    reads that ask for the newest state (no resourceVersion, or an empty one), which is
    every read but health and version checks."""
    if method not in ("GET", "HEAD"):
        return False
    if path.startswith(("/healthz", "/livez", "/readyz", "/version")):
        return False
    return not query.get("resourceVersion")


# -- worker side ---------------------------------------------------------------------------


def encode_request_head(method: str, target: str, headers: Iterable[tuple[str, str]], body_length: int) -> bytes:
    """The HTTP/1.1 request line and headers of a forwarded request."""
    lines = [f"{method} {target} HTTP/1.1", "Host: primary", f"Content-Length: {body_length}"]
    lines += [f"{k}: {v}" for k, v in headers]
    # A line break inside a value (say, a certificate's user name) would add a header the
    # primary believes, such as X-Remote-Group.
    if any("\r" in line or "\n" in line for line in lines):
        raise ApiError.bad_request("a request header or the user's name holds a line break")
    text = "\r\n".join(lines)
    # aiohttp decodes header bytes as UTF-8 with surrogate escapes: the same bytes go on.
    return (text + "\r\n\r\n").encode("utf-8", "surrogateescape")


def parse_response_head(head: bytes) -> tuple[int, list[tuple[str, str]]]:
    """Status and headers of an HTTP/1.1 response head (up to the blank line); ValueError
    if it is not one."""
    lines = head.decode("utf-8", "surrogateescape").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad response header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return int(parts[1]), headers


def body_framing(status: int, headers: Iterable[tuple[str, str]]) -> tuple[str, int]:
    """How the body of a response is delimited: ("none", 0), ("length", n), ("chunked", 0)
    or ("close", 0) (until the connection ends)."""
    if 100 <= status < 200 or status in (204, 304):
        return "none", 0
    length = None
    for k, v in headers:
        low = k.lower()
        if low == "transfer-encoding" and "chunked" in v.lower():
            return "chunked", 0
        if low == "content-length":
            length = int(v)
    return ("length", length) if length is not None else ("close", 0)


def keeps_alive(headers: Iterable[tuple[str, str]]) -> bool:
    return not any(k.lower() == "connection" and "close" in v.lower() for k, v in headers)


class _Conn:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0


class Forwarder:
    """Sends a request to the primary over the forwarding socket and returns its answer.

    A plain HTTP/1.1 exchange on kept-alive unix connections: every write through a
    worker takes this hop, and a general-purpose client cost a large part of it."""

    # Connections idle longer are closed rather than reused, well before the primary's
    # idle timeout could close them under a request that then cannot be safely retried.
    idle_limit = 20.0

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self._idle: list[_Conn] = []
        self._closed = False

    async def _connection(self) -> _Conn:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self.idle_limit and not conn.reader.at_eof():
                return conn
            conn.writer.close()
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(self.socket_path), 5)
        return _Conn(reader, writer)

    async def forward(self, request: web.Request) -> web.Response:
        user: auth.UserInfo = request["user"]
        body = await read_body(request)
        head = encode_request_head(request.method, request.raw_path,
                                   forwarded_request_headers(request.headers.items(), user), len(body))
        conn: _Conn | None = None
        try:
            conn = await self._connection()
            conn.writer.write(head + body if len(body) < 65536 else head)
            if len(body) >= 65536:
                conn.writer.write(body)
            status, headers, data = await self._read_response(conn.reader)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                TimeoutError) as e:
            if conn is not None:
                conn.writer.close()
            raise ApiError(503, "ServiceUnavailable", f"the primary API server cannot be reached: {e!r}",
                           headers={"Retry-After": "1"}) from None
        except BaseException:
            # Cancelled mid-exchange: the connection's state is unknown.
            if conn is not None:
                conn.writer.close()
            raise
        if keeps_alive(headers) and not self._closed:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)
        else:
            conn.writer.close()
        return web.Response(status=status, body=data, headers=returned_headers(headers))

    @staticmethod
    async def _read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes]:
        status, headers = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
        how, length = body_framing(status, headers)
        if how == "length":
            return status, headers, await reader.readexactly(length)
        if how == "none":
            return status, headers, b""
        if how == "close":
            return status, headers + [("Connection", "close")], await reader.read()
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return status, headers, b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def close(self) -> None:
        self._closed = True
        for conn in self._idle:
            conn.writer.close()
        self._idle = []


class WorkerRestHandler(RestHandler):
    """The REST verbs of a worker: reads from its own cache, writes by the primary."""

    forwarder: Forwarder

    async def create(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)

    async def update(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)

    async def patch(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)

    async def delete(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)

    async def delete_collection(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)

    async def subresource_action(self, request: web.Request, target: Target) -> web.Response:
        return await self.forwarder.forward(request)


class ConsistentReadGate:
    """Holds a read until this worker has seen every write acknowledged before it."""

    def __init__(self, board: RevisionBoard, store: FollowerStore, cache: Any) -> None:
        self.board = board
        self.store = store
        self.cache = cache

    async def wait(self, timeout: float = CATCH_UP_TIMEOUT) -> None:
        want = self.board.read()
        if self.cache.revision >= want:
            return
        try:
            async with asyncio.timeout(timeout):
                target = await self.store.reach(want)
                await self.cache.wait_for(target, timeout=timeout)
        except TimeoutError:
            raise ApiError(504, "Timeout", f"this API server has not caught up with revision {want} "
                           f"(at {self.cache.revision}); retry", {"retryAfterSeconds": 1},
                           {"Retry-After": "1"}) from None


def replay_start(current: int, compacted: int, window: int) -> int:
    """The revision a worker's cache loads at, to replay up to `window` revisions into
    its event window (0: the newest, for an empty store)."""
    if current <= 0:
        return 0
    return min(current, max(compacted, current - window, 1))


def load_pki(data_dir: str) -> pki.Pki:
    """The primary's PKI, read as it left it (a worker never issues certificates)."""
    paths = pki.pki_paths(data_dir)
    with open(paths.admin_token_file, encoding="utf-8") as f:
        paths.admin_token = f.read().strip()
    return paths


class _ServedCrds(CrdController):
    """A worker serves the custom resources of stored CRDs; cleaning up after a deleted
    CRD is a write, the primary's job."""

    def schedule_cleanup(self, crd: dict[str, Any]) -> None:
        return


class WorkerApiServer(ApiServer):
    """The API served by a worker process: the primary's routes, reads from a follower."""

    store: FollowerStore  # type: ignore[assignment]

    def __init__(self, data_dir: str, store: FollowerStore, board: RevisionBoard, forwarder: Forwarder,
                 **kwargs: Any) -> None:
        super().__init__(data_dir, store, **kwargs)  # type: ignore[arg-type]
        self.crds = _ServedCrds(self.registry, self.cache, self.service)
        self.board = board
        self.forwarder = forwarder
        self.gate = ConsistentReadGate(board, store, self.cache)

    async def start(self) -> None:
        self.pki = await asyncio.to_thread(load_pki, self.data_dir)
        self.authenticator = auth.Authenticator(self.pki)
        self._start_service_accounts(ensure_key=False)
        await self.store.start()
        await self._start_cache()
        self.crds.start()
        self.virtual = VirtualHandler(self.cache, self.authenticator,
                                      await asyncio.to_thread(pki.agent_client_ssl_context, self.pki))
        self.virtual.authorizer = self.authorizer
        self.virtual.sa_tokens = self.sa_tokens
        rest = WorkerRestHandler(self.registry, self.store, self.cache, self.service, self.virtual)
        rest.forwarder = self.forwarder
        self.rest = rest
        await self._serve()
        self.ready = True

    async def _start_cache(self) -> None:
        # The primary's watches can resume from revisions well before this process started;
        # start the event window back as far as the primary's usually reaches (its minimum
        # of events), so a watch resumed here is not sent away with 410 Gone for it.
        current = self.store.current_revision()
        start = replay_start(current, self.store.compacted_revision(), self.cache.MIN_EVENTS)
        # A compaction past `start` meanwhile fails the start; the primary starts us again.
        await self.cache.start(start)
        await self.cache.wait_for(current, timeout=60.0)

    async def stop(self) -> None:
        await super().stop()
        await self.forwarder.close()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if needs_consistent_read(request.method, request.path, request.query):
            await self.gate.wait()
        return await super()._dispatch(request)


@dataclasses.dataclass(frozen=True)
class WorkerConfig:
    """What a worker process needs to serve as the primary does (passed as JSON)."""

    data_dir: str
    port: int
    bind: str
    advertise_address: str
    service_cidr: str
    node_port_range: str
    cluster_dns: str | None
    default_toleration_seconds: int
    gc_enabled: bool
    serving: dict[str, Any]
    # The primary's EncryptionConfiguration file: the worker decrypts what it reads with it.
    encryption_config: str = ""
    # The primary's ServiceAccount token options (serviceaccounts.TokenOptions.to_dict()).
    service_accounts: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerConfig:
        return cls(**json.loads(text))

    def serving_options(self) -> ServingOptions:
        d = dict(self.serving)
        flow = FlowControlConfig(**d.pop("flow", {}))
        return ServingOptions(flow=flow, **{**d, "reuse_port": True})


def serving_dict(serving: ServingOptions) -> dict[str, Any]:
    return dataclasses.asdict(serving)


async def run_worker(stop: asyncio.Event, config: WorkerConfig, wake_fd: int) -> int:
    """A worker process's life: follow the store, serve, stop when told or when the
    primary is gone. Returns the process's exit status."""
    from kybernetes.api.kinds import new_strategies
    from kybernetes.apiserver.servicealloc import ServiceNetwork, service_network

    board = RevisionBoard.open(os.path.join(config.data_dir, REVISION_FILE))
    store = FollowerStore(os.path.join(config.data_dir, "state.db"), board.read, board.read_compacted)
    failed: list[BaseException] = []

    def fatal(exc: BaseException) -> None:
        failed.append(exc)
        stop.set()

    store.driver.on_fatal = fatal
    served: Store = store
    rekeyer = None
    if config.encryption_config:
        from kybernetes.storage.encryption import EncryptingStore, follow_config, load_config

        enc = EncryptingStore(store, load_config(config.encryption_config), config.encryption_config)
        served = enc  # type: ignore[assignment]
        rekeyer = asyncio.create_task(follow_config(enc, None))
    network: ServiceNetwork = service_network(config.service_cidr, config.node_port_range, config.cluster_dns)
    srv = WorkerApiServer(
        config.data_dir, served, board, Forwarder(os.path.join(config.data_dir, FORWARD_SOCKET)),
        port=config.port, bind=config.bind, service_network=network, advertise_address=config.advertise_address,
        serving=config.serving_options(),
        kinds=new_strategies(default_toleration_seconds=config.default_toleration_seconds),
        gc_enabled=config.gc_enabled,
        service_accounts=serviceaccounts.TokenOptions.from_dict(config.service_accounts))
    await srv.start()
    store.driver.watch_fd(wake_fd)
    log.info("API worker %d serving at %s from revision %d", os.getpid(), srv.server_url(), store.current_revision())
    await stop.wait()
    if rekeyer is not None:
        rekeyer.cancel()
    await srv.stop()
    board.close()
    return 1 if failed else 0


# -- primary side --------------------------------------------------------------------------


class _Worker:
    __slots__ = ("index", "proc", "wake_w")

    def __init__(self, index: int, proc: subprocess.Popen[bytes], wake_w: int) -> None:
        self.index = index
        self.proc = proc
        self.wake_w = wake_w


class WorkerPool:
    """The primary's side: N-1 worker processes, their wake-ups and the forwarding socket."""

    def __init__(self, data_dir: str, workers: int, config: WorkerConfig, argv_prefix: list[str]) -> None:
        self.data_dir = data_dir
        self.count = max(0, workers - 1)
        self.config = config
        self.argv_prefix = argv_prefix  # how to run `kyb` (interpreter, module, -v flags)
        self.board = RevisionBoard.create(os.path.join(data_dir, REVISION_FILE))
        self.socket_path = os.path.join(data_dir, FORWARD_SOCKET)
        self.workers: list[_Worker] = []
        self._wake_pending = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._site: web.BaseSite | None = None
        self._supervisor: asyncio.Task[None] | None = None

    def wrap(self, store: Store) -> Store:
        """The store the primary API server writes through (see `PublishingStore`)."""
        self.board.publish(store.current_revision())
        self.board.publish_compacted(store.compacted_revision())
        return PublishingStore(store, self.published, self.board.publish_compacted)  # type: ignore[return-value]

    def published(self, rev: int) -> None:
        if self.board.publish(rev) and self.workers and not self._wake_pending:
            # One wake-up per loop step, however many writes it acknowledged.
            self._wake_pending = True
            assert self._loop is not None
            self._loop.call_soon(self._wake)

    def _wake(self) -> None:
        self._wake_pending = False
        for w in self.workers:
            try:
                os.write(w.wake_w, b"!")
            except (BlockingIOError, BrokenPipeError):
                pass  # a full pipe already holds a wake-up; a dead worker is restarted

    async def start(self, srv: ApiServer) -> None:
        self._loop = asyncio.get_running_loop()
        self.board.publish(srv.store.current_revision())
        srv.trusted_identity = trusted_identity
        self._site = await self._listen(srv)
        for i in range(self.count):
            try:
                self.workers.append(self._spawn(i))
            except OSError as e:
                log.warning("starting API worker %d failed: %s; this process serves alone", i, e)
        self._supervisor = asyncio.create_task(self._supervise(), name="api-workers")

    async def _listen(self, srv: ApiServer) -> web.BaseSite:
        assert srv.runner is not None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.socket_path)
        # Before listen(): nobody can connect while the socket still has the umask's mode.
        os.chmod(self.socket_path, 0o600)
        site = web.SockSite(srv.runner, sock)
        await site.start()
        return site

    def _spawn(self, index: int) -> _Worker:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        log_path = os.path.join(self.data_dir, f"api-worker-{index}.log")
        # The data dir keeps its files to its owner (a log may name Secrets' keys).
        out = os.fdopen(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab")
        try:
            proc = popen_dying_with_parent(
                [*self.argv_prefix, "api-worker", "--config", self.config.to_json(), "--wake-fd", str(wake_r)],
                stdout=out, stderr=out, pass_fds=(wake_r,))
        finally:
            out.close()
            os.close(wake_r)
        return _Worker(index, proc, wake_w)

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            for i, w in enumerate(self.workers):
                if w.proc.poll() is not None:
                    log.warning("API worker %d exited with %s; restarting", w.index, w.proc.returncode)
                    try:
                        replacement = self._spawn(w.index)
                    except OSError as e:  # e.g. a full disk for its log: the primary serves alone meanwhile
                        log.warning("restarting API worker %d failed: %s", w.index, e)
                        continue
                    os.close(w.wake_w)
                    self.workers[i] = replacement

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        for w in self.workers:
            if w.proc.poll() is None:
                w.proc.terminate()
        for w in self.workers:
            try:
                await asyncio.to_thread(w.proc.wait, 10)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                await asyncio.to_thread(w.proc.wait, 5)
            os.close(w.wake_w)
        self.workers = []
        if self._site is not None:
            await self._site.stop()
            self._site = None
        if os.path.exists(self.socket_path):
            os.unlink(self.socket_path)

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self.workers]


def worker_argv_prefix(verbose: list[str]) -> list[str]:
    return [sys.executable, "-m", "kybernetes.cli.main", *verbose]
