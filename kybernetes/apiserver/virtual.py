"""Resources the server answers itself instead of storing them.

The authentication and authorization reviews (`kubectl auth whoami`,
`kubectl auth can-i`), and the pod subresources that belong to a node agent:
`pods/log` is proxied to the agent of the pod's node (its address and port from
the Node object); until a pod is bound to a node the answer is the real server's
"does not have a host assigned". exec and attach (WebSocket or SPDY) are carried to the agent;
port-forward is terminated here (see `portforward`) and carried to the agent one
connection at a time.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import ssl
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
from aiohttp import WSMsgType, web

from kybernetes.api import tables
from kybernetes.api.aiotasks import cancel_and_wait
from kybernetes.api.errors import ApiError
from kybernetes.api.kinds import strategy_for
from kybernetes.api.kinds.base import Requester
from kybernetes.api.kinds.componentstatus import ComputedKindStrategy
from kybernetes.apiserver import auth, codec, portforward, remotecommand
from kybernetes.apiserver.agentdial import AgentDialer, AgentTarget, no_redirects, request_endpoint
from kybernetes.apiserver.proxy import ProxyRelay
from kybernetes.apiserver.rest import json_response, negotiated_response, wants_table
from kybernetes.apiserver.watchcache import WatchCache

LOG_PARAMS = ("follow", "previous", "timestamps", "tailLines", "sinceSeconds", "sinceTime", "limitBytes")


class _Review:
    """The review kinds' view of the request's user and of the server's token authenticator."""

    def __init__(self, user: auth.UserInfo, authenticator: auth.Authenticator, authorizer: Any = None) -> None:
        self.requester = auth.requester(user)
        self._authenticator = authenticator
        self._authorizer = authorizer

    def authorize(self, attrs: Any) -> Any:
        return self._authorizer.decide(attrs)

    def rules_for(self, user: str, groups: tuple[str, ...], namespace: str) -> tuple[list, list, str]:
        return self._authorizer.rules_for(user, groups, namespace)

    def authenticate_token(self, token: str) -> Requester | None:
        found = self._authenticator.authenticate_token(token)
        return auth.requester(found) if found is not None else None

    def review_token(self, token: str, audiences: list[str]) -> tuple[Requester | None, list[str], str]:
        """(user, audiences it is good for, error) for a TokenReview asking about `audiences`."""
        verifier = self._authenticator.service_accounts
        if verifier is not None and token.count(".") == 2 and self._authenticator.authenticate_token(token) is None:
            found = verifier.review(token, audiences or None)
            if isinstance(found, str):
                return None, [], found
            return (Requester(username=found.username, uid=found.uid, groups=found.groups,
                              extra=tuple((k, tuple(v)) for k, v in found.extra.items())), list(found.audiences), "")
        user = self.authenticate_token(token)
        if user is None:
            return None, [], "invalid bearer token"
        # A token without audiences of its own (static, legacy) is good for the server's.
        api = list(verifier.audiences) if verifier is not None else []
        matched = [a for a in audiences if a in api] if audiences else api
        if audiences and not matched:
            return None, [], "token audiences are invalid"
        return user, matched, ""


# kube-apiserver's reader protocols for a streamed GET over a WebSocket (none offered: binary).
LOG_WEBSOCKET_PROTOCOLS = ("binary.k8s.io", "base64.binary.k8s.io")


async def log_over_websocket(request: web.Request, chunks: AsyncIterator[bytes]) -> web.WebSocketResponse:
    """A log read with a WebSocket GET, as kube-apiserver's wsstream reader answers it:
    each chunk one binary message (base64 in a text message for `base64.binary.k8s.io`),
    the socket closed at the log's end, and a followed log given up when the client leaves."""
    ws = web.WebSocketResponse(protocols=LOG_WEBSOCKET_PROTOCOLS)
    await ws.prepare(request)
    as_text = ws.ws_protocol == "base64.binary.k8s.io"

    async def pump() -> None:
        async for chunk in chunks:
            if as_text:
                await ws.send_str(base64.b64encode(chunk).decode())
            else:
                await ws.send_bytes(chunk)

    async def client_left() -> None:
        # Reading also answers the client's pings; a close or error ends the stream.
        while (await ws.receive()).type not in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                                                 WSMsgType.ERROR):
            pass

    # The agent's stream breaking ends the log as its end does: the client sees the close.
    tasks = [asyncio.ensure_future(pump()), asyncio.ensure_future(client_left())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait(tasks)
    await ws.close()
    return ws


def _stamp_namespace(body: dict[str, Any], namespace: str | None) -> None:
    """A namespaced review takes its namespace from the URL, as a stored object does."""
    meta = body.get("metadata")
    if not isinstance(meta, dict):
        meta = body["metadata"] = {}
    if meta.get("namespace") in (None, ""):
        meta["namespace"] = namespace
    elif namespace is not None and meta["namespace"] != namespace:
        raise ApiError.bad_request(
            "the namespace of the provided object does not match the namespace sent on the request")


class _CacheReader:
    """The objects computed kinds look at, read from the watch cache."""

    def __init__(self, cache: WatchCache) -> None:
        self._cache = cache

    def lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        co = self._cache.get(f"/registry/coordination.k8s.io/leases/{namespace}/{name}")
        return co.obj if co is not None else None

    def store_healthy(self) -> bool:
        # The cache follows the store's watch; a revision means the store has answered it.
        return self._cache.revision > 0


class VirtualHandler:
    def __init__(self, cache: WatchCache, authenticator: auth.Authenticator,
                 agent_ssl: ssl.SSLContext | None = None) -> None:
        self.cache = cache
        self.authenticator = authenticator
        self.agent_ssl = agent_ssl
        self.authorizer: Any = None  # the server's authz.Authorizer, for the access reviews
        self.sa_tokens: Any = None  # the server's serviceaccounts.ServiceAccountTokens (TokenRequest)
        # The server's webhooks.WebhookAdmission.connect: CONNECT admission of exec, attach
        # and portforward before the node is dialled.
        self.connect_admission: Any = None
        self._session: aiohttp.ClientSession | None = None
        self.dialer = AgentDialer(agent_ssl)
        self.proxy = ProxyRelay(cache, self._client, self.dialer)

    async def close(self) -> None:
        await self.dialer.close()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle(self, request: web.Request, target: Any) -> web.StreamResponse:
        info = target.info
        user: auth.UserInfo = request["user"]
        if target.subresource == "log":
            return await self._pod_log(request, target)
        if target.subresource in ("exec", "attach"):
            return await self._pod_stream(request, target)
        if target.subresource == "portforward":
            return await self._pod_portforward(request, target)
        if target.subresource == "proxy":
            return await self.proxy.serve(request, target)
        if target.subresource == "token":
            return await self._answer_subresource(request, target, "TokenRequest")
        strategy = strategy_for(info)
        if isinstance(strategy, ComputedKindStrategy):
            return self._computed(request, target, strategy)
        if request.method != "POST" or target.name is not None:
            raise ApiError.method_not_allowed()
        data = await request.read()
        body = codec.decode_object(data, request.headers.get("Content-Type"), info.kind) if data.strip() else {}
        if info.namespaced:
            _stamp_namespace(body, target.namespace)
        answer = strategy_for(info).review(info, body, _Review(user, self.authenticator, self.authorizer))
        if answer is not None:
            return negotiated_response(request, answer, 201)
        raise ApiError.method_not_allowed()

    async def _answer_subresource(self, request: web.Request, target: Any, body_kind: str) -> web.Response:
        """A POST-only subresource the kind's strategy answers from the stored object
        (a ServiceAccount's token), nothing written."""
        if request.method != "POST":
            raise ApiError.method_not_allowed()
        info = target.info
        co = self.cache.get(info.key(target.namespace, target.name or ""))
        if co is None:
            raise ApiError.not_found(info.group, info.plural, target.name or "")
        data = await request.read()
        body = codec.decode_object(data, request.headers.get("Content-Type"), body_kind) if data.strip() else {}
        if target.subresource == "token" and self.authorizer is not None:
            # NodeRestriction: a node asks only for tokens bound to its own pods.
            self.authorizer.nodes.check_token(request["user"], target.namespace or "", target.name or "", body)
        answer = strategy_for(info).answer_subresource(info, target.subresource, co.obj, body, self.sa_tokens)
        if answer is None:
            raise ApiError.method_not_allowed()
        return negotiated_response(request, answer, 201)

    def _computed(self, request: web.Request, target: Any, strategy: ComputedKindStrategy) -> web.Response:
        """GET of a kind the server computes on read (componentstatuses): a list, one
        object, or a Table of them."""
        if request.method != "GET" or request.query.get("watch") in ("true", "1") or target.watch_path:
            raise ApiError.method_not_allowed()
        info = target.info
        now = dt.datetime.now(dt.UTC)
        objects = strategy.objects(info, _CacheReader(self.cache), now)
        warnings = [strategy.warning] if strategy.warning else []
        if target.name is not None:
            objects = [o for o in objects if (o.get("metadata") or {}).get("name") == target.name]
            if not objects:
                raise ApiError.not_found(info.group, info.plural, target.name)
        for obj in objects:
            obj["kind"], obj["apiVersion"] = info.kind, info.api_version
        if wants_table(request.headers.get("Accept", "")):
            table = tables.build_table(info, objects, now, request.query.get("includeObject", "Metadata"), {})
            return json_response(orjson.dumps(table), warnings=warnings)
        if target.name is not None:
            return json_response(orjson.dumps(objects[0]), warnings=warnings)
        body = {"kind": info.list_kind, "apiVersion": info.api_version, "metadata": {}, "items": objects}
        return json_response(orjson.dumps(body), warnings=warnings)

    def _bound_pod(self, target: Any) -> dict[str, Any]:
        info = target.info
        co = self.cache.get(info.key(target.namespace, target.name or ""))
        if co is None:
            raise ApiError.not_found(info.group, info.plural, target.name or "")
        pod = co.obj
        if not (pod.get("spec") or {}).get("nodeName"):
            raise ApiError.bad_request(f"pod {target.name} does not have a host assigned")
        return pod

    async def _agent(self, request: web.Request, node_name: str) -> AgentTarget:
        """The agent of `node_name`, its address checked (see `agentdial`)."""
        co = self.cache.get(f"/registry/core/nodes/{node_name}")
        return await self.dialer.target(node_name, co.obj if co is not None else None,
                                        request_endpoint(request.transport))

    async def _pod_log(self, request: web.Request, target: Any) -> web.StreamResponse:
        if request.method != "GET":
            raise ApiError.method_not_allowed()
        pod = self._bound_pod(target)
        name = target.name or ""
        spec = pod.get("spec") or {}
        names = [c.get("name", "") for c in spec.get("containers") or []]
        all_names = [c.get("name", "") for k in ("initContainers", "ephemeralContainers")
                     for c in spec.get(k) or []] + names
        container = request.query.get("container", "")
        if not container:
            if len(names) != 1:
                raise ApiError.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                           f"[{' '.join(names)}]")
            container = names[0]
        elif container not in all_names:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        for param in ("tailLines", "sinceSeconds", "limitBytes"):
            value = request.query.get(param)
            if value is not None and (not value.lstrip("-").isdigit() or int(value) < (1 if param != "tailLines" else 0)):
                raise ApiError.bad_request(f"invalid {param}: {value}: must be a non-negative number")
        agent = await self._agent(request, spec["nodeName"])
        query = {k: request.query[k] for k in LOG_PARAMS if k in request.query}
        url = f"https://{agent.netloc}/containerLogs/{target.namespace}/{name}/{container}"
        try:
            upstream = await self.dialer.session().get(url, params=query, allow_redirects=False,
                                                       **self.dialer.tls_options(agent.node))
        except (aiohttp.ClientError, OSError) as e:
            raise ApiError(503, "ServiceUnavailable",
                           f"the node agent of {spec['nodeName']} is not reachable: {e}") from None
        try:
            if upstream.status != 200:
                text = (await upstream.text())[:1000]
                raise ApiError(upstream.status if 400 <= upstream.status < 500 else 502,
                               "BadRequest" if upstream.status == 400 else "InternalError", text.strip())
            if request.headers.get("Upgrade", "").lower() == "websocket":
                return await log_over_websocket(request, upstream.content.iter_any())
            resp = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            try:
                async for chunk in upstream.content.iter_any():
                    await resp.write(chunk)
            except (ConnectionResetError, aiohttp.ClientError):
                pass
            await resp.write_eof()
            return resp
        finally:
            upstream.release()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No cookie jar: the proxy subresources relay many clients' requests through this session.
            # No redirect is ever followed (a WebSocket handshake would follow one otherwise).
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
                                                  cookie_jar=aiohttp.DummyCookieJar(), trace_configs=[no_redirects()])
        return self._session

    async def _pod_stream(self, request: web.Request, target: Any) -> web.StreamResponse:
        """pods/exec and pods/attach: the client's WebSocket or SPDY session (see
        `remotecommand`) carried to the agent of the pod's node."""
        pod = self._bound_pod(target)
        name = target.name or ""
        spec = pod.get("spec") or {}
        names = [c.get("name", "") for c in spec.get("containers") or []]
        container = request.query.get("container", "") or (names[0] if len(names) == 1 else "")
        if not container:
            raise ApiError.bad_request(f"a container name must be specified for pod {name}, choose one of: "
                                       f"[{' '.join(names)}]")
        if container not in names + [c.get("name", "") for k in ("initContainers", "ephemeralContainers")
                                     for c in spec.get(k) or []]:
            raise ApiError.bad_request(f"container {container} is not valid for pod {name}")
        if target.subresource == "exec" and not request.query.getall("command", []):
            raise ApiError.bad_request("you must specify at least 1 command")
        await self._admit_connect(request, target, _stream_options(target.subresource, request.query, container))
        negotiated = remotecommand.negotiate_request(request.headers)
        agent = await self._agent(request, spec["nodeName"])
        url = f"https://{agent.netloc}/{target.subresource}/{target.namespace}/{name}/{container}"
        query = [(k, v) for k, v in request.query.items() if k != "container"]
        try:
            back = await self.dialer.session().ws_connect(url, params=query, protocols=remotecommand.AGENT_PROTOCOLS,
                                                          **self.dialer.tls_options(agent.node))
        except aiohttp.WSServerHandshakeError as e:
            raise ApiError(e.status if 400 <= e.status < 500 else 502, "BadRequest" if e.status == 400
                           else "InternalError", f"the node agent refused: {e.message}") from None
        except (aiohttp.ClientError, OSError) as e:
            raise ApiError(503, "ServiceUnavailable",
                           f"the node agent of {spec['nodeName']} is not reachable: {e}") from None
        return await remotecommand.serve(request, negotiated, back)

    async def _admit_connect(self, request: web.Request, target: Any, options: dict[str, Any]) -> None:
        if self.connect_admission is None:
            return
        await self.connect_admission(target.info, target.subresource, target.name or "", target.namespace or "",
                                     options, request["user"])

    async def _pod_portforward(self, request: web.Request, target: Any) -> web.StreamResponse:
        pod = self._bound_pod(target)
        name = target.name or ""
        node = pod["spec"]["nodeName"]
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise ApiError.bad_request("Upgrade request required: pods/portforward speaks WebSocket "
                                       f"({portforward.SPDY_TUNNEL_PROTOCOL} or v4.channel.k8s.io)")
        wanted = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        ports = [int(p) for p in request.query.getall("ports", []) if p.isdigit()]
        await self._admit_connect(request, target, {"kind": "PodPortForwardOptions", "apiVersion": "v1",
                                                    **({"ports": ports} if ports else {})})
        agent = await self._agent(request, node)
        url = f"https://{agent.netloc}/portForward/{target.namespace}/{name}"

        async def dial(port: int) -> aiohttp.ClientWebSocketResponse:
            try:
                return await self.dialer.session().ws_connect(url, params={"port": str(port)},
                                                              protocols=("v4.channel.k8s.io",),
                                                              **self.dialer.tls_options(agent.node))
            except aiohttp.WSServerHandshakeError as e:
                raise portforward.DialError(f"the node agent refused to forward port {port}: {e.message}") from None
            except (aiohttp.ClientError, OSError) as e:
                raise portforward.DialError(f"the node agent of {node} is not reachable: {e}") from None

        if portforward.SPDY_TUNNEL_PROTOCOL in wanted:
            front = web.WebSocketResponse(protocols=(portforward.SPDY_TUNNEL_PROTOCOL,))
            await front.prepare(request)
            await portforward.serve_spdy_tunnel(front, dial)
            return front
        protocol = next((p for p in portforward.CHANNEL_PROTOCOLS if p in wanted), None)
        if protocol is None:
            raise ApiError.bad_request(f"none of the offered subprotocols {wanted} is supported: "
                                       f"{portforward.SPDY_TUNNEL_PROTOCOL}, v4.channel.k8s.io")
        try:
            ports = [portforward.parse_port(p) for v in request.query.getall("ports", []) for p in v.split(",")]
        except ValueError as e:
            raise ApiError.bad_request(str(e)) from None
        if not ports:
            raise ApiError.bad_request("query parameter \"ports\" is required")
        backs: list[Any] = []
        try:
            for port in ports:
                backs.append(await dial(port))
        except portforward.DialError as e:
            for b in backs:
                await b.close()
            raise ApiError(502, "InternalError", str(e)) from None
        front = web.WebSocketResponse(protocols=(protocol,))
        await front.prepare(request)
        await portforward.serve_channels(front, backs)
        return front


_TRUE = ("true", "1", "True")


def _stream_options(subresource: str, query: Any, container: str) -> dict[str, Any]:
    """The PodExecOptions / PodAttachOptions a CONNECT admission sees, from the query."""
    options: dict[str, Any] = {"kind": "PodExecOptions" if subresource == "exec" else "PodAttachOptions",
                               "apiVersion": "v1"}
    for flag in ("stdin", "stdout", "stderr", "tty"):
        if query.get(flag) in _TRUE:
            options[flag] = True
    options["container"] = container
    if subresource == "exec":
        options["command"] = query.getall("command", [])
    return options
