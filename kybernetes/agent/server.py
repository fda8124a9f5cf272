"""The agent's HTTPS API (the kubelet's port, 10250): the API server proxies
`pods/log`, exec, attach, port-forward and `nodes/proxy` here, and metrics-server reads
`/stats/summary` and `/metrics/resource` (the figures: `agent.stats`).

The agent serves the certificate the cluster CA issued for its node
(`agent.servingcert`), which the API server verifies. Every request is authenticated
(a client certificate of the cluster CA, or a bearer token through TokenReview) and
authorized (SubjectAccessReview on `nodes/proxy|log|stats|metrics`) by `agent.apiauth`
before any handler runs; anonymous callers get 401."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from kybernetes.agent import logs, podspec, stats
from kybernetes.agent.apiauth import AgentAuth
from kybernetes.agent.cri import runtime_pb2 as pb
from kybernetes.agent.cri.client import CriError
from kybernetes.agent.cri.protocol import Runtime
from kybernetes.agent.runtime_stream import RuntimeSession, RuntimeStreamError
from kybernetes.agent.statsreader import StatsReader
from kybernetes.api.channels import relay
from kybernetes.api.timefmt import parse_time

log = logging.getLogger(__name__)


def server_ssl_context(cert: str, key: str, client_ca_pem: bytes) -> ssl.SSLContext:
    """Serves `cert`; a client certificate is asked for and, when shown, must chain to
    the cluster CA (callers with a bearer token show none)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(cadata=client_ca_pem.decode())
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def auth_middleware(auth: AgentAuth) -> Any:
    """Lets a request reach its handler only once `auth` has authenticated and
    authorized it; otherwise the kubelet's plain-text 401/403/500."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        peercert = request.transport.get_extra_info("peercert") if request.transport is not None else None
        verdict = await auth.check(request.method, request.path, peercert, request.headers.get("Authorization"))
        if verdict.status:
            headers = {"WWW-Authenticate": 'Bearer realm="kybernetes-agent"'} if verdict.status == 401 else None
            return web.Response(status=verdict.status, text=verdict.message + "\n", content_type="text/plain",
                                headers=headers)
        return await handler(request)

    return middleware


def _bad(message: str, status: int = 400) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


def _prometheus(text: str) -> web.Response:
    return web.Response(body=text.encode(), headers={"Content-Type": stats.PROMETHEUS_CONTENT_TYPE})


def log_options(query: Any) -> logs.LogOptions:
    def number(name: str) -> int | None:
        value = query.get(name)
        if value in (None, ""):
            return None
        n = int(value)
        if n < 0:
            raise ValueError(f"{name} must be non-negative")
        return n

    since = None
    if query.get("sinceSeconds"):
        since = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=int(query["sinceSeconds"]))
    elif query.get("sinceTime"):
        since = parse_time(query["sinceTime"])
    return logs.LogOptions(timestamps=query.get("timestamps") in ("true", "1"), tail_lines=number("tailLines"),
                           since=since, limit_bytes=number("limitBytes"))


class AgentServer:
    def __init__(self, cri: Runtime, bind: str, port: int, ssl_ctx: ssl.SSLContext, auth: AgentAuth,
                 runc_root: str = "", log_dir: str = "/var/log", stats_reader: StatsReader | None = None,
                 pods: Callable[[], list[dict[str, Any]]] | None = None) -> None:
        self.cri = cri
        self.pods_source = pods
        self.stats = stats_reader or StatsReader(cri, auth.node_name)
        self._housekeeping: asyncio.Task[None] | None = None
        self.auth = auth
        self.log_dir = log_dir
        # runc's state dir for the runtime's Kubernetes namespace: exec with stdin runs
        # through runc directly (see `_exec_with_stdin`).
        self.runc_root = runc_root
        self.bind = bind
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        app = web.Application(middlewares=[auth_middleware(self.auth)])
        app.router.add_get("/containerLogs/{namespace}/{pod}/{container}", self.container_logs)
        app.router.add_get("/exec/{namespace}/{pod}/{container}", self.stream)
        app.router.add_get("/attach/{namespace}/{pod}/{container}", self.stream)
        app.router.add_get("/portForward/{namespace}/{pod}", self.port_forward)
        app.router.add_get("/healthz", lambda _r: web.Response(text="ok"))
        app.router.add_get("/pods", self.pods)
        app.router.add_get("/stats/summary", self.stats_summary)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/metrics/resource", self.metrics_resource)
        app.router.add_get("/metrics/cadvisor", self.metrics_cadvisor)
        if os.path.isdir(self.log_dir):
            # The host's logs, as the kubelet serves them (`kubectl get --raw /api/v1/nodes/N/proxy/logs/`).
            app.router.add_static("/logs/", self.log_dir, show_index=True)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, self.bind, self.port, ssl_context=self.ssl_ctx).start()
        log.info("agent API on https://%s:%d", self.bind, self.port)
        self._housekeeping = asyncio.create_task(self.stats.run())

    async def stop(self) -> None:
        if self._housekeeping is not None:
            self._housekeeping.cancel()
            await asyncio.gather(self._housekeeping, return_exceptions=True)
            self._housekeeping = None
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def pods(self, _request: web.Request) -> web.StreamResponse:
        """The pods bound to this node as the agent knows them, a PodList as the kubelet's
        /pods answers (clients see there when the node has learnt of a deletion)."""
        items = [{**pod, "apiVersion": "v1", "kind": "Pod"} for pod in (self.pods_source() if self.pods_source else [])]
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": items})

    async def stats_summary(self, request: web.Request) -> web.StreamResponse:
        """The kubelet's statsapi Summary; `?only_cpu_and_memory=true` as metrics-server once asked."""
        try:
            snap = await self.stats.snapshot()
        except CriError as e:
            return _bad(f"failed to get node info: {e.details}", 500)
        only = request.query.get("only_cpu_and_memory") in ("true", "1")
        return web.json_response(stats.summary(snap, self.stats.windows, only))

    async def metrics_resource(self, _request: web.Request) -> web.StreamResponse:
        try:
            snap = await self.stats.snapshot()
        except CriError as e:
            log.warning("resource metrics: %s", e)
            snap = stats.Snapshot(stats.NodeSample(self.auth.node_name, 0.0), (), 1)
        return _prometheus(stats.resource_metrics(snap))

    async def metrics_cadvisor(self, _request: web.Request) -> web.StreamResponse:
        try:
            snap = await self.stats.snapshot()
        except CriError as e:
            return _bad(f"failed to get container info: {e.details}", 500)
        return _prometheus(stats.cadvisor_metrics(snap, os.cpu_count() or 1, self.stats.images()))

    async def metrics(self, _request: web.Request) -> web.StreamResponse:
        """The agent's own process and the kubelet's pod and container counts."""
        by_state: dict[str, int] = {}
        running_pods = 0
        try:
            running_pods = len(await self.cri.list_pod_sandboxes(state=pb.SANDBOX_READY))
            for c in await self.cri.list_containers():
                state = pb.ContainerState.Name(c.state).removeprefix("CONTAINER_").lower()
                by_state[state] = by_state.get(state, 0) + 1
        except CriError as e:
            log.warning("agent metrics: %s", e)
        process = await asyncio.to_thread(self.stats.process)
        return _prometheus(stats.agent_metrics(self.auth.node_name, process, running_pods, by_state))

    async def _attempts(self, namespace: str, pod: str, container: str) -> list[pb.ContainerStatus]:
        """The container's runtime records, newest first."""
        found = await self.cri.list_containers(label_selector={
            podspec.POD_NAMESPACE: namespace, podspec.POD_NAME: pod, podspec.CONTAINER_NAME: container})
        statuses = []
        for c in found:
            try:
                statuses.append((await self.cri.container_status(c.id)).status)
            except CriError as e:
                if not e.not_found:
                    raise
        statuses.sort(key=lambda s: (int(s.annotations.get(podspec.RESTART_COUNT, "0") or 0), s.created_at),
                      reverse=True)
        return statuses

    async def container_logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        try:
            opts = log_options(q)
        except ValueError as e:
            return _bad(str(e))
        attempts = await self._attempts(ns, pod, container)
        previous = q.get("previous") in ("true", "1")
        if previous:
            if len(attempts) < 2:
                return _bad(f'previous terminated container "{container}" in pod "{pod}" not found')
            chosen = attempts[1]
        elif not attempts:
            return _bad(f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating')
        else:
            chosen = attempts[0]
        follow = q.get("follow") in ("true", "1") and not previous
        running = asyncio.Event()
        if chosen.state == pb.CONTAINER_RUNNING:
            running.set()
        watcher = asyncio.create_task(self._watch_exit(chosen.id, running)) if follow and running.is_set() else None
        resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        try:
            async for chunk in logs.read_log(chosen.log_path, opts, follow, running):
                await resp.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            if watcher is not None:
                watcher.cancel()
        await resp.write_eof()
        return resp

    async def _watch_exit(self, container_id: str, running: asyncio.Event) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                st = (await self.cri.container_status(container_id)).status
            except CriError:
                running.clear()
                return
            if st.state != pb.CONTAINER_RUNNING:
                running.clear()
                return

    async def stream(self, request: web.Request) -> web.StreamResponse:
        """exec and attach over WebSocket (v5 or v4 channel protocol), carried to the
        runtime's streaming server over SPDY (see `runtime_stream`), where the v5 close
        signal of stdin becomes the end of the stdin stream."""
        ns, pod, container = (request.match_info[k] for k in ("namespace", "pod", "container"))
        q = request.query
        attempts = [a for a in await self._attempts(ns, pod, container) if a.state == pb.CONTAINER_RUNNING]
        if not attempts:
            return _bad(f"container {container} is not running", 400)
        flag = {k: q.get(k) in ("true", "1") for k in ("stdin", "stdout", "stderr", "tty")}
        try:
            if request.path.startswith("/exec/"):
                command = q.getall("command", [])
                if not command:
                    return _bad("you must specify at least 1 command")
                url = await self.cri.exec(attempts[0].id, command, tty=flag["tty"], stdin=flag["stdin"],
                                          stdout=flag["stdout"], stderr=flag["stderr"] and not flag["tty"])
            else:
                url = await self.cri.attach(attempts[0].id, tty=flag["tty"], stdin=flag["stdin"],
                                            stdout=flag["stdout"], stderr=flag["stderr"] and not flag["tty"])
        except CriError as e:
            return _bad(e.details, 500)
        try:
            backend = await RuntimeSession.open(url, stdin=flag["stdin"], stdout=flag["stdout"],
                                                stderr=flag["stderr"], tty=flag["tty"])
        except (TimeoutError, RuntimeStreamError, OSError) as e:
            return _bad(f"runtime streaming server: {e}", 502)
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        try:
            await ws.prepare(request)
        except BaseException:
            await backend.close()
            raise
        await relay(ws, backend)
        return ws


    async def _backend(self, url: str) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return await self._session.ws_connect(url, protocols=("v4.channel.k8s.io",))

    async def port_forward(self, request: web.Request) -> web.StreamResponse:
        """One forwarded TCP connection to `?port=` of the pod, as a WebSocket in the
        runtime's port-forward protocol (v4 channels: 0 data, 1 error, each opened by
        the port number as two little-endian bytes), relayed to containerd's streaming
        server, which dials the port inside the pod's network namespace."""
        ns, pod = request.match_info["namespace"], request.match_info["pod"]
        raw = request.query.get("port", "")
        if not raw.isdigit() or not 0 < int(raw) < 65536:
            return _bad(f"invalid port {raw!r}: must be between 1 and 65535")
        sandboxes = await self.cri.list_pod_sandboxes(
            state=pb.SANDBOX_READY, label_selector={podspec.POD_NAMESPACE: ns, podspec.POD_NAME: pod})
        if not sandboxes:
            return _bad(f"pod {ns}/{pod} has no running sandbox on this node")
        try:
            url = await self.cri.port_forward(sandboxes[0].id, [int(raw)])
            backend = await self._backend(url)
        except CriError as e:
            return _bad(e.details, 500)
        except (aiohttp.ClientError, OSError) as e:
            return _bad(f"runtime streaming server: {e}", 502)
        ws = web.WebSocketResponse(protocols=("v4.channel.k8s.io",))
        await ws.prepare(request)
        await relay(ws, backend, close_signal=False)
        return ws
