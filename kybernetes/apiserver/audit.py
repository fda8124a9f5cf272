"""The audit log's shell: one event per stage of each request the policy picks, to a file and a webhook.

`Auditor` is asked by the request pipeline (app.py's middleware) at four points: after
authentication (`begin`: the policy's level for this user and request, the
RequestReceived event), after impersonation and authorization (the context's
`impersonated` / `authz`), when the response's headers go out (`on_prepare`: the
`Audit-Id` header, ResponseStarted for long-running requests) and when the handler is
done (`observe`: ResponseComplete, or Panic). Decisions and event fields are
api/audit.py's; here live the request plumbing and the backends:

- `LogBackend`: JSON lines to `--audit-log-path` ("-": stdout), written by one thread
  in the order the events were made, rotated by size as kube-apiserver's lumberjack
  does (`audit-<UTC time>.log` backups, kept by count and age). The event loop only
  appends to a list; a flood past the buffer is dropped and counted, never queued
  without bound.
- `WebhookBackend`: `EventList` batches POSTed to the server in a kubeconfig-format file
  (`--audit-webhook-config-file`), by size or after the batch wait, retried with backoff,
  from a task of its own; a full buffer drops and counts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import random
import ssl
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
import yaml
from aiohttp import ClientSession, ClientTimeout, web

from kybernetes.api import audit as events
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.audit import Decision, Policy, PolicyChecker, PolicyError
from kybernetes.api.rbac import Attributes
from kybernetes.apiserver import codec
from kybernetes.apiserver.auth import UserInfo
from kybernetes.apiserver.authz import request_attributes
from kybernetes.apiserver.rest import REQUEST_BODY

log = logging.getLogger("kybernetes.apiserver.audit")

AUDIT_ID_HEADER = "Audit-Id"
PANIC = "kyb.audit.panic"
_CTX = "kyb.audit"
# rest.py's write_context leaves the write's audit annotations here (rest.AUDIT_ANNOTATIONS).
AUDIT_ANNOTATIONS = "kyb.audit_annotations"
_RECEIVED = "kyb.audit.received"
_ID = "kyb.audit.id"
_BODY_VERBS = ("create", "update", "patch")
_OBJECT_VERBS = ("create", "update")
_JSON_TYPES = ("application/json", "")
DROP_LOG_INTERVAL = 60.0
# The log's lines go to its writer thread at most this often, or sooner when this many wait.
HAND_OFF_INTERVAL = 0.05
HAND_OFF_LINES = 1000


class Backend(Protocol):
    name: str
    dropped: int

    def emit(self, line: bytes) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass(slots=True)
class _Context:
    """One audited request: its policy decision and what the stages learned."""

    decision: Decision
    attrs: Attributes
    base: dict[str, Any]
    received: str
    long_running: bool
    impersonated: dict[str, Any] | None = None
    authz: tuple[str, str] | None = None
    started: int = 0
    # What admission adds (PodSecurity's enforce-policy, audit-violations; policies' Audit
    # actions): the write's WriteContext.audit_annotations, shared through the request.
    admission: dict[str, str] | None = None

    def impersonate(self, user: UserInfo) -> None:
        self.impersonated = events.user_info(user.username, user.uid, user.groups, user.extra)


class Auditor:
    """The policy and the backends; the pipeline's hooks."""

    def __init__(self, policy: Policy, backends: list[Backend]) -> None:
        self.checker = PolicyChecker(policy)
        self.backends = backends
        self.events = 0

    async def start(self) -> None:
        for b in self.backends:
            await b.start()

    async def stop(self) -> None:
        for b in self.backends:
            await b.stop()

    @property
    def dropped(self) -> int:
        return sum(b.dropped for b in self.backends)

    # -- hooks ---------------------------------------------------------------------------

    async def observe(self, request: web.Request, inner: Awaitable[web.StreamResponse]) -> web.StreamResponse:
        """Run the request (`inner`: authentication onwards) and record how it ended."""
        request[_RECEIVED] = time.time()
        try:
            resp = await inner
        except BaseException:
            ctx = request.get(_CTX)
            if ctx is not None:
                # A stream the client left, or a stop: what was answered, if anything was.
                self._emit(ctx, events.RESPONSE_COMPLETE, status=events.response_status(ctx.started or 500))
            raise
        ctx = request.get(_CTX)
        if ctx is not None:
            self._complete(ctx, request, resp)
        return resp

    def begin(self, request: web.Request, user: UserInfo | None) -> _Context | None:
        """The policy's decision for an authenticated (or refused: `user` None) request;
        a context when it is audited at all."""
        username, groups = (user.username, tuple(user.groups)) if user is not None else ("", ())
        attrs = request_attributes(username, groups, request.method, request.path, request.query)
        decision = self.checker.decide(attrs)
        if decision.level == events.NONE:
            return None
        headers = request.headers
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        who = events.user_info(user.username, user.uid, user.groups, user.extra) if user is not None else {}
        received = events.micro_time(request.get(_RECEIVED) or time.time())
        base = events.new_event(self.audit_id(request), decision.level, attrs, request.raw_path, who,
                                events.source_ips(headers.get("X-Forwarded-For", ""), headers.get("X-Real-Ip", ""),
                                                  remote),
                                headers.get("User-Agent", ""))
        ctx = _Context(decision, attrs, base, received, events.long_running(attrs))
        request[_CTX] = ctx
        if user is not None:
            # upstream's failed-authentication events have no RequestReceived stage.
            self._emit(ctx, events.REQUEST_RECEIVED)
        return ctx

    async def on_prepare(self, request: web.Request, response: web.StreamResponse) -> None:
        """aiohttp's on_response_prepare: every answer names its audit ID, as kube-apiserver's;
        a long-running request's event says its headers went out."""
        response.headers[AUDIT_ID_HEADER] = self.audit_id(request)
        ctx = request.get(_CTX)
        if ctx is not None and ctx.long_running and not ctx.started:
            ctx.started = response.status
            self._emit(ctx, events.RESPONSE_STARTED, status=events.response_status(response.status))

    @staticmethod
    def audit_id(request: web.Request) -> str:
        found: str | None = request.get(_ID)
        if found is None:
            # A front proxy's ID is kept, as kube-apiserver keeps a client's Audit-ID.
            found = request.headers.get("Audit-ID") or new_audit_id()
            request[_ID] = found
        return found

    # -- events --------------------------------------------------------------------------

    def _complete(self, ctx: _Context, request: web.Request, resp: web.StreamResponse) -> None:
        level = ctx.decision.level
        attrs = ctx.attrs
        panic = request.get(PANIC)
        ctx.admission = request.get(AUDIT_ANNOTATIONS)
        body = resp.body if isinstance(resp, web.Response) and isinstance(resp.body, bytes | bytearray) else b""
        failure = _decode(body, resp.content_type) if resp.status >= 400 and body else None
        if panic is not None:
            status = events.response_status(500, {"status": "Failure", "message": f"APIServer panic'd: {panic}"})
        else:
            status = events.response_status(resp.status, failure if isinstance(failure, dict) else None)
        request_object = response_object = None
        if attrs.resource_request and attrs.verb in _BODY_VERBS:
            raw = request.get(REQUEST_BODY)
            needs_object = attrs.verb in _OBJECT_VERBS or events.at_least(level, events.REQUEST)
            if raw and needs_object:
                obj = _decode(raw, request.content_type)
                if attrs.verb in _OBJECT_VERBS:
                    events.fill_object_ref(ctx.base, obj)
                if events.at_least(level, events.REQUEST) and obj is not None:
                    request_object = obj
        if (attrs.resource_request and events.at_least(level, events.REQUEST_RESPONSE) and body
                and resp.status < 400):
            response_object = _decode(body, resp.content_type)
        if ctx.decision.omit_managed_fields:
            request_object = events.without_managed_fields(request_object)
            response_object = events.without_managed_fields(response_object)
        self._emit(ctx, events.PANIC if panic is not None else events.RESPONSE_COMPLETE, status=status,
                   request_object=request_object, response_object=response_object)

    def _emit(self, ctx: _Context, stage: str, status: dict[str, Any] | None = None,
              request_object: Any = None, response_object: Any = None) -> None:
        if stage in ctx.decision.omit_stages:
            return
        annotations = None
        if stage != events.REQUEST_RECEIVED:
            annotations = {}
            if ctx.authz is not None:
                annotations = {events.DECISION: ctx.authz[0], events.REASON: ctx.authz[1]}
            if ctx.admission:
                annotations.update(ctx.admission)
            # Sorted, as Go writes a map.
            annotations = {k: annotations[k] for k in sorted(annotations)} if annotations else None
        ev = events.stage_event(ctx.base, stage, ctx.received, events.micro_time(time.time()),
                                impersonated=ctx.impersonated, status=status, request_object=request_object,
                                response_object=response_object, annotations=annotations)
        try:
            line = orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            # A body orjson cannot write (it was decoded, so rare): the event without it.
            ev.pop("requestObject", None)
            ev.pop("responseObject", None)
            line = orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE)
        self.events += 1
        for b in self.backends:
            b.emit(line)


# A per-process generator seeded once from the OS: uuid4() asks the kernel for 16 bytes on
# every call, a syscall that cost more than the rest of the audit hook on this box. An audit
# ID must be unique, not secret.
_random = random.Random(int.from_bytes(os.urandom(32), "big"))
_VERSION_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_SET = (0x4000 << 64) | (0x8000 << 48)


def new_audit_id() -> str:
    """A random (version 4) UUID."""
    h = "%032x" % (_random.getrandbits(128) & _VERSION_CLEAR | _VERSION_SET)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _decode(body: bytes, content_type: str) -> Any:
    """A request's or response's body as JSON data, or None when it is not an object we read."""
    try:
        if content_type in _JSON_TYPES:
            return orjson.loads(body)
        if content_type == codec.PROTOBUF_TYPE:
            from kybernetes.api.protobuf import decode_k8s_protobuf

            return decode_k8s_protobuf(bytes(body))
        return codec.decode_body(bytes(body), content_type)
    except Exception:  # noqa: BLE001 - an undecodable body is left out of the event, never fails a request
        return None


# -- the log file ----------------------------------------------------------------------------


class _DropCounter:
    """Counts what a backend could not keep and says so in the log, once a minute at most."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0
        self._last = 0.0

    def drop(self, n: int, why: str) -> None:
        self.dropped += n
        now = time.monotonic()
        if now - self._last >= DROP_LOG_INTERVAL:
            log.error("audit %s backend: %d events dropped so far (%s)", self.name, self.dropped, why)
            self._last = now


BACKUP_TIME_FORMAT = "%Y-%m-%dT%H-%M-%S"


class RotatingFile:
    """A file that is renamed to a timestamped backup when the next write would take it past
    `max_bytes` (lumberjack's naming: audit.log → audit-2026-01-02T15-04-05.000.log), keeping
    at most `max_backups` backups (0: all) no older than `max_age_days` (0: any age). Blocking:
    the log backend's thread calls it."""

    def __init__(self, path: str, max_bytes: int = 0, max_backups: int = 0, max_age_days: int = 0) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_backups = max_backups
        self.max_age_days = max_age_days
        self._fd = -1
        self._size = 0

    def open(self) -> None:
        if self.path == "-":
            self._fd = sys.stdout.fileno()
            return
        d = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(d, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._size = os.fstat(self._fd).st_size

    def write(self, data: bytes) -> None:
        if self._fd < 0:
            self.open()
        if self.path != "-" and self.max_bytes and self._size and self._size + len(data) > self.max_bytes:
            self.rotate()
        view = memoryview(data)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self._size += len(data)

    def rotate(self) -> None:
        self.close()
        base, ext = os.path.splitext(self.path)
        now = time.time()
        stamp = time.strftime(BACKUP_TIME_FORMAT, time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}"
        backup = f"{base}-{stamp}{ext}"
        n = 1
        while os.path.exists(backup):
            backup, n = f"{base}-{stamp}-{n}{ext}", n + 1
        os.rename(self.path, backup)
        self.open()
        self.prune()

    def backups(self) -> list[str]:
        """Backup files, newest first."""
        base, ext = os.path.splitext(os.path.abspath(self.path))
        d, prefix = os.path.dirname(base), os.path.basename(base) + "-"
        found = []
        for name in os.listdir(d):
            if not (name.startswith(prefix) and name.endswith(ext)):
                continue
            stamp = name[len(prefix):len(name) - len(ext)]
            try:
                when = time.mktime(time.strptime(stamp[:19], BACKUP_TIME_FORMAT)) - time.timezone
            except ValueError:
                continue
            found.append((when, stamp, os.path.join(d, name)))
        found.sort(reverse=True)
        return [p for _, _, p in found]

    def prune(self) -> None:
        backups = self.backups()
        doomed = set(backups[self.max_backups:]) if self.max_backups else set()
        if self.max_age_days:
            cutoff = time.time() - self.max_age_days * 86400
            doomed |= {p for p in backups if os.path.getmtime(p) < cutoff}
        for p in doomed:
            try:
                os.remove(p)
            except OSError as e:
                log.warning("could not remove the old audit log %s: %s", p, e)

    def close(self) -> None:
        if self._fd >= 0 and self.path != "-":
            os.close(self._fd)
        self._fd = -1


class LogBackend:
    """Events as JSON lines in a (rotated) file, written off the event loop in order."""

    name = "log"

    def __init__(self, path: str, max_size_mb: int = 100, max_backups: int = 0, max_age_days: int = 0,
                 buffer_size: int = 10000) -> None:
        self.file = RotatingFile(path, max_size_mb * 1024 * 1024, max_backups, max_age_days)
        self.buffer_size = buffer_size
        self._drops = _DropCounter("log")
        self._batch: list[bytes] = []
        self._scheduled = False
        self._in_thread = 0
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[list[bytes] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.written = 0
        self._errors = _DropCounter("log (write errors)")

    @property
    def dropped(self) -> int:
        return self._drops.dropped + self._errors.dropped

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.file.open)
        self._thread = threading.Thread(target=self._run, name="audit-log", daemon=True)
        self._thread.start()

    def emit(self, line: bytes) -> None:
        if self._loop is None:
            return
        if self._in_thread + len(self._batch) >= self.buffer_size:
            self._drops.drop(1, f"more than {self.buffer_size} events waiting for the disk")
            return
        self._batch.append(line)
        if len(self._batch) >= HAND_OFF_LINES:
            self._hand_off()
        elif not self._scheduled:
            # One hand-off (a wake-up of the writer thread, which then wants the GIL) per
            # interval, however many requests finished in it.
            self._scheduled = True
            self._loop.call_later(HAND_OFF_INTERVAL, self._timer)

    def _timer(self) -> None:
        self._scheduled = False
        self._hand_off()

    def _hand_off(self) -> None:
        batch, self._batch = self._batch, []
        if batch:
            with self._lock:
                self._in_thread += len(batch)
            self._queue.put(batch)

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            # Whatever else is waiting goes out in the same write.
            more: list[bytes] | None = None
            stop = False
            while True:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                more = (more or []) + nxt
            if more:
                batch = batch + more
            try:
                self.file.write(b"".join(batch))
                self.written += len(batch)
            except OSError as e:
                self._errors.drop(len(batch), f"cannot write {self.file.path}: {e.strerror or e}")
            with self._lock:
                self._in_thread -= len(batch)
            if stop:
                return

    async def stop(self) -> None:
        if self._thread is None:
            return
        self._hand_off()
        self._queue.put(None)
        await asyncio.to_thread(self._thread.join, 10)
        self._thread = None
        self.file.close()


# -- the webhook -------------------------------------------------------------------------------


@dataclass
class WebhookTarget:
    """Where and how to POST, from a kubeconfig-format file."""

    url: str
    ssl: ssl.SSLContext | None = None
    headers: dict[str, str] = field(default_factory=dict)


def _pick(items: Any, name: str | None, what: str) -> dict[str, Any]:
    if not isinstance(items, list) or not items:
        raise PolicyError(f"the audit webhook config has no {what}s")
    for it in items:
        if isinstance(it, dict) and (name is None or it.get("name") == name):
            inner = it.get(what)
            return inner if isinstance(inner, dict) else {}
    raise PolicyError(f"the audit webhook config has no {what} named {name!r}")


def load_webhook_target(path: str) -> WebhookTarget:
    """The server, CA and client credentials of a kubeconfig file (its current context, or
    its first cluster and user), as kube-apiserver reads --audit-webhook-config-file."""
    with open(path, "rb") as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict):
        raise PolicyError(f"{path}: not a kubeconfig")
    base = os.path.dirname(os.path.abspath(path))
    cluster_name = user_name = None
    current = doc.get("current-context")
    if current:
        ctx = _pick(doc.get("contexts"), current, "context")
        cluster_name, user_name = ctx.get("cluster"), ctx.get("user")
    cluster = _pick(doc.get("clusters"), cluster_name, "cluster")
    users = doc.get("users")
    user = _pick(users, user_name, "user") if users else {}
    url = cluster.get("server")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise PolicyError(f"{path}: the cluster's server must be an http(s) URL")
    target = WebhookTarget(url)
    if url.startswith("https://"):
        ctx_ssl = ssl.create_default_context()
        if cluster.get("insecure-skip-tls-verify"):
            ctx_ssl.check_hostname = False
            ctx_ssl.verify_mode = ssl.CERT_NONE
        elif cluster.get("certificate-authority-data"):
            import base64

            ctx_ssl.load_verify_locations(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        elif cluster.get("certificate-authority"):
            ctx_ssl.load_verify_locations(cafile=os.path.join(base, cluster["certificate-authority"]))
        _client_cert(ctx_ssl, user, base)
        target.ssl = ctx_ssl
    if user.get("token"):
        target.headers["Authorization"] = f"Bearer {user['token']}"
    return target


def _client_cert(ctx: ssl.SSLContext, user: dict[str, Any], base: str) -> None:
    import base64

    cert, key = user.get("client-certificate"), user.get("client-key")
    if cert and key:
        ctx.load_cert_chain(os.path.join(base, cert), os.path.join(base, key))
        return
    cert_data, key_data = user.get("client-certificate-data"), user.get("client-key-data")
    if cert_data and key_data:
        # The ssl module reads credentials from files only: a private temporary pair.
        with tempfile.TemporaryDirectory(prefix="kyb-audit-") as d:
            cf, kf = os.path.join(d, "c.pem"), os.path.join(d, "k.pem")
            for p, data in ((cf, cert_data), (kf, key_data)):
                fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(base64.b64decode(data))
            ctx.load_cert_chain(cf, kf)


class WebhookBackend:
    """Events in EventList batches to a remote server, never waiting on it in a request."""

    name = "webhook"

    def __init__(self, target: WebhookTarget, batch_max_size: int = 400, batch_max_wait: float = 30.0,
                 buffer_size: int = 10000, initial_backoff: float = 10.0, retries: int = 5,
                 timeout: float = 30.0) -> None:
        self.target = target
        self.batch_max_size = max(1, batch_max_size)
        self.batch_max_wait = batch_max_wait
        self.buffer_size = buffer_size
        self.initial_backoff = initial_backoff
        self.retries = retries
        self.timeout = timeout
        self._buffer: deque[bytes] = deque()
        self._drops = _DropCounter("webhook")
        self._nonempty = asyncio.Event()
        self._full = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._session: ClientSession | None = None
        self.sent = 0
        self.batches = 0

    @property
    def dropped(self) -> int:
        return self._drops.dropped

    async def start(self) -> None:
        self._session = ClientSession(timeout=ClientTimeout(total=self.timeout))
        self._task = asyncio.create_task(self._run(), name="audit-webhook")

    def emit(self, line: bytes) -> None:
        if len(self._buffer) >= self.buffer_size:
            self._drops.drop(1, f"more than {self.buffer_size} events waiting for {self.target.url}")
            return
        self._buffer.append(line.rstrip(b"\n"))
        self._nonempty.set()
        if len(self._buffer) >= self.batch_max_size:
            self._full.set()

    async def _run(self) -> None:
        while True:
            await self._nonempty.wait()
            # A batch is sent when full or when its first event has waited long enough.
            if len(self._buffer) < self.batch_max_size:
                try:
                    await asyncio.wait_for(self._full.wait(), self.batch_max_wait)
                except TimeoutError:
                    pass
            await self._flush_one()

    async def _flush_one(self) -> None:
        n = min(len(self._buffer), self.batch_max_size)
        batch = [self._buffer.popleft() for _ in range(n)]
        if len(self._buffer) < self.batch_max_size:
            self._full.clear()
        if not self._buffer:
            self._nonempty.clear()
        if batch:
            await self._send(batch)

    async def _send(self, batch: list[bytes]) -> None:
        assert self._session is not None
        body = events.event_list(batch)
        headers = {"Content-Type": "application/json", **self.target.headers}
        delay = self.initial_backoff
        why = ""
        for attempt in range(self.retries + 1):
            try:
                async with self._session.post(self.target.url, data=body, headers=headers,
                                              ssl=self.target.ssl if self.target.ssl is not None else True) as r:
                    await r.read()
                    if r.status < 300:
                        self.sent += len(batch)
                        self.batches += 1
                        return
                    why = f"HTTP {r.status}"
                    if r.status < 500 and r.status != 429:
                        break
            except Exception as e:  # noqa: BLE001 - refused, reset, timed out: retried, then dropped
                why = str(e) or type(e).__name__
            if attempt < self.retries:
                await asyncio.sleep(delay)
                delay *= 1.5
        self._drops.drop(len(batch), f"{self.target.url}: {why}")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None
        # What is left gets one try each, without the backoff (the server is stopping).
        self.retries = 0
        while self._buffer and self._session is not None:
            await self._flush_one()
        if self._session is not None:
            await self._session.close()
            self._session = None


# -- from flags --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditOptions:
    """kube-apiserver's audit flags, as `kyb server` takes them."""

    policy_file: str | None = None
    log_path: str | None = None
    log_maxsize: int = 100
    log_maxbackup: int = 10
    log_maxage: int = 0
    log_buffer_size: int = 10000
    webhook_config_file: str | None = None
    webhook_batch_max_size: int = 400
    webhook_batch_max_wait: float = 30.0
    webhook_batch_buffer_size: int = 10000
    webhook_initial_backoff: float = 10.0


def load_policy(path: str | None) -> Policy:
    """The policy file's policy (YAML or JSON), or kyb's default policy without one."""
    if not path:
        return events.default_policy()
    try:
        with open(path, "rb") as f:
            doc = yaml.safe_load(f)
    except OSError as e:
        raise PolicyError(f"cannot read the audit policy {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise PolicyError(f"{path}: not YAML or JSON: {e}") from None
    try:
        return events.parse_policy(doc)
    except PolicyError as e:
        raise PolicyError(f"{path}: {e}") from None


def build_auditor(options: AuditOptions) -> Auditor | None:
    """The auditor the options describe; None when no backend is configured."""
    backends: list[Backend] = []
    if options.log_path:
        backends.append(LogBackend(options.log_path, options.log_maxsize, options.log_maxbackup,
                                   options.log_maxage, options.log_buffer_size))
    if options.webhook_config_file:
        backends.append(WebhookBackend(load_webhook_target(options.webhook_config_file),
                                       options.webhook_batch_max_size, options.webhook_batch_max_wait,
                                       options.webhook_batch_buffer_size, options.webhook_initial_backoff))
    if not backends:
        return None
    return Auditor(load_policy(options.policy_file), backends)
