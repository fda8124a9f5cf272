"""The async API client: one HTTPS session to the API servers, JSON in and out.

Every component talks to the cluster through `ApiClient`. Failures come back
as `ApiError` built from the server's `Status`, so callers match on `.code`
and `.reason` exactly as the server set them.

A client may know several API servers of one cluster (same CA), as a k3s agent's
load balancer does: it sticks to one while it answers and moves on to the next when
it cannot be reached. A request is sent again to the next server only when it cannot
have reached the first (the connection was never made) or when sending it twice is
harmless (a read, a watch); a write cut off mid-way fails, as it may have been applied.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import logging
import os
import ssl
import tempfile
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import aiohttp
import orjson
import yaml

from kybernetes.api.errors import ApiError
from kybernetes.api.timefmt import rfc3339
from kybernetes.client.resources import EVENTS, Resource

log = logging.getLogger(__name__)

PATCH_TYPES = {
    "json": "application/json-patch+json",
    "merge": "application/merge-patch+json",
    "strategic": "application/strategic-merge-patch+json",
    "apply": "application/apply-patch+yaml",
}
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"


def _error_from(status: int, body: bytes) -> ApiError:
    try:
        st = orjson.loads(body)
    except orjson.JSONDecodeError:
        st = None
    if isinstance(st, dict) and st.get("kind") == "Status":
        return ApiError(int(st.get("code") or status), st.get("reason") or "", st.get("message") or "",
                        st.get("details"))
    return ApiError(status, "Unknown", body[:300].decode(errors="replace"))


def ssl_context_from_kubeconfig(cluster: dict[str, Any], user: dict[str, Any], base_dir: str) -> ssl.SSLContext:
    def material(data_key: str, file_key: str, source: dict[str, Any]) -> tuple[bytes | None, str | None]:
        if source.get(data_key):
            return base64.b64decode(source[data_key]), None
        if source.get(file_key):
            return None, os.path.join(base_dir, source[file_key])
        return None, None

    ctx = ssl.create_default_context()
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ca_data, ca_file = material("certificate-authority-data", "certificate-authority", cluster)
        if ca_data:
            ctx.load_verify_locations(cadata=ca_data.decode())
        elif ca_file:
            ctx.load_verify_locations(cafile=ca_file)
    cert_data, cert_file = material("client-certificate-data", "client-certificate", user)
    key_data, key_file = material("client-key-data", "client-key", user)
    if (cert_data or cert_file) and (key_data or key_file):
        _load_cert_chain(ctx, cert_data, cert_file, key_data, key_file)
    return ctx


def _load_cert_chain(ctx: ssl.SSLContext, cert_data: bytes | None, cert_file: str | None,
                     key_data: bytes | None, key_file: str | None) -> None:
    # ssl loads a chain only from files: inline material goes through a private
    # temporary directory that is removed as soon as it has been read.
    with tempfile.TemporaryDirectory(prefix="kyb-client-") as tmp:
        if cert_data is not None:
            cert_file = os.path.join(tmp, "cert.pem")
            with open(os.open(cert_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(cert_data)
        if key_data is not None:
            key_file = os.path.join(tmp, "key.pem")
            with open(os.open(key_file, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
                f.write(key_data)
        ctx.load_cert_chain(cert_file, key_file)


def kubeconfig_entries(path: str, context: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The cluster and user entries of a kubeconfig's (current) context."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    ctx_name = context or cfg.get("current-context")
    ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
    user = next((u["user"] for u in cfg.get("users", []) if u["name"] == ctx.get("user")), {})
    return cluster, user


def kubeconfig_ca_pem(path: str, context: str | None = None) -> bytes:
    """The cluster CA certificate a kubeconfig trusts (PEM)."""
    cluster, _ = kubeconfig_entries(path, context)
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"])
    with open(os.path.join(os.path.dirname(os.path.abspath(path)), cluster["certificate-authority"]), "rb") as f:
        return f.read()


_RETRIES_ON_429 = 10
FAILOVER_CONNECT_SECONDS = 3.0
# Requests that change nothing: sent again to another server if one is cut off.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The request never left: no connection to that server could be made.
_NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
# The connection broke after the request may have been sent.
_CUT_OFF = (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)


def server_unreachable(exc: BaseException) -> bool:
    """Whether a failure says the server is gone (rather than slow or refusing)."""
    return isinstance(exc, _NOT_SENT + _CUT_OFF)


def may_send_elsewhere(method: str, exc: BaseException) -> bool:
    """client-go's rule: any request that never reached a server, and a read cut off, may
    go to another server; a write cut off may have been applied and is not repeated."""
    if isinstance(exc, _NOT_SENT):
        return True
    return method.upper() in IDEMPOTENT_METHODS and isinstance(exc, _CUT_OFF)


def unique_urls(urls: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for u in urls:
        if u and u.strip():
            seen.setdefault(u.strip().rstrip("/"), None)
    return list(seen)


def _retry_after(header: str | None) -> float:
    """Seconds to wait before retrying a 429, from its Retry-After (1 s if absent, at most 10)."""
    try:
        return min(10.0, max(0.0, float(header))) if header else 1.0
    except ValueError:
        return 1.0


def _log_forbidden(status: int, method: str, path: str, raw: bytes) -> None:
    """A component refused by authorization is missing a rule of its role, a silent
    failure otherwise (callers often retry or skip): say so in its log. Other 403s (a
    terminating namespace, an exceeded quota) are the API's answers, not missing rules;
    authorization's are worded `User "<name>" cannot <verb> ...`."""
    if status == 403 and b'" cannot ' in raw:
        log.warning("forbidden: %s %s: %s", method, path, raw[:300].decode("utf-8", "replace"))


class ApiClient:
    # Set by the control-plane components: every refusal by authorization is a rule their
    # role lacks. Others (an agent trying what only an admin may, then falling back) expect some.
    log_refusals = False

    def __init__(self, base_url: str | Iterable[str], ssl_context: ssl.SSLContext | None = None,
                 token: str | None = None, user_agent: str = "kybernetes", max_connections: int = 64) -> None:
        """`base_url`: one API server, or several of one cluster to fail over between."""
        self._servers = unique_urls([base_url] if isinstance(base_url, str) else base_url)
        if not self._servers:
            raise ValueError("an API client needs at least one server URL")
        self._current = 0
        self.ssl_context = ssl_context
        self.token = token
        self.user_agent = user_agent
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        # Watches hold their connection for minutes: they get a pool of their own, or a
        # component watching every resource (the garbage collector) would leave no
        # connection of `max_connections` for its writes and its leader election lease.
        self._watch_session: aiohttp.ClientSession | None = None
        self._event_cache: dict[tuple[str, str, str], tuple[str, int]] = {}
        # Per (component, object) token buckets: (tokens, last refill time).
        self._event_buckets: dict[tuple[str, str], tuple[float, float]] = {}

    # -- servers -----------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """The server requests go to now."""
        return self._servers[self._current]

    @property
    def servers(self) -> list[str]:
        return list(self._servers)

    def set_servers(self, urls: Iterable[str]) -> None:
        """Replace the known servers (an empty list changes nothing); the one in use stays
        in use if it is still listed."""
        fresh = unique_urls(urls)
        if not fresh:
            return
        current = self.base_url
        if fresh != self._servers:
            log.info("API servers: %s", ", ".join(fresh))
        self._servers = fresh
        self._current = fresh.index(current) if current in fresh else 0

    def server_failed(self, url: str) -> None:
        """`url` could not be reached: the next server takes over (once, however many
        requests saw it fail at the same time)."""
        if len(self._servers) > 1 and self.base_url == url:
            self._current = (self._current + 1) % len(self._servers)
            log.warning("API server %s unreachable, switching to %s", url, self.base_url)

    def _connect_timeout(self) -> float | None:
        """With other servers to go to, one that does not answer a TCP connect (its machine
        gone) is given up after a few seconds; the kernel answers a connect however busy the
        server is. Alone, a request waits for its own timeout as before."""
        return FAILOVER_CONNECT_SECONDS if len(self._servers) > 1 else None

    def _fail_over(self, url: str, method: str, exc: BaseException, failures: int) -> bool:
        """After `exc` from `url`: whether to send the request again (to the next server)."""
        if not server_unreachable(exc):
            return False
        self.server_failed(url)
        return may_send_elsewhere(method, exc) and failures < len(self._servers)

    # -- construction ------------------------------------------------------------------

    @classmethod
    async def from_kubeconfig(cls, path: str, context: str | None = None, user_agent: str = "kybernetes",
                              max_connections: int = 64) -> ApiClient:
        cluster, user = kubeconfig_entries(path, context)
        base_dir = os.path.dirname(os.path.abspath(path))
        ssl_ctx = ssl_context_from_kubeconfig(cluster, user, base_dir) if cluster["server"].startswith(
            "https") else None
        return cls(cluster["server"], ssl_ctx, user.get("token"), user_agent, max_connections)

    @classmethod
    def in_cluster(cls, user_agent: str = "kybernetes") -> ApiClient:
        host = os.environ["KUBERNETES_SERVICE_HOST"]
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        with open(os.path.join(SA_DIR, "token")) as f:
            token = f.read().strip()
        ctx = ssl.create_default_context(cafile=os.path.join(SA_DIR, "ca.crt"))
        return cls(f"https://{host}:{port}", ctx, token, user_agent)

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        conn = aiohttp.TCPConnector(ssl=self.ssl_context if self.ssl_context is not None else False, limit=limit)
        return aiohttp.ClientSession(connector=conn, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=None, sock_connect=10))

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = self._new_session(self.max_connections)
        return self._session

    def watch_session(self) -> aiohttp.ClientSession:
        """The pool of watch connections: one per watch, as many as there are watches."""
        if self._watch_session is None or self._watch_session.closed:
            self._watch_session = self._new_session(0)
        return self._watch_session

    def detach_sessions(self) -> list[aiohttp.ClientSession]:
        """Hand over the connection pools (the caller closes them): later requests open new
        connections, e.g. with a renewed client certificate in `ssl_context`."""
        old = [s for s in (self._session, self._watch_session) if s is not None]
        self._session = self._watch_session = None
        return old

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._watch_session is not None:
            await self._watch_session.close()

    # -- plumbing ----------------------------------------------------------------------

    async def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
                      content_type: str = "application/json", timeout: float = 60.0) -> Any:
        data = None
        headers = {}
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        clean = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (params or {}).items()
                 if v not in (None, "")}
        attempt = failures = 0
        while True:
            url = self.base_url
            try:
                async with self.session().request(method, url + path, params=clean, data=data, headers=headers,
                                                  timeout=aiohttp.ClientTimeout(
                                                      total=timeout, sock_connect=self._connect_timeout())) as resp:
                    raw = await resp.read()
                    status, retry_after = resp.status, resp.headers.get("Retry-After")
            except (aiohttp.ClientError, TimeoutError) as e:
                failures += 1
                if not self._fail_over(url, method, e, failures):
                    raise
                continue
            # A server under load (flow control) asks to come back later: do as
            # client-go does and retry after Retry-After, a bounded number of times.
            if status == 429 and attempt < _RETRIES_ON_429:
                attempt += 1
                await asyncio.sleep(_retry_after(retry_after))
                continue
            if status >= 400:
                if self.log_refusals:
                    _log_forbidden(status, method, path, raw)
                raise _error_from(status, raw)
            return orjson.loads(raw) if raw else None

    async def _open_watch(self, path: str, params: dict[str, str],
                          timeout_seconds: int) -> tuple[str, aiohttp.ClientResponse]:
        """The server and response of a watch request, from the first server that can be reached."""
        failures = 0
        while True:
            url = self.base_url
            try:
                return url, await self.watch_session().get(url + path, params=params,
                                                      timeout=aiohttp.ClientTimeout(total=timeout_seconds + 30,
                                                                                    sock_connect=self._connect_timeout(),
                                                                                    sock_read=timeout_seconds + 30))
            except (aiohttp.ClientError, TimeoutError) as e:
                failures += 1
                if not self._fail_over(url, "GET", e, failures):
                    raise

    async def get_raw(self, path: str) -> Any:
        return await self.request("GET", path)

    # -- verbs -------------------------------------------------------------------------

    async def get(self, res: Resource, namespace: str | None, name: str, subresource: str = "") -> dict[str, Any]:
        return await self.request("GET", res.path(namespace, name, subresource))

    async def list(self, res: Resource, namespace: str | None = None, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_: str = "",
                   resource_version: str = "") -> dict[str, Any]:
        return await self.request("GET", res.path(namespace), {
            "labelSelector": label_selector, "fieldSelector": field_selector, "limit": limit or None,
            "continue": continue_, "resourceVersion": resource_version})

    async def create(self, res: Resource, namespace: str | None, obj: dict[str, Any],
                     field_manager: str | None = None, dry_run: bool = False) -> dict[str, Any]:
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return await self.request("POST", res.path(namespace), {
            "fieldManager": field_manager or self.user_agent, "dryRun": "All" if dry_run else None}, obj)

    async def update(self, res: Resource, namespace: str | None, name: str, obj: dict[str, Any],
                     subresource: str = "", field_manager: str | None = None) -> dict[str, Any]:
        obj.setdefault("apiVersion", res.api_version)
        obj.setdefault("kind", res.kind)
        return await self.request("PUT", res.path(namespace, name, subresource),
                                  {"fieldManager": field_manager or self.user_agent}, obj)

    async def patch(self, res: Resource, namespace: str | None, name: str, body: Any, patch_type: str = "merge",
                    subresource: str = "", field_manager: str | None = None, force: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"fieldManager": field_manager or self.user_agent}
        if force:
            params["force"] = "true"
        return await self.request("PATCH", res.path(namespace, name, subresource), params, body,
                                  PATCH_TYPES[patch_type])

    async def delete(self, res: Resource, namespace: str | None, name: str, propagation_policy: str | None = None,
                     grace_period_seconds: int | None = None,
                     preconditions: dict[str, str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", res.path(namespace, name), None, body)

    async def delete_collection(self, res: Resource, namespace: str | None, label_selector: str = "",
                                propagation_policy: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        return await self.request("DELETE", res.path(namespace), {"labelSelector": label_selector}, body)

    async def create_subresource(self, res: Resource, namespace: str | None, name: str, subresource: str,
                                 body: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", res.path(namespace, name, subresource), None, body)

    async def watch(self, res: Resource, namespace: str | None = None, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "", timeout_seconds: int = 300,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Events of one watch request until the server ends it. An ERROR event raises ApiError."""
        params = {"watch": "true", "resourceVersion": resource_version, "labelSelector": label_selector,
                  "fieldSelector": field_selector, "timeoutSeconds": timeout_seconds,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None}
        params = {k: str(v) for k, v in params.items() if v not in (None, "")}
        url, resp = await self._open_watch(res.path(namespace), params, timeout_seconds)
        try:
            async with resp, contextlib.aclosing(self._events(resp, res.path(namespace))) as events:
                async for event in events:
                    yield event
        except _CUT_OFF:
            # The server went away mid-watch: the caller's next watch goes to another.
            self.server_failed(url)
            raise

    async def _events(self, resp: aiohttp.ClientResponse, path: str) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        if resp.status >= 400:
            raw = await resp.read()
            if self.log_refusals:
                _log_forbidden(resp.status, "WATCH", path, raw)
            raise _error_from(resp.status, raw)
        pieces: list[bytes] = []
        async for chunk in resp.content.iter_any():
            pieces.append(chunk)
            if b"\n" not in chunk:
                continue  # a large object arriving in parts is joined once, when it ends
            # One split per chunk: a burst brings hundreds of events in one chunk, and
            # cutting them off one at a time would copy the rest of it each time.
            lines = b"".join(pieces).split(b"\n")
            pieces = [lines.pop()]
            for line in lines:
                if not line.strip():
                    continue
                ev = orjson.loads(line)
                if ev.get("type") == "ERROR":
                    st = ev.get("object") or {}
                    raise ApiError(int(st.get("code") or 500), st.get("reason") or "", st.get("message") or "")
                yield ev["type"], ev["object"]

    # -- events ------------------------------------------------------------------------

    EVENT_BURST = 25
    EVENT_REFILL_SECONDS = 300.0

    def _event_allowed(self, component: str, obj_id: str) -> bool:
        """The spam filter of client-go's event recorder: per source and object, a burst of
        25 events, then one per 5 minutes; a ReplicaSet creating 500 pods records 25."""
        now = time.monotonic()
        key = (component, obj_id)
        tokens, last = self._event_buckets.get(key, (float(self.EVENT_BURST), now))
        tokens = min(float(self.EVENT_BURST), tokens + (now - last) / self.EVENT_REFILL_SECONDS)
        if tokens < 1.0:
            self._event_buckets[key] = (tokens, now)
            return False
        if len(self._event_buckets) > 65536:
            self._event_buckets.clear()
        self._event_buckets[key] = (tokens - 1.0, now)
        return True

    async def event(self, involved: dict[str, Any], type_: str, reason: str, message: str,
                    component: str) -> None:
        """Record a core/v1 Event about `involved` (best effort, repeated events are counted)."""
        meta = involved.get("metadata") or {}
        if not self._event_allowed(component, meta.get("uid") or meta.get("name") or ""):
            return
        ns = meta.get("namespace") or "default"
        now = dt.datetime.now(dt.UTC)
        stamp = rfc3339(now)
        cache_key = (meta.get("uid", ""), reason, message)
        try:
            cached = self._event_cache.get(cache_key)
            if cached is not None:
                name, count = cached
                try:
                    await self.patch(EVENTS, ns, name, {"count": count + 1, "lastTimestamp": stamp})
                    self._event_cache[cache_key] = (name, count + 1)
                    return
                except ApiError:
                    self._event_cache.pop(cache_key, None)
            name = f"{meta.get('name', 'unknown')}.{int(now.timestamp() * 1e9):x}"
            ev = {
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": {"kind": involved.get("kind", ""), "namespace": meta.get("namespace", ""),
                                   "name": meta.get("name", ""), "uid": meta.get("uid", ""),
                                   "apiVersion": involved.get("apiVersion", ""),
                                   "resourceVersion": meta.get("resourceVersion", "")},
                "reason": reason, "message": message, "type": type_,
                "source": {"component": component}, "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
                "reportingComponent": component, "reportingInstance": "",
                # Read through events.k8s.io too, where clients (the Python one) require an eventTime.
                "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
            if not ev["involvedObject"]["namespace"]:
                ev["involvedObject"].pop("namespace")
            await self.create(EVENTS, ns, ev, field_manager=component)
            if len(self._event_cache) > 4096:
                self._event_cache.clear()
            self._event_cache[cache_key] = (name, 1)
        except (TimeoutError, ApiError, aiohttp.ClientError) as e:
            log.debug("event %s for %s not recorded: %s", reason, meta.get("name"), e)
